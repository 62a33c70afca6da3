"""The MAC array's requantization (docs/numerics.md §2): per channel,

    y = clamp(z_y + round_shift((acc + bias) · m, n), lo, hi)

on float accumulators holding exact integers (mac.py), in int64 or, where that
is exact, float64 (`Requantizer`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .kernels import CLIP, RoundShiftClamp, per_channel

FLOAT64_EXACT = 2.0 ** 53
ACCUMULATOR_LIMIT = 1 << 31
FUSED_CAST_LIMIT = 4096  # up to this size one casting multiply beats a cast then a multiply
SPLIT_STORE_LIMIT = 16384  # up to this size a floor in place and a copy beat one casting floor


class Requantizer:
    """clamp(z_y + round_shift((acc + bias) · m, n), lo, hi) per channel (last
    axis of acc), into `out`: the int64 product acc·m, then RoundShiftClamp with
    offset bias·m + 2^(n−1) (so (acc + bias)·m is never formed). Every int64 term
    stays inside int64: with |acc| ≤ `bound` (per channel; the chip's accumulator
    limit 2^31 when not given), |bias| < 2^31 (the chip's check) and m < 2^31,
    |acc·m| < 2^62 and |bias·m| + 2^(n−1) < 2^62 + 2^61; for raw sums, whose
    folded bias may be larger, plan_sums requires (bound + |bias|)·m < 2^61.
    `period`: see RoundShiftClamp.

    Float path: when every channel has (bound + |bias|)·m + 2^(n−1) + |z_y|·2^n
    < 2^52 (checked in float64, a factor 2 clear of 2^53 and of the check's own
    rounding) and acc holds floats, y = floor(clamp(acc·s + o, lo, hi)) in
    float64 with s = m·2^−n and o = (bias·m + 2^(n−1) + z_y·2^n)·2^−n. Every
    value is an integer below 2^53 times 2^−n, so the product, the sum and the
    clamp are exact, and floor commutes with a clamp to integer bounds: the same
    integers as the int64 path in fewer numpy calls."""

    def __init__(self, bias, multiplier, shift, zero_point: int, lo: int, hi: int, bound=None, period: int = 1):
        bias, multiplier, shift = (np.asarray(v, np.int64).reshape(-1) for v in (bias, multiplier, shift))
        bound = ACCUMULATOR_LIMIT if bound is None else np.asarray(bound, np.int64)
        self.multiplier = per_channel(multiplier, period)
        offset = bias * multiplier + (np.int64(1) << (shift - 1))
        self.tail = RoundShiftClamp(offset, shift, zero_point, lo, hi, bound * multiplier.astype(np.float64), period)
        worst = (bound + np.abs(bias)).astype(np.float64) * multiplier + np.abs(offset).astype(np.float64) \
            + abs(zero_point) * np.exp2(shift.astype(np.float64))
        self.float_exact = bool(worst.max(initial=0.0) < FLOAT64_EXACT / 2)
        if self.float_exact:
            self.scale = per_channel(np.ldexp(multiplier.astype(np.float64), -shift), period)
            self.float_offset = per_channel(np.ldexp((offset + (np.int64(zero_point) << shift)).astype(np.float64),
                                                     -shift), period)
            self.bounds = (np.array(float(lo)), np.array(float(hi)))  # 0-d arrays: the cheapest clip operands

    def __call__(self, acc: np.ndarray, out: np.ndarray) -> None:
        self.bind(acc, out)()

    def bind(self, acc: np.ndarray, out: np.ndarray) -> Callable[[], None]:
        """The requantization of `acc` into `out` as one call, with its int64
        product array allocated once. Small arrays cast inside the multiply (one
        call); large ones cast first (numpy's buffered cast inside a multiply
        costs more than a separate cast)."""
        if self.float_exact and acc.dtype.kind == "f":
            return self._bind_float(acc, out)
        product, multiplier, multiply = np.empty(acc.shape, np.int64), self.multiplier, np.multiply
        rescale = self.tail.bind(product, out)
        if acc.size <= FUSED_CAST_LIMIT:
            def requantize():
                multiply(acc, multiplier, out=product, dtype=np.int64, casting="unsafe")
                rescale()
        else:
            def requantize():
                product[...] = acc
                multiply(product, multiplier, out=product)
                rescale()
        return requantize

    def _bind_float(self, acc: np.ndarray, out: np.ndarray) -> Callable[[], None]:
        """The float path (class docstring) into `out`. Up to SPLIT_STORE_LIMIT
        elements the floor runs in place and a plain copy stores the integers
        (cheaper there than a casting floor)."""
        value, scale, offset, (lo, hi) = np.empty(acc.shape, np.float64), self.scale, self.float_offset, self.bounds
        multiply, add, floor = np.multiply, np.add, np.floor
        if acc.size <= SPLIT_STORE_LIMIT:
            def requantize():
                multiply(acc, scale, out=value, dtype=np.float64)
                add(value, offset, out=value)
                CLIP(value, lo, hi, out=value)
                floor(value, out=value)
                out[...] = value
        else:
            def requantize():
                multiply(acc, scale, out=value, dtype=np.float64)
                add(value, offset, out=value)
                CLIP(value, lo, hi, out=value)
                floor(value, out=out, casting="unsafe")
        return requantize
