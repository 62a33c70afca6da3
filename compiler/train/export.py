"""Write a trained twin back into nnc's IR.

`export(twin)` is the twin's float graph in QDQ form, as nnc reads a quantized
ONNX model: QuantizeLinear → DequantizeLinear at every point of nnc's
quantization plan, at the twin's activation parameters (affine_from_range of
each tracked range, FIXED_OUTPUT for Softmax/Sigmoid/Tanh, an "input" point at
its op's input's); each weighted layer reads its trained int8 integers (b-bit
grid or codebook values, pruned weights exactly 0) at the trained per-channel
scales, and its bias as int32 at s_x · s_w[c] (layer_weights.store_layer, the
quantize pass's own rule). A layer's scales are raised where its bias would
not fit int32 (weights.bias_floor), as one-shot quantization does. A
recurrent node's W, R and B are its trained float values, which the quantize
pass puts on the int8 per-row grid the twin trained on; its cell range is the
twin's tracked one. The hidden units its mask removes leave the graph:
silenced as the twin trained them (W, R and B rows, R columns), every
layer's before any is cut, then nnc's prune-channels plan for exactly those
units. Output channels a channel mask removed whole (zero weights and bias)
leave the graph, with the consumers' input channels they fed (nnc's
prune-channels plan).

`nnc compile` keeps such a graph's 8-bit-typed weights and its parameters as
they are (a QDQ model's), so the compiled targets compute `integer_graph(twin)`,
the graph the twin's "exact" mode executes.
"""

from __future__ import annotations

import numpy as np
import torch

from nnc.errors import UnsupportedError
from nnc.ir import Graph, Tensor
from nnc.layer_select import recurrent_parameters, weighted_layers
from nnc.ops.recurrent import GATES
from nnc.passes.prune_channels import Plan as ChannelPlan
from nnc.passes.prune_channels import plan as channel_plan
from nnc.passmanager import PassManager, parse_pipeline
from nnc.pipelines import CANONICAL
from nnc.quantizer import plan
from nnc.quantizer.annotate import insert_points
from nnc.quantizer.layer_weights import store_layer
from nnc.quantizer.params import qdq_affine
from nnc.quantizer.weights import bias_floor


def export(twin) -> Graph:
    """The twin's trained model as a QDQ graph (see the module docstring)."""
    if not twin.calibrated:
        raise UnsupportedError("export needs a compressed, calibrated twin (prepare(...) with calibration samples)")
    graph = twin.graph.copy()
    ranges = {name: twin.activation(name).bounds() for name in twin.observed}
    insert_points(graph, plan(graph), ranges)
    shared: dict = {}
    with torch.no_grad():
        for layer in weighted_layers(twin.graph):
            node = graph.node(layer.name)
            x_scale = qdq_affine(graph, graph.producer(node.inputs[0])).scale
            w, keep, quantizer = twin.weight(layer.name), twin.keep(layer.name), twin.quantizer(layer.name)
            bias = twin.masked_bias(layer.name)
            channels = w.shape[twin.layer_plans[layer.name].axis]
            bias = None if bias is None else np.broadcast_to(bias.numpy().astype(np.float64).reshape(-1),
                                                             (channels,))
            scale = quantizer.scale().numpy().astype(np.float32)
            if bias is not None:
                scale = np.maximum(scale, bias_floor(bias, x_scale)).astype(np.float32)
            q = quantizer.integers(w, keep, torch.from_numpy(scale))
            store_layer(graph, node, q, scale, bias, x_scale, twin.layer_plans[layer.name].bits, shared)
        for name in recurrent_parameters(twin.graph):
            old = graph.tensor(name)
            graph.tensors[name] = Tensor(name, old.dtype, old.shape, twin.recurrent_weight(name).numpy(),
                                         old.layout, old.quant)
        for layer in twin.unit_plans:  # every layer's units silent before any plan folds them
            _silence_units(graph, graph.node(layer), twin)
        for found in cuts(graph, twin):
            for edit in found.edits:
                edit(graph)
    return graph


