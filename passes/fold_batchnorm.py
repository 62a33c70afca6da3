"""fold-batchnorm: fold inference BatchNormalization into the layer that feeds it.

Rewrites: y = BatchNormalization(t, scale, B, mean, var) where t is produced by
- a Conv or ConvTranspose with a constant weight and a constant or absent bias,
  in the same channel layout as the BatchNormalization, or
- a Gemm (output [N, C]) with a constant B and a constant or absent C,
that has no fused clamp and whose only reader is the BatchNormalization. With
s = scale / sqrt(var + epsilon) per output channel:
  weight' = weight * s  (per output channel)
  bias'   = (bias - mean) * s + B  (bias = 0 when absent: a bias is added)
  Gemm: B' = B * s along the N axis, C' = (beta * C - mean) * s + B, beta' = 1.
The layer then produces y itself and the BatchNormalization is removed. A
BatchNormalization whose statistics are not all constant, or whose input does not
meet the conditions above, stays as it is.

Requires: a valid graph.

Guarantees: a valid graph with the same interface; outputs equal up to float
rounding (folded constants are computed in float64 and cast once to the weight
dtype). New weights are new constants: a weight shared with another node is not
changed for that node.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from nnc.ir import Graph, Node
from nnc.passmanager import Pass, register_pass
from nnc.records import record

from .graph_edits import drop_unused_constant


@register_pass
@record
class FoldBatchNorm(Pass):
    name = "fold-batchnorm"

    def run(self, graph: Graph) -> Graph:
        for bn in graph.nodes():
            if bn.op == "BatchNormalization":
                _try_fold(graph, bn)
        return graph


def _try_fold(graph: Graph, bn: Node) -> None:
    stats = [graph.constant(t) for t in bn.inputs[1:5]]
    layer = graph.producer(bn.inputs[0])
    if any(s is None for s in stats) or layer is None or layer.op not in _FOLDERS:
        return
    if graph.uses(bn.inputs[0]) != 1 or layer.attrs.act_min is not None or layer.attrs.act_max is not None:
        return
    scale, shift, mean, var = (s.astype(np.float64) for s in stats)
    s = scale / np.sqrt(var + bn.attrs.epsilon)
    folded = _FOLDERS[layer.op](graph, layer, bn, s, shift - mean * s)
    if folded is None:
        return
    inputs, attrs = folded
    old = [t for t in layer.inputs if t]
    graph.remove_node(bn.name)
    graph.remove_node(layer.name)
    graph.add_node(Node(layer.name, layer.op, inputs, [bn.outputs[0]], attrs))
    for name in [bn.inputs[0], *bn.inputs[1:], *old]:
        drop_unused_constant(graph, name)


def _fold_conv(graph: Graph, conv: Node, bn: Node, s: np.ndarray, t: np.ndarray):
    """Conv/ConvTranspose: (new inputs, attrs), or None if it cannot be folded."""
    bias_name = _input(conv, 2)
    w, bias = graph.constant(conv.inputs[1]), graph.constant(bias_name)
    if w is None or not _constant_or_absent(graph, bias_name) \
            or conv.attrs.channels_last != bn.attrs.channels_last:
        return None
    if conv.op == "ConvTranspose":  # w [Cin, Cout/g, *k]; output channel g*Cout/g + m
        g = conv.attrs.group
        per_channel = s.reshape(g, 1, w.shape[1], *(1,) * (w.ndim - 2))
        w_new = (w.astype(np.float64).reshape(g, w.shape[0] // g, *w.shape[1:]) * per_channel).reshape(w.shape)
    else:  # w [Cout, Cin/g, *k]
        w_new = w.astype(np.float64) * s.reshape(-1, *(1,) * (w.ndim - 1))
    b = np.zeros_like(s) if bias is None else bias.astype(np.float64)
    b_new = b * s + t
    inputs = [conv.inputs[0], _add(graph, conv.inputs[1], w_new, w.dtype),
              _add(graph, bias_name or f"{conv.name}.bias", b_new, w.dtype)]
    return inputs, conv.attrs


def _fold_gemm(graph: Graph, gemm: Node, bn: Node, s: np.ndarray, t: np.ndarray):
    """Gemm [N, C]: (new inputs, attrs), or None if it cannot be folded."""
    c_name = _input(gemm, 2)
    b, c = graph.constant(gemm.inputs[1]), graph.constant(c_name)
    if b is None or not _constant_or_absent(graph, c_name):
        return None
    b_new = b.astype(np.float64) * (s.reshape(-1, 1) if gemm.attrs.trans_b else s)
    c_old = np.zeros_like(s) if c is None else gemm.attrs.beta * c.astype(np.float64)
    c_new = c_old * s + t
    inputs = [gemm.inputs[0], _add(graph, gemm.inputs[1], b_new, b.dtype),
              _add(graph, c_name or f"{gemm.name}.C", c_new, b.dtype)]
    return inputs, dataclasses.replace(gemm.attrs, beta=1.0)


_FOLDERS = {"Conv": _fold_conv, "ConvTranspose": _fold_conv, "Gemm": _fold_gemm}


def _input(node: Node, index: int) -> str:
    """Name of input `index`, "" when omitted."""
    return node.inputs[index] if index < len(node.inputs) else ""


def _constant_or_absent(graph: Graph, name: str) -> bool:
    return not name or graph.tensor(name).is_constant


def _add(graph: Graph, base: str, data: np.ndarray, dtype) -> str:
    return graph.add_constant(f"{base}.bn", data.astype(dtype)).name
