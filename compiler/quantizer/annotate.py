"""Float parts of a graph → QDQ form, so that one lowering serves float and
quantized models alike.

`plan` finds every float activation that no QuantizeLinear/DequantizeLinear
quantizes yet: float graph inputs, and the output of every float op (after the
Relu/Clip chain that follows it, which the op's group absorbs) unless that is
read only by a QuantizeLinear. Each gets parameters from one source:
- fixed by the function (Softmax, Sigmoid, Tanh: params.FIXED_OUTPUT);
- those of the op's input, for ops that only move or select values (Reshape,
  Transpose, MaxPool, Pad, standalone Relu/Clip, ...), so no rescaling is needed
  (not a constant Pad with a non-zero fill: its output is observed);
- the range of the constant float table a Gather reads (an embedding; indexing.py);
- otherwise observed on calibration samples (`Plan.observed`), int8 asymmetric.

`apply` then inserts QuantizeLinear → DequantizeLinear at each planned tensor
(a graph output keeps its name: the DequantizeLinear produces it), and replaces
the weights of Conv/Gemm/MatMul by DequantizeLinear of int8 and their biases by
DequantizeLinear of int32 (layer_weights.py). Afterwards every float op is a
group (groups.py) or lacks a rule.
"""

from __future__ import annotations

from dataclasses import field

import numpy as np

from ..dtypes import FLOAT_TYPES
from ..errors import UnsupportedError
from ..ir import Graph, Node, Tensor
from ..ops.quantize import DequantizeAttrs, QuantizeAttrs
from ..records import record
from .groups import chain_end, clamp_chain, only_quantize
from .params import FIXED_OUTPUT, Affine, add_qdq_constants, affine_from_range, qdq_affine
from .layer_weights import WeightSpec, quantize_layer, quantize_matmul_operands
from .indexing import is_table_lookup, table_affine
from .recurrent_plan import RECURRENT, cell_affine, h_affine, node_points, record_cell, state_inputs

QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")
SAME_AS_INPUT = ("Reshape", "Transpose", "MaxPool", "GlobalMaxPool", "Pad", "Relu", "Clip", "Identity", "Dropout",
                 "Slice", "Expand", "Tile", "Gather", "Resize")


@record
class Point:
    """A float tensor that needs parameters; `source` is "observe", "fixed",
    "input" or "table", and `node` the op whose output it is (None for a graph input).
    Recurrent ops (recurrent_plan.node_points) add "alias" (Y_h and a graph-input
    initial_h: the parameters observed on Y), "cell" (observed, but no Q/DQ: the
    cell's power-of-two scale is recorded on the tensor) and "cell_state" (a
    graph-input initial_c and a used Y_c: int16 at that scale)."""

    tensor: str
    source: str
    node: Node | None = None


@record(frozen=False)
class Plan:
    points: list[Point] = field(default_factory=list)  # in topological order

    @property
    def observed(self) -> list[str]:
        return [p.tensor for p in self.points if p.source in ("observe", "cell")]


def _is_float(graph: Graph, name: str) -> bool:
    return bool(name) and graph.tensor(name).dtype in FLOAT_TYPES


def plan(graph: Graph) -> Plan:
    """The float activations that need parameters (see the module docstring)."""
    states = state_inputs(graph)  # their parameters follow their recurrent op's (node_points)
    result = Plan([Point(name, "observe") for name in graph.inputs
                   if _is_float(graph, name) and not only_quantize(graph, name) and name not in states])
    absorbed: set[str] = set()
    for node in graph.nodes():
        if node.op in RECURRENT:
            result.points += [Point(*p) for p in node_points(graph, node)]
            continue
        if node.op in QDQ_OPS or node.name in absorbed or len(node.outputs) != 1:
            continue
        if not _is_float(graph, node.outputs[0]):
            continue
        absorbed |= {c.name for c in clamp_chain(graph, node.outputs[0])}
        end = chain_end(graph, node.outputs[0])
        if not only_quantize(graph, end):
            source = "fixed" if node.op in FIXED_OUTPUT else "input" if _moves(graph, node) else \
                "table" if is_table_lookup(graph, node) else "observe"
            result.points.append(Point(end, source, node))
    return result


def _moves(graph: Graph, node: Node) -> bool:
    """True for an op that only moves or selects the values of a run-time input.
    A constant Pad with a non-zero fill adds a value the input's range may not
    hold (-0.5 after a Sigmoid), so its output is observed instead."""
    if node.op == "Pad" and node.attrs.mode == "constant" and node.attrs.value != 0.0:
        return False
    return node.op in SAME_AS_INPUT and not graph.tensor(node.inputs[0]).is_constant


