"""compiler/numerics.py against exact rational arithmetic (docs/numerics.md §1–2).

Each primitive is compared with a reference written with `fractions.Fraction` and
Python integers, which never round or overflow: on every binade of float64 and
the edges inside it (quantize_multiplier), on every shift 1..62 with the extremes
of int64 (round_shift), and on random values drawn by hypothesis.
"""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from nnc.errors import UnsupportedError
from nnc.numerics import (MAX_SHIFT, accumulator_bound, quantize_multiplier, quantize_multipliers,
                          requantize, round_shift)

INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
HALF = Fraction(1, 2)
TOP = 1 << 30  # multipliers must be below 2^30


# -- references ---------------------------------------------------------------------
def ref_round_shift(v: int, n: int) -> int:
    """floor(v / 2^n + 1/2), exactly."""
    return math.floor(Fraction(v, 1 << n) + HALF)


def ref_requantize(acc: int, m: int, n: int, zp: int, lo: int, hi: int) -> int:
    return min(max(zp + math.floor(Fraction(acc * m, 1 << n) + HALF), lo), hi)


def binade(value: Fraction) -> int:
    """e with 2^(e-1) <= value < 2^e, exactly."""
    e = value.numerator.bit_length() - value.denominator.bit_length()
    while value >= Fraction(2) ** e:
        e += 1
    while value < Fraction(2) ** (e - 1):
        e -= 1
    return e


def ref_quantize_multiplier(real: float) -> tuple[int, int]:
    """The closest m · 2^-n to `real` with m ∈ [2^30, 2^31), 1 <= n <= 62 (ties to
    the even mantissa); below 2^-32, n = 62 and m = round(real · 2^62)."""
    exact = Fraction(real)
    n = 31 - binade(exact)  # exact · 2^n ∈ [2^30, 2^31)
    if n > MAX_SHIFT:
        return round(exact * (1 << MAX_SHIFT)), MAX_SHIFT
    m = round(exact * Fraction(2) ** n)  # Fraction rounds half to even
    if m == 1 << 31:
        m, n = 1 << 30, n - 1
    if n < 1:  # rounds to 2^30, which needs n = 0: take the largest value with n = 1
        m, n = (1 << 31) - 1, 1
    return m, n


# -- quantize_multiplier --------------------------------------------------------------
def _edge_mantissas() -> list[int]:
    """53-bit significands u (float = u · 2^k) at the edges of the 31-bit rounding:
    the binade's ends, the carry to 2^31 (u >= 2^53 - 2^21) and its tie, and ties
    on odd and even mantissas (u ≡ 2^21 mod 2^22)."""
    lo, hi, tie = 1 << 52, 1 << 53, 1 << 21
    return [lo, lo + 1, lo + tie, lo + 3 * tie, lo + 3 * tie + 1, lo + 5 * tie - 1,
            hi - tie - 1, hi - tie, hi - tie + 1, hi - 2, hi - 1, lo + 0x5DEECE66D]


def _check_multiplier(real: float) -> None:
    m, n = quantize_multiplier(real)
    assert type(m) is int and type(n) is int
    assert (m, n) == ref_quantize_multiplier(real), real
    exact, got = Fraction(real), Fraction(m, 1 << n)
    assert 1 <= n <= MAX_SHIFT
    if exact >= Fraction(1, 1 << 32):
        assert TOP <= m < 1 << 31
        assert abs(got - exact) < exact / (1 << 31)  # the documented relative error
        if exact < TOP - Fraction(1, 4):
            assert abs(got - exact) <= Fraction(1, 1 << (n + 1))  # half a unit of m
    else:
        assert n == MAX_SHIFT and 0 <= m <= TOP
        assert abs(got - exact) <= Fraction(1, 1 << (MAX_SHIFT + 1))


def test_quantize_multiplier_every_binade():
    """Every float64 binade below 2^30, subnormals included, at its edges."""
    for k in range(-1074 - 53, 30 - 52):
        for u in _edge_mantissas():
            real = math.ldexp(u, k)
            if 0 < real < TOP:
                _check_multiplier(real)


