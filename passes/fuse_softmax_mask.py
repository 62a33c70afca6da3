"""The canonicalize rule that folds an additive attention mask into Softmax.

PyTorch exports causal and padding masks of attention (scaled_dot_product_
attention with is_causal, MultiheadAttention's attn_mask) as Add(scores, M) →
Softmax, with M a constant of 0 (keep) and -inf, float32's lowest, -1e9 or
-1e4 (hide) once the shapes are known, and `masked_fill(hide, fill)` as
Where(hide, fill, scores). `fuse_softmax_mask` rewrites them as
Softmax(scores, keep) with keep = (M == 0) (nnc.ops.softmax.additive_mask) or
the condition (negated for a fill in Where's first branch), lifted to the
scores' rank: hidden positions get probability exactly 0, as
exp(-inf) gives, and the quantizer never sees the fill (an int8 range holding
-inf, or -1e9, would leave no precision for the scores). Fused only when the
mask's output feeds only that Softmax, the mask does not widen the scores by
broadcasting, and every row keeps a position (a fully hidden row is NaN or
uniform in the float model, which a mask cannot express); such models keep
their Add. Each rewrite removes one node, so rewriting terminates.
"""

from __future__ import annotations

import numpy as np

from nnc.ir import Graph, Node, Tensor
from nnc.ops.softmax import MASK_FILL, additive_mask

from .graph_edits import drop_if_dead, single_use
from .rule_dispatch import fires_on


@fires_on("Softmax")
def fuse_softmax_mask(graph: Graph, node: Node) -> bool:
    if node.op != "Softmax" or len(node.inputs) != 1 or node.attrs.coerce_2d:
        return False
    masking = graph.producer(node.inputs[0])
    if masking is None or not single_use(graph, node.inputs[0]):
        return False
    shape = graph.tensor(node.inputs[0]).shape
    found = _masked(graph, masking, shape)
    if found is None:
        return False
    scores, keep = found
    keep = keep.reshape((1,) * (len(shape) - keep.ndim) + keep.shape)
    if not np.broadcast_to(keep, shape).any(axis=node.attrs.axis).all():
        return False
    name = graph.unique_tensor_name(f"{node.name}.keep")
    graph.add_tensor(Tensor(name, "bool", keep.shape, data=keep))
    graph.remove_node(node.name)
    graph.add_node(Node(node.name, "Softmax", [scores, name], list(node.outputs), node.attrs))
    graph.remove_node(masking.name)
    del graph.tensors[masking.outputs[0]]
    for constant in masking.inputs:
        drop_if_dead(graph, constant)
    return True


def _masked(graph: Graph, node: Node, shape: tuple[int, ...]) -> tuple[str, np.ndarray] | None:
    """(scores, keep) when `node` masks run-time scores of `shape` with
    constants: Add(scores, additive mask) in either order, or Where(hide,
    fill, scores) / Where(keep, scores, fill) with a constant bool condition and
    fills all at most MASK_FILL; keep has at most the scores' rank."""
    if node.op == "Add":
        for m, x in ((1, 0), (0, 1)):
            data = graph.constant(node.inputs[m])
            keep = None if data is None else additive_mask(data)
            if keep is not None and graph.tensor(node.inputs[x]).shape == shape and keep.ndim <= len(shape):
                return node.inputs[x], keep
    if node.op == "Where":
        condition = graph.constant(node.inputs[0])
        if condition is None or condition.ndim > len(shape):
            return None
        for f, x, keep in ((1, 2, ~condition), (2, 1, condition)):
            fill = graph.constant(node.inputs[f])
            if fill is not None and fill.dtype.kind == "f" and fill.size and (fill <= MASK_FILL).all() \
                    and graph.tensor(node.inputs[x]).shape == shape:
                return node.inputs[x], keep
    return None
