"""C lowering of the recurrent ops: the integer QLSTM, QGRU, QRNN
(docs/numerics.md §15) and the float32 LSTM, GRU, RNN (`nnc compile
--no-quantize`; ONNX semantics in float32, within the float parity tolerance
of the float64 reference).

One kernel call per direction (kernels/qlstm.c, qgru.c, qrnn.c on the shared
kernels/qrecurrent.h; lstm_f32.c, gru_f32.c, rnn_f32.c on frecurrent.h): a
parameter struct in flash holds the geometry, the element strides of x, Y and
the states for the op's layout, the op's parameters and pointers to the
direction's slice of the weights (and biases, multipliers, tables); the call
gets x and the outputs offset to the direction. The h and cell states live in
the step's arena scratch (`scratch` below), never on the stack or the heap.
"""

from __future__ import annotations

from nnc.ir import Node
import numpy as np

from nnc.ops.qrecurrent import GATES, MANTISSA_LIMIT, TABLE_SIZE, TABLES, gate_sums_fit, row_bounds
from nnc.ops import rnn_activations
from nnc.ops.recurrent import DEFAULT_ACTIVATIONS, GATES as FLOAT_GATES, sequence_dims

from .cformat import float_literal
from .lowering import Ctx, Refused, lowers
from .ops_float import need_f32

# bytes per hidden unit (kernels/qrecurrent.h, frecurrent.h)
SCRATCH_PER_HIDDEN = {"QLSTM": 4, "QGRU": 7, "QRNN": 2, "LSTM": 12, "GRU": 16, "RNN": 8}
FUNCTIONS = {"QLSTM": ("qlstm", "qlstm_dir"), "QGRU": ("qgru", "qgru_dir"), "QRNN": ("qrnn", "qrnn_dir")}


def scratch_bytes(program, node: Node) -> int:
    return SCRATCH_PER_HIDDEN[node.op] * node.attrs.hidden_size


def _check_bounds(ctx: Ctx, node) -> None:
    """The bounds the kernels rely on (docs/numerics.md §15): multipliers in
    [0, 2^31), shifts in [1, 62], every gate sum and QGRU's mix below 2^62."""
    a = node.attrs
    w, r, _, m_x, m_h, tables = (ctx.data(t).astype(np.int64) for t in node.inputs[1:7])
    mults = np.concatenate([m_x.ravel(), m_h.ravel(), [a.out_multiplier, a.aux_multiplier, a.c0_multiplier]])
    if mults.min() < 0 or mults.max() >= MANTISSA_LIMIT or not all(1 <= n <= 62 for n in (a.shift, a.out_shift,
                                                                                          a.c0_shift)):
        raise Refused("multipliers must lie in [0, 2^31) and shifts in [1, 62]")
    if not gate_sums_fit([m_x, m_h], [row_bounds(w), row_bounds(r)]):
        raise Refused("a gate's sum of products could reach 2^62")
    if node.op == "QGRU":
        z, cand = tables[0::2], tables[1::2]
        mix = [np.abs(32768 - z).max() * np.abs(cand).max(), np.abs(z).max() * 255]
        if not gate_sums_fit([a.out_multiplier, a.aux_multiplier], mix):
            raise Refused("the update mix could reach 2^62")


def _strides(attrs, steps: int, batch: int, features: int) -> dict:
    """Element strides of x, Y and the states, and the per-direction offsets of Y and states."""
    d, h = attrs.num_directions, attrs.hidden_size
    if attrs.layout == 0:  # x [T, B, I], Y [T, D, B, H], states [D, B, H]
        return dict(x_t=batch * features, x_b=features, y_t=d * batch * h, y_b=h, s_b=h,
                    y_dir=batch * h, s_dir=batch * h)
    return dict(x_t=features, x_b=steps * features, y_t=d * h, y_b=steps * d * h, s_b=d * h,  # batch first
                y_dir=h, s_dir=h)


def _at(ctx: Ctx, name: str, role: str, offset: int) -> str:
    pointer = ctx.ptr(name, role)
    return pointer if pointer == "NULL" or not offset else f"{pointer} + {offset}"


def _call(ctx: Ctx, fn: str, params: str, x: str, outputs: list[str], states: tuple[str, str], geo: dict,
          d: int) -> str:
    """The kernel call of direction `d`: x, then Y, h0, c0, Y_h, Y_c offset to the
    direction (NULL where absent), then the step's scratch."""
    y, yh, yc = (_at(ctx, name, "y", geo[key] * d) for name, key in zip(outputs, ("y_dir", "s_dir", "s_dir")))
    h0, c0 = (_at(ctx, name, "state", geo["s_dir"] * d) for name in states)
    return f"{fn}({params}, {ctx.ptr(x)}, {y}, {h0}, {c0}, {yh}, {yc}, {ctx.scratch()});"


