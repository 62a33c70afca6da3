"""x · k + c with per-channel constants → one BatchNormalization, before
calibration (docs/numerics.md §18).

A Mul by a constant that varies along the channel axis only, read by nothing
but an Add of such a constant (or of a scalar) — InstanceNorm's and GroupNorm's
scale and shift (passes/instance_norm.py), an affine layer after a norm, a
BatchNormalization a converter wrote as Mul and Add — would be two QAffines,
each rounding to its own grid. `rewrite_channel_affines` replaces the pair by
BatchNormalization(x, k, c, mean 0, var 1, epsilon 0), y = x · k + c exactly,
which the quantizer makes one QAffine. The channel axis is axis 1, or the last
axis with `channels_last` (the layout pass has run); a pair along another axis
stays as it is.
"""

from __future__ import annotations

import numpy as np

from ..dtypes import to_numpy
from ..ir import Graph, Node
from ..ops import get_op


def rewrite_channel_affines(graph: Graph) -> int:
    """Fuse every Mul → Add pair described in the module docstring; returns how many."""
    return sum(_fuse(graph, node) for node in [n for n in graph.nodes() if n.op == "Mul"])


def _constant_side(graph: Graph, node: Node) -> tuple[str, np.ndarray] | None:
    """(the activation input, the constant's data) of a binary node with one constant input."""
    a, b = node.inputs
    for x, k in ((a, b), (b, a)):
        data = graph.constant(k)
        if data is not None and graph.constant(x) is None:
            return x, np.asarray(data, np.float64)
    return None


def _channel_vector(data: np.ndarray, shape: tuple[int, ...], sides=(False, True)) -> tuple[np.ndarray, bool] | None:
    """(the per-channel values [C], channels_last) when `data` broadcasts to
    `shape` varying along axis 1 (channels_last False) or the last axis only,
    trying `sides` in order; else None."""
    if data.ndim > len(shape) or len(shape) < 2:
        return None
    full = np.broadcast_to(data, shape)
    for last in sides:
        axis = len(shape) - 1 if last else 1
        moved = np.moveaxis(full, axis, -1).reshape(-1, shape[axis])
        if np.all(moved == moved[:1]):
            return moved[0].copy(), last
    return None


def _fuse(graph: Graph, mul: Node) -> bool:
    scaled = mul.outputs[0]
    readers = graph.consumers(scaled)
    if len(readers) != 1 or readers[0].op != "Add" or scaled in graph.outputs:
        return False
    add = readers[0]
    x_side, add_side = _constant_side(graph, mul), _constant_side(graph, add)
    if x_side is None or add_side is None or add_side[0] != scaled:
        return False
    x, shape = x_side[0], graph.tensor(x_side[0]).shape
    if graph.tensor(add.outputs[0]).shape != shape or graph.tensor(x).dtype not in ("f32", "f64"):
        return False
    scale = _channel_vector(x_side[1], shape)
    shift = None if scale is None else _channel_vector(add_side[1], shape, (scale[1],))
    if shift is None:
        return False
    dtype, channels = graph.tensor(x).dtype, len(scale[0])
    params = [graph.add_constant(f"{add.name}.{role}", data.astype(to_numpy(dtype))).name for role, data in
              (("scale", scale[0]), ("bias", shift[0]), ("mean", np.zeros(channels)), ("var", np.ones(channels)))]
    graph.remove_node(mul.name)
    graph.remove_node(add.name)
    del graph.tensors[scaled]
    graph.add_node(Node(add.name, "BatchNormalization", [x, *params], list(add.outputs),
                        get_op("BatchNormalization").Attrs(epsilon=0.0, channels_last=scale[1])))
    return True
