"""The canonicalize rule that writes DepthToSpace and SpaceToDepth out as the
Reshape → Transpose → Reshape they are (nnc.ops.depth_space.steps), which
every target runs as data movement and the other rules then simplify. The
values are the same, bit for bit; each rewrite removes one DepthToSpace or
SpaceToDepth, so rewriting terminates."""

from __future__ import annotations

from nnc.ir import Graph, Node
from nnc.ops.depth_space import steps
from nnc.ops.shape import ReshapeAttrs, TransposeAttrs

from .graph_edits import new_value
from .rule_dispatch import fires_on


@fires_on("DepthToSpace", "SpaceToDepth")
def depth_space_to_transpose(graph: Graph, node: Node) -> bool:
    if node.op not in ("DepthToSpace", "SpaceToDepth"):
        return False
    x = graph.tensor(node.inputs[0])
    six, perm, _ = steps(node.op, node.attrs, x.shape)
    grouped = new_value(graph, f"{node.name}.blocks", x.dtype, six)
    moved = new_value(graph, f"{node.name}.moved", x.dtype, tuple(six[p] for p in perm))
    graph.remove_node(node.name)
    graph.add_node(Node(graph.unique_node_name(f"{node.name}.blocks"), "Reshape", [x.name], [grouped],
                        ReshapeAttrs(six)))
    graph.add_node(Node(graph.unique_node_name(f"{node.name}.moved"), "Transpose", [grouped], [moved],
                        TransposeAttrs(perm)))
    out = graph.tensor(node.outputs[0])
    graph.add_node(Node(node.name, "Reshape", [moved], list(node.outputs), ReshapeAttrs(out.shape)))
    return True
