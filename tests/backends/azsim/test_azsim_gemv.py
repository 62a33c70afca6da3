"""The single-row QGemm (backends/azsim/gemv.py) against docs/numerics.md on
Python integers: both of its forms (requantization folded into float64 weights
for small layers, float32/float64 gemv then the float requantization for large
ones), raw and centred rows, the float32/float64 boundary at 2^24, clamps that
saturate both ways, i8 and u8 inputs and outputs, zero multipliers, the int64
fallback when the float path is not exact, and activation skipping's counts."""

from __future__ import annotations

import numpy as np
import pytest
from azsim_testing import ProgramBuilder, machine, mac_layer

from nnc.backends.azsim import gemv, mac
from nnc.backends.azsim.program import DTYPE_CODES
from nnc.backends.azsim.simulator import simulate
from nnc.numerics import quantize_multipliers

RNG = np.random.default_rng(20261204)


def reference(x, w, bias, m, n, zx, zy, lo, hi) -> np.ndarray:
    """y[c] = clamp(z_y + ((acc·m + 2^(n−1)) >> n), lo, hi), acc = bias + Σ (x − z_x)·w, in Python integers."""
    out = []
    for c in range(w.shape[0]):
        acc = int(bias[c]) + sum((int(v) - zx) * int(wc) for v, wc in zip(x[0], w[c]))
        out.append(min(max(zy + ((acc * int(m[c]) + (1 << (int(n[c]) - 1))) >> int(n[c])), lo), hi))
    return np.array([out])


@pytest.fixture
def taken(monkeypatch):
    """Records, per QGemm built, (raw, accumulator dtype, the form taken: "prescaled"
    (float64 weights), "run" (gemv, then the requantization) or None (not flat))."""
    seen = []

    def spy(weights, dtype, x, zx, raw, out, requantizer):
        flat = gemv.single_row(weights, dtype, x, zx, raw, out, requantizer)
        seen.append((raw, dtype, None if flat is None else flat.__name__))
        return flat
    monkeypatch.setattr(mac, "single_row", spy)
    return seen


def run_gemv(x, w, bias, m, n, zx, zy, lo, hi, x_dtype="i8", out_dtype="i8", hw=None):
    b = ProgramBuilder()
    params = dict(x_zero_point=zx, y_zero_point=zy, out_min=lo, out_max=hi, out_dtype=DTYPE_CODES[out_dtype])
    y = mac_layer(b, "QGemm", b.input("x", x_dtype, x.shape), w, bias, m, n, (1, w.shape[0]), params,
                  out_dtype=out_dtype)
    out, stats = simulate(b.program(y), {"x": x}, hw)
    return out["y"], stats


CASES = [  # (K, N, x dtype, z_x, out dtype, z_y, lo, hi, uniform multiplier)
    (30, 10, "i8", -128, "i8", -128, -128, 127, True),    # small: folded into float64 weights
    (30, 10, "i8", 5, "i8", 7, -20, 30, False),            # narrow clamp, per-channel multipliers
    (64, 12, "u8", 128, "u8", 3, 0, 255, False),
    (8, 128, "i8", 0, "u8", 0, 0, 255, False),             # i8 in, u8 out
    (200, 64, "i8", -128, "i8", -128, -128, 127, True),   # large (12800 weights): float32 gemv
    (200, 64, "u8", 100, "i8", 96, -128, 127, False),
    (640, 16, "i8", 3, "u8", 200, 10, 250, False),
]


@pytest.mark.parametrize("k, n_out, x_dtype, zx, out_dtype, zy, lo, hi, uniform", CASES)
def test_single_row_equals_the_integer_formula(taken, k, n_out, x_dtype, zx, out_dtype, zy, lo, hi, uniform):
    info = np.iinfo(np.int8 if x_dtype == "i8" else np.uint8)
    # the float requantization is exact while (bound + |bias|)·m < 2^52, m ~ 2^31: bound = Σ|w|·255 < 2^21
    top = 127 if k * 255 * 127 < 1 << 21 else 15
    w = RNG.integers(-top, top + 1, (n_out, k)).astype(np.int8)
    w[0, :] = 0                                            # an all-zero channel
    bias = RNG.integers(-20000, 20000, n_out)
    scales = np.full(n_out, 2e-4) if uniform else RNG.uniform(5e-5, 5e-3, n_out)
    m, n = quantize_multipliers(scales)
    if not uniform:
        m[1] = 0                                           # a zero multiplier: y = clamp(z_y)
    for trial in range(6):
        x = RNG.integers(info.min, info.max + 1, (1, k))
        if trial == 1:
            x[:] = info.min
        if trial == 2:
            x[:] = info.max
        if trial == 3:
            x[:] = zx
        x = x.astype(info.dtype)
        y, _ = run_gemv(x, w, bias, m, n, zx, zy, lo, hi, x_dtype, out_dtype)
        np.testing.assert_array_equal(y, reference(x, w, bias, m, n, zx, zy, lo, hi))
    form = "prescaled" if k * n_out <= gemv.PRESCALE_LIMIT else "run"
    assert [flat for _, _, flat in taken] == [form] * 6


