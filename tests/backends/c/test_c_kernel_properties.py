"""Property tests: each C kernel against its reference op on random shapes and
parameters (one small graph and one sanitized harness build per example, so few
examples per kernel)."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np
from c_testing import COMPILERS, assert_matches, run_c, single_op
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from nnc.dtypes import integer_range
from nnc.numerics import quantize_multiplier, quantize_multipliers
from nnc.ops.conv import ConvAttrs
from nnc.ops.gemm import GemmAttrs
from nnc.ops.pool import PoolAttrs
from nnc.ops.qelementwise import QAddAttrs, RequantizeAttrs
from nnc.ops.qlinear import QConvAttrs, QGemmAttrs
from nnc.ops.qpool import QAveragePoolAttrs
from nnc.ops.qsoftmax import EXP_BITS, QSoftmaxAttrs, log_softmax_attrs, log_table
from nnc.ops.quantize import DequantizeAttrs, QuantizeAttrs
from nnc.ops.shape import ConcatAttrs, PadAttrs, TransposeAttrs
from nnc.verification import synthetic_samples

FEW = settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ACT = st.sampled_from(["i8", "u8"])
NP = {"i8": np.int8, "u8": np.uint8, "i16": np.int16, "i32": np.int32}


def check(graph, seed: int = 0) -> None:
    samples = synthetic_samples(graph, 2, seed=seed)
    with tempfile.TemporaryDirectory() as tmp:
        assert_matches(graph, samples, run_c(graph, samples, Path(tmp), COMPILERS[0]))


def zero_point(draw, dtype: str) -> int:
    lo, hi = integer_range(dtype)
    return draw(st.integers(lo, hi))


def clamp(draw, dtype: str) -> tuple[int, int]:
    lo, hi = integer_range(dtype)
    a, b = sorted(draw(st.lists(st.integers(lo, hi), min_size=2, max_size=2)))
    return (a, b) if draw(st.booleans()) else (lo, hi)


@st.composite
def conv_geometry(draw):
    h, w = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    strides = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    dilations = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    pads = tuple(draw(st.integers(0, 2)) for _ in range(4))
    for size, k, d, a in ((h, kernel[0], dilations[0], 0), (w, kernel[1], dilations[1], 1)):
        assume(size + pads[a] + pads[a + 2] >= (k - 1) * d + 1)
    groups = draw(st.sampled_from([1, 2, 3]))
    cin = groups * draw(st.integers(1, 3))
    depthwise = draw(st.booleans())
    if depthwise:
        groups = cin
    cout = groups * draw(st.integers(1, 3))
    return (draw(st.integers(1, 2)), h, w, cin), cout, kernel, strides, pads, dilations, groups


@FEW
@given(conv_geometry(), ACT, ACT, st.data())
def test_qconv(geometry, x_dtype, y_dtype, data):
    x_shape, cout, kernel, strides, pads, dilations, groups = geometry
    rng = np.random.default_rng(data.draw(st.integers(0, 1000)))
    lo, hi = clamp(data.draw, y_dtype)
    attrs = QConvAttrs(kernel, strides, pads, dilations, groups, True, zero_point(data.draw, x_dtype),
                       zero_point(data.draw, y_dtype), lo, hi, y_dtype)
    mult, shift = quantize_multipliers(rng.uniform(1e-4, 2e-2, cout))
    w = rng.integers(-127, 128, (cout, x_shape[-1] // groups, *kernel)).astype(np.int8)
    bias = ("b", rng.integers(-20000, 20000, cout).astype(np.int32)) if data.draw(st.booleans()) else ("", None)
    check(single_op("QConv", attrs, [("x", (x_dtype, x_shape)), ("w", w), bias, ("m", mult), ("n", shift)]))


@FEW
@given(st.integers(1, 3), st.integers(1, 40), st.integers(1, 9), ACT, ACT, st.data())
def test_qgemm(m, k, n, x_dtype, y_dtype, data):
    rng = np.random.default_rng(data.draw(st.integers(0, 1000)))
    lo, hi = clamp(data.draw, y_dtype)
    mult, shift = quantize_multipliers(rng.uniform(1e-4, 1e-1, n))
    attrs = QGemmAttrs(zero_point(data.draw, x_dtype), zero_point(data.draw, y_dtype), lo, hi, y_dtype)
    w = rng.integers(-127, 128, (n, k)).astype(np.int8)
    check(single_op("QGemm", attrs, [("x", (x_dtype, (m, k))), ("w", w),
                                     ("b", rng.integers(-9999, 9999, n).astype(np.int32)),
                                     ("mult", mult), ("shift", shift)]))


@FEW
@given(ACT, ACT, st.integers(0, (1 << 31) - 1), st.integers(1, 62), st.data())
def test_requantize_any_multiplier_and_shift(x_dtype, y_dtype, mult, shift, data):
    lo, hi = clamp(data.draw, y_dtype)
    attrs = RequantizeAttrs(zero_point(data.draw, x_dtype), zero_point(data.draw, y_dtype), mult, shift, lo, hi,
                            y_dtype)
    check(single_op("Requantize", attrs, [("x", (x_dtype, (4, 64)))]), seed=shift)


@st.composite
def broadcast_pair(draw):
    rank = draw(st.integers(1, 4))
    shape = [draw(st.integers(1, 4)) for _ in range(rank)]
    a = tuple(d if draw(st.booleans()) else 1 for d in shape)
    b = tuple(d if draw(st.booleans()) else 1 for d in shape)
    return a, b[draw(st.integers(0, rank)):]


@FEW
@given(broadcast_pair(), ACT, ACT, ACT, st.integers(20, 53), st.data())
def test_qadd(shapes, a_dtype, b_dtype, y_dtype, shift, data):
    scale = 2 ** shift
    ma = min(round(data.draw(st.floats(0.01, 4.0)) * scale), (1 << 31) - 1)
    mb = min(round(data.draw(st.floats(0.01, 4.0)) * scale), (1 << 31) - 1)
    lo, hi = clamp(data.draw, y_dtype)
    attrs = QAddAttrs(zero_point(data.draw, a_dtype), zero_point(data.draw, b_dtype), zero_point(data.draw, y_dtype),
                      ma, mb, shift, lo, hi, y_dtype)
    check(single_op("QAdd", attrs, [("a", (a_dtype, shapes[0])), ("b", (b_dtype, shapes[1] or (1,)))]))


@FEW
@given(st.integers(1, 8), st.integers(1, 8), st.integers(1, 3), st.integers(1, 3), st.integers(1, 3), ACT, st.data())
def test_qaverage_pool(h, w, kh, kw, stride, dtype, data):
    pads = tuple(data.draw(st.integers(0, k - 1)) for k in (kh, kw, kh, kw))
    assume(h + pads[0] + pads[2] >= kh and w + pads[1] + pads[3] >= kw)
    m, n = quantize_multiplier(data.draw(st.floats(0.05, 2.0)) / (kh * kw))
    lo, hi = clamp(data.draw, dtype)
    attrs = QAveragePoolAttrs((kh, kw), (stride, stride), pads, True, zero_point(data.draw, dtype),
                              zero_point(data.draw, dtype), m, n, lo, hi, dtype)
    check(single_op("QAveragePool", attrs, [("x", (dtype, (1, h, w, 3)))]))


@FEW
@given(st.integers(1, 3), st.integers(1, 30), st.floats(0.005, 0.5), st.floats(0.001, 0.01), ACT, ACT, st.data())
def test_qsoftmax(rows, n, sx, sy, x_dtype, y_dtype, data):
    table = np.round(2.0 ** EXP_BITS * np.exp(-sx * np.arange(256))).astype(np.int32)
    m, shift = quantize_multiplier(1 / sy)
    lo, hi = clamp(data.draw, y_dtype)
    attrs = QSoftmaxAttrs(zero_point(data.draw, y_dtype), m, shift, lo, hi, y_dtype)
    check(single_op("QSoftmax", attrs, [("x", (x_dtype, (rows, n))), ("table", table)]))


@FEW
@given(st.integers(1, 2), st.integers(1, 3), st.integers(2, 30), st.floats(0.005, 0.5), ACT, st.data())
def test_qsoftmax_with_a_keep_mask(heads, rows, n, sx, x_dtype, data):
    """A causal-style mask [1, rows, n] broadcast over heads, and one [1, 1, n]
    shared by every row: the kernel's bit index e % period."""
    table = np.round(2.0 ** EXP_BITS * np.exp(-sx * np.arange(256))).astype(np.int32)
    m, shift = quantize_multiplier(256.0)
    attrs = QSoftmaxAttrs(-128, m, shift, -128, 127, "i8")
    shape = (1, data.draw(st.sampled_from([1, rows])), n)
    keep = np.array(data.draw(st.lists(st.booleans(), min_size=math.prod(shape), max_size=math.prod(shape))))
    keep = keep.reshape(shape)
    keep[..., 0] |= ~keep.any(axis=-1)
    check(single_op("QSoftmax", attrs, [("x", (x_dtype, (heads, rows, n))), ("table", table),
                                        ("keep", keep.astype(np.uint8))]))


