"""az-sim layers without a weight stream, run by the post-processing unit (PPU):
pooling, element-wise integer ops, softmax and log-softmax, lookup tables, data
movement and the float boundaries. Formulas are docs/numerics.md §3–9; the PPU
work counted per layer (`Work.ppu_elements`) is listed in docs/azsim.md.
"""

from __future__ import annotations

import math

import numpy as np

from nnc.numerics import requantize
from nnc.ops.qsoftmax import EXP_BITS, INDEX_BITS, LN2, MAX_SX, MULT_BITS, STEP_BITS, log_table_problem

from .kernels import (PAD_MODES, Built, LayerContext, RoundShiftClamp, Work, channels_last, check_shape,
                      clamp_params, kernel, pad_spatial, taps)
from .requantizer import Requantizer

POWERS = np.int64(1) << np.arange(63, dtype=np.int64)  # 2^0 .. 2^62: bit lengths by search


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
    """acc = Σ_window (x − zx) (padding counts as real zero); y = requantize(acc).
    A global window with a valid multiplier (m < 2^31, n in [1, 62]) sums the raw
    input and folds −count·zx into the Requantizer's bias."""
    last = ctx.param("channels_last", 0)
    x, out = (channels_last(a, last) for a in _single(ctx))
    kernel, strides, dilations, begins, ends, spatial = _pool_geometry(ctx, x, out, dilated=False)
    zx, multiplier, shift = int(ctx.param("x_zero_point")), int(ctx.param("multiplier")), int(ctx.param("shift"))
    zy, lo, hi = clamp_params(ctx)
    axes, count = tuple(range(1, x.ndim - 1)), math.prod(kernel)
    work = Work(ppu_elements=out.size * count)
    if _global_window(x, kernel, begins, ends, spatial) and 0 <= multiplier < 1 << 31 and 1 <= shift <= 62 \
            and x.dtype.itemsize <= 2 and count < 1 << 14:
        acc = np.empty(out.shape, np.int64)
        finish = Requantizer(-count * zx, multiplier, shift, zy, lo, hi, bound=count << 16).bind(acc, out)

        def run_global():
            np.sum(x, axis=axes, dtype=np.int64, keepdims=True, out=acc)
            finish()
        return Built(run_global, work)

    def run():
        centred = np.subtract(x, zx, dtype=np.int64)
        padded = pad_spatial(centred, begins, ends, 0)
        acc = sum(taps(padded, kernel, strides, dilations, spatial))
        out[...] = requantize(acc, multiplier, shift, zy, lo, hi)
    return Built(run, work)


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
    """One rounding of the rescaled sum: round_shift((a−za)·ma + (b−zb)·mb, n),
    computed as (a·ma + b·mb + offset) >> n with offset = 2^(n−1) − za·ma − zb·mb
    (RoundShiftClamp); |a|, |b| ≤ 2^15 and |ma|, |mb| < 2^31 (numerics §4) keep
    every int64 sum below 2^62, else the layer is refused."""
    a, b = ctx.operand(0, "a"), ctx.operand(1, "b")
    try:
        shape = np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise ctx.error(f"inputs {list(a.shape)} and {list(b.shape)} do not broadcast") from None
    za, zb = int(ctx.param("a_zero_point")), int(ctx.param("b_zero_point"))
    ma, mb, shift = int(ctx.param("a_multiplier")), int(ctx.param("b_multiplier")), int(ctx.param("shift"))
    if max(abs(ma), abs(mb)) >= 1 << 31 or not 1 <= shift <= 62 or max(abs(za), abs(zb)) > 1 << 16 \
            or a.dtype.itemsize > 2 or b.dtype.itemsize > 2:
        raise ctx.error("needs 8- or 16-bit inputs, multipliers in (−2^31, 2^31) and a shift in [1, 62]")
    span = 1 << 16
    tail = RoundShiftClamp((1 << (shift - 1)) - za * ma - zb * mb, shift, *clamp_params(ctx),
                           bound=span * (abs(ma) + abs(mb)))
    total, other = np.empty(shape, np.int64), np.empty(shape, np.int64)
    out = ctx.outputs[0]
    check_shape(ctx, "output", out.shape, shape)
    rescale = tail.bind(total, out)

    def run():
        np.multiply(a, ma, out=total, dtype=np.int64, casting="unsafe")
        np.add(total, np.multiply(b, mb, out=other, dtype=np.int64, casting="unsafe"), out=total)
        rescale()
    return Built(run, Work(ppu_elements=out.size))


