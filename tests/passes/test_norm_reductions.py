"""norm_reduction_to_sum (a canonicalize rule): ReduceL1, ReduceL2 and
ReduceSumSquare become ReduceSum of |x| or x · x (and Sqrt for L2), with the
same values; an L2 normalization (F.normalize) then compiles on every target."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper

import nnc
from nnc.interpreter import run

from pass_testing import apply, build, ops


@pytest.mark.parametrize("op, expected", [("ReduceL1", ["Abs", "ReduceSum"]),
                                          ("ReduceSumSquare", ["Mul", "ReduceSum"]),
                                          ("ReduceL2", ["Mul", "ReduceSum", "Sqrt"])])
@pytest.mark.parametrize("keepdims", [0, 1])
def test_norm_reductions_become_sums(op, expected, keepdims):
    node = helper.make_node(op, ["x"], ["y"], name="norm", axes=[1, 2], keepdims=keepdims)
    before = build([node], {"x": [2, 3, 4]}, {"y": [2, 1, 1] if keepdims else [2]}, {})
    after = apply(before, "canonicalize", exact=False)
    assert ops(after) == expected and after.producer("y").name == "norm"
    x = np.random.default_rng(4).standard_normal((2, 3, 4)).astype(np.float32)
    np.testing.assert_allclose(run(after, {"x": x})["y"], run(before, {"x": x})["y"], rtol=1e-6)


@pytest.mark.parametrize("target", ["c", "az-sim", "onnx"])
def test_an_l2_normalization_compiles(target, tmp_path):
    nodes = [helper.make_node("ReduceL2", ["x"], ["n"], axes=[1], keepdims=1), helper.make_node("Div", ["x", "n"], ["y"])]
    graph = helper.make_graph(nodes, "l2", [helper.make_tensor_value_info("x", 1, [1, 16])],
                              [helper.make_tensor_value_info("y", 1, [1, 16])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "l2.onnx")
    calib = (np.random.default_rng(0).standard_normal((32, 1, 16)) + 0.5).astype(np.float32)
    result = nnc.compile(tmp_path / "l2.onnx", target, tmp_path / "out", calib=calib)
    assert result.report["verification"]["vs_float"]["cosine"] > 0.999
