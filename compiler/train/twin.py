"""The differentiable twin of a compiled graph.

A `Twin` holds nnc's float graph after the canonical clean-up (batch norm
folded, biases and clamps fused; NCHW, before the layout pass) and runs it in
PyTorch, batched on axis 0 (or, where a value moves or mixes that axis, as
in a transformer whose q, k and v come out of one permuted tensor or a
time-major LSTM, sample by sample: `sample_by_sample` says why; the samples
then run at once through torch.func.vmap, each alone at the IR's shapes,
falling back to a loop for an op vmap cannot batch, and the activation
ranges of a training batch move once after it ran rather than before each
quantizer reads them), in one of three modes:

- "float": the float model (the teacher of distillation);
- "train": fake quantization at every point where nnc's quantizer puts an
  integer tensor (nnc.quantizer.plan: observed activations int8 asymmetric,
  function-fixed ones such as Softmax and embedding-table lookups at their
  fixed parameters, a recurrent op's Y_h and initial h at its Y's), weights
  through their layer's quantizer (quantizers.py) and pruning mask
  (sparsity.py), straight-through gradients. A recurrent op's W and R go,
  with the hidden units channel pruning removes (gradually, the smallest L1
  norm first, as prune-channels ranks them) silenced (their W, R, B rows and
  R's columns zero), through nnc's int8 per-row grid (scales from the
  current weights, as the quantizer derives them; W's from the input columns
  export keeps, those that read units or channels removed upstream left out,
  as compile's are); its bias (Q3.12), its cell (int16 at a power-of-two
  scale, whose range the twin tracks for export) and the gates' table
  lookups stay float, a small difference the "exact" mode does not make;
- "exact": the integer graph nnc compiles from `export(twin)` (the canonical
  pipeline and the quantize pass, as `nnc compile` runs them), executed by
  exact.IntegerProgram, which reproduces nnc's reference interpreter bit for
  bit, so the twin's outputs are the C and az-sim targets' outputs. The
  integer graph is rebuilt whenever a parameter or buffer changed in place
  (an optimizer step); with gradients enabled the outputs carry the "train"
  mode's gradients (the accelerator's forward, a straight-through backward).

Invariants: the twin's graph is never changed after construction; weight and
bias parameters keep the IR's shapes, as do the recurrent W, R and B (one
parameter per constant tensor, in `recurrent`); keep-masks are 0/1 float buffers.
"""

from __future__ import annotations

import numpy as np
import torch

from nnc.errors import ShapeError, UnsupportedError
from nnc.ir import Graph, Node
from nnc.layer_select import RECURRENT_OPS, RECURRENT_PARAMETERS, recurrent_parameters, weighted_layers
from nnc.quantizer import plan
from nnc.quantizer.indexing import table_affine
from nnc.quantizer.params import FIXED_OUTPUT, Affine, affine_from_range
from nnc.ops.recurrent import GATES
from nnc.passes.prune_recurrent import unit_norms
from nnc.quantizer.weights import bias_floor, quantize_weights

from . import float_ops
from .exact import TORCH_DTYPES, IntegerProgram
from .export import cuts, integer_graph
from .compression import LayerPlan, UnitPlan
from .quantizers import ActivationQuantizer, CodebookQuantizer, WeightQuantizer, fake_quantize, round_ste
from .sparsity import channel_norms, scheduled

MODES = ("float", "train", "exact")
# planned points the twin quantizes ("cell" it only tracks, "cell_state" it leaves float): annotate.Point
POINT_SOURCES = ("observe", "fixed", "table", "input", "alias", "cell", "cell_state")
TRACKED = ("observe", "cell")  # the points whose ranges the twin tracks (annotate.Plan.observed)


