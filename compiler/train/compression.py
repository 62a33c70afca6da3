"""What the training twin compresses, layer by layer: the options (the compile
command's compression options) and, per weighted layer, its bit width or
codebook and its pruning rule; per recurrent layer, how many hidden units
channel pruning removes.

The per-layer decisions are nnc's own, taken on the float graph exactly as a
one-shot compile takes them (nnc.layer_select for bits, first/last layers and
overrides by name or "#i" id; the prune pass's layer rules, such as keeping
3×3 kernels over one input channel dense, for how many weights of each layer go),
so a fine-tuned model differs from a one-shot one only in its weight values.
"""

from __future__ import annotations

import math

import numpy as np

from ..records import record
from nnc.compression_options import check_compression
from nnc.errors import OptionError
from nnc.ir import Graph
from nnc.layer_select import RECURRENT_OPS, parse_overrides, settings, weight_constant, weighted_layers
from nnc.passes.prune import Prune, parse_pattern
from nnc.passes.prune_channels import PruneChannels, follows_input, tied_layers
from nnc.quantizer.layer_weights import output_axis

from .sparsity import MaskRule


@record
class Compression:
    """The compile options that change weights: `weight_bits` 2..8 (8: int8),
    `first_last_bits` for the first and last weighted layer, `codebook` (2^bits
    shared values per tensor instead of a uniform grid), `layer_bits`
    ("conv1:4,#3:6"), `sparsity` in [0, 1) by magnitude or `sparsity_pattern`
    "N:M", `layer_sparsity` overrides, `prune_channels` (fraction of output
    channels removed, gradually during training; which layers can lose channels
    and how many is what nnc's prune-channels pass decides)."""

    weight_bits: int = 8
    first_last_bits: int | None = None
    codebook: bool = False
    layer_bits: str = ""
    sparsity: float = 0.0
    sparsity_pattern: str | None = None
    layer_sparsity: str = ""
    prune_channels: float = 0.0

    def __post_init__(self):
        check_compression(self.weight_bits, self.first_last_bits, self.sparsity, self.prune_channels)
        if self.sparsity_pattern:
            n, m = parse_pattern(self.sparsity_pattern, "sparsity-pattern")
            if self.sparsity and not math.isclose(self.sparsity, 1 - n / m):
                raise OptionError(f"sparsity-pattern {self.sparsity_pattern} prunes {1 - n / m:g} of the weights, "
                                  f"sparsity {self.sparsity:g} contradicts it")

    @property
    def prunes(self) -> bool:
        return bool(self.sparsity or self.sparsity_pattern or self.layer_sparsity)


@record
class LayerPlan:
    """One weighted layer: quantized to `bits` (a codebook of 2^bits entries when
    `codebook`), pruned as `rule` says; `axis` is its output-channel axis."""

    bits: int
    codebook: bool
    rule: MaskRule
    axis: int
    tied: tuple[str, ...] = ()  # the layers that lose the same channels (prune-channels' groups), itself included


@record
class UnitPlan:
    """One recurrent layer: `count` hidden units go; `tied` the recurrent layers
    whose units an Add, Sub or Mul ties to its own (prune-channels' group, a
    residual LSTM stack: the same units go from all, ranked by their summed
    norms), itself included."""

    count: int
    tied: tuple[str, ...]


def plans(graph: Graph, compression: Compression) -> tuple[dict[str, LayerPlan], dict[str, UnitPlan]]:
    """({layer name: LayerPlan} of every weighted layer of the float `graph`,
    {recurrent layer name: UnitPlan} of the recurrent layers that lose hidden
    units), nnc's prune-channels pass run once."""
    overrides = parse_overrides(compression.layer_bits, "layer-bits", _bits)
    bits = settings(graph, overrides, compression.weight_bits, "layer-bits", compression.first_last_bits)
    pruned = PruneChannels(ratio=compression.prune_channels).run(graph.copy()) if compression.prune_channels \
        else graph
    channels = {node.name: 0 if follows_input(graph, node) else  # a depthwise layer loses its input's channels
                _channels(graph, node) - _channels(pruned, pruned.node(node.name)) for node in weighted_layers(graph)}
    targets = _sparsity_targets(pruned, compression)
    pattern = parse_pattern(compression.sparsity_pattern) if compression.sparsity_pattern else None
    layers = {}
    for node in weighted_layers(graph):
        target = targets.get(node.name, 0.0)
        rule = MaskRule(target, pattern if target > 0 else None, output_axis(node), channels[node.name])
        layers[node.name] = LayerPlan(bits[node.name], compression.codebook, rule, output_axis(node),
                                      _tied(graph, node) if channels[node.name] else ())
    units = {}
    for node in graph.nodes():
        count = node.attrs.hidden_size - pruned.node(node.name).attrs.hidden_size if node.op in RECURRENT_OPS else 0
        tied = _unit_group(graph, node) if count else None
        if tied:
            units[node.name] = UnitPlan(count, tied)
    return layers, units


def _unit_group(graph: Graph, node) -> tuple[str, ...] | None:
    """The recurrent layers whose hidden units go with `node`'s (itself
    included), or None when an Add, Sub or Mul ties them to a Conv's or a
    Gemm's channels (those stay in training)."""
    group = tied_layers(graph, node)
    if isinstance(group, str) or any(member.op not in RECURRENT_OPS for member in group):
        return None
    return tuple(member.name for member in group)


def _tied(graph: Graph, node) -> tuple[str, ...]:
    """The weighted layers prune-channels removes the same channels from as `node`."""
    group = tied_layers(graph, node)
    names = () if isinstance(group, str) else tuple(n.name for n in group)
    return names if len(names) > 1 and all(weight_constant(graph, graph.node(n)) for n in names) else ()


def _channels(graph: Graph, node) -> int:
    return graph.tensor(node.inputs[1]).shape[output_axis(node)]


def _bits(text: str) -> int:
    value = int(text)
    if not 2 <= value <= 8:
        raise ValueError(f"bits must be in 2..8, got {value}")
    return value


def _sparsity_targets(graph: Graph, compression: Compression) -> dict[str, float]:
    """{layer: final sparsity}: the share of each layer's weights that nnc's prune
    pass (magnitude) zeroes with these options, weights already zero included
    (on the graph after channel pruning: the share of the weights left)."""
    if not compression.prunes:
        return {}
    if compression.sparsity_pattern:
        pruned = Prune(pattern=compression.sparsity_pattern, overrides=compression.layer_sparsity)
    else:
        pruned = Prune(sparsity=compression.sparsity, overrides=compression.layer_sparsity)
    after = pruned.run(graph.copy())
    targets = {}
    for node in weighted_layers(after):
        w = after.constant(weight_constant(after, node))
        targets[node.name] = float(np.count_nonzero(w == 0)) / w.size
    return targets
