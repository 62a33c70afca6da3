"""Integer recurrent ops `QLSTM`, `QGRU`, `QRNN` (docs/numerics.md §15).

Inputs, for every op:
    0 x        i8/u8, layout as attrs.layout says (recurrent.py)
    1 w        i8 [D, G·H, I]        gate rows in ONNX order (LSTM i o f c, GRU z r h)
    2 r        i8 [D, G·H, H]
    3 bias     i32 [D, G·H] Q3.12 (W and R biases summed); QGRU: [D, 4H] =
               [b_z, b_r, Wb_h, Rb_h], Rb_h zero when linear_before_reset is 0
    4 m_x      i32 [D, G·H]          gate mantissas of acc_x (shift attrs.shift)
    5 m_h      i32 [D, G·H]          gate mantissas of acc_h
    6 tables   i16 [D·k, 513]        activation tables, k per direction (3, 2, 1)
    7 h0       int8 state [D, B, H] (layout 1: [B, D, H]) or "" (z_h)
    8 c0       QLSTM only: i16 (scale 2^-cell_frac) or i8 (c0_* attrs), or "" (0)
Outputs: Y (i8), Y_h (i8), and for QLSTM Y_c (i16, scale 2^-cell_frac).

`evaluate` is the reference; every target mirrors it bit for bit.
"""

from __future__ import annotations


import numpy as np

from ..errors import ShapeError
from ..ir import TensorType
from ..numerics import round_shift
from ..records import record
from .recurrent import DIRECTIONS, RecurrentAttrs, initial_state, pack_outputs, sequence_dims, state_shape
from .recurrent import time_steps, to_time_major
from .registry import OpDef, register_op

GATES = {"QLSTM": 4, "QGRU": 3, "QRNN": 1}
TABLES = {"QLSTM": 3, "QGRU": 2, "QRNN": 1}
TABLE_SIZE = 513
Q15 = 15


@record
class QRecurrentAttrs:
    """`shift` n of the gate pre-activations; `clip` the Q3.12 bound of every
    pre-activation (None: none); `out_multiplier`/`out_shift` the output
    multiplier (QLSTM m_o, QRNN m, QGRU m_a, with `aux_multiplier` m_b sharing
    `out_shift`); QLSTM: `cell_frac` F and, for an i8 c0, `c0_zero_point`,
    `c0_multiplier`, `c0_shift`; QGRU: `linear_before_reset`."""

    hidden_size: int
    direction: str
    layout: int
    x_zero_point: int
    h_zero_point: int
    shift: int
    out_multiplier: int
    out_shift: int
    clip: int | None = None
    aux_multiplier: int = 0
    cell_frac: int = 15
    c0_zero_point: int = 0
    c0_multiplier: int = 0
    c0_shift: int = 1
    linear_before_reset: bool = False

    @property
    def num_directions(self) -> int:
        return 2 if self.direction == "bidirectional" else 1

    def float_view(self) -> RecurrentAttrs:
        return RecurrentAttrs(self.hidden_size, self.direction, self.layout)


# -- bounds ---------------------------------------------------------------------------
SUM_LIMIT = 1 << 62  # round_shift's domain: |v| < 2^62 (docs/numerics.md §1, qround.h)
MANTISSA_LIMIT = 1 << 31


def row_bounds(weights: np.ndarray) -> np.ndarray:
    """Σ_k |w[..., r, k]| · 255: the largest |accumulator| of each row."""
    return np.abs(weights.astype(np.int64)).sum(axis=-1) * 255


def bounded_shift(reals, bounds, max_shift: int = 53) -> tuple[list[np.ndarray], int] | None:
    """([m_k], n) for the largest n <= max_shift with every m_k = round(real_k · 2^n)
    below 2^31 and Σ_k bound_k · m_k < 2^62 elementwise (the sum of products a
    round_shift receives); None when no n >= 1 qualifies."""
    for shift in range(max_shift, 0, -1):
        scaled = [np.rint(np.asarray(r, np.float64) * 2.0 ** shift) for r in reals]
        if any(m.max(initial=0) >= MANTISSA_LIMIT for m in scaled):  # compared before the int64 cast
            continue
        ms = [m.astype(np.int64) for m in scaled]
        if gate_sums_fit(ms, bounds):
            return ms, shift
    return None


def gate_sums_fit(mantissas, bounds) -> bool:
    """Σ_k bound_k · m_k < 2^62 everywhere (each term < 2^62, so int64 holds the sum)."""
    total = sum(np.asarray(b, np.int64) * np.asarray(m, np.int64) for b, m in zip(bounds, mantissas))
    return bool(np.all(total < SUM_LIMIT))


# -- primitives -----------------------------------------------------------------------
def sat(v: np.ndarray, bits: int) -> np.ndarray:
    return np.clip(v, -(1 << (bits - 1)), (1 << (bits - 1)) - 1)