@pytest.mark.parametrize("real", [
    5e-324, 2.0 ** -1022, 2.0 ** -63, math.nextafter(2.0 ** -63, 1), 2.0 ** -62, 1.5 * 2.0 ** -63,
    2.0 ** -33, math.nextafter(2.0 ** -32, 0), 2.0 ** -32, math.nextafter(2.0 ** -32, 1),
    (1 - 2.0 ** -32) * 2.0 ** -32, (1 - 2.0 ** -33) * 2.0 ** -32, 2.0 ** -31 - 2.0 ** -64,
    0.5, 1.0, 1 - 2.0 ** -32, 1 - 2.0 ** -33, 1 - 2.0 ** -53, 1 / 3, 0.1, 255 / 256,
    2.0 ** 29, TOP - 0.5, TOP - 0.375, TOP - 0.25, math.nextafter(TOP - 0.25, 0),
    math.nextafter(TOP, 0),
])
def test_quantize_multiplier_edges(real):
    _check_multiplier(real)


def test_quantize_multiplier_just_below_top():
    """M in [2^30 − 1/4, 2^30) is below the documented limit: it gets the largest
    representable value (2^31 − 1) · 2^-1 rather than a refusal."""
    assert quantize_multiplier(math.nextafter(TOP, 0)) == ((1 << 31) - 1, 1)
    assert quantize_multiplier(TOP - 0.25) == ((1 << 31) - 1, 1)
    assert quantize_multiplier(TOP - 0.5) == ((1 << 31) - 1, 1)
    assert quantize_multiplier(TOP - 0.75) == ((1 << 31) - 2, 1)


@st.composite
def multipliers(draw):
    """Positive floats below 2^30, biased toward the rounding edges."""
    k = draw(st.integers(-1074 - 53, 30 - 53))
    u = draw(st.one_of(st.integers(1 << 52, (1 << 53) - 1), st.sampled_from(_edge_mantissas()),
                       st.integers(0, (1 << 30) - 1).map(lambda j: (1 << 52) + (j << 22) + (1 << 21))))
    real = math.ldexp(u, k)
    return real if 0 < real < TOP else draw(st.floats(5e-324, TOP, exclude_max=True))


@settings(max_examples=1500, deadline=None)
@given(multipliers())
def test_quantize_multiplier_random(real):
    _check_multiplier(real)


@pytest.mark.parametrize("real", [0.0, -0.0, -1.0, -5e-324, -2.0 ** 40, math.nan, -math.nan, math.inf,
                                  -math.inf, float(TOP), math.nextafter(TOP, math.inf), 2.0 ** 31,
                                  1e300, np.finfo(np.float64).max])
def test_quantize_multiplier_refuses(real):
    with pytest.raises(UnsupportedError):
        quantize_multiplier(real)


def test_tiny_multipliers_lose_nothing():
    """Below 2^-32 the capped shift still gives the exact result, 0, for |acc| < 2^31."""
    acc = np.array([-(1 << 31) + 1, -1, 0, 1, (1 << 31) - 1])
    for real in (math.nextafter(2.0 ** -32, 0), 2.0 ** -40, 2.0 ** -63, 5e-324):
        m, n = quantize_multiplier(real)
        assert list(requantize(acc, m, n, 0, INT64_MIN, INT64_MAX)) == [0] * 5


@pytest.mark.parametrize("reals", [[[1e-3, 0.5, 2.0 ** -40], [1.0, 3.7, TOP - 0.1]],
                                   [[1e-3, 2.0 ** -33, 2.0 ** -32 * 0.75], [2.0 ** -62, 5e-300, 0.9]]])
def test_quantize_multipliers_vector(reals):
    """As quantize_multiplier element by element, also with shifts clamped to
    MAX_SHIFT (the second case, computed on whole arrays)."""
    reals = np.array(reals)
    m, n = quantize_multipliers(reals)
    assert m.dtype == n.dtype == np.int32 and m.shape == n.shape == reals.shape
    assert [(int(a), int(b)) for a, b in zip(m.ravel(), n.ravel())] == \
        [quantize_multiplier(float(r)) for r in reals.ravel()]
    with pytest.raises(UnsupportedError):
        quantize_multipliers([0.5, 0.0])


