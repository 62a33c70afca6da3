"""layout moves transposes through keepdims reductions (their axes remapped), so
a channels-last convolution followed by a reduction over time or channels needs
no transpose after it; a reduction that drops axes keeps its transpose."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from pass_testing import apply, build

RNG = np.random.default_rng(9)


def conv_then_reduce(op: str, axes: list[int], keepdims: int):
    """Conv1d [1, 3, 10] -> [1, 6, 10], then the reduction (opset 17: ReduceSum
    takes its axes as an input, the others as an attribute)."""
    consts = {"w": RNG.standard_normal((6, 3, 3)).astype(np.float32)}
    if op == "ReduceSum":
        consts["axes"] = np.array(axes, np.int64)
        reduce = helper.make_node(op, ["c", "axes"], ["y"], keepdims=keepdims)
    else:
        reduce = helper.make_node(op, ["c"], ["y"], axes=axes, keepdims=keepdims)
    shape = [1 if i in axes else d for i, d in enumerate([1, 6, 10]) if keepdims or i not in axes]
    return build([helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1]), reduce], {"x": [1, 3, 10]},
                 {"y": shape}, consts)


@pytest.mark.parametrize("op,axes", [("ReduceMean", [2]), ("ReduceMax", [1]), ("ReduceSum", [1, 2])])
def test_keepdims_reduction_runs_channels_last(op, axes):
    after = apply(conv_then_reduce(op, axes, 1), "layout,canonicalize")
    (reduce,) = [n for n in after.nodes() if n.op == op]
    assert reduce.attrs.axes == tuple(sorted({1: 2, 2: 1}[a] for a in axes))
    assert transposes(after) == [["x"]]  # only the graph input's (the user's NCW contract)


def test_reduction_that_drops_axes_keeps_its_transpose():
    after = apply(conv_then_reduce("ReduceMean", [2], 0), "layout,canonicalize")
    assert len(transposes(after)) == 2


def transposes(graph) -> list[list[str]]:
    return [n.inputs for n in graph.nodes() if n.op == "Transpose"]
