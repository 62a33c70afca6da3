"""Quantization of the recurrent ops (docs/numerics.md §15):

    LSTM → QLSTM,  GRU → QGRU,  RNN → QRNN

A recurrent node has several outputs, so it is not a group (groups.py): it is
lowered by a node rule (`groups.node_rule`), after recurrent_plan.py planned
its parameters. The rule reads X through its DequantizeLinear, Y, Y_h and Y_c
through their QuantizeLinear, quantizes the float W, R, B itself (int8 per gate
row, Q3.12 int32 bias) and builds the gate and output multipliers and the
activation tables. Initial states: constants are quantized here; graph inputs
arrive at h's parameters or as int16 cells (recurrent_plan.py); one computed
by another op is requantized to h's parameters (h) or converted inside the op
(c, from int8).

Refused with one line naming the node: peepholes, input_forget,
unbounded activations (Relu, Elu, ...), an X that is not a dequantized 8-bit
tensor, weights that are not float constants.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import UnsupportedError
from ..ir import Graph, Node
from ..numerics import quantize_multiplier
from ..ops import rnn_activations
from ..ops.qrecurrent import TABLE_SIZE, TABLES, QRecurrentAttrs, bounded_shift, row_bounds
from ..ops.recurrent import GATES
from .emit import add_node, constant, new_tensor, rescale
from .groups import Operand, node_rule, only_quantize, operand_of
from .params import Affine, qdq_affine, record
from .recurrent_plan import CELLS, RECURRENT, cell_affine
from .weights import quantize_weights

Q12, Q15 = 4096.0, 32768.0
BIAS_LIMIT = 1 << 30


# -- lowering ---------------------------------------------------------------------------
def _refuse(node: Node, why: str) -> UnsupportedError:
    return UnsupportedError(f"{node.op} node {node.name!r}: {why}")


def _check_supported(graph: Graph, node: Node) -> None:
    attrs = node.attrs
    if len(node.inputs) > 7 and node.inputs[7]:
        raise _refuse(node, "peepholes (P) have no integer lowering")
    if attrs.input_forget:
        raise _refuse(node, "input_forget has no integer lowering")
    unbounded = sorted({a for a in attrs.activations if a not in rnn_activations.BOUNDED})
    if unbounded:
        raise _refuse(node, f"activation(s) {', '.join(unbounded)} are unbounded and have no int8 lowering "
                            f"(bounded ones: {', '.join(rnn_activations.BOUNDED)})")


def _float_constant(graph: Graph, node: Node, index: int, what: str) -> np.ndarray | None:
    name = node.inputs[index] if index < len(node.inputs) else ""
    if not name:
        return None
    data = graph.constant(name)
    if data is None or data.dtype.kind != "f":
        raise _refuse(node, f"{what} must be a float constant")
    return np.asarray(data, np.float64)


def _quantized_output(graph: Graph, node: Node, index: int) -> tuple[str, Affine, Node] | None:
    name = node.outputs[index] if index < len(node.outputs) else ""
    if not name:
        return None
    q = only_quantize(graph, name)
    if q is None:
        raise _refuse(node, f"output #{index} is not quantized (read only by a QuantizeLinear)")
    return q.outputs[0], qdq_affine(graph, q), q


@node_rule(*RECURRENT)
def lower_recurrent(graph: Graph, node: Node) -> None:
    _check_supported(graph, node)
    x = operand_of(graph, node.inputs[0])
    if x is None or x.affine.dtype != "i8":
        raise _refuse(node, "X is not a dequantized int8 tensor")
    y, y_h = _quantized_output(graph, node, 0), _quantized_output(graph, node, 1)
    h = y[1]
    if y_h is not None and y_h[1] != h:
        raise _refuse(node, "Y and Y_h have different quantization parameters")
    y_c = _cell_output(graph, node)
    inputs, attrs = _integer_operands(graph, node, x, h)
    outputs = [y[0]] + ([y_h[0]] if y_h else []) + ([y_c[0]] if y_c else [])
    _detach(graph, node, [q for q in (y, y_h, y_c) if q])
    add_node(graph, node.name, "Q" + node.op, inputs, outputs, attrs)
    record(graph, x.tensor, x.affine.quant_params())
    for out in outputs[:2]:  # Y_c carries the cell's int16 parameters (annotate)
        record(graph, out, h.quant_params())


def _cell_output(graph: Graph, node: Node) -> tuple[str, Affine, Node] | None:
    """Y_c's int16 QuantizeLinear (annotate placed it at the cell's scale), or None."""
    name = node.outputs[2] if node.op == "LSTM" and len(node.outputs) > 2 else ""
    q = only_quantize(graph, name) if name else None
    if name and (q is None or q.attrs.dtype != "i16"):
        raise _refuse(node, "Y_c is not quantized to int16 at the cell's scale")
    return None if q is None else (q.outputs[0], cell_affine(graph, node), q)


def _detach(graph: Graph, node: Node, quantized: list[tuple[str, Affine, Node]]) -> None:
    """Remove the float node, the QuantizeLinear of its outputs and the float tensors between."""
    graph.remove_node(node.name)
    for _, _, q in quantized:
        graph.remove_node(q.name)
    for name in filter(None, node.outputs):
        if not graph.uses(name):
            del graph.tensors[name]


def _integer_operands(graph: Graph, node: Node, x: Operand, h: Affine) -> tuple[list[str], QRecurrentAttrs]:
    op, attrs = node.op, node.attrs
    gates, hidden = GATES[op], attrs.hidden_size
    w = _float_constant(graph, node, 1, "W")
    r = _float_constant(graph, node, 2, "R")
    if w is None or r is None:
        raise _refuse(node, "W and R must be float constants")
    wq, s_w = _rows(w)
    rq, s_r = _rows(r)
    bounds = [row_bounds(wq), row_bounds(rq)]
    if max(b.max() for b in bounds) >= 1 << 31:
        raise _refuse(node, "a gate row's int32 accumulator could overflow")
    found = bounded_shift([x.affine.scale * s_w * Q12, h.scale * s_r * Q12], bounds)
    if found is None:
        raise _refuse(node, "no shift keeps the gate multipliers below 2^31 and their sums below 2^62")
    (m_x, m_h), shift = found
    bias = _bias(node, _float_constant(graph, node, 3, "B"), gates, hidden, attrs.num_directions)
    tables = _tables(node, TABLES["Q" + op])
    out_m, out_n, aux = _output_multipliers(node, h, tables)
    cell = _cell_frac(graph, node)
    names = [x.tensor,
             constant(graph, f"{node.name}.W", wq), constant(graph, f"{node.name}.R", rq),
             constant(graph, f"{node.name}.bias", bias), constant(graph, f"{node.name}.m_x", m_x.astype(np.int32)),
             constant(graph, f"{node.name}.m_h", m_h.astype(np.int32)), constant(graph, f"{node.name}.tables", tables)]
    h0 = _initial_h(graph, node, h)
    c0, c0_attrs = _initial_c(graph, node, cell)
    names += [h0, c0] if c0 else ([h0] if h0 else [])
    clip = None if attrs.clip is None else int(min(round(attrs.clip * Q12), 32767))
    qattrs = QRecurrentAttrs(hidden, attrs.direction, attrs.layout, x.affine.zero_point, h.zero_point, shift,
                             out_m, out_n, clip, aux, cell, *c0_attrs,
                             linear_before_reset=attrs.linear_before_reset)
    return names, qattrs


def _rows(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """int8 weights [D, rows, K] symmetric per row, and the scales [D, rows] (float64)."""
    q, scales = quantize_weights(w.reshape(-1, w.shape[-1]).astype(np.float32), 0)
    return q.reshape(w.shape), np.asarray(scales, np.float64).reshape(w.shape[:2])


def _bias(node: Node, b: np.ndarray | None, gates: int, hidden: int, directions: int) -> np.ndarray:
    """Q3.12 int32 biases (QGRU: [b_z, b_r, Wb_h, Rb_h], docs/numerics.md §15)."""
    rows = gates * hidden
    if b is None:
        b = np.zeros((directions, 2 * rows))
    wb, rb = b[:, :rows], b[:, rows:]
    if node.op != "GRU":
        total = wb + rb
    elif node.attrs.linear_before_reset:
        total = np.concatenate([wb[:, :2 * hidden] + rb[:, :2 * hidden], wb[:, 2 * hidden:], rb[:, 2 * hidden:]], 1)
    else:
        total = np.concatenate([wb + rb, np.zeros((directions, hidden))], 1)
    q = np.rint(total * Q12)
    if np.abs(q).max(initial=0) >= BIAS_LIMIT:
        raise _refuse(node, "a bias is too large for the Q3.12 gate pre-activation")
    return q.astype(np.int32)


def activation_table(name: str, alpha: float, beta: float) -> tuple[np.ndarray, float]:
    """T[i] = sat16(round_half_even(f(−8 + i/32) · 2^15)), i = 0..512, and max|f| on the grid."""
    grid = -8.0 + np.arange(TABLE_SIZE, dtype=np.float64) / 32.0
    values = rnn_activations.apply(name, alpha, beta, grid)
    return np.clip(np.rint(values * Q15), -32768, 32767).astype(np.int16), float(np.abs(values).max())


def _tables(node: Node, per_direction: int) -> np.ndarray:
    rows = []
    for d in range(node.attrs.num_directions):
        for k in range(per_direction):
            table, peak = activation_table(*node.attrs.activation(d, k, per_direction))
            if peak > 1.0:
                raise _refuse(node, f"activation {node.attrs.activation(d, k, per_direction)[0]} reaches "
                                    f"{peak:g}, outside the Q0.15 range [-1, 1]")
            rows.append(table)
    return np.stack(rows)


def _output_multipliers(node: Node, h: Affine, tables: np.ndarray) -> tuple[int, int, int]:
    """(m, n, m_b): QLSTM 2^-30 / s_h, QRNN 2^-15 / s_h, QGRU (2^-30 / s_h, 2^-15) on
    one shift whose mix (32768 − z)·h̃·m_a + z·(h − z_h)·m_b stays below 2^62."""
    if node.op == "GRU":
        t = tables.astype(np.int64)
        z, candidate = t[0::2], t[1::2]
        bounds = [np.array(int(np.abs(32768 - z).max()) * int(np.abs(candidate).max())),
                  np.array(int(np.abs(z).max()) * 255)]
        found = bounded_shift([2.0 ** -30 / h.scale, 2.0 ** -15], bounds)
        if found is None:
            raise _refuse(node, f"the output scale {h.scale:g} needs a multiplier beyond 2^31")
        (m_a, m_b), n = found
        return int(m_a), n, int(m_b)
    m, n = quantize_multiplier((2.0 ** -30 if node.op == "LSTM" else 2.0 ** -15) / h.scale)
    return m, n, 0


def _cell_frac(graph: Graph, node: Node) -> int:
    if node.op != "LSTM":
        return 15
    quant = graph.tensor(node.outputs[CELLS]).quant
    if quant is None:
        raise _refuse(node, "the cell range was not calibrated")
    return int(round(-math.log2(quant.scale[0])))


def _initial_h(graph: Graph, node: Node, h: Affine) -> str:
    """initial_h in h's parameters: a quantized constant, a Requantize of the int8
    input, or "" (absent: z_h)."""
    name = node.inputs[5] if len(node.inputs) > 5 else ""
    if not name:
        return ""
    data = graph.constant(name)
    if data is not None:
        q = np.vectorize(h.quantize)(np.asarray(data, np.float32)).astype(np.int8)
        return constant(graph, f"{node.name}.initial_h", q)
    source = operand_of(graph, name)
    if source is None:
        raise _refuse(node, "initial_h is neither a constant nor a dequantized int8 tensor")
    if source.affine == h:
        return source.tensor
    out = new_tensor(graph, source.tensor, h)
    rescale(graph, f"{node.name}.initial_h", source.tensor, source.affine, out, h, *h.qrange)
    record(graph, source.tensor, source.affine.quant_params())
    return out


def _initial_c(graph: Graph, node: Node, frac: int) -> tuple[str, tuple[int, int, int]]:
    """initial_c and the (c0_zero_point, c0_multiplier, c0_shift) attributes."""
    name = node.inputs[6] if node.op == "LSTM" and len(node.inputs) > 6 else ""
    if not name:
        return "", (0, 0, 1)
    data = graph.constant(name)
    if data is not None:
        q = np.clip(np.rint(np.asarray(data, np.float64) * 2.0 ** frac), -32768, 32767).astype(np.int16)
        return constant(graph, f"{node.name}.initial_c", q), (0, 0, 1)
    dq = graph.producer(name)
    if dq is not None and dq.op == "DequantizeLinear" and graph.tensor(dq.inputs[0]).dtype == "i16":
        return dq.inputs[0], (0, 0, 1)  # a graph-input state, quantized at the cell's scale by annotate
    source = operand_of(graph, name)
    if source is None or source.affine.dtype != "i8":
        raise _refuse(node, "initial_c is neither a constant nor a dequantized int8 or int16 tensor")
    record(graph, source.tensor, source.affine.quant_params())
    m, n = quantize_multiplier(source.affine.scale * 2.0 ** frac)
    return source.tensor, (source.affine.zero_point, m, n)
