"""quantize on float graphs: calibrated on sample inputs, each lowering rule gives
a valid integer graph with the model's interface whose dequantized outputs stay
within a few output LSB of the float graph on those samples."""

from __future__ import annotations

import numpy as np
import pytest

from nnc.ops.pool import pooled_size

from nnc.quantizer.weights import quantize_weights
from qmodels import Builder, check_float, ops

WEIGHTS = np.random.default_rng(23)  # this file's own weights: the same whatever ran before it


def randn(*shape, scale=1.0) -> np.ndarray:
    return (WEIGHTS.standard_normal(shape) * scale).astype(np.float32)


def samples(count: int = 4, scale: float = 1.0, **shapes) -> list[dict]:
    """Normal samples from a generator of their own: the same data whatever ran before."""
    rng = np.random.default_rng(11)
    return [{name: (rng.standard_normal(shape) * scale).astype(np.float32) for name, shape in shapes.items()}
            for _ in range(count)]


def single(op: str, shape, out_shape=None, inputs=("x",), consts=(), **attrs):
    b = Builder()
    names = [b.input(n, shape) for n in inputs] + [b.const(c) for c in consts]
    b.node(op, names, "y", **attrs)
    b.output("y", out_shape or shape)
    return b.model()


# -- multiply-accumulate layers --------------------------------------------------------
@pytest.mark.parametrize("group, act", [(1, "Relu"), (4, None)])
def test_conv(tmp_path, group, act):
    b = Builder()
    x = b.input("x", [1, 4, 8, 8])
    conv = b.node("Conv", [x, b.const(randn(6 if group == 1 else 4, 4 // group, 3, 3)),
                           b.const(randn(6 if group == 1 else 4))], group=group, pads=[1, 1, 1, 1])
    b.node(act or "Identity", [conv], "y")
    b.output("y", [1, 6 if group == 1 else 4, 8, 8])
    graph, _ = check_float(b.model(), tmp_path, samples(x=(1, 4, 8, 8)))
    assert "QConv" in ops(graph) and ops(graph)[0] == "QuantizeLinear" and ops(graph)[-1] == "DequantizeLinear"


def test_conv_weights_are_symmetric_per_channel(tmp_path):
    b = Builder()
    w = randn(3, 2, 1, 1)
    w[1] = 0.0  # an all-zero channel gets scale 1
    b.node("Conv", [b.input("x", [1, 2, 4, 4]), b.const(w), b.const(randn(3))], "y")
    b.output("y", [1, 3, 4, 4])
    graph, _ = check_float(b.model(), tmp_path, samples(x=(1, 2, 4, 4)))
    (conv,) = [n for n in graph.nodes() if n.op == "QConv"]
    weights = graph.tensor(conv.inputs[1])
    q, s = quantize_weights(w, 0)
    assert np.array_equal(weights.data, q) and weights.quant.scale == tuple(map(float, s))
    assert np.abs(weights.data).max() == 127 and weights.quant.scale[1] == 1.0
    x_scale = graph.tensor(conv.inputs[0]).quant.scale[0]
    assert graph.tensor(conv.inputs[2]).quant.scale == pytest.approx([x_scale * v for v in s], rel=1e-6)


def test_gemm_folds_alpha_and_beta(tmp_path):
    b = Builder()
    b.node("Gemm", [b.input("x", [2, 8]), b.const(randn(5, 8)), b.const(randn(5))], "y",
           transB=1, alpha=0.5, beta=2.0)
    b.output("y", [2, 5])
    graph, _ = check_float(b.model(), tmp_path, samples(x=(2, 8)))
    assert ops(graph) == ["QuantizeLinear", "QGemm", "DequantizeLinear"]


def test_matmul_with_constant_weights(tmp_path):
    model = single("MatMul", [3, 8], [3, 4], consts=[randn(8, 4)])
    graph, _ = check_float(model, tmp_path, samples(x=(3, 8)))
    assert "QGemm" in ops(graph)


# -- element-wise -------------------------------------------------------------------
def test_add_with_relu(tmp_path):
    b = Builder()
    b.node("Relu", [b.node("Add", [b.input("a", [1, 16]), b.input("b", [1, 16])])], "y")
    b.output("y", [1, 16])
    data = [{"a": randn(1, 16), "b": randn(1, 16, scale=3)} for _ in range(4)]
    graph, _ = check_float(b.model(), tmp_path, data)
    (add,) = [n for n in graph.nodes() if n.op == "QAdd"]
    assert add.attrs.out_min == add.attrs.y_zero_point  # Relu folded: Q(0)


@pytest.mark.parametrize("op, attrs", [("Sigmoid", {}), ("Tanh", {}), ("HardSwish", {}),
                                       ("HardSigmoid", {"alpha": 0.25, "beta": 0.4}), ("LeakyRelu", {"alpha": 0.2})])
def test_lookup_table_ops(tmp_path, op, attrs):
    graph, _ = check_float(single(op, [2, 32], **attrs), tmp_path, samples(x=(2, 32), scale=2.0))
    assert "QLut" in ops(graph)


def test_softmax_output_has_fixed_parameters(tmp_path):
    graph, _ = check_float(single("Softmax", [2, 10], axis=-1), tmp_path, samples(x=(2, 10)))
    (softmax,) = [n for n in graph.nodes() if n.op == "QSoftmax"]
    assert graph.tensor(softmax.outputs[0]).quant.scale == (1 / 256,)
    assert graph.tensor(softmax.outputs[0]).quant.zero_point == (-128,)


@pytest.mark.parametrize("op, attrs, expected", [("Relu", {}, "Clip"), ("Clip", {}, "Clip")])
def test_standalone_clamps_become_integer_clips(tmp_path, op, attrs, expected):
    consts = [np.float32(-0.5), np.float32(0.75)] if op == "Clip" else []
    graph, _ = check_float(single(op, [1, 64], consts=consts), tmp_path, samples(x=(1, 64)))
    assert expected in ops(graph)


# -- pooling and data movement --------------------------------------------------------------
@pytest.mark.parametrize("op, attrs, out", [
    ("AveragePool", {"kernel_shape": [2, 2], "strides": [2, 2]}, [1, 3, 3, 3]),
    ("AveragePool", {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1], "count_include_pad": 1}, [1, 3, 6, 6]),
    ("GlobalAveragePool", {}, [1, 3, 1, 1]),
    ("MaxPool", {"kernel_shape": [2, 2], "strides": [2, 2]}, [1, 3, 3, 3]),
])
def test_pooling(tmp_path, op, attrs, out):
    graph, _ = check_float(single(op, [1, 3, 6, 6], out, **attrs), tmp_path, samples(x=(1, 3, 6, 6)))
    assert ("QAveragePool" if "Average" in op else "MaxPool") in ops(graph)
    assert "Requantize" not in ops(graph)


@pytest.mark.parametrize("attrs", [
    {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]},
    {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]},
    {"kernel_shape": [2, 2], "strides": [2, 2], "ceil_mode": 1},
    {"kernel_shape": [3, 2], "strides": [2, 3], "pads": [0, 1, 1, 0], "ceil_mode": 1},
])
def test_average_pool_not_counting_its_padding_is_a_uniform_pool_times_a_constant(tmp_path, attrs):
    """count_include_pad=0 with padding, or ceil_mode windows past the input:
    a QAveragePool over uniform windows and a QMul by K / count (quantizer/
    average_pool.py); it was refused."""
    shape = [1, 3, 7, 7]
    pads, strides = attrs.get("pads", [0] * 4), attrs.get("strides", [1, 1])
    out = [pooled_size(shape[2 + a], attrs["kernel_shape"][a], strides[a], 1, pads[a], pads[a + 2],
                       bool(attrs.get("ceil_mode"))) for a in range(2)]
    model = single("AveragePool", shape, shape[:2] + out, **attrs)
    graph, _ = check_float(model, tmp_path, samples(x=tuple(shape)))
    assert "QAveragePool" in ops(graph) and "QMul" in ops(graph)