class Twin(torch.nn.Module):
    """See the module docstring. Call with one batched tensor (single-input
    models) or {input name: tensor}; returns one tensor or {output: tensor}."""

    def __init__(self, graph: Graph, plans: dict[str, LayerPlan] | None = None,
                 units: dict[str, UnitPlan] | None = None):
        super().__init__()
        float_ops.check_kernels(graph)
        if problem := float_ops.sample_problem(graph):
            raise UnsupportedError(problem)
        self.graph = graph
        self.sample_by_sample = float_ops.batch_problem(graph)  # why the batch cannot run at once, or None
        self.layer_plans = plans or {}
        self.mode = "float" if plans is None else "train"
        self._layers = {node.name: f"layer{i}" for i, node in enumerate(weighted_layers(graph))}
        self.weights = torch.nn.ParameterDict()
        self.biases = torch.nn.ParameterDict()
        for node in weighted_layers(graph):
            key = self._layers[node.name]
            self.weights[key] = torch.nn.Parameter(_tensor(graph.constant(node.inputs[1])))
            bias = graph.constant(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] else None
            if bias is not None:
                self.biases[key] = torch.nn.Parameter(_tensor(bias))
        self._recurrent = {name: f"rnn{i}" for i, name in enumerate(recurrent_parameters(graph))}
        self.recurrent = torch.nn.ParameterDict({key: torch.nn.Parameter(_tensor(graph.constant(name)))
                                                 for name, key in self._recurrent.items()})
        self.unit_plans = units or {}  # recurrent layer -> the hidden units channel pruning removes
        self._units = {name: f"units{i}" for i, name in enumerate(self.unit_plans)}
        for name, key in self._units.items():
            self.register_buffer(f"keep_{key}", torch.ones(graph.node(name).attrs.hidden_size))
        self._constants = {name: _tensor(t.data) for name, t in graph.tensors.items() if t.is_constant}
        self.points, self._affines, self._aliases = _points(graph) if plans is not None else ({}, {}, {})
        self.activations = torch.nn.ModuleDict()
        self.quantizers = torch.nn.ModuleDict()
        self._progress = 0.0
        self._exact = None  # (version key, IntegerProgram)
        self.calibrated = False
        self._vectorized = True  # sample by sample through torch.func.vmap, until an op refuses it
        self._columns: dict[str, torch.Tensor] = {}  # recurrent layer -> its W's input columns export keeps
        self._columns_of: bytes | None = None  # the masks `_columns` was found for

    # -- set-up ----------------------------------------------------------------------------
    def calibrate(self, samples: dict[str, torch.Tensor]) -> None:
        """Activation ranges (min/max over `samples`) and the weight quantizers, as
        nnc's one-shot quantization sets them; masks start dense when the
        sparsity is scheduled (N:M patterns start applied)."""
        ranges: dict[str, list[float]] = {}
        with torch.no_grad():
            self._run(self._batch(samples), "float", observe=ranges)
        for i, name in enumerate(self.observed):
            lo, hi = ranges[name]
            self.activations[f"point{i}"] = ActivationQuantizer(lo, hi)
        for node in weighted_layers(self.graph):
            self._add_quantizer(node)
        self.calibrated = True
        self.set_progress(0.0)

    def _add_quantizer(self, node: Node) -> None:
        key, layer = self._layers[node.name], self.layer_plans[node.name]
        w = self.weights[key].detach().numpy().astype(np.float64)
        bias = self.biases[key].detach().numpy().reshape(-1) if key in self.biases else None
        floor = None if bias is None else bias_floor(np.broadcast_to(bias, (w.shape[layer.axis],)),
                                                     self.input_scale(node))
        if layer.codebook:
            _, scale = quantize_weights(w, layer.axis, floor, 8)
            keep = layer.rule.keep(w, 1.0, self.tied_norms(node.name)) if layer.rule.prunes else np.ones(w.shape, bool)
            self.quantizers[key] = CodebookQuantizer(scale, w, keep, 1 << layer.bits, layer.axis)
        else:
            _, scale = quantize_weights(w, layer.axis, floor, layer.bits)
            self.quantizers[key] = WeightQuantizer(scale, layer.bits, layer.axis, w.shape)
        self.register_buffer(f"keep_{key}", torch.ones(w.shape))

    # -- state -------------------------------------------------------------------------------
    @property
    def observed(self) -> list[str]:
        """The tracked points (TRACKED), in plan order."""
        return [name for name, source in self.points.items() if source in TRACKED]

    def activation(self, tensor: str) -> ActivationQuantizer:
        return self.activations[f"point{self.observed.index(tensor)}"]

    def quantizer(self, layer: str):
        return self.quantizers[self._layers[layer]]

    def weight(self, layer: str) -> torch.nn.Parameter:
        return self.weights[self._layers[layer]]

    def recurrent_weight(self, tensor: str) -> torch.nn.Parameter:
        """The parameter of recurrent weight tensor `tensor` (a W, R or B)."""
        return self.recurrent[self._recurrent[tensor]]

    def units(self, layer: str) -> torch.Tensor:
        """The 0/1 keep-mask [H] of recurrent `layer`'s hidden units."""
        return getattr(self, f"keep_{self._units[layer]}")

    def bias(self, layer: str) -> torch.nn.Parameter | None:
        key = self._layers[layer]
        return self.biases[key] if key in self.biases else None

    def keep(self, layer: str) -> torch.Tensor:
        return getattr(self, f"keep_{self._layers[layer]}")

    def input_scale(self, node: Node) -> float:
        """The scale nnc gives the layer's input activation."""
        name = self._quantized_source(node.inputs[0])
        if name in self._affines:
            return self._affines[name].scale
        return affine_from_range(*self.activation(name).bounds()).scale

    def _quantized_source(self, name: str) -> str:
        """The observed or fixed point whose parameters tensor `name` carries."""
        while self.points.get(name) in ("input", "alias"):
            name = self._aliases[name] if self.points[name] == "alias" else self.graph.producer(name).inputs[0]
        if self.points.get(name) not in ("observe", "fixed", "table"):
            raise UnsupportedError(f"tensor {name!r} has no quantization point the twin knows")
        return name

    def set_progress(self, progress: float) -> None:
        """Masks of every pruned layer at `progress` of training (0..1)."""
        self._progress = float(progress)
        with torch.no_grad():
            group_norms: dict[tuple[str, ...], np.ndarray | None] = {}  # a tied group's summed norms, once
            for name, layer in self.layer_plans.items():
                if layer.rule.prunes:
                    if layer.tied not in group_norms:
                        group_norms[layer.tied] = self.tied_norms(name)
                    keep = layer.rule.keep(self.weight(name).detach().numpy(), self._progress,
                                           group_norms[layer.tied])
                    self.keep(name).copy_(torch.from_numpy(keep.astype(np.float32)))
            group_keeps: dict[tuple[str, ...], torch.Tensor] = {}  # a tied group's members share one mask
            for name, units in self.unit_plans.items():
                if units.tied not in group_keeps:
                    norms = sum(self._unit_norms(member) for member in units.tied)
                    count = round(scheduled(units.count / len(norms), self._progress) * len(norms))
                    keep = np.ones(len(norms), np.float32)
                    keep[np.argsort(norms, kind="stable")[:count]] = 0.0
                    group_keeps[units.tied] = torch.from_numpy(keep)
                self.units(name).copy_(group_keeps[units.tied])
        self._find_columns()

    def _find_columns(self) -> None:
        """The input columns of each recurrent layer's W that export's plans
        (export.cuts) keep: the channels or units the masks remove upstream
        leave, so compile computes W's int8 row scales without them, and train
        mode does the same (`int8_rows`). Found again when a mask changed."""
        channel_layers = [name for name, layer in self.layer_plans.items() if layer.rule.channels]
        if not any(node.op in RECURRENT_OPS for node in self.graph.nodes()) or \
                not (self.unit_plans or channel_layers):
            return
        masks = b"".join([*(self.units(name).numpy().tobytes() for name in self.unit_plans),
                          *(self.keep(name).numpy().tobytes() for name in channel_layers)])
        if masks == self._columns_of:
            return
        columns: dict[str, torch.Tensor] = {}
        for found in cuts(self.graph, self):  # found on the uncut graph: columns as the twin's W has them
            for consumer, removed in found.edits.ends.items():
                node = self.graph.node(consumer)
                if node.op in RECURRENT_OPS:
                    kept = columns.setdefault(consumer, torch.ones(self.graph.tensor(node.inputs[1]).shape[-1]))
                    kept[torch.from_numpy(np.asarray(removed, np.int64))] = 0.0
        self._columns, self._columns_of = columns, masks

    def _unit_norms(self, layer: str) -> np.ndarray:
        """prune-channels' ranking of recurrent `layer`'s hidden units, on its current weights."""
        node = self.graph.node(layer)
        return unit_norms(node, *(self.recurrent_weight(node.inputs[i]).detach().numpy().astype(np.float64)
                                  for i in (1, 2)))

    def tied_norms(self, name: str) -> np.ndarray | None:
        """The per-channel L1 norms summed over the layers tied to `name` (their
        channels go together, ranked by this sum as prune-channels ranks them);
        None for a layer that is not tied."""
        tied = self.layer_plans[name].tied
        if not tied:
            return None
        return sum(channel_norms(self.weight(t).detach().numpy(), self.layer_plans[t].axis) for t in tied)

    def set_mode(self, mode: str) -> "Twin":
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        if mode != "float" and not self.calibrated and self.points:
            raise UnsupportedError("the twin is not calibrated yet (call calibrate first)")
        self.mode = mode
        return self

    def grid_penalty(self) -> torch.Tensor:
        """Mean over layers of each quantizer's distance of the weights to their grid."""
        terms = [self.quantizer(n).grid_penalty(self.weight(n)) for n in self.layer_plans]
        return torch.stack(terms).mean() if terms else torch.zeros(())

    # -- forward -----------------------------------------------------------------------------
    def forward(self, inputs):
        batch = self._batch(inputs)
        if self.mode == "exact":
            outputs = self._exact_outputs(batch)
        else:
            outputs = self._run(batch, self.mode)
        return outputs[self.graph.outputs[0]] if len(outputs) == 1 else outputs

    def run(self, inputs, features: list[str]) -> dict[str, torch.Tensor]:
        """{name: value} of every output and of the tensors in `features` that the
        graph has, in the current mode ("exact" runs "train": intermediate values
        of the integer program are not float tensors of this graph)."""
        return self._run(self._batch(inputs), "train" if self.mode == "exact" else self.mode, keep=features)

    def layer_outputs(self) -> list[str]:
        """The output tensor of every weighted layer (the features of distillation)."""
        return [node.outputs[0] for node in weighted_layers(self.graph)]

    def _exact_outputs(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        exact = self.integer_program()({name: x.detach().to(TORCH_DTYPES[self.graph.tensor(name).dtype])
                                        for name, x in batch.items()})  # token ids (float in batches) as ints
        if not torch.is_grad_enabled():
            return exact
        trained = self._run(batch, "train")
        return {name: trained[name] + (exact[name].to(trained[name].dtype) - trained[name]).detach()
                for name in trained}

    def integer_program(self):
        """The exact integer program of the current parameters, cached until a
        parameter or buffer is replaced or changed in place."""
        key = tuple((id(t), t._version) for t in [*self.parameters(), *self.buffers()])
        if self._exact is None or self._exact[0] != key:
            self._exact = (key, IntegerProgram(integer_graph(self)))
        return self._exact[1]

    def _run(self, batch: dict[str, torch.Tensor], mode: str, observe: dict | None = None,
             keep: list[str] = ()) -> dict:
        weights = {layer: self._layer_weights(layer, mode) for layer in self._layers}  # once for all samples
        if self.sample_by_sample is None:
            return self._run_batch(batch, weights, mode, observe, keep)
        if observe is None and self._vectorized:
            try:
                outputs, gathered = self._run_vectorized(batch, weights, mode, keep)
            except torch.OutOfMemoryError:
                raise
            except RuntimeError:  # an op torch.func.vmap has no batching rule for: the loop below computes it
                self._vectorized = False
            else:
                for name, value in gathered.items():
                    self.activation(name).observe(value)
                return outputs
        gathered: dict[str, list[torch.Tensor]] = {}
        count = len(next(iter(batch.values())))
        runs = [self._run_batch({name: x[i:i + 1] for name, x in batch.items()}, weights, mode, observe, keep,
                                gathered) for i in range(count)]
        for name, values in gathered.items():
            self.activation(name).observe(torch.cat(values))
        return {name: torch.cat([run[name] for run in runs]) if self._leading_one(name) else
                torch.stack([run[name] for run in runs]) for name in runs[0]}

    def _leading_one(self, name: str) -> bool:
        """Whether value `name`'s axis 0 is the batch's 1 (samples joined on it),
        or one sample's whole value (a CTC head's [T, tokens]: stacked in front)."""
        return self.graph.tensor(name).shape[:1] == (1,)

    def _run_vectorized(self, batch: dict[str, torch.Tensor], weights: dict, mode: str,
                        keep: list[str]) -> tuple[dict, dict]:
        """The sample-by-sample run as one torch.func.vmap over the samples: the
        same values (each sample still runs alone at the IR's shapes), several
        times faster; returns (outputs, {point: its values, to observe})."""
        from torch.func import vmap

        names = list(batch)

        def one_sample(*values):
            gathered: dict[str, list[torch.Tensor]] = {}
            outputs = self._run_batch(dict(zip(names, values)), weights, mode, None, keep, gathered)
            return outputs, {name: torch.cat(found) for name, found in gathered.items()}

        outputs, gathered = vmap(one_sample, randomness="error")(*(batch[name].unsqueeze(1) for name in names))
        return {name: value.flatten(0, 1) if self._leading_one(name) else value
                for name, value in outputs.items()}, gathered

    def _run_batch(self, batch: dict[str, torch.Tensor], weights: dict, mode: str, observe: dict | None = None,
                   keep: list[str] = (), gathered: dict | None = None) -> dict:
        """The graph on `batch` at once, or (`gathered` given: sample by sample)
        on one sample, each value checked against its IR shape and the training
        activation quantizers' inputs gathered there instead of observed;
        `weights` is {layer: (weight, bias)}, `_layer_weights` of the batch."""
        env: dict[str, torch.Tensor] = {}
        for name, x in batch.items():
            env[name] = self._point(name, x, mode, observe, gathered)
        for node in self.graph.nodes():
            args = [None if not t else env[t] if t in env else self._constants[t] for t in node.inputs]
            if node.name in weights:
                args[1], bias = weights[node.name]
                if bias is not None:
                    args[2] = bias
            for i in RECURRENT_PARAMETERS if node.op in RECURRENT_OPS else ():
                if i < len(node.inputs) and node.inputs[i] in self._recurrent:
                    args[i] = self._recurrent_weights(node, i, mode)
            for name, value in zip(node.outputs, float_ops.run_node(node, args, batched=gathered is None)):
                if name:
                    if gathered is not None and tuple(value.shape) != self.graph.tensor(name).shape:
                        raise UnsupportedError(f"node {node.name!r} ({node.op}): its training kernel gives "
                                               f"{list(value.shape)} for {name!r} of IR shape "
                                               f"{list(self.graph.tensor(name).shape)}")
                    env[name] = self._point(name, value, mode, observe, gathered)
        return {name: env[name] for name in [*self.graph.outputs, *keep] if name in env}

    def _layer_weights(self, layer: str, mode: str):
        w, bias = self.weight(layer), self.bias(layer)
        if mode == "float" or not self.layer_plans:
            return w, bias
        return self.quantizer(layer)(w, self.keep(layer)), self.masked_bias(layer)

    def _recurrent_weights(self, node: Node, index: int, mode: str) -> torch.Tensor:
        """Input `index` of recurrent `node` in mode "train": W, R or B with the
        hidden units its mask removes silent (their rows zero, and R's columns
        that read them: with a zero initial state they then carry 0, which
        export's plan removes exactly), W and R on nnc's int8 per-row grid."""
        value = self.recurrent_weight(node.inputs[index])
        if mode == "float":
            return value
        if node.name in self.unit_plans:
            keep = self.units(node.name)
            rows = keep.repeat(GATES[node.op] * (2 if index == 3 else 1))
            value = value * (rows.reshape(1, -1) if index == 3 else rows.reshape(1, -1, 1))
            if index == 2:
                value = value * keep.reshape(1, 1, -1)
        return value if index == 3 else int8_rows(value, self._columns.get(node.name) if index == 1 else None)

    def masked_bias(self, layer: str) -> torch.Tensor | None:
        """The bias, zero in the output channels the layer's mask removes whole."""
        bias = self.bias(layer)
        plan = self.layer_plans[layer]
        if bias is None or not plan.rule.channels:
            return bias
        keep = self.keep(layer)
        alive = keep.transpose(0, plan.axis).reshape(keep.shape[plan.axis], -1).amax(dim=1)
        return bias * alive.reshape(bias.shape) if bias.numel() == alive.numel() else bias

    def _point(self, name: str, x: torch.Tensor, mode: str, observe: dict | None,
               gathered: dict | None = None) -> torch.Tensor:
        source = self.points.get(name)
        if observe is not None and source in TRACKED:
            finite = x[torch.isfinite(x)]  # NaN and infinities move no range (as in calibration.py)
            lo, hi = (float(finite.min()), float(finite.max())) if finite.numel() else (0.0, 0.0)
            seen = observe.setdefault(name, [lo, hi])
            seen[0], seen[1] = min(seen[0], lo), max(seen[1], hi)
        if mode == "float" or source not in ("observe", "fixed", "table", "alias", "cell"):
            return x
        if source in ("fixed", "table"):
            return fake_quantize(x, self._affines[name])
        if source == "alias":
            return self.activation(self._aliases[name]).quantize(x)
        quantizer = self.activation(name)
        if gathered is not None and quantizer.training:  # observed once per batch, after it ran (`_run`)
            gathered.setdefault(name, []).append(x.detach())
        elif quantizer.training:
            quantizer.observe(x)
        return x if source == "cell" else quantizer.quantize(x)

    def _batch(self, inputs) -> dict[str, torch.Tensor]:
        if isinstance(inputs, torch.Tensor):
            if len(self.graph.inputs) != 1:
                raise ShapeError(f"the model has inputs {self.graph.inputs}; give a dict of tensors")
            inputs = {self.graph.inputs[0]: inputs}
        missing = [n for n in self.graph.inputs if n not in inputs]
        if missing:
            raise ShapeError(f"missing inputs {missing}; the model expects {self.graph.inputs}")
        batch = {}
        for name in self.graph.inputs:
            x, shape = inputs[name], self.graph.tensor(name).shape
            if tuple(x.shape[1:]) != tuple(shape[1:]):
                raise ShapeError(f"input {name!r} has shape {list(x.shape)}, expected [N, {', '.join(map(str, shape[1:]))}]")
            batch[name] = x
        return batch


def _points(graph: Graph) -> tuple[dict[str, str], dict[str, Affine], dict[str, str]]:
    """({tensor: source}, {fixed or table tensor: its parameters}, {alias: the
    recurrent Y whose parameters it takes}) of nnc's quantization plan for
    `graph` (a point is the end of its op's clamp chain); UnsupportedError for
    a point the twin does not know."""
    points, affines, aliases = {}, {}, {}
    for point in plan(graph).points:
        if point.source not in POINT_SOURCES:
            what = point.node.op if point.node is not None else "input"
            raise UnsupportedError(f"training: tensor {point.tensor!r} ({what}) is quantized as {point.source!r}, "
                                   "which the training twin does not support yet")
        points[point.tensor] = point.source
        if point.source == "fixed":
            affines[point.tensor] = FIXED_OUTPUT[point.node.op]
        elif point.source == "table":
            affines[point.tensor] = table_affine(graph, point.node)
        elif point.source == "alias":
            aliases[point.tensor] = point.node.outputs[0]
    return points, affines, aliases


def int8_rows(w: torch.Tensor, columns: torch.Tensor | None = None) -> torch.Tensor:
    """w [..., K] fake-quantized symmetric per row (every index but the last) on
    the int8 grid, the scales max|row| / 127 of the current weights (1 for an
    all-zero row), as rules_recurrent quantizes W and R; straight-through.
    `columns`, a 0/1 mask [K]: only those columns, which alone set the scales;
    the others (which export cuts) stay as they are."""
    kept = w.detach().abs() if columns is None else w.detach().abs() * columns
    peak = kept.amax(dim=-1, keepdim=True).double()
    scale = torch.where(peak > 0, peak / 127, torch.ones_like(peak)).float()  # float64, then float32, as numpy
    quantized = torch.clamp(round_ste(w / scale), -127, 127) * scale
    return quantized if columns is None else torch.where(columns.bool(), quantized, w)


def _tensor(array: np.ndarray) -> torch.Tensor:
    array = np.asarray(array)
    return torch.tensor(array, dtype=torch.float32) if array.dtype.kind == "f" else torch.from_numpy(array.copy())
