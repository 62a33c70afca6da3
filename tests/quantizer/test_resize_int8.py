"""Resize in int8 (quantizer/resize_rules.py, docs/numerics.md §12): nearest is
data movement (ResizeNearest), linear a QResize with fixed-point weights; both
compile for ir, c and az-sim bit-exact, in U-Nets with int8 cosine >= 0.99."""

from __future__ import annotations

import numpy as np
import pytest
from e2e import compile_everywhere
from qmodels import Builder, check_float, check_qdq, ops, randn

from nnc.ops import get_op
from nnc.ops.qresize import QResizeAttrs, linear_table
from nnc.ops.resize import ResizeAttrs, linear_taps

RNG = np.random.default_rng(3)


def _resize(b: Builder, x: str, mode: str, output=None, scales=(1, 1, 2, 2), sizes=None, **attrs) -> str:
    inputs = [x, "", b.const(np.asarray(scales, np.float32))] if sizes is None else \
        [x, "", "", b.const(np.asarray(sizes, np.int64))]
    return b.node("Resize", inputs, output, mode=mode, **attrs)


def _single(mode, x_shape, y_shape, **kwargs):
    b = Builder()
    x = b.input("x", x_shape)
    _resize(b, b.node("Sigmoid", [x]), mode, "y", **kwargs)
    b.output("y", y_shape)
    return b.model()


def _samples(shape, count=4):
    return [{"x": RNG.standard_normal(shape).astype(np.float32) * 2} for _ in range(count)]


@pytest.mark.parametrize("mode, kwargs, y_shape", [
    ("nearest", dict(scales=(1, 1, 2, 3), nearest_mode="floor", coordinate_transformation_mode="asymmetric"),
     [1, 3, 10, 18]),
    ("nearest", dict(sizes=(1, 3, 7, 4)), [1, 3, 7, 4]),
    ("linear", dict(scales=(1, 1, 2, 2)), [1, 3, 10, 12]),
    ("linear", dict(sizes=(1, 3, 9, 13), coordinate_transformation_mode="align_corners"), [1, 3, 9, 13]),
    ("linear", dict(sizes=(1, 3, 3, 4), coordinate_transformation_mode="pytorch_half_pixel"), [1, 3, 3, 4]),
])
def test_int8_resize_close_to_float(tmp_path, mode, kwargs, y_shape):
    model = _single(mode, [1, 3, 5, 6], y_shape, **kwargs)
    # the input rounding through the sigmoid alone costs up to ~2 LSB; Resize adds at most 1/2
    result, worst = check_float(model, tmp_path, _samples([1, 3, 5, 6]), lsb=2.5)
    assert ("QResize" if mode == "linear" else "ResizeNearest") in ops(result)


def test_qresize_rounds_once_from_the_exact_sum():
    """1-D, weights of 11 bits: the exact weighted sum is rounded once (M = 2^-11)."""
    attrs = ResizeAttrs((4,), (2.0,), "linear")
    table = linear_table([linear_taps(attrs, 0, 2)], 11)
    assert table.tolist() == [[0, 0, 0, 1], [1, 1, 1, 1], [0, 512, 1536, 0]]  # f = 0, 0.25, 0.75, 0 (clamped)
    q = QResizeAttrs((4,), False, 11, 1, 0, 1 << 30, 41, -128, 127)  # M = 2^-11
    (y,) = get_op("QResize").evaluate(q, [np.array([[[1, 9]]], np.int8), table])
    assert y.tolist() == [[[0, 2, 6, 8]]]


def _unet(mode: str, **attrs):
    b = Builder()
    x = b.input("x", [1, 3, 16, 16])
    e1 = b.node("Relu", [b.node("Conv", [x, b.const(randn(8, 3, 3, 3, scale=0.3)), b.const(randn(8, scale=0.1))],
                                pads=[1, 1, 1, 1])])
    p = b.node("MaxPool", [e1], kernel_shape=[2, 2], strides=[2, 2])
    e2 = b.node("Relu", [b.node("Conv", [p, b.const(randn(8, 8, 3, 3, scale=0.2)), b.const(randn(8, scale=0.1))],
                                pads=[1, 1, 1, 1])])
    cat = b.node("Concat", [_resize(b, e2, mode, **attrs), e1], axis=1)
    d = b.node("Relu", [b.node("Conv", [cat, b.const(randn(8, 16, 3, 3, scale=0.2)), b.const(randn(8, scale=0.1))],
                               pads=[1, 1, 1, 1])])
    b.node("Conv", [d, b.const(randn(2, 8, 1, 1, scale=0.5))], "y")
    b.output("y", [1, 2, 16, 16])
    return b.model()


@pytest.mark.parametrize("mode, attrs", [("nearest", {}), ("linear", {}),
                                         ("linear", dict(coordinate_transformation_mode="align_corners"))])
def test_unet_with_resize_everywhere(tmp_path, mode, attrs):
    samples = {"x": RNG.standard_normal((6, 1, 3, 16, 16)).astype(np.float32)}
    reports = compile_everywhere(_unet(mode, **attrs), tmp_path, samples)
    assert reports["c"]["verification"]["vs_float"]["cosine"] >= 0.99
    layers = [layer["op"] for layer in reports["c"]["layers"]]
    assert layers.count("Transpose") == 2  # NHWC throughout: Resize is channels-last too


def test_one_dimensional_linear_resize_everywhere(tmp_path):
    b = Builder()
    x = b.input("x", [1, 4, 12])
    h = b.node("Relu", [b.node("Conv", [x, b.const(randn(6, 4, 3, scale=0.4))], pads=[1, 1])])
    _resize(b, h, "linear", "y", scales=(1, 1, 2.5))
    b.output("y", [1, 6, 30])
    compile_everywhere(b.model(), tmp_path, {"x": RNG.standard_normal((4, 1, 4, 12)).astype(np.float32)})


@pytest.mark.parametrize("mode, out_scale, out_zero", [("nearest", 0.05, 3), ("nearest", 0.08, -10),
                                                       ("linear", 0.05, 3), ("linear", 0.07, 0)])
def test_qdq_resize_matches_onnxruntime(mode, out_scale, out_zero):
    """QDQ Resize: the model's own parameters; nearest with equal parameters is
    pure data movement, with others a Requantize follows; within 1 LSB of onnxruntime."""
    b = Builder()
    x = b.input("x", [1, 3, 4, 5], np.int8)
    y = _resize(b, b.dq(x, 0.05, 3), mode, scales=(1, 1, 2, 1.5), coordinate_transformation_mode="half_pixel")
    b.q(y, out_scale, out_zero, "y")
    b.output("y", [1, 3, 8, 7], np.int8)
    result, _ = check_qdq(b.model())
    assert ("QResize" if mode == "linear" else "ResizeNearest") in ops(result)
    assert ("Requantize" in ops(result)) == (mode == "nearest" and out_scale != 0.05)
