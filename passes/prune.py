"""prune: magnitude pruning — set the smallest weights of the weighted layers to zero.

Rewrites the weights (input 1) of every weighted layer (Conv, Gemm, MatMul with
constant weights, `nnc.layer_select`): float constants, or the integer constants
a DequantizeLinear reads in QDQ models. Shapes and the graph structure never
change; pruned weights become exactly 0 (an integer weight becomes its zero
point, so it dequantizes to 0). Weights are ranked by |w| — the dequantized
value for integer weights, so layers with different scales compare fairly —
after Han et al., "Learning both Weights and Connections for Efficient Neural
Networks", NeurIPS 2015.

- Unstructured (`pattern=""`), `scope=layer`: each layer with sparsity s (the
  `sparsity` option, or its entry in `overrides`) gets exactly round(s · n) of
  its n weights zeroed, the smallest |w| first (weights already 0 are the
  smallest, so they count; a layer already sparser than s is left as it is).
- `scope=global`: one ranking over the weights of every layer without an
  override: round(sparsity · total) of them are zeroed, so the layers with the
  smallest weights lose most. Layers named in `overrides` are pruned alone.
- `pattern="N:M"` (N:M structured sparsity; 2:4 is what NVIDIA Ampere sparse
  tensor cores run, Mishra et al., "Accelerating Sparse Deep Neural Networks",
  arXiv:2104.08378, 2021): each output channel's weights, flattened in the IR
  weight layout (Conv [Cout, Cin/g, *kernel] → row c is w[c]; Gemm with trans_b
  and its B [N, K] → row n is B[n]; Gemm without trans_b and MatMul, B [K, N] →
  row n is B[:, n]), are cut into groups of M consecutive weights and only the N
  largest |w| of each group are kept. A last, shorter group of r weights keeps
  min(N, r) — as if padded with zeros to M. The pattern fixes the sparsity at
  1 − N/M: `sparsity` must then be left at its default or equal 1 − N/M, and
  override values must be 0 (the layer stays dense) or 1 − N/M. Only
  `scope=layer` applies.
- Ties in |w| are broken by position (stable sort, the earlier weight is pruned
  first), so the result is deterministic.
- A weight constant shared by several layers is pruned once, with the setting of
  the first of them in schedule order.

Requires: a valid graph (normally after the CANONICAL pipeline, before quantize).

Guarantees: the same graph with some weights set to zero; every count above is
exact. Invalid options raise OptionError when the pass is built.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from nnc.errors import OptionError
from nnc.ir import Graph, Node
from nnc.layer_select import parse_overrides, settings, weight_constant, weighted_layers
from nnc.passmanager import Pass, register_pass

SCOPES = ("layer", "global")


@register_pass
@dataclass(frozen=True)
class Prune(Pass):
    name = "prune"
    sparsity: float = 0.5
    scope: str = "layer"
    pattern: str = ""
    overrides: str = ""

    def __post_init__(self):
        if not 0.0 <= self.sparsity < 1.0:
            raise OptionError(f"pass 'prune': sparsity must be in [0, 1), got {self.sparsity}")
        if self.scope not in SCOPES:
            raise OptionError(f"pass 'prune': scope must be one of {', '.join(SCOPES)}, got {self.scope!r}")
        overrides = self._overrides()
        if self.pattern:
            self._check_pattern(overrides.values())

    def _check_pattern(self, override_values) -> None:
        n, m = parse_pattern(self.pattern)
        implied = 1 - n / m
        if self.scope != "layer":
            raise OptionError(f"pass 'prune': pattern {self.pattern} prunes within groups; use scope=layer")
        if self.sparsity != Prune.sparsity and not math.isclose(self.sparsity, implied):
            raise OptionError(f"pass 'prune': pattern {self.pattern} prunes {implied:g} of the weights, "
                              f"sparsity={self.sparsity:g} contradicts it")
        if any(v != 0 and not math.isclose(v, implied) for v in override_values):
            raise OptionError(f"pass 'prune': with pattern {self.pattern} an override must be 0 or {implied:g}")

    def _overrides(self) -> dict[str, float]:
        return parse_overrides(self.overrides, "pass 'prune': overrides", _fraction)

    def run(self, graph: Graph) -> Graph:
        overrides = self._overrides()
        per_layer = settings(graph, overrides, self.sparsity, "pass 'prune': overrides")
        targets = [t for t in _targets(graph) if per_layer[t.layer.name] > 0 or self.scope == "global"]
        if self.pattern:
            n, m = parse_pattern(self.pattern)
            for weights in targets:
                weights.store(graph, weights.from_rows(_pattern_mask(weights.rows(), n, m)))
            return graph
        pooled = [t for t in targets if self.scope == "global" and not _overridden(t.layer, overrides)]
        for weights in targets:
            if weights not in pooled:
                weights.store(graph, _smallest(weights.magnitude, per_layer[weights.layer.name]))
        _prune_pooled(graph, pooled, self.sparsity)
        return graph


def _fraction(text: str) -> float:
    value = float(text)  # ValueError names the text
    if not 0.0 <= value < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {value}")
    return value


def parse_pattern(text: str) -> tuple[int, int]:
    """(N, M) of an "N:M" pattern with 1 <= N < M; OptionError otherwise."""
    n, sep, m = text.partition(":")
    if sep and n.strip().isdigit() and m.strip().isdigit() and 1 <= int(n) < int(m):
        return int(n), int(m)
    raise OptionError(f"pass 'prune': pattern must be \"N:M\" with 1 <= N < M (e.g. \"2:4\"), got {text!r}")


def _overridden(layer: Node, overrides: dict) -> bool:
    return layer.name in overrides or layer.op in overrides


# -- the weights of one layer ----------------------------------------------------------
@dataclass(eq=False)
class _Weights:
    """The constant behind `layer`'s weights: its magnitudes |w| (dequantized), the
    axis of its output channels (None: a single row) and the stored value of 0."""

    layer: Node
    constant: str
    magnitude: np.ndarray
    out_axis: int | None
    zero: np.ndarray

    def rows(self) -> np.ndarray:
        """Magnitudes as [output channels, weights per channel] (IR layout order)."""
        return self._moved(self.magnitude).reshape(self._moved_shape()[0], -1)

    def from_rows(self, rows: np.ndarray) -> np.ndarray:
        """The inverse of rows() for a mask of that shape."""
        moved = rows.reshape(self._moved_shape())
        return moved.reshape(self.magnitude.shape) if self.out_axis is None else np.moveaxis(moved, 0, self.out_axis)

    def store(self, graph: Graph, mask: np.ndarray) -> None:
        """Set the weights to zero where `mask` (any shape of as many elements) is True."""
        tensor = graph.tensor(self.constant)
        zero = np.broadcast_to(self.zero, tensor.shape)
        data = np.where(mask.reshape(tensor.shape), zero, tensor.data).astype(tensor.data.dtype)
        graph.tensors[self.constant] = dataclasses.replace(tensor, data=data)

    def _moved(self, a: np.ndarray) -> np.ndarray:
        return a.reshape(1, -1) if self.out_axis is None else np.moveaxis(a, self.out_axis, 0)

    def _moved_shape(self) -> tuple[int, ...]:
        return self._moved(self.magnitude).shape


def _targets(graph: Graph) -> list[_Weights]:
    """One _Weights per distinct weight constant, from the first layer reading it."""
    found: dict[str, _Weights] = {}
    for layer in weighted_layers(graph):
        name = weight_constant(graph, layer)
        if name not in found:
            found[name] = _weights(graph, layer, name)
    return list(found.values())


def _weights(graph: Graph, layer: Node, name: str) -> _Weights:
    data = graph.tensor(name).data
    magnitude, zero = np.abs(data.astype(np.float64)), np.zeros(1, data.dtype)
    if name != layer.inputs[1]:  # integer weights behind a DequantizeLinear
        dq = graph.producer(layer.inputs[1])
        scale = _along(graph.constant(dq.inputs[1]), dq.attrs.axis, data.ndim)
        zp = graph.constant(dq.inputs[2]) if len(dq.inputs) > 2 and dq.inputs[2] else np.zeros(1, data.dtype)
        zero = _along(zp, dq.attrs.axis, data.ndim).astype(data.dtype)
        magnitude = np.abs(data.astype(np.float64) - zero) * np.abs(scale.astype(np.float64))
    return _Weights(layer, name, magnitude, _out_axis(layer, data.ndim), zero)


def _along(values: np.ndarray, axis: int | None, ndim: int) -> np.ndarray:
    """Per-tensor or per-`axis` parameters shaped to broadcast over a rank-ndim tensor."""
    values = np.asarray(values)
    if axis is None:
        return values.reshape(-1)[:1].reshape((1,) * ndim)
    return values.reshape([-1 if a == axis else 1 for a in range(ndim)])


def _out_axis(layer: Node, ndim: int) -> int | None:
    """The output-channel axis of `layer`'s weights of rank ndim."""
    if layer.op == "Conv":
        return 0
    if layer.op == "Gemm":
        return 0 if layer.attrs.trans_b else 1
    return ndim - 1 if ndim >= 2 else None  # MatMul: W [..., K, N]


