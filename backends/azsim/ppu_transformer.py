"""az-sim kernels of the transformer blocks (docs/numerics.md §11, §12, §14):

    QReduce     (x)          post-processing unit; ppu_elements = input elements
    QMatMul     (a, b)       MAC array; macs = batch · M · N · K (b may be a constant
                             tensor: it has no weight stream), ppu_elements = outputs
    QLayerNorm  (x, g, b)    post-processing unit; ppu_elements = 3 · elements (sum,
                             variance, output pass)

Implemented independently of the reference interpreter: the integer square root
of QLayerNorm is a vectorized digit-by-digit method over all rows at once.
"""

from __future__ import annotations

import math

import numpy as np

from nnc.numerics import requantize, round_shift

from .kernels import Built, LayerContext, Work, check_shape, clamp_params, kernel

FRACTION_BITS = 30
ACCUMULATOR_LIMIT = 1 << 31


def _single(ctx: LayerContext) -> tuple[np.ndarray, np.ndarray]:
    if len(ctx.outputs) != 1:
        raise ctx.error(f"needs one output, has {len(ctx.outputs)}")
    return ctx.operand(0, "x"), ctx.outputs[0]


@kernel("QReduce")
def qreduce(ctx: LayerContext) -> Built:
    """acc = Σ (x − zx) or max x − zx over `axes`; y = requantize(acc)."""
    x, out = _single(ctx)
    axes, keep = tuple(ctx.param("axes")), bool(ctx.param("keepdims"))
    is_max = bool(ctx.param("is_max", 0))
    zx, multiplier, shift = int(ctx.param("x_zero_point")), int(ctx.param("multiplier")), int(ctx.param("shift"))
    zy, lo, hi = clamp_params(ctx)
    if not axes or any(not 0 <= a < x.ndim for a in axes):
        raise ctx.error(f"axes {list(axes)} do not fit input {list(x.shape)}")
    if not is_max and math.prod(x.shape[a] for a in axes) * 255 >= ACCUMULATOR_LIMIT:
        raise ctx.error("the sum may overflow the int32 accumulator")
    kept = [1 if i in axes else d for i, d in enumerate(x.shape)] if keep else \
        [d for i, d in enumerate(x.shape) if i not in axes]
    check_shape(ctx, "output", out.shape, kept)

    def run():
        wide = x.astype(np.int64)
        acc = wide.max(axis=axes, keepdims=keep) - zx if is_max else (wide - zx).sum(axis=axes, keepdims=keep)
        out[...] = requantize(acc, multiplier, shift, zy, lo, hi)
    return Built(run, Work(ppu_elements=x.size))


@kernel("QMatMul")
def qmatmul(ctx: LayerContext) -> Built:
    """acc = Σ_k (a − za)(b − zb) per (broadcast) batch product; y = requantize(acc).
    Param b_transposed (0/1): b holds the right operand's matrices transposed."""
    a, b = ctx.operand(0, "a"), ctx.operand(1, "b")
    if int(ctx.param("b_transposed", 0)):
        b = np.swapaxes(b, -1, -2)
    out = ctx.outputs[0]
    za, zb = int(ctx.param("a_zero_point")), int(ctx.param("b_zero_point"))
    multiplier, shift = int(ctx.param("multiplier")), int(ctx.param("shift"))
    zy, lo, hi = clamp_params(ctx)
    if a.ndim < 2 or b.ndim < 2 or a.shape[-1] != b.shape[-2]:
        raise ctx.error(f"operands {list(a.shape)} and {list(b.shape)} do not multiply")
    k = a.shape[-1]
    if k * 255 * 255 >= ACCUMULATOR_LIMIT:
        raise ctx.error("the accumulator may overflow int32")
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    check_shape(ctx, "output", out.shape, (*batch, a.shape[-2], b.shape[-1]))
    macs = out.size * k

    def run():
        # exact in float64: every partial sum is an integer below 2^31 < 2^53
        acc = np.matmul(a.astype(np.float64) - za, b.astype(np.float64) - zb)
        out[...] = requantize(acc.astype(np.int64), multiplier, shift, zy, lo, hi)
    return Built(run, Work(macs_total=macs, macs_executed=macs, ppu_elements=out.size))


def _bit_length(v: np.ndarray) -> np.ndarray:
    bits = np.zeros(v.shape, np.int64)
    v = v.copy()
    while np.any(v):
        bits += v > 0
        v >>= 1
    return bits


def _isqrt(v: np.ndarray) -> np.ndarray:
    """floor(sqrt(v)) of uint64 values below 2^62, digit by digit, all at once."""
    v = v.astype(np.uint64)
    root = np.zeros(v.shape, np.uint64)
    for step in range(31, -1, -1):
        bit = np.uint64(1) << np.uint64(2 * step)
        fits = v >= root + bit
        v = np.where(fits, v - (root + bit), v)
        root = np.where(fits, (root >> np.uint64(1)) + bit, root >> np.uint64(1))
    return root


def _normalize(c: np.ndarray, eps: int) -> np.ndarray:
    """H [rows, n] = sround(c · r, 31 + k − F) per row (docs/numerics.md §14)."""
    total = (c * c).sum(axis=1) + eps
    k = -((32 - _bit_length(total)) // 2)  # ceil((bits − 32) / 2)
    u = np.where(k >= 0, total >> np.maximum(2 * k, 0), total << np.maximum(-2 * k, 0))
    r = np.where(total > 0, _isqrt(np.uint64(1 << 62) // np.maximum(u, 1).astype(np.uint64)).astype(np.int64), 0)
    s = (31 + k - FRACTION_BITS)[:, None]
    v = c * r[:, None]
    return np.where(s >= 1, round_shift(v, np.maximum(s, 1)), v << np.maximum(-s, 0))


@kernel("QLayerNorm")
def qlayer_norm(ctx: LayerContext) -> Built:
    x, out = _single(ctx)
    g = ctx.operand(1, "g").astype(np.int64).reshape(-1)
    b = ctx.operand(2, "b").astype(np.int64).reshape(-1)
    axis, eps, shift = int(ctx.param("axis")), int(ctx.param("eps_int")), int(ctx.param("shift"))
    zy, lo, hi = clamp_params(ctx)
    n = math.prod(x.shape[axis:])
    check_shape(ctx, "output", out.shape, x.shape)
    if g.size not in (1, n) or b.size != g.size or n > 1 << 15:
        raise ctx.error(f"g and b must hold {n} <= 2^15 values, or one each")

    def run():
        rows = x.reshape(-1, n).astype(np.int64)
        c = n * rows - rows.sum(axis=1, keepdims=True)
        y = round_shift(g * _normalize(c, eps) + b, shift) + zy
        out[...] = np.clip(y, lo, hi).reshape(x.shape)
    return Built(run, Work(ppu_elements=3 * x.size))
