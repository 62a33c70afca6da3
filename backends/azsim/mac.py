"""The MAC array: QConv and QGemm (docs/numerics.md §2),

    acc[c] = bias[c] + Σ_k (x_k − z_x) · w[c, k]          (int32 accumulators)
    y[c]   = clamp(z_y + round_shift(acc[c] · m[c], n[c]), out_min, out_max)

executed as the chip would: the decoded weights sit in weight SRAM (one matrix per
layer, prepared once), the input is centred (x − z_x) into a per-layer buffer
whose border is the padding (real zero), then
- QGemm and convolutions: im2col (columns tap-major, channels inner) and one
  matrix product per group; a 1×1 stride-1 convolution needs no im2col;
- depthwise convolutions (group = Cin = Cout): one multiply-add per kernel tap
  over all positions and channels (with stride 1 along the last spatial axis,
  that axis and the channels are one contiguous run).
Sums run in floating point on exact integers: float32 when the layer's worst case
Σ_k |w[c, k]| · span is below 2^24 (every partial sum is then an integer float32
holds exactly), else float64 (below 2^31 < 2^53); span = max |x − z_x| over the
input type (at most 255). A layer whose worst case Σ_k |w[c, k]| · span + |bias[c]|
reaches 2^31 would overflow the chip's int32 accumulators and is refused.

Zero skipping (accounting only: skipped products are zero, so results are the
same): weights are grouped in runs of `zero_skip_group` consecutive weights along
each output channel's reduction axis in stored order ([Cin/group, *kernel] for
QConv, K for QGemm); an all-zero group is skipped at every output position.
With activation skipping, a MAC of a kept group is also skipped where its
centred input x − z_x is zero (padding included).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from nnc.errors import UnsupportedError

from .kernels import (Built, LayerContext, Work, channels_last, check_shape, clamp_params, conv_out_size,
                      kernel, padded_buffer, taps)

EXACT_FLOAT32 = 1 << 24
ACCUMULATOR_LIMIT = 1 << 31


class Requantizer:
    """clamp(z_y + round_shift((acc + bias) · m, n), lo, hi) per channel (last
    axis), in place on int64. (acc + bias)·m + 2^(n−1) is computed as
    acc·m + (bias·m + 2^(n−1)): the same integer, as |acc·m| < 2^62 and
    |bias·m| + 2^(n−1) < 2^62 + 2^61 keep every term inside int64."""

    def __init__(self, bias, multiplier, shift, zero_point: int, lo: int, hi: int):
        self.multiplier, self.shift = multiplier, shift
        self.offset = bias * multiplier + (np.int64(1) << (shift - 1))
        self.zero_point, self.lo, self.hi = zero_point, lo, hi

    def __call__(self, acc: np.ndarray, out: np.ndarray) -> None:
        total = acc.astype(np.int64)
        total *= self.multiplier
        total += self.offset
        total >>= self.shift
        total += self.zero_point
        out[...] = np.clip(total, self.lo, self.hi, out=total)


def mac_operands(ctx: LayerContext, channels: int) -> tuple[np.ndarray, ...]:
    """x, and bias (zeros if omitted), multiplier, shift as int64 vectors."""
    if ctx.weights is None:
        raise ctx.error("has no weight stream")
    if len(ctx.inputs) != 5:
        raise ctx.error(f"needs 5 operands (x, w slot, bias, multiplier, shift), has {len(ctx.inputs)}")
    x = ctx.operand(0, "x")
    if x.dtype not in (np.int8, np.uint8):
        raise ctx.error(f"needs an i8 or u8 input, got {x.dtype}")
    vectors = []
    for what, value in (("bias", ctx.inputs[2]), ("multiplier", ctx.operand(3, "multiplier")),
                        ("shift", ctx.operand(4, "shift"))):
        value = np.zeros(channels, np.int64) if value is None else value.astype(np.int64).reshape(-1)
        check_shape(ctx, what, value.shape, (channels,))
        vectors.append(value)
    bias, multiplier, shift = vectors
    if multiplier.min(initial=0) < 0 or multiplier.max(initial=0) >= 1 << 31 or \
            shift.min(initial=1) < 1 or shift.max(initial=1) > 62:
        raise ctx.error("multipliers must lie in [0, 2^31) and shifts in [1, 62]")
    return x, bias, multiplier, shift


def input_span(ctx: LayerContext, x: np.ndarray) -> tuple[int, int]:
    """(z_x, the largest |x − z_x| the input type allows)."""
    zx, info = int(ctx.param("x_zero_point")), np.iinfo(x.dtype)
    if not info.min <= zx <= info.max:
        raise ctx.error(f"x_zero_point {zx} does not fit {x.dtype}")
    return zx, max(zx - info.min, info.max - zx)


def prepare_rows(ctx: LayerContext, rows: np.ndarray, bias: np.ndarray, span: int):
    """(accumulator dtype, keep mask) of weight rows [C, K]; UnsupportedError if
    a channel could overflow the int32 accumulator."""
    worst = np.abs(rows.astype(np.int64)).sum(axis=1) * span
    if rows.size and (worst + np.abs(bias)).max() >= ACCUMULATOR_LIMIT:
        channel = int(np.argmax(worst + np.abs(bias)))
        raise UnsupportedError(f"layer {ctx.desc.name!r} ({ctx.desc.op}): output channel {channel} can "
                               f"overflow the chip's int32 accumulator (Σ|w|·{span} + |bias| >= 2^31)")
    dtype = np.float32 if worst.max(initial=0) < EXACT_FLOAT32 else np.float64
    return dtype, keep_mask(rows, ctx.zero_skip_group)


def keep_mask(rows: np.ndarray, group: int) -> np.ndarray:
    """Per weight of rows [C, K]: True where its group of `group` consecutive
    weights along K is not all zero (the last group of a row may be shorter)."""
    c, k = rows.shape
    padded = np.zeros((c, -(-k // group) * group), bool)
    padded[:, :k] = rows != 0
    alive = padded.reshape(c, -1, group).any(axis=2)
    return np.repeat(alive, group, axis=1)[:, :k]


def requantizer(ctx: LayerContext, bias, multiplier, shift) -> Requantizer:
    return Requantizer(bias, multiplier, shift, *clamp_params(ctx))


@kernel("QGemm")
def qgemm(ctx: LayerContext) -> Built:
    w = ctx.weights
    if w.ndim != 2:
        raise ctx.error(f"weights must be [N, K], got {list(w.shape)}")
    n_out, k = w.shape
    x, bias, multiplier, shift = mac_operands(ctx, n_out)
    (out,) = ctx.outputs
    m = x.shape[0] if x.ndim == 2 else -1
    check_shape(ctx, "x", x.shape, (m, k))
    check_shape(ctx, "output", out.shape, (m, n_out))
    zx, span = input_span(ctx, x)
    dtype, keep = prepare_rows(ctx, w, bias, span)
    requant = requantizer(ctx, bias, multiplier, shift)
    weights_t = np.ascontiguousarray(w.T, dtype=dtype)
    keep_per_k = keep.sum(axis=0)
    centred, acc = np.empty((m, k), dtype), np.empty((m, n_out), dtype)
    skip_activations = ctx.skip_zero_activations

    def run():
        np.subtract(x, zx, out=centred, dtype=dtype)
        requant(np.matmul(centred, weights_t, out=acc), out)
        if skip_activations:
            return int(np.count_nonzero(centred, axis=0) @ keep_per_k)
        return None

    return Built(run, Work(m * n_out * k, m * int(keep.sum()), m * n_out))


@dataclass
class ConvGeometry:
    x: np.ndarray       # channels-last input view [N, *S, Cin]
    y: np.ndarray       # channels-last output view [N, *O, Cout]
    cin: int
    cout: int
    group: int
    kernel: tuple
    strides: tuple
    dilations: tuple
    begins: tuple
    ends: tuple
    out: tuple

    @classmethod
    def of(cls, ctx: LayerContext) -> ConvGeometry:
        last = ctx.param("channels_last", 0)
        x, y = channels_last(ctx.operand(0, "x"), last), channels_last(ctx.outputs[0], last)
        kernel = tuple(ctx.param("kernel_shape"))
        nd = len(kernel)
        strides, dilations = tuple(ctx.param("strides")), tuple(ctx.param("dilations"))
        pads, group = tuple(ctx.param("pads")), int(ctx.param("group", 1))
        w = ctx.weights
        if w is None or x.ndim != nd + 2 or len(strides) != nd or len(dilations) != nd or len(pads) != 2 * nd \
                or min(pads, default=0) < 0:
            raise ctx.error(f"geometry does not fit input {list(x.shape)}")
        cin, cout = x.shape[-1], w.shape[0]
        if group < 1 or cin % group or cout % group:
            raise ctx.error(f"group {group} does not divide {cin} input and {cout} output channels")
        check_shape(ctx, "weights", w.shape, (cout, cin // group, *kernel))
        out = tuple(conv_out_size(i, k, s, d, pads[a] + pads[a + nd]) for a, (i, k, s, d)
                    in enumerate(zip(x.shape[1:-1], kernel, strides, dilations)))
        check_shape(ctx, "output", y.shape, (x.shape[0], *out, cout))
        return cls(x, y, cin, cout, group, kernel, strides, dilations, pads[:nd], pads[nd:], out)

    @property
    def positions(self) -> int:
        return self.x.shape[0] * math.prod(self.out)


@kernel("QConv")
def qconv(ctx: LayerContext) -> Built:
    g = ConvGeometry.of(ctx)
    x, bias, multiplier, shift = mac_operands(ctx, g.cout)
    zx, span = input_span(ctx, x)
    rows = ctx.weights.reshape(g.cout, -1)
    dtype, keep = prepare_rows(ctx, rows, bias, span)
    requant = requantizer(ctx, bias, multiplier, shift)
    buffer, interior = padded_buffer(g.x.shape, g.begins, g.ends, dtype)
    depthwise = g.group == g.cin == g.cout
    body = (_depthwise if depthwise else _im2col)(g, buffer, ctx.weights, keep)
    skip_activations = ctx.skip_zero_activations

    def run():
        np.subtract(g.x, zx, out=interior, dtype=dtype)
        acc, executed = body(skip_activations)
        requant(acc, g.y)
        return executed

    return Built(run, Work(g.positions * rows.size, g.positions * int(keep.sum()), g.positions * g.cout))


def _depthwise(g: ConvGeometry, buffer: np.ndarray, w: np.ndarray, keep: np.ndarray):
    """acc = Σ_tap view_tap · w[:, tap]; with stride 1 along the last spatial axis
    the views run over (last axis, channel) as one contiguous axis."""
    c, n = g.cin, buffer.shape[0]
    per_tap = w.reshape(c, -1).T.astype(buffer.dtype)             # [taps, C]
    keep_tap = keep.T.astype(np.int64)                              # [taps, C]
    if g.strides[-1] == 1:
        flat = buffer.reshape(n, *buffer.shape[1:-2], -1)
        views = [flat[_merged_tap(g, tap, c)] for tap in np.ndindex(*g.kernel)]
        per_tap = np.tile(per_tap, (1, g.out[-1]))
    else:
        views = taps(buffer, g.kernel, g.strides, g.dilations, g.out)
    acc, term = np.empty(views[0].shape, buffer.dtype), np.empty(views[0].shape, buffer.dtype)

    def body(skip_activations: bool):
        np.multiply(views[0], per_tap[0], out=acc)
        for view, weights in zip(views[1:], per_tap[1:]):
            np.add(acc, np.multiply(view, weights, out=term), out=acc)
        executed = None
        if skip_activations:
            executed = sum(int((view != 0).reshape(-1, c).sum(axis=0) @ k) for view, k in zip(views, keep_tap))
        return acc.reshape(g.y.shape), executed
    return body


def _merged_tap(g: ConvGeometry, tap: tuple, c: int) -> tuple:
    """Index of one tap's view in the buffer reshaped to [N, *S[:-1], S[-1]·C]."""
    lead = tuple(slice(t * d, t * d + (o - 1) * s + 1, s)
                 for t, d, o, s in zip(tap[:-1], g.dilations, g.out, g.strides))
    start = tap[-1] * g.dilations[-1] * c
    return (slice(None), *lead, slice(start, start + g.out[-1] * c))