@kernel("QLut")
def qlut(ctx: LayerContext) -> Built:
    x, _ = _single(ctx)
    table = ctx.operand(1, "table").reshape(-1)
    check_shape(ctx, "table", table.shape, (256,))
    offset = 128 if x.dtype == np.int8 else 0
    return _elementwise(ctx, lambda: table[x.astype(np.int64) + offset], x.shape)


@kernel("QSoftmax")
def qsoftmax(ctx: LayerContext) -> Built:
    """e = E[max − x], S = Σe, y = zy + round_shift(⌊e·m / S⌋, n) over the last axis;
    with E ≤ 2^24 and m < 2^31 (numerics §6) every int64 term stays below 2^56
    (else the layer is refused). With a keep mask (u8, 0 hides), the max runs
    over kept positions and a hidden one has e = 0."""
    x, out = _single(ctx)
    table = ctx.operand(1, "exp_table").astype(np.int64).reshape(-1)
    check_shape(ctx, "exp_table", table.shape, (256,))
    check_shape(ctx, "output", out.shape, x.shape)
    multiplier, shift = int(ctx.param("multiplier")), int(ctx.param("shift"))
    if table.min() < 0 or table.max() > 1 << 24 or not 0 <= multiplier < 1 << 31 or not 1 <= shift <= 62:
        raise ctx.error("needs a table within [0, 2^24], a multiplier in [0, 2^31) and a shift in [1, 62]")
    tail = RoundShiftClamp(1 << (shift - 1), shift, *clamp_params(ctx), bound=float(table.max()) * multiplier)
    e = np.empty(x.shape, np.int64)
    rescale = tail.bind(e, out)
    factor = np.int64(multiplier)
    keep = _keep_mask(ctx, x.shape) if len(ctx.inputs) > 2 and ctx.inputs[2] is not None else None
    if keep is None:
        index, total = np.empty(x.shape, np.intp), np.empty((*x.shape[:-1], 1), np.int64)

        def run():
            np.subtract(x.max(axis=-1, keepdims=True), x, out=index, dtype=np.intp)
            np.take(table, index, out=e)
            np.sum(e, axis=-1, keepdims=True, out=total)
            np.floor_divide(np.multiply(e, factor, out=e), total, out=e)
            rescale()
    else:
        lowest = np.iinfo(np.int64).min

        def run():
            wide = x.astype(np.int64)
            top = np.where(keep, wide, lowest).max(axis=-1, keepdims=True)
            np.copyto(e, np.where(keep, table[np.where(keep, top - wide, 0)], 0))
            total = e.sum(axis=-1, keepdims=True)
            np.floor_divide(np.multiply(e, factor, out=e), total, out=e)
            rescale()
    return Built(run, Work(ppu_elements=2 * out.size))


@kernel("QLogSoftmax")
def qlog_softmax(ctx: LayerContext) -> Built:
    """QSoftmax's d = max − x and S = Σ E[d] per row, then in Q24 nats (numerics §6a):
    k = bit length of S − 1, t = S·2^(24 − k), j = t >> 16 − 256, r = t mod 2^16,
    L = (k − 24)·LN2 + Λ[j] + ((Λ[j+1] − Λ[j])·r >> 16), N = d·SX + L and
    y = zy − round_shift(N·m, n) = zy + ((−N·m + 2^(n−1) − 1) >> n) (a negated floor is
    a ceiling). Tables as nnc.ops.qsoftmax.log_table_problem asks (so 1 ≤ S < 2^47),
    SX ≤ 2^27 and m < 2^27 keep |N| < 2^36 and |N·m| < 2^62.01 (else the layer is refused)."""
    x, out = _single(ctx)
    exp = ctx.operand(1, "exp_table").astype(np.int64).reshape(-1)
    log = ctx.operand(2, "log_table").astype(np.int64).reshape(-1)
    check_shape(ctx, "exp_table", exp.shape, (256,))
    check_shape(ctx, "log_table", log.shape, ((1 << INDEX_BITS) + 1,))
    check_shape(ctx, "output", out.shape, x.shape)
    if x.dtype not in (np.int8, np.uint8) or x.ndim < 1 or not 1 <= x.shape[-1] <= 1 << 16:
        raise ctx.error(f"needs an 8-bit input with rows of 1 to 2^16 values, got {x.dtype} {list(x.shape)}")
    x_scale, multiplier, shift = int(ctx.param("x_scale")), int(ctx.param("multiplier")), int(ctx.param("shift"))
    problem = log_table_problem(exp, log)
    if problem:
        raise ctx.error(problem)
    if not 1 <= x_scale <= MAX_SX or not 0 <= multiplier < 1 << MULT_BITS or not 1 <= shift <= 62:
        raise ctx.error("needs x_scale in [1, 2^27], a multiplier in [0, 2^27) and a shift in [1, 62]")
    # |L| <= 24 · LN2: k − 24 runs from −24 (S = 1) to 22 (S < 2^47), plus Λ[j] + the step <= LN2
    bound = float(255 * x_scale + 25 * LN2) * multiplier
    tail = RoundShiftClamp((1 << (shift - 1)) - 1, shift, *clamp_params(ctx), bound=bound)
    index, total, nats = np.empty(x.shape, np.intp), np.empty((*x.shape[:-1], 1), np.int64), np.empty(x.shape, np.int64)
    rescale = tail.bind(nats, out)
    scale, factor, top = np.int64(x_scale), np.int64(-multiplier), INDEX_BITS + STEP_BITS

    def run():
        np.subtract(x.max(axis=-1, keepdims=True), x, out=index, dtype=np.intp)
        np.sum(np.take(exp, index, out=nats), axis=-1, keepdims=True, out=total)
        k = np.searchsorted(POWERS, total, side="right") - 1
        t = np.where(k <= top, total << np.maximum(top - k, 0), total >> np.maximum(k - top, 0))
        j, r = (t >> STEP_BITS) - (1 << INDEX_BITS), t & ((1 << STEP_BITS) - 1)
        logs = (k - EXP_BITS) * LN2 + log[j] + (((log[j + 1] - log[j]) * r) >> STEP_BITS)
        np.add(np.multiply(index, scale, out=nats), logs, out=nats)
        np.multiply(nats, factor, out=nats)
        rescale()
    return Built(run, Work(ppu_elements=2 * out.size + math.prod(x.shape[:-1])))


