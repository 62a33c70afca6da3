"""depth_space_to_transpose (a canonicalize rule): DepthToSpace (both modes;
PyTorch's PixelShuffle) and SpaceToDepth become Reshape → Transpose → Reshape
with the same values bit for bit (the reference against onnxruntime:
tests/ops/test_depth_space.py); a PixelShuffle tail compiles on every target."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

import nnc
from nnc.interpreter import run

from pass_testing import apply, build, ops

RNG = np.random.default_rng(8)
CASES = [("DepthToSpace", {"blocksize": 2, "mode": "DCR"}, [1, 8, 3, 4], [1, 2, 6, 8]),
         ("DepthToSpace", {"blocksize": 2, "mode": "CRD"}, [2, 12, 2, 3], [2, 3, 4, 6]),
         ("SpaceToDepth", {"blocksize": 3}, [1, 2, 6, 9], [1, 18, 2, 3])]


@pytest.mark.parametrize("op, attrs, shape, out", CASES)
def test_depth_space_becomes_data_movement(op, attrs, shape, out):
    x = RNG.standard_normal(shape).astype(np.float32)
    before = build([helper.make_node(op, ["x"], ["y"], name="ds", **attrs)], {"x": shape}, {"y": out}, {})
    after = apply(before, "canonicalize")  # exact
    assert op not in ops(after) and set(ops(after)) <= {"Reshape", "Transpose"}
    np.testing.assert_array_equal(run(after, {"x": x})["y"], run(before, {"x": x})["y"])


@pytest.mark.parametrize("target", ["c", "az-sim", "onnx"])
def test_pixel_shuffle_compiles(target, tmp_path):
    weights = numpy_helper.from_array((RNG.standard_normal((12, 3, 3, 3)) * 0.3).astype(np.float32), "w")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("DepthToSpace", ["c"], ["y"], blocksize=2, mode="CRD")]
    graph = helper.make_graph(nodes, "shuffle", [helper.make_tensor_value_info("x", 1, [1, 3, 5, 6])],
                              [helper.make_tensor_value_info("y", 1, [1, 3, 10, 12])], [weights])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "ps.onnx")
    result = nnc.compile(tmp_path / "ps.onnx", target, tmp_path / "out",
                         calib=RNG.standard_normal((8, 1, 3, 5, 6)).astype(np.float32))
    assert result.report["verification"]["vs_float"]["cosine"] > 0.999
    assert result.report["verification"]["vs_reference"]["max_abs_diff_lsb"] <= (1 if target == "onnx" else 0)
