"""The integer ops (QConv, QGemm, Requantize, QAdd, QLut, QAveragePool, QSoftmax,
QLogSoftmax)
against an independent implementation of docs/numerics.md: plain loops over
Python ints, each rounding written as floor(Fraction + 1/2), so neither int64 nor
float64 can hide an error. Also `infer`'s refusals (ShapeError) and the int64
bounds the contract claims for QAdd (§4), QSoftmax (§6) and QLogSoftmax (§6a)."""

from __future__ import annotations

import dataclasses
import itertools
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nnc import dtypes
from nnc.errors import ShapeError
from nnc.interpreter import run as nnc_run
from nnc.ir import Graph, Node, Tensor, TensorType
from nnc.numerics import exact_float, quantize_multiplier
from nnc.ops import get_op
from nnc.ops.qelementwise import QAddAttrs, RequantizeAttrs
from nnc.ops.qlinear import QConvAttrs, QGemmAttrs
from nnc.ops.qpool import QAveragePoolAttrs
from nnc.ops.qsoftmax import QLogSoftmaxAttrs, QSoftmaxAttrs, log_of_sum, log_softmax_attrs, log_table
from nnc.ops.registry import NoAttrs

FEW = settings(max_examples=20, deadline=None)
INT64_MAX = (1 << 63) - 1
RANGE = {"i8": (-128, 127), "u8": (0, 255)}


# -- the contract, in Python ints -----------------------------------------------------------
def rs(v: int, n: int) -> int:
    """round_shift: floor(v / 2^n + 1/2)."""
    return math.floor(Fraction(v, 1 << n) + Fraction(1, 2))


def clamp(v: int, lo: int, hi: int) -> int:
    return min(max(v, lo), hi)


def requant(acc: int, mult: tuple[int, int], attrs) -> int:
    return clamp(attrs.y_zero_point + rs(acc * mult[0], mult[1]), attrs.out_min, attrs.out_max)


def shared_shift(ra: Fraction, rb: Fraction) -> tuple[int, int, int]:
    """§4: m_a, m_b and the largest n <= 62 - 9 with max(m_a, m_b) < 2^31."""
    for n in range(62 - 9, 0, -1):
        ma, mb = round(ra * (1 << n)), round(rb * (1 << n))
        if max(ma, mb) < 1 << 31:
            return ma, mb, n
    raise ValueError("ratio too large")


def exp_table(sx: float) -> np.ndarray:
    """§6: E[d] = round(2^24 · exp(−s_x · d))."""
    return np.array([round(2 ** 24 * math.exp(-sx * d)) for d in range(256)], np.int32)


def run(op_name: str, attrs, inputs: list) -> np.ndarray:
    """The op's single output; checks that `infer` predicts its type and shape."""
    op = get_op(op_name)
    (y,) = op.evaluate(attrs, inputs)
    types = [None if a is None else TensorType(dtypes.from_numpy(a.dtype), a.shape) for a in inputs]
    assert op.infer(attrs, types) == [TensorType(dtypes.from_numpy(y.dtype), y.shape)]
    return y.astype(np.int64)


# -- strategies --------------------------------------------------------------------------
@st.composite
def outputs(draw) -> dict:
    """Output type, zero point and clamp: full range, a ReLU, or any sub-range."""
    dtype = draw(st.sampled_from(["i8", "u8"]))
    lo_t, hi_t = RANGE[dtype]
    zp = draw(st.integers(lo_t, hi_t))
    lo, hi = draw(st.sampled_from([(lo_t, hi_t), (zp, hi_t), None])) or sorted(
        draw(st.lists(st.integers(lo_t, hi_t), min_size=2, max_size=2)))
    return dict(y_zero_point=zp, out_min=lo, out_max=hi, out_dtype=dtype)


@st.composite
def activation(draw, shape) -> tuple[np.ndarray, int]:
    """Random 8-bit data of `shape`, extremes included, and a zero point in its type."""
    dtype = draw(st.sampled_from(["i8", "u8"]))
    lo, hi = RANGE[dtype]
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    x = rng.integers(lo, hi + 1, shape)
    x.flat[:2] = [lo, hi][:x.size]
    return x.astype(dtypes.to_numpy(dtype)), draw(st.sampled_from([lo, hi, draw(st.integers(lo, hi))]))


def multiplier(draw, lo=-20.0, hi=0.0) -> tuple[int, int]:
    return quantize_multiplier(2.0 ** draw(st.floats(lo, hi)))


