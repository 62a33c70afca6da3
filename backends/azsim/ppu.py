"""az-sim layers without a weight stream, run by the post-processing unit (PPU):
pooling, element-wise integer ops, softmax, lookup tables, data movement and the
float boundaries. Formulas are docs/numerics.md §3–9; the PPU work counted per
layer (`Work.ppu_elements`) is listed in docs/azsim.md.
"""

from __future__ import annotations

import math

import numpy as np

from nnc.numerics import requantize, round_shift

from .kernels import (PAD_MODES, Built, LayerContext, Work, channels_last, check_shape, clamp_params, kernel,
                      pad_spatial, taps)


def _single(ctx: LayerContext) -> tuple[np.ndarray, np.ndarray]:
    if len(ctx.outputs) != 1:
        raise ctx.error(f"needs one output, has {len(ctx.outputs)}")
    return ctx.operand(0, "x"), ctx.outputs[0]


def _elementwise(ctx: LayerContext, fn, shape, factor: int = 1) -> Built:
    """A layer computing out = fn() over every output element; the output must
    have `shape`. The PPU handles `factor` elements per output element."""
    out = ctx.outputs[0]
    check_shape(ctx, "output", out.shape, shape)

    def run():
        out[...] = fn()
    return Built(run, Work(ppu_elements=factor * out.size))


