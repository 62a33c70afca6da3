"""A single-row QGemm (one sample through a fully connected layer, the usual
case) as one flat closure of numpy calls, no nested Python calls. Taken where
the layer's Requantizer has its exact float path (`float_exact`):

    y = floor(clamp(acc·s + o, lo, hi)),  s = m·2^−n,  o = (bias·m + 2^(n−1) + z_y·2^n)·2^−n

per channel (requantizer.Requantizer; `bias` is the folded one for raw sums),
exact because every channel has (bound + |bias|)·m + 2^(n−1) + |z_y|·2^n < 2^52,
|acc| ≤ bound before the bias. The input row is x (raw sums) or x − z_x,
integers of magnitude ≤ 255.

- Large layers (more than PRESCALE_LIMIT weights): the row into a `dtype`
  buffer, one BLAS gemv against the untransposed [N, K] weights in `dtype`
  (exact integer sums: float32 below 2^24, see mac.py), then the Requantizer's
  float path.
- Small layers: s and o folded into float64 weights, [w·s | o] against the row
  [x, 1], so that one gemv yields acc·s + o, then clip, floor and store (two
  calls fewer, at twice the weight bytes; measured faster up to about 8 K
  weights). Exact: w·s = (w·m)·2^−n and each product x·(w·s) = (x·w·m)·2^−n
  are multiples of 2^−n whose integers |w·m| and |x·w·m| stay below the bound
  above (`float_exact`: every |w| times the largest input magnitude, at least 1,
  is counted in it), so exact in float64; the magnitudes of all products and
  of o add up to at most that bound, times 2^−n, so
  every partial sum, in any order BLAS takes, is a multiple of 2^−n below
  2^52·2^−n, held exactly: the gemv yields acc·s + o exactly, the value the
  float path clamps.

The floor runs in place and a plain copy stores the integers (which fit the
output's type after the clamp): cheaper than a casting floor at these sizes.
Raw and centred rows have a closure each: loading a raw row by a casting
subtract of 0 instead of a copy costs about 1 µs a layer (ad: 0.045 → 0.056 ms
a run, measured).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .kernels import CLIP

PRESCALE_LIMIT = 8192  # weights up to which the requantization is folded into float64 weights


def single_row(weights: np.ndarray, dtype, x: np.ndarray, zx: int, raw: bool, out: np.ndarray,
               requantizer) -> Callable[[], None] | None:
    """out[0] = requantize(weights · row) with row = x[0] (raw) or x[0] − z_x, as
    one call; None where the requantization has no exact float path.
    `weights` [N, K] integers, x [1, K], out [1, N]; `requantizer` a Requantizer
    for N channels (period 1) built for these accumulators (the bias folded as
    `raw` requires)."""
    if not requantizer.float_exact:
        return None
    n, k = weights.shape
    scale, offset, (lo, hi) = requantizer.scale, requantizer.float_offset, requantizer.bounds
    source, result, zero = x[0], out[0], x.dtype.type(zx)
    dot, floor, subtract, f64 = np.dot, np.floor, np.subtract, np.float64
    if weights.size <= PRESCALE_LIMIT:
        matrix = np.empty((n, k + 1), np.float64)
        matrix[:, :k] = weights * scale[:, None]
        matrix[:, k] = offset
        row, value = np.ones(k + 1, np.float64), np.empty(n, np.float64)
        inputs = row[:k]

        if raw:
            def prescaled():
                inputs[...] = source
                dot(matrix, row, out=value)
                CLIP(value, lo, hi, out=value)
                floor(value, out=value)
                result[...] = value
        else:
            def prescaled():
                subtract(source, zero, out=inputs, dtype=f64)
                dot(matrix, row, out=value)
                CLIP(value, lo, hi, out=value)
                floor(value, out=value)
                result[...] = value
        return prescaled

    matrix = np.ascontiguousarray(weights, dtype=dtype)  # [N, K]: BLAS's untransposed gemv, ~1.6x a [K, N] one
    row, acc = np.empty(k, dtype), np.empty(n, dtype)
    requantize = requantizer.bind(acc, result)  # its float path; one nested call is noise beside this gemv
    if raw:
        def run():
            row[...] = source
            dot(matrix, row, out=acc)
            requantize()
    else:
        def run():
            subtract(source, zero, out=row, dtype=dtype)
            dot(matrix, row, out=acc)
            requantize()
    return run
