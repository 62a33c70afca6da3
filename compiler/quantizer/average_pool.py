"""AveragePool whose windows count different numbers of positions → a uniform
AveragePool times a constant, before calibration (docs/numerics.md §5).

The integer average pool (QAveragePool) divides every window's sum by one
count, prod(kernel_shape). An AveragePool that does not count its padding
(count_include_pad 0, PyTorch's `count_include_pad=False`, TFLite's SAME
average pooling as tf2onnx converts it), or whose ceil_mode windows reach past
the input, divides by the number of input positions of each window instead.
Since sum / count(o) = (sum / K) · (K / count(o)), `rewrite_partial_windows`
replaces such a node by

    AveragePool(x, count_include_pad=1, ceil_mode=0, end pads grown to hold the
    ceil_mode windows) → Mul(·, K / count [1, 1, *output] or [1, *output, 1])

whose first op every window counts K for, and whose second is an int8 product
with a constant tensor (QMul, §10): two roundings where the float op has one.
Only undilated nodes whose pad positions are not counted change; an
AveragePool that counts its padding and has ceil_mode windows past the input
stays refused, as does a dilated one.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ..dtypes import to_numpy
from ..ir import Graph, Node, Tensor
from ..ops.conv import split_shape
from ..ops.pool import AveragePoolAttrs, pooled_size, window_counts
from ..ops.registry import NoAttrs


def rewrite_partial_windows(graph: Graph) -> int:
    """Rewrite every AveragePool described in the module docstring; returns how many."""
    found = [n for n in graph.nodes() if n.op == "AveragePool" and not n.attrs.count_include_pad
             and all(d == 1 for d in n.attrs.dilations) and _partial(graph, n)]
    for node in found:
        _rewrite(graph, node)
    return len(found)


def _spatial(graph: Graph, node: Node) -> tuple[int, ...]:
    return tuple(split_shape(graph.tensor(node.inputs[0]).shape, node.attrs.channels_last)[2])


def _partial(graph: Graph, node: Node) -> bool:
    """Whether the node's windows count different numbers of input positions."""
    counts = window_counts(node.attrs, _spatial(graph, node))
    return bool(np.any(counts != math.prod(node.attrs.kernel_shape)))


def _uniform(attrs: AveragePoolAttrs, spatial: tuple[int, ...]) -> AveragePoolAttrs:
    """`attrs` counting pads, without ceil_mode, the end pads grown so that the
    same windows fit the padded input."""
    nd = len(spatial)
    pads = list(attrs.pads)
    for a, (size, k, s, d) in enumerate(zip(spatial, attrs.kernel_shape, attrs.strides, attrs.dilations)):
        out = pooled_size(size, k, s, d, pads[a], pads[a + nd], attrs.ceil_mode)
        pads[a + nd] = max(pads[a + nd], (out - 1) * s + (k - 1) * d + 1 - size - pads[a])
    return dataclasses.replace(attrs, pads=tuple(pads), ceil_mode=False, count_include_pad=True)


def _rewrite(graph: Graph, node: Node) -> None:
    attrs, y = node.attrs, graph.tensor(node.outputs[0])
    spatial = _spatial(graph, node)
    factor = math.prod(attrs.kernel_shape) / window_counts(attrs, spatial)  # [1, 1, *output]
    if attrs.channels_last:
        factor = np.moveaxis(factor, 1, -1)
    pooled = graph.unique_tensor_name(f"{node.name}.uniform")
    graph.add_tensor(Tensor(pooled, y.dtype, y.shape, layout=y.layout))
    scale = graph.add_constant(f"{node.name}.counts", factor.astype(to_numpy(y.dtype))).name
    graph.remove_node(node.name)
    graph.add_node(Node(graph.unique_node_name(f"{node.name}.uniform"), "AveragePool", list(node.inputs), [pooled],
                        _uniform(attrs, spatial)))
    graph.add_node(Node(node.name, "Mul", [pooled, scale], list(node.outputs), NoAttrs()))
