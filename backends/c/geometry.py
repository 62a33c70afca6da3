"""Shapes and loop nests for the C kernels, computed at compile time: NHWC
convolution and pooling geometry, six-deep broadcast/transpose loops with
collapsed axes, pad index maps, and the [outer][n][inner] view of an axis."""

from __future__ import annotations

import math

import numpy as np

from .lowering import Refused

LOOP_RANK = 6


def c_array(values) -> str:
    return "{" + ", ".join(str(int(v)) for v in values) + "}"


def spatial_2d(shape: tuple[int, ...], channels_last: bool) -> tuple[int, int, int, int]:
    """(n, h, w, c) of a 1-D or 2-D spatial tensor as the NHWC kernels see it.
    Channels-first tensors are pooled per channel, so (N, C, *S) is viewed as
    N·C images of one channel; channels-first convolution is refused by the caller."""
    if len(shape) not in (3, 4):
        raise Refused(f"{len(shape) - 2}-D spatial data is not supported (1-D and 2-D only)")
    if channels_last:
        n, spatial, c = shape[0], shape[1:-1], shape[-1]
    else:
        n, c, spatial = shape[0] * shape[1], 1, shape[2:]
    h, w = (1, spatial[0]) if len(spatial) == 1 else spatial
    return n, h, w, c


def _pairs(values: tuple[int, ...], fill: int) -> tuple[int, int]:
    return (fill, values[0]) if len(values) == 1 else (values[0], values[1])


def conv_fields(x_shape, y_shape, attrs) -> dict:
    """conv_geom fields of a channels-last convolution."""
    if not attrs.channels_last:
        raise Refused("the C kernels need a channels-last convolution (run the layout pass, "
                      "as the default pipeline does)")
    n, in_h, in_w, in_c = spatial_2d(x_shape, True)
    _, out_h, out_w, out_c = spatial_2d(y_shape, True)
    nd = len(attrs.kernel_shape)
    k_h, k_w = _pairs(attrs.kernel_shape, 1)
    s_h, s_w = _pairs(attrs.strides, 1)
    d_h, d_w = _pairs(attrs.dilations, 1)
    p_t, p_l = _pairs(attrs.pads[:nd], 0)
    return dict(n=n, in_h=in_h, in_w=in_w, in_c=in_c, out_h=out_h, out_w=out_w, out_c=out_c, k_h=k_h,
                k_w=k_w, stride_h=s_h, stride_w=s_w, dil_h=d_h, dil_w=d_w, pad_top=p_t, pad_left=p_l,
                groups=attrs.group)


def pool_fields(x_shape, y_shape, kernel, strides, dilations, pads, channels_last: bool) -> dict:
    """pool_geom fields; kernel/strides/dilations/pads in ONNX order."""
    n, in_h, in_w, c = spatial_2d(x_shape, channels_last)
    _, out_h, out_w, _ = spatial_2d(y_shape, channels_last)
    nd = len(kernel)
    k_h, k_w = _pairs(tuple(kernel), 1)
    s_h, s_w = _pairs(tuple(strides), 1)
    d_h, d_w = _pairs(tuple(dilations), 1)
    p_t, p_l = _pairs(tuple(pads[:nd]), 0)
    p_b, p_r = _pairs(tuple(pads[nd:]), 0)
    return dict(n=n, in_h=in_h, in_w=in_w, c=c, out_h=out_h, out_w=out_w, k_h=k_h, k_w=k_w,
                stride_h=s_h, stride_w=s_w, dil_h=d_h, dil_w=d_w, pad_top=p_t, pad_left=p_l,
                pad_bottom=p_b, pad_right=p_r)


def global_pool_fields(x_shape, channels_last: bool) -> dict:
    n, h, w, c = spatial_2d(x_shape, channels_last)
    return dict(n=n, in_h=h, in_w=w, c=c, out_h=1, out_w=1, k_h=h, k_w=w, stride_h=1, stride_w=1,
                dil_h=1, dil_w=1, pad_top=0, pad_left=0, pad_bottom=0, pad_right=0)


def strides_of(shape: tuple[int, ...]) -> list[int]:
    """Row-major element strides."""
    out, step = [], 1
    for d in reversed(shape):
        out.append(step)
        step *= d
    return out[::-1]


def collapse(dims: list[int], strides: list[list[int]]) -> tuple[list[int], list[list[int]]]:
    """Drop extent-1 axes and merge neighbours that every operand walks
    contiguously, so most loops run over long inner rows."""
    keep = [i for i, d in enumerate(dims) if d != 1]
    dims = [dims[i] for i in keep]
    strides = [[s[i] for i in keep] for s in strides]
    i = len(dims) - 2
    while i >= 0:
        if all(s[i] == s[i + 1] * dims[i + 1] for s in strides):
            dims[i:i + 2] = [dims[i] * dims[i + 1]]
            for s in strides:
                s[i:i + 2] = [s[i + 1]]
        i -= 1
    return dims, strides


def loop6(dims: list[int], strides: list[list[int]]) -> dict:
    """loop6 fields for an output of extents `dims` and operand strides."""
    dims, strides = collapse(list(dims), [list(s) for s in strides])
    if len(dims) > LOOP_RANK:
        raise Refused(f"needs {len(dims)} nested loops after merging axes (at most {LOOP_RANK})")
    pad = LOOP_RANK - len(dims)
    fields = {"dims": c_array([1] * pad + dims)}
    for name, s in zip(("sa", "sb"), strides + [[0] * len(dims)] * (2 - len(strides))):
        fields[name] = c_array([0] * pad + s)
    return fields


def broadcast_strides(shape: tuple[int, ...], out: tuple[int, ...]) -> list[int]:
    """Strides of an operand of `shape` read along `out` (numpy broadcasting)."""
    full = (1,) * (len(out) - len(shape)) + tuple(shape)
    own = strides_of(full)
    return [0 if d == 1 and o != 1 else s for d, o, s in zip(full, out, own)]


def transpose_loop(in_shape: tuple[int, ...], perm: tuple[int, ...]) -> dict:
    own = strides_of(in_shape)
    return loop6([in_shape[p] for p in perm], [[own[p] for p in perm]])


def pad_maps(shape: tuple[int, ...], pads: tuple[int, ...], mode: str) -> tuple[list[int], list[np.ndarray]]:
    """Output extents and, per axis, x offsets of each output index (-1: fill),
    padded to LOOP_RANK axes; numpy's own pad resolves the index of every mode."""
    rank = len(shape)
    if rank > LOOP_RANK:
        raise Refused(f"rank {rank} is above {LOOP_RANK}")
    own = strides_of(shape)
    dims, maps = [], []
    for axis, extent in enumerate(shape):
        begin, end = pads[axis], pads[rank + axis]
        kept = np.arange(max(-begin, 0), extent - max(-end, 0), dtype=np.int64)
        width = (max(begin, 0), max(end, 0))
        if mode == "constant":
            index = np.pad(kept, width, constant_values=-1)
        else:
            index = np.pad(kept, width, mode=mode)
        dims.append(len(index))
        maps.append(np.where(index < 0, -1, index * own[axis]).astype(np.int32))
    pad = LOOP_RANK - rank
    return [1] * pad + dims, [np.zeros(1, np.int32)] * pad + maps


def around(shape: tuple[int, ...], axis: int) -> tuple[int, int, int]:
    """(outer, extent, inner) of `axis`."""
    return math.prod(shape[:axis]), shape[axis], math.prod(shape[axis + 1:])
