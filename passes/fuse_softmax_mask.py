"""The canonicalize rule that folds an additive attention mask into Softmax.

PyTorch exports causal and padding masks of attention (scaled_dot_product_
attention with is_causal, MultiheadAttention's attn_mask) as Add(scores, M) →
Softmax, with M a constant of 0 (keep) and -inf, float32's lowest or -1e9
(hide) once the shapes are known. `fuse_softmax_mask` rewrites it as
Softmax(scores, keep) with keep = (M == 0) (nnc.ops.softmax.additive_mask),
lifted to the scores' rank: hidden positions get probability exactly 0, as
exp(-inf) gives, and the quantizer never sees the fill (an int8 range holding
-inf, or -1e9, would leave no precision for the scores). Fused only when the
Add's output feeds only that Softmax, M does not widen the scores by
broadcasting, and every row keeps a position (a fully hidden row is NaN or
uniform in the float model, which a mask cannot express); such models keep
their Add. Each rewrite removes one node, so rewriting terminates.
"""

from __future__ import annotations

import numpy as np

from nnc.ir import Graph, Node, Tensor
from nnc.ops.softmax import additive_mask


def fuse_softmax_mask(graph: Graph, node: Node) -> bool:
    if node.op != "Softmax" or len(node.inputs) != 1 or node.attrs.coerce_2d:
        return False
    add = graph.producer(node.inputs[0])
    if add is None or add.op != "Add" or graph.uses(node.inputs[0]) != 1 or node.inputs[0] in graph.outputs:
        return False
    shape = graph.tensor(node.inputs[0]).shape
    for m, x in ((1, 0), (0, 1)):
        data = graph.constant(add.inputs[m])
        keep = None if data is None or graph.tensor(add.inputs[x]).shape != shape else additive_mask(data)
        if keep is None or keep.ndim > len(shape):
            continue
        keep = keep.reshape((1,) * (len(shape) - keep.ndim) + keep.shape)
        if not np.broadcast_to(keep, shape).any(axis=node.attrs.axis).all():
            continue
        name = graph.unique_tensor_name(f"{node.name}.keep")
        graph.add_tensor(Tensor(name, "bool", keep.shape, data=keep))
        graph.remove_node(node.name)
        graph.add_node(Node(node.name, "Softmax", [add.inputs[x], name], list(node.outputs), node.attrs))
        graph.remove_node(add.name)
        del graph.tensors[add.outputs[0]]
        if not graph.uses(add.inputs[m]) and add.inputs[m] not in graph.outputs:
            del graph.tensors[add.inputs[m]]
        return True
    return False