def gate_preactivation(acc_x, acc_h, m_x, m_h, shift: int, bias, clip: int | None) -> np.ndarray:
    """sat16(round_shift(acc_x·m_x + acc_h·m_h, n) + b), then ±clip (Q3.12)."""
    g = sat(round_shift(acc_x * m_x + acc_h * m_h, shift) + bias, 16)
    return g if clip is None else np.clip(g, -clip, clip)


def lookup(table: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Q3.12 -> Q0.15 by the 513-entry table with linear interpolation."""
    u = q + 32768
    i, phi = u >> 7, u & 127
    low = table[i]
    return low + round_shift((table[i + 1] - low) * phi, 7)


def cell_to_q12(c: np.ndarray, frac: int) -> np.ndarray:
    if frac > 12:
        return round_shift(c, frac - 12)
    return sat(c << (12 - frac), 16)


# -- evaluation -------------------------------------------------------------------------
def _operands(attrs: QRecurrentAttrs, inputs, d: int):
    x = to_time_major(attrs, inputs[0].astype(np.int64)) - attrs.x_zero_point
    w, r, b, mx, mh = (inputs[k][d].astype(np.int64) for k in range(1, 6))
    return x, w, r, b, mx, mh


def _initial_h(attrs: QRecurrentAttrs, h0, batch: int) -> np.ndarray:
    if h0 is None:
        return np.full((attrs.num_directions, batch, attrs.hidden_size), attrs.h_zero_point, np.int64)
    return initial_state(attrs.float_view(), h0, batch).astype(np.int64)


def _initial_c(attrs: QRecurrentAttrs, c0, batch: int) -> np.ndarray:
    if c0 is None:
        return np.zeros((attrs.num_directions, batch, attrs.hidden_size), np.int64)
    c = initial_state(attrs.float_view(), c0, batch).astype(np.int64)
    if c0.dtype == np.int16:
        return c
    return sat(round_shift((c - attrs.c0_zero_point) * attrs.c0_multiplier, attrs.c0_shift), 16)


def evaluate_integer(op: str, attrs: QRecurrentAttrs, inputs) -> list[np.ndarray]:
    steps, batch, _ = sequence_dims(attrs.float_view(), inputs[0].shape)
    h0 = _initial_h(attrs, inputs[7] if len(inputs) > 7 else None, batch)
    c0 = _initial_c(attrs, inputs[8] if len(inputs) > 8 else None, batch)
    step = {"QLSTM": _lstm_step, "QGRU": _gru_step, "QRNN": _rnn_step}[op]
    ys, finals = [], []
    for d in range(attrs.num_directions):
        x, w, r, b, mx, mh = _operands(attrs, inputs, d)
        tables = inputs[6][d * TABLES[op]:(d + 1) * TABLES[op]].astype(np.int64)
        h, c = h0[d], c0[d]
        y = np.zeros((steps, batch, attrs.hidden_size), np.int64)
        for t in time_steps(attrs.float_view(), d, steps):
            h, c = step(attrs, x[t] @ w.T, h, r, b, mx, mh, tables, c)
            y[t] = h
        ys.append(y)
        finals.append([h, c] if op == "QLSTM" else [h])
    return pack_outputs(attrs.float_view(), ys, finals, [np.int8, np.int8, np.int16])


def _lstm_step(attrs, acc_x, h, r, b, mx, mh, tables, c):
    hidden, frac = attrs.hidden_size, attrs.cell_frac
    acc_h = (h - attrs.h_zero_point) @ r.T
    g = gate_preactivation(acc_x, acc_h, mx, mh, attrs.shift, b, attrs.clip)
    i, o, f = (lookup(tables[0], g[:, k * hidden:(k + 1) * hidden]) for k in range(3))
    candidate = lookup(tables[1], g[:, 3 * hidden:])
    c = sat(round_shift(f * c, Q15) + round_shift(i * candidate, 2 * Q15 - frac), 16)
    tau = lookup(tables[2], cell_to_q12(c, frac))
    h = sat(attrs.h_zero_point + round_shift(o * tau * attrs.out_multiplier, attrs.out_shift), 8)
    return h, c


def _gru_step(attrs, acc_x, h, r, b, mx, mh, tables, c):
    hidden, zh = attrs.hidden_size, attrs.h_zero_point
    rows = slice(0, 2 * hidden)
    acc_h = (h - zh) @ r[rows].T
    g = gate_preactivation(acc_x[:, rows], acc_h, mx[rows], mh[rows], attrs.shift, b[rows], attrs.clip)
    z, reset = lookup(tables[0], g[:, :hidden]), lookup(tables[0], g[:, hidden:])
    hx, r_h, mx_h, mh_h = acc_x[:, 2 * hidden:], r[2 * hidden:], mx[2 * hidden:], mh[2 * hidden:]
    wb_h, rb_h = b[2 * hidden:3 * hidden], b[3 * hidden:]
    if attrs.linear_before_reset:
        u = sat(round_shift((h - zh) @ r_h.T * mh_h, attrs.shift) + rb_h, 16)
        pre = sat(round_shift(hx * mx_h, attrs.shift) + wb_h + round_shift(reset * u, Q15), 16)
        pre = pre if attrs.clip is None else np.clip(pre, -attrs.clip, attrs.clip)
    else:
        rho = sat(zh + round_shift(reset * (h - zh), Q15), 8)
        pre = gate_preactivation(hx, (rho - zh) @ r_h.T, mx_h, mh_h, attrs.shift, wb_h + rb_h, attrs.clip)
    candidate = lookup(tables[1], pre)
    mixed = (32768 - z) * candidate * attrs.out_multiplier + z * (h - zh) * attrs.aux_multiplier
    return sat(zh + round_shift(mixed, attrs.out_shift), 8), c


def _rnn_step(attrs, acc_x, h, r, b, mx, mh, tables, c):
    acc_h = (h - attrs.h_zero_point) @ r.T
    g = gate_preactivation(acc_x, acc_h, mx, mh, attrs.shift, b, attrs.clip)
    act = lookup(tables[0], g)
    return sat(attrs.h_zero_point + round_shift(act * attrs.out_multiplier, attrs.out_shift), 8), c


# -- shape inference --------------------------------------------------------------------
def _check(op: str, attrs: QRecurrentAttrs, inputs: list[TensorType | None]) -> None:
    x = inputs[0]
    steps, batch, features = sequence_dims(attrs.float_view(), x.shape)
    d, hidden, g = attrs.num_directions, attrs.hidden_size, GATES[op]
    rows = g * hidden
    expected = {1: ("i8", (d, rows, features)), 2: ("i8", (d, rows, hidden)),
                3: ("i32", (d, rows + (hidden if op == "QGRU" else 0))), 4: ("i32", (d, rows)),
                5: ("i32", (d, rows)), 6: ("i16", (d * TABLES[op], TABLE_SIZE)),
                7: ("i8", state_shape(attrs.float_view(), batch))}
    if x.dtype != "i8" or attrs.direction not in DIRECTIONS or steps < 1:
        raise ShapeError(f"needs an i8 input X and a known direction, got {x.dtype}, {attrs.direction!r}")
    for index, (dtype, shape) in expected.items():
        given = inputs[index] if index < len(inputs) else None
        if given is None and index < 7:
            raise ShapeError(f"input #{index} is missing")
        if given is not None and (given.dtype, given.shape) != (dtype, shape):
            raise ShapeError(f"input #{index} is {given.dtype}{list(given.shape)}, expected {dtype}{list(shape)}")
    c0 = inputs[8] if len(inputs) > 8 else None
    if c0 is not None and (op != "QLSTM" or c0.dtype not in ("i8", "i16")
                           or c0.shape != state_shape(attrs.float_view(), batch)):
        raise ShapeError(f"initial_c must be an i8 or i16 state of a QLSTM, got {c0.dtype}{list(c0.shape)}")
    if not 0 <= attrs.cell_frac <= 15 or not 1 <= attrs.shift <= 62 or not 1 <= attrs.out_shift <= 62:
        raise ShapeError("cell_frac must lie in [0, 15] and every shift in [1, 62]")


def _register(op: str):
    @register_op
    class QRecurrent(OpDef):
        name = op
        Attrs = QRecurrentAttrs
        param_inputs = (1, 2, 3)

        @staticmethod
        def infer(attrs, inputs):
            _check(op, attrs, inputs)
            steps, batch, _ = sequence_dims(attrs.float_view(), inputs[0].shape)
            d, hidden = attrs.num_directions, attrs.hidden_size
            y = (steps, d, batch, hidden) if attrs.layout == 0 else (batch, steps, d, hidden)
            state = state_shape(attrs.float_view(), batch)
            types = [TensorType("i8", y), TensorType("i8", state)]
            return types + [TensorType("i16", state)] if op == "QLSTM" else types

        @staticmethod
        def evaluate(attrs, inputs):
            return evaluate_integer(op, attrs, inputs)

        @staticmethod
        def macs(attrs, inputs, outputs):
            steps, batch, features = sequence_dims(attrs.float_view(), inputs[0].shape)
            h = attrs.hidden_size
            return steps * batch * attrs.num_directions * GATES[op] * h * (features + h)

    QRecurrent.__name__ = QRecurrent.__qualname__ = op
    return QRecurrent


QLSTM, QGRU, QRNN = (_register(op) for op in GATES)
