"""Integer-form writers of QLSTM, QGRU and QRNN (docs/numerics.md §15),
unrolled over the sequence's time steps in int64 ONNX ops.

Each step is nnc's reference step term by term (compiler/ops/qrecurrent.py):
the gate accumulators are int64 MatMuls of centred integers with the integer
weights (exact: integer products and sums below 2^31, the quantizer's bound),
the gate pre-activations sat16(round_shift(acc_x · m_x + acc_h · m_h, n) + b)
and every other round_shift go through integer_arith.round_shift (exact, see
there), saturation is Clip, and the activation tables are read as nnc reads
them: u = q + 32768 ≥ 0, i = u / 128 (integer Div of a non-negative value is
its floor), φ = Mod(u, 128), y = T[i] + round_shift((T[i+1] − T[i]) · φ, 7).
States stay int64 between steps; the outputs are cast to int8 (Y, Y_h) and
int16 (Y_c) after saturation, in the op's layout.
"""

from __future__ import annotations

import numpy as np
from onnx import TensorProto

from nnc.ir import Node
from nnc.ops.qrecurrent import Q15, TABLES
from nnc.ops.recurrent import sequence_dims, time_steps

from .integer_arith import binary, centred, int64_constant, round_shift, widen
from .integer_writer import integer_writes
from .writer import OnnxBuilder


class Step:
    """The int64 building blocks of one recurrent node's steps; every tensor
    and node they add is named after the node."""

    def __init__(self, out: OnnxBuilder, node: Node):
        self.out, self.node, self.attrs = out, node, node.attrs
        self._constants: dict[tuple, str] = {}

    def const(self, what: str, values) -> str:
        """An int64 initializer, written once however many steps read it."""
        array = np.asarray(values, np.int64)
        key = (what, array.shape, array.tobytes())
        if key not in self._constants:
            self._constants[key] = int64_constant(self.out, f"{self.node.name}.{what}", array)
        return self._constants[key]

    def op(self, op: str, a: str, b: str) -> str:
        return binary(self.out, op, a, b, self.node.name)

    def sat(self, v: str, bits: int) -> str:
        return self.clip(v, -(1 << (bits - 1)), (1 << (bits - 1)) - 1)

    def clip(self, v: str, lo: int, hi: int) -> str:
        result = self.out.fresh(f"{self.node.name}.sat")
        self.out.add("Clip", [v, self.const("lo", lo), self.const("hi", hi)], [result], f"{self.node.name}.clip")
        return result

    def round_shift(self, v: str, shift: int) -> str:
        return round_shift(self.out, v, np.int64(shift), self.node.name)

    def columns(self, v: str, start: int, stop: int) -> str:
        """v[:, start:stop]."""
        result = self.out.fresh(f"{self.node.name}.cols")
        self.out.add("Slice", [v, self.out.ints(f"{self.node.name}.start", [start]),
                               self.out.ints(f"{self.node.name}.stop", [stop]),
                               self.out.ints(f"{self.node.name}.axis", [1])], [result], f"{self.node.name}.slice")
        return result

    def gather(self, data: str, index, axis: int = 0) -> str:
        """data[index] along `axis`; `index` a tensor name or an int (drops the axis)."""
        index = index if isinstance(index, str) else self.const("index", np.int64(index))
        result = self.out.fresh(f"{self.node.name}.gathered")
        self.out.add("Gather", [data, index], [result], f"{self.node.name}.gather", axis=axis)
        return result

    def reshape(self, v: str, shape) -> str:
        result = self.out.fresh(f"{self.node.name}.reshaped")
        self.out.add("Reshape", [v, self.out.ints(f"{self.node.name}.shape", shape)], [result],
                     f"{self.node.name}.reshape")
        return result

    def lookup(self, table: str, q: str) -> str:
        """Q3.12 `q` -> Q0.15 through `table` with linear interpolation."""
        u = self.op("Add", q, self.const("32768", 32768))
        index = self.op("Div", u, self.const("128", 128))
        phi = self.out.fresh(f"{self.node.name}.phi")
        self.out.add("Mod", [u, self.const("128m", 128)], [phi], f"{self.node.name}.phi", fmod=0)
        low = self.gather(table, index)
        high = self.gather(table, self.op("Add", index, self.const("one", 1)))
        return self.op("Add", low, self.round_shift(self.op("Mul", self.op("Sub", high, low), phi), 7))

    def gate(self, acc_x: str, acc_h: str, m_x: np.ndarray, m_h: np.ndarray, bias) -> str:
        """sat16(round_shift(acc_x · m_x + acc_h · m_h, n) + b), then ±clip."""
        total = self.op("Add", self.op("Mul", acc_x, self.const("m_x", m_x)),
                        self.op("Mul", acc_h, self.const("m_h", m_h)))
        g = self.sat(self.op("Add", self.round_shift(total, self.attrs.shift), self.const("bias", bias)), 16)
        return g if self.attrs.clip is None else self.clip(g, -self.attrs.clip, self.attrs.clip)

    def times(self, v: str, matrix: np.ndarray) -> str:
        """v @ matrix (int64)."""
        return self.op("MatMul", v, self.const("matrix", matrix))

    def centred_h(self, h: str) -> str:
        return self.op("Sub", h, self.const("h_zero_point", self.attrs.h_zero_point))

    def output(self, h_scaled: str) -> str:
        """sat8(z_h + round_shift(v, out_shift))."""
        return self.sat(self.op("Add", self.round_shift(h_scaled, self.attrs.out_shift),
                                self.const("h_zero_point", self.attrs.h_zero_point)), 8)


