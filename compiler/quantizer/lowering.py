"""The lowering: every quantization group of a QDQ graph becomes integer ops.

Steps:
1. Refuse, in one error, every float op that has no lowering rule.
2. Visit the float ops in topological order; `match` each one's group, remove
   its float nodes and let its rule (rules.py, linear.py) produce the group's
   8-bit output tensor. Operands and outputs get their parameters recorded
   (`Tensor.quant`).
3. Drop what became dead (DequantizeLinear of inputs and weights, float
   constants), record the parameters of the remaining boundary
   QuantizeLinear/DequantizeLinear and of 8-bit tensors that ops without
   arithmetic (Reshape, ...) produce from a recorded one.

Guarantees: no op other than QuantizeLinear (at float graph inputs) and
DequantizeLinear (at float graph outputs) reads or writes floats; graph input
and output names and types are unchanged; every 8-bit activation and every
integer weight and bias tensor carries its quantization parameters (except a
constant shared by layers whose scales differ: see emit.constant).
"""

from __future__ import annotations

from ..errors import UnsupportedError
from ..ir import Graph, Node
from .groups import Group, detach, match, node_rule_for, quantizable_ops, rule_for
from .params import qdq_affine, record

QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")
MOVERS = ("Reshape", "Transpose", "Concat", "Pad", "MaxPool", "GlobalMaxPool", "Identity", "Dropout",
          "Slice", "Expand", "Tile", "Gather", "ResizeNearest")


def lower(graph: Graph) -> None:
    check_supported(graph)
    for node in graph.nodes():
        if _alive(graph, node) and _is_float_op(graph, node):
            node_rule = node_rule_for(node.op)
            if node_rule is not None:
                node_rule(graph, node)
                continue
            _lower_group(graph, match(graph, node))
    graph.remove_dead()
    _record_boundaries(graph)
    _propagate(graph)


def _lower_group(graph: Graph, group: Group) -> None:
    """Replace the group by its rule's integer ops; errors name the node."""
    detach(graph, group)
    try:
        rule_for(group.node.op)(graph, group)
    except UnsupportedError as exc:
        if repr(group.name) in str(exc):
            raise
        raise UnsupportedError(f"{group.node.op} node {group.name!r}: {exc}") from None
    _record_group(graph, group)


def _alive(graph: Graph, node: Node) -> bool:
    return graph.has_node(node.name) and graph.node(node.name) is node


def _is_float_op(graph: Graph, node: Node) -> bool:
    return node.op not in QDQ_OPS and any(t and graph.tensor(t).dtype in ("f32", "f64") for t in node.outputs)


RUN_TIME_WHERE = ("a Where whose condition is computed at run time, such as an attention mask made from an input "
                  "(nn.MultiheadAttention's key_padding_mask), has none; a mask that is a constant once shapes are "
                  "known is folded into the Softmax")


def check_supported(graph: Graph) -> None:
    """One UnsupportedError listing every float op that has no lowering rule
    (and why, for a Where on a run-time condition: a common attention mask)."""
    missing = [n for n in graph.nodes()
               if _is_float_op(graph, n) and rule_for(n.op) is None and node_rule_for(n.op) is None]
    if missing:
        listed = ", ".join(f"{n.op} node {n.name!r}" for n in missing)
        masks = any(n.op == "Where" and not graph.tensor(n.inputs[0]).is_constant for n in missing)
        raise UnsupportedError(f"no integer lowering for {listed} (quantizable ops: {', '.join(quantizable_ops())})"
                               + (f"; {RUN_TIME_WHERE}" if masks else ""))


def _record_group(graph: Graph, group: Group) -> None:
    for operand in group.operands:
        if operand is not None:
            record(graph, operand.tensor, operand.affine.quant_params())
    record(graph, group.output, group.out.quant_params())


def _record_boundaries(graph: Graph) -> None:
    """Parameters of the 8-bit side of each remaining QuantizeLinear/DequantizeLinear,
    unless already recorded (annotate records them, including the int16 cell
    states of recurrent ops, which qdq_affine refuses as activations)."""
    for node in graph.nodes():
        if node.op == "QuantizeLinear":
            target = node.outputs[0]
        elif node.op == "DequantizeLinear" and not graph.tensor(node.inputs[0]).is_constant:
            target = node.inputs[0]
        else:
            continue
        if graph.tensor(target).quant is None:
            record(graph, target, qdq_affine(graph, node).quant_params())


def _propagate(graph: Graph) -> None:
    """Ops without arithmetic give their output their (first) input's parameters."""
    for node in graph.nodes():
        source = graph.tensor(node.inputs[0]) if node.inputs and node.inputs[0] else None
        if node.op in MOVERS and source is not None and source.quant is not None:
            for out in node.outputs:
                record(graph, out, source.quant)
