"""C lowering of the ops that move values without arithmetic (docs/numerics.md
§8), for every element type: Reshape, Identity and Dropout are views (no code;
storage gives the output its input's bytes), Transpose and Pad walk index maps
computed here (a strided copy beyond six loops, ops_index.py), Concat copies
one row block per input."""

from __future__ import annotations

import math

import numpy as np

from nnc.dtypes import to_numpy

from .cformat import literal
from .geometry import c_array, pad_maps, transpose_loop
from .lowering import Ctx, Refused, lowers
from .ops_index import transpose_any_rank


@lowers("Reshape", "Identity", "Dropout", view=True)
def view(ctx: Ctx, node):
    return [f"/* {ctx.ident(node.outputs[0])} is {ctx.ident(node.inputs[0])} with a new shape: no code */"]


def _typed(ctx: Ctx, family: str, x: str) -> str:
    dtype = ctx.dtype(x)
    return ctx.kernel(family, fn=f"{family}_{dtype}", sfx=dtype, t=ctx.ctype(x))


@lowers("Transpose")
def transpose(ctx: Ctx, node):
    x, y = node.inputs[0], node.outputs[0]
    try:
        fields = transpose_loop(ctx.shape(x), node.attrs.perm)
    except Refused:  # more than six loops after merging axes
        return transpose_any_rank(ctx, x, y, node.attrs.perm)
    fn = _typed(ctx, "transpose", x)
    loop = ctx.struct("loop", "loop6", fields)
    return [f"{fn}({loop}, {ctx.ptr(x)}, {ctx.ptr(y)});"]


@lowers("Pad")
def pad(ctx: Ctx, node):
    x, y = node.inputs[0], node.outputs[0]
    a = node.attrs
    dims, maps = pad_maps(ctx.shape(x), a.pads, a.mode)
    table = ctx.array("map", np.concatenate(maps), "i32", "per-axis input offsets of the output indices")
    starts = np.cumsum([0] + [len(m) for m in maps[:-1]])
    fields = {"dims": c_array(dims), "map": "{" + ", ".join(f"{table} + {s}" for s in starts) + "}"}
    g = ctx.struct("geom", "pad_geom", fields)
    dtype = ctx.dtype(x)
    fill = np.array(a.value if a.mode == "constant" else 0.0).astype(to_numpy(dtype))
    fn = _typed(ctx, "pad", x)
    return [f"{fn}({g}, {literal(fill.item(), dtype)}, {ctx.ptr(x)}, {ctx.ptr(y)});"]


@lowers("Concat")
def concat(ctx: Ctx, node):
    y = node.outputs[0]
    axis = node.attrs.axis
    out_shape = ctx.shape(y)
    item = np.dtype(to_numpy(ctx.dtype(y))).itemsize
    outer = math.prod(out_shape[:axis])
    dst_stride = math.prod(out_shape[axis:]) * item
    fn = ctx.kernel("copy_rows")
    lines, offset = [], 0
    for x in node.inputs:
        chunk = math.prod(ctx.shape(x)[axis:]) * item
        if chunk:
            dst = f"(uint8_t *){ctx.ptr(y)} + {offset}" if offset else ctx.ptr(y)
            lines.append(f"{fn}({outer}, {chunk}, {ctx.ptr(x)}, {chunk}, {dst}, {dst_stride});")
        offset += chunk
    return lines
