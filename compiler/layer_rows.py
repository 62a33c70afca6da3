"""A weighted layer as a batch of matrix products: y_g = x_g · W_gᵀ per group g.

Second-order compression (compiler/obs.py) works on matrices: each layer's
weights as W [G, R, K] (G groups, R output channels per group, K inputs per
output) and its input as rows X [G, n, K], so that the layer computes, before
its bias, X_g @ W_gᵀ. The column order of W and X agree:

- Conv, weights [Cout, Cin/G, *kernel]: W_g = w[g·R:(g+1)·R] flattened, columns
  ordered (input channel, *kernel offset); X_g are the im2col rows of the input's
  channels of group g (the zero padding included, as the Conv reads it), one row
  per output position. A depthwise Conv has G = Cin and K = the kernel's size.
- Gemm, B [N, K] with trans_b or [K, N] without: G = 1, W = B or Bᵀ; X = x [M, K]
  (xᵀ with trans_a).
- MatMul with 2-D constant weights [K, N]: W = Wᵀ; X = x reshaped to [-1, K].

`matrices` and `from_matrices` convert between the IR layout and W exactly (a
reshape or transpose, no arithmetic); `input_rows` builds X from one input value.
"""

from __future__ import annotations

import math

import numpy as np

from .ir import Graph, Node
from .ops.conv import channels_first, pad_spatial, window_view


def supported(graph: Graph, node: Node) -> bool:
    """True for the layers this module maps: Conv, Gemm, and MatMul with 2-D weights."""
    w = graph.tensor(node.inputs[1])
    return node.op in ("Conv", "Gemm") or (node.op == "MatMul" and len(w.shape) == 2)


def groups(node: Node) -> int:
    return node.attrs.group if node.op == "Conv" else 1


def matrices(node: Node, w: np.ndarray) -> np.ndarray:
    """The weights w (IR layout of `node`) as W [G, R, K], float64."""
    w = np.asarray(w, np.float64)
    if node.op == "Conv":
        g = node.attrs.group
        return w.reshape(g, w.shape[0] // g, -1)
    if node.op == "Gemm" and node.attrs.trans_b:
        return w[None]
    return w.T[None]


def from_matrices(node: Node, m: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The inverse of `matrices`: W [G, R, K] back to the IR layout `shape`."""
    if node.op == "Conv" or (node.op == "Gemm" and node.attrs.trans_b):
        return m.reshape(shape)
    return m[0].T.reshape(shape)


def fan_in(graph: Graph, node: Node) -> int:
    """K: the inputs each output channel reads."""
    w = graph.tensor(node.inputs[1]).shape
    if node.op == "Conv":
        return math.prod(w[1:])
    if node.op == "Gemm":
        return w[1] if node.attrs.trans_b else w[0]
    return w[-2]


def input_rows(node: Node, x: np.ndarray) -> np.ndarray:
    """X [G, n, K] of one value x of the layer's data input (see the module docstring)."""
    x = np.asarray(x, np.float64)
    if node.op == "Conv":
        return _im2col(node, x)
    if node.op == "Gemm":
        return (x.T if node.attrs.trans_a else x)[None]
    return x.reshape(1, -1, x.shape[-1])


def _im2col(node: Node, x: np.ndarray) -> np.ndarray:
    attrs = node.attrs
    nd, g = len(attrs.kernel_shape), attrs.group
    padded = pad_spatial(channels_first(x, attrs.channels_last), attrs.pads)
    spatial = padded.shape[2:]
    out = [(i - (k - 1) * d - 1) // s + 1
           for i, k, s, d in zip(spatial, attrs.kernel_shape, attrs.strides, attrs.dilations)]
    cols = window_view(padded, attrs.kernel_shape, attrs.strides, attrs.dilations, out)
    n, cin = cols.shape[:2]
    cols = cols.reshape(n, g, cin // g, *cols.shape[2:])  # [N, G, Cg, *out, *kernel]
    order = (1, 0, *range(3, 3 + nd), 2, *range(3 + nd, 3 + 2 * nd))  # [G, N, *out, Cg, *kernel]
    return cols.transpose(order).reshape(g, n * math.prod(out), -1)
