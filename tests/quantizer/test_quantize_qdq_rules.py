"""quantize on QDQ graphs: each lowering rule keeps the model's scales, zero
points, int8 weights and int32 biases, and its integer graph agrees with
onnxruntime (graph optimizations off, i.e. plain dequantize → float op →
quantize) within 1 LSB (docs/numerics.md §10)."""

from __future__ import annotations

import numpy as np
import pytest

from nnc.interpreter import run
from qmodels import Builder, check_qdq, ops, ort_outputs, quantized, rand_int8

SX, ZX = 0.05, 3  # input activation parameters


def start(shape, scale=SX, zero_point=ZX):
    b = Builder()
    return b, b.dq(b.input("x", shape, np.int8), scale, zero_point)


def finish(b: Builder, y: str, shape, scale=0.1, zero_point=-5):
    b.q(y, scale, zero_point, output="y")
    b.output("y", shape, np.int8)
    return b.model()


def conv_weights(b: Builder, cout: int, cin: int, k: int, bias: bool = True):
    w = rand_int8(cout, cin, k, k).clip(-127, 127)
    sw = np.random.default_rng(1).uniform(0.002, 0.02, cout).astype(np.float32)
    inputs = [b.weights(w, sw, axis=0)]
    if bias:
        q = np.random.default_rng(2).integers(-2000, 2000, cout)
        inputs.append(b.bias(q, np.float32(SX) * sw))
    return inputs, w


# -- multiply-accumulate layers --------------------------------------------------------
def test_conv_keeps_weights_scales_and_fuses_relu():
    b, x = start([1, 3, 8, 8])
    (w, bias), wq = conv_weights(b, 4, 3, 3)
    y = b.node("Relu", [b.node("Conv", [x, w, bias], pads=[1, 1, 1, 1], strides=[2, 2])])
    graph, _ = check_qdq(finish(b, y, [1, 4, 4, 4]))
    (conv,) = [n for n in graph.nodes() if n.op == "QConv"]
    assert conv.attrs.out_min == -5 and conv.attrs.y_zero_point == -5  # Relu: Q(0) = zero point
    assert np.array_equal(graph.tensor(conv.inputs[1]).data, wq)
    assert graph.tensor(conv.outputs[0]).quant.scale == (np.float32(0.1).item(),)
    assert graph.tensor(conv.inputs[1]).quant.axis == 0


def test_depthwise_conv_with_relu6_clip():
    b, x = start([1, 4, 6, 6])
    (w, bias), _ = conv_weights(b, 4, 1, 3)
    conv = b.node("Conv", [x, w, bias], group=4, pads=[1, 1, 1, 1])
    y = b.node("Clip", [conv, b.const(np.float32(0)), b.const(np.float32(6))])
    graph, _ = check_qdq(finish(b, y, [1, 4, 6, 6], scale=6 / 255, zero_point=-128))
    (conv,) = [n for n in graph.nodes() if n.op == "QConv"]
    assert (conv.attrs.group, conv.attrs.out_min, conv.attrs.out_max) == (4, -128, 127)


def test_bias_at_another_scale_is_requantized():
    b, x = start([1, 2, 5, 5])
    w = rand_int8(3, 2, 3, 3).clip(-127, 127)
    sw = np.full(3, 0.01, np.float32)
    bias = b.bias(np.array([100, -300, 51]), np.float32(2 * SX * 0.01))
    y = b.node("Conv", [x, b.weights(w, sw), bias])
    graph, _ = check_qdq(finish(b, y, [1, 3, 3, 3]))
    (conv,) = [n for n in graph.nodes() if n.op == "QConv"]
    assert list(graph.tensor(conv.inputs[2]).data) == [200, -600, 102]


def test_gemm_with_per_tensor_weights():
    b, x = start([2, 16])
    w = rand_int8(5, 16).clip(-127, 127)
    y = b.node("Gemm", [x, b.weights(w, np.float32(0.01)), b.bias(np.arange(5) * 40, np.float32(SX * 0.01))],
               transB=1)
    graph, _ = check_qdq(finish(b, y, [2, 5]))
    assert ops(graph) == ["QGemm"]