@FEW
@given(st.integers(1, 3), st.integers(1, 300), st.floats(-24, 3), st.floats(-12, 6), ACT, ACT, st.data())
def test_qlogsoftmax(rows, n, log_sx, log_sy, x_dtype, y_dtype, data):
    """s_x from 2^-24 to 8 (x_scale 1 .. 2^27) and s_y from 2^-12 to 64."""
    sx = 2.0 ** log_sx
    table = np.round(2.0 ** EXP_BITS * np.exp(-sx * np.arange(256))).astype(np.int32)
    lo, hi = clamp(data.draw, y_dtype)
    attrs = log_softmax_attrs(sx, 2.0 ** log_sy, zero_point(data.draw, y_dtype), lo, hi, y_dtype)
    check(single_op("QLogSoftmax", attrs, [("x", (x_dtype, (rows, n))), ("exp_table", table),
                                           ("log_table", log_table())]))


@FEW
@given(st.integers(1, 7), st.integers(1, 7), st.integers(1, 3), st.integers(1, 2), st.booleans(),
       st.sampled_from(["i8", "u8", "f32"]), st.data())
def test_max_pool(h, w, k, stride, ceil, dtype, data):
    pads = tuple(data.draw(st.integers(0, k - 1)) for _ in range(4))
    assume(h + pads[0] + pads[2] >= k and w + pads[1] + pads[3] >= k)
    attrs = PoolAttrs((k, k), (stride, stride), pads, (1, 1), ceil, True)
    check(single_op("MaxPool", attrs, [("x", (dtype, (1, h, w, 2)))]))