def lstm_step(s: Step, acc_x, h, c, w: dict) -> tuple[str, str]:
    a, hidden = s.attrs, s.attrs.hidden_size
    g = s.gate(acc_x, s.times(s.centred_h(h), w["r"].T), w["mx"], w["mh"], w["b"])
    i, o, f = (s.lookup(w["tables"][0], s.columns(g, k * hidden, (k + 1) * hidden)) for k in range(3))
    candidate = s.lookup(w["tables"][1], s.columns(g, 3 * hidden, 4 * hidden))
    c = s.sat(s.op("Add", s.round_shift(s.op("Mul", f, c), Q15),
                   s.round_shift(s.op("Mul", i, candidate), 2 * Q15 - a.cell_frac)), 16)
    if a.cell_frac > 12:
        q12 = s.round_shift(c, a.cell_frac - 12)
    else:
        q12 = s.sat(s.op("Mul", c, s.const("to_q12", 1 << (12 - a.cell_frac))), 16)
    tau = s.lookup(w["tables"][2], q12)
    return s.output(s.op("Mul", s.op("Mul", o, tau), s.const("m_o", a.out_multiplier))), c


def gru_step(s: Step, acc_x, h, c, w: dict) -> tuple[str, str]:
    a, hidden = s.attrs, s.attrs.hidden_size
    rows = slice(0, 2 * hidden)
    hc = s.centred_h(h)
    g = s.gate(s.columns(acc_x, 0, 2 * hidden), s.times(hc, w["r"][rows].T), w["mx"][rows], w["mh"][rows],
               w["b"][rows])
    z = s.lookup(w["tables"][0], s.columns(g, 0, hidden))
    reset = s.lookup(w["tables"][0], s.columns(g, hidden, 2 * hidden))
    hx = s.columns(acc_x, 2 * hidden, 3 * hidden)
    r_h, mx_h, mh_h = w["r"][2 * hidden:], w["mx"][2 * hidden:], w["mh"][2 * hidden:]
    wb_h, rb_h = w["b"][2 * hidden:3 * hidden], w["b"][3 * hidden:]
    if a.linear_before_reset:
        u = s.sat(s.op("Add", s.round_shift(s.op("Mul", s.times(hc, r_h.T), s.const("mh_h", mh_h)), a.shift),
                       s.const("rb_h", rb_h)), 16)
        x_part = s.op("Add", s.round_shift(s.op("Mul", hx, s.const("mx_h", mx_h)), a.shift), s.const("wb_h", wb_h))
        pre = s.sat(s.op("Add", x_part, s.round_shift(s.op("Mul", reset, u), Q15)), 16)
        pre = pre if a.clip is None else s.clip(pre, -a.clip, a.clip)
    else:
        rho = s.sat(s.op("Add", s.round_shift(s.op("Mul", reset, hc), Q15), s.const("z_h", a.h_zero_point)), 8)
        pre = s.gate(hx, s.times(s.centred_h(rho), r_h.T), mx_h, mh_h, wb_h + rb_h)
    candidate = s.lookup(w["tables"][1], pre)
    keep = s.op("Mul", s.op("Mul", s.op("Sub", s.const("32768", 32768), z), candidate),
                s.const("m_a", a.out_multiplier))
    carry = s.op("Mul", s.op("Mul", z, hc), s.const("m_b", a.aux_multiplier))
    return s.output(s.op("Add", keep, carry)), c


