"""The canonicalize rule that folds a positive constant factor into the Softmax
(or LogSoftmax) it feeds: attention's 1/√d.

Softmax(Mul(t, k)) (either operand order) or Softmax(Div(t, k)), with k a
float constant holding one finite value above 0 that adds no axes to t, and the
product read by that Softmax alone, becomes Softmax(t) with its `scale`
multiplied by k (by 1/k for Div). The quantizer then builds QSoftmax's exp
table for the step of t times the scale, so the scores need no requantization
of their own between the Q·Kᵀ MatMul and the softmax: one integer op and one
rounding fewer per attention. A single Mul gives the same values bit for bit
(the softmax multiplies in t's type, as the Mul did); a Div, or a factor met
after another, up to float32 rounding. A Mul whose output a QuantizeLinear
reads (a QDQ model's) is not the Softmax's input and stays. Each rewrite
removes one node, so rewriting terminates.
"""

from __future__ import annotations

import dataclasses
import math

from nnc.ir import Graph, Node


def fuse_softmax_scale(graph: Graph, node: Node) -> bool:
    if node.op not in ("Softmax", "LogSoftmax"):
        return False
    product = node.inputs[0]
    scaling = graph.producer(product)
    if scaling is None or scaling.op not in ("Mul", "Div") or graph.uses(product) != 1 \
            or product in graph.outputs:
        return False
    found = _factor(graph, scaling)
    if found is None:
        return False
    t, factor = found
    attrs = dataclasses.replace(node.attrs, scale=node.attrs.scale * factor)
    graph.remove_node(scaling.name)
    graph.remove_node(node.name)
    del graph.tensors[product]
    graph.add_node(Node(node.name, node.op, [t, *node.inputs[1:]], list(node.outputs), attrs))
    return True


def _factor(graph: Graph, node: Node) -> tuple[str, float] | None:
    """(t, f) when `node` computes t · f with a one-value float constant, f > 0
    finite, that adds no axes to t; None otherwise."""
    orders = [(0, 1), (1, 0)] if node.op == "Mul" else [(0, 1)]
    for x, k in orders:
        data = graph.constant(node.inputs[k])
        if data is None or data.size != 1 or data.dtype.kind != "f" or graph.constant(node.inputs[x]) is not None \
                or graph.tensor(node.outputs[0]).shape != graph.tensor(node.inputs[x]).shape:
            continue
        value = float(data.reshape(-1)[0])
        factor = value if node.op == "Mul" else 1.0 / value if value else math.inf
        if math.isfinite(factor) and factor > 0:
            return node.inputs[x], factor
    return None