def _keep_mask(ctx: LayerContext, shape: tuple[int, ...]) -> np.ndarray:
    """QSoftmax's keep mask (input 2, u8, 0 hides) as bools of `shape`; every row keeps a position."""
    try:
        keep = np.broadcast_to(ctx.inputs[2] != 0, shape)
    except ValueError:
        raise ctx.error(f"keep mask {list(ctx.inputs[2].shape)} does not broadcast to {list(shape)}") from None
    if not keep.any(axis=-1).all():
        raise ctx.error("the keep mask hides every position of a row")
    return keep


@kernel("Clip")
def clip(ctx: LayerContext) -> Built:
    x, _ = _single(ctx)
    info = np.iinfo(x.dtype)
    lo, hi = max(int(ctx.param("min", info.min)), info.min), min(int(ctx.param("max", info.max)), info.max)
    return _elementwise(ctx, lambda: np.clip(x, lo, hi), x.shape)


# -- data movement ---------------------------------------------------------------------
@kernel("Reshape")
def reshape(ctx: LayerContext) -> Built:
    """A copy into the output's place; a view, free, when the memory plan aliases the two."""
    x, out = _single(ctx)
    shape = tuple(ctx.param("shape"))
    if x.size != math.prod(shape):
        raise ctx.error(f"cannot reshape {list(x.shape)} to {list(shape)}")
    if ctx.aliased:
        check_shape(ctx, "output", out.shape, shape)
        return Built(lambda: None, Work(view=True))
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
    """q = saturate(round_half_even(x / scale) + zero_point), x / scale in float32
    (then exact in float64 with the zero point, clamped, converted)."""
    x, out = _single(ctx)
    scale, zero = _affine_params(ctx, x)
    info = np.iinfo(out.dtype)
    check_shape(ctx, "output", out.shape, x.shape)
    ratio, shifted = np.empty(x.shape, np.result_type(x, scale)), np.empty(x.shape, np.float64)
    lo, hi = np.float64(info.min), np.float64(info.max)

    def run():
        np.rint(np.divide(x, scale, out=ratio), out=ratio)
        np.add(ratio, zero, out=shifted)
        np.minimum(np.maximum(shifted, lo, out=shifted), hi, out=shifted)
        out[...] = shifted
    return Built(run, Work(ppu_elements=out.size))


@kernel("DequantizeLinear")
def dequantize_linear(ctx: LayerContext) -> Built:
    """r = float32(x − zero_point) · scale in float32."""
    x, out = _single(ctx)
    scale, zero = _affine_params(ctx, x)
    check_shape(ctx, "output", out.shape, x.shape)
    centred = np.empty(x.shape, np.int64)

    def run():
        np.multiply(np.subtract(x, zero, out=centred), scale, out=out, dtype=np.float32, casting="unsafe")
    return Built(run, Work(ppu_elements=out.size))
