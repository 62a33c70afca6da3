"""The canonicalize rule that folds a constant scalar factor into the Gemm that
feeds it.

y = Mul(t, k) (either operand order) with k a float constant holding one value
that adds no axes to t (y has t's shape) and t a Gemm's output, or a Reshape of one (a Linear over a sequence's rows,
as fuse-bias writes it), read by that Mul alone, becomes the Gemm with alpha
and beta multiplied by k: k · (alpha · A @ B + beta · C). A conformer's
half-step feed-forward, x + 0.5 · FF(x), then has one requantization fewer.
Only a Gemm whose B and C are float constants (the quantizer folds alpha and
beta into them) and without a fused clamp (the clamp would scale too) takes
the factor; a QDQ model's Gemm on int8 weights keeps its Mul. The values
are the same up to float32 rounding (the Gemm computes in float64, where the
pair rounded twice). Each rewrite removes one node, so rewriting terminates.
"""

from __future__ import annotations

import dataclasses

from nnc.ir import Graph, Node

from .graph_edits import drop_if_dead, single_use
from .rule_dispatch import fires_on


@fires_on("Mul")
def fold_gemm_scale(graph: Graph, node: Node) -> bool:
    if node.op != "Mul" or len(node.inputs) != 2:
        return False
    for t, k in (node.inputs, node.inputs[::-1]):
        factor = graph.constant(k)
        if factor is None or factor.size != 1 or factor.dtype.kind != "f" or \
                graph.tensor(node.outputs[0]).shape != graph.tensor(t).shape:  # a [1, 1, 1] k adds axes
            continue
        chain = _gemm_chain(graph, t)
        if chain is None:
            continue
        gemm, *moves = chain
        c = float(factor.reshape(-1)[0])
        gemm.attrs = dataclasses.replace(gemm.attrs, alpha=gemm.attrs.alpha * c, beta=gemm.attrs.beta * c)
        last = moves[-1] if moves else gemm  # now writes the Mul's output
        graph.remove_node(node.name)
        graph.remove_node(last.name)
        del graph.tensors[t]
        graph.add_node(Node(last.name, last.op, list(last.inputs), list(node.outputs), last.attrs))
        drop_if_dead(graph, k)
        return True
    return False


def _gemm_chain(graph: Graph, name: str) -> list[Node] | None:
    """[Gemm] or [Gemm, Reshape] producing `name`, each output read once and not
    a graph output, the Gemm on float constant B and C without a fused clamp;
    None otherwise."""
    chain: list[Node] = []
    while True:
        producer = graph.producer(name)
        if producer is None or not single_use(graph, name):
            return None
        chain.insert(0, producer)
        if producer.op == "Gemm":
            clamped = producer.attrs.act_min is not None or producer.attrs.act_max is not None
            params = [graph.constant(t) for t in producer.inputs[1:] if t]
            floats = all(p is not None and p.dtype.kind == "f" for p in params)
            return chain if floats and not clamped else None
        if producer.op != "Reshape" or len(chain) > 1:
            return None
        name = producer.inputs[0]
