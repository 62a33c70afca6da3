"""quantize on QDQ graphs of the transformer blocks (docs/numerics.md §11–14):
each lowering keeps the model's activation parameters and agrees with
onnxruntime (graph optimizations off) within 1 LSB."""

from __future__ import annotations

import numpy as np
import pytest

from nnc.errors import UnsupportedError
from qmodels import Builder, check_qdq, ops, rand_int8

SX, ZX = 0.05, 3


def start(shape, name="x", scale=SX, zero_point=ZX, b=None):
    b = b or Builder()
    return b, b.dq(b.input(name, shape, np.int8), scale, zero_point)


def finish(b: Builder, y: str, shape, scale=0.1, zero_point=-5):
    b.q(y, scale, zero_point, output="y")
    b.output("y", shape, np.int8)
    return b.model()


def test_matmul_of_two_activations_broadcasts_batches():
    b, x = start([2, 1, 3, 8])
    _, w = start([4, 8, 5], name="w", scale=0.03, zero_point=-9, b=b)
    graph, _ = check_qdq(finish(b, b.node("MatMul", [x, w]), [2, 4, 3, 5], scale=0.2))
    (node,) = graph.nodes()
    assert node.op == "QMatMul" and (node.attrs.a_zero_point, node.attrs.b_zero_point) == (ZX, -9)


def test_a_transpose_of_b_read_only_by_the_product_is_folded_in():
    """Attention's Q·Kᵀ: the Transpose of k's last two axes becomes b_transposed,
    and the product reads k itself (agreeing with onnxruntime as before)."""
    b, q = start([1, 2, 4, 8])
    _, k = start([1, 2, 5, 8], name="k", scale=0.03, zero_point=-9, b=b)
    kt = b.node("Transpose", [k], perm=[0, 1, 3, 2])
    kt = b.dq(b.q(kt, 0.03, -9), 0.03, -9)
    graph, _ = check_qdq(finish(b, b.node("MatMul", [q, kt]), [1, 2, 4, 5], scale=0.2))
    (node,) = [n for n in graph.nodes() if n.op == "QMatMul"]
    assert "Transpose" not in ops(graph) and node.attrs.b_transposed
    assert graph.tensor(node.inputs[1]).shape == (1, 2, 5, 8)


@pytest.mark.parametrize("perm", [[0, 2, 1, 3], None])
def test_other_transposes_of_b_stay(perm):
    """A Transpose of other axes, or one that a graph output also reads, is kept."""
    b, q = start([1, 2, 4, 8])
    _, k = start([1, 8, 2, 5] if perm else [1, 2, 5, 8], name="k", scale=0.03, zero_point=-9, b=b)
    kt = b.q(b.node("Transpose", [k], perm=perm or [0, 1, 3, 2]), 0.03, -9, output=None if perm else "kt")
    if not perm:
        b.output("kt", [1, 2, 8, 5], np.int8)
    y = b.node("MatMul", [q, b.dq(kt, 0.03, -9)])
    graph, _ = check_qdq(finish(b, y, [1, 2, 4, 5], scale=0.2))
    (node,) = [n for n in graph.nodes() if n.op == "QMatMul"]
    assert "Transpose" in ops(graph) and not node.attrs.b_transposed


def test_matmul_with_batched_constant_weights():
    b, x = start([2, 3, 8])
    w = b.dq(b.const(rand_int8(2, 8, 4).clip(-127, 127)), np.float32(0.02), np.int8(0))
    graph, _ = check_qdq(finish(b, b.node("MatMul", [x, w]), [2, 3, 4]))
    assert ops(graph) == ["QMatMul"]


def test_matmul_of_rows_with_2d_weights_is_a_qgemm():
    b, x = start([2, 3, 8])
    w = b.weights(rand_int8(8, 4).clip(-127, 127), np.float32(0.02))
    graph, _ = check_qdq(finish(b, b.node("MatMul", [x, w]), [2, 3, 4]))
    assert ops(graph) == ["Reshape", "QGemm", "Reshape"]


@pytest.mark.parametrize("op,axes,keepdims,out_shape", [
    ("ReduceMean", [1], 1, [2, 1, 6]), ("ReduceSum", [0, 2], 0, [5]), ("ReduceMax", [-1], 0, [2, 5])])
def test_reductions(op, axes, keepdims, out_shape):
    """Opset 17: ReduceSum takes axes as an input, ReduceMean and ReduceMax as an attribute."""
    b, x = start([2, 5, 6])
    if op == "ReduceSum":
        y = b.node(op, [x, b.const(np.array(axes, np.int64))], keepdims=keepdims)
    else:
        y = b.node(op, [x], keepdims=keepdims, axes=axes)
    graph, _ = check_qdq(finish(b, y, out_shape, scale=0.4 if op == "ReduceSum" else 0.05))
    assert ops(graph) == ["QReduce"]


def test_softmax_on_a_middle_axis_moves_it_last_and_back():
    b, x = start([2, 5, 3])
    graph, _ = check_qdq(finish(b, b.node("Softmax", [x], axis=1), [2, 5, 3], scale=1 / 256, zero_point=-128))
    assert ops(graph) == ["Transpose", "QSoftmax", "Transpose"]


@pytest.mark.parametrize("axis, expected", [(-1, ["QLogSoftmax"]), (1, ["Transpose", "QLogSoftmax", "Transpose"])])
def test_log_softmax_on_any_axis(axis, expected):
    """A CTC head's LogSoftmax (§6a): log probabilities down to -25 in int8."""
    b, x = start([2, 5, 29], scale=0.08)
    graph, _ = check_qdq(finish(b, b.node("LogSoftmax", [x], axis=axis), [2, 5, 29], scale=25 / 255, zero_point=127))
    assert ops(graph) == expected


@pytest.mark.parametrize("scale", [2.0 ** -26, 9.0])
def test_log_softmax_refuses_input_scales_outside_its_range(scale):
    b, x = start([2, 29], scale=scale)
    with pytest.raises(UnsupportedError, match="integer log-softmax needs an input scale from about 2\\^-24 to 8"):
        check_qdq(finish(b, b.node("LogSoftmax", [x], axis=-1), [2, 29], scale=0.1, zero_point=127))


def test_layer_norm():
    b, x = start([2, 3, 16])
    gamma = b.const((1 + np.random.default_rng(4).standard_normal(16) * 0.2).astype(np.float32))
    beta = b.const((np.random.default_rng(5).standard_normal(16) * 0.2).astype(np.float32))
    y = b.node("LayerNormalization", [x, gamma, beta], axis=-1)
    graph, _ = check_qdq(finish(b, y, [2, 3, 16], scale=0.03, zero_point=1))
    assert ops(graph) == ["QLayerNorm"]


def test_matmul_of_a_vector_and_an_activation_is_refused():
    b, x = start([8])
    _, w = start([8, 5], name="w", b=b)
    with pytest.raises(UnsupportedError, match="MatMul node 'matmul_.*1-D operand"):
        check_qdq(finish(b, b.node("MatMul", [x, w]), [5]))
