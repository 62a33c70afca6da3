"""fuse-bias: MatMul + Add -> Gemm, Conv + per-channel Add -> Conv with bias."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from onnx import helper


import pass_testing
from pass_testing import apply, build, ops

RNG = np.random.default_rng(5)


def randn(*shape) -> np.ndarray:
    return pass_testing.randn(RNG, *shape)


def fuse(graph):
    """The rewritten graph, checked valid, same interface, outputs within rounding."""
    return apply(graph, "fuse-bias", exact=False)


@pytest.mark.parametrize("bias_first", [False, True])
@pytest.mark.parametrize("bias_shape", [(3,), (1, 3)])
def test_matmul_add_becomes_gemm(bias_first, bias_shape):
    add_inputs = ["b", "m"] if bias_first else ["m", "b"]
    nodes = [helper.make_node("MatMul", ["x", "w"], ["m"], name="dense"), helper.make_node("Add", add_inputs, ["y"])]
    graph = build(nodes, {"x": [2, 4]}, {"y": [2, 3]}, {"w": randn(4, 3), "b": randn(*bias_shape)})
    after = fuse(graph)
    (gemm,) = after.nodes()
    assert (gemm.op, gemm.name, gemm.inputs, gemm.outputs) == ("Gemm", "dense", ["x", "w", "b"], ["y"])
    assert "m" not in after.tensors


def test_qdq_fully_connected_layer():
    """DQ(W) -> MatMul -> Add(DQ(bias int32)), as in the MLPerf QDQ models."""
    constants = {"wq": RNG.integers(-127, 128, (4, 3)).astype(np.int8), "ws": np.float32(0.02),
                 "wz": np.int8(0), "bq": RNG.integers(-500, 500, 3).astype(np.int32), "bs": np.float32(0.001),
                 "bz": np.int32(0)}
    nodes = [helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["w"]),
             helper.make_node("DequantizeLinear", ["bq", "bs", "bz"], ["b"]),
             helper.make_node("MatMul", ["x", "w"], ["m"]), helper.make_node("Add", ["m", "b"], ["y"])]
    after = fuse(build(nodes, {"x": [1, 4]}, {"y": [1, 3]}, constants))
    assert ops(after) == ["DequantizeLinear", "DequantizeLinear", "Gemm"]
    assert after.nodes()[-1].inputs == ["x", "w", "b"]


def _matmul_add(x_shape=(2, 4), b_shape=(3,), runtime_bias=False, outputs=None, extra=()):
    nodes = [helper.make_node("MatMul", ["x", "w"], ["m"]), helper.make_node("Add", ["m", "b"], ["y"]), *extra]
    inputs = {"x": list(x_shape), **({"b": list(b_shape)} if runtime_bias else {})}
    constants = {"w": randn(4, 3), **({} if runtime_bias else {"b": randn(*b_shape)})}
    out_shape = [*x_shape[:-1], 3]
    return build(nodes, inputs, outputs or {"y": out_shape}, constants)


@pytest.mark.parametrize("b_shape", [(3,), (1, 3)])
def test_matmul_add_on_rows_of_a_sequence_becomes_gemm_between_reshapes(b_shape):
    """A transformer's Linear on x [B, T, K]: Reshape to rows, Gemm with the
    bias, Reshape back."""
    after = fuse(_matmul_add(x_shape=(2, 5, 4), b_shape=b_shape))
    assert ops(after) == ["Reshape", "Gemm", "Reshape"]
    (gemm,) = [n for n in after.nodes() if n.op == "Gemm"]
    assert after.tensor(gemm.inputs[0]).shape == (10, 4) and after.tensor(gemm.inputs[2]).shape == b_shape
    assert after.producer("y").op == "Reshape" and "m" not in after.tensors


@pytest.mark.parametrize("graph", [
    pytest.param(lambda: _matmul_add(b_shape=(2, 3)), id="bias-not-a-vector"),
    pytest.param(lambda: _matmul_add(x_shape=(2, 2, 4), b_shape=(2, 1, 3)), id="bias-per-batch"),
    pytest.param(lambda: _matmul_add(x_shape=(2, 2, 4), b_shape=(1, 1, 3)), id="bias-of-rank-3"),
    pytest.param(lambda: _matmul_add(b_shape=(1, 1, 3), outputs={"y": [1, 2, 3]}), id="bias-widens-y"),
    pytest.param(lambda: _matmul_add(runtime_bias=True), id="bias-computed-at-run-time"),
    pytest.param(lambda: _matmul_add(outputs={"y": [2, 3], "m": [2, 3]}), id="matmul-output-is-graph-output"),
    pytest.param(lambda: _matmul_add(extra=[helper.make_node("Relu", ["m"], ["r"])],
                                     outputs={"y": [2, 3], "r": [2, 3]}), id="matmul-output-read-twice"),
])
def test_matmul_add_not_fused(graph):
    g = graph()
    assert ops(fuse(g)) == ops(g)


def conv_add(k: np.ndarray, with_bias=False, k_first=False):
    conv = helper.make_node("Conv", ["x", "w", "b"] if with_bias else ["x", "w"], ["c"])
    add = helper.make_node("Add", ["k", "c"] if k_first else ["c", "k"], ["y"])
    constants = {"w": randn(3, 2, 1, 1), "k": k, **({"b": randn(3)} if with_bias else {})}
    return build([conv, add], {"x": [1, 2, 4, 4]}, {"y": [1, 3, 4, 4]}, constants)


@pytest.mark.parametrize("k_shape, k_first", [((1, 3, 1, 1), False), ((3, 1, 1), True), ((1,), False)])
def test_conv_add_becomes_conv_bias(k_shape, k_first):
    k = randn(*k_shape)
    after = fuse(conv_add(k, k_first=k_first))
    (conv,) = after.nodes()
    assert conv.op == "Conv" and conv.outputs == ["y"]
    assert np.array_equal(after.tensor(conv.inputs[2]).data, np.broadcast_to(k.reshape(-1), (3,)))
    assert "k" not in after.tensors


def test_conv_add_sums_with_an_existing_bias():
    graph = conv_add(randn(1, 3, 1, 1), with_bias=True)
    (conv,) = fuse(graph).nodes()
    assert conv.op == "Conv"


@pytest.mark.parametrize("k_shape", [(1, 1, 4, 4), (1, 3, 4, 1), (2, 3, 1, 1)])
def test_conv_add_not_per_channel(k_shape):
    if k_shape[0] == 2:
        conv = helper.make_node("Conv", ["x", "w"], ["c"])
        graph = build([conv, helper.make_node("Add", ["c", "k"], ["y"])], {"x": [1, 2, 4, 4]},
                      {"y": [2, 3, 4, 4]}, {"w": randn(3, 2, 1, 1), "k": randn(*k_shape)})
    else:
        graph = conv_add(randn(*k_shape))
    assert ops(fuse(graph)) == ["Conv", "Add"]


def test_conv_with_fused_clamp_keeps_its_add():
    graph = conv_add(randn(3, 1, 1))
    conv = graph.nodes()[0]
    conv.attrs = dataclasses.replace(conv.attrs, act_min=0.0)
    assert ops(fuse(graph)) == ["Conv", "Add"]