# -- pooling ---------------------------------------------------------------------------
def pooled_size(size: int, k: int, s: int, d: int, begin: int, end: int, ceil: bool) -> int:
    """Windows along one axis; with ceil_mode a window must start inside the input
    or the begin pad (ONNX / PyTorch)."""
    span = size + begin + end - (k - 1) * d - 1
    out = (-(-span // s) if ceil else span // s) + 1
    if ceil and (out - 1) * s >= size + begin:
        out -= 1
    return out


def _pool_geometry(ctx: LayerContext, x: np.ndarray, out: np.ndarray, dilated: bool):
    kernel = tuple(ctx.param("kernel_shape"))
    nd = len(kernel)
    strides, pads = tuple(ctx.param("strides")), tuple(ctx.param("pads"))
    dilations = tuple(ctx.param("dilations", (1,) * nd)) if dilated else (1,) * nd
    ceil = bool(ctx.param("ceil_mode", 0))
    if x.ndim != nd + 2 or len(strides) != nd or len(pads) != 2 * nd or len(dilations) != nd:
        raise ctx.error(f"geometry does not fit input {list(x.shape)}")
    spatial = tuple(pooled_size(i, k, s, d, pads[a], pads[a + nd], ceil) for a, (i, k, s, d)
                    in enumerate(zip(x.shape[1:-1], kernel, strides, dilations)))
    check_shape(ctx, "output", out.shape, (x.shape[0], *spatial, x.shape[-1]))
    reach = [(o - 1) * s + (k - 1) * d + 1 for o, k, s, d in zip(spatial, kernel, strides, dilations)]
    ends = [max(e, r - i - b) for i, b, e, r in zip(x.shape[1:-1], pads[:nd], pads[nd:], reach)]
    return kernel, strides, dilations, pads[:nd], ends, spatial


def _global_window(x: np.ndarray, kernel, begins, ends, spatial) -> bool:
    """One window covering the input exactly: reduce over the spatial axes at once."""
    return spatial == (1,) * len(kernel) and not any(begins) and not any(ends) \
        and tuple(kernel) == x.shape[1:-1]


@kernel("QAveragePool")
def qaverage_pool(ctx: LayerContext) -> Built:
    """acc = Σ_window (x − zx) (padding counts as real zero); y = requantize(acc)."""
    last = ctx.param("channels_last", 0)
    x, out = (channels_last(a, last) for a in _single(ctx))
    kernel, strides, dilations, begins, ends, spatial = _pool_geometry(ctx, x, out, dilated=False)
    zx, multiplier, shift = int(ctx.param("x_zero_point")), int(ctx.param("multiplier")), int(ctx.param("shift"))
    zy, lo, hi = clamp_params(ctx)
    whole = _global_window(x, kernel, begins, ends, spatial)
    axes = tuple(range(1, x.ndim - 1))

    def run():
        centred = np.subtract(x, zx, dtype=np.int64)
        if whole:
            acc = centred.sum(axis=axes, keepdims=True)
        else:
            padded = pad_spatial(centred, begins, ends, 0)
            acc = sum(taps(padded, kernel, strides, dilations, spatial))
        out[...] = requantize(acc, multiplier, shift, zy, lo, hi)
    return Built(run, Work(ppu_elements=out.size * math.prod(kernel)))


@kernel("MaxPool")
def max_pool(ctx: LayerContext) -> Built:
    """Maximum over each window; padding (the type's minimum) never wins."""
    last = ctx.param("channels_last", 0)
    x, out = (channels_last(a, last) for a in _single(ctx))
    kernel, strides, dilations, begins, ends, spatial = _pool_geometry(ctx, x, out, dilated=True)
    lowest = np.iinfo(x.dtype).min if x.dtype.kind in "iu" else -np.inf
    whole = _global_window(x, kernel, begins, ends, spatial)
    axes = tuple(range(1, x.ndim - 1))

    def run():
        if whole:
            out[...] = x.max(axis=axes, keepdims=True)
            return
        padded = pad_spatial(x, begins, ends, lowest)
        views = taps(padded, kernel, strides, dilations, spatial)
        out[...] = np.maximum.reduce(views) if len(views) > 1 else views[0]
    return Built(run, Work(ppu_elements=out.size * math.prod(kernel)))


@kernel("GlobalMaxPool")
def global_max_pool(ctx: LayerContext) -> Built:
    last = ctx.param("channels_last", 0)
    x, out = (channels_last(a, last) for a in _single(ctx))
    check_shape(ctx, "output", out.shape, (x.shape[0], *(1,) * (x.ndim - 2), x.shape[-1]))
    axes = tuple(range(1, x.ndim - 1))

    def run():
        out[...] = x.max(axis=axes, keepdims=True)
    return Built(run, Work(ppu_elements=x.size))


# -- element-wise integer ops ------------------------------------------------------------
@kernel("Requantize")
def requantize_layer(ctx: LayerContext) -> Built:
    x, _ = _single(ctx)
    zx, multiplier, shift = int(ctx.param("x_zero_point")), int(ctx.param("multiplier")), int(ctx.param("shift"))
    zy, lo, hi = clamp_params(ctx)
    return _elementwise(ctx, lambda: requantize(np.subtract(x, zx, dtype=np.int64), multiplier, shift, zy, lo, hi),
                        x.shape)


@kernel("QAdd")
def qadd(ctx: LayerContext) -> Built:
    """One rounding of the rescaled sum: round_shift((a−za)·ma + (b−zb)·mb, n)."""
    a, b = ctx.operand(0, "a"), ctx.operand(1, "b")
    try:
        shape = np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise ctx.error(f"inputs {list(a.shape)} and {list(b.shape)} do not broadcast") from None
    za, zb = int(ctx.param("a_zero_point")), int(ctx.param("b_zero_point"))
    ma, mb, shift = int(ctx.param("a_multiplier")), int(ctx.param("b_multiplier")), int(ctx.param("shift"))
    zy, lo, hi = clamp_params(ctx)

    def compute():
        total = np.subtract(a, za, dtype=np.int64) * ma + np.subtract(b, zb, dtype=np.int64) * mb
        return np.clip(round_shift(total, shift) + zy, lo, hi)
    return _elementwise(ctx, compute, shape)


@kernel("QLut")
def qlut(ctx: LayerContext) -> Built:
    x, _ = _single(ctx)
    table = ctx.operand(1, "table").reshape(-1)
    check_shape(ctx, "table", table.shape, (256,))
    offset = 128 if x.dtype == np.int8 else 0
    return _elementwise(ctx, lambda: table[x.astype(np.int64) + offset], x.shape)


@kernel("QSoftmax")
def qsoftmax(ctx: LayerContext) -> Built:
    """e = E[max − x], S = Σe, y = zy + round_shift(⌊e·m / S⌋, n) over the last axis."""
    x, _ = _single(ctx)
    table = ctx.operand(1, "exp_table").astype(np.int64).reshape(-1)
    check_shape(ctx, "exp_table", table.shape, (256,))
    multiplier, shift = int(ctx.param("multiplier")), int(ctx.param("shift"))
    zy, lo, hi = clamp_params(ctx)

    def compute():
        xi = x.astype(np.int64)
        e = table[xi.max(axis=-1, keepdims=True) - xi]
        y = round_shift(e * multiplier // e.sum(axis=-1, keepdims=True), shift)
        return np.clip(y + zy, lo, hi)
    return _elementwise(ctx, compute, x.shape, factor=2)


@kernel("Clip")
def clip(ctx: LayerContext) -> Built:
    x, _ = _single(ctx)
    info = np.iinfo(x.dtype)
    lo, hi = max(int(ctx.param("min", info.min)), info.min), min(int(ctx.param("max", info.max)), info.max)
    return _elementwise(ctx, lambda: np.clip(x, lo, hi), x.shape)


# -- data movement ---------------------------------------------------------------------
@kernel("Reshape")
def reshape(ctx: LayerContext) -> Built:
    """A copy into the output's place, free when the memory plan aliases the two."""
    x, out = _single(ctx)
    shape = tuple(ctx.param("shape"))
    if x.size != math.prod(shape):
        raise ctx.error(f"cannot reshape {list(x.shape)} to {list(shape)}")
    if ctx.aliased:
        check_shape(ctx, "output", out.shape, shape)
        return Built(lambda: None, Work())
    return _elementwise(ctx, lambda: x.reshape(shape), shape)


@kernel("Transpose")
def transpose(ctx: LayerContext) -> Built:
    x, _ = _single(ctx)
    perm = tuple(ctx.param("perm"))
    if sorted(perm) != list(range(x.ndim)):
        raise ctx.error(f"perm {list(perm)} is not a permutation of {x.ndim} axes")
    return _elementwise(ctx, lambda: np.transpose(x, perm), tuple(x.shape[p] for p in perm))


@kernel("Concat")
def concat(ctx: LayerContext) -> Built:
    parts, axis = [ctx.operand(i, f"input {i}") for i in range(len(ctx.inputs))], int(ctx.param("axis"))
    try:
        shape = np.concatenate([np.empty(p.shape, np.int8) for p in parts], axis=axis).shape
    except ValueError as exc:  # numpy's AxisError is a ValueError
        raise ctx.error(f"cannot concatenate: {exc}") from None
    return _elementwise(ctx, lambda: np.concatenate(parts, axis=axis), shape)


@kernel("Pad")
def pad(ctx: LayerContext) -> Built:
    """Negative pads crop first; then pad with `value` (or reflect/edge/wrap)."""
    x, _ = _single(ctx)
    pads, mode = tuple(ctx.param("pads")), ctx.param("mode", 0)
    mode = PAD_MODES[mode] if isinstance(mode, int) and 0 <= mode < len(PAD_MODES) else mode
    if len(pads) != 2 * x.ndim or mode not in PAD_MODES:
        raise ctx.error(f"pads {list(pads)} or mode {mode!r} do not fit rank {x.ndim}")
    begins, ends = pads[:x.ndim], pads[x.ndim:]
    keep = tuple(slice(-min(b, 0), d + min(e, 0)) for d, b, e in zip(x.shape, begins, ends))
    width = [(max(b, 0), max(e, 0)) for b, e in zip(begins, ends)]
    shape = tuple(d + b + e for d, b, e in zip(x.shape, begins, ends))
    fill = x.dtype.type(ctx.param("value", 0))
    if mode == "constant":
        return _elementwise(ctx, lambda: np.pad(x[keep], width, constant_values=fill), shape)
    return _elementwise(ctx, lambda: np.pad(x[keep], width, mode=mode), shape)


# -- float boundaries (ONNX semantics, float32 arithmetic) --------------------------------
def _affine_params(ctx: LayerContext, x: np.ndarray):
    """scale (f32) and zero point (int64, 0 if omitted), shaped to broadcast with x."""
    scale = ctx.operand(1, "scale").astype(np.float32).reshape(-1)
    zero = ctx.inputs[2] if len(ctx.inputs) > 2 else None
    zero = np.zeros(1, np.int64) if zero is None else zero.astype(np.int64).reshape(-1)
    if scale.size == 1 and zero.size == 1:
        return scale.reshape(()), zero.reshape(())
    axis = int(ctx.param("axis", -1))
    if not 0 <= axis < x.ndim or scale.size != x.shape[axis] or zero.size not in (1, scale.size):
        raise ctx.error(f"per-axis scale of {scale.size} values does not fit axis {axis} of {list(x.shape)}")
    shape = [1] * x.ndim
    shape[axis] = -1
    return scale.reshape(shape), zero.reshape(shape) if zero.size > 1 else zero.reshape(())


@kernel("QuantizeLinear")
def quantize_linear(ctx: LayerContext) -> Built:
    """q = saturate(round_half_even(x / scale) + zero_point), x / scale in float32."""
    x, out = _single(ctx)
    scale, zero = _affine_params(ctx, x)
    info = np.iinfo(out.dtype)
    return _elementwise(ctx, lambda: np.clip(np.rint(x / scale).astype(np.float64) + zero, info.min, info.max),
                        x.shape)


@kernel("DequantizeLinear")
def dequantize_linear(ctx: LayerContext) -> Built:
    """r = float32(x − zero_point) · scale in float32."""
    x, _ = _single(ctx)
    scale, zero = _affine_params(ctx, x)
    return _elementwise(ctx, lambda: (x.astype(np.int64) - zero).astype(np.float32) * scale, x.shape)
