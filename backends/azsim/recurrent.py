"""az-sim kernels of the integer recurrent ops QLSTM, QGRU, QRNN
(docs/numerics.md §15), written independently of the reference interpreter
with the shared primitives of nnc.numerics.

Operands (LayerDesc.inputs): x, w, r, bias, m_x, m_h, tables, h0 (-1: absent),
c0 (QLSTM, -1: absent); outputs Y, Y_h, Y_c (QLSTM), trailing ones optional.
Params: the op's attributes, `direction` as its index in DIRECTIONS.

The chip runs the time loop on its units: the gate matrix-vector products are
MAC work, T·B·D·G·H·(I + H) MACs; gates, cell, tables and output are PPU work,
per time step, batch row, direction and hidden unit: QLSTM 7 (four gate
tables, cell, tanh table, output), QGRU 6 (three tables, r·h, the mix, output),
QRNN 2 (table, output).
"""

from __future__ import annotations

import numpy as np

from nnc.numerics import round_shift

from .kernels import Built, LayerContext, Work, check_shape, kernel

DIRECTIONS = ("forward", "reverse", "bidirectional")
GATES = {"QLSTM": 4, "QGRU": 3, "QRNN": 1}
TABLES = {"QLSTM": 3, "QGRU": 2, "QRNN": 1}
PPU_PER_UNIT = {"QLSTM": 7, "QGRU": 6, "QRNN": 2}


class _Layer:
    """A recurrent layer's parameters, read once from the context."""

    def __init__(self, ctx: LayerContext):
        p = ctx.param
        self.op = ctx.desc.op
        self.hidden, self.layout = int(p("hidden_size")), int(p("layout"))
        self.direction = DIRECTIONS[int(p("direction"))]
        self.dirs = 2 if self.direction == "bidirectional" else 1
        self.zx, self.zh, self.shift = int(p("x_zero_point")), int(p("h_zero_point")), int(p("shift"))
        self.clip = p("clip", None)
        self.m_out, self.n_out, self.m_aux = int(p("out_multiplier")), int(p("out_shift")), int(p("aux_multiplier"))
        self.frac = int(p("cell_frac"))
        self.c0_zero, self.c0_m, self.c0_n = int(p("c0_zero_point")), int(p("c0_multiplier")), int(p("c0_shift"))
        self.lbr = bool(p("linear_before_reset"))


def _sat(v, bits: int):
    return np.clip(v, -(1 << (bits - 1)), (1 << (bits - 1)) - 1)