def cuts(graph: Graph, twin):
    """Yield nnc's prune-channels plans for what the twin's masks remove from
    `graph` (the twin's, or its copy being exported): one per group of tied
    recurrent layers, for the hidden units their masks remove, then one per
    group of tied weighted layers, for the output channels their masks zero
    whole. Each is made when the one before it has been applied, if the
    caller applies it; a group the plan refuses keeps its units or channels."""
    cut: set[str] = set()
    for layer in twin.unit_plans:
        units = np.flatnonzero(twin.units(layer).numpy() == 0)
        if layer in cut or not len(units):
            continue  # a tied layer lost them with the first of its group
        found = channel_plan(graph, graph.node(layer), len(units) / len(twin.units(layer)), units)
        if isinstance(found, ChannelPlan):
            yield found
        cut.update(twin.unit_plans[layer].tied)
    done: set[str] = set()
    for layer in weighted_layers(twin.graph):
        if layer.name not in done and twin.layer_plans[layer.name].rule.channels:
            found = _channel_cut(graph, graph.node(layer.name), twin)
            if found is not None:
                yield found
                done.update(found.layers)


def _zero_channels(twin, layer: str) -> np.ndarray:
    """The output channels of `layer` whose weights the twin's mask zeroes whole."""
    keep, axis = twin.keep(layer).numpy(), twin.layer_plans[layer].axis
    return np.flatnonzero(~np.moveaxis(keep, axis, 0).reshape(keep.shape[axis], -1).any(axis=1))


def _plan(graph: Graph, node, removed: np.ndarray):
    channels = graph.tensor(node.inputs[1]).shape[0 if node.op == "Conv" or node.attrs.trans_b else 1]
    return channel_plan(graph, node, len(removed) / channels, removed) if len(removed) else None


def _channel_cut(graph: Graph, node, twin) -> ChannelPlan | None:
    """The plan removing the output channels the twin zeroes whole from `node`
    and its consumers (nnc's prune-channels plan for exactly those channels);
    their weights and bias are zero, so the outputs do not change. Layers tied
    to it through an Add, Sub or Mul lose the channels all of them zero (the
    twin ranks each layer's channels alone). None when the plan refuses."""
    removed = _zero_channels(twin, node.name)
    found = _plan(graph, node, removed)
    if isinstance(found, ChannelPlan) and len(found.layers) > 1:
        if any(name not in twin.layer_plans for name in found.layers):
            return None
        common = removed
        for name in found.layers:
            common = np.intersect1d(common, _zero_channels(twin, name))
        found = _plan(graph, node, common)
    return found if isinstance(found, ChannelPlan) else None


def _silence_units(graph: Graph, node, twin) -> None:
    """Zero what the hidden units the twin's mask removes from recurrent `node`
    read and make (their W, R and B rows, their R columns), as the twin's
    train mode does. Silent, they carry 0, so nnc's plan then removes them
    with nothing to fold (a layer the plan refuses keeps them)."""
    removed = np.flatnonzero(twin.units(node.name).numpy() == 0)
    gates, hidden = GATES[node.op], node.attrs.hidden_size
    rows = (np.arange(gates)[:, None] * hidden + removed).reshape(-1)
    for index, axis, positions in ((1, 1, rows), (2, 1, rows), (2, 2, removed),
                                   (3, 1, np.concatenate([rows, gates * hidden + rows]))):
        if index < len(node.inputs) and node.inputs[index] and len(removed):
            old = graph.tensor(node.inputs[index])
            data = old.data.copy()
            data[(slice(None),) * axis + (positions,)] = 0
            graph.tensors[old.name] = Tensor(old.name, old.dtype, old.shape, data, old.layout, old.quant)


def integer_graph(twin) -> Graph:
    """The integer graph `nnc compile` makes of export(twin)."""
    return PassManager(parse_pipeline(f"{CANONICAL},quantize")).run(export(twin))
