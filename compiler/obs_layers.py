"""Second-order compression applied to the graph's layers: the glue between the
compression passes and the matrix algorithms of compiler/obs.py.

- `METHODS` (obs_options.py, with the option checks): "magnitude" ranks weights by |w| and rounds to nearest (no data
  needed); "obs" measures the layers' inputs on calibration samples and
  compensates (SparseGPT, GPTQ, least-squares refit).
- `layer_statistics` runs the reference interpreter once (per memory batch,
  compiler/hessian.py) and returns each requested layer's input statistics. A
  weight constant read by several layers with the same layout gets the sum of
  their statistics under each of their names, so it is compressed once, the
  same for all.
- `obs_weights(graph, node)`: the float weights and bias that method obs
  rewrites; `integer_weights`: int8 weights behind a DequantizeLinear with zero
  points 0 and one scale per output channel (or per tensor), which `prune`
  prunes and rounds back onto their own grid in one sweep (their int32 bias is
  left as it is). prune-channels refits float consumers only; the quantize
  pass dequantizes QDQ weights itself when it re-quantizes them.
- `prune_layer`, `quantized_integers`: one layer through obs.prune / obs.quantize,
  with the bias as the weight of a constant input when the layer has a float
  bias of one value per output channel (Gemm with alpha = beta = 1).

The matrix work runs with BLAS on one thread (blas_threads.one_blas_thread): the
matrices are small, and a fixed summation order keeps compiles reproducible.

A layer that asks for obs without statistics (no calibration samples, or past
limits.MAX_OBS_FAN_IN) keeps the magnitude method; `fallback_warning` says so once.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from . import obs
from .blas_threads import one_blas_thread
from .hessian import Statistics, collect
from .ir import Graph, Node
from .layer_rows import from_matrices, matrices, supported
from .layer_select import weight_constant
# the option checks, defined in obs_options.py and imported from here by the passes
from .obs_options import (METHODS, check_damping, check_method, fallback_warning,  # noqa: F401
                          method_settings, parse_methods)


def layer_statistics(graph: Graph, layers: list[Node], samples) -> dict[str, Statistics]:
    """Input statistics of the `layers` that layer_rows supports and that are not
    hessian.too_large (see the module docstring)."""
    eligible = [n for n in layers if supported(graph, n)]
    if not eligible:
        return {}
    found = collect(graph, samples, eligible)
    by_constant: dict[tuple, list[str]] = {}
    for node in eligible:
        if node.name in found:
            by_constant.setdefault(_layout_key(graph, node), []).append(node.name)
    merged = {}
    for names in by_constant.values():
        total = found[names[0]]
        for name in names[1:]:
            total = total.merged(found[name])
        merged.update({name: total for name in names})
    return merged


def _layout_key(graph: Graph, node: Node) -> tuple:
    attrs = {"Conv": lambda: node.attrs.group, "Gemm": lambda: node.attrs.trans_b}.get(node.op, lambda: None)()
    return weight_constant(graph, node), node.op, attrs


def obs_weights(graph: Graph, node: Node) -> tuple[np.ndarray, np.ndarray | None] | None:
    """(float weights, float bias [Cout] or None) of a layer obs may rewrite, else None."""
    w = graph.tensor(node.inputs[1])
    if not w.is_constant or w.data.dtype.kind != "f" or not supported(graph, node):
        return None
    return w.data, _bias(graph, node, w)


def _bias(graph: Graph, node: Node, w) -> np.ndarray | None:
    name = node.inputs[2] if len(node.inputs) > 2 else ""
    if not name or node.op == "MatMul":
        return None
    b = graph.tensor(name)
    channels = matrices(node, w.data).shape[0] * matrices(node, w.data).shape[1]
    if not b.is_constant or b.data.dtype.kind != "f" or b.size != channels:
        return None
    if node.op == "Gemm" and (node.attrs.alpha != 1.0 or node.attrs.beta != 1.0):
        return None
    return b.data


def integer_weights(graph: Graph, node: Node) -> tuple[str, np.ndarray, np.ndarray] | None:
    """(the int8 constant, its data, one scale per output channel) of weights fed
    by a DequantizeLinear with zero points 0, scaled per tensor or along the
    output-channel axis; None otherwise."""
    dq = graph.producer(node.inputs[1])
    if dq is None or dq.op != "DequantizeLinear" or not supported(graph, node):
        return None
    q, scale = graph.constant(dq.inputs[0]), graph.constant(dq.inputs[1])
    zero = graph.constant(dq.inputs[2]) if len(dq.inputs) > 2 and dq.inputs[2] else None
    if q is None or scale is None or q.dtype != np.int8 or (zero is not None and np.any(zero != 0)):
        return None
    out_axis = 0 if node.op == "Conv" or (node.op == "Gemm" and node.attrs.trans_b) else 1
    if scale.size == 1:
        return dq.inputs[0], q, np.full(q.shape[out_axis], float(scale.reshape(-1)[0]))
    if dq.attrs.axis is not None and dq.attrs.axis % q.ndim == out_axis and scale.size == q.shape[out_axis]:
        return dq.inputs[0], q, scale.astype(np.float64).reshape(-1)
    return None


def obs_prunable(graph: Graph, node: Node) -> bool:
    return obs_weights(graph, node) is not None or integer_weights(graph, node) is not None


def layer_damping(damping: float, stats: Statistics) -> float:
    """The damping of one layer: `damping`, scaled by K / n when the calibration
    rows n are fewer than the layer's inputs K (then H is singular and its
    estimate noisy, so it is shrunk harder toward the identity)."""
    return damping * max(1.0, (stats.sums.shape[1] - 1) / max(1, stats.rows))


def group_counts(total: int, group_count: int) -> np.ndarray:
    """`total` split over the groups by cumulative rounding (sums to `total` exactly)."""
    edges = np.round(total * np.arange(group_count + 1) / group_count).astype(np.int64)
    return np.diff(edges)


def prune_layer(graph: Graph, node: Node, stats: Statistics, sparsity: obs.Sparsity, damping: float) -> None:
    """Prune `node`'s weights by SparseGPT and store them (and a float bias,
    compensated) back; zeros are exact; integer weights stay on their grid."""
    if obs_weights(graph, node) is None:
        _prune_integers(graph, node, stats, sparsity, damping)
        return
    w, bias = obs_weights(graph, node)
    m = _augmented(matrices(node, w), bias)
    with one_blas_thread():
        done = obs.prune(m, stats.hessian(bias is not None), sparsity, layer_damping(damping, stats),
                         frozen=int(bias is not None))
    _store(graph, node, done, bias is not None)


def _prune_integers(graph: Graph, node: Node, stats: Statistics, sparsity: obs.Sparsity, damping: float) -> None:
    name, q, scale = integer_weights(graph, node)
    m = matrices(node, q.astype(np.float64) * _per_row(node, scale, q.ndim))
    grid = scale.reshape(m.shape[:2]), obs.nonzero_snap(127)  # the symmetric int8 grid every target takes
    with one_blas_thread():
        done = obs.prune(m, stats.hessian(False), sparsity, layer_damping(damping, stats), grid=grid)
    ints = np.rint(done / grid[0][:, :, None]).astype(np.int8)
    graph.tensors[name] = dataclasses.replace(graph.tensor(name), data=from_matrices(node, ints, q.shape))


def _per_row(node: Node, scale: np.ndarray, ndim: int) -> np.ndarray:
    """Per-output-channel `scale` shaped to broadcast over the weights' IR layout."""
    axis = 0 if node.op == "Conv" or (node.op == "Gemm" and node.attrs.trans_b) else 1
    return scale.reshape([-1 if a == axis else 1 for a in range(ndim)])


