"""The fast int8 kernels' lowering: routes, and the constants prepared at compile
time (kernels/qarm.h, qmm.c.j2, qmms.c.j2, qmmconv.c.j2, qdwf.c.j2, qpoolf.c.j2,
qaddf.c.j2).

A QConv or QGemm with int8 x and int8 y takes one of three routes:
- `qmm` (QGemm; QConv 1x1 with stride 1, no padding, one group): the layer is
  rows of x times weight rows [n][k];
- `qmmconv` (other QConv with one group): each output position's window is
  gathered into a row of an arena scratch (two rows of k = window rounded up to
  a multiple of 4 bytes, the weights zero-padded alike), then as qmm;
- `qdwf` (depthwise, groups == in_c == out_c, at most MAX_TAPS taps).
The kernels sum raw int8 x: the zero point is folded into the bias,
bias'[c] = bias[c] - x_zero · Σ w[c], so that Σ (x - x_zero)·w + bias = Σ x·w +
bias' (padding taps read x_zero itself). A route is taken only when
- every partial sum stays inside int32: |bias'| + 128·Σ|w| < 2^31;
- the requantization has the rq_hi form (qarm.h): every shift n >= 33;
otherwise the layer keeps the portable kernels of ops_int. Instances are
specialised by the row length k (or the channel and tap counts, or the
window's shape), the clamp bounds and whether some layer's output channels end
in a group of fewer than four (`_ragged`), which the generated code holds as
literals. A qmm or qmmconv layer whose weights are few enough nonzeros
(sparse_lists) runs them through `qmms` instead, which sums only those.
An int8 QAveragePool whose windows lie inside x goes through `qpoolf`, an int8
QAdd without broadcasting through `qaddf`.
"""

from __future__ import annotations

import math

import numpy as np

from .geometry import conv_fields
from .lowering import Ctx
from nnc.records import record

INT32_LIMIT = 1 << 31
RAW_SPAN = 128  # the largest |x| of a raw int8 value
MAX_TAPS = 64  # depthwise windows of qdwf (its tap pointers live on the stack)
MAX_POOL_WINDOW = 255  # qpoolf's windows: 255 * 128 fits a halfword sum
DSP_STEP, MVE_STEP = 4, 16  # bytes per inner step: one 32-bit word, one Helium vector
UNROLL = 4  # inner steps per loop iteration
SPARSE_LANES = 8  # qmms's Helium step: nonzeros per gather load
# qmms runs a layer when its listed entries (padding included) are at most this fraction
# of its weights. Counted in qemu (benchmarks/cortex_m.py): a nonzero costs about 4.5
# instructions per row on a DSP core against 0.45 per dense weight; with Helium 8 entries
# cost about 3 per row against 0.13 per dense weight, plus some 10 per channel. KWS
# pruned to 95 %, pointwise 64->64 on 25x5: 285 K instead of 731 K (Cortex-M4, -O2),
# 123 K instead of 142 K (Cortex-M55, -O2), 148 K instead of 142 K (M55, -Os).
SPARSE_MAX_DENSITY = 1 / 8
EXT_BYTES = 256  # stack the DSP path may take for two rows of x as SXTB16 halves (4 bytes per byte of x)


@record
class Route:
    kind: str  # "qmm", "qmmconv" or "qdwf"
    rows: np.ndarray  # int8 weights in the kernel's layout: [n rounded up to 4][k] or [taps][channels]
    sums: np.ndarray  # int64 Σ w per output channel
    abs_sums: np.ndarray  # int64 Σ |w| per output channel
    window: int = 0  # qmmconv: values in one window (k_h · k_w · in_c)


