"""az-sim Resize layers, run by the post-processing unit (docs/numerics.md §17):

    ResizeNearest (x, index)   a gather along each spatial axis; 1 PPU element
                               per output element
    QResize (x, table)         2^nd weighted corners per output element, exact
                               integer sums, one requantization; 2^nd PPU
                               elements per output element

Tables hold the output indices of spatial axis 0, then axis 1, ... as columns
(index: one row; table: rows i0, i1, w). Data is read channels-last or
channels-first as the layer's `channels_last` says.
"""

from __future__ import annotations

import numpy as np

from nnc.numerics import requantize

from .kernels import Built, LayerContext, Work, channels_last, check_shape, clamp_params, kernel


def _geometry(ctx: LayerContext, rows: int) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """(x, y) as channels-last views and the per-axis table blocks, checked."""
    last = ctx.param("channels_last", 0)
    if len(ctx.outputs) != 1:
        raise ctx.error(f"needs one output, has {len(ctx.outputs)}")
    x, y = channels_last(ctx.operand(0, "x"), last), channels_last(ctx.outputs[0], last)
    sizes = tuple(ctx.param("sizes"))
    table = ctx.operand(1, "table").astype(np.int64).reshape(rows, -1)
    if len(sizes) != x.ndim - 2 or table.shape[1] != sum(sizes):
        raise ctx.error(f"sizes {list(sizes)} and a table of {table.shape[1]} columns do not fit {list(x.shape)}")
    check_shape(ctx, "output", y.shape, (x.shape[0], *sizes, x.shape[-1]))
    blocks = np.split(table, np.cumsum(sizes)[:-1], axis=1)
    for axis, block in enumerate(blocks):
        if block[:2].min(initial=0) < 0 or block[:2].max(initial=0) >= x.shape[axis + 1]:
            raise ctx.error(f"table of spatial axis {axis} indexes outside the input")
    return x, y, blocks


@kernel("ResizeNearest")
def resize_nearest(ctx: LayerContext) -> Built:
    x, y, blocks = _geometry(ctx, 1)

    def run():
        v = x
        for axis, block in enumerate(blocks):
            v = np.take(v, block[0], axis=axis + 1)
        y[...] = v
    return Built(run, Work(ppu_elements=y.size))


@kernel("QResize")
def qresize(ctx: LayerContext) -> Built:
    """acc = Σ_corners Π_axes weight · (x − zx); y = requantize(acc)."""
    x, y, blocks = _geometry(ctx, 3)
    one = 1 << int(ctx.param("weight_bits"))
    zx, multiplier, shift = int(ctx.param("x_zero_point")), int(ctx.param("multiplier")), int(ctx.param("shift"))
    zy, lo, hi = clamp_params(ctx)
    if any(b[2].min(initial=0) < 0 or b[2].max(initial=0) > one for b in blocks):
        raise ctx.error(f"weights outside [0, {one}]")

    def run():
        acc = x.astype(np.int64) - zx
        for axis, (i0, i1, w) in enumerate(blocks):
            shape = [1] * acc.ndim
            shape[axis + 1] = -1
            acc = np.take(acc, i0, axis=axis + 1) * (one - w).reshape(shape) \
                + np.take(acc, i1, axis=axis + 1) * w.reshape(shape)
        y[...] = requantize(acc, multiplier, shift, zy, lo, hi)
    return Built(run, Work(ppu_elements=y.size * 2 ** len(blocks)))
