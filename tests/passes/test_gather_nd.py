"""gather_nd_to_gather (a canonicalize rule): a GatherND with constant indices
and no batch dims becomes a Gather of the flattened leading axes, bit for bit;
PyTorch dynamo's 1-D linear Upsample (two GatherNDs) then compiles on every
target."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

import nnc
from nnc.interpreter import run

from pass_testing import apply, build, ops

RNG = np.random.default_rng(6)


@pytest.mark.parametrize("indices", [
    np.array([[2], [0], [-1], [1]]),                       # k = 1: a Gather along axis 0
    np.array([[[1, 0], [0, -2]], [[-1, 1], [0, 0]]]),      # k = 2: rows of the flattened [3·4, 5]
    np.array([[2, 3, 4], [0, 0, 0]]),                      # k = rank: single elements
])
def test_constant_gather_nd_becomes_a_gather(indices):
    node = helper.make_node("GatherND", ["x", "i"], ["y"], name="gnd")
    out = list(indices.shape[:-1]) + [3, 4, 5][indices.shape[-1]:]
    before = build([node], {"x": [3, 4, 5]}, {"y": out}, {"i": indices.astype(np.int64)})
    after = apply(before, "canonicalize")  # exact: the same values bit for bit
    assert ops(after)[-1] == "Gather" and "GatherND" not in ops(after) and after.producer("y").name == "gnd"
    x = RNG.standard_normal((3, 4, 5)).astype(np.float32)
    np.testing.assert_array_equal(run(after, {"x": x})["y"], run(before, {"x": x})["y"])


def test_batch_dims_and_run_time_indices_stay():
    node = helper.make_node("GatherND", ["x", "i"], ["y"], batch_dims=1)
    batched = build([node], {"x": [2, 3, 4]}, {"y": [2, 4]}, {"i": np.array([[1], [2]], np.int64)})
    assert ops(apply(batched, "canonicalize")) == ["GatherND"]


def _linear_upsample_model(channels=6, steps=8) -> onnx.ModelProto:
    """x [1, C, T] → T-first → GatherND at floor and ceil source positions →
    lerp by a constant fraction → back to [1, C, 2T], as dynamo writes
    Upsample(scale_factor=2, mode="linear")."""
    position = np.clip((np.arange(2 * steps) + 0.5) / 2 - 0.5, 0, None)
    low = np.floor(position).astype(np.int64)
    high = np.minimum(low + 1, steps - 1)
    inits = [numpy_helper.from_array(low[:, None], "low"), numpy_helper.from_array(high[:, None], "high"),
             numpy_helper.from_array((position - low).astype(np.float32)[:, None, None], "frac")]
    nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=[2, 0, 1]),
             helper.make_node("GatherND", ["t", "low"], ["a"]), helper.make_node("GatherND", ["t", "high"], ["b"]),
             helper.make_node("Sub", ["b", "a"], ["d"]), helper.make_node("Mul", ["d", "frac"], ["m"]),
             helper.make_node("Add", ["a", "m"], ["s"]), helper.make_node("Transpose", ["s"], ["y"], perm=[1, 2, 0])]
    graph = helper.make_graph(nodes, "upsample", [helper.make_tensor_value_info("x", 1, [1, channels, steps])],
                              [helper.make_tensor_value_info("y", 1, [1, channels, 2 * steps])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("target", ["c", "az-sim", "onnx"])
def test_dynamo_linear_upsample_compiles(target, tmp_path):
    onnx.save(_linear_upsample_model(), tmp_path / "up.onnx")
    calib = RNG.standard_normal((16, 1, 6, 8)).astype(np.float32)
    result = nnc.compile(tmp_path / "up.onnx", target, tmp_path / "out", calib=calib)
    assert result.report["verification"]["vs_float"]["cosine"] > 0.999
    assert result.report["verification"]["vs_reference"]["max_abs_diff_lsb"] <= (1 if target == "onnx" else 0)
    assert "Gather" in [node.op for node in result.graph.nodes()]
