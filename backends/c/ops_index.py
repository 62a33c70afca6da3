"""C lowering of the indexing ops (docs/numerics.md §8a), for every element type.

Slice, Split, Expand, Tile and (beyond six nested loops) Transpose are one
strided copy each: output element (i_0, ..., i_k) reads input element
offset + Σ i_d·stride_d, with strides computed here (negative for a reversed
Slice, 0 for a broadcast axis; Tile interleaves a repeat axis of stride 0 before
each input axis). Axes are collapsed first (geometry.collapse), so most copies
run over long rows. Gather copies whole rows with run-time (or constant)
indices, clamped in C exactly as the reference clamps them. Cast converts
element by element.
"""

from __future__ import annotations

import math

import numpy as np

from nnc.dtypes import INTEGER_TYPES, to_numpy
from nnc.ops.indexing import split_slices

from .geometry import broadcast_strides, collapse, strides_of
from .lowering import Ctx, lowers


def strided_copy(ctx: Ctx, x: str, y: str, dims, strides, offset: int) -> list[str]:
    """One strided_<dtype> call writing y (row-major over `dims`) from x."""
    if math.prod(dims) == 0:
        return [f"/* {ctx.ident(y)} is empty: no code */"]
    dims, (strides,) = collapse(list(dims), [list(strides)])
    if not dims:
        dims, strides = [1], [0]
    dtype = ctx.dtype(x)
    fn = ctx.kernel("strided", fn=f"strided_{dtype}", sfx=dtype, t=ctx.ctype(x))
    fields = {"rank": len(dims), "offset": int(offset),
              "dims": ctx.array("dims", dims, "i32", "output extents after merging axes"),
              "strides": ctx.array("strides", strides, "i32", "input element stride of each output axis")}
    g = ctx.struct("geom", "strided_geom", fields)
    return [f"{fn}({g}, {ctx.ptr(x)}, {ctx.ptr(y)});"]


def slice_copy(ctx: Ctx, x: str, y: str, attrs) -> list[str]:
    own = strides_of(ctx.shape(x))
    offset = sum(start * s for start, s in zip(attrs.starts, own))
    return strided_copy(ctx, x, y, attrs.sizes, [step * s for step, s in zip(attrs.steps, own)], offset)


@lowers("Slice")
def slice_(ctx: Ctx, node):
    return slice_copy(ctx, node.inputs[0], node.outputs[0], node.attrs)


@lowers("Split")
def split(ctx: Ctx, node):
    x, lines = node.inputs[0], []
    for y, attrs in zip(node.outputs, split_slices(ctx.shape(x), node.attrs)):
        if y:
            lines += slice_copy(ctx, x, y, attrs)
    return lines


@lowers("Expand")
def expand(ctx: Ctx, node):
    x, y = node.inputs[0], node.outputs[0]
    out = ctx.shape(y)
    return strided_copy(ctx, x, y, out, broadcast_strides(ctx.shape(x), out), 0)


@lowers("Tile")
def tile(ctx: Ctx, node):
    """Tile's output, row-major, is the input broadcast to [r_0, d_0, r_1, d_1, ...]."""
    x, y = node.inputs[0], node.outputs[0]
    shape = ctx.shape(x)
    dims = [v for r, d in zip(node.attrs.repeats, shape) for v in (r, d)]
    strides = [v for s in strides_of(shape) for v in (0, s)]
    return strided_copy(ctx, x, y, dims, strides, 0)


def transpose_any_rank(ctx: Ctx, x: str, y: str, perm: tuple[int, ...]) -> list[str]:
    """A Transpose as a strided copy (any number of loops after merging)."""
    own = strides_of(ctx.shape(x))
    return strided_copy(ctx, x, y, [ctx.shape(x)[p] for p in perm], [own[p] for p in perm], 0)


@lowers("Gather")
def gather(ctx: Ctx, node):
    data, indices, y = node.inputs[0], node.inputs[1], node.outputs[0]
    shape, axis = ctx.shape(data), node.attrs.axis
    outer, extent = math.prod(shape[:axis]), shape[axis]
    row_bytes = math.prod(shape[axis + 1:]) * np.dtype(to_numpy(ctx.dtype(data))).itemsize
    count = math.prod(ctx.shape(indices))
    if outer * count * row_bytes == 0:
        return [f"/* {ctx.ident(y)} is empty: no code */"]
    ix = ctx.dtype(indices)
    fn = ctx.kernel("gather", fn=f"gather_{ix}", sfx=ix, ti=ctx.ctype(indices))
    return [f"{fn}({outer}, {extent}, {count}, {row_bytes}, {ctx.ptr(data, 'table')}, "
            f"{ctx.ptr(indices, 'indices')}, {ctx.ptr(y)});"]


@lowers("Cast")
def cast(ctx: Ctx, node):
    x, y = node.inputs[0], node.outputs[0]
    n = math.prod(ctx.shape(x))
    if n == 0:
        return [f"/* {ctx.ident(y)} is empty: no code */"]
    src, dst = ctx.dtype(x), ctx.dtype(y)
    fn = ctx.kernel("cast", fn=f"cast_{src}_{dst}", tx=ctx.ctype(x), ty=ctx.ctype(y), bits=_wrap_bits(src, dst))
    return [f"{fn}({n}, {ctx.ptr(x)}, {ctx.ptr(y)});"]


def _wrap_bits(src: str, dst: str) -> int:
    """The width of a signed integer target that cannot hold every source value
    (the kernel then wraps explicitly); 0 when the plain C conversion is exact
    or defined (unsigned targets wrap modulo 2^bits by C's own rule)."""
    if src not in INTEGER_TYPES or dst not in INTEGER_TYPES or to_numpy(dst).kind == "u":
        return 0
    fits = np.can_cast(to_numpy(src), to_numpy(dst), casting="safe")
    return 0 if fits else 8 * to_numpy(dst).itemsize
