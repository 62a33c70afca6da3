"""az-sim post-processing-unit kernels of the broadcast element-wise integer ops
QMul (a, b) and QAffine (x, multiplier, offset[, multiplier_neg]); formulas are
docs/numerics.md §18, computed here independently of the reference interpreter.
The PPU handles one element per output element (docs/azsim.md).
"""

from __future__ import annotations

import numpy as np

from nnc.numerics import round_shift

from .kernels import Built, LayerContext, Work, check_shape, clamp_params, kernel


def _broadcast(ctx: LayerContext, *arrays: np.ndarray) -> tuple[int, ...]:
    try:
        return tuple(np.broadcast_shapes(*(a.shape for a in arrays)))
    except ValueError:
        raise ctx.error(f"operands {[list(a.shape) for a in arrays]} do not broadcast") from None


def _layer(ctx: LayerContext, shape: tuple[int, ...], compute) -> Built:
    if len(ctx.outputs) != 1:
        raise ctx.error(f"needs one output, has {len(ctx.outputs)}")
    out = ctx.outputs[0]
    check_shape(ctx, "output", out.shape, shape)

    def run():
        out[...] = compute()
    return Built(run, Work(ppu_elements=out.size))


@kernel("QMul")
def qmul(ctx: LayerContext) -> Built:
    """y = zy + round_shift((a − za)(b − zb) · m, n), clamped."""
    a, b = ctx.operand(0, "a"), ctx.operand(1, "b")
    za, zb = int(ctx.param("a_zero_point")), int(ctx.param("b_zero_point"))
    multiplier, shift = int(ctx.param("multiplier")), int(ctx.param("shift"))
    zy, lo, hi = clamp_params(ctx)

    def compute():
        product = np.subtract(a, za, dtype=np.int64) * np.subtract(b, zb, dtype=np.int64)
        return np.clip(round_shift(product * multiplier, shift) + zy, lo, hi)
    return _layer(ctx, _broadcast(ctx, a, b), compute)


@kernel("QAffine")
def qaffine(ctx: LayerContext) -> Built:
    """d = x − zx; y = zy + round_shift(d · (d < 0 ? mn : m) + o, n), clamped."""
    x = ctx.operand(0, "x")
    mult = ctx.operand(1, "multiplier").astype(np.int64)
    offset = ctx.operand(2, "offset").astype(np.int64)
    has_neg = len(ctx.inputs) > 3 and ctx.inputs[3] is not None
    mult_neg = ctx.operand(3, "multiplier_neg").astype(np.int64) if has_neg else mult
    check_shape(ctx, "offset", offset.shape, mult.shape)
    check_shape(ctx, "multiplier_neg", mult_neg.shape, mult.shape)
    zx, shift = int(ctx.param("x_zero_point")), int(ctx.param("shift"))
    zy, lo, hi = clamp_params(ctx)

    def compute():
        d = np.subtract(x, zx, dtype=np.int64)
        total = d * np.where(d < 0, mult_neg, mult) + offset
        return np.clip(round_shift(total, shift) + zy, lo, hi)
    return _layer(ctx, _broadcast(ctx, x, mult), compute)
