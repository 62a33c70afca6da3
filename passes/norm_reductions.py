"""The canonicalize rule that writes the norm reductions out with the ops every
target runs:

    ReduceL1(x)        → ReduceSum(Abs(x))
    ReduceSumSquare(x) → ReduceSum(Mul(x, x))
    ReduceL2(x)        → Sqrt(ReduceSum(Mul(x, x)))

(the same axes and keepdims). torch.nn.functional.normalize exports ReduceL2
(an x-vector's or a metric-learning embedding's L2 normalization). The values
are the same function, equal up to float32 rounding of the intermediate sum;
in int8 they are a QLut or QMul, a QReduce and a table. Each rewrite removes
one norm reduction, so rewriting terminates.
"""

from __future__ import annotations

from nnc.ir import Graph, Node
from nnc.ops import get_op
from nnc.ops.registry import NoAttrs

from .graph_edits import new_value
from .rule_dispatch import fires_on


@fires_on("ReduceL1", "ReduceL2", "ReduceSumSquare")
def norm_reduction_to_sum(graph: Graph, node: Node) -> bool:
    if node.op not in ("ReduceL1", "ReduceL2", "ReduceSumSquare"):
        return False
    x = graph.tensor(node.inputs[0])
    y = graph.tensor(node.outputs[0])
    terms = new_value(graph, f"{node.name}.terms", x.dtype, x.shape, x.layout)
    graph.remove_node(node.name)
    if node.op == "ReduceL1":
        graph.add_node(Node(graph.unique_node_name(f"{node.name}.abs"), "Abs", [x.name], [terms], NoAttrs()))
    else:
        graph.add_node(Node(graph.unique_node_name(f"{node.name}.square"), "Mul", [x.name, x.name], [terms],
                            NoAttrs()))
    if node.op != "ReduceL2":
        graph.add_node(Node(node.name, "ReduceSum", [terms], [y.name], node.attrs))
        return True
    total = new_value(graph, f"{node.name}.sum", y.dtype, y.shape, y.layout)
    graph.add_node(Node(graph.unique_node_name(f"{node.name}.sum"), "ReduceSum", [terms], [total], node.attrs))
    graph.add_node(Node(node.name, "Sqrt", [total], [y.name], get_op("Sqrt").Attrs()))
    return True