def test_matmul_add_becomes_qgemm_with_per_channel_weights():
    b, x = start([1, 12])
    w = rand_int8(12, 6).clip(-127, 127)
    sw = np.linspace(0.005, 0.02, 6).astype(np.float32)
    mm = b.node("MatMul", [x, b.weights(w, sw, axis=1)])
    y = b.node("Add", [mm, b.bias(np.arange(6) * 100 - 300, np.float32(SX) * sw)])
    graph, _ = check_qdq(finish(b, y, [1, 6]))
    (gemm,) = graph.nodes()
    assert gemm.op == "QGemm" and np.array_equal(graph.tensor(gemm.inputs[1]).data, w.T)


def test_matmul_without_bias():
    b, x = start([3, 8])
    y = b.node("MatMul", [x, b.weights(rand_int8(8, 4).clip(-127, 127), np.float32(0.02))])
    graph, _ = check_qdq(finish(b, y, [3, 4]))
    assert ops(graph) == ["QGemm"] and graph.nodes()[0].inputs[2] == ""


# -- element-wise -------------------------------------------------------------------
def test_add_of_two_activations_with_relu():
    b = Builder()
    xa = b.dq(b.input("a", [1, 4, 4, 3], np.int8), 0.03, -10)
    xb = b.dq(b.input("b", [1, 4, 4, 3], np.int8), 0.07, 20)
    y = b.node("Relu", [b.node("Add", [xa, xb])])
    graph, _ = check_qdq(finish(b, y, [1, 4, 4, 3], scale=0.06, zero_point=-128))
    (add,) = graph.nodes()
    assert add.op == "QAdd" and add.attrs.out_min == -128 and add.attrs.shift <= 53


@pytest.mark.parametrize("op, attrs, out", [
    ("Sigmoid", {}, (1 / 256, -128)),
    ("Tanh", {}, (1 / 128, 0)),
    ("HardSwish", {}, (0.04, -20)),
    ("HardSigmoid", {"alpha": 0.3}, (1 / 256, -128)),
    ("LeakyRelu", {"alpha": 0.1}, (0.05, 0)),
])
def test_unary_functions_become_lookup_tables(op, attrs, out):
    b, x = start([2, 3, 5], scale=0.04, zero_point=-7)
    graph, _ = check_qdq(finish(b, b.node(op, [x], **attrs), [2, 3, 5], *out), samples=2)
    assert ops(graph) == ["QLut"]


def test_softmax_last_axis():
    b, x = start([2, 10], scale=0.1, zero_point=0)
    graph, _ = check_qdq(finish(b, b.node("Softmax", [x], axis=-1), [2, 10], 1 / 256, -128), samples=8)
    assert ops(graph) == ["QSoftmax"]


def test_layer_norm_with_quantized_scale_and_bias():
    """onnxruntime's quantize_static writes LayerNormalization's γ and β as
    DequantizeLinear of integer constants (β here with a zero point), a tied
    γ as Identity → QuantizeLinear → DequantizeLinear of the first: the rule
    reads their real values."""
    b, x = start([1, 6, 16], scale=0.1, zero_point=0)
    gamma = b.dq(b.const(np.random.default_rng(3).integers(60, 127, 16).astype(np.int8)), 0.01, 0)
    beta = b.dq(b.const(np.random.default_rng(4).integers(-100, 100, 16).astype(np.int8)), 0.005, 7)
    first = b.q(b.node("LayerNormalization", [x, gamma, beta], axis=-1), 0.02, 0)
    # a second norm tied to the first's γ, as the exporter writes it: Identity, then quantized again
    tied = b.dq(b.q(b.node("Identity", [gamma]), 0.01, 0), 0.01, 0)
    y = b.node("LayerNormalization", [b.dq(first, 0.02, 0), tied, beta], axis=-1)
    graph, _ = check_qdq(finish(b, y, [1, 6, 16], scale=0.02, zero_point=0))
    assert ops(graph) == ["QLayerNorm", "QLayerNorm"]


@pytest.mark.parametrize("out, expected", [((SX, ZX), "Clip"), ((0.02, -128), "Requantize")])
def test_standalone_relu(out, expected):
    b, x = start([1, 20])
    graph, _ = check_qdq(finish(b, b.node("Relu", [x]), [1, 20], *out))
    assert ops(graph) == [expected] and graph.nodes()[0].attrs is not None


# -- pooling ------------------------------------------------------------------------
def test_average_pool():
    b, x = start([1, 3, 6, 6])
    y = b.node("AveragePool", [x], kernel_shape=[2, 2], strides=[2, 2])
    graph, _ = check_qdq(finish(b, y, [1, 3, 3, 3], SX, ZX))
    assert "QAveragePool" in ops(graph)


