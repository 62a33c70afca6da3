"""Float ops through the C target (models compiled with --no-quantize): built
strict and sanitized with gcc and clang, within FLOAT_PARITY of the reference."""

from __future__ import annotations

import numpy as np
import pytest
from c_testing import GraphBuilder, check_graph, single_op

from nnc.errors import UnsupportedError
from nnc.ops.conv import ConvAttrs
from nnc.ops.elementwise import AlphaAttrs, ClipAttrs, HardSigmoidAttrs
from nnc.ops.gemm import GemmAttrs
from nnc.ops.normalization import BatchNormAttrs
from nnc.ops.pool import AveragePoolAttrs, GlobalPoolAttrs, PoolAttrs
from nnc.ops.resize import ResizeAttrs
from nnc.ops.softmax import SoftmaxAttrs

RNG = np.random.default_rng(11)


def randn(*shape) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def conv_graph(x_shape, cout, kernel, group=1, strides=None, pads=None, dilations=None, act=(None, None),
               bias=True, channels_last=True):
    nd = len(kernel)
    cin = x_shape[-1] if channels_last else x_shape[1]
    attrs = ConvAttrs(tuple(kernel), strides or (1,) * nd, pads or (0,) * (2 * nd), dilations or (1,) * nd,
                      group, channels_last, *act)
    return single_op("Conv", attrs, [("x", ("f32", x_shape)), ("w", randn(cout, cin // group, *kernel)),
                                     ("b", randn(cout)) if bias else ("", None)], name="conv")


@pytest.mark.parametrize("case", [
    dict(x_shape=(1, 6, 5, 3), cout=4, kernel=(3, 3), pads=(1, 1, 1, 1)),
    dict(x_shape=(2, 7, 6, 3), cout=5, kernel=(3, 2), strides=(2, 1), pads=(1, 0, 2, 1), act=(0.0, 6.0)),
    dict(x_shape=(1, 7, 7, 2), cout=3, kernel=(2, 2), dilations=(2, 3), bias=False),
    dict(x_shape=(1, 5, 5, 4), cout=6, kernel=(3, 3), group=2, pads=(1, 1, 1, 1)),
    dict(x_shape=(1, 6, 6, 4), cout=8, kernel=(3, 3), group=4, pads=(1, 1, 1, 1), act=(0.0, None)),
    dict(x_shape=(1, 9, 3), cout=4, kernel=(3,), pads=(1, 1)),
], ids=["basic", "strided-relu6-batch2", "dilated-nobias", "grouped", "depthwise-mult2", "conv1d"])
def test_conv(case, tmp_path):
    check_graph(conv_graph(**case), tmp_path)


@pytest.mark.parametrize("trans_a,trans_b,c_shape,const_b", [
    (False, False, (3,), True), (True, True, (2, 3), True), (False, True, (2, 1), False), (False, False, None, False),
])
def test_gemm(trans_a, trans_b, c_shape, const_b, tmp_path):
    m, k, n = 2, 5, 3
    a_shape = (k, m) if trans_a else (m, k)
    b_shape = (n, k) if trans_b else (k, n)
    attrs = GemmAttrs(0.5, 2.0, trans_a, trans_b, -1.0, None)
    inputs = [("a", ("f32", a_shape)), ("b", randn(*b_shape) if const_b else ("f32", b_shape)),
              ("c", randn(*c_shape)) if c_shape else ("", None)]
    check_graph(single_op("Gemm", attrs, inputs), tmp_path)


@pytest.mark.parametrize("a_shape,b_shape,const_b", [
    ((3, 4), (4, 5), True), ((2, 3, 4), (4, 5), True), ((2, 3, 4), (2, 4, 5), False), ((4,), (4, 5), True),
    ((2, 3, 4), (4,), False),
])
def test_matmul(a_shape, b_shape, const_b, tmp_path):
    inputs = [("a", ("f32", a_shape)), ("b", randn(*b_shape) if const_b else ("f32", b_shape))]
    check_graph(single_op("MatMul", None, inputs), tmp_path)


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div", "PRelu"])
def test_binary_broadcast(op, tmp_path):
    b_shape = (3,) if op == "PRelu" else (2, 1, 3)
    graph = single_op(op, None, [("a", ("f32", (2, 4, 3))), ("b", ("f32", b_shape))])
    samples = [{"a": randn(2, 4, 3), "b": randn(*b_shape) + (3.0 if op == "Div" else 0.0)} for _ in range(2)]
    check_graph(graph, tmp_path, samples)


@pytest.mark.parametrize("op,attrs", [
    ("Relu", None), ("Clip", ClipAttrs(-0.5, 0.75)), ("Clip", ClipAttrs(None, 0.25)), ("LeakyRelu", AlphaAttrs(0.1)), ("ThresholdedRelu", AlphaAttrs(0.3)),
    ("Sigmoid", None), ("Tanh", None), ("HardSigmoid", HardSigmoidAttrs(0.3, 0.4)), ("HardSwish", None),
])
def test_unary(op, attrs, tmp_path):
    graph = single_op(op, attrs, [("x", ("f32", (3, 40)))])
    check_graph(graph, tmp_path, [{"x": randn(3, 40) * 4}])


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
@pytest.mark.parametrize("shape,axis,coerce", [((2, 10), 1, False), ((2, 3, 4), 1, False), ((2, 3, 4), 1, True)])
def test_softmax(op, shape, axis, coerce, tmp_path):
    check_graph(single_op(op, SoftmaxAttrs(axis, coerce), [("x", ("f32", shape))]), tmp_path)


def test_log_softmax_of_widely_spread_logits(tmp_path):
    """Logits spread over hundreds: most probabilities underflow float32, yet
    x - max - log(sum exp(x - max)) keeps every log probability finite and close."""
    graph = single_op("LogSoftmax", SoftmaxAttrs(2), [("x", ("f32", (2, 3, 50)))])
    samples = [{"x": randn(2, 3, 50) * 100}, {"x": randn(2, 3, 50) * 1e-3 + 7}]
    check_graph(graph, tmp_path, samples)


@pytest.mark.parametrize("channels_last", [True, False])
def test_batch_normalization(channels_last, tmp_path):
    shape = (1, 3, 4, 5) if channels_last else (1, 5, 3, 4)
    stats = [randn(5), randn(5), randn(5), np.abs(randn(5)) + 0.5]
    graph = single_op("BatchNormalization", BatchNormAttrs(1e-3, channels_last),
                      [("x", ("f32", shape)), *zip(("g", "b", "m", "v"), stats)])
    check_graph(graph, tmp_path)


@pytest.mark.parametrize("channels_last", [True, False])
def test_pools(channels_last, tmp_path):
    shape = (1, 7, 6, 3) if channels_last else (1, 3, 7, 6)
    b = GraphBuilder("pools")
    x = b.input("x", "f32", shape)
    outs = [
        b.op("MaxPool", [x], PoolAttrs((3, 3), (2, 2), (1, 1, 1, 1), (1, 1), True, channels_last)),
        b.op("MaxPool", [x], PoolAttrs((2, 2), (1, 2), (0, 0, 0, 0), (2, 1), False, channels_last)),
        b.op("AveragePool", [x], AveragePoolAttrs((3, 3), (2, 2), (1, 1, 1, 1), (1, 1), True, channels_last,
                                                  count_include_pad=False)),
        b.op("AveragePool", [x], AveragePoolAttrs((3, 2), (2, 2), (1, 0, 1, 1), (1, 1), True, channels_last,
                                                  count_include_pad=True)),
        b.op("GlobalAveragePool", [x], GlobalPoolAttrs(channels_last)),
        b.op("GlobalMaxPool", [x], GlobalPoolAttrs(channels_last)),
    ]
    check_graph(b.output(*outs), tmp_path)


def test_unsupported_ops_are_listed_together(tmp_path):
    from c_testing import emit

    b = GraphBuilder("bad")
    x = b.input("x", "f32", (1, 2, 5, 5))
    y = b.op("Conv", [x, b.const("w", randn(3, 2, 3, 3)), ""], ConvAttrs((3, 3), (1, 1), (0,) * 4, (1, 1)),
             name="nchw conv")
    z = b.op("ConvTranspose", [y, b.const("wt", randn(3, 2, 2, 2)), ""], ConvAttrs((2, 2), (1, 1), (0,) * 4, (1, 1)),
             name="deconv")
    with pytest.raises(UnsupportedError) as info:
        emit(b.output(z), tmp_path)
    message = str(info.value)
    assert "2 node(s)" in message and "'nchw conv'" in message and "channels-last" in message
    assert "'deconv'" in message and "ConvTranspose" in message


@pytest.mark.parametrize("shape, attrs", [
    ((1, 2, 4, 5), ResizeAttrs((8, 7), (2.0, 1.4), "linear")),
    ((1, 4, 5, 3), ResizeAttrs((6, 10), (1.5, 2.0), "linear", "align_corners", channels_last=True)),
    ((2, 3, 6), ResizeAttrs((11,), (1.75,), "linear", "asymmetric")),
    ((1, 2, 9, 8), ResizeAttrs((4, 3), (0.5, 0.375), "linear", "pytorch_half_pixel")),
], ids=["bilinear-up", "align-corners-channels-last", "1d-asymmetric", "downsample"])
def test_linear_resize(shape, attrs, tmp_path):
    """Float linear Resize (it had no C kernel: `--no-quantize` refused a YOLO or U-Net upsampler)."""
    check_graph(single_op("Resize", attrs, [("x", ("f32", shape))], name="resize"), tmp_path)
