"""Quantization planning of the recurrent ops (LSTM, GRU, RNN; docs/numerics.md §15):
what calibration must see and which parameters each state gets, before the
lowering rule (rules_recurrent.py) runs.

`node_points` (called by annotate.plan) declares on each float recurrent node
the outputs calibration observes: Y (every h_t; declared when the model leaves
it unused, so the integer op always produces it), Y_h when Y_c is used (an
integer op's outputs have no gaps), and for LSTM the IR-only cell sequence
(output 3). It returns the planned points:
- "observe": Y;
- "alias": Y_h and a graph-input initial_h, which take Y's parameters, so a
  state fed back from one run to the next keeps every bit (`h_affine`; in a
  QDQ model whose Y_h alone is quantized, Y takes Y_h's);
- "cell": the cell sequence, observed but given no Q/DQ; its range fixes the
  cell's power-of-two scale 2^-F, recorded on the tensor (`record_cell`);
- "cell_state": a graph-input initial_c and a used Y_c, int16 at 2^-F
  (`cell_affine`).
`state_inputs` names the graph inputs whose parameters these points decide
(annotate does not observe them).
"""

from __future__ import annotations

import math

from ..ir import Graph, Node, QuantParams, Tensor
from ..ops import get_op
from .groups import only_quantize
from .params import Affine, affine_from_range, qdq_affine

RECURRENT = ("LSTM", "GRU", "RNN")
CELLS = 3  # output position of the float LSTM's cell sequence


def node_points(graph: Graph, node: Node) -> list[tuple[str, str, Node]]:
    """The planned (tensor, source, node) points of recurrent `node` (see the
    module docstring); declares the outputs calibration must see. Parameters
    a QDQ model gives are kept: h's from a QuantizeLinear reading Y or Y_h
    (the other then takes them), the cell's scale where the cell sequence
    carries one (as nnc.train's export writes it)."""
    if not any(t and _is_float(graph, t) for t in node.outputs):
        return []  # integer already
    h_given = any(name and only_quantize(graph, name) for name in node.outputs[:2])
    node = _declare_outputs(graph, node)
    points = []
    if not only_quantize(graph, node.outputs[0]):
        points.append((node.outputs[0], "alias" if h_given else "observe", node))
    if node.outputs[1] and not only_quantize(graph, node.outputs[1]):
        points.append((node.outputs[1], "alias", node))
    initial = [name if name in graph.inputs and _is_float(graph, name) else "" for name in _initial_states(node)]
    if initial[0]:
        points.append((initial[0], "alias", node))
    if node.op == "LSTM":
        if graph.tensor(node.outputs[CELLS]).quant is None:
            points.append((node.outputs[CELLS], "cell", node))
        points += [(name, "cell_state", node) for name in (initial[1], node.outputs[2])
                   if name and not only_quantize(graph, name)]
    return points


def _is_float(graph: Graph, name: str) -> bool:
    return graph.tensor(name).dtype in ("f32", "f64")


def _initial_states(node: Node) -> tuple[str, str]:
    """(initial_h, initial_c) of a recurrent node, "" where absent."""
    names = list(node.inputs[5:7]) + ["", ""]
    return names[0], (names[1] if node.op == "LSTM" else "")


def state_inputs(graph: Graph) -> set[str]:
    """The float graph inputs that are initial states of recurrent ops: their
    parameters are the op's (Y's for h, the cell's for c), not observed."""
    return {name for node in graph.nodes() if node.op in RECURRENT for name in _initial_states(node)
            if name in graph.inputs and _is_float(graph, name)}


def h_affine(graph: Graph, node: Node, ranges: dict[str, tuple[float, float]]) -> Affine:
    """h's parameters (Y's, Y_h's, a graph-input initial_h's): those of the
    QuantizeLinear reading Y or Y_h where there is one, else Y's observed range."""
    for name in node.outputs[:2]:
        q = only_quantize(graph, name) if name else None
        if q is not None:
            return qdq_affine(graph, q)
    return affine_from_range(*ranges[node.outputs[0]])


CELL_SCALE_KEY = "nnc.cell_scale."  # an ONNX metadata key + an LSTM's name: the cell's given scale


def give_cell_scale(graph: Graph, node: Node, scale: float) -> None:
    """Declare LSTM `node`'s cell sequence with the scale 2^-F a model gives
    (nnc.train's export; ONNX metadata CELL_SCALE_KEY), so that planning takes
    it instead of calibrating the cell."""
    node = _declare_outputs(graph, node)
    graph.tensor(node.outputs[CELLS]).quant = QuantParams((float(scale),), (0,))


def cell_affine(graph: Graph, node: Node) -> Affine:
    """int16 at the cell's recorded scale 2^-F, zero point 0."""
    return Affine(graph.tensor(node.outputs[CELLS]).quant.scale[0], 0, "i16")


def _declare_outputs(graph: Graph, node: Node) -> Node:
    """`node` again, with Y, Y_h when Y_c is used (an integer op's outputs have no
    gaps) and for LSTM the cell sequence declared."""
    wanted = CELLS + 1 if node.op == "LSTM" else 2
    outputs = list(node.outputs) + [""] * max(0, wanted - len(node.outputs))
    types = get_op(node.op).infer(node.attrs, [graph.tensor(t) if t else None for t in node.inputs])
    declare = [0] + ([CELLS] + ([1] if outputs[2] else []) if node.op == "LSTM" else [])
    for index in declare:
        if not outputs[index]:
            name = graph.unique_tensor_name(f"{node.name}.{('Y', 'Y_h', '', 'cells')[index]}")
            graph.add_tensor(Tensor(name, types[index].dtype, types[index].shape))
            outputs[index] = name
    if outputs == node.outputs:
        return node
    graph.remove_node(node.name)
    return graph.add_node(Node(node.name, node.op, list(node.inputs), outputs, node.attrs))


def cell_frac(lo: float, hi: float) -> int:
    """F = 15 − ⌈log2 max|c|⌉ clamped to [0, 15] (15 when the cell stays 0)."""
    peak = max(-float(lo), float(hi))
    if not peak > 0:
        return 15
    return int(min(15, max(0, 15 - math.ceil(math.log2(peak)))))


def record_cell(graph: Graph, tensor: str, value_range: tuple[float, float]) -> None:
    graph.tensor(tensor).quant = QuantParams((2.0 ** -cell_frac(*value_range),), (0,))