@given(st.lists(st.floats(2.0 ** -1074, 2.0 ** 30 - 1), min_size=1, max_size=8))
def test_quantize_multipliers_equals_the_scalar_form(reals):
    m, n = quantize_multipliers(reals)
    assert list(zip(m.tolist(), n.tolist())) == [quantize_multiplier(r) for r in reals]


# -- round_shift -----------------------------------------------------------------------
def _round_shift_values(n: int) -> list[int]:
    """Ties, their neighbours, zero and the extremes for which v + 2^(n-1) fits int64."""
    half, unit = 1 << (n - 1), 1 << n
    values = {INT64_MIN, INT64_MIN + 1, INT64_MAX - half, INT64_MAX - half - 1, -(1 << 62), (1 << 62) - 1}
    for k in (-(1 << (62 - n)), -3, -2, -1, 0, 1, 2, 5, (1 << (62 - n)) - 1):
        for d in (-1, 0, 1, half - 1, half, half + 1):
            values.add(k * unit + d)
    return sorted(v for v in values if INT64_MIN <= v <= INT64_MAX - half)


@pytest.mark.parametrize("n", range(1, MAX_SHIFT + 1))
def test_round_shift_every_shift(n):
    values = _round_shift_values(n)
    got = round_shift(np.array(values, np.int64), n)
    assert got.dtype == np.int64
    assert got.tolist() == [ref_round_shift(v, n) for v in values]


def test_round_shift_broadcasts_shifts():
    """Per-element shifts: values [V, 1] against shifts [62]."""
    values = [-(1 << 62), -(1 << 40) - 1, -3, -1, 0, 1, 3, (1 << 40) + (1 << 39), (1 << 62) - 1]
    shifts = np.arange(1, MAX_SHIFT + 1)
    got = round_shift(np.array(values, np.int64)[:, None], shifts.astype(np.int32))
    assert got.tolist() == [[ref_round_shift(v, int(n)) for n in shifts] for v in values]


@st.composite
def shifted_values(draw):
    n = draw(st.integers(1, MAX_SHIFT))
    bits = draw(st.integers(0, 63))
    v = draw(st.integers(-(1 << bits), (1 << bits) - 1))
    return min(max(v, INT64_MIN), INT64_MAX - (1 << (n - 1))), n


@settings(max_examples=500, deadline=None)
@given(shifted_values())
@example((INT64_MIN, 62)).via("most negative int64")
@example((INT64_MAX - (1 << 61), 62)).via("largest value that cannot overflow")
def test_round_shift_random(case):
    v, n = case
    assert int(round_shift(v, n)) == ref_round_shift(v, n)


# -- requantize ------------------------------------------------------------------------
accumulators = st.integers(-(1 << 31) + 1, (1 << 31) - 1)
mantissas = st.one_of(st.integers(1 << 30, (1 << 31) - 1), st.integers(0, (1 << 31) - 1))
shifts = st.integers(1, MAX_SHIFT)


@settings(max_examples=500, deadline=None)
@given(accumulators, mantissas, shifts, st.integers(-128, 255), st.integers(-300, 300), st.integers(0, 600))
def test_requantize_scalar(acc, m, n, zp, lo, width):
    hi = lo + width
    assert int(requantize(acc, m, n, zp, lo, hi)) == ref_requantize(acc, m, n, zp, lo, hi)


