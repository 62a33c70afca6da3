"""The canonicalize rule that folds a positive constant factor into the Softmax
(or LogSoftmax) it feeds: attention's 1/√d.

Softmax(Mul(t, k)) (either operand order) or Softmax(Div(t, k)), with k a
float constant holding one finite value above 0 that adds no axes to t, and the
product read by that Softmax alone, becomes Softmax(t) with its `scale`
multiplied by k (by 1/k for Div). So does such a factor on an operand of the
MatMul whose output only the Softmax reads, Softmax(MatMul(Mul(q, k), kᵀ)), as
PyTorch's scaled_dot_product_attention is exported (√(1/√d) on q and on kᵀ):
the factor moves through the MatMul, which is linear. The quantizer then
builds QSoftmax's exp table for the step of t times the scale, so the scores
and the operands need no requantization of their own: one integer op and one
rounding fewer per factor. A single Mul right before the Softmax gives the
same values bit for bit (the softmax multiplies in t's type, as the Mul did);
a Div, a factor moved through the MatMul or one met after another, up to
rounding in t's type. A Mul whose output a QuantizeLinear reads (a QDQ model's)
is not read by the Softmax or MatMul alone and stays. Each rewrite removes one
node, so rewriting terminates.
"""

from __future__ import annotations

import dataclasses

from nnc.ir import Graph, Node
from nnc.ops.softmax import scale_factor

from .graph_edits import drop_if_dead, single_use
from .rule_dispatch import fires_on


@fires_on("Softmax", "LogSoftmax")
def fuse_softmax_scale(graph: Graph, node: Node) -> bool:
    if node.op not in ("Softmax", "LogSoftmax"):
        return False
    scores = graph.producer(node.inputs[0])
    if scores is None or not single_use(graph, node.inputs[0]):
        return False
    if scores.op in ("Mul", "Div"):
        found = _factor(graph, scores)
        if found is None:
            return False
        _remove_factor(graph, scores, found[0])
        _rescale(node, found[1])
        return True
    if scores.op == "MatMul":
        for operand in scores.inputs:
            scaling = graph.producer(operand)
            found = _factor(graph, scaling) if scaling is not None and scaling.op in ("Mul", "Div") \
                and single_use(graph, operand) else None
            if found is not None:
                _remove_factor(graph, scaling, found[0])
                _rescale(node, found[1])
                return True
    return False


def _remove_factor(graph: Graph, scaling: Node, t: str) -> None:
    """Drop the Mul/Div `scaling`, and its factor if nothing else reads it; its
    reader reads `t` instead."""
    graph.remove_node(scaling.name)
    graph.replace_uses(scaling.outputs[0], t)
    del graph.tensors[scaling.outputs[0]]
    for name in scaling.inputs:
        drop_if_dead(graph, name)


def _rescale(node: Node, factor: float) -> None:
    """`node` (a Softmax or LogSoftmax) with its scale times `factor`."""
    node.attrs = dataclasses.replace(node.attrs, scale=node.attrs.scale * factor)


def _factor(graph: Graph, node: Node) -> tuple[str, float] | None:
    """(t, f) when `node` computes t · f with a constant softmax.scale_factor
    takes, that adds no axes to run-time t; None otherwise."""
    orders = [(0, 1), (1, 0)] if node.op == "Mul" else [(0, 1)]
    for x, k in orders:
        data = graph.constant(node.inputs[k])
        if data is None or graph.constant(node.inputs[x]) is not None \
                or graph.tensor(node.outputs[0]).shape != graph.tensor(node.inputs[x]).shape:
            continue
        factor = scale_factor(data, divides=node.op == "Div")
        if factor is not None:
            return node.inputs[x], factor
    return None
