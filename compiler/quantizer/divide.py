"""Div of two activations → Mul by a Reciprocal, before calibration
(docs/numerics.md §18).

An int8 quotient a / b of two run-time tensors has no one-rounding integer
form here, but a · (1/b) has two that nnc already runs: 1/b is a 256-entry
table (QLut) into its own int8 tensor, calibrated like any activation, and the
product is a QMul. `rewrite_divisions` turns every float Div whose divisor is
computed at run time into Reciprocal(b) → Mul(a, ·) before the quantize pass
plans and calibrates the graph, so the new tensor 1/b gets a range of its own
(a per-utterance normalization (x − mean) / std reads std > 0: 1/std is well
conditioned; a divisor that crosses 0 has a huge 1/b range and loses
precision, which the per-layer error report shows).

Division by a constant, and a scalar constant divided by an activation, keep
their one-rounding rules (rules_elementwise.py). The Mul keeps the Div's name
and output; the Reciprocal is named after it.
"""

from __future__ import annotations

from ..dtypes import FLOAT_TYPES
from ..ir import Graph, Node, Tensor
from ..ops.registry import NoAttrs


def rewrite_divisions(graph: Graph) -> int:
    """Rewrite every Div of two run-time float operands (module docstring);
    returns how many."""
    found = [n for n in graph.nodes() if n.op == "Div" and _run_time(graph, n.inputs[1])
             and not _scalar_constant(graph, n.inputs[0]) and graph.tensor(n.outputs[0]).dtype in FLOAT_TYPES]
    for node in found:
        _rewrite(graph, node)
    return len(found)


def _run_time(graph: Graph, name: str) -> bool:
    """Whether `name` is computed from the inputs (not a constant, nor a
    DequantizeLinear of one)."""
    producer = graph.producer(name)
    while producer is not None and producer.op == "DequantizeLinear":
        name, producer = producer.inputs[0], graph.producer(producer.inputs[0])
    return graph.constant(name) is None


def _scalar_constant(graph: Graph, name: str) -> bool:
    """A one-value constant numerator: C / x stays one table (rules_elementwise)."""
    data = graph.constant(name)
    return data is not None and data.size == 1


def _rewrite(graph: Graph, node: Node) -> None:
    a, b = node.inputs
    divisor = graph.tensor(b)
    reciprocal = graph.unique_tensor_name(f"{node.name}.reciprocal")
    graph.add_tensor(Tensor(reciprocal, divisor.dtype, divisor.shape, layout=divisor.layout))
    graph.remove_node(node.name)
    graph.add_node(Node(graph.unique_node_name(f"{node.name}.reciprocal"), "Reciprocal", [b], [reciprocal],
                        NoAttrs()))
    graph.add_node(Node(node.name, "Mul", [a, reciprocal], list(node.outputs), NoAttrs()))