@pytest.mark.parametrize("n", [1, 2, 30, 31, 32, 61, 62])
def test_requantize_extremes(n):
    """|acc| and m at their largest: acc · m + 2^(n-1) stays inside int64."""
    accs = [-(1 << 31) + 1, -(1 << 30) - 1, -1, 0, 1, (1 << 31) - 1]
    for m in ((1 << 31) - 1, 1 << 30, 1):
        got = requantize(np.array(accs), m, n, 0, INT64_MIN, INT64_MAX)
        assert got.tolist() == [ref_requantize(a, m, n, 0, INT64_MIN, INT64_MAX) for a in accs]


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2 ** 32 - 1), st.integers(1, 5), st.booleans())
def test_requantize_per_channel(seed, channels, channels_last):
    """Per-channel (m, n) broadcast along axis 1 ([C, 1, 1]) or the last axis ([C])."""
    rng = np.random.default_rng(seed)
    shape = (2, 3, 4, channels) if channels_last else (2, channels, 3, 4)
    acc = rng.integers(-(1 << 31) + 1, 1 << 31, shape)
    acc.flat[:4] = [(1 << 31) - 1, -(1 << 31) + 1, 0, 1 << 20]
    m = rng.integers(1 << 30, 1 << 31, channels)
    n = rng.integers(1, MAX_SHIFT + 1, channels)
    zp, lo, hi = int(rng.integers(-128, 128)), -128, 127
    view = (channels,) if channels_last else (channels, 1, 1)
    got = requantize(acc, m.reshape(view).astype(np.int32), n.reshape(view).astype(np.int32), zp, lo, hi)
    assert got.shape == shape
    for index in np.ndindex(*shape):
        c = index[-1] if channels_last else index[1]
        assert got[index] == ref_requantize(int(acc[index]), int(m[c]), int(n[c]), zp, lo, hi)


# -- accumulator_bound ---------------------------------------------------------------------
@st.composite
def small_weights(draw, max_k=8):
    """(int8 weights, channel axis): up to 3 channels of at most `max_k` weights."""
    rest = draw(st.lists(st.integers(1, 3), max_size=2).filter(lambda r: math.prod(r) <= max_k))
    axis = draw(st.integers(0, len(rest)))
    shape = (*rest[:axis], draw(st.integers(1, 3)), *rest[axis:])
    values = draw(st.lists(st.integers(-128, 127), min_size=math.prod(shape), max_size=math.prod(shape)))
    return np.array(values, np.int8).reshape(shape), axis - len(shape) if draw(st.booleans()) else axis


def _brute_force_bound(weights: np.ndarray, axis: int, inputs) -> list[int]:
    """max |Σ x_k · w[c, k]| over every input vector x drawn from `inputs`."""
    rows = np.moveaxis(weights, axis, 0).reshape(weights.shape[axis], -1).tolist()
    return [max(abs(sum(x * w for x, w in zip(xs, row))) for xs in itertools.product(inputs, repeat=len(row)))
            for row in rows]


@settings(max_examples=60, deadline=None)
@given(small_weights())
def test_accumulator_bound_is_the_max_over_inputs(case):
    """The bound is reached (by x = ±255) and is the max over all corners of the input box."""
    weights, axis = case
    got = accumulator_bound(weights, axis)
    assert got.tolist() == _brute_force_bound(weights, axis, (-255, 255))
    k = weights.size // weights.shape[axis]
    max_w = np.abs(np.moveaxis(weights.astype(np.int64), axis, 0).reshape(weights.shape[axis], -1)).max(axis=1)
    assert (got <= k * max_w * 255).all()  # never looser than K · max|w| · 255


@settings(max_examples=30, deadline=None)
@given(small_weights(max_k=4), st.integers(1, 3))
def test_accumulator_bound_every_input(case, span):
    """With a small span, brute force over every integer input, not only the corners."""
    weights, axis = case
    assert accumulator_bound(weights, axis, span).tolist() == \
        _brute_force_bound(weights, axis, range(-span, span + 1))


def test_requantize_with_bias_equals_adding_the_bias_first():
    """The bias folded into the rounding term gives (acc + bias)'s result bit for
    bit, also where int64 products wrap around."""
    from nnc.numerics import requantize

    rng = np.random.default_rng(7)
    for acc_span in (1 << 20, 1 << 40, 1 << 62):
        acc = rng.integers(-acc_span, acc_span, (2, 6, 5, 4), dtype=np.int64)
        bias = rng.integers(-(1 << 31), 1 << 31, (1, 6, 1, 1), dtype=np.int64).astype(np.int32)
        mantissa = rng.integers(0, 1 << 31, (1, 6, 1, 1)).astype(np.int32)
        shift = rng.integers(1, 63, (1, 6, 1, 1)).astype(np.int32)
        with np.errstate(over="ignore"):
            expected = requantize(acc + bias.astype(np.int64), mantissa, shift, -3, -128, 127)
            assert np.array_equal(requantize(acc, mantissa, shift, -3, -128, 127, bias), expected)