def test_average_pool_counting_padding():
    b, x = start([1, 2, 5, 5])
    y = b.node("AveragePool", [x], kernel_shape=[3, 3], pads=[1, 1, 1, 1], count_include_pad=1)
    check_qdq(finish(b, y, [1, 2, 5, 5], 0.03, 0))


def test_global_average_pool():
    b, x = start([1, 4, 5, 3])
    check_qdq(finish(b, b.node("GlobalAveragePool", [x]), [1, 4, 1, 1], 0.02, 2))


@pytest.mark.parametrize("out, rescale", [((SX, ZX), None), ((0.08, -20), "Requantize")])
def test_max_pool(out, rescale):
    b, x = start([1, 2, 6, 6])
    y = b.node("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    graph, worst = check_qdq(finish(b, y, [1, 2, 3, 3], *out))
    assert ("Requantize" in ops(graph)) == (rescale is not None)
    if rescale is None:
        assert worst == 0


# -- data movement --------------------------------------------------------------------
def test_float_reshape_and_transpose_run_on_int8():
    b, x = start([1, 2, 3, 4])
    r = b.node("Reshape", [x, b.const(np.array([1, 6, 4], np.int64))])
    y = b.node("Transpose", [r], perm=[0, 2, 1])
    graph, worst = check_qdq(finish(b, y, [1, 4, 6], SX, ZX))
    assert worst == 0 and all(graph.tensor(n.outputs[0]).dtype == "i8" for n in graph.nodes())


def test_concat_requantizes_differing_inputs():
    b = Builder()
    xa = b.dq(b.input("a", [1, 3], np.int8), 0.02, 0)
    xb = b.dq(b.input("b", [1, 5], np.int8), 0.1, 7)
    graph, _ = check_qdq(finish(b, b.node("Concat", [xa, xb], axis=1), [1, 8], 0.1, 7))
    assert ops(graph).count("Requantize") == 1 and "Concat" in ops(graph)


def test_pad_fills_with_the_zero_point():
    b, x = start([1, 2, 3, 3])
    y = b.node("Pad", [x, b.const(np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64))])
    graph, worst = check_qdq(finish(b, y, [1, 2, 5, 5], SX, ZX))
    (pad,) = [n for n in graph.nodes() if n.op == "Pad"]
    assert pad.attrs.value == ZX and worst == 0


# -- interfaces -----------------------------------------------------------------------
def test_uint8_activations():
    b = Builder()
    x = b.dq(b.input("x", [1, 3, 6, 6], np.uint8), 0.05, np.uint8(128))
    (w, bias), _ = conv_weights(b, 4, 3, 3)
    b.node("QuantizeLinear", [b.node("Conv", [x, w, bias]), b.const(np.float32(0.1)), b.const(np.uint8(100))], "y")
    b.output("y", [1, 4, 4, 4], np.uint8)
    model = b.model()
    _, result = quantized(model)
    feeds = {"x": np.random.default_rng(3).integers(0, 256, (1, 3, 6, 6)).astype(np.uint8)}
    got, (want,) = run(result, feeds)["y"], ort_outputs(model, feeds)
    assert got.dtype == np.uint8 and np.max(np.abs(got.astype(int) - want.astype(int))) <= 1


def test_float_interface_keeps_its_quantize_and_dequantize():
    """The usual onnxruntime-quantized form: float input → Q → DQ → op → Q → DQ → float output."""
    b = Builder()
    x = b.dq(b.q(b.input("x", [1, 16]), 0.02, -3), 0.02, -3)
    w = b.weights(rand_int8(16, 8).clip(-127, 127), np.full(8, 0.01, np.float32), axis=1)
    b.dq(b.q(b.node("MatMul", [x, w]), 0.05, 4), 0.05, 4, output="y")
    b.output("y", [1, 8])
    model = b.model()
    _, result = quantized(model)
    assert ops(result) == ["QuantizeLinear", "QGemm", "DequantizeLinear"]
    feeds = {"x": np.random.default_rng(4).standard_normal((1, 16)).astype(np.float32)}
    got, (want,) = run(result, feeds)["y"], ort_outputs(model, feeds)
    assert np.max(np.abs(got - want)) <= 0.05 * 1.0001
