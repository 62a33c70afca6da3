"""prune: unstructured and N:M pruning — set weights of the weighted layers to zero.

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
- Layer rules (measured in benchmarks/README.md, "Accuracy"): a Conv whose
  output channels read at most `small_fan_in` weights (9: a 3×3 depthwise
  kernel, or a 3×3 kernel on one input channel) is, by `small_layers`, kept
  dense ("dense", the default: ranking its few weights with the layer empties
  whole kernels), pruned per kernel ("kernel": round(s · fan-in) zeros in every
  output channel), or treated like any layer ("layer"). `first_last` (when
  given) is the sparsity of the first and last weighted layer. A layer named
  in `overrides` (or set by `first_last`) is never made dense by the rule and
  is pruned alone under scope=global.
- `method=obs` (with `calib`, the calibration samples; per layer
  `method_overrides="conv1:magnitude"`): the counts above stay exactly the same
  (scope=global still allots them by magnitude), but which weights go and what
  the others become is SparseGPT's (compiler/obs.py): the weights with the least
  output error w² / [H⁻¹]_jj go, and the remaining weights and the bias absorb
  the error of each pruned one (H from the layer's inputs on the samples,
  `damping` · mean(diag H) added to its diagonal). Grouped Conv spreads a
  layer's count evenly over its groups. Integer (QDQ) weights with zero points
  0 are pruned and rounded back onto their own per-channel grid in the same
  sweep (their int32 bias is kept). Without `calib` obs falls back to
  magnitude, with a warning.

Requires: a valid graph (normally after the CANONICAL pipeline, before quantize).

Guarantees: the same graph with some weights set to zero; every count above is
exact. Invalid options raise OptionError when the pass is built.
"""

from __future__ import annotations

import dataclasses
import math
import re
import warnings
from dataclasses import dataclass

import numpy as np

from nnc import obs
from nnc.errors import NncWarning, OptionError
from nnc.ir import Graph, Node
from nnc.layer_select import (by_name, named_settings, parse_overrides, warn_left_out, weight_constant,
                              weighted_layers)
from nnc.obs_layers import (check_damping, fallback_warning, group_counts, layer_statistics, method_settings,
                            obs_prunable, parse_methods, prune_layer)
from nnc.layer_rows import fan_in
from nnc.layer_rows import groups as per_layer_groups
from nnc.hessian import too_large
from nnc.limits import MAX_OBS_FAN_IN, MAX_PATTERN_BLOCK
from nnc.passmanager import Pass, register_pass
from nnc.records import record
from nnc.verification import load_samples

SCOPES = ("layer", "global")
SMALL_LAYERS = ("kernel", "dense", "layer")