def test_reshape_transpose_pad_share_parameters(tmp_path):
    b = Builder()
    r = b.node("Reshape", [b.input("x", [2, 6]), b.const(np.array([2, 3, 2], np.int64))])
    t = b.node("Transpose", [r], perm=[0, 2, 1])
    b.node("Pad", [t, b.const(np.array([0, 1, 0, 0, 1, 0], np.int64))], "y")
    b.output("y", [2, 4, 3])
    graph, _ = check_float(b.model(), tmp_path, samples(x=(2, 6)), lsb=0.5)
    assert sorted(ops(graph)) == ["DequantizeLinear", "Pad", "QuantizeLinear", "Reshape", "Transpose"]


def test_concat_of_differing_ranges(tmp_path):
    b = Builder()
    b.node("Concat", [b.input("a", [1, 4]), b.input("b", [1, 6])], "y", axis=1)
    b.output("y", [1, 10])
    data = [{"a": randn(1, 4, scale=0.1), "b": randn(1, 6, scale=4)} for _ in range(4)]
    graph, _ = check_float(b.model(), tmp_path, data)
    assert "Requantize" in ops(graph) and "Concat" in ops(graph)


@pytest.mark.parametrize("first", [True, False])
def test_concat_of_a_constant_token(tmp_path, first):
    """A ViT's class token: a float constant concatenated with an activation is
    quantized to the output's parameters (it was refused as "not a dequantized
    8-bit tensor")."""
    b = Builder()
    token, x = b.const(randn(1, 1, 8, scale=2.0)), b.input("x", [1, 4, 8])
    b.node("Concat", [token, x] if first else [x, token], "y", axis=1)
    b.output("y", [1, 5, 8])
    graph, _ = check_float(b.model(), tmp_path, [{"x": randn(1, 4, 8)} for _ in range(4)])
    assert "Concat" in ops(graph)


@pytest.mark.parametrize("observer", ["minmax", "percentile", "mse"])
def test_small_cnn_with_each_observer(tmp_path, observer):
    b = Builder()
    x = b.input("x", [1, 3, 8, 8])
    w1, w2, w3 = randn(8, 3, 3, 3, scale=0.27), randn(8, 8, 1, 1, scale=0.5), randn(8, 4, scale=0.5)  # He init
    c1 = b.node("Relu", [b.node("Conv", [x, b.const(w1), b.const(randn(8))], pads=[1, 1, 1, 1])])
    c2 = b.node("Conv", [c1, b.const(w2), b.const(randn(8))])
    s = b.node("Relu", [b.node("Add", [c1, c2])])
    p = b.node("Reshape", [b.node("GlobalAveragePool", [s]), b.const(np.array([1, 8], np.int64))])
    b.node("Softmax", [b.node("Gemm", [p, b.const(w3), b.const(randn(4, scale=0.1))])], "y")
    b.output("y", [1, 4])
    check_float(b.model(), tmp_path, samples(8, x=(1, 3, 8, 8)), lsb=4, options=f"observer={observer}")
