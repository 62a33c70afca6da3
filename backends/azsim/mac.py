"""The MAC array: QConv and QGemm (docs/numerics.md §2),

    acc[c] = bias[c] + Σ_k (x_k − z_x) · w[c, k]          (int32 accumulators)
    y[c]   = clamp(z_y + round_shift(acc[c] · m[c], n[c]), out_min, out_max)

executed as the chip would: the decoded weights sit in weight SRAM (one matrix per
layer, prepared once), then
- QGemm: the input row times the weights (one dot for a single row);
- convolutions: im2col (columns tap-major, channels inner: one strided copy of
  every window) and one matrix product per group; a 1×1, stride-1 layer on a
  contiguous raw input is its own column matrix;
- depthwise convolutions (group = Cin = Cout): with few output positions
  (SMALL_DEPTHWISE) one einsum over the windows; otherwise one multiply-add per
  kernel tap over all positions and channels (with stride 1 along the last
  spatial axis, that axis and the channels are one contiguous run).
A padded convolution centres its input (x − z_x) into a per-layer buffer whose
border is the padding, real zero. QGemm and an unpadded convolution sum the raw
input instead and fold the centring into the bias, Σ_k (x_k − z_x)·w[c, k] = Σ_k x_k·w[c, k] −
z_x·Σ_k w[c, k] (`plan_sums`, which says when), saving a pass over the input.

Sums run in floating point on exact integers: float32 when the layer's worst case
Σ_k |w[c, k]| · span is below 2^24 (every product and every partial sum, in any
order — BLAS and einsum choose theirs — is then an integer float32 holds
exactly), else float64 (below 2^32 < 2^53); span = max |x − z_x| over the input
type (at most 255), or max |x| for raw sums. A layer whose worst case
Σ_k |w[c, k]| · span + |bias[c]| reaches 2^31 would overflow the chip's int32
accumulators and is refused. The requantization is `Requantizer` (requantizer.py):
int64, or float64 where that is exact; a single row runs as one flat closure (gemv.py).

Zero skipping (accounting only: skipped products are zero, so results are the
same): weights are grouped in runs of `zero_skip_group` consecutive weights along
each output channel's reduction axis in stored order ([Cin/group, *kernel] for
QConv, K for QGemm); an all-zero group is skipped at every output position.
With activation skipping, a MAC of a kept group is also skipped where its
centred input x − z_x is zero (padding included).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import as_strided

from nnc.errors import UnsupportedError

from .gemv import single_row
from .kernels import (INT64_SAFE, Built, LayerContext, Work, channels_last, check_shape, clamp_params,
                      conv_out_size, kernel, padded_buffer, taps)
from .requantizer import ACCUMULATOR_LIMIT, Requantizer
from nnc.records import record

EXACT_FLOAT32 = 1 << 24
SMALL_DEPTHWISE = 256  # output positions up to which one einsum beats a multiply-add per tap


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
    """(accumulator dtype, keep mask, per-channel bound on |acc − bias|) of weight
    rows [C, K]; UnsupportedError if a channel could overflow the int32 accumulator."""
    worst = np.abs(rows.astype(np.int64)).sum(axis=1) * span
    if rows.size and (worst + np.abs(bias)).max() >= ACCUMULATOR_LIMIT:
        channel = int(np.argmax(worst + np.abs(bias)))
        raise UnsupportedError(f"layer {ctx.desc.name!r} ({ctx.desc.op}): output channel {channel} can "
                               f"overflow the chip's int32 accumulator (Σ|w|·{span} + |bias| >= 2^31)")
    return exact_dtype(worst), keep_mask(rows, ctx.zero_skip_group), worst


def exact_dtype(bound: np.ndarray):
    """float32 when every |sum| ≤ bound stays below 2^24, else float64."""
    return np.float32 if bound.max(initial=0) < EXACT_FLOAT32 else np.float64


def keep_mask(rows: np.ndarray, group: int) -> np.ndarray:
    """Per weight of rows [C, K]: True where its group of `group` consecutive
    weights along K is not all zero (the last group of a row may be shorter)."""
    c, k = rows.shape
    padded = np.zeros((c, -(-k // group) * group), bool)
    padded[:, :k] = rows != 0
    alive = padded.reshape(c, -1, group).any(axis=2)
    return np.repeat(alive, group, axis=1)[:, :k]


@record
class Sums:
    """How a layer forms its accumulators: over the raw input with the centring
    folded into the bias (`raw`), or over the centred input; in `dtype`, with
    |acc| ≤ `bound` per channel before `bias` is added."""

    raw: bool
    dtype: type
    bias: np.ndarray
    bound: np.ndarray


def plan_sums(rows: np.ndarray, bias: np.ndarray, multiplier: np.ndarray, x: np.ndarray, zx: int, dtype,
              worst: np.ndarray, allow_raw: bool) -> Sums:
    """Raw sums, Σ_k (x_k − z_x)·w[c, k] = Σ_k x_k·w[c, k] − z_x·Σ_k w[c, k], save the
    centring pass. They are taken when allowed (an unpadded input: padding must
    stay real zero), when their worst case Σ|w|·max|x| needs the same float dtype
    as centred sums (so they are as exact and as fast), and when the folded bias
    keeps (bound + |bias|)·m < 2^61: with 2^(n−1) ≤ 2^61 every Requantizer sum then
    stays below 2^62. Otherwise the input is centred first."""
    info = np.iinfo(x.dtype)
    raw_bound = np.abs(rows.astype(np.int64)).sum(axis=1) * max(-info.min, info.max)
    folded = bias - zx * rows.astype(np.int64).sum(axis=1)
    raw = allow_raw and exact_dtype(raw_bound) == dtype and \
        ((raw_bound + np.abs(folded)) * multiplier.astype(np.float64)).max(initial=0.0) < INT64_SAFE / 2
    return Sums(True, dtype, folded, raw_bound) if raw else Sums(False, dtype, bias, worst)


def requantizer(ctx: LayerContext, bias, multiplier, shift, bound, acc_shape) -> Requantizer:
    period = acc_shape[-2] if len(acc_shape) >= 2 else 1
    return Requantizer(bias, multiplier, shift, *clamp_params(ctx), bound=bound, period=period)


@kernel("QGemm")
def qgemm(ctx: LayerContext) -> Built:
    """One matrix product, over the raw input when plan_sums allows; a single row
    (the usual case) as gemv.single_row's flat closure where its requantization
    is exact in float64, else as a vector-matrix dot, which numpy runs with less
    overhead than a 1-row matmul."""
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
    dtype, keep, worst = prepare_rows(ctx, w, bias, span)
    sums = plan_sums(w, bias, multiplier, x, zx, dtype, worst, allow_raw=True)
    keep_per_k = keep.sum(axis=0)
    skip_activations, raw, z, subtract = ctx.skip_zero_activations, sums.raw, x.dtype.type(zx), np.subtract
    rows, result = x, out
    work = Work(m * n_out * k, m * int(keep.sum()), m * n_out)
    flat = single_row(w, dtype, x, zx, raw, out, requantizer(ctx, sums.bias, multiplier, shift, sums.bound,
                                                              (n_out,))) if m == 1 else None
    if flat is not None and not skip_activations:
        return Built(flat, work)
    if flat is not None:
        def counted():
            flat()
            return int(np.count_nonzero(rows != z, axis=0) @ keep_per_k)
        return Built(counted, work)
    centred, acc = np.empty((m, k), dtype), np.empty((m, n_out), dtype)
    if m == 1:  # 1-D operands: numpy's fastest path, no broadcasting against the per-channel vectors
        x, centred, acc, result = x[0], centred[0], acc[0], out[0]
        weights_rows = np.ascontiguousarray(w, dtype=dtype)  # [N, K]: BLAS's untransposed gemv, ~1.6x a [K, N] one

        def multiply(row):
            np.dot(weights_rows, row, out=acc)
    else:
        weights_t = np.ascontiguousarray(w.T, dtype=dtype)

        def multiply(matrix):
            np.matmul(matrix, weights_t, out=acc)
    requantize = requantizer(ctx, sums.bias, multiplier, shift, sums.bound, acc.shape).bind(acc, result)

    def run():
        multiply(x if raw else subtract(x, z, out=centred, dtype=dtype))
        requantize()
        if skip_activations:
            return int(np.count_nonzero(rows != z, axis=0) @ keep_per_k)
        return None

    return Built(run, work)


@record(frozen=False)
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

    @property
    def padded(self) -> bool:
        return any(self.begins) or any(self.ends)

    def windows(self, a: np.ndarray) -> np.ndarray:
        """A read-only view [N, *O, *K, C] of channels-last `a` (the input, grown by
        the pads if the layer has any): windows[n, *o, *t, c] = a[n, *(o·stride +
        t·dilation), c]. The geometry check above keeps every window inside `a`:
        (O − 1)·stride + (K − 1)·dilation < input + pads along each axis."""
        spatial = a.strides[1:-1]
        strides = (a.strides[0], *(s * st for s, st in zip(spatial, self.strides)),
                   *(s * d for s, d in zip(spatial, self.dilations)), a.strides[-1])
        return as_strided(a, (a.shape[0], *self.out, *self.kernel, a.shape[-1]), strides, writeable=False)


@kernel("QConv")
def qconv(ctx: LayerContext) -> Built:
    g = ConvGeometry.of(ctx)
    x, bias, multiplier, shift = mac_operands(ctx, g.cout)
    zx, span = input_span(ctx, x)
    rows = ctx.weights.reshape(g.cout, -1)
    dtype, keep, worst = prepare_rows(ctx, rows, bias, span)
    depthwise = g.group == g.cin == g.cout
    small = g.positions <= SMALL_DEPTHWISE
    sums = plan_sums(rows, bias, multiplier, x, zx, dtype, worst, allow_raw=not g.padded and (small or not depthwise))
    body, acc = (_depthwise if depthwise else _im2col)(g, zx, sums, ctx.weights, keep)
    requantize = requantizer(ctx, sums.bias, multiplier, shift, sums.bound, g.y.shape).bind(acc, g.y)
    skip_activations = ctx.skip_zero_activations

    def run():
        executed = body(skip_activations)
        requantize()
        return executed

    return Built(run, Work(g.positions * rows.size, g.positions * int(keep.sum()), g.positions * g.cout))


def _depthwise(g: ConvGeometry, zx: int, sums: Sums, w: np.ndarray, keep: np.ndarray):
    """acc = Σ_tap window_tap · w[:, tap], over the raw input (small layers without
    padding) or the centred, padded input. Returns (body, acc): body(skip_activations)
    fills acc and returns the executed MACs when it counts them, else None."""
    c = g.cin
    per_tap = np.ascontiguousarray(w.reshape(c, -1).T, dtype=sums.dtype)  # [taps, C]
    keep_tap = keep.T.astype(np.int64)                                    # [taps, C]
    if sums.raw:
        source, interior, zero = g.x, None, zx
    else:
        (source, interior), zero = padded_buffer(g.x.shape, g.begins, g.ends, sums.dtype), 0
    views = taps(source, g.kernel, g.strides, g.dilations, g.out)
    compute, acc = (_einsum_taps if g.positions <= SMALL_DEPTHWISE else _tap_by_tap)(g, source, per_tap, sums.dtype)

    def body(skip_activations: bool) -> int | None:
        if interior is not None:
            np.subtract(g.x, zx, out=interior, dtype=sums.dtype)
        compute()
        if skip_activations:
            return sum(int((view != zero).reshape(-1, c).sum(axis=0) @ k) for view, k in zip(views, keep_tap))
        return None
    return body, acc


def _einsum_taps(g: ConvGeometry, source: np.ndarray, per_tap: np.ndarray, dtype):
    """One einsum acc[n, *o, c] = Σ_t windows[n, *o, *t, c] · w[*t, c]: for few
    positions it runs far fewer numpy calls than one multiply-add per tap."""
    nd, c = len(g.kernel), g.cin
    windows, weights = g.windows(source), per_tap.reshape(*g.kernel, c)
    acc = np.empty(g.y.shape, dtype)
    outer, inner, channel = [0, *range(1, nd + 1)], list(range(nd + 1, 2 * nd + 1)), [2 * nd + 1]
    return (lambda: np.einsum(windows, outer + inner + channel, weights, inner + channel, outer + channel,
                              out=acc, dtype=dtype)), acc


def _tap_by_tap(g: ConvGeometry, buffer: np.ndarray, per_tap: np.ndarray, dtype):
    """acc = Σ_tap view_tap · w[:, tap] over the centred buffer; with stride 1 along
    the last spatial axis the views run over (last axis, channel) as one
    contiguous axis."""
    c, n = g.cin, buffer.shape[0]
    if g.strides[-1] == 1:
        flat = buffer.reshape(n, *buffer.shape[1:-2], -1)
        views = [flat[_merged_tap(g, tap, c)] for tap in np.ndindex(*g.kernel)]
        per_tap = np.tile(per_tap, (1, g.out[-1]))
    else:
        views = taps(buffer, g.kernel, g.strides, g.dilations, g.out)
    acc, term = np.empty(views[0].shape, dtype), np.empty(views[0].shape, dtype)

    def compute():
        np.multiply(views[0], per_tap[0], out=acc)
        for view, weights in zip(views[1:], per_tap[1:]):
            np.add(acc, np.multiply(view, weights, out=term), out=acc)
    return compute, acc.reshape(g.y.shape)


def _merged_tap(g: ConvGeometry, tap: tuple, c: int) -> tuple:
    """Index of one tap's view in the buffer reshaped to [N, *S[:-1], S[-1]·C]."""
    lead = tuple(slice(t * d, t * d + (o - 1) * s + 1, s)
                 for t, d, o, s in zip(tap[:-1], g.dilations, g.out, g.strides))
    start = tap[-1] * g.dilations[-1] * c
    return (slice(None), *lead, slice(start, start + g.out[-1] * c))