def route(graph, node, weights: np.ndarray | None) -> Route | None:
    """The fast route of a QConv/QGemm node, or None (see the module docstring)."""
    x, y = graph.tensor(node.inputs[0]), graph.tensor(node.outputs[0])
    if weights is None or x.dtype != "i8" or y.dtype != "i8":
        return None
    if node.op == "QGemm":
        return _rows_route("qmm", weights)
    w = weights[:, :, None, :] if weights.ndim == 3 else weights  # [out_c][in_c / group][k_h][k_w]
    a = node.attrs
    if not a.channels_last or len(x.shape) not in (3, 4):
        return None
    in_c, out_c = x.shape[-1], w.shape[0]
    if a.group == in_c == out_c and w.shape[1] == 1:
        if w.shape[2] * w.shape[3] > MAX_TAPS:
            return None
        taps = w[:, 0].reshape(out_c, -1)
        return Route("qdwf", taps.T.copy(), _sums(taps), _sums(np.abs(taps)))
    if a.group != 1:
        return None
    rows = w.transpose(0, 2, 3, 1).reshape(out_c, -1)  # [out_c][k_h][k_w][in_c]
    pointwise = rows.shape[1] == in_c and set(a.strides) == {1} and not any(a.pads)
    if pointwise:
        return _rows_route("qmm", rows)
    k = -(-rows.shape[1] // DSP_STEP) * DSP_STEP
    padded = np.zeros((out_c, k), np.int8)
    padded[:, :rows.shape[1]] = rows
    found = _rows_route("qmmconv", padded)
    return Route("qmmconv", found.rows, found.sums, found.abs_sums, rows.shape[1])


def _sums(rows: np.ndarray) -> np.ndarray:
    return rows.astype(np.int64).sum(axis=1)


def _rows_route(kind: str, rows: np.ndarray) -> Route:
    """Weight rows [n][k], with zero rows up to a multiple of 4 (the kernels
    take output channels four or two at a time)."""
    n = rows.shape[0]
    padded = np.zeros((-(-n // 4) * 4, rows.shape[1]), np.int8)
    padded[:n] = rows
    return Route(kind, padded, _sums(rows), _sums(np.abs(rows)))


def folded_bias(bias: np.ndarray, found: Route, x_zero: int) -> np.ndarray | None:
    """bias - x_zero · Σ w per channel, or None when a raw partial sum could leave int32."""
    folded = bias.astype(np.int64) - x_zero * found.sums
    if (np.abs(folded) + RAW_SPAN * found.abs_sums).max(initial=0) >= INT32_LIMIT:
        return None
    return folded


def rq_hi_constants(shift: np.ndarray, y_zero: int) -> tuple[np.ndarray, int] | None:
    """qarm.h's rq_hi constants: t = shift - 33 per channel and the literal
    k = 1 + 2 · y_zero; None when a shift is below 33."""
    n = shift.astype(np.int64)
    if n.size == 0 or n.min() < 33 or n.max() > 62:
        return None
    return n - 33, 1 + 2 * y_zero


@record
class Prepared:
    """A layer's route and its constants: per group of four output channels
    bias'[4] and m[4] (int32; channels rounded up to 4, zeros after the last),
    t = shift - 33 per channel (int8), and rq_hi's k = 1 + 2 · y_zero."""

    route: Route
    consts: np.ndarray
    t: np.ndarray
    rk: int


def prepare(found: Route, bias: np.ndarray, mult: np.ndarray, shift: np.ndarray, attrs) -> Prepared | None:
    """The folded bias and rq_hi constants of a routed layer, or None when a bound fails."""
    folded = folded_bias(bias, found, attrs.x_zero_point)
    rq = rq_hi_constants(shift, attrs.y_zero_point)
    if folded is None or rq is None:
        return None
    groups = -(-len(mult) // 4)
    consts = np.zeros((2, groups * 4), np.int64)
    consts[0, :len(folded)], consts[1, :len(mult)] = folded, mult
    t = np.zeros(groups * 4, np.int8)
    t[:len(mult)] = rq[0]
    return Prepared(found, consts.reshape(2, groups, 4).transpose(1, 0, 2).astype(np.int32), t, rq[1])


def steps(k: int, size: int) -> dict:
    """The inner loop over a row of k bytes in steps of `size`: `blocks`
    iterations of `unroll` steps, `rest` more steps, then `tail` bytes."""
    whole = k // size
    unroll = min(UNROLL, whole) or 1
    return dict(blocks=whole // unroll, unroll=unroll, rest=whole % unroll, tail=k % size)


def clamp_suffix(attrs) -> str:
    """Instance name suffix of a clamp narrower than int8's range (instances hold
    the clamp bounds as literals)."""
    if (attrs.out_min, attrs.out_max) == (-128, 127):
        return ""
    return f"_{attrs.out_min}_{attrs.out_max}".replace("-", "m")


def plan(program, node) -> Prepared | None:
    """The fast route of a QConv/QGemm node of `program` with its constants, or
    None. Planned once per node (program.fast_plans) from the graph's own
    constants, so the arena scratch (sized before lowering) and the lowering
    agree."""
    if node.name not in program.fast_plans:
        program.fast_plans[node.name] = _plan(program.graph, node)
    return program.fast_plans[node.name]


def _plan(graph, node) -> Prepared | None:
    w, b, mult, shift = (graph.tensor(t).data if t else None for t in node.inputs[1:5])
    found = route(graph, node, w)
    if found is None or mult is None or shift is None or (node.inputs[2] and b is None):
        return None
    bias = b if b is not None else np.zeros(len(mult), np.int32)
    return prepare(found, bias, mult, shift, node.attrs)


def scratch_bytes(program, node) -> int:
    """Arena scratch of the node's fast route: qmmconv's two gathered rows."""
    prepared = plan(program, node)
    return 2 * prepared.route.rows.shape[1] if prepared is not None and prepared.route.kind == "qmmconv" else 0


def lower(ctx: Ctx, node, prepared: Prepared) -> list[str]:
    """The call of a planned layer's fast kernel (after ops_int's checks)."""
    x, y = node.inputs[0], node.outputs[0]
    found, a = prepared.route, node.attrs
    sfx = clamp_suffix(a)
    out = dict(lo=a.out_min, hi=a.out_max)
    if found.kind == "qdwf":
        layer = _layer(ctx, node, prepared)
        channels, taps = found.rows.shape[1], found.rows.shape[0]
        groups = tap_groups(found.rows)
        single = "" if all(len(g) == 2 for g in groups[:taps // 2]) else "_single"
        fn = ctx.kernel("qdwf", fn=f"qdwf_c{channels}_t{taps}{sfx}{single}", channels=channels, taps=taps,
                        groups=groups, **out)
        pad = _pad(ctx, a.x_zero_point, channels)
        g = ctx.struct("geom", "conv_geom", conv_fields(ctx.shape(x), ctx.shape(y), a))
        return [f"{fn}({g}, {layer}, {pad}, {ctx.ptr(x)}, {ctx.ptr(y)});"]
    k = found.rows.shape[1]
    rows = math.prod(ctx.shape(y)[:-1])
    parts = (2,) * (rows >= 2) + (1,) * (rows % 2)
    ragged = len(found.sums) % 4 != 0  # a last group of fewer than four output channels
    sfx += "_ragged" * ragged
    lists = sparse_lists(found.rows)
    family, fn, core_params = _core(k, sfx, lists is not None, dict(out, ragged=ragged))
    layer_type = "qfast_sparse" if lists is not None else "qfast_layer"
    layer = _layer(ctx, node, prepared) if lists is None else _sparse_layer(ctx, node, prepared, lists)
    if found.kind == "qmm":
        fn = ctx.kernel(family, fn=fn, parts=parts + (0,), **core_params)
        return [f"{fn}({layer}, {rows}, {ctx.ptr(x)}, {ctx.ptr(y)});"]
    core = ctx.kernel(family, fn=fn, parts=(2,) + (1,) * (rows % 2), **core_params)
    geom = conv_fields(ctx.shape(x), ctx.shape(y), a)
    shape = dict(k_h=geom["k_h"], k_w=geom["k_w"], in_c=geom["in_c"])
    name = f"qmmconv_k{k}_{'x'.join(map(str, shape.values()))}{sfx}{'_sparse' if lists else ''}"
    fn = ctx.kernel("qmmconv", fn=name, parts=(1,) * (rows % 2), core=core, k=k, window=found.window,
                    layer_type=layer_type, **shape)
    pad = _pad(ctx, a.x_zero_point, geom["k_w"] * geom["in_c"])
    g = ctx.struct("geom", "conv_geom", geom)
    return [f"{fn}({g}, {layer}, {pad}, {ctx.ptr(x)}, {ctx.ptr(y)}, (int8_t *){ctx.scratch()});"]


def _core(k: int, sfx: str, sparse: bool, out: dict) -> tuple[str, str, dict]:
    """(kernel family, instance name, template parameters) of the rows kernel
    of a qmm/qmmconv layer: qmms for sparse lists, else qmm with its inner
    loops' steps."""
    if sparse:
        return "qmms", f"qmms_k{k}{sfx}", dict(k=k, **out)
    dsp = steps(k, DSP_STEP)
    dsp.update(words=k // DSP_STEP, ext=DSP_STEP <= k and 4 * k <= EXT_BYTES)
    return "qmm", f"qmm_k{k}{sfx}", dict(k=k, dsp=dsp, mve=steps(k, MVE_STEP), **out)


def sparse_lists(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """qmms's lists of weight rows [n][k] (qfast_sparse in qarm.h): positions
    (uint16) and values (int8) of each row's nonzeros, row after row, each
    row's list padded with (0, 0) to a multiple of SPARSE_LANES entries, and
    per row its entries plus its padding entries (uint16, from which qmms
    reads both). None when the entries exceed SPARSE_MAX_DENSITY of the dense
    weights (the dense kernels are then cheaper on some core), when there are
    none, or when k > 2^15 (the per-row sizes stay below 2^16)."""
    counts = np.count_nonzero(rows, axis=1)
    steps = -(-counts // SPARSE_LANES)
    total = int(steps.sum()) * SPARSE_LANES
    if not 0 < total <= SPARSE_MAX_DENSITY * rows.size or rows.shape[1] > 1 << 15:
        return None
    starts = np.concatenate([[0], np.cumsum(steps)[:-1]]) * SPARSE_LANES
    positions, values = np.zeros(total, np.uint16), np.zeros(total, np.int8)
    row, column = np.nonzero(rows)  # row by row, each row's in column order
    rank_in_row = np.arange(row.size) - (np.cumsum(counts) - counts)[row]
    positions[starts[row] + rank_in_row] = column
    values[starts[row] + rank_in_row] = rows[row, column]
    return positions, values, (steps * SPARSE_LANES * 2 - counts).astype(np.uint16)


def lower_pool(ctx: Ctx, node, fields: dict) -> list[str] | None:
    """A QAveragePool on int8 whose windows lie inside x (no padding, at most
    MAX_POOL_WINDOW positions: qpoolf sums them in 16 bits on the DSP path)
    through qpoolf, when its requantization has the rq_hi form; else None."""
    x, y, a = node.inputs[0], node.outputs[0], node.attrs
    count = fields["k_h"] * fields["k_w"]
    if (ctx.dtype(x), ctx.dtype(y), a.channels_last) != ("i8", "i8", True) or any(a.pads) or count > MAX_POOL_WINDOW:
        return None
    rq = rq_hi_constants(np.array([a.shift]), a.y_zero_point)
    if rq is None:
        return None
    channels = fields["c"]
    fn = ctx.kernel("qpoolf", fn=f"qpoolf_c{channels}{clamp_suffix(a)}", channels=channels, lo=a.out_min,
                    hi=a.out_max)
    q = ctx.struct("q", "qfast_pool", dict(offset=-count * a.x_zero_point, m=a.multiplier, t=int(rq[0][0]),
                                           k=rq[1]))
    return [f"{fn}({ctx.struct('geom', 'pool_geom', fields)}, {q}, {ctx.ptr(x)}, {ctx.ptr(y)});"]


def lower_add(ctx: Ctx, node) -> list[str] | None:
    """A QAdd of two int8 tensors of the output's shape through qaddf (an
    instance per shift), when |r| + 128 · (|a_mult| + |b_mult|) < 2^62 (the
    kernel's sums); else None."""
    a_in, b_in = node.inputs
    y, a = node.outputs[0], node.attrs
    shapes = {ctx.shape(a_in), ctx.shape(b_in), ctx.shape(y)}
    if len(shapes) != 1 or {ctx.dtype(a_in), ctx.dtype(b_in), ctx.dtype(y)} != {"i8"}:
        return None
    r = ((1 << (a.shift - 1)) + a.y_zero_point * (1 << a.shift) - a.a_zero_point * a.a_multiplier
         - a.b_zero_point * a.b_multiplier)
    if abs(r) + RAW_SPAN * (abs(a.a_multiplier) + abs(a.b_multiplier)) >= 1 << 62:
        return None
    split = add_splits(r, a.a_multiplier, a.b_multiplier, a.shift)
    fn = ctx.kernel("qaddf", fn=f"qaddf_n{a.shift}{clamp_suffix(a)}{'' if split else '_wide'}", shift=a.shift,
                    lo=a.out_min, hi=a.out_max, split=split)
    q = ctx.struct("q", "qfast_add", dict(r=f"INT64_C({r})", a_mult=a.a_multiplier, b_mult=a.b_multiplier))
    return [f"{fn}({ctx.tensor(y).size}, {q}, {ctx.ptr(a_in)}, {ctx.ptr(b_in)}, {ctx.ptr(y)});"]


def add_splits(r: int, a_mult: int, b_mult: int, shift: int) -> bool:
    """Whether qaddf's Helium path holds for these constants (qaddf.c.j2):
    16 <= shift <= 48 (its last shift, by shift - 16, is VSHR's immediate,
    at most 32) and |r_h| + 128 · (|a_h| + |b_h|) + 2^9 < 2^31, where v_h =
    floor(v / 2^16)."""
    high = abs(r >> 16) + RAW_SPAN * (abs(a_mult >> 16) + abs(b_mult >> 16)) + (1 << 9)
    return 16 <= shift <= 48 and high < INT32_LIMIT


def tap_groups(taps: np.ndarray) -> list[tuple[int, ...]]:
    """Depthwise taps [taps][channels] in pairs whose int16 sum of products
    cannot overflow (RAW_SPAN · (|w_a| + |w_b|) < 2^15 in every channel), in
    order; all single taps when some pair could."""
    count = taps.shape[0]
    pairs = [(t, t + 1) for t in range(0, count - 1, 2)]
    magnitude = np.abs(taps.astype(np.int64))
    if any(RAW_SPAN * (magnitude[a] + magnitude[b]).max(initial=0) >= 1 << 15 for a, b in pairs):
        return [(t,) for t in range(count)]
    return pairs + [(count - 1,)] * (count % 2)


def _layer(ctx: Ctx, node, prepared: Prepared) -> str:
    """The flash arrays and the qfast_layer struct of a planned layer."""
    found, w = prepared.route, node.inputs[1]
    layout = {"qdwf": "[k_h][k_w][channels]", "qmm": "[out_c][k]",
              "qmmconv": "[out_c][k_h][k_w][in_c], zero-padded to a multiple of 4"}[found.kind]
    wi = ctx.array("w", found.rows, "i8", f"weights {w} as {layout}", key=(found.kind, w))
    ctx.record_weights("dense", 8, found.rows.nbytes)
    consts = ctx.array("c", prepared.consts, "i32", "per 4 channels: bias - x_zero * sum(w), multiplier")
    shifts = ctx.array("t", prepared.t, "i8", "shift - 33")
    fields = dict(w=wi, c=consts, t=shifts, n=len(found.sums), k=prepared.rk)
    return ctx.struct("fast", "qfast_layer", fields)


def _sparse_layer(ctx: Ctx, node, prepared: Prepared, lists: tuple[np.ndarray, np.ndarray, np.ndarray]) -> str:
    """The flash arrays and the qfast_sparse struct of a layer qmms runs."""
    positions, values, sizes = lists
    w = node.inputs[1]
    vi = ctx.array("w", values, "i8", f"nonzero weights of {w} by output channel, padded to {SPARSE_LANES}",
                   key=("qmms", w))
    pi = ctx.array("idx", positions, "u16", "their positions in the row", key=("qmms_idx", w))
    li = ctx.array("lists", sizes, "u16", "per channel: entries + padding entries", key=("qmms_lists", w))
    ctx.record_weights("sparse", 8, values.nbytes + positions.nbytes + sizes.nbytes)
    consts = ctx.array("c", prepared.consts, "i32", "per 4 channels: bias - x_zero * sum(w), multiplier")
    shifts = ctx.array("t", prepared.t, "i8", "shift - 33")
    dense = dict(w=vi, c=consts, t=shifts, n=len(prepared.route.sums), k=prepared.rk)
    fields = dict(l="{" + ", ".join(f".{k} = {v}" for k, v in dense.items()) + "}", idx=pi, lists=li)
    return ctx.struct("fast", "qfast_sparse", fields)


def _pad(ctx: Ctx, x_zero: int, length: int) -> str:
    """A flash row of `length` copies of x_zero (what padding taps read)."""
    return ctx.array("pad", np.full(length, x_zero, np.int8), "i8", f"padding: x_zero {x_zero}",
                     key=("pad", x_zero, length))