def quantized_integers(node: Node, w: np.ndarray, stats: Statistics, scale: np.ndarray, snap: obs.Snap,
                       damping: float, with_bias: bool) -> np.ndarray:
    """GPTQ integers of float weights `w` (IR layout) at per-output-channel
    `scale`, in the IR layout; `with_bias`: the constant input joins the
    compensation (the bias it would take is not returned)."""
    m = matrices(node, w)
    g, r = m.shape[:2]
    m = _augmented(m, np.zeros(g * r) if with_bias else None)
    with one_blas_thread():
        ints = obs.quantize(m, stats.hessian(with_bias), np.asarray(scale, np.float64).reshape(g, r), snap,
                            layer_damping(damping, stats), frozen=int(with_bias))
    return from_matrices(node, ints, w.shape)


def _augmented(m: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    """W [G, R, K] with the bias (one value per output channel) as column K, when given."""
    if bias is None:
        return m
    return np.concatenate([m, np.asarray(bias, np.float64).reshape(m.shape[0], m.shape[1], 1)], axis=2)


def _store(graph: Graph, node: Node, done: np.ndarray, with_bias: bool) -> None:
    """Write W [G, R, K(+1)] back: the weight constant (every reader of a shared one
    takes it, as pruning a shared tensor means), and the bias column into the
    node's own bias (a bias constant other nodes read too is copied first)."""
    w = graph.tensor(node.inputs[1])
    weights = done[:, :, :-1] if with_bias else done
    graph.tensors[w.name] = dataclasses.replace(w, data=from_matrices(node, weights, w.shape).astype(w.data.dtype))
    if not with_bias:
        return
    b = graph.tensor(node.inputs[2])
    data = done[:, :, -1].reshape(b.shape).astype(b.data.dtype)
    if graph.uses(b.name) > 1:
        copy = graph.add_constant(f"{node.name}.bias", data)
        graph.set_inputs(node, [*node.inputs[:2], copy.name, *node.inputs[3:]])
    else:
        graph.tensors[b.name] = dataclasses.replace(b, data=data)


# -- structured pruning: the consumer of removed channels --------------------------------
def input_columns(node: Node, indices: np.ndarray) -> np.ndarray:
    """[len(indices), s]: the columns of `node`'s weight matrix (layer_rows, group 1)
    that read each of its input channels `indices`."""
    indices = np.asarray(indices, np.int64)
    if node.op == "Conv":
        taps = math.prod(node.attrs.kernel_shape)
        return indices[:, None] * taps + np.arange(taps)
    return indices[:, None]


def cheapest_inputs(graph: Graph, node: Node, stats: Statistics, columns: np.ndarray, count: int,
                    damping: float) -> np.ndarray:
    """Which `count` of the column groups (rows of `columns`, one per producer
    channel) `node` loses with the least output error (obs.remove_inputs), sorted."""
    w, bias = obs_weights(graph, node)
    with one_blas_thread():
        removed, _ = obs.remove_inputs(_augmented(matrices(node, w), bias)[0], stats.hessian(True)[0], columns, count,
                                       damping=layer_damping(damping, stats))
    return removed


def refit_without(graph: Graph, node: Node, stats: Statistics, columns: np.ndarray, damping: float) -> np.ndarray:
    """[R, K + 1]: `node`'s weights and bias (last column) refit by least squares to
    its original output on the calibration rows, without the weight `columns`
    (which end at 0). The layer must have a bias (obs_weights)."""
    w, bias = obs_weights(graph, node)
    with one_blas_thread():
        _, refit = obs.remove_inputs(_augmented(matrices(node, w), bias)[0], stats.hessian(True)[0],
                                     np.asarray(columns)[None], chosen=np.array([0]),
                                     damping=layer_damping(damping, stats))
    return refit


def store_refit(graph: Graph, node: Node, refit: np.ndarray, columns: np.ndarray) -> None:
    """After the weight `columns` were cut from `node` (structured pruning), set its
    remaining weights and its bias to `refit` (from refit_without)."""
    kept = np.setdiff1d(np.arange(refit.shape[1] - 1), columns)
    _store(graph, node, refit[None][:, :, np.append(kept, refit.shape[1] - 1)], True)