def test_clamps_saturate_both_ways(taken):
    """Large multipliers: most outputs hit lo or hi; both forms."""
    for k, n_out, top, scale in ((40, 8, 127, 0.05), (300, 40, 15, 0.2)):
        w = RNG.integers(-top, top + 1, (n_out, k)).astype(np.int8)
        bias = np.zeros(n_out, np.int64)
        m, n = quantize_multipliers(np.full(n_out, scale))
        x = RNG.integers(-128, 128, (1, k)).astype(np.int8)
        y, _ = run_gemv(x, w, bias, m, n, 0, 2, -100, 90)
        expected = reference(x, w, bias, m, n, 0, 2, -100, 90)
        np.testing.assert_array_equal(y, expected)
        assert (expected == -100).any() and (expected == 90).any()
    assert [flat for _, _, flat in taken] == ["prescaled", "run"]


@pytest.mark.parametrize("n_out", [3, 16])
def test_centred_row_when_raw_sums_need_float64(taken, n_out):
    """u8 with z_x = 128 and |w| = 127 over K = 600: centred sums stay below 2^24
    (float32), raw ones would not, so the row is x − z_x; 3·600 weights take the
    float64-weights form, 16·600 the gemv form. Multipliers below 64 keep the
    float requantization exact."""
    k = 600
    w = np.where(RNG.random((n_out, k)) < 0.5, 127, -127).astype(np.int8)
    bias = RNG.integers(-1000, 1000, n_out)
    m, n = RNG.integers(0, 64, n_out), np.full(n_out, 24)
    for x in (RNG.integers(0, 256, (1, k)), np.where(w[:1] > 0, 255, 0), np.where(w[:1] > 0, 0, 255)):
        x = x.astype(np.uint8)
        y, _ = run_gemv(x, w, bias, m, n, 128, 1, 0, 255, "u8", "u8")
        np.testing.assert_array_equal(y, reference(x, w, bias, m, n, 128, 1, 0, 255))
    form = "prescaled" if n_out * k <= gemv.PRESCALE_LIMIT else "run"
    assert taken == [(False, np.float32, form)] * 3


