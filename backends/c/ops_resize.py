"""C lowering of Resize on integers and floats (docs/numerics.md §17):

- ResizeNearest, and float Resize in nearest mode: data movement through the
  Pad kernel (pad.c.j2) with index maps that never hold a fill position: the
  map of a spatial axis is its index table times the axis' stride.
- QResize: qresize.c.j2 over the [n][h][w][c] view of x (spatial_2d), 1-D or
  2-D; the tables become const arrays.
- float Resize in linear mode: resize_f32.c over the same view, with the
  reference's taps (nnc.ops.resize.linear_taps: source indices and float32
  weights), 1-D or 2-D; within the float parity tolerance of the float64
  reference.
"""

from __future__ import annotations

import numpy as np

from nnc.ops.qresize import split_columns
from nnc.ops.resize import linear_taps, nearest_indices

from .geometry import LOOP_RANK, c_array, spatial_2d, strides_of
from .lowering import Ctx, Refused, lowers
from .ops_float import need_f32


def _gather_maps(shape: tuple[int, ...], spatial_indices: list[np.ndarray], channels_last: bool):
    """pad_geom dims and maps of y[n, *o, c] = x[n, *index(o), c] (any layout)."""
    rank = len(shape)
    if rank > LOOP_RANK:
        raise Refused(f"rank {rank} is above {LOOP_RANK}")
    first = 1 if channels_last else 2
    own = strides_of(shape)
    maps = [np.arange(extent, dtype=np.int64) for extent in shape]
    for i, index in enumerate(spatial_indices):
        maps[first + i] = np.asarray(index, np.int64)
    maps = [(m * stride).astype(np.int32) for m, stride in zip(maps, own)]
    pad = LOOP_RANK - rank
    return [1] * pad + [len(m) for m in maps], [np.zeros(1, np.int32)] * pad + maps


def _gather(ctx: Ctx, node, spatial_indices: list[np.ndarray], channels_last: bool) -> list[str]:
    x, y = node.inputs[0], node.outputs[0]
    dims, maps = _gather_maps(ctx.shape(x), spatial_indices, channels_last)
    table = ctx.array("map", np.concatenate(maps), "i32", "per-axis input offsets of the output indices")
    starts = np.cumsum([0] + [len(m) for m in maps[:-1]])
    g = ctx.struct("geom", "pad_geom", {"dims": c_array(dims),
                                        "map": "{" + ", ".join(f"{table} + {s}" for s in starts) + "}"})
    dtype = ctx.dtype(x)
    fn = ctx.kernel("pad", fn=f"pad_{dtype}", sfx=dtype, t=ctx.ctype(x))
    return [f"{fn}({g}, 0, {ctx.ptr(x)}, {ctx.ptr(y)});"]


@lowers("ResizeNearest")
def resize_nearest(ctx: Ctx, node):
    a = node.attrs
    return _gather(ctx, node, split_columns(ctx.data(node.inputs[1]), a.sizes), a.channels_last)


@lowers("Resize")
def resize(ctx: Ctx, node):
    a = node.attrs
    shape = ctx.shape(node.inputs[0])
    spatial = shape[1:-1] if a.channels_last else shape[2:]
    if a.mode == "nearest":
        return _gather(ctx, node, [nearest_indices(a, i, s) for i, s in enumerate(spatial)], a.channels_last)
    need_f32(ctx, node.inputs[0])
    n, in_h, in_w, c = spatial_2d(shape, a.channels_last)
    _, out_h, out_w, _ = spatial_2d(ctx.shape(node.outputs[0]), a.channels_last)
    taps = [linear_taps(a, i, s) for i, s in enumerate(spatial)]
    if len(taps) == 1:
        taps.insert(0, (np.zeros(1, np.int64), np.zeros(1, np.int64), np.zeros(1)))
    fields = dict(n=n, in_h=in_h, in_w=in_w, c=c, out_h=out_h, out_w=out_w)
    for (i0, i1, weight), axis in zip(taps, "yx"):
        fields[f"{axis}0"] = ctx.array(f"{axis}0", i0, "i32", f"Resize: first source {axis} of each output")
        fields[f"{axis}1"] = ctx.array(f"{axis}1", i1, "i32", f"Resize: second source {axis} of each output")
        fields[f"w{axis}"] = ctx.array(f"w{axis}", weight, "f32", f"Resize: weight of the second source {axis}")
    fn = ctx.kernel("resize_f32", fn="resize_f32")
    g = ctx.struct("geom", "fresize_geom", fields)
    return [f"{fn}({g}, {ctx.ptr(node.inputs[0])}, {ctx.ptr(node.outputs[0])});"]


@lowers("QResize")
def qresize(ctx: Ctx, node):
    x, y = node.inputs[0], node.outputs[0]
    a = node.attrs
    n, in_h, in_w, c = spatial_2d(ctx.shape(x), a.channels_last)
    _, out_h, out_w, _ = spatial_2d(ctx.shape(y), a.channels_last)
    axes = split_columns(ctx.data(node.inputs[1]), a.sizes)
    one = 1 << a.weight_bits
    if len(axes) == 1:
        axes.insert(0, np.zeros((3, 1), np.int64))
    ones = (1 if len(a.sizes) == 1 else one, one)
    if 255 * ones[0] * ones[1] >= 1 << 31 or a.multiplier >= 1 << 31 or not 1 <= a.shift <= 62:
        raise Refused("the interpolation sum may overflow int32 or the multiplier is out of range")
    fields = dict(n=n, in_h=in_h, in_w=in_w, c=c, out_h=out_h, out_w=out_w, one_h=ones[0], one_w=ones[1])
    for axis, prefix in zip(axes, "yx"):
        for row, role in zip(axis, ("0", "1", "w")):
            name = f"{prefix}{role}" if role != "w" else f"w{prefix}"
            fields[name] = ctx.array(name, row, "i32", f"QResize table {name}")
    sfx = f"{ctx.dtype(x)}_{a.out_dtype}"
    fn = ctx.kernel("qresize", fn=f"qresize_{sfx}", sfx=sfx, tx=ctx.ctype(x), ty=ctx.ctype_of(a.out_dtype))
    g = ctx.struct("geom", "qresize_geom", fields)
    q = ctx.struct("q", "requant_params", dict(x_zero=a.x_zero_point, y_zero=a.y_zero_point, mult=a.multiplier,
                                               shift=a.shift, out_min=a.out_min, out_max=a.out_max))
    return [f"{fn}({g}, {q}, {ctx.ptr(x)}, {ctx.ptr(y)});"]
