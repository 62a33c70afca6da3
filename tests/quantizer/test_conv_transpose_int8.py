"""ConvTranspose in int8: the phase-Conv rewrite (quantizer/conv_transpose.py)
equals onnxruntime in float for every geometry and costs no more MACs than the
direct ConvTranspose for stride-2 2×2 kernels; small models with ConvTranspose
compile for ir, c and az-sim bit-exact with int8 cosine >= 0.99, and QDQ ones
agree with onnxruntime within 1 LSB."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from e2e import compile_everywhere
from onnx import helper
from qmodels import Builder, canonical, check_qdq, ops, ort_outputs, randn

from nnc.interpreter import run
from nnc.ir import TensorType
from nnc.ops import get_op
from nnc.quantizer.conv_transpose import axis_plan, phase_weights, rewrite_conv_transposes

RNG = np.random.default_rng(11)

GEOMETRIES = [  # x shape, w shape, attributes
    ([1, 3, 5, 5], [3, 4, 3, 3], dict(strides=[2, 2], pads=[1, 1, 1, 1], output_padding=[1, 1])),
    ([1, 4, 5, 6], [4, 2, 3, 2], dict(strides=[2, 3], pads=[0, 1, 2, 0], dilations=[2, 1], group=2)),
    ([2, 3, 7], [3, 5, 4], dict(strides=[3], pads=[4, 5])),
    ([1, 2, 6], [2, 3, 3], dict(strides=[2], output_padding=[1], dilations=[2])),
    ([1, 2, 4, 4], [2, 3, 3, 3], {}),
    ([1, 6, 4, 4], [6, 1, 3, 3], dict(group=6, strides=[2, 2], pads=[1, 1, 1, 1])),
    ([1, 2, 3, 3], [2, 2, 2, 2], dict(strides=[2, 2], auto_pad="SAME_UPPER")),
]


def _model(x_shape, w_shape, attrs, relu=False):
    b = Builder()
    x = b.input("x", x_shape)
    bias = b.const(randn(w_shape[1] * attrs.get("group", 1)))
    y = b.node("ConvTranspose", [x, b.const(randn(*w_shape)), bias], None if relu else "y", **attrs)
    if relu:
        b.node("Relu", [y], "y")
    model = b.model()
    model.graph.output.append(helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None))
    return onnx.shape_inference.infer_shapes(model)


@pytest.mark.parametrize("x_shape, w_shape, attrs", GEOMETRIES)
def test_phase_conv_equals_onnxruntime(x_shape, w_shape, attrs):
    model = _model(x_shape, w_shape, attrs)
    graph = canonical(model)
    rewrite_conv_transposes(graph)
    assert "ConvTranspose" not in ops(graph) and "Conv" in ops(graph)
    x = RNG.standard_normal(x_shape).astype(np.float32)
    (want,) = ort_outputs(model, {"x": x})
    np.testing.assert_allclose(run(graph, {"x": x})["y"], want, rtol=1e-5, atol=1e-5)


def test_phase_plan_of_a_pytorch_upsampling_layer():
    """kernel 3, stride 2, padding 1, output_padding 1: phase 0 reads tap 1 at
    offset 0, phase 1 taps 2 and 0 at offsets 0 and 1; 5 positions per phase."""
    plan = axis_plan(5, 3, 2, 1, 1, 0)
    assert (plan.out, plan.phases, plan.begin, plan.end) == (10, 5, 0, 1)
    assert plan.select.tolist() == [[[0, 1, 0], [0, 0, 0]], [[0, 0, 1], [1, 0, 0]]]
    w = np.arange(2 * 3 * 3).reshape(2, 3, 3)  # [Cin, Cout, K], one group
    phased = phase_weights(w, 1, [plan])
    assert phased.shape == (6, 2, 2)  # channels (phase, m), window 2
    assert phased[4].tolist() == [[w[0, 1, 2], w[0, 1, 0]], [w[1, 1, 2], w[1, 1, 0]]]  # phase 1, m = 1


def test_stride_two_kernel_two_costs_no_extra_macs():
    model = _model([1, 4, 6, 6], [4, 3, 2, 2], dict(strides=[2, 2]))
    graph = canonical(model)
    direct = sum(get_op(n.op).macs(n.attrs, *_types(graph, n)) for n in graph.nodes())
    rewrite_conv_transposes(graph)
    conv = [n for n in graph.nodes() if n.op == "Conv"]
    assert len(conv) == 1 and get_op("Conv").macs(conv[0].attrs, *_types(graph, conv[0])) == direct


def _types(graph, node):
    typ = [None if not t else TensorType(graph.tensor(t).dtype, graph.tensor(t).shape) for t in node.inputs]
    return typ, [TensorType(graph.tensor(t).dtype, graph.tensor(t).shape) for t in node.outputs]


@pytest.mark.parametrize("x_shape, w_shape, attrs", [GEOMETRIES[i] for i in (0, 1, 2, 3, 5)])
def test_int8_everywhere(tmp_path, x_shape, w_shape, attrs):
    model = _model(x_shape, w_shape, attrs, relu=True)
    samples = {"x": RNG.standard_normal((4, *x_shape)).astype(np.float32)}
    reports = compile_everywhere(model, tmp_path, samples)
    assert reports["c"]["verification"]["vs_float"]["cosine"] >= 0.99


def _unet():
    """Conv → pool → Conv → ConvTranspose(stride 2) → Concat with the skip → Conv → Sigmoid."""
    b = Builder()
    x = b.input("x", [1, 3, 16, 16])
    e1 = b.node("Relu", [b.node("Conv", [x, b.const(randn(8, 3, 3, 3, scale=0.3)), b.const(randn(8, scale=0.1))],
                                pads=[1, 1, 1, 1])])
    p = b.node("MaxPool", [e1], kernel_shape=[2, 2], strides=[2, 2])
    e2 = b.node("Relu", [b.node("Conv", [p, b.const(randn(16, 8, 3, 3, scale=0.2)), b.const(randn(16, scale=0.1))],
                                pads=[1, 1, 1, 1])])
    up = b.node("Relu", [b.node("ConvTranspose", [e2, b.const(randn(16, 8, 2, 2, scale=0.2)),
                                                  b.const(randn(8, scale=0.1))], strides=[2, 2])])
    cat = b.node("Concat", [up, e1], axis=1)
    d = b.node("Relu", [b.node("Conv", [cat, b.const(randn(8, 16, 3, 3, scale=0.2)), b.const(randn(8, scale=0.1))],
                               pads=[1, 1, 1, 1])])
    b.node("Sigmoid", [b.node("Conv", [d, b.const(randn(1, 8, 1, 1, scale=0.5))])], "y")
    b.output("y", [1, 1, 16, 16])
    return b.model()


def test_unet_with_conv_transpose_everywhere(tmp_path):
    samples = {"x": RNG.standard_normal((6, 1, 3, 16, 16)).astype(np.float32)}
    reports = compile_everywhere(_unet(), tmp_path, samples)
    assert reports["az-sim"]["verification"]["vs_float"]["cosine"] >= 0.99


@pytest.mark.parametrize("group, per_channel", [(1, True), (2, True), (1, False)])
def test_qdq_conv_transpose_matches_onnxruntime(group, per_channel):
    """A QDQ ConvTranspose keeps its int8 weights (regrouped and flipped, scales
    repeated per group) and agrees with onnxruntime within 1 LSB."""
    b = Builder()
    x = b.input("x", [1, 4, 4, 4], np.int8)
    wq = RNG.integers(-127, 128, (4, 3, 3, 3)).astype(np.int8)
    scales = np.linspace(0.01, 0.03, 3) if per_channel else 0.02
    w = b.weights(wq, scales, axis=1)
    y = b.node("ConvTranspose", [b.dq(x, 0.05, 3), w], strides=[2, 2], pads=[1, 1, 0, 0], group=group)
    b.q(y, 0.5, -4, "y")
    b.output("y", [1, 3 * group, 8, 8], np.int8)
    result, _ = check_qdq(b.model())
    assert "QConv" in ops(result)
