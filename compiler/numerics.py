"""The integer primitives of nnc's numerics contract (docs/numerics.md).

Everything the reference interpreter, the generated C and the az-sim simulator
compute on quantized tensors reduces to these few functions, so they are defined
once, here, and tested exhaustively against exact rational arithmetic.

- A real multiplier M > 0 is stored as an int32 mantissa m and a right shift n:
  M ≈ m · 2^-n with m ∈ [2^30, 2^31) and 1 ≤ n ≤ 62 (for M < 2^-32 the mantissa
  is allowed below 2^30 so that n stays ≤ 62; M ≥ 2^30 is refused).
- `round_shift(v, n) = (v + 2^(n-1)) >> n`: division by 2^n rounding half up
  (toward +∞), with an arithmetic shift on int64.
- `requantize(acc, m, n, zp, lo, hi) = clamp(zp + round_shift(acc · m, n), lo, hi)`:
  the only rounding step of every multiply-accumulate layer; |acc| < 2^31 and
  m < 2^31 keep acc · m + 2^(n-1) inside int64.
"""

from __future__ import annotations

import math

import numpy as np

from .errors import UnsupportedError

MANTISSA_BITS = 31
MAX_SHIFT = 62


def quantize_multiplier(real: float, bits: int = MANTISSA_BITS) -> tuple[int, int]:
    """(m, n) with m · 2^-n the closest such value to `real` (see module docstring),
    the mantissa m in [2^(bits−1), 2^bits) (QLogSoftmax asks for 27 bits)."""
    if not real > 0 or not math.isfinite(real):
        raise UnsupportedError(f"requantization multiplier {real!r} must be positive and finite")
    fraction, exponent = math.frexp(real)  # real = fraction · 2^exponent, fraction ∈ [0.5, 1)
    mantissa = round(fraction * (1 << bits))
    if mantissa == 1 << bits:
        mantissa, exponent = mantissa >> 1, exponent + 1
    shift = bits - exponent
    if shift < 1:
        if real >= 1 << (bits - 1):
            raise UnsupportedError(f"requantization multiplier {real!r} is too large (must be below 2^{bits - 1})")
        # real ∈ [2^(bits−1) − 1/4, 2^(bits−1)) rounded up to 2^(bits−1), which needs n = 0:
        # the closest value with n ≥ 1 is the largest one, (2^bits − 1) · 2^-1.
        mantissa, shift = (1 << bits) - 1, 1
    if shift > MAX_SHIFT:
        mantissa = round(real * (1 << MAX_SHIFT))
        shift = MAX_SHIFT
    return int(mantissa), int(shift)


def quantize_multipliers(reals) -> tuple[np.ndarray, np.ndarray]:
    """Vector form of `quantize_multiplier`: (int32 mantissas, int32 shifts).
    Computed on whole arrays when every shift is at least 1 (the same frexp,
    the same round half to even of an exact product; a shift past MAX_SHIFT
    clamped as there, real · 2^MAX_SHIFT rounded: the channels of a layer's
    all-zero weights); element by element otherwise, for its clamps and errors."""
    flat = np.ravel(np.asarray(reals, np.float64))
    fraction, exponent = np.frexp(flat)
    mantissa = np.rint(fraction * (1 << MANTISSA_BITS))
    carried = mantissa == 1 << MANTISSA_BITS
    mantissa[carried] /= 2
    shift = MANTISSA_BITS - (exponent + carried)
    tiny = shift > MAX_SHIFT
    if tiny.any():
        mantissa[tiny] = np.rint(flat[tiny] * 2.0 ** MAX_SHIFT)
        shift[tiny] = MAX_SHIFT
    if not (np.isfinite(flat) & (flat > 0) & (shift >= 1)).all():
        pairs = [quantize_multiplier(float(r)) for r in flat]
        mantissa, shift = [p[0] for p in pairs], [p[1] for p in pairs]
    return (np.array(mantissa, np.int32).reshape(np.shape(reals)),
            np.array(shift, np.int32).reshape(np.shape(reals)))


def round_shift(value: np.ndarray, shift) -> np.ndarray:
    """(value + 2^(shift-1)) >> shift on int64, shift ≥ 1 (scalar or broadcast)."""
    value = np.asarray(value, np.int64)
    shift = np.asarray(shift, np.int64)
    return (value + (np.int64(1) << (shift - 1))) >> shift


def requantize(acc: np.ndarray, mantissa, shift, zero_point: int, lo: int, hi: int, bias=None) -> np.ndarray:
    """clamp(zero_point + round_shift((acc + bias) · mantissa, shift), lo, hi) as
    int64; `mantissa`, `shift` and `bias` (optional) broadcast against `acc`
    (per-channel vectors). The bias joins the rounding term, (acc + b) · m +
    2^(n−1) = acc · m + (b · m + 2^(n−1)) in int64's wrap-around arithmetic
    (bit for bit, overflow or not): one pass over acc fewer."""
    if bias is None:
        product = np.asarray(acc, np.int64) * np.asarray(mantissa, np.int64)
        return np.clip(round_shift(product, shift) + zero_point, lo, hi)
    mantissa, shift = np.asarray(mantissa, np.int64), np.asarray(shift, np.int64)
    offset = np.asarray(bias, np.int64) * mantissa + (np.int64(1) << (shift - 1))
    return np.clip(((np.asarray(acc, np.int64) * mantissa + offset) >> shift) + zero_point, lo, hi)


# float32 holds every integer of magnitude up to 2^24 exactly
FLOAT32_EXACT = 1 << 24


def exact_float(terms: int, weights: np.ndarray, input_span: int = 255) -> type:
    """The float type in which a sum of `terms` products (x − z) · w, with
    |x − z| <= input_span and w of `weights`' integer type, is exact: float32
    when every partial sum stays below 2^24 (then any summation order gives the
    exact integer, at half float64's memory traffic), else float64 (exact below
    2^53, which the compiler proves of every accumulator)."""
    if weights.dtype.kind not in "iu":
        return np.float64
    info = np.iinfo(weights.dtype)
    largest = max(-int(info.min), int(info.max))
    return np.float32 if terms * input_span * largest < FLOAT32_EXACT else np.float64


def accumulator_bound(weights: np.ndarray, axis: int, input_span: int = 255) -> np.ndarray:
    """Per output channel (along `axis`), the largest |accumulator| the weights can
    produce with inputs whose zero-point-corrected magnitude is at most `input_span`:
    Σ|w| · input_span (an exact upper bound, tighter than K · max|w| · 255)."""
    w = np.abs(np.asarray(weights, np.int64))
    w = np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1)
    return w.sum(axis=1) * input_span