def _im2col(g: ConvGeometry, buffer: np.ndarray, w: np.ndarray, keep: np.ndarray):
    """Columns [positions, taps · Cg] (tap-major) times weights [taps · Cg, Cout/group], per group."""
    cg, mg, count = g.cin // g.group, g.cout // g.group, math.prod(g.kernel)

    def tap_major(a: np.ndarray) -> np.ndarray:  # [Mg, Cg, *K] -> [K·Cg, Mg]
        return np.moveaxis(a.reshape(a.shape[0], cg, count), 1, -1).reshape(a.shape[0], -1).T

    mats = [np.ascontiguousarray(tap_major(w[i * mg:(i + 1) * mg]), dtype=buffer.dtype) for i in range(g.group)]
    keeps = [tap_major(keep.reshape(w.shape)[i * mg:(i + 1) * mg]).sum(axis=1) for i in range(g.group)]
    direct = count == 1 and set(g.strides) == {1} and not any(g.begins) and not any(g.ends)
    views = taps(buffer, g.kernel, g.strides, g.dilations, g.out)
    cols = np.empty((*views[0].shape[:-1], count, cg), buffer.dtype)
    acc = np.empty((g.positions, g.cout), buffer.dtype)

    def columns(i: int) -> np.ndarray:
        if direct and g.group == 1:
            return buffer.reshape(g.positions, cg)
        for t, view in enumerate(views):
            cols[..., t, :] = view[..., i * cg:(i + 1) * cg]
        return cols.reshape(g.positions, count * cg)

    def body(skip_activations: bool):
        executed = 0
        for i in range(g.group):
            block = columns(i)
            if g.group == 1:
                np.matmul(block, mats[0], out=acc)
            else:
                acc[:, i * mg:(i + 1) * mg] = block @ mats[i]
            if skip_activations:
                executed += int(np.count_nonzero(block, axis=0) @ keeps[i])
        return acc.reshape(g.y.shape), (executed if skip_activations else None)
    return body
