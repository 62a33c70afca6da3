"""The canonicalize rule that gives a MatMul's constant 1-D operand a second
axis (numpy's matmul semantics of a vector):

    MatMul(a [..., K], v [K])  →  Reshape(MatMul(a, v [K, 1]) [..., 1]) [...]
    MatMul(v [K], b [..., K, N])  →  Reshape(MatMul(v [1, K], b) [..., 1, N]) [..., N]

so that a learned vector (attention pooling's query, h @ q) is a matrix of
weights that every target multiplies by (the quantizer lowers a MatMul with 1-D
operands only for 2-D weights). The values are the same products and sums.
Each rewrite leaves no 1-D constant operand, so rewriting terminates.
"""

from __future__ import annotations

from nnc.ir import Graph, Node
from nnc.ops.shape import ReshapeAttrs

from .graph_edits import new_value
from .rule_dispatch import fires_on


@fires_on("MatMul")
def vector_operand_to_matrix(graph: Graph, node: Node) -> bool:
    if node.op != "MatMul":
        return False
    a, b = (graph.tensor(t) for t in node.inputs)
    for index, vector, other in ((1, b, a), (0, a, b)):
        data = graph.constant(vector.name)
        if data is None or data.ndim != 1 or len(other.shape) < 2:
            continue
        matrix = graph.add_constant(f"{vector.name}.matrix", data.reshape((-1, 1) if index == 1 else (1, -1)))
        out = graph.tensor(node.outputs[0])
        product_shape = (*out.shape, 1) if index == 1 else (*out.shape[:-1], 1, out.shape[-1])
        product = new_value(graph, f"{node.name}.product", out.dtype, product_shape)
        inputs = [other.name, matrix.name] if index == 1 else [matrix.name, other.name]
        graph.remove_node(node.name)
        graph.add_node(Node(graph.unique_node_name(f"{node.name}.matmul"), "MatMul", inputs, [product], node.attrs))
        graph.add_node(Node(node.name, "Reshape", [product], list(node.outputs), ReshapeAttrs(out.shape)))
        return True
    return False
