"""vector_operand_to_matrix (a canonicalize rule): a MatMul's constant 1-D
operand becomes a [K, 1] or [1, K] matrix with a Reshape after the product,
with the same values, and compiles on every target (attention pooling's h @ q
was refused: 'a 1-D operand has an integer lowering only against constant 2-D
weights')."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

import nnc
from nnc.interpreter import run

from pass_testing import apply, build, ops

RNG = np.random.default_rng(4)


@pytest.mark.parametrize("vector_first", [False, True])
def test_a_constant_vector_operand_becomes_a_matrix(vector_first):
    v = RNG.standard_normal(6).astype(np.float32)
    inputs, shape, out = (["v", "h"], [2, 6, 5], [2, 5]) if vector_first else (["h", "v"], [2, 5, 6], [2, 5])
    before = build([helper.make_node("MatMul", inputs, ["y"])], {"h": shape}, {"y": out}, {"v": v})
    after = apply(before, "canonicalize", exact=False)
    assert ops(after) == ["MatMul", "Reshape"]
    h = RNG.standard_normal(shape).astype(np.float32)
    want = np.matmul(v, h) if vector_first else np.matmul(h, v)
    np.testing.assert_allclose(run(after, {"h": h})["y"], want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("target", ["c", "az-sim", "onnx"])
def test_attention_pooling_compiles(target, tmp_path):
    """tanh(x W) @ q -> Softmax over time -> weighted sum: bit-exact on each target."""
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h0"]), helper.make_node("Tanh", ["h0"], ["h"]),
             helper.make_node("MatMul", ["h", "q"], ["scores"]),
             helper.make_node("Softmax", ["scores"], ["weights"], axis=-1),
             helper.make_node("MatMul", ["weights", "h"], ["y"])]
    inits = [numpy_helper.from_array(RNG.standard_normal((8, 6)).astype(np.float32) * 0.5, "w"),
             numpy_helper.from_array(RNG.standard_normal(6).astype(np.float32), "q")]
    graph = helper.make_graph(nodes, "pool", [helper.make_tensor_value_info("x", 1, [1, 10, 8])],
                              [helper.make_tensor_value_info("y", 1, [1, 1, 6])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "m.onnx")
    calib = {"x": RNG.standard_normal((16, 1, 10, 8)).astype(np.float32)}
    result = nnc.compile(tmp_path / "m.onnx", target, tmp_path / "out", calib=calib)
    assert result.report["verification"]["vs_reference"]["bit_exact"]
    assert result.report["verification"]["vs_float"]["cosine"] > 0.999
