"""The canonicalize rule that rewrites x · Sigmoid(x) into one Silu.

PyTorch exports SiLU (Swish: conformer feed-forward and convolution modules,
EfficientNet) as y = Mul(x, Sigmoid(x)), in either operand order. `fuse_silu`
replaces the pair, when the Sigmoid's output is read by that Mul alone and is
not a graph output, by y = Silu(x), so the quantizer makes it one 256-entry
table instead of a table and an int8 product that rounds on its own. The
values are the same function computed in float64 (nnc.ops.math_unary.silu),
equal to the pair up to float32 rounding. Each rewrite removes two nodes and
adds one, so rewriting terminates.
"""

from __future__ import annotations

from nnc.ir import Graph, Node
from nnc.ops.registry import NoAttrs

from .graph_edits import single_use
from .rule_dispatch import fires_on


@fires_on("Mul")
def fuse_silu(graph: Graph, node: Node) -> bool:
    if node.op != "Mul" or len(node.inputs) != 2:
        return False
    for x, gate in (node.inputs, node.inputs[::-1]):
        sigmoid = graph.producer(gate)
        if (sigmoid is not None and sigmoid.op == "Sigmoid" and sigmoid.inputs[0] == x
                and single_use(graph, gate)):
            graph.remove_node(node.name)
            graph.remove_node(sigmoid.name)
            del graph.tensors[gate]
            graph.add_node(Node(node.name, "Silu", [x], list(node.outputs), NoAttrs()))
            return True
    return False