def rnn_step(s: Step, acc_x, h, c, w: dict) -> tuple[str, str]:
    g = s.gate(acc_x, s.times(s.centred_h(h), w["r"].T), w["mx"], w["mh"], w["b"])
    act = s.lookup(w["tables"][0], g)
    return s.output(s.op("Mul", act, s.const("m", s.attrs.out_multiplier))), c


STEPS = {"QLSTM": lstm_step, "QGRU": gru_step, "QRNN": rnn_step}


def initial_states(s: Step, batch: int) -> tuple[str, str]:
    """[D, B, H] int64 initial h and c (time-major layout)."""
    a, inputs = s.attrs, s.node.inputs
    shape = (a.num_directions, batch, a.hidden_size)
    h0, c0 = (inputs + ["", ""])[7:9]
    h = s.const("h0", np.full(shape, a.h_zero_point)) if not h0 else to_time_major(s, widen(s.out, h0, s.node.name))
    if not c0:
        return h, s.const("c0", np.zeros(shape))
    c = to_time_major(s, widen(s.out, c0, s.node.name))
    if s.out.graph.tensor(c0).dtype == "i8":
        scaled = s.op("Mul", s.op("Sub", c, s.const("c0_zero_point", a.c0_zero_point)),
                      s.const("c0_multiplier", a.c0_multiplier))
        c = s.sat(s.round_shift(scaled, a.c0_shift), 16)
    return h, c


def to_time_major(s: Step, state: str) -> str:
    """A [B, D, H] state (layout 1) as [D, B, H]."""
    if s.attrs.layout == 0:
        return state
    result = s.out.fresh(f"{s.node.name}.state")
    s.out.add("Transpose", [state], [result], f"{s.node.name}.state_layout", perm=[1, 0, 2])
    return result


def emit(s: Step, value: str, perm: list[int] | None, dtype: int, output: str) -> None:
    """`output` = Cast(Transpose(value)) (no Transpose when perm is None)."""
    if perm is not None:
        moved = s.out.fresh(f"{s.node.name}.moved")
        s.out.add("Transpose", [value], [moved], f"{s.node.name}.layout", perm=perm)
        value = moved
    s.out.add("Cast", [value], [output], f"{s.node.name}.narrow", to=dtype)


@integer_writes("QLSTM", "QGRU", "QRNN")
def _qrecurrent(out: OnnxBuilder, node: Node) -> None:
    s, a, graph = Step(out, node), node.attrs, out.graph
    steps, batch, _ = sequence_dims(a.float_view(), graph.tensor(node.inputs[0]).shape)
    x = centred(out, node.inputs[0], a.x_zero_point, node.name)
    if a.layout == 1:
        x = to_time_major(s, x)
    h_all, c_all = initial_states(s, batch)
    sequence, finals = [[None] * a.num_directions for _ in range(steps)], []
    for d in range(a.num_directions):
        w = {key: graph.constant(node.inputs[k])[d].astype(np.int64)
             for key, k in (("w", 1), ("r", 2), ("b", 3), ("mx", 4), ("mh", 5))}
        tables = graph.constant(node.inputs[6])[d * TABLES[node.op]:(d + 1) * TABLES[node.op]]
        w["tables"] = [s.const(f"table{k}", t) for k, t in enumerate(tables)]
        acc_x_all = s.times(x, w["w"].T)  # [T, B, G·H]
        h, c = s.gather(h_all, d), s.gather(c_all, d)
        for t in time_steps(a.float_view(), d, steps):
            h, c = STEPS[node.op](s, s.gather(acc_x_all, t), h, c, w)
            sequence[t][d] = s.reshape(h, [1, 1, batch, a.hidden_size])
        finals.append([s.reshape(v, [1, batch, a.hidden_size]) for v in ((h, c) if node.op == "QLSTM" else (h,))])
    y = concat(s, [concat(s, row, 1) for row in sequence], 0)  # [T, D, B, H]
    sequence_perm, state_perm = {0: (None, None), 1: ([2, 0, 1, 3], [1, 0, 2])}[a.layout]
    values = [(y, sequence_perm, TensorProto.INT8)] + [
        (concat(s, list(states), 0), state_perm, dtype)
        for states, dtype in zip(zip(*finals), (TensorProto.INT8, TensorProto.INT16))]
    for output, (value, perm, dtype) in zip(node.outputs, values):
        if output:
            emit(s, value, perm, dtype, output)


def concat(s: Step, parts: list[str], axis: int) -> str:
    """The parts joined along `axis` (one part: itself)."""
    if len(parts) == 1:
        return parts[0]
    result = s.out.fresh(f"{s.node.name}.concat")
    s.out.add("Concat", parts, [result], f"{s.node.name}.concat", axis=axis)
    return result
