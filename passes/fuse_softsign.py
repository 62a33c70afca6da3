"""The canonicalize rule that rewrites x / (1 + |x|) into one Softsign.

PyTorch's dynamo exporter writes torch.nn.functional.softsign as
Div(x, Add(Abs(x), 1)) (the TorchScript exporter writes the ONNX op).
`fuse_softsign` replaces the chain, when the Abs and the Add are read by it
alone, by Softsign(x): the quantizer then makes it one 256-entry table instead
of a table, an affine op and a division (a Reciprocal table and a product).
The values are the same function computed in float64
(nnc.ops.math_unary.softsign), equal up to float32 rounding. Each rewrite
removes three nodes and adds one, so rewriting terminates.
"""

from __future__ import annotations

from nnc.ir import Graph, Node
from nnc.ops.registry import NoAttrs

from .graph_edits import single_use
from .rule_dispatch import fires_on


def _is_one(graph: Graph, name: str) -> bool:
    data = graph.constant(name)
    return data is not None and data.size == 1 and float(data.reshape(-1)[0]) == 1.0


@fires_on("Div")
def fuse_softsign(graph: Graph, node: Node) -> bool:
    if node.op != "Div":
        return False
    x, denominator = node.inputs
    add = graph.producer(denominator)
    if add is None or add.op != "Add" or not single_use(graph, denominator):
        return False
    for magnitude, one in (add.inputs, add.inputs[::-1]):
        abs_node = graph.producer(magnitude)
        if (abs_node is not None and abs_node.op == "Abs" and abs_node.inputs[0] == x and _is_one(graph, one)
                and single_use(graph, magnitude)
                and graph.tensor(node.outputs[0]).shape == graph.tensor(x).shape):
            for dead in (node, add, abs_node):
                graph.remove_node(dead.name)
            for tensor in (denominator, magnitude):
                del graph.tensors[tensor]
            graph.add_node(Node(node.name, "Softsign", [x], list(node.outputs), NoAttrs()))
            return True
    return False
