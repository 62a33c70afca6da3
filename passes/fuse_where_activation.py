"""The canonicalize rule that writes a Where selecting between x and a simple
function of x, by x's comparison with a constant, as the activation it is
(activations written by hand in PyTorch models; the model sweep's threshold
and leaky ReLU):

    Where(x > 0, x, x · a)  (a · x; ≥ too, or < and ≤ with the branches swapped)  → LeakyRelu(a)
    Where(x > t, x, 0)      (or Where(x ≤ t, 0, x))                                 → ThresholdedRelu(t)

Both are exact: LeakyRelu's branches agree at 0, where the comparisons differ;
ThresholdedRelu keeps x > t strictly, as those two forms do. The comparison,
which has no integer form, goes with the Where. Each rewrite removes the Where,
so rewriting terminates.
"""

from __future__ import annotations

from nnc.ir import Graph, Node
from nnc.ops.elementwise import AlphaAttrs

from .graph_edits import drop_if_dead, single_use
from .rule_dispatch import fires_on

COMPARISONS = {"Greater": True, "GreaterOrEqual": True, "Less": False, "LessOrEqual": False}  # x large: then-branch


@fires_on("Where")
def where_to_activation(graph: Graph, node: Node) -> bool:
    if node.op != "Where":
        return False
    condition, then, other = node.inputs
    test = graph.producer(condition)
    if test is None or test.op not in COMPARISONS:
        return False
    x, limit = test.inputs[0], graph.constant(test.inputs[1])
    if limit is None or limit.size != 1 or graph.tensor(x).shape != graph.tensor(node.outputs[0]).shape:
        return False
    large, small = (then, other) if COMPARISONS[test.op] else (other, then)
    if large != x:
        return False
    threshold = float(limit.reshape(-1)[0])
    slope = _slope(graph, small, x)
    if threshold == 0.0 and slope is not None:
        _replace(graph, node, "LeakyRelu", AlphaAttrs(slope), [condition, small])
        return True
    zero = graph.constant(small)
    if test.op in ("Greater", "LessOrEqual") and zero is not None and not zero.any():  # 0, or zeros_like(x)
        _replace(graph, node, "ThresholdedRelu", AlphaAttrs(threshold), [condition, small])
        return True
    return False


def _slope(graph: Graph, name: str, x: str) -> float | None:
    """a when `name` is Mul(x, a) or Mul(a, x) with a scalar constant a, read only here."""
    mul = graph.producer(name)
    if mul is None or mul.op != "Mul" or not single_use(graph, name) or x not in mul.inputs:
        return None
    a = graph.constant(mul.inputs[1] if mul.inputs[0] == x else mul.inputs[0])
    return float(a.reshape(-1)[0]) if a is not None and a.size == 1 else None


def _replace(graph: Graph, node: Node, op: str, attrs, dropped: list[str]) -> None:
    x = graph.producer(node.inputs[0]).inputs[0]
    graph.remove_node(node.name)
    graph.add_node(Node(node.name, op, [x], list(node.outputs), attrs))
    for name in dropped:
        drop_if_dead(graph, name)