@FEW
@given(st.lists(st.integers(1, 4), min_size=1, max_size=6), st.sampled_from(["i8", "f32", "i32"]), st.randoms())
def test_transpose(shape, dtype, random):
    perm = list(range(len(shape)))
    random.shuffle(perm)
    check(single_op("Transpose", TransposeAttrs(tuple(perm)), [("x", (dtype, tuple(shape)))]))


@FEW
@given(st.lists(st.integers(1, 4), min_size=1, max_size=4), st.sampled_from(["constant", "reflect", "edge", "wrap"]),
       st.sampled_from(["i8", "u8", "f32"]), st.data())
def test_pad(shape, mode, dtype, data):
    rank = len(shape)
    low = -1 if mode == "constant" else 0
    pads = [data.draw(st.integers(low, 2)) for _ in range(2 * rank)]
    for axis in range(rank):
        kept = shape[axis] + min(pads[axis], 0) + min(pads[rank + axis], 0)
        assume(kept >= (1 if mode != "constant" else 0))
        if mode == "reflect":
            assume(max(pads[axis], pads[rank + axis]) < kept)
    fill = (7.0 if dtype == "u8" else -7.0) if mode == "constant" else 0.0
    attrs = PadAttrs(tuple(pads), mode, fill)
    check(single_op("Pad", attrs, [("x", (dtype, tuple(shape)))]))


@FEW
@given(st.lists(st.integers(1, 3), min_size=1, max_size=4), st.integers(1, 3), st.data())
def test_concat(shape, count, data):
    axis = data.draw(st.integers(0, len(shape) - 1))
    inputs = []
    for i in range(count):
        s = list(shape)
        s[axis] = data.draw(st.integers(1, 3))
        inputs.append((f"x{i}", ("i8", tuple(s))))
    check(single_op("Concat", ConcatAttrs(axis), inputs))


@FEW
@given(st.sampled_from(["i8", "u8", "i16"]), st.floats(1e-3, 1.0), st.data())
def test_quantize_then_dequantize(dtype, scale, data):
    zero = np.array(zero_point(data.draw, dtype), dtype=NP[dtype])
    s = np.array(scale, dtype=np.float32)
    q = single_op("QuantizeLinear", QuantizeAttrs(None, dtype), [("x", ("f32", (3, 11))), ("s", s), ("z", zero)])
    check(q)
    check(single_op("DequantizeLinear", DequantizeAttrs(None), [("x", (dtype, (3, 11))), ("s", s), ("z", zero)]))


@FEW
@given(conv_geometry(), st.data())
def test_float_conv(geometry, data):
    x_shape, cout, kernel, strides, pads, dilations, groups = geometry
    rng = np.random.default_rng(data.draw(st.integers(0, 1000)))
    act = data.draw(st.sampled_from([(None, None), (0.0, None), (0.0, 6.0)]))
    attrs = ConvAttrs(kernel, strides, pads, dilations, groups, True, *act)
    w = rng.standard_normal((cout, x_shape[-1] // groups, *kernel)).astype(np.float32)
    check(single_op("Conv", attrs, [("x", ("f32", x_shape)), ("w", w),
                                    ("b", rng.standard_normal(cout).astype(np.float32))]))


@FEW
@given(st.integers(1, 4), st.integers(1, 30), st.integers(1, 6), st.booleans(), st.booleans(), st.data())
def test_float_gemm(m, k, n, trans_a, trans_b, data):
    rng = np.random.default_rng(data.draw(st.integers(0, 1000)))
    attrs = GemmAttrs(data.draw(st.floats(0.25, 2.0)), data.draw(st.floats(0.25, 2.0)), trans_a, trans_b)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(np.float32)
    check(single_op("Gemm", attrs, [("a", ("f32", (k, m) if trans_a else (m, k))), ("b", b),
                                    ("c", rng.standard_normal(n).astype(np.float32))]))
