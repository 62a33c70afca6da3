"""The canonicalize rule that writes a float CumSum as a product with a
constant triangular matrix:

    y[..., j, ...] = Σ_k T[j, k] · x[..., k, ...],   T[j, k] = 1 when x_k counts in y_j

(k ≤ j; k < j with `exclusive`; k ≥ j or k > j with `reverse`), as
MatMul(T, x) with the summed axis second to last: x of rank 1 or with the axis
last is reshaped to a column first, another axis is transposed there and
back. T is the MatMul's first operand, a constant, not a layer's weights: the
compression passes leave it as it is, and the quantizer keeps its 0 and 1
exact. The sums are the same (in another order: equal up to float32 rounding),
at n² multiply-adds for n elements, so axes longer than MAX_LENGTH stay CumSum
(the reference only). Each rewrite removes a CumSum, so rewriting terminates.
"""

from __future__ import annotations

import numpy as np

from nnc.dtypes import FLOAT_TYPES, to_numpy
from nnc.ir import Graph, Node
from nnc.ops.registry import NoAttrs
from nnc.ops.shape import ReshapeAttrs, TransposeAttrs

from .graph_edits import new_value
from .rule_dispatch import fires_on

MAX_LENGTH = 1024


def triangle(n: int, exclusive: bool, reverse: bool) -> np.ndarray:
    """T [n, n] of 0 and 1: T[j, k] = 1 when x_k counts in y_j."""
    j, k = np.arange(n)[:, None], np.arange(n)[None, :]
    counted = (k >= j if reverse else k <= j) & (k != j if exclusive else True)
    return counted.astype(np.float64)


@fires_on("CumSum")
def cumsum_to_matmul(graph: Graph, node: Node) -> bool:
    if node.op != "CumSum":
        return False
    x = graph.tensor(node.inputs[0])
    axis, shape = node.attrs.axis, x.shape
    if x.dtype not in FLOAT_TYPES or shape[axis] > MAX_LENGTH:
        return False
    rank, n = len(shape), shape[axis]
    t = graph.add_constant(f"{node.name}.triangle", triangle(n, node.attrs.exclusive,
                                                             node.attrs.reverse).astype(to_numpy(x.dtype)))
    graph.remove_node(node.name)
    if axis == rank - 1:  # a column per row: [..., n] -> [..., n, 1]
        column = _add(graph, node, "column", "Reshape", [x.name], x.dtype, (*shape, 1), ReshapeAttrs((*shape, 1)))
        summed = _add(graph, node, "matmul", "MatMul", [t.name, column], x.dtype, (*shape, 1), NoAttrs())
        graph.add_node(Node(node.name, "Reshape", [summed], list(node.outputs), ReshapeAttrs(shape)))
        return True
    if axis == rank - 2:
        graph.add_node(Node(node.name, "MatMul", [t.name, x.name], list(node.outputs), NoAttrs()))
        return True
    perm = tuple(a for a in range(rank - 1) if a != axis) + (axis, rank - 1)
    moved = tuple(shape[a] for a in perm)
    there = _add(graph, node, "to_rows", "Transpose", [x.name], x.dtype, moved, TransposeAttrs(perm))
    summed = _add(graph, node, "matmul", "MatMul", [t.name, there], x.dtype, moved, NoAttrs())
    graph.add_node(Node(node.name, "Transpose", [summed], list(node.outputs),
                        TransposeAttrs(tuple(int(i) for i in np.argsort(perm)))))
    return True


def _add(graph: Graph, node: Node, role: str, op: str, inputs: list[str], dtype: str, shape, attrs) -> str:
    """A new `op` node named after `node` and `role`; returns its output."""
    out = new_value(graph, f"{node.name}.{role}", dtype, shape)
    graph.add_node(Node(graph.unique_node_name(f"{node.name}.{role}"), op, inputs, [out], attrs))
    return out
