"""The canonicalize rule that writes an Einsum of the matrix-multiply kind as
the MatMul it is (see nnc.ops.einsum):

    A[a], B[b] → C[c]:  batch indices (in a, b and c), left (a and c), right
    (b and c), contracted (a and b only)
    A → Transpose(batch, left, contracted) → Reshape [batch..., L, K]
    B → Transpose(batch, contracted, right) → Reshape [batch..., K, R]
    MatMul → [batch..., L, R] → Reshape [batch..., left..., right...] → Transpose(c)

with L, K, R the products of the left, contracted and right extents (1 for an
empty group); a one-operand Einsum that only permutes is a Transpose. The
Transposes and Reshapes that change nothing go with canonicalize's other
rules. The values are the same products and sums (summed in another order:
equal up to float32 rounding). Left as they are, in the reference only:
implicit or "..." equations, repeated indices in one term, an index summed within one operand, batch or contracted
extents that differ (broadcasting). Each rewrite removes an Einsum, so
rewriting terminates.
"""

from __future__ import annotations

import math

from nnc.ir import Graph, Node, Tensor
from nnc.ops.einsum import parse
from nnc.ops.registry import NoAttrs
from nnc.ops.shape import ReshapeAttrs, TransposeAttrs

from .graph_edits import new_value
from .rule_dispatch import fires_on


@fires_on("Einsum")
def einsum_to_matmul(graph: Graph, node: Node) -> bool:
    if node.op != "Einsum":
        return False
    parsed = parse(node.attrs.equation)
    if parsed is None:
        return False
    terms, output = parsed
    if any(len(set(t)) != len(t) for t in (*terms, output)):
        return False
    if len(terms) == 1:
        return _permutation(graph, node, terms[0], output)
    if len(terms) != 2:
        return False
    (a, b), (x, y) = terms, (graph.tensor(t) for t in node.inputs)
    batch = [c for c in output if c in a and c in b]
    left = [c for c in output if c in a and c not in b]
    right = [c for c in output if c in b and c not in a]
    contracted = [c for c in a if c in b and c not in output]
    if set(a) != {*batch, *left, *contracted} or set(b) != {*batch, *right, *contracted}:
        return False
    if any(x.shape[a.index(c)] != y.shape[b.index(c)] for c in (*batch, *contracted)):
        return False
    extent = {c: x.shape[a.index(c)] for c in a} | {c: y.shape[b.index(c)] for c in b}
    dims = [extent[c] for c in batch]
    size = lambda group: math.prod(extent[c] for c in group)  # noqa: E731
    lhs = _arrange(graph, node, "lhs", x, a, batch + left + contracted, (*dims, size(left), size(contracted)))
    rhs = _arrange(graph, node, "rhs", y, b, batch + contracted + right, (*dims, size(contracted), size(right)))
    product = new_value(graph, f"{node.name}.product", x.dtype, (*dims, size(left), size(right)))
    graph.remove_node(node.name)
    graph.add_node(Node(graph.unique_node_name(f"{node.name}.matmul"), "MatMul", [lhs, rhs], [product], NoAttrs()))
    grouped = batch + left + right
    shaped = new_value(graph, f"{node.name}.grouped", x.dtype, tuple(extent[c] for c in grouped))
    graph.add_node(Node(graph.unique_node_name(f"{node.name}.ungroup"), "Reshape", [product], [shaped],
                        ReshapeAttrs(tuple(extent[c] for c in grouped))))
    graph.add_node(Node(node.name, "Transpose", [shaped], list(node.outputs),
                        TransposeAttrs(tuple(grouped.index(c) for c in output))))
    return True


def _permutation(graph: Graph, node: Node, term: str, output: str) -> bool:
    if sorted(term) != sorted(output):
        return False
    graph.remove_node(node.name)
    graph.add_node(Node(node.name, "Transpose", list(node.inputs), list(node.outputs),
                        TransposeAttrs(tuple(term.index(c) for c in output))))
    return True


def _arrange(graph: Graph, node: Node, role: str, x: Tensor, term: str, order: list[str], shape) -> str:
    """`x` with its axes in `order`, reshaped to `shape`."""
    moved = new_value(graph, f"{node.name}.{role}", x.dtype, tuple(x.shape[term.index(c)] for c in order))
    graph.add_node(Node(graph.unique_node_name(f"{node.name}.{role}"), "Transpose", [x.name], [moved],
                        TransposeAttrs(tuple(term.index(c) for c in order))))
    shaped = new_value(graph, f"{node.name}.{role}_rows", x.dtype, tuple(shape))
    graph.add_node(Node(graph.unique_node_name(f"{node.name}.{role}_rows"), "Reshape", [moved], [shaped],
                        ReshapeAttrs(tuple(shape))))
    return shaped
