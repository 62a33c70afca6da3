"""prune-channels: structured pruning — remove whole output channels of Conv and Gemm
layers, and hidden units of LSTM, GRU and RNN layers (prune_recurrent.py).

Rewrites each weighted layer P — Conv with group 1, or Gemm — whose ratio r (`ratio`,
or its entry in `overrides`) is above 0: the round(r · C) of its C output channels
with the smallest L1 norm of weights go (Li et al., "Pruning Filters for Efficient
ConvNets", ICLR 2017; on a tie the lower index goes; one channel always stays):
- P's weights and bias lose them (a Gemm bias that broadcasts keeps its shape);
- the cut follows P's output through channel-preserving ops, shrinking every
  tensor on the way: activations (Relu, Clip, LeakyRelu, Sigmoid, Tanh,
  HardSigmoid, HardSwish, Silu, Gelu, Elu, Softplus, Softsign; PRelu, whose slope per channel loses the
  removed channels' entries), Resize, MaxPool, AveragePool, GlobalAveragePool,
  GlobalMaxPool, ReduceMean/Max/Min/Sum over other axes (a constant channel
  reduces to itself, or to its sum), per-tensor QuantizeLinear/DequantizeLinear (QDQ models),
  BatchNormalization (its vectors shrink), Transpose (the axis moves with it),
  depthwise Conv (group = input channels: it loses the same channels and their
  multiplier outputs; weights, bias and group shrink), a Reshape flattening
  the channel axis into its last axis (Flatten: the features of the removed
  channels go, in the tensor's own order, so NCHW and channels-last both work)
  or regrouping the leading axes in front of a last channel axis (a sequence
  model's Gemm between Reshapes),
  a Concat along the channel axis, reached through any of its inputs (a
  YOLO neck, a U-Net's skip, an Inception block: the removed channels go from
  its output at their offset there, the other inputs' channels stay), an
  Add, Sub or Mul of tied layers' channels (below) and one with a constant
  (one value, or one per channel);
- it ends at the layers that consume it — Conv with group 1, Gemm, MatMul with
  constant weights, a recurrent layer's X — which lose those input channels
  (Conv weight axis 1, the rows of Gemm's B' and of MatMul's W, the columns
  of a recurrent W). On the way, a Gather of constant indices or a Slice along
  another axis (a keyword spotter's last time step) passes it.

Layers whose channels an Add, Sub or Mul combines — a residual block's last
Conv and the layer its skip comes from, every projection of a MobileNetV2
stage, a squeeze-excitation's last layer and the layer whose output it
scales, a gated unit's two Convs — are tied (`tied_layers`; DepGraph's
groups, Fang et al., CVPR 2023): they lose the same channels, those with the
smallest L1 norm summed over the group, at the smallest ratio any of them
asks for (none when one asks for 0); the combining op applied to the
constants its inputs carry gives the constant it passes on.

A removed channel does not output zero: with weights near zero it outputs about
v = act(bias). That constant is carried along the path (through each op's
reference semantics; a depthwise Conv maps it to act(b + v · sum(w)), its value
away from the border) and folded into the consumer's bias: bias[m] += sum over
removed c of v[c] · sum(W[m, c, ...]) (Gemm: alpha · v @ B'[removed] / beta). The
fold is exact when no zero padding intervenes (Gemm consumers, unpadded Conv,
MaxPool, AveragePool without count_include_pad); behind padding it is exact away
from the border, and border outputs miss the taps that read padding. A QDQ
consumer's int32 bias takes it rounded to its scale (within half a bias step). A
consumer without a bias gets one; a MatMul (no bias) refuses a nonzero fold.

`method=obs` (with `calib`; per layer `method_overrides`): the consumers of the
cut are measured once on the calibration samples (compiler/hessian.py). When
the channels end at one consumer, the channels removed are those its output
misses least (greedy structured OBS over its input columns, the count
unchanged), and each consumer's weights and bias are refit by least squares to
its original output (compiler/obs.py, `remove_inputs`), which replaces the
bias fold. Consumers without float weights and a float bias keep the magnitude
plan, as do recurrent layers; without `calib` obs falls back to magnitude with
a warning.

Skipped, not an error (`plan` says why): a layer whose output reaches a graph
output, a Concat along another axis or any op not listed above, an Add, Sub
or Mul that broadcasts an input along the channels or combines them with
channels no weighted layer makes (a graph input, a Concat's output),
one node twice, or a node input other than the data input (any input of a
Concat); grouped and depthwise Conv as P (their channels
follow their input); weights, biases or op parameters that are not constants (or
a DequantizeLinear of constants); a Gemm bias that varies along rows; a ratio
that removes no channel. One NncWarning names the layers asked for that kept
every channel and why; once some layer lost channels, layers with no weighted
layer after them (their channels are the model's outputs) go unnamed.

Requires: a valid graph (normally after the CANONICAL pipeline, before quantize).

Guarantees: a valid graph with the same interface; each changed tensor has the
shape its producer's shape inference gives; parameters and MACs drop by what the
removed channels held and computed.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import field

import numpy as np

from nnc import dtypes, obs
from nnc.errors import NncWarning, OptionError
from nnc.ir import Graph, Node
from nnc.hessian import too_large
from nnc.layer_select import parse_overrides, settings, warn_left_out, weight_constant
from nnc.limits import MAX_OBS_FAN_IN
from nnc.obs_layers import (cheapest_inputs, check_damping, fallback_warning, input_columns, layer_statistics,
                            method_settings, obs_weights, parse_methods, refit_without, store_refit)
from nnc.ops import get_op
from nnc.ops.conv import fused_clamp
from nnc.passmanager import Pass, register_pass
from nnc.records import record
from nnc.verification import load_samples

from .channel_edits import (Cut, Edit, attrs_edit, bias_edit, f64, is_param, param_values, reinfer_edit,
                            slice_edit)
from .prune_recurrent import RECURRENT, into_recurrent, producer_cuts, producer_reason, unit_l1

PREFIX = "pass 'prune-channels'"
OPTION = f"{PREFIX}: overrides"
ACTIVATIONS = ("Relu", "Clip", "LeakyRelu", "ThresholdedRelu", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "Silu", "Gelu", "Elu",
               "Softplus", "Softsign")
POOLS = ("MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool")
REDUCTIONS = ("ReduceMean", "ReduceMax", "ReduceMin", "ReduceSum")


@register_pass
@record
class PruneChannels(Pass):
    name = "prune-channels"
    ratio: float = 0.25
    overrides: str = ""
    method: str = "magnitude"
    method_overrides: str = ""
    calib: str = ""
    damping: float = obs.DAMPING

    def __post_init__(self):
        if not 0.0 <= self.ratio < 1.0:
            raise OptionError(f"pass 'prune-channels': ratio must be in [0, 1), got {self.ratio}")
        self._overrides()
        check_damping(PREFIX, self.damping)
        parse_methods(PREFIX, self.method, self.method_overrides)

    def _overrides(self) -> dict[str, float]:
        return parse_overrides(self.overrides, OPTION, _ratio)

    def _ratios(self, graph: Graph) -> dict[str, float]:
        """{layer: ratio} of the weighted layers (layer_select.settings) and the
        recurrent ones (an override by name or op type, else `ratio`)."""
        overrides, recurrent = self._overrides(), [n for n in graph.nodes() if n.op in RECURRENT]
        named = {n.name for n in recurrent} | set(RECURRENT)
        ratios = settings(graph, {k: v for k, v in overrides.items() if k not in named}, self.ratio, OPTION)
        return ratios | {n.name: overrides.get(n.name, overrides.get(n.op, self.ratio)) for n in recurrent}

    def run(self, graph: Graph) -> Graph:
        ratios = self._ratios(graph)
        asked = f"{PREFIX} (ratio {self.ratio:g}" + (", per-layer ratios)" if self.overrides else ")")
        if self.ratio > 0 or any(ratios.values()):
            warn_left_out(graph, asked, "whole", recurrent=False)
        methods = method_settings(graph, PREFIX, self.method, self.method_overrides)  # recurrent: magnitude
        stats = self._statistics(graph, [n for n, r in ratios.items() if r > 0 and methods.get(n) == "obs"], ratios)
        skipped, shapes, refit, done = {}, _output_shapes(graph, ratios), set(), set()
        for name, ratio in ratios.items():
            if name in done:
                continue
            found = plan(graph, graph.node(name), ratio) if ratio > 0 else None
            if isinstance(found, Plan) and len(found.layers) > 1:
                found, ratio = _group_plan(graph, found, ratios)
            if isinstance(found, str):
                skipped[name] = found
            if not isinstance(found, Plan):
                continue
            done.update(found.layers)
            refits = self._second_order(graph, graph.node(name), ratio, found, stats, refit) \
                if methods.get(name) == "obs" else {}
            found = refits.pop(None, found)
            for edit in found.edits:
                edit(graph)
            for consumer, (weights, columns) in refits.items():
                if consumer in found.layers:  # a tied layer reading the channels: it lost those outputs too
                    weights = np.delete(weights, found.removed, axis=0)
                store_refit(graph, graph.node(consumer), weights, columns)
                refit.add(consumer)
        shrunk = {name for name, shape in shapes.items() if _output_shapes(graph, [name])[name] != shape}
        _warn_skipped(graph, asked, {name: why for name, why in skipped.items() if name not in shrunk}, bool(shrunk))
        return graph

    def _statistics(self, graph: Graph, layers: list[str], ratios: dict[str, float]) -> dict:
        """Input statistics, measured once on the graph as it comes, of the layers
        that consume the channels of the obs `layers` and can be refit (float
        weights and bias)."""
        if layers and not self.calib:
            fallback_warning(PREFIX, layers, "needs calibration samples (calib)")
        plans = [plan(graph, graph.node(n), ratios[n]) for n in layers] if self.calib else []
        consumers = {c: graph.node(c) for p in plans if isinstance(p, Plan) for c in p.edits.ends}
        refittable = [c for c in consumers.values() if (obs_weights(graph, c) or (None, None))[1] is not None]
        fallback_warning(PREFIX, [c.name for c in refittable if too_large(graph, c)],
                         f"is limited to fan-in {MAX_OBS_FAN_IN}")
        return layer_statistics(graph, refittable, load_samples(self.calib, graph)) if refittable else {}

    def _second_order(self, graph: Graph, layer: Node, ratio: float, found: Plan, stats: dict,
                      refit: set[str]) -> dict:
        """Method obs for one pruned layer: {None: the plan removing the channels
        whose loss its consumer feels least (one consumer), consumer: (refit
        weights and bias, the weight columns cut)}; {} when a consumer has no
        statistics (no float weights and bias to refit) or was refit already for
        another layer reaching it through a Concat (its statistics are of the
        inputs it had then): the magnitude plan stands."""
        consumers = [graph.node(n) for n in found.edits.ends]
        if any(c.name not in stats or c.name in refit for c in consumers):
            return {}
        if len(consumers) == 1:
            columns = _channel_columns(graph, layer, ratio, consumers[0])
            if columns is not None:
                chosen = cheapest_inputs(graph, consumers[0], stats[consumers[0].name], columns, len(found.removed),
                                         self.damping)
                found = plan(graph, layer, ratio, chosen)
        result: dict = {None: found}
        for c in consumers:
            columns = input_columns(c, found.edits.ends[c.name]).reshape(-1)
            result[c.name] = (refit_without(graph, c, stats[c.name], columns, self.damping), columns)
        return result


def _group_plan(graph: Graph, found: Plan, ratios: dict[str, float]) -> tuple[Plan | str, float]:
    """(the plan for a group of tied layers, the ratio it removes): the smallest
    ratio any of them asks for; why not when one of them keeps its channels."""
    kept = [name for name in found.layers if ratios.get(name, 0.0) <= 0]
    if kept:
        return f"the channels are tied to {kept[0]!r}, which keeps its channels", 0.0
    ratio = min(ratios[name] for name in found.layers)
    return (plan(graph, graph.node(found.layer), ratio) if ratio != ratios[found.layer] else found), ratio


def _output_shapes(graph: Graph, layers) -> dict[str, tuple[int, ...]]:
    """{layer: the shape of its first output the graph uses} (a recurrent
    layer's Y may be unused, "", when only Y_h is read)."""
    return {name: graph.tensor(next(filter(None, graph.node(name).outputs))).shape for name in layers}


def _warn_skipped(graph: Graph, asked: str, kept: dict[str, str], pruned: bool) -> None:
    """An NncWarning naming the layers asked to lose channels that kept every
    one (`kept`: name -> why; layers skipped for one reason are named
    together). Once some layer was `pruned`, layers with no weighted layer
    after them go unnamed: their channels are the model's outputs."""
    if pruned:
        kept = {name: why for name, why in kept.items() if _weighted_after(graph, graph.node(name))}
    if not kept:
        return
    by_reason: dict[str, list[str]] = {}
    for name, reason in kept.items():
        by_reason.setdefault(reason, []).append(name)
    shown = [", ".join(map(repr, names[:3])) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
             + f" ({reason})" for reason, names in by_reason.items()]
    head = f"{len(kept)} layer(s) keep every channel" if pruned else "removes no channel"
    warnings.warn(f"{asked}: {head}: " + "; ".join(shown), NncWarning, stacklevel=3)


def _weighted_after(graph: Graph, layer: Node) -> bool:
    """Whether a weighted layer reads, through any path, what `layer` computes."""
    seen, tensors = set(), list(layer.outputs)
    while tensors:
        for node in graph.consumers(tensors.pop()):
            if node.name in seen:
                continue
            if weight_constant(graph, node) is not None:
                return True
            seen.add(node.name)
            tensors.extend(filter(None, node.outputs))
    return False


def _channel_columns(graph: Graph, layer: Node, ratio: float, consumer: Node) -> np.ndarray | None:
    """[channels, s]: the weight columns of `consumer` that each output channel of
    `layer` feeds (found by planning the removal of that channel alone), or None
    when channels feed different numbers of columns."""
    per_channel = []
    for channel in range(graph.tensor(layer.inputs[1]).shape[_weight_out_axis(layer)]):
        single = plan(graph, layer, ratio, np.array([channel]))
        if not isinstance(single, Plan):
            return None
        per_channel.append(input_columns(consumer, single.edits.ends[consumer.name]).reshape(-1))
    return np.stack(per_channel) if len({len(c) for c in per_channel}) == 1 else None


def _ratio(text: str) -> float:
    value = float(text)
    if not 0.0 <= value < 1.0:
        raise ValueError(f"ratio must be in [0, 1), got {value}")
    return value


class Edits(list):
    """A plan's graph edits, in order, `ends`: {consumer layer name: the
    indices of its input channels (as its weights see them) the plan removes},
    and `arrived`: {Add/Sub/Mul name: {input index: the cut that came in
    there}} for the COMBINE ops the cut has reached (one passes the cut on
    once every input that is not a constant has one)."""

    def __init__(self):
        super().__init__()
        self.ends: dict[str, np.ndarray] = {}
        self.arrived: dict[str, dict[int, Cut]] = {}


@record(frozen=False)
class Plan:
    """What pruning one layer does: its removed output channels, the graph
    edits, to apply in order, and `layers`: every layer that loses those
    channels (the layer and those tied to it, in graph order)."""

    layer: str
    removed: np.ndarray
    edits: Edits = field(default_factory=Edits)
    layers: tuple[str, ...] = ()


def plan(graph: Graph, layer: Node, ratio: float, removed: np.ndarray | None = None) -> Plan | str:
    """The plan that prunes `ratio` of `layer`'s output channels (the `removed`
    ones when given, sorted), or why it cannot. The layers tied to it
    (`tied_layers`) lose the same channels: those with the smallest L1 norm of
    weights summed over the group."""
    group = tied_layers(graph, layer)
    if isinstance(group, str):
        return group
    for member in group:
        reason = _producer_reason(graph, member)
        if reason:
            return reason if member is layer else f"the channels are tied to {member.name!r}: {reason}"
    l1 = sum(_l1_per_channel(graph, member) for member in group)
    count = min(round(ratio * len(l1)), len(l1) - 1)
    if count < 1:
        return f"ratio {ratio} removes none of {len(l1)} channels"
    if removed is None:
        removed = np.sort(np.argsort(l1, kind="stable")[:count])
    result = Plan(layer.name, removed, layers=tuple(member.name for member in group))
    seen: set[str] = set()
    for member in group:
        cuts = producer_cuts(graph, member, removed, result.edits) if member.op in RECURRENT else \
            _producer_cut(graph, member, removed, result.edits)
        if isinstance(cuts, str):
            return cuts
        for tensor, cut in cuts:
            reason = _follow(graph, tensor, cut, result.edits, seen)
            if reason:
                return reason
    for name, inputs in result.edits.arrived.items():
        combine = graph.node(name)
        missing = [t for i, t in enumerate(combine.inputs) if i not in inputs and graph.constant(t) is None]
        if missing:
            return f"{combine.op} {name!r} also reads {missing[0]!r}, whose channels do not go with them"
    return result


def _l1_per_channel(graph: Graph, layer: Node) -> np.ndarray:
    if layer.op in RECURRENT:
        return unit_l1(graph, layer)
    w = np.moveaxis(param_values(graph, layer.inputs[1]), _weight_out_axis(layer), 0)
    return np.abs(w).reshape(w.shape[0], -1).sum(axis=1)


# -- layers tied through Add, Sub and Mul --------------------------------------------
# Ops whose output channel c is their input channel c (a depthwise Conv of
# multiplier 1 too): tied channels keep their indices through them.
SAME_INDEX = (*ACTIVATIONS, *POOLS, "Resize", "PRelu", "QuantizeLinear", "DequantizeLinear", "BatchNormalization")
# Element-wise ops that tie the channels of the inputs they combine.
COMBINE = ("Add", "Sub", "Mul")


def tied_layers(graph: Graph, layer: Node) -> list[Node] | str:
    """`layer` and the layers whose output channels an Add, Sub or Mul combines
    with its own, in graph order (Fang et al., "DepGraph: Towards Any
    Structural Pruning", CVPR 2023, call them a group): a residual block's last
    Conv and the layer its skip comes from, every projection of a MobileNetV2
    stage, a squeeze-excitation's last layer and the layer it scales, a gated
    unit's two Convs. The search walks the tensors that carry the channels at
    their indices, forward and backward through SAME_INDEX ops, and through
    every COMBINE op (all its inputs that are not constants, and its output); a
    tensor made by a weighted layer adds that layer. The reason, when a tensor
    on the way comes from anything else (a graph input, a Concat, ...) or a
    COMBINE op broadcasts an input along the channels. A recurrent layer's
    channels are its hidden units, the last axis of each output it uses."""
    if layer.op not in ("Conv", "Gemm", *RECURRENT) or _same_index(graph, layer):
        return [layer]  # plan refuses it: its channels follow its input
    outputs = [t for t in layer.outputs if t] if layer.op in RECURRENT else layer.outputs[:1]  # Y may be unused
    rank = len(graph.tensor(outputs[0]).shape)
    start = _channel_axis(layer, rank) if layer.op == "Conv" else rank - 1 if layer.op in RECURRENT else 1
    group, seen, todo = {layer.name}, set(), [(t, start - rank, None) for t in outputs]
    while todo:
        tensor, axis, via = todo.pop()  # axis from the end; via: the COMBINE op the walk came back through
        if tensor in seen:
            continue
        seen.add(tensor)
        source = graph.producer(tensor)
        if source is not None and source.op in COMBINE:
            inputs = _channel_inputs(graph, source)
            if any(len(graph.tensor(t).shape) < -axis or graph.tensor(t).shape[axis] != graph.tensor(tensor).shape[axis]
                   for t in inputs):
                return f"{source.op} {source.name!r} broadcasts an input along the channels"
            todo.extend((t, axis, source.name) for t in inputs)
        elif source is not None and _same_index(graph, source, axis):
            todo.extend((t, axis, via) for t in _channel_inputs(graph, source))
        elif source is not None and source.op in ("Conv", "Gemm", *RECURRENT):
            group.add(source.name)
        else:
            what = f"graph input {tensor!r}" if source is None else f"{source.op} {source.name!r}"
            return f"{graph.node(via).op} {via!r} combines them with channels that come from {what}"
        for node in graph.consumers(tensor):
            if node.op in COMBINE or (_same_index(graph, node, axis) and node.inputs[0] == tensor):
                todo.extend((t, axis, via) for t in node.outputs[:1])
    return [node for node in graph.nodes() if node.name in group]


def follows_input(graph: Graph, layer: Node) -> bool:
    """Whether weighted `layer` keeps its input's channel indices (a depthwise
    Conv of multiplier 1): it loses channels with its input, never by a plan
    of its own."""
    return _same_index(graph, layer)


def _same_index(graph: Graph, node: Node, axis: int = 0) -> bool:
    """Whether `node`'s output channel c is its input channel c: a SAME_INDEX
    op, a depthwise Conv of multiplier 1, or, for channels on the last axis
    (`axis` -1, counted from the end), a Reshape that keeps that axis."""
    if node.op == "Reshape":
        shapes = [graph.tensor(node.inputs[0]).shape, graph.tensor(node.outputs[0]).shape]
        return axis == -1 and all(shapes) and shapes[0][-1] == shapes[1][-1]
    if node.op == "Conv":
        channels = graph.tensor(node.inputs[0]).shape[_channel_axis(node, len(graph.tensor(node.inputs[0]).shape))]
        return node.attrs.group == channels == graph.tensor(node.outputs[0]).shape[
            _channel_axis(node, len(graph.tensor(node.outputs[0]).shape))] and channels > 1
    return node.op in SAME_INDEX


def _channel_inputs(graph: Graph, node: Node) -> list[str]:
    """The inputs of `node` that carry its output's channels: a COMBINE op's
    inputs that are not constants, else the data input."""
    if node.op in COMBINE:
        return [t for t in node.inputs if graph.constant(t) is None]
    return node.inputs[:1]


# -- the pruned layer -----------------------------------------------------------------
def _producer_reason(graph: Graph, layer: Node) -> str | None:
    if layer.op in RECURRENT:
        return producer_reason(graph, layer)
    if layer.op not in ("Conv", "Gemm"):
        return f"{layer.op} layers keep their output channels: only Conv, Gemm and recurrent layers lose them"
    if layer.op == "Conv" and layer.attrs.group != 1:
        return "a grouped or depthwise Conv's output channels follow its input channels"
    return _params_reason(graph, layer, (1, 2))


def _weight_out_axis(layer: Node) -> int:
    return 0 if layer.op == "Conv" or layer.attrs.trans_b else 1


def _producer_cut(graph: Graph, layer: Node, removed: np.ndarray, edits: list[Edit]) -> list[tuple[str, Cut]] | str:
    """[(the layer's output, the cut it carries)], after appending the edits that
    remove `removed` from its weights and bias; the reason when it cannot."""
    y = graph.tensor(layer.outputs[0])
    axis = _channel_axis(layer, len(y.shape)) if layer.op == "Conv" else 1
    size = y.shape[axis]
    bias, bias_axis = _bias(graph, layer, size)
    if bias is None:
        return f"its bias {graph.tensor(layer.inputs[2]).shape} varies along the rows"
    beta = layer.attrs.beta if layer.op == "Gemm" else 1.0
    cut = Cut(axis, size, removed, _activated(graph, layer, beta * bias[removed]))
    edits.append(slice_edit(layer.name, 1, _weight_out_axis(layer), cut.keep))
    if bias_axis is not None:
        edits.append(slice_edit(layer.name, 2, bias_axis, cut.keep))
    edits.append(reinfer_edit(layer.name, cut))
    return [(layer.outputs[0], cut)]


def _activated(graph: Graph, layer: Node, pre: np.ndarray) -> np.ndarray:
    """The layer's output values for pre-activation values `pre`: clamped, in its dtype."""
    dtype = dtypes.to_numpy(graph.tensor(layer.outputs[0]).dtype)
    return fused_clamp(pre, layer.attrs.act_min, layer.attrs.act_max).astype(dtype)


def _bias(graph: Graph, layer: Node, size: int) -> tuple[np.ndarray | None, int | None]:
    """(bias per output channel as float64 — zeros without one, None if it varies
    along Gemm rows; the bias axis that holds the channels, None if it broadcasts)."""
    name = layer.inputs[2] if len(layer.inputs) > 2 else ""
    if not name:
        return np.zeros(size), None
    b = param_values(graph, name)
    if b.size == 1:
        return np.full(size, float(b.reshape(-1)[0])), None
    if b.ndim == 1 or b.shape[0] == 1:
        return b.reshape(-1), b.ndim - 1
    return None, None


# -- following the cut ----------------------------------------------------------------
def _follow(graph: Graph, tensor: str, cut: Cut, edits: list[Edit], seen: set[str]) -> str | None:
    """Extend `edits` through every reader of `tensor`; the reason it cannot, or None."""
    if tensor in graph.outputs:
        return f"{tensor!r} is a graph output"
    for node in graph.consumers(tensor):
        if node.name in seen and node.op not in COMBINE:
            return f"the channels reach {node.op} {node.name!r} twice"
        seen.add(node.name)
        handler = _HANDLERS.get(node.op)
        if handler is None:
            return f"the channels reach {node.op} {node.name!r}"
        data = node.op == "Concat" or node.op in COMBINE or node.inputs[0] == tensor
        if not data or node.inputs.count(tensor) > 1 or (len(node.outputs) != 1 and node.op not in RECURRENT):
            return f"{node.op} {node.name!r} reads the channels other than as its one data input"
        reason = handler(graph, node, node.inputs.index(tensor), cut, edits, seen) if node.op in ("Concat", *COMBINE) \
            else handler(graph, node, cut, edits, seen)
        if reason:
            return reason
    return None


def _pass_on(graph: Graph, node: Node, cut: Cut, edits: list[Edit], seen: set[str]) -> str | None:
    """`node` keeps the channels where they are: its output shrinks like its input."""
    edits.append(reinfer_edit(node.name, cut))
    return _follow(graph, node.outputs[0], cut, edits, seen)


def _through_activation(graph, node, cut, edits, seen):
    values = get_op(node.op).evaluate(node.attrs, [cut.values])[0]
    return _pass_on(graph, node, dataclasses.replace(cut, values=values), edits, seen)


def _through_prelu(graph, node, cut, edits, seen):
    """PRelu's slope is one value (the channels keep it) or one per channel (the
    removed channels' entries go); a slope varying along another axis would not
    keep a removed channel constant."""
    if len(node.inputs) < 2 or not is_param(graph, node.inputs[1]):
        return f"PRelu {node.name!r} has a slope computed at run time"
    slope = param_values(graph, node.inputs[1])
    axis = cut.axis - (len(graph.tensor(node.inputs[0]).shape) - slope.ndim)  # numpy broadcasting aligns right
    per_channel = slope.size > 1
    if per_channel and (axis < 0 or slope.shape[axis] != slope.size):
        return f"PRelu {node.name!r} has a slope that varies along more than the channels"
    slopes = np.take(slope.reshape(-1), cut.removed) if per_channel else np.full(len(cut.removed), slope.item())
    values = np.where(cut.values < 0, cut.values * slopes, cut.values).astype(cut.values.dtype)
    if per_channel:
        edits.append(slice_edit(node.name, 1, axis, cut.keep))
    return _pass_on(graph, node, dataclasses.replace(cut, values=values), edits, seen)


def _through_qdq(graph, node, cut, edits, seen):
    if node.attrs.axis is not None:
        return f"{node.op} {node.name!r} is per-channel"
    if any(graph.constant(t) is None for t in node.inputs[1:] if t):
        return f"{node.op} {node.name!r} has parameters computed at run time"
    params = [graph.constant(t) for t in node.inputs[1:] if t]
    values = get_op(node.op).evaluate(node.attrs, [cut.values, *params])[0]
    return _pass_on(graph, node, dataclasses.replace(cut, values=values), edits, seen)


def _through_pool(graph, node, cut, edits, seen):
    """A constant channel pools to itself (away from count_include_pad padding)."""
    return _axis_reason(graph, node, cut) or _pass_on(graph, node, cut, edits, seen)


def _through_reduce(graph, node, cut, edits, seen):
    """A reduction over other axes than the channels' (PyTorch's x.mean((2, 3))
    before a classifier): a constant channel reduces to itself (ReduceSum: times
    the count); without keepdims the channel axis moves left past the axes gone."""
    axes = node.attrs.axes
    if cut.axis in axes:
        return f"{node.op} {node.name!r} reduces the channel axis"
    count = math.prod(graph.tensor(node.inputs[0]).shape[a] for a in axes) if node.op == "ReduceSum" else 1
    axis = cut.axis if node.attrs.keepdims else cut.axis - sum(a < cut.axis for a in axes)
    values = (f64(cut.values) * count).astype(cut.values.dtype)
    return _pass_on(graph, node, dataclasses.replace(cut, axis=axis, values=values), edits, seen)


def _through_gather(graph, node, cut, edits, seen):
    """A Gather of constant indices along another axis (an LSTM's last time
    step): the channels keep their place, behind the axes the indices add."""
    indices = graph.constant(node.inputs[1])
    if indices is None or node.attrs.axis == cut.axis:
        return f"Gather {node.name!r} selects {'at run time' if indices is None else 'along the channel axis'}"
    axis = cut.axis + (indices.ndim - 1 if node.attrs.axis < cut.axis else 0)
    return _pass_on(graph, node, dataclasses.replace(cut, axis=axis), edits, seen)


def _through_slice(graph, node, cut, edits, seen):
    """A Slice along other axes (y[:, -1, :]) that takes every channel."""
    attrs = node.attrs
    if (attrs.starts[cut.axis], attrs.steps[cut.axis], attrs.sizes[cut.axis]) != (0, 1, cut.size):
        return f"Slice {node.name!r} cuts the channel axis"
    sizes = tuple(cut.size - len(cut.removed) if a == cut.axis else n for a, n in enumerate(attrs.sizes))
    edits.append(attrs_edit(node.name, sizes=sizes))
    return _pass_on(graph, node, cut, edits, seen)


def _through_transpose(graph, node, cut, edits, seen):
    return _pass_on(graph, node, dataclasses.replace(cut, axis=node.attrs.perm.index(cut.axis)), edits, seen)


def _through_batchnorm(graph, node, cut, edits, seen):
    reason = _axis_reason(graph, node, cut) or _params_reason(graph, node, (1, 2, 3, 4))
    if reason:
        return reason
    params = [param_values(graph, t)[cut.removed] for t in node.inputs[1:5]]
    values = get_op(node.op).evaluate(node.attrs, [cut.values.reshape(1, -1), *params])[0].reshape(-1)
    edits.extend(slice_edit(node.name, i, 0, cut.keep) for i in (1, 2, 3, 4))
    return _pass_on(graph, node, dataclasses.replace(cut, values=values), edits, seen)


def _into_conv(graph, node, cut, edits, seen):
    reason = _axis_reason(graph, node, cut) or _params_reason(graph, node, (1, 2))
    if reason:
        return reason
    if node.attrs.group == 1:
        w = param_values(graph, node.inputs[1])
        contribution = w[:, cut.removed].reshape(w.shape[0], len(cut.removed), -1).sum(axis=2) @ f64(cut.values)
        return _end(graph, node, cut, edits, w_axis=1, contribution=contribution)
    if node.attrs.group == cut.size:
        return _through_depthwise(graph, node, cut, edits, seen)
    return f"grouped Conv {node.name!r} mixes the channels in groups"


def _through_depthwise(graph, node, cut, edits, seen):
    """A depthwise Conv with multiplier k: output channel c·k + j reads input channel c."""
    w = param_values(graph, node.inputs[1])
    k = w.shape[0] // cut.size
    out = (cut.removed[:, None] * k + np.arange(k)).reshape(-1)
    bias, _ = _bias(graph, node, w.shape[0])
    pre = bias[out] + np.repeat(f64(cut.values), k) * w[out].reshape(len(out), -1).sum(axis=1)
    out_cut = Cut(cut.axis, w.shape[0], out, _activated(graph, node, pre))
    edits.append(slice_edit(node.name, 1, 0, out_cut.keep))
    if len(node.inputs) > 2 and node.inputs[2]:
        edits.append(slice_edit(node.name, 2, 0, out_cut.keep))
    edits.append(attrs_edit(node.name, group=cut.size - len(cut.removed)))
    return _pass_on(graph, node, out_cut, edits, seen)


def _through_reshape(graph, node, cut, edits, seen):
    """A Reshape that keeps the leading axes and flattens the rest, the channel axis
    among them, into its last axis: feature f goes when its channel goes. Or one
    that regroups the leading axes of a tensor whose last axis holds the
    channels and stays (a sequence model's Gemm between Reshapes: [B·T, D] ↔
    [B, T, D])."""
    src, dst = graph.tensor(node.inputs[0]).shape, node.attrs.shape
    if cut.axis == len(src) - 1 and len(dst) > 0 and dst[-1] == src[-1]:
        edits.append(attrs_edit(node.name, shape=(*dst[:-1], dst[-1] - len(cut.removed))))
        return _pass_on(graph, node, dataclasses.replace(cut, axis=len(dst) - 1), edits, seen)
    j = len(dst) - 1
    if j > cut.axis or tuple(src[:j]) != tuple(dst[:j]) or math.prod(src[j:]) != dst[j]:
        return f"Reshape {node.name!r} does not flatten the channel axis into its last axis"
    tail, a = src[j:], cut.axis - j
    chosen = np.take(np.arange(math.prod(tail)).reshape(tail), cut.removed, axis=a)
    along = [len(cut.removed) if i == a else 1 for i in range(len(tail))]
    values = np.broadcast_to(cut.values.reshape(along), chosen.shape)
    order = np.argsort(chosen, axis=None, kind="stable")
    flat = Cut(j, dst[j], chosen.reshape(-1)[order], values.reshape(-1)[order])
    edits.append(attrs_edit(node.name, shape=(*dst[:j], dst[j] - len(flat.removed))))
    return _pass_on(graph, node, flat, edits, seen)


def _through_concat(graph, node, index, cut, edits, seen):
    """The channels of input `index` sit in the output after those of the inputs
    before it along the axis."""
    if node.attrs.axis != cut.axis:
        return f"Concat {node.name!r} joins along axis {node.attrs.axis}, not the channel axis {cut.axis}"
    offset = sum(graph.tensor(t).shape[cut.axis] for t in node.inputs[:index])
    size = graph.tensor(node.outputs[0]).shape[cut.axis]
    return _pass_on(graph, node, Cut(cut.axis, size, cut.removed + offset, cut.values), edits, seen)


def _through_combine(graph, node, index, cut, edits, seen):
    """An Add, Sub or Mul passes the cut on once it has come in by every input
    that is not a constant (the group's other layers bring it, tied_layers),
    all along one axis of the output: a removed channel outputs the op applied
    to what each input carries there. A constant input is one value or one per
    channel (its removed entries go)."""
    arrived = edits.arrived.setdefault(node.name, {})
    arrived[index] = cut
    if any(i not in arrived for i, t in enumerate(node.inputs) if graph.constant(t) is None):
        return None
    rank = len(graph.tensor(node.outputs[0]).shape)
    axes = {c.axis + rank - len(graph.tensor(node.inputs[i]).shape) for i, c in arrived.items()}
    if len(axes) > 1:
        return f"{node.op} {node.name!r} combines the channels along different axes"
    (axis,) = axes
    operands = []
    for i, t in enumerate(node.inputs):
        constant = graph.constant(t)
        if constant is None:
            operands.append(f64(arrived[i].values))
        elif constant.size == 1:
            operands.append(np.full(len(cut.removed), float(constant.reshape(-1)[0])))
        else:
            along = axis - (rank - constant.ndim)
            if along < 0 or constant.shape[along] != constant.size:
                return f"{node.op} {node.name!r} has a constant that varies along more than the channels"
            operands.append(np.take(f64(constant).reshape(-1), cut.removed))
            edits.append(slice_edit(node.name, i, along, cut.keep))
    values = get_op(node.op).evaluate(node.attrs, operands)[0]
    dtype = dtypes.to_numpy(graph.tensor(node.outputs[0]).dtype)
    return _pass_on(graph, node, Cut(axis, cut.size, cut.removed, values.astype(dtype)), edits, seen)


def _into_gemm(graph, node, cut, edits, seen):
    if cut.axis != (0 if node.attrs.trans_a else 1):
        return f"the channels are not the inner dimension of Gemm {node.name!r}"
    reason = _params_reason(graph, node, (1, 2))
    if reason:
        return reason
    b = param_values(graph, node.inputs[1])
    rows = b.T if node.attrs.trans_b else b  # B' [K, N]
    contribution = node.attrs.alpha * (f64(cut.values) @ rows[cut.removed])
    if np.any(contribution) and node.attrs.beta == 0:
        return f"Gemm {node.name!r} has beta=0 and cannot absorb the removed channels' output"
    return _end(graph, node, cut, edits, w_axis=1 if node.attrs.trans_b else 0,
                contribution=contribution / (node.attrs.beta or 1.0))


def _into_matmul(graph, node, cut, edits, seen):
    w_shape = graph.tensor(node.inputs[1]).shape
    if len(graph.tensor(node.inputs[0]).shape) != 2 or len(w_shape) != 2 or cut.axis != 1:
        return f"MatMul {node.name!r} is not a 2-D product over the channels"
    reason = _params_reason(graph, node, (1,))
    if reason:
        return reason
    if np.any(f64(cut.values) @ param_values(graph, node.inputs[1])[cut.removed]):
        return f"MatMul {node.name!r} has no bias to absorb the removed channels' output"
    return _end(graph, node, cut, edits, w_axis=0, contribution=None)


def _end(graph, node, cut, edits, w_axis: int, contribution: np.ndarray | None) -> str | None:
    """`node` consumes the channels: its weights lose them along w_axis and its bias
    absorbs `contribution` (per output channel)."""
    if contribution is not None and np.any(contribution):
        reason = _bias_fold_reason(graph, node, contribution)
        if reason:
            return reason
        edits.append(bias_edit(node.name, contribution))
    edits.append(slice_edit(node.name, 1, w_axis, cut.keep))
    edits.append(reinfer_edit(node.name, None))
    edits.ends[node.name] = cut.removed
    return None


_HANDLERS = {
    **{op: _through_activation for op in ACTIVATIONS},
    **{op: _through_pool for op in POOLS},
    "Resize": _through_pool,  # a constant channel resizes to itself, nearest or linear
    "QuantizeLinear": _through_qdq, "DequantizeLinear": _through_qdq,
    **{op: _through_reduce for op in REDUCTIONS},
    "BatchNormalization": _through_batchnorm, "Transpose": _through_transpose, "Reshape": _through_reshape,
    "Gather": _through_gather, "Slice": _through_slice,
    "PRelu": _through_prelu,
    # called with the index of the input the channels come in by (_follow)
    "Concat": _through_concat, **{op: _through_combine for op in COMBINE},
    "Conv": _into_conv, "Gemm": _into_gemm, "MatMul": _into_matmul,
    **{op: into_recurrent for op in RECURRENT},
}


# -- checks -----------------------------------------------------------------------------
def _channel_axis(node: Node, rank: int) -> int:
    return rank - 1 if node.attrs.channels_last else 1


def _axis_reason(graph: Graph, node: Node, cut: Cut) -> str | None:
    if cut.axis != _channel_axis(node, len(graph.tensor(node.inputs[0]).shape)):
        return f"the channels are not the channel axis of {node.op} {node.name!r}"
    return None


def _params_reason(graph: Graph, node: Node, indices) -> str | None:
    for i in indices:
        name = node.inputs[i] if i < len(node.inputs) else ""
        if name and not is_param(graph, name):
            return f"input {i} of {node.op} {node.name!r} is not a constant"
    return None


def _bias_fold_reason(graph: Graph, node: Node, contribution: np.ndarray) -> str | None:
    name = node.inputs[2] if len(node.inputs) > 2 else ""
    if not name or graph.tensor(name).is_constant:
        return None
    shape = graph.tensor(name).shape
    if np.broadcast_shapes(shape, contribution.shape) != shape:
        return f"the quantized bias of {node.op} {node.name!r} cannot widen to absorb the removed channels"
    return None
