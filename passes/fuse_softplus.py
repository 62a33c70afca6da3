"""The canonicalize rule that removes the threshold PyTorch's dynamo exporter
writes around Softplus.

torch.nn.functional.softplus(x, beta=1, threshold=T) returns x where x > T;
dynamo exports it as Where(Greater(x, T), x, Softplus(x)). For T ≥ MIN_THRESHOLD
the two branches agree in float32 (softplus(x) − x = ln(1 + e^−x) < 3·10^−7·x
there), so `fuse_softplus_threshold` replaces the Where by the Softplus, and
the comparison, which has no integer form, goes with it. Each rewrite removes
a node, so rewriting terminates.
"""

from __future__ import annotations

from nnc.ir import Graph, Node

from .graph_edits import drop_if_dead
from .rule_dispatch import fires_on

MIN_THRESHOLD = 15.0


@fires_on("Where")
def fuse_softplus_threshold(graph: Graph, node: Node) -> bool:
    if node.op != "Where":
        return False
    condition, x, fallback = node.inputs
    test, softplus = graph.producer(condition), graph.producer(fallback)
    if test is None or softplus is None or test.op != "Greater" or softplus.op != "Softplus":
        return False
    threshold = graph.constant(test.inputs[1])
    if test.inputs[0] != x or softplus.inputs[0] != x or threshold is None or threshold.size != 1 \
            or float(threshold.reshape(-1)[0]) < MIN_THRESHOLD or node.outputs[0] in graph.outputs \
            or graph.tensor(fallback).shape != graph.tensor(node.outputs[0]).shape:
        return False
    graph.replace_uses(node.outputs[0], fallback)
    graph.remove_node(node.name)
    del graph.tensors[node.outputs[0]]
    drop_if_dead(graph, condition)
    return True