def _table(table: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Q3.12 -> Q0.15: entry (q + 2^15) >> 7, interpolated by the low 7 bits."""
    index, frac = (q + 32768) >> 7, (q + 32768) & 127
    return table[index] + round_shift((table[index + 1] - table[index]) * frac, 7)


def _pre(layer: _Layer, value: np.ndarray) -> np.ndarray:
    value = _sat(value, 16)
    return value if layer.clip is None else np.clip(value, -int(layer.clip), int(layer.clip))


def _batch_major(layer: _Layer, a: np.ndarray) -> np.ndarray:
    """x [T, B, I] or state [D, B, H] from the layer's layout (swap the first two axes for layout 1)."""
    return a if layer.layout == 0 else np.swapaxes(a, 0, 1)


def _lstm(layer, d, x_t, h, c, w, r, b, mx, mh, tabs):
    H = layer.hidden
    g = _pre(layer, round_shift((x_t @ w.T) * mx + ((h - layer.zh) @ r.T) * mh, layer.shift) + b)
    gi, go, gf = (_table(tabs[0], g[:, k * H:(k + 1) * H]) for k in range(3))
    gc = _table(tabs[1], g[:, 3 * H:])
    c = _sat(round_shift(gf * c, 15) + round_shift(gi * gc, 30 - layer.frac), 16)
    q12 = round_shift(c, layer.frac - 12) if layer.frac > 12 else _sat(c * (1 << (12 - layer.frac)), 16)
    h = _sat(layer.zh + round_shift(go * _table(tabs[2], q12) * layer.m_out, layer.n_out), 8)
    return h, c


def _gru(layer, d, x_t, h, c, w, r, b, mx, mh, tabs):
    H = layer.hidden
    ax = x_t @ w.T
    hz = h - layer.zh
    zr = _pre(layer, round_shift(ax[:, :2 * H] * mx[:2 * H] + (hz @ r[:2 * H].T) * mh[:2 * H], layer.shift)
              + b[:2 * H])
    z, rr = _table(tabs[0], zr[:, :H]), _table(tabs[0], zr[:, H:])
    mx_h, mh_h, r_h = mx[2 * H:], mh[2 * H:], r[2 * H:]
    if layer.lbr:
        u = _sat(round_shift((hz @ r_h.T) * mh_h, layer.shift) + b[3 * H:], 16)
        pre = _pre(layer, round_shift(ax[:, 2 * H:] * mx_h, layer.shift) + b[2 * H:3 * H] + round_shift(rr * u, 15))
    else:
        rho = _sat(layer.zh + round_shift(rr * hz, 15), 8)
        acc = ax[:, 2 * H:] * mx_h + ((rho - layer.zh) @ r_h.T) * mh_h
        pre = _pre(layer, round_shift(acc, layer.shift) + b[2 * H:3 * H] + b[3 * H:])
    cand = _table(tabs[1], pre)
    mixed = (32768 - z) * cand * layer.m_out + z * hz * layer.m_aux
    return _sat(layer.zh + round_shift(mixed, layer.n_out), 8), c


def _rnn(layer, d, x_t, h, c, w, r, b, mx, mh, tabs):
    g = _pre(layer, round_shift((x_t @ w.T) * mx + ((h - layer.zh) @ r.T) * mh, layer.shift) + b)
    return _sat(layer.zh + round_shift(_table(tabs[0], g) * layer.m_out, layer.n_out), 8), c


STEP = {"QLSTM": _lstm, "QGRU": _gru, "QRNN": _rnn}


def _initial(layer: _Layer, ctx: LayerContext, batch: int):
    """(h0, c0) as int64 [D, B, H]."""
    shape = (layer.dirs, batch, layer.hidden)
    h0 = ctx.inputs[7] if len(ctx.inputs) > 7 else None
    c0 = ctx.inputs[8] if len(ctx.inputs) > 8 else None
    h = np.full(shape, layer.zh, np.int64) if h0 is None else _batch_major(layer, h0).astype(np.int64)
    if c0 is None:
        return h, np.zeros(shape, np.int64)
    c = _batch_major(layer, c0).astype(np.int64)
    if c0.dtype == np.int8:
        c = _sat(round_shift((c - layer.c0_zero) * layer.c0_m, layer.c0_n), 16)
    return h, c


@kernel("QLSTM", "QGRU", "QRNN")
def recurrent(ctx: LayerContext) -> Built:
    layer = _Layer(ctx)
    x = ctx.operand(0, "x")
    w, r, bias, mx, mh, tables = (ctx.operand(k, name).astype(np.int64) for k, name in
                                  enumerate(("w", "r", "bias", "m_x", "m_h", "tables"), start=1))
    steps, batch, features = _batch_major(layer, x).shape
    H, D = layer.hidden, layer.dirs
    check_shape(ctx, "w", w.shape, (D, GATES[layer.op] * H, features))
    check_shape(ctx, "tables", tables.shape, (D * TABLES[layer.op], 513))
    outputs = ctx.outputs

    def run():
        xs = _batch_major(layer, x).astype(np.int64) - layer.zx
        h0, c0 = _initial(layer, ctx, batch)
        y = np.zeros((steps, D, batch, H), np.int64)
        finals = np.zeros((2, D, batch, H), np.int64)
        for d in range(D):
            h, c = h0[d], c0[d]
            reverse = layer.direction == "reverse" or d == 1
            for t in (range(steps - 1, -1, -1) if reverse else range(steps)):
                h, c = STEP[layer.op](layer, d, xs[t], h, c, w[d], r[d], bias[d], mx[d], mh[d],
                                      tables[d * TABLES[layer.op]:(d + 1) * TABLES[layer.op]])
                y[t, d] = h
            finals[0, d], finals[1, d] = h, c
        _store(layer, outputs, y, finals)

    macs = steps * batch * D * GATES[layer.op] * H * (features + H)
    return Built(run, Work(macs_total=macs, macs_executed=macs,
                           ppu_elements=steps * batch * D * H * PPU_PER_UNIT[layer.op]))


def _store(layer: _Layer, outputs: list[np.ndarray], y: np.ndarray, finals: np.ndarray) -> None:
    """Write Y (layout 0 [T, D, B, H], layout 1 [B, T, D, H]) and the final states."""
    outputs[0][...] = y if layer.layout == 0 else np.transpose(y, (2, 0, 1, 3))
    for k, out in enumerate(outputs[1:3]):
        if out is not None:
            out[...] = _batch_major(layer, finals[k])
