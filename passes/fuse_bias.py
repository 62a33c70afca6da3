"""fuse-bias: merge a bias Add into the layer that feeds it.

Rewrites:
- y = Add(MatMul(x, W), bias) (either operand order) with x [..., K] (float, rank
  >= 2), W [K, N] and bias [N] or [1, N] that is a constant or the output of a
  DequantizeLinear of constants (how QDQ models feed int32 biases)
  -> y = Gemm(x, W, bias): a fully connected layer becomes one op.
  An x of rank > 2 (a transformer's [B, T, D]) is folded into rows by a Reshape
  before the Gemm and unfolded by one after. The Gemm keeps the MatMul's node
  name.
- y = Add(Conv(x, w), k) (either order) for a Conv or ConvTranspose without a
  fused clamp and a constant k that varies only along the channel axis (shape
  [C, 1, 1], [1, C, 1, 1], [1] ...; [C] or [1, 1, 1, C] for channels_last) and
  does not widen the output -> the layer gets bias k (added to its constant bias
  if it has one).
Only when the MatMul/Conv output is read by that Add alone and is not a graph
output; the layer then produces y itself.

Requires: a valid graph.

Guarantees: a valid graph with the same interface; outputs equal up to float
rounding (the layers add the bias in float64 before their one cast, where the
separate Add rounded twice).
"""

from __future__ import annotations

import math

import numpy as np

from nnc.ir import Graph, Node, Tensor
from nnc.ops.gemm import GemmAttrs
from nnc.ops.shape import ReshapeAttrs
from nnc.passmanager import Pass, register_pass
from nnc.records import record

from .graph_edits import drop_unused_constant


@register_pass
@record
class FuseBias(Pass):
    name = "fuse-bias"

    def run(self, graph: Graph) -> Graph:
        for add in graph.nodes():
            if add.op == "Add":
                _try_fuse(graph, add)
        return graph


def _try_fuse(graph: Graph, add: Node) -> None:
    for t, other in (add.inputs, add.inputs[::-1]):
        layer = graph.producer(t)
        if layer is None or graph.uses(t) != 1:
            continue
        if layer.op == "MatMul" and _fuse_matmul(graph, add, layer, other):
            return
        if layer.op in ("Conv", "ConvTranspose") and _fuse_conv(graph, add, layer, other):
            return


def _fuse_matmul(graph: Graph, add: Node, matmul: Node, bias: str) -> bool:
    x, w = (graph.tensor(t) for t in matmul.inputs)
    b, y = graph.tensor(bias), graph.tensor(add.outputs[0])
    if len(x.shape) < 2 or len(w.shape) != 2 or x.dtype not in ("f32", "f64") or b.dtype != x.dtype:
        return False
    if b.shape not in ((w.shape[1],), (1, w.shape[1])) or not _is_parameter(graph, bias):
        return False
    if len(x.shape) == 2:
        _replace(graph, [matmul, add], Node(matmul.name, "Gemm", [*matmul.inputs, bias], list(add.outputs),
                                            GemmAttrs()))
        return True
    rows = (math.prod(x.shape[:-1]), x.shape[-1])
    flat = graph.add_tensor(Tensor(graph.unique_tensor_name(f"{matmul.name}.rows"), x.dtype, rows)).name
    product = graph.add_tensor(Tensor(graph.unique_tensor_name(f"{matmul.name}.gemm"), x.dtype,
                                      (rows[0], w.shape[1]))).name
    _replace(graph, [matmul, add], Node(matmul.name, "Gemm", [flat, matmul.inputs[1], bias], [product], GemmAttrs()))
    graph.add_node(Node(graph.unique_node_name(f"{matmul.name}.rows"), "Reshape", [matmul.inputs[0]], [flat],
                        ReshapeAttrs(rows)))
    graph.add_node(Node(graph.unique_node_name(f"{matmul.name}.unrows"), "Reshape", [product],
                        list(add.outputs), ReshapeAttrs(y.shape)))
    return True


def _is_parameter(graph: Graph, name: str) -> bool:
    """A constant, or a DequantizeLinear of constants."""
    if graph.tensor(name).is_constant:
        return True
    producer = graph.producer(name)
    return producer is not None and producer.op == "DequantizeLinear" and all(
        graph.tensor(t).is_constant for t in producer.inputs if t)


def _fuse_conv(graph: Graph, add: Node, conv: Node, other: str) -> bool:
    k, y = graph.constant(other), graph.tensor(conv.outputs[0])
    if k is None or conv.attrs.act_min is not None or conv.attrs.act_max is not None:
        return False
    channels = _per_channel(k, y.shape, -1 if conv.attrs.channels_last else 1)
    bias_name = conv.inputs[2] if len(conv.inputs) > 2 else ""
    old_bias = graph.constant(bias_name)
    if channels is None or (bias_name and old_bias is None):
        return False
    total = channels.astype(np.float64) + (0.0 if old_bias is None else old_bias.astype(np.float64))
    new_bias = graph.add_constant(f"{conv.name}.bias", total.astype(channels.dtype)).name
    inputs = [*conv.inputs[:2], new_bias]
    _replace(graph, [conv, add], Node(conv.name, conv.op, inputs, list(add.outputs), conv.attrs))
    for name in (other, bias_name):
        drop_unused_constant(graph, name)
    return True


def _per_channel(k: np.ndarray, out_shape: tuple[int, ...], axis: int) -> np.ndarray | None:
    """k as a [C] vector if adding it to an out_shape tensor adds one value per
    channel (axis `axis`) and keeps the shape; else None."""
    if k.ndim > len(out_shape):
        return None
    shape = (1,) * (len(out_shape) - k.ndim) + k.shape
    channel = axis % len(out_shape)
    if any(d != 1 for i, d in enumerate(shape) if i != channel) or shape[channel] not in (1, out_shape[channel]):
        return None
    return np.broadcast_to(k.reshape(-1), (out_shape[channel],)).copy()


def _replace(graph: Graph, old: list[Node], new: Node) -> None:
    """Remove the `old` chain (its intermediate tensors too) and add `new`."""
    for node in old:
        graph.remove_node(node.name)
    graph.add_node(new)
    for node in old[:-1]:
        for t in node.outputs:
            del graph.tensors[t]