def apply(graph: Graph, the_plan: Plan, ranges: dict[str, tuple[float, float]],
          specs: dict[str, WeightSpec] | None = None, means: dict[str, np.ndarray] | None = None,
          stats: dict | None = None) -> None:
    """Insert the planned Q/DQ pairs, then quantize the weights and biases of each
    layer as `specs` says (default int8), bias-corrected with the input `means`,
    by GPTQ where `stats` holds the layer's input statistics (hessian.py)."""
    specs, means, stats = specs or {}, means or {}, stats or {}
    insert_points(graph, the_plan, ranges)
    shared: dict = {}
    for node in graph.nodes():
        if node.op in ("Conv", "Gemm", "MatMul"):
            quantize_layer(graph, node, specs.get(node.name, WeightSpec()), means.get(node.name), shared,
                           stats.get(node.name))
        if node.op == "MatMul":
            quantize_matmul_operands(graph, node, shared)


def insert_points(graph: Graph, the_plan: Plan, ranges: dict[str, tuple[float, float]]) -> None:
    """Q/DQ at every planned point (an observed one at its range in `ranges`), in
    plan order, so an "input" point finds its op's input already quantized."""
    for point in the_plan.points:
        if point.source == "cell":
            record_cell(graph, point.tensor, ranges[point.tensor])
            continue
        insert_qdq(graph, point.tensor, _affine(graph, point, ranges))


def _affine(graph: Graph, point: Point, ranges) -> Affine:
    if point.source == "fixed":
        return FIXED_OUTPUT[point.node.op]
    if point.source == "table":
        return table_affine(graph, point.node)
    if point.source == "alias":
        return h_affine(graph, point.node, ranges)
    if point.source == "cell_state":
        return cell_affine(graph, point.node)
    if point.source == "input":
        producer = graph.producer(point.node.inputs[0])
        if producer is None or producer.op != "DequantizeLinear":
            raise UnsupportedError(f"{point.node.op} node {point.node.name!r}: its input is not quantized")
        return qdq_affine(graph, producer)
    return affine_from_range(*ranges[point.tensor])


# -- Q/DQ insertion ------------------------------------------------------------------
def insert_qdq(graph: Graph, name: str, affine: Affine) -> None:
    """t → Q → DQ in front of every reader of float tensor `name`."""
    tensor = graph.tensor(name)
    producer = graph.producer(name)
    scale, zero_point = add_qdq_constants(graph, name, affine)
    quantized = _declare(graph, tensor, f"{name}.q", affine.dtype, affine.quant_params())
    if name in graph.outputs and producer is not None:
        source = _declare(graph, tensor, f"{name}.float", tensor.dtype)
        _rename_output(graph, producer, name, source)
        _add(graph, f"{name}.quantize", "QuantizeLinear", [source, scale, zero_point], quantized,
             QuantizeAttrs(None, affine.dtype))
        _add(graph, f"{name}.dequantize", "DequantizeLinear", [quantized, scale, zero_point], name,
             DequantizeAttrs(None))
        return
    readers = graph.consumers(name)
    dequantized = _declare(graph, tensor, f"{name}.dq", tensor.dtype)
    _add(graph, f"{name}.quantize", "QuantizeLinear", [name, scale, zero_point], quantized,
         QuantizeAttrs(None, affine.dtype))
    _add(graph, f"{name}.dequantize", "DequantizeLinear", [quantized, scale, zero_point], dequantized,
         DequantizeAttrs(None))
    for reader in readers:
        graph.set_inputs(reader, [dequantized if t == name else t for t in reader.inputs])


def _declare(graph: Graph, like: Tensor, base: str, dtype: str, quant=None) -> str:
    name = graph.unique_tensor_name(base)
    graph.add_tensor(Tensor(name, dtype, like.shape, layout=like.layout, quant=quant))
    return name


def _add(graph: Graph, name: str, op: str, inputs: list[str], output: str, attrs) -> None:
    graph.add_node(Node(graph.unique_node_name(name), op, inputs, [output], attrs))


def _rename_output(graph: Graph, node: Node, old: str, new: str) -> None:
    graph.remove_node(node.name)
    graph.add_node(Node(node.name, node.op, list(node.inputs), [new if t == old else t for t in node.outputs],
                        node.attrs))