@pytest.mark.parametrize("n_out", [6, 20])
@pytest.mark.parametrize("total, dtype", [((1 << 24) // 128 - 1, np.float32), ((1 << 24) // 128, np.float64)])
def test_sums_at_the_float32_limit(taken, n_out, total, dtype):
    """Raw i8 sums reach Σ|w|·128: just below 2^24 they run in float32, at 2^24
    in float64; the extreme rows (every product at its largest, one sign) are
    exact. Small multipliers (m = 3) keep the float requantization exact;
    6·1033 weights take the float64-weights form, 20·1033 the gemv form."""
    k = -(-total // 127)
    w = np.full((n_out, k), 127, np.int64)
    w[:, -1] = total - 127 * (k - 1)
    w[1::2] *= -1
    w = w.astype(np.int8)
    bias = np.arange(n_out) - 10
    m, n = np.full(n_out, 3), np.full(n_out, 20)
    for x in (np.full((1, k), -128), np.full((1, k), 127), RNG.integers(-128, 128, (1, k))):
        x = x.astype(np.int8)
        y, _ = run_gemv(x, w, bias, m, n, 0, 0, -128, 127)
        np.testing.assert_array_equal(y, reference(x, w, bias, m, n, 0, 0, -128, 127))
    form = "prescaled" if n_out * k <= gemv.PRESCALE_LIMIT else "run"
    assert taken == [(True, dtype, form)] * 3


def test_no_exact_float_path_falls_back_to_int64(taken):
    """(bound + |bias|)·m + 2^(n−1) ≥ 2^52: the float path is not exact, the
    general (int64) requantization runs, and agrees with the formula."""
    k, n_out = 100, 4
    w = RNG.integers(-127, 128, (n_out, k)).astype(np.int8)
    bias = np.array([4_000_000, -3_000_000, 1_000_000, -200_000])
    m, n = np.full(n_out, (1 << 31) - 1), np.full(n_out, 44)
    x = RNG.integers(-128, 128, (1, k)).astype(np.int8)
    y, _ = run_gemv(x, w, bias, m, n, 0, 0, -128, 127)
    np.testing.assert_array_equal(y, reference(x, w, bias, m, n, 0, 0, -128, 127))
    assert taken == [(True, np.float32, None)]


@pytest.mark.parametrize("k, n_out", [(30, 10), (200, 64)])
def test_activation_skipping_counts(taken, k, n_out):
    """With activation skipping a MAC runs where x ≠ z_x and its weight is not zero
    (zero_skip_group 1); the outputs are the same."""
    zx = 3
    w = RNG.integers(-3, 4, (n_out, k)).astype(np.int8)
    bias = RNG.integers(-50, 50, n_out)
    m, n = quantize_multipliers(RNG.uniform(1e-3, 1e-2, n_out))
    x = np.where(RNG.random((1, k)) < 0.5, zx, RNG.integers(-128, 128, (1, k))).astype(np.int8)
    y, stats = run_gemv(x, w, bias, m, n, zx, 0, -128, 127, hw=machine(skip_zero_activations=True))
    np.testing.assert_array_equal(y, reference(x, w, bias, m, n, zx, 0, -128, 127))
    assert stats.macs_executed == int(((x[0] != zx)[None, :] & (w != 0)).sum())
    assert stats.macs_total == k * n_out
    assert taken == [(True, np.float32, "prescaled" if k * n_out <= gemv.PRESCALE_LIMIT else "run")]


def nearest_steps(m: int, n: int, span: int) -> tuple[int, int]:
    """Over accumulators |a| ≤ span: the one whose a·m + 2^(n−1) lies closest above
    a multiple of 2^n (the output just reached a step) and the one closest below
    (just short of the next)."""
    a = np.arange(-span, span + 1, dtype=np.int64)
    residue = (a * m + (1 << (n - 1))) & ((1 << n) - 1)
    return int(a[np.argmin(residue)]), int(a[np.argmax(residue)])


@pytest.mark.parametrize("k, n_out", [(12, 40), (200, 64)])
def test_rounding_boundaries(taken, k, n_out):
    """Accumulators on the rounding's steps: even channels exactly on a tie
    (m = 3·2^20, n = 21: y = z_y + ⌊1.5·a + 0.5⌋, a tie at every odd a), odd
    channels, with 31-bit multipliers and small scales, at the accumulators that
    come closest to a step from above or from below. Any inexact product or sum,
    or a rounding other than half up, shows there first."""
    w = RNG.integers(-15, 16, (n_out, k)).astype(np.int8)
    x = RNG.integers(-128, 128, (1, k)).astype(np.int8)
    zx, zy, lo, hi = -7, 5, -128, 127
    m, n, target = np.zeros(n_out, np.int64), np.zeros(n_out, np.int64), np.zeros(n_out, np.int64)
    for c in range(n_out):
        if c % 2 == 0:
            m[c], n[c], target[c] = 3 << 20, 21, 2 * int(RNG.integers(-40, 40)) + 1
        else:
            m[c], n[c] = int(RNG.integers(1 << 30, 1 << 31)), int(RNG.integers(38, 41))
            span = int(100 * 2.0 ** int(n[c]) / int(m[c]))  # |value| ≤ 100
            target[c] = nearest_steps(int(m[c]), int(n[c]), span)[c % 4 == 1]
    sums = np.array([sum((int(v) - zx) * int(wc) for v, wc in zip(x[0], w[c])) for c in range(n_out)])
    bias = target - sums
    y, _ = run_gemv(x, w, bias, m, n, zx, zy, lo, hi)
    np.testing.assert_array_equal(y, reference(x, w, bias, m, n, zx, zy, lo, hi))
    assert taken == [(True, np.float32, "prescaled" if k * n_out <= gemv.PRESCALE_LIMIT else "run")]