@lowers("QLSTM", "QGRU", "QRNN", scratch=scratch_bytes)
def qrecurrent(ctx: Ctx, node) -> list[str]:
    a, op = node.attrs, node.op
    if ctx.dtype(node.inputs[0]) != "i8":
        raise Refused("needs an i8 input")
    _check_bounds(ctx, node)
    x, w, r, bias, m_x, m_h, tables = node.inputs[:7]
    h0 = node.inputs[7] if len(node.inputs) > 7 else ""
    c0 = node.inputs[8] if len(node.inputs) > 8 else ""
    outputs = list(node.outputs) + [""] * (3 - len(node.outputs))
    steps, batch, features = sequence_dims(a.float_view(), ctx.shape(x))
    hidden, rows = a.hidden_size, GATES[op] * a.hidden_size
    bias_rows = rows + (hidden if op == "QGRU" else 0)
    geo = _strides(a, steps, batch, features)
    family, fn_name = FUNCTIONS[op]
    fn = ctx.kernel(family, fn=fn_name)
    lines = []
    for d in range(a.num_directions):
        params = dict(
            steps=steps, batch=batch, input=features, hidden=hidden,
            reverse=int(a.direction == "reverse" or (a.direction == "bidirectional" and d == 1)),
            **{k: geo[k] for k in ("x_t", "x_b", "y_t", "y_b", "s_b")},
            x_zero=a.x_zero_point, h_zero=a.h_zero_point, shift=a.shift, clip=-1 if a.clip is None else a.clip,
            out_mult=a.out_multiplier, out_shift=a.out_shift, aux_mult=a.aux_multiplier, cell_frac=a.cell_frac,
            c0_i8=int(bool(c0) and ctx.dtype(c0) == "i8"), c0_zero=a.c0_zero_point, c0_mult=a.c0_multiplier,
            c0_shift=a.c0_shift, lbr=int(a.linear_before_reset),
            w=_at(ctx, w, "w", d * rows * features), r=_at(ctx, r, "r", d * rows * hidden),
            bias=_at(ctx, bias, "bias", d * bias_rows), m_x=_at(ctx, m_x, "m_x", d * rows),
            m_h=_at(ctx, m_h, "m_h", d * rows), tables=_at(ctx, tables, "tables", d * TABLES[op] * TABLE_SIZE))
        lines.append(_call(ctx, fn, ctx.struct(f"q{d}", "qrnn_params", params), x, outputs, (h0, c0), geo, d))
    return lines


FLOAT_FUNCTIONS = {"LSTM": ("lstm_f32", "lstm_f32_dir"), "GRU": ("gru_f32", "gru_f32_dir"),
                   "RNN": ("rnn_f32", "rnn_f32_dir")}
ACTIVATION_CODES = {name: code for code, name in enumerate(rnn_activations.PARAMETERS)}  # frecurrent.h's switch


@lowers("LSTM", "GRU", "RNN", scratch=scratch_bytes)
def float_recurrent(ctx: Ctx, node) -> list[str]:
    a, op = node.attrs, node.op
    need_f32(ctx, *node.inputs)
    if len(node.outputs) > 3 and node.outputs[3]:
        raise Refused("the cell sequence (the quantizer's calibration output) has no C kernel")
    x, w, r = node.inputs[:3]
    bias, h0, c0, peep = (node.inputs[k] if len(node.inputs) > k else "" for k in (3, 5, 6, 7))
    outputs = list(node.outputs) + [""] * (3 - len(node.outputs))
    steps, batch, features = sequence_dims(a, ctx.shape(x))
    hidden, gates, per = a.hidden_size, FLOAT_GATES[op], len(DEFAULT_ACTIVATIONS[op])
    geo = _strides(a, steps, batch, features)
    family, fn_name = FLOAT_FUNCTIONS[op]
    fn = ctx.kernel(family, fn=fn_name)
    lines = []
    for d in range(a.num_directions):
        acts = [a.activation(d, k, per) for k in range(per)] + [("Relu", 0.0, 0.0)] * (3 - per)
        params = dict(
            gates=gates, steps=steps, batch=batch, input=features, hidden=hidden,
            reverse=int(a.direction == "reverse" or (a.direction == "bidirectional" and d == 1)),
            **{k: geo[k] for k in ("x_t", "x_b", "y_t", "y_b", "s_b")},
            has_clip=int(a.clip is not None), input_forget=int(a.input_forget), lbr=int(a.linear_before_reset),
            clip=float_literal(a.clip or 0.0),
            act="{" + ", ".join(str(ACTIVATION_CODES[name]) for name, _, _ in acts) + "}",
            alpha="{" + ", ".join(float_literal(alpha) for _, alpha, _ in acts) + "}",
            beta="{" + ", ".join(float_literal(beta) for _, _, beta in acts) + "}",
            w=_at(ctx, w, "w", d * gates * hidden * features), r=_at(ctx, r, "r", d * gates * hidden * hidden),
            bias=_at(ctx, bias, "bias", d * 2 * gates * hidden), peep=_at(ctx, peep, "peep", d * 3 * hidden))
        lines.append(_call(ctx, fn, ctx.struct(f"f{d}", "frnn_params", params), x, outputs, (h0, c0), geo, d))
    return lines
