"""The canonicalize rule that rewrites Split into one Slice per used output.

Split is the only data-movement op with several outputs; as Slices, each piece
is an ordinary single-output op that the quantizer groups and every target
lowers like any other Slice. The Slice outputs keep the Split's output names,
so graph outputs and readers are untouched and values are equal bit for bit
(`nnc.ops.indexing.split_slices` computes the same pieces as Split.evaluate).
Each rewrite removes one Split and creates none, so rewriting terminates.
"""

from __future__ import annotations

from nnc.ir import Graph, Node
from nnc.ops.indexing import split_slices

from .rule_dispatch import fires_on


@fires_on("Split")
def split_to_slices(graph: Graph, node: Node) -> bool:
    if node.op != "Split":
        return False
    shape = graph.tensor(node.inputs[0]).shape
    pieces = split_slices(shape, node.attrs)
    graph.remove_node(node.name)
    for i, (out, attrs) in enumerate(zip(node.outputs, pieces)):
        if out:
            graph.add_node(Node(graph.unique_node_name(f"{node.name}.{i}"), "Slice", [node.inputs[0]], [out],
                                attrs))
    return True
