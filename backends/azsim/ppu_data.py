"""az-sim indexing layers, run by the post-processing unit: Gather, Slice,
Split, Expand, Tile and Cast (docs/numerics.md §8a). Each copies or converts
elements; the PPU work is one element per output element (docs/azsim.md).

Operands: Gather (data, indices), the others (x). Parameters: Gather `axis`;
Slice `starts`, `steps`, `sizes` (per input axis); Split `axis`, `sizes`;
Expand `shape`; Tile `repeats`; Cast `dtype` (a DTYPE_CODES value). Gather
indices below 0 count from the end and are then clamped into the axis, so no
index reads outside the data.
"""

from __future__ import annotations

import numpy as np

from .kernels import Built, LayerContext, Work, check_shape, kernel
from .program import DTYPE_CODES

_INTEGER_CODES = {DTYPE_CODES[n]: np.dtype(n2) for n, n2 in
                  (("i8", "i1"), ("u8", "u1"), ("i16", "<i2"), ("i32", "<i4"), ("i64", "<i8"))}


def _copy(ctx: LayerContext, fn, shape) -> Built:
    """out[...] = fn(); one PPU element per output element."""
    if len(ctx.outputs) != 1:
        raise ctx.error(f"needs one output, has {len(ctx.outputs)}")
    out = ctx.outputs[0]
    check_shape(ctx, "output", out.shape, shape)

    def run():
        out[...] = fn()
    return Built(run, Work(ppu_elements=out.size))


@kernel("Gather")
def gather(ctx: LayerContext) -> Built:
    data, indices = ctx.operand(0, "data"), ctx.operand(1, "indices")
    axis = int(ctx.param("axis"))
    if not 0 <= axis < data.ndim or indices.dtype.kind != "i":
        raise ctx.error(f"axis {axis} or index type {indices.dtype} does not fit data {list(data.shape)}")
    extent = data.shape[axis]
    if extent == 0 and indices.size:
        raise ctx.error("gathers from an empty axis")

    def rows():
        i = indices.astype(np.int64)
        i = np.minimum(np.maximum(i + (i < 0) * extent, 0), extent - 1)
        return np.take(data, i, axis=axis)
    return _copy(ctx, rows, data.shape[:axis] + indices.shape + data.shape[axis + 1:])


def _axis_walk(ctx: LayerContext, extent: int, start: int, step: int, size: int) -> np.ndarray:
    """Input positions start + k·step, k < size, checked to lie inside the axis."""
    walk = start + step * np.arange(size, dtype=np.int64)
    if step == 0 or size < 0 or (size and (walk.min() < 0 or walk.max() >= extent)):
        raise ctx.error(f"slice start {start}, step {step}, size {size} leaves an axis of {extent}")
    return walk


def _sliced(ctx: LayerContext, x: np.ndarray, starts, steps, sizes) -> np.ndarray:
    if not len(starts) == len(steps) == len(sizes) == x.ndim:
        raise ctx.error(f"slice parameters do not fit rank {x.ndim}")
    walks = [_axis_walk(ctx, *a) for a in zip(x.shape, starts, steps, sizes)]
    return x[np.ix_(*walks)] if walks else x.copy()


@kernel("Slice")
def slice_(ctx: LayerContext) -> Built:
    x = ctx.operand(0, "x")
    starts, steps, sizes = (tuple(ctx.param(k)) for k in ("starts", "steps", "sizes"))
    _sliced(ctx, np.empty(x.shape, np.int8), starts, steps, sizes)  # checks the geometry once
    return _copy(ctx, lambda: _sliced(ctx, x, starts, steps, sizes), sizes)


@kernel("Split")
def split(ctx: LayerContext) -> Built:
    x, axis, sizes = ctx.operand(0, "x"), int(ctx.param("axis")), tuple(ctx.param("sizes"))
    if not 0 <= axis < x.ndim or min(sizes, default=0) < 0 or sum(sizes) != x.shape[axis] \
            or len(sizes) != len(ctx.outputs):
        raise ctx.error(f"sizes {list(sizes)} on axis {axis} do not split {list(x.shape)} into "
                        f"{len(ctx.outputs)} outputs")
    bounds = np.cumsum((0,) + sizes)
    for out, size in zip(ctx.outputs, sizes):
        check_shape(ctx, "output", out.shape, x.shape[:axis] + (size,) + x.shape[axis + 1:])

    def run():
        for out, lo, hi in zip(ctx.outputs, bounds[:-1], bounds[1:]):
            out[...] = np.take(x, np.arange(lo, hi), axis=axis)
    return Built(run, Work(ppu_elements=sum(o.size for o in ctx.outputs)))


@kernel("Expand")
def expand(ctx: LayerContext) -> Built:
    x, shape = ctx.operand(0, "x"), tuple(ctx.param("shape"))
    try:
        if np.broadcast_shapes(x.shape, shape) != shape:
            raise ValueError
    except ValueError:
        raise ctx.error(f"cannot expand {list(x.shape)} to {list(shape)}") from None
    return _copy(ctx, lambda: np.broadcast_to(x, shape), shape)


@kernel("Tile")
def tile(ctx: LayerContext) -> Built:
    x, repeats = ctx.operand(0, "x"), tuple(ctx.param("repeats"))
    if len(repeats) != x.ndim or min(repeats, default=0) < 0:
        raise ctx.error(f"repeats {list(repeats)} do not fit rank {x.ndim}")
    shape = tuple(d * r for d, r in zip(x.shape, repeats))
    # element i of an axis of extent d reads input element i mod d
    walks = [np.arange(n, dtype=np.int64) % max(d, 1) for n, d in zip(shape, x.shape)]
    return _copy(ctx, lambda: x[np.ix_(*walks)] if walks else x.copy(), shape)


@kernel("Cast")
def cast(ctx: LayerContext) -> Built:
    """Integer to integer: the value modulo 2^bits, two's complement."""
    x, code = ctx.operand(0, "x"), int(ctx.param("dtype"))
    if code not in _INTEGER_CODES or x.dtype.kind not in "iu":
        raise ctx.error(f"casts only between integer types (to dtype code {code})")
    bits = 8 * _INTEGER_CODES[code].itemsize
    signed = _INTEGER_CODES[code].kind == "i"

    def wrapped():
        v = x.astype(np.int64) & ((1 << bits) - 1) if bits < 64 else x.astype(np.int64)
        return v - ((v >> (bits - 1)) & 1) * (1 << bits) if signed and bits < 64 else v
    return _copy(ctx, wrapped, x.shape)