@register_pass
@record
class Prune(Pass):
    name = "prune"
    sparsity: float = 0.5
    scope: str = "layer"
    pattern: str = ""
    overrides: str = ""
    method: str = "magnitude"
    method_overrides: str = ""
    calib: str = ""
    damping: float = obs.DAMPING
    first_last: float | None = None
    small_fan_in: int = 9
    small_layers: str = "dense"

    def __post_init__(self):
        if not 0.0 <= self.sparsity < 1.0:
            raise OptionError(f"pass 'prune': sparsity must be in [0, 1), got {self.sparsity}")
        if self.scope not in SCOPES:
            raise OptionError(f"pass 'prune': scope must be one of {', '.join(SCOPES)}, got {self.scope!r}")
        overrides = self._overrides()
        if self.pattern:
            self._check_pattern([*overrides.values(), *([] if self.first_last is None else [self.first_last])])
        check_damping("pass 'prune'", self.damping)
        if self.first_last is not None:
            _fraction_option("first_last", self.first_last)
        if self.small_layers not in SMALL_LAYERS:
            raise OptionError(f"pass 'prune': small_layers must be one of {', '.join(SMALL_LAYERS)}, "
                              f"got {self.small_layers!r}")
        parse_methods("pass 'prune'", self.method, self.method_overrides)

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
        return parse_overrides(self.overrides, "pass 'prune': overrides (--layer-sparsity)", _fraction)

    def run(self, graph: Graph) -> Graph:
        overrides = self._overrides()
        named = by_name(graph, overrides, "pass 'prune': overrides (--layer-sparsity)")
        per_layer = named_settings(graph, named, self.sparsity, "pass 'prune': overrides (--layer-sparsity)",
                                   self.first_last)
        layers = weighted_layers(graph)
        alone = {n.name for n in layers if _overridden(n, named)}  # pruned at their own setting
        if self.first_last is not None and layers:
            alone |= {layers[0].name, layers[-1].name}
        small = {n.name for n in layers if n.op == "Conv" and fan_in(graph, n) <= self.small_fan_in}
        if self.small_layers == "dense":
            per_layer.update({name: 0.0 for name in small - alone})
        kernel = small if self.small_layers == "kernel" and not self.pattern else set()
        pool = {n.name for n in layers if self.scope == "global"} - alone - (small if self.small_layers != "layer"
                                                                              else set())
        targets = [t for t in _targets(graph) if per_layer[t.layer.name] > 0 or t.layer.name in pool]
        asked = self._asked()
        if asked and (targets or not layers):
            warn_left_out(graph, f"pass 'prune' ({asked})", "dense")
        elif asked and not any(per_layer[n.name] > 0 for n in layers) and small - alone:
            warnings.warn(f"pass 'prune' ({asked}) prunes no layer: every layer it would prune is small (at most "
                          f"{self.small_fan_in} weights per output channel), and small layers stay dense "
                          "(option small_layers=layer or kernel prunes them)", NncWarning, stacklevel=2)
        stats = self._statistics(graph, targets)
        masks = _pooled_masks([t for t in targets if t.layer.name in pool], self.sparsity)
        for weights in targets:
            target, mask = self._target(weights, per_layer[weights.layer.name], weights.layer.name in kernel, masks)
            if weights.layer.name in stats:
                prune_layer(graph, weights.layer, stats[weights.layer.name], target, self.damping)
            else:
                weights.store(graph, mask)
        return graph

    def _asked(self) -> str:
        """The sparsity asked for, in words ("" for none)."""
        wanted = [f"{self.pattern} sparsity" if self.pattern else
                  f"sparsity {self.sparsity:g}" if self.sparsity else ""]
        if self.first_last:
            wanted.append(f"sparsity {self.first_last:g} in the first and last layers")
        if self.overrides:
            wanted.append("per-layer sparsity")
        return ", ".join(filter(None, wanted))

    def _target(self, weights: "_Weights", sparsity: float, per_kernel: bool, masks: dict):
        """(what obs prunes, the magnitude mask) of one layer."""
        if self.pattern:
            n, m = parse_pattern(self.pattern)
            return obs.Sparsity(pattern=(n, m)), weights.from_rows(pattern_mask(weights.rows(), n, m))
        if per_kernel:
            return obs.Sparsity(fraction=sparsity, per_row=True), weights.from_rows(row_mask(weights.rows(), sparsity))
        mask = masks[weights.constant] if weights.constant in masks else smallest_mask(weights.magnitude, sparsity)
        return obs.Sparsity(group_counts(int(mask.sum()), per_layer_groups(weights.layer))), mask

    def _statistics(self, graph: Graph, targets: list["_Weights"]) -> dict:
        """Input statistics of the target layers whose method is obs."""
        methods = method_settings(graph, "pass 'prune'", self.method, self.method_overrides)
        wanted = [t.layer for t in targets if methods[t.layer.name] == "obs" and obs_prunable(graph, t.layer)]
        if not wanted:
            return {}
        if not self.calib:
            fallback_warning("pass 'prune'", [n.name for n in wanted], "needs calibration samples (calib)")
            return {}
        stats = layer_statistics(graph, wanted, load_samples(self.calib, graph))
        fallback_warning("pass 'prune'", [n.name for n in wanted if too_large(graph, n)],
                         f"is limited to fan-in {MAX_OBS_FAN_IN}")
        return stats


def _fraction_option(option: str, value: float) -> None:
    if not 0.0 <= value < 1.0:
        raise OptionError(f"pass 'prune': {option} must be in [0, 1), got {value}")


def _fraction(text: str) -> float:
    value = float(text)  # ValueError names the text
    if not 0.0 <= value < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {value}")
    return value


def parse_pattern(text: str, what: str = "pass 'prune': pattern") -> tuple[int, int]:
    """(N, M) of an "N:M" pattern with 1 <= N < M <= MAX_PATTERN_BLOCK; OptionError
    naming `what` otherwise."""
    match = re.fullmatch(r"\s*([0-9]{1,9})\s*:\s*([0-9]{1,9})\s*", text, re.ASCII)
    if match and 1 <= int(match[1]) < int(match[2]) <= MAX_PATTERN_BLOCK:
        return int(match[1]), int(match[2])
    raise OptionError(f"{what} must be \"N:M\" with 1 <= N < M <= {MAX_PATTERN_BLOCK} (e.g. \"2:4\"), "
                      f"got {text!r}")


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
def smallest_mask(magnitude: np.ndarray, sparsity: float) -> np.ndarray:
    """Flat mask of the round(sparsity · size) smallest magnitudes (stable order)."""
    flat = magnitude.reshape(-1)
    mask = np.zeros(flat.size, bool)
    mask[np.argsort(flat, kind="stable")[:round(sparsity * flat.size)]] = True
    return mask


def _pooled_masks(pooled: list[_Weights], sparsity: float) -> dict[str, np.ndarray]:
    """scope=global: {constant: mask} of the smallest round(sparsity · total) over
    all `pooled` weights."""
    if not pooled:
        return {}
    mask = smallest_mask(np.concatenate([w.magnitude.reshape(-1) for w in pooled]), sparsity)
    bounds = np.cumsum([0] + [w.magnitude.size for w in pooled])
    return {w.constant: mask[start:stop] for w, start, stop in zip(pooled, bounds[:-1], bounds[1:])}


def row_mask(rows: np.ndarray, sparsity: float) -> np.ndarray:
    """Mask [C, K] of the round(sparsity · K) smallest entries of every row (stable order)."""
    order = np.argsort(rows, axis=1, kind="stable")
    mask = np.zeros(rows.shape, bool)
    np.put_along_axis(mask, order, np.arange(rows.shape[1]) < round(sparsity * rows.shape[1]), axis=1)
    return mask


def pattern_mask(rows: np.ndarray, n: int, m: int) -> np.ndarray:
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