# -- choosing what to prune -------------------------------------------------------------
def _smallest(magnitude: np.ndarray, sparsity: float) -> np.ndarray:
    """Flat mask of the round(sparsity · size) smallest magnitudes (stable order)."""
    flat = magnitude.reshape(-1)
    mask = np.zeros(flat.size, bool)
    mask[np.argsort(flat, kind="stable")[:round(sparsity * flat.size)]] = True
    return mask


def _prune_pooled(graph: Graph, pooled: list[_Weights], sparsity: float) -> None:
    """scope=global: the smallest round(sparsity · total) over all `pooled` weights."""
    if not pooled:
        return
    mask = _smallest(np.concatenate([w.magnitude.reshape(-1) for w in pooled]), sparsity)
    start = 0
    for weights in pooled:
        size = weights.magnitude.size
        weights.store(graph, mask[start:start + size])
        start += size


def _pattern_mask(rows: np.ndarray, n: int, m: int) -> np.ndarray:
    """Mask [C, K] pruning all but the n largest of every m consecutive entries of
    each row; the last, shorter group is padded with entries below every magnitude
    (counted as zeros), so it keeps min(n, its length)."""
    channels, length = rows.shape
    groups = -(-length // m)
    padded = np.full((channels, groups * m), -1.0)
    padded[:, :length] = rows
    order = np.argsort(padded.reshape(channels, groups, m), axis=-1, kind="stable")
    mask = np.zeros((channels, groups, m), bool)
    np.put_along_axis(mask, order[..., :m - n], True, axis=-1)
    return mask.reshape(channels, groups * m)[:, :length]