# -- QConv ---------------------------------------------------------------------------------
def ref_qconv(x, w, bias, mults, a) -> np.ndarray:
    """§2 on channels-first x: padding holds z_x; acc in Python ints."""
    nd, spatial, cg = x.ndim - 2, x.shape[2:], w.shape[1]
    per_group = w.shape[0] // a.group
    out = [(s + a.pads[i] + a.pads[i + nd] - (a.kernel_shape[i] - 1) * a.dilations[i] - 1) // a.strides[i] + 1
           for i, s in enumerate(spatial)]
    y = np.zeros((x.shape[0], w.shape[0], *out), np.int64)
    for index in np.ndindex(*y.shape):
        b, co, o = index[0], index[1], index[2:]
        acc = 0 if bias is None else int(bias[co])
        for ci, *k in itertools.product(range(cg), *map(range, a.kernel_shape)):
            pos = tuple(o[i] * a.strides[i] + k[i] * a.dilations[i] - a.pads[i] for i in range(nd))
            inside = all(0 <= p < s for p, s in zip(pos, spatial))
            xv = int(x[(b, co // per_group * cg + ci, *pos)]) if inside else a.x_zero_point
            acc += (xv - a.x_zero_point) * int(w[(co, ci, *k)])
        y[index] = requant(acc, mults[co], a)
    return y


@st.composite
def qconv_cases(draw):
    nd = draw(st.integers(1, 2))
    dims = lambda lo, hi: tuple(draw(st.integers(lo, hi)) for _ in range(nd))
    kernel, strides, dilations, pads = dims(1, 3), dims(1, 2), dims(1, 2), dims(0, 2) + dims(0, 2)
    kind = draw(st.sampled_from(["dense", "grouped", "depthwise"]))
    group = {"dense": 1, "grouped": draw(st.integers(2, 3)), "depthwise": draw(st.integers(1, 4))}[kind]
    cin = group if kind == "depthwise" else group * draw(st.integers(1, 2))
    cout = group * draw(st.integers(1, 2))
    spatial = tuple(max(1, (k - 1) * d + 1 - pads[i] - pads[i + nd]) + draw(st.integers(0, 3))
                    for i, (k, d) in enumerate(zip(kernel, dilations)))
    x, zx = draw(activation((draw(st.integers(1, 2)), cin, *spatial)))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    w = rng.integers(-127, 128, (cout, cin // group, *kernel)).astype(np.int8)
    bias = rng.integers(-(1 << 16), 1 << 16, cout).astype(np.int32) if draw(st.booleans()) else None
    mults = [multiplier(draw, -16, -2) for _ in range(cout)]
    attrs = QConvAttrs(kernel, strides, pads, dilations, group, draw(st.booleans()), zx, **draw(outputs()))
    return attrs, x, w, bias, mults


def _vectors(mults) -> list[np.ndarray]:
    return [np.array([m[i] for m in mults], np.int32) for i in (0, 1)]


@FEW
@given(qconv_cases())
def test_qconv(case):
    """Dense, grouped and depthwise, 1-D and 2-D, padding with z_x, both layouts."""
    attrs, x, w, bias, mults = case
    xin = np.ascontiguousarray(np.moveaxis(x, 1, -1)) if attrs.channels_last else x
    y = run("QConv", attrs, [xin, w, bias, *_vectors(mults)])
    y = np.moveaxis(y, -1, 1) if attrs.channels_last else y
    np.testing.assert_array_equal(y, ref_qconv(x, w, bias, mults, attrs))


# -- QGemm ---------------------------------------------------------------------------------
def ref_qgemm(x, w, bias, mults, a) -> np.ndarray:
    rows, cols = x.tolist(), w.tolist()
    return np.array([[requant((0 if bias is None else int(bias[j]))
                              + sum((xv - a.x_zero_point) * wv for xv, wv in zip(row, col)), mults[j], a)
                      for j, col in enumerate(cols)] for row in rows], np.int64)


@FEW
@given(st.integers(1, 3), st.integers(1, 9), st.integers(1, 4), st.data())
def test_qgemm(m, k, n, data):
    x, zx = data.draw(activation((m, k)))
    rng = np.random.default_rng(data.draw(st.integers(0, 2 ** 32 - 1)))
    w = rng.integers(-127, 128, (n, k)).astype(np.int8)
    bias = rng.integers(-(1 << 20), 1 << 20, n).astype(np.int32) if data.draw(st.booleans()) else None
    mults = [multiplier(data.draw, -14, 0) for _ in range(n)]
    attrs = QGemmAttrs(zx, **data.draw(outputs()))
    np.testing.assert_array_equal(run("QGemm", attrs, [x, w, bias, *_vectors(mults)]),
                                  ref_qgemm(x, w, bias, mults, attrs))


def test_qgemm_accumulator_at_the_proved_bound():
    """Layers at the compiler's limit Σ|w|·255 + |bias| <= 2^31 − 1 (K = 66311):
    |acc| = 2^31 − 1 with m = 2^31 − 1 (acc · m at its documented limit), and
    partial sums near 2^30 that cancel to a small acc, which must stay exact."""
    k = ((1 << 31) - 1) // (127 * 255)
    edge = (1 << 31) - 1 - k * 127 * 255
    half = k // 2  # k is odd: half + (half + 1) weights
    x = np.full((2, k), 255, np.uint8)
    x[1, -1] = 0
    w = np.stack([np.full(k, 127), np.full(k, -127), np.where(np.arange(k) < half, 127, -127)]).astype(np.int8)
    bias = np.array([edge, -edge, 5], np.int32)
    mults = [((1 << 31) - 1, 55), ((1 << 31) - 1, 56), (1 << 30, 30)]
    attrs = QGemmAttrs(0, 0, -128, 127)
    got = run("QGemm", attrs, [x, w, bias, *_vectors(mults)])
    np.testing.assert_array_equal(got, ref_qgemm(x, w, bias, mults, attrs))
    assert got[0, :2].tolist() == [127, -64]  # (2^31 − 1)^2 / 2^55 ≈ 128, / 2^56 ≈ 64
    assert got[1, 2] == 5  # 255 · 127 · (half − half) + 5


@pytest.mark.parametrize("k", [514, 515])
def test_float32_accumulation_is_exact_up_to_its_bound(k):
    """Sums of up to 514 products (x − z)·w of 8-bit operands stay below 2^24
    (514 · 255 · 128 = 2^24 − 256) and run in float32 (numerics.exact_float);
    515 run in float64. At the
    extremes (−255 · −128 every term, and terms cancelling from 2^23 to a small
    acc) QGemm and a 1×1 QConv equal the integer reference."""
    assert exact_float(k, np.zeros(1, np.int8)) == (np.float32 if k == 514 else np.float64)
    x = np.zeros((2, k), np.uint8)
    x[1, ::2] = 255
    w = np.stack([np.full(k, -128), np.where(np.arange(k) % 4 < 2, -128, 127)]).astype(np.int8)
    mults = [(1 << 30, 31), (1 << 30, 20)]
    attrs = QGemmAttrs(255, 0, -128, 127)
    vectors = _vectors(mults)
    np.testing.assert_array_equal(run("QGemm", attrs, [x, w, None, *vectors]),
                                  ref_qgemm(x, w, None, mults, attrs))
    conv = QConvAttrs((1,), (1,), (0, 0), (1,), 1, False, 255, 0, -128, 127, "i8")
    xc, wc = x[:, :, None], w[:, :, None]
    np.testing.assert_array_equal(run("QConv", conv, [xc, wc, None, *vectors]),
                                  ref_qconv(xc, wc, None, mults, conv))


# -- Requantize ----------------------------------------------------------------------------
@FEW
@given(st.lists(st.integers(1, 4), max_size=3), st.data())
def test_requantize(shape, data):
    x, zx = data.draw(activation(tuple(shape)))
    m, n = data.draw(st.sampled_from([((1 << 31) - 1, 62), ((1 << 31) - 1, 31), (1 << 30, 1), (0, 1)])) \
        if data.draw(st.booleans()) else multiplier(data.draw, -9, 9)
    attrs = RequantizeAttrs(zx, multiplier=m, shift=n, **data.draw(outputs()))
    ref = [requant(int(v) - zx, (m, n), attrs) for v in x.ravel()]
    np.testing.assert_array_equal(run("Requantize", attrs, [x]).ravel(), ref)


# -- QAdd ------------------------------------------------------------------------------------
ratios = st.floats(-12, 12).map(lambda e: Fraction(2.0 ** e))


@st.composite
def broadcast_pair(draw) -> tuple[tuple[int, ...], tuple[int, ...]]:
    out = draw(st.lists(st.integers(1, 3), max_size=3))

    def operand():
        rank = draw(st.integers(0, len(out)))
        return tuple(1 if draw(st.booleans()) else d for d in out[len(out) - rank:])

    return operand(), operand()


def ref_qadd(a, b, attrs) -> np.ndarray:
    rank = max(a.ndim, b.ndim)
    sa, sb = (1,) * (rank - a.ndim) + a.shape, (1,) * (rank - b.ndim) + b.shape
    out = tuple(max(p, q) for p, q in zip(sa, sb))
    av, bv = a.reshape(sa), b.reshape(sb)
    y = np.zeros(out, np.int64)
    for index in np.ndindex(*out):
        qa = int(av[tuple(i if d > 1 else 0 for i, d in zip(index, sa))])
        qb = int(bv[tuple(i if d > 1 else 0 for i, d in zip(index, sb))])
        total = (qa - attrs.a_zero_point) * attrs.a_multiplier + (qb - attrs.b_zero_point) * attrs.b_multiplier
        y[index] = clamp(attrs.y_zero_point + rs(total, attrs.shift), attrs.out_min, attrs.out_max)
    return y


@FEW
@given(broadcast_pair(), ratios, ratios, st.data())
def test_qadd(shapes, ra, rb, data):
    (a, za), (b, zb) = data.draw(activation(shapes[0])), data.draw(activation(shapes[1]))
    ma, mb, n = shared_shift(ra, rb)
    attrs = QAddAttrs(za, zb, a_multiplier=ma, b_multiplier=mb, shift=n, **data.draw(outputs()))
    np.testing.assert_array_equal(run("QAdd", attrs, [a, b]), ref_qadd(a, b, attrs))


CORNERS = np.array([0, 255], np.uint8)


@settings(max_examples=300, deadline=None)
@given(st.floats(-40, 30).map(lambda e: Fraction(min(2.0 ** e, 2 ** 30 - 1))),
       st.floats(-40, 30).map(lambda e: Fraction(min(2.0 ** e, 2 ** 30 - 1))))
def test_qadd_shared_shift_stays_in_int64(ra, rb):
    """§4's claim: with the shared n (<= 53), each (q − z) · m is below 2^40 and the
    rounded sum inside int64; the op computes it exactly at the corners |q − z| = 255."""
    ma, mb, n = shared_shift(ra, rb)
    assert 1 <= n <= 53 and max(ma, mb) < 1 << 31
    assert 255 * ma < 1 << 40 and 255 * mb < 1 << 40
    assert 255 * (ma + mb) + (1 << (n - 1)) <= INT64_MAX
    for za, zb in itertools.product((0, 255), repeat=2):
        attrs = QAddAttrs(za, zb, 0, ma, mb, n, -128, 127)
        np.testing.assert_array_equal(run("QAdd", attrs, [CORNERS[:, None], CORNERS]),
                                      ref_qadd(CORNERS[:, None], CORNERS, attrs))


@pytest.mark.parametrize("shift", [1, 31, 40, 53, 62])
def test_qadd_largest_multipliers(shift):
    """Any multipliers `infer` accepts (m < 2^31, n <= 62) keep the sum inside int64."""
    for za, zb in itertools.product((0, 255), repeat=2):
        attrs = QAddAttrs(za, zb, 3, (1 << 31) - 1, (1 << 31) - 1, shift, -128, 127)
        np.testing.assert_array_equal(run("QAdd", attrs, [CORNERS[:, None], CORNERS]),
                                      ref_qadd(CORNERS[:, None], CORNERS, attrs))


# -- QLut ------------------------------------------------------------------------------------
@pytest.mark.parametrize("x_dtype", ["i8", "u8"])
@pytest.mark.parametrize("table_dtype", ["i8", "u8"])
def test_qlut_every_input(x_dtype, table_dtype):
    lo, hi = RANGE[x_dtype]
    t_lo, t_hi = RANGE[table_dtype]
    table = np.random.default_rng(7).integers(t_lo, t_hi + 1, 256).astype(dtypes.to_numpy(table_dtype))
    x = np.arange(lo, hi + 1).reshape(2, 8, 16).astype(dtypes.to_numpy(x_dtype))
    got = run("QLut", NoAttrs(), [x, table])
    assert got.ravel().tolist() == [int(table[q - lo]) for q in range(lo, hi + 1)]


def test_qlut_sigmoid_table():
    """§7: T[q − min] = clamp(round_half_even(f(s_x(q − z_x)) / s_y) + z_y)."""
    sx, zx, sy, zy = 0.05, 3, 1 / 256, -128
    table = np.array([clamp(round((1 / (1 + math.exp(-sx * (q - zx)))) / sy) + zy, -128, 127)
                      for q in range(-128, 128)], np.int8)
    x = np.array([[-128, -1, 0], [3, 50, 127]], np.int8)
    got = run("QLut", NoAttrs(), [x, table])
    assert got.tolist() == [[int(table[q + 128]) for q in row] for row in x.tolist()]


# -- QAveragePool ----------------------------------------------------------------------------
def ref_qavgpool(x, a) -> np.ndarray:
    """§5 on channels-first x: padding counts as real zero, count = Π kernel."""
    nd, spatial = x.ndim - 2, x.shape[2:]
    out = [(s + a.pads[i] + a.pads[i + nd] - a.kernel_shape[i]) // a.strides[i] + 1 for i, s in enumerate(spatial)]
    y = np.zeros((*x.shape[:2], *out), np.int64)
    for index in np.ndindex(*y.shape):
        acc = 0
        for k in itertools.product(*map(range, a.kernel_shape)):
            pos = tuple(index[2 + i] * a.strides[i] + k[i] - a.pads[i] for i in range(nd))
            if all(0 <= p < s for p, s in zip(pos, spatial)):
                acc += int(x[(*index[:2], *pos)]) - a.x_zero_point
        y[index] = requant(acc, (a.multiplier, a.shift), a)
    return y


@FEW
@given(st.integers(1, 2), st.booleans(), st.data())
def test_qaverage_pool(nd, is_global, data):
    dims = lambda lo, hi: tuple(data.draw(st.integers(lo, hi)) for _ in range(nd))
    if is_global:
        spatial = dims(1, 5)
        kernel, strides, pads = spatial, (1,) * nd, (0,) * (2 * nd)
    else:
        kernel, strides = dims(1, 3), dims(1, 2)
        pads = tuple(data.draw(st.integers(0, k - 1)) for k in kernel * 2)
        spatial = tuple(max(1, k - pads[i] - pads[i + nd]) + data.draw(st.integers(0, 3))
                        for i, k in enumerate(kernel))
    x, zx = data.draw(activation((data.draw(st.integers(1, 2)), data.draw(st.integers(1, 3)), *spatial)))
    m, n = quantize_multiplier(2.0 ** data.draw(st.floats(-3, 3)) / math.prod(kernel))
    attrs = QAveragePoolAttrs(kernel, strides, pads, data.draw(st.booleans()), zx, multiplier=m, shift=n,
                              **data.draw(outputs()))
    xin = np.ascontiguousarray(np.moveaxis(x, 1, -1)) if attrs.channels_last else x
    y = run("QAveragePool", attrs, [xin])
    y = np.moveaxis(y, -1, 1) if attrs.channels_last else y
    np.testing.assert_array_equal(y, ref_qavgpool(x, attrs))


# -- QSoftmax --------------------------------------------------------------------------------
def ref_qsoftmax(x, table, a) -> np.ndarray:
    """§6 literally, in Python ints: floor((e·m + S·2^(n−1)) / (S·2^n))."""
    rows, table = x.reshape(-1, x.shape[-1]).tolist(), table.tolist()
    m, n = a.multiplier, a.shift
    y = []
    for row in rows:
        top = max(row)
        e = [table[top - q] for q in row]
        s = sum(e)
        y.append([clamp(a.y_zero_point + (ei * m + s * (1 << (n - 1))) // (s << n), a.out_min, a.out_max)
                  for ei in e])
    return np.array(y, np.int64).reshape(x.shape)


@FEW
@given(st.lists(st.integers(1, 4), min_size=1, max_size=3), st.floats(-6, 1),
       st.sampled_from([1 / 256, 1 / 255, 1 / 128, None]), st.data())
def test_qsoftmax(shape, log_sx, sy, data):
    x, _ = data.draw(activation(tuple(shape)))
    sy = sy or 2.0 ** data.draw(st.floats(-12, 2))
    m, n = quantize_multiplier(1 / sy)
    attrs = QSoftmaxAttrs(multiplier=m, shift=n, **data.draw(outputs()))
    table = exp_table(2.0 ** log_sx)
    np.testing.assert_array_equal(run("QSoftmax", attrs, [x, table]), ref_qsoftmax(x, table, attrs))


@FEW
@given(st.integers(1, 4), st.integers(2, 9), st.floats(-6, 1), st.booleans(), st.data())
def test_qsoftmax_with_a_keep_mask_is_the_softmax_of_the_kept_positions(rows, n, log_sx, per_row, data):
    """Kept positions get QSoftmax of the kept values alone; hidden ones the
    code of probability 0 (y_zero_point, clamped)."""
    x, _ = data.draw(activation((rows, n)))
    keep = np.array(data.draw(st.lists(st.lists(st.booleans(), min_size=n, max_size=n),
                                       min_size=rows if per_row else 1, max_size=rows if per_row else 1)))
    keep[:, 0] |= ~keep.any(axis=1)  # every row keeps a position
    m, shift = quantize_multiplier(256.0)
    attrs = QSoftmaxAttrs(multiplier=m, shift=shift, **data.draw(outputs()))
    table = exp_table(2.0 ** log_sx)
    y = run("QSoftmax", attrs, [x, table, keep.astype(np.uint8)])
    for r in range(rows):
        kept = np.broadcast_to(keep, x.shape)[r]
        np.testing.assert_array_equal(y[r][kept], ref_qsoftmax(x[r][kept][None], table, attrs)[0])
        assert (y[r][~kept] == np.clip(attrs.y_zero_point, attrs.out_min, attrs.out_max)).all()


def _softmax_rows(classes: int) -> np.ndarray:
    """Rows over `classes` values: all equal (S largest), one peak, a ramp."""
    rows = np.zeros((3, classes), np.uint8)
    rows[1, 0] = 255
    rows[2] = np.arange(classes) % 256
    return rows


@pytest.mark.parametrize("sy, sx", [(1 / 255, 0.02), (1 / 16, 0.5), (2.0 ** -20, 1.0), (2.0 ** 20, 0.1)])
def test_qsoftmax_most_classes(sy, sx):
    """2^16 classes (the most `infer` accepts), where S reaches 2^40: S · 2^n overflows
    int64 already for s_y = 1/255 (n = 23), so the op must not form it."""
    m, n = quantize_multiplier(1 / sy)
    x, table = _softmax_rows(1 << 16), exp_table(sx)
    attrs = QSoftmaxAttrs(0, m, n, -128, 127)
    np.testing.assert_array_equal(run("QSoftmax", attrs, [x, table]), ref_qsoftmax(x, table, attrs))


def test_qsoftmax_bounds():
    """§6's bounds: E <= 2^24 (E[0] = 2^24 exactly), so e·m < 2^56 for m < 2^31, and
    S <= 2^16 · 2^24; floor(e·m / S) <= m < 2^31 then goes through round_shift."""
    m = (1 << 31) - 1
    for sx in (1e-4, 0.01, 0.3, 8.0):
        table = exp_table(sx)
        assert table[0] == 1 << 24 and table.max() == 1 << 24 and table.min() >= 0
        assert int(table.max()) * m < 1 << 56
    most = (1 << 16) * (1 << 24)  # S for 2^16 equal inputs
    assert most * (1 << 23) >= 1 << 63  # §6's denominator S · 2^n, for s_y = 1/255, exceeds int64
    for n in (1, 23, 40, 62):
        attrs = QSoftmaxAttrs(0, m, n, -128, 127)
        x, table = _softmax_rows(1 << 16), exp_table(1e-4)
        np.testing.assert_array_equal(run("QSoftmax", attrs, [x, table]), ref_qsoftmax(x, table, attrs))


# -- QLogSoftmax ------------------------------------------------------------------------------
def ref_qlogsoftmax(x, table, a) -> np.ndarray:
    """§6a literally, in Python ints: k from int.bit_length, Λ and LN2 from math.log."""
    lam = [round(2 ** 24 * math.log(1 + j / 256)) for j in range(257)]
    ln2 = round(2 ** 24 * math.log(2))
    y = []
    for row in x.reshape(-1, x.shape[-1]).tolist():
        top = max(row)
        s = sum(int(table[top - q]) for q in row)
        k = s.bit_length() - 1
        t = s << (24 - k) if k <= 24 else s >> (k - 24)
        j, r = t // 2 ** 16 - 256, t % 2 ** 16
        big = (k - 24) * ln2 + lam[j] + (lam[j + 1] - lam[j]) * r // 2 ** 16
        y.append([clamp(a.y_zero_point - rs(((top - q) * a.x_scale + big) * a.multiplier, a.shift),
                        a.out_min, a.out_max) for q in row])
    return np.array(y, np.int64).reshape(x.shape)


@FEW
@given(st.lists(st.integers(1, 5), min_size=1, max_size=3), st.floats(-20, 3), st.floats(-12, 2), st.data())
def test_qlogsoftmax(shape, log_sx, log_sy, data):
    x, _ = data.draw(activation(tuple(shape)))
    attrs = log_softmax_attrs(2.0 ** log_sx, 2.0 ** log_sy, **data.draw(outputs()))
    table = exp_table(2.0 ** log_sx)
    np.testing.assert_array_equal(run("QLogSoftmax", attrs, [x, table, log_table()]),
                                  ref_qlogsoftmax(x, table, attrs))


@FEW
@given(st.integers(1, 1000), st.floats(-7, 1), st.floats(-12, 0), st.data())
def test_qlogsoftmax_is_within_half_an_lsb_and_6e_5_nats_of_float(classes, log_sx, log_sy, data):
    """§6a's error bound: |y · s_y − log_softmax(x · s_x)| ≤ s_y / 2 + 6e-5 where
    the output is not clamped (z_y = 127 in i8 holds log probabilities down to
    −255 · s_y), for up to 1000 classes: within 1 LSB of float even at s_y = 2^-12."""
    x, _ = data.draw(activation((3, classes)))
    sx, sy = 2.0 ** log_sx, 2.0 ** log_sy
    attrs = log_softmax_attrs(sx, sy, 127, -128, 127)
    y = run("QLogSoftmax", attrs, [x, exp_table(sx), log_table()])
    real = x.astype(np.float64) * sx
    truth = real - real.max(-1, keepdims=True)
    truth -= np.log(np.exp(truth).sum(-1, keepdims=True))
    inside = y > -128
    err = np.abs((y - 127) * sy - truth)[inside]
    assert (err <= sy / 2 + 6e-5).all(), err.max()


@pytest.mark.parametrize("sx, sy", [(2.0 ** -24, 2.0 ** -12), (0.05, 0.1), (8.0, 2.0 ** 6), (1.0, 2.0 ** -10)])
def test_qlogsoftmax_extremes(sx, sy):
    """2^16 classes (S up to 2^40) and the widest s_x: N · m stays inside int64."""
    x, table = _softmax_rows(1 << 16), exp_table(sx)
    attrs = log_softmax_attrs(sx, sy, 0, -128, 127)
    np.testing.assert_array_equal(run("QLogSoftmax", attrs, [x, table, log_table()]),
                                  ref_qlogsoftmax(x, table, attrs))


def test_qlogsoftmax_at_its_int64_bounds():
    """§6a's worst case: S near 2^47 (2^16 terms of 2^31 − 1), SX = 2^27, d = 255,
    m = 2^27 − 1 at n = 62, so N · m ≈ 2^62.005, past round_shift's 2^62 of
    §1 yet below 2^63 − 2^61; and S = 1 (k = 0, L = −24 · LN2)."""
    top, m = (1 << 31) - 1, (1 << 27) - 1
    x = np.full((2, 1 << 16), -128, np.int8)
    x[:, 0] = 127
    attrs = QLogSoftmaxAttrs(1 << 27, 127, m, 62, -128, 127)
    table = np.full(256, top, np.int32)
    y = run("QLogSoftmax", attrs, [x, table, log_table()])
    np.testing.assert_array_equal(y, ref_qlogsoftmax(x, table, attrs))
    assert (y[:, 1:] == 126).all()  # N · m / 2^62 ≈ 1.004: one code below z_y
    tiny = np.zeros(256, np.int32)
    tiny[0] = 1
    attrs = QLogSoftmaxAttrs(1, 0, m, 40, -128, 127)
    np.testing.assert_array_equal(run("QLogSoftmax", attrs, [x[:, :7], tiny, log_table()]),
                                  ref_qlogsoftmax(x[:, :7], tiny, attrs))


def test_qlogsoftmax_refuses_tables_that_break_its_bounds():
    """The tables are constants the op checks (log_table_problem), naming the node
    when the interpreter runs it."""
    x, exp, logs = np.zeros((2, 5), np.int8), exp_table(0.1), log_table()
    steep = logs.copy()
    steep[1] = 1 << 16
    for bad_exp, bad_log in ((exp * 0, logs), (np.where(np.arange(256) == 4, -1, exp).astype(np.int32), logs),
                             (exp, logs + np.int32(1)), (exp, logs[::-1].copy()), (exp, steep)):
        with pytest.raises(ShapeError, match="exp table must be non-negative|log table must rise from 0"):
            run("QLogSoftmax", log_softmax_attrs(0.1, 0.1, 127, -128, 127), [x, bad_exp, bad_log])
    graph = Graph("g")
    graph.add_tensor(Tensor("x", "i8", (2, 5)))
    graph.add_tensor(Tensor("y", "i8", (2, 5)))
    graph.add_constant("exp", exp * 0)
    graph.add_constant("log", logs)
    graph.add_node(Node("lsm", "QLogSoftmax", ["x", "exp", "log"], ["y"], log_softmax_attrs(0.1, 0.1, 127, -128, 127)))
    graph.inputs, graph.outputs = ["x"], ["y"]
    with pytest.raises(ShapeError, match="QLogSoftmax node 'lsm': its exp table"):
        nnc_run(graph, {"x": x})


def test_qlogsoftmax_tables():
    """Λ is ln(1 + j/256) in Q24 from 0 to LN2, rising by steps below 2^16, and
    §6a's integer L (the floor of the interpolated step) is within 5e-6 nats of
    ln(S / 2^24) for every t's 16 step bits over two segments, and for 10^5
    random sums up to 2^47."""
    lam = log_table()
    assert lam.dtype == np.int32 and lam.shape == (257,) and lam[0] == 0 and lam[-1] == round(2 ** 24 * math.log(2))
    assert 0 < np.diff(lam).min() and np.diff(lam).max() < 1 << 16
    rng = np.random.default_rng(0)
    sums = np.concatenate([np.arange(1 << 24, (1 << 24) + (1 << 17)), rng.integers(1, 1 << 47, 100000)])
    got = log_of_sum(sums.astype(np.int64), lam.astype(np.int64)) / 2 ** 24
    assert np.abs(got - np.log(sums / 2 ** 24)).max() < 5e-6


# -- infer refusals ------------------------------------------------------------------------
def T(spec: str) -> TensorType | None:
    """'i8[1,4,5,5]' -> TensorType; '-' -> None."""
    if spec == "-":
        return None
    dtype, dims = spec.rstrip("]").split("[")
    return TensorType(dtype, tuple(int(d) for d in dims.split(",") if d))


CONV = QConvAttrs((3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1, False, 0, 0, -128, 127)
CONV_IN = "i8[1,4,5,5] i8[6,4,3,3] i32[6] i32[6] i32[6]"
GEMM = QGemmAttrs(0, 0, 0, 255, "u8")
GEMM_IN = "u8[2,8] i8[3,8] i32[3] i32[3] i32[3]"
REQ = RequantizeAttrs(0, 0, 1 << 30, 31, -128, 127)
ADD = QAddAttrs(0, 0, 0, 1 << 30, 1 << 29, 31, -128, 127)
POOL = QAveragePoolAttrs((2, 2), (2, 2), (0, 0, 0, 0), False, 0, 0, 1 << 30, 33, 0, 255, "u8")
SOFTMAX = QSoftmaxAttrs(0, 1 << 30, 22, 0, 255, "u8")
SOFTMAX_IN = "u8[2,10] i32[256]"


def _case(op, attrs, types, **changes):
    return op, dataclasses.replace(attrs, **changes) if changes else attrs, types


REFUSED = {
    "conv-x-f32": _case("QConv", CONV, CONV_IN.replace("i8[1", "f32[1")),
    "conv-x-i32": _case("QConv", CONV, CONV_IN.replace("i8[1", "i32[1")),
    "conv-w-u8": _case("QConv", CONV, CONV_IN.replace("i8[6", "u8[6")),
    "conv-bias-i64": _case("QConv", CONV, "i8[1,4,5,5] i8[6,4,3,3] i64[6] i32[6] i32[6]"),
    "conv-bias-shape": _case("QConv", CONV, "i8[1,4,5,5] i8[6,4,3,3] i32[5] i32[6] i32[6]"),
    "conv-multiplier-shape": _case("QConv", CONV, "i8[1,4,5,5] i8[6,4,3,3] i32[6] i32[1] i32[6]"),
    "conv-shift-missing": _case("QConv", CONV, "i8[1,4,5,5] i8[6,4,3,3] i32[6] i32[6] -"),
    "conv-shift-i64": _case("QConv", CONV, "i8[1,4,5,5] i8[6,4,3,3] - i32[6] i64[6]"),
    "conv-four-inputs": _case("QConv", CONV, "i8[1,4,5,5] i8[6,4,3,3] i32[6] i32[6]"),
    "conv-group": _case("QConv", CONV, CONV_IN, group=3),
    "conv-rank": _case("QConv", CONV, CONV_IN.replace("i8[1,4,5,5]", "i8[4,5]")),
    "conv-kernel-too-big": _case("QConv", CONV, CONV_IN.replace("i8[1,4,5,5]", "i8[1,4,1,1]"), pads=(0,) * 4),
    "conv-clamp-reversed": _case("QConv", CONV, CONV_IN, out_min=10, out_max=9),
    "conv-clamp-below-i8": _case("QConv", CONV, CONV_IN, out_min=-129),
    "conv-clamp-above-u8": _case("QConv", CONV, CONV_IN, out_dtype="u8", out_min=0, out_max=256),
    "conv-clamp-below-u8": _case("QConv", CONV, CONV_IN, out_dtype="u8", out_min=-1, out_max=255),
    "conv-out-i32": _case("QConv", CONV, CONV_IN, out_dtype="i32"),
    "conv-out-f32": _case("QConv", CONV, CONV_IN, out_dtype="f32"),
    "conv-out-unknown": _case("QConv", CONV, CONV_IN, out_dtype="q7"),
    "conv-y-zero-point": _case("QConv", CONV, CONV_IN, y_zero_point=128),
    "conv-x-zero-point": _case("QConv", CONV, CONV_IN, x_zero_point=128),
    "gemm-x-rank": _case("QGemm", GEMM, GEMM_IN.replace("u8[2,8]", "u8[1,2,8]")),
    "gemm-k": _case("QGemm", GEMM, GEMM_IN.replace("u8[2,8]", "u8[2,7]")),
    "gemm-x-f32": _case("QGemm", GEMM, GEMM_IN.replace("u8[2", "f32[2")),
    "gemm-w-i16": _case("QGemm", GEMM, GEMM_IN.replace("i8[3", "i16[3")),
    "gemm-bias-shape": _case("QGemm", GEMM, "u8[2,8] i8[3,8] i32[8] i32[3] i32[3]"),
    "gemm-clamp": _case("QGemm", GEMM, GEMM_IN, out_min=-1),
    "gemm-x-zero-point": _case("QGemm", GEMM, GEMM_IN, x_zero_point=-1),
    "requantize-x-i32": _case("Requantize", REQ, "i32[2,3]"),
    "requantize-x-f32": _case("Requantize", REQ, "f32[2,3]"),
    "requantize-clamp": _case("Requantize", REQ, "i8[2,3]", out_max=128),
    "requantize-out-i16": _case("Requantize", REQ, "i8[2,3]", out_dtype="i16"),
    "requantize-x-zero-point": _case("Requantize", REQ, "u8[2,3]", x_zero_point=-1),
    "requantize-multiplier-big": _case("Requantize", REQ, "i8[2,3]", multiplier=1 << 31),
    "requantize-multiplier-negative": _case("Requantize", REQ, "i8[2,3]", multiplier=-1),
    "requantize-shift-0": _case("Requantize", REQ, "i8[2,3]", shift=0),
    "requantize-shift-63": _case("Requantize", REQ, "i8[2,3]", shift=63),
    "add-shapes": _case("QAdd", ADD, "i8[2,3] i8[2]"),
    "add-a-f32": _case("QAdd", ADD, "f32[2,3] i8[3]"),
    "add-b-i16": _case("QAdd", ADD, "i8[2,3] i16[3]"),
    "add-a-zero-point": _case("QAdd", ADD, "i8[2,3] i8[3]", a_zero_point=128),
    "add-b-zero-point": _case("QAdd", ADD, "i8[2,3] u8[3]", b_zero_point=-1),
    "add-multiplier": _case("QAdd", ADD, "i8[2,3] i8[3]", b_multiplier=1 << 31),
    "add-shift": _case("QAdd", ADD, "i8[2,3] i8[3]", shift=0),
    "add-clamp": _case("QAdd", ADD, "i8[2,3] i8[3]", out_min=5, out_max=4),
    "lut-table-size": _case("QLut", NoAttrs(), "i8[4] i8[255]"),
    "lut-table-2d": _case("QLut", NoAttrs(), "i8[4] i8[16,16]"),
    "lut-table-i32": _case("QLut", NoAttrs(), "i8[4] i32[256]"),
    "lut-x-f32": _case("QLut", NoAttrs(), "f32[4] i8[256]"),
    "lut-x-i16": _case("QLut", NoAttrs(), "i16[4] u8[256]"),
    "pool-rank": _case("QAveragePool", POOL, "u8[3,4]"),
    "pool-x-i32": _case("QAveragePool", POOL, "i32[1,3,4,4]"),
    "pool-window": _case("QAveragePool", POOL, "u8[1,3,4,4]", kernel_shape=(5, 5)),
    "pool-negative-pad": _case("QAveragePool", POOL, "u8[1,3,4,4]", pads=(-1, 0, 0, 0)),
    "pool-geometry-rank": _case("QAveragePool", POOL, "u8[1,3,4]"),
    "pool-clamp": _case("QAveragePool", POOL, "u8[1,3,4,4]", out_max=300),
    "pool-x-zero-point": _case("QAveragePool", POOL, "u8[1,3,4,4]", x_zero_point=256),
    "pool-shift": _case("QAveragePool", POOL, "u8[1,3,4,4]", shift=63),
    "softmax-table-i16": _case("QSoftmax", SOFTMAX, "u8[2,10] i16[256]"),
    "softmax-table-size": _case("QSoftmax", SOFTMAX, "u8[2,10] i32[255]"),
    "softmax-x-f32": _case("QSoftmax", SOFTMAX, "f32[2,10] i32[256]"),
    "softmax-scalar": _case("QSoftmax", SOFTMAX, "u8[] i32[256]"),
    "softmax-classes": _case("QSoftmax", SOFTMAX, "u8[1,65537] i32[256]"),
    "softmax-clamp": _case("QSoftmax", SOFTMAX, SOFTMAX_IN, out_min=-1),
    "softmax-multiplier": _case("QSoftmax", SOFTMAX, SOFTMAX_IN, multiplier=1 << 31),
    "softmax-shift": _case("QSoftmax", SOFTMAX, SOFTMAX_IN, shift=0),
}


@pytest.mark.parametrize("op, attrs, types", REFUSED.values(), ids=REFUSED.keys())
def test_infer_refuses(op, attrs, types):
    with pytest.raises(ShapeError):
        get_op(op).infer(attrs, [T(s) for s in types.split()])


@pytest.mark.parametrize("op, attrs, types, expected", [
    ("QConv", CONV, CONV_IN, "i8[1,6,5,5]"),
    ("QConv", dataclasses.replace(CONV, channels_last=True, group=2, x_zero_point=-128),
     "i8[1,5,5,4] i8[6,2,3,3] - i32[6] i32[6]", "i8[1,5,5,6]"),
    ("QGemm", GEMM, GEMM_IN, "u8[2,3]"),
    ("Requantize", REQ, "u8[2,3]", "i8[2,3]"),
    ("QAdd", ADD, "i8[2,1] u8[3]", "i8[2,3]"),
    ("QLut", NoAttrs(), "i8[4] u8[256]", "u8[4]"),
    ("QAveragePool", POOL, "u8[1,3,4,4]", "u8[1,3,2,2]"),
    ("QSoftmax", SOFTMAX, "i8[1,65536] i32[256]", "u8[1,65536]"),
])
def test_infer_accepts(op, attrs, types, expected):
    assert get_op(op).infer(attrs, [T(s) for s in types.split()]) == [T(expected)]