def _im2col(g: ConvGeometry, zx: int, sums: Sums, w: np.ndarray, keep: np.ndarray):
    """Columns [positions, taps · Cg] (tap-major) times weights [taps · Cg, Cout/group],
    per group. The columns are one strided copy of the windows: of the centred,
    padded buffer, or of the input itself (raw, or centred in the same copy);
    a 1×1, stride-1, single-group layer on a contiguous raw input is its own
    column matrix. Returns (body, acc) as _depthwise does."""
    cg, mg, count, dtype = g.cin // g.group, g.cout // g.group, math.prod(g.kernel), sums.dtype

    def tap_major(a: np.ndarray) -> np.ndarray:  # [Mg, Cg, *K] -> [K·Cg, Mg]
        return np.moveaxis(a.reshape(a.shape[0], cg, count), 1, -1).reshape(a.shape[0], -1).T

    mats = [np.ascontiguousarray(tap_major(w[i * mg:(i + 1) * mg]), dtype=dtype) for i in range(g.group)]
    keeps = [tap_major(keep.reshape(w.shape)[i * mg:(i + 1) * mg]).sum(axis=1) for i in range(g.group)]
    buffer, interior = padded_buffer(g.x.shape, g.begins, g.ends, dtype) if g.padded else (g.x, None)
    # the copy into the columns subtracts `offset`; a column entry equal to `zero` is a zero activation
    offset, zero = (0 if sums.raw or g.padded else zx), (zx if sums.raw else 0)
    windows = g.windows(buffer)
    group_windows = [windows[..., i * cg:(i + 1) * cg] for i in range(g.group)]
    cols = np.empty((*windows.shape[:-1], cg), dtype)
    direct = sums.raw and count == 1 and set(g.strides) == {1} and g.group == 1 and g.x.flags.c_contiguous
    block = g.x.reshape(g.positions, cg) if direct else cols.reshape(g.positions, count * cg)
    acc = np.empty(g.y.shape, dtype)
    products = acc.reshape(g.positions, g.cout)

    def body(skip_activations: bool) -> int | None:
        if interior is not None:
            np.subtract(g.x, zx, out=interior, dtype=dtype)
        executed = 0
        for i, group in enumerate(group_windows):
            if not direct:
                np.subtract(group, offset, out=cols, dtype=dtype)
            if g.group == 1:
                np.matmul(block, mats[0], out=products)
            else:
                products[:, i * mg:(i + 1) * mg] = block @ mats[i]
            if skip_activations:
                executed += int(np.count_nonzero(block != zero, axis=0) @ keeps[i])
        return executed if skip_activations else None
    return body, acc
