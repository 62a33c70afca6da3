"""az-sim: executes a decoded `Program` (never the IR) bit-exactly and accounts
cycles, bytes and energy per layer. The machine and its assumptions are in
docs/azsim.md; the cost model, per layer and per inference, is:

    bytes_loaded    = weight stream bytes + constant operand bytes      (off-chip → chip)
                      (weight stream bytes: the payload, whatever its format, with the
                      format's own fields: rle's run width and count, a codebook's table)
    load_cycles     = ⌈bytes_loaded / bus_bytes_per_cycle⌉
    decoder_cycles  = ⌈weight stream bytes / decoder_bytes_per_cycle⌉
    compute_cycles  = ⌈macs_executed / mac_lanes⌉
    post_cycles     = ⌈ppu_elements · post_cycles_per_output⌉    (ppu_elements: output elements;
                      × window size for pooling, × 2 for softmax (plus one per row for
                      log-softmax), 0 for an aliased Reshape)
    cycles          = max(load_cycles, decoder_cycles, compute_cycles) + post_cycles + layer_overhead_cycles
                      (a Reshape whose output the memory plan aliases to its input is a view:
                      the chip runs nothing for it, and every figure is 0)
    sram_bytes      = activation bytes read + activation bytes written
                      + 2 · decoded weight bytes (decoder writes, MAC array reads) + constant bytes
    energy_pj       = macs_executed · energy_pj_per_mac + sram_bytes · energy_pj_per_sram_byte
                      + bytes_loaded · energy_pj_per_offchip_byte

    macs_executed   = macs_total − macs_skipped; a MAC is skipped when its weight lies in an
                      all-zero group of `zero_skip_group` consecutive weights along the
                      reduction axis, or (`skip_zero_activations`) its activation is zero
                      (equals the zero point, padding included)

    dma_in_bytes    = bytes_loaded, dma_out_bytes = 0, tiles = 1
    stall_cycles    = max(load_cycles, decoder_cycles, compute_cycles) − compute_cycles
    utilization     = macs_executed / (mac_lanes · cycles)

Layers run one after another: totals are sums, latency_ms = cycles / (clock_mhz · 1000).
Weights are streamed from off-chip on every inference, one layer at a time. A
layer with a `tiling` (what the lowering planned because it did not fit) runs piece
by piece (tiled.py) and costs what pipeline.py says: DMA and decoding of piece
i+1 overlap the compute of piece i. A layer without one whose decoded weights
(a recurrent layer's w and r together) exceed weight SRAM, or whose activations (at their planned offsets) reach beyond
activation SRAM, is refused (UnsupportedError), as is a tiled layer whose chunks
or staging area do not fit this machine.

`Simulator(program, hw)` decodes each layer's weights once (the host-side cost of
preparing the model, not part of the accounting) and `run(inputs)` executes one inference;
`simulate(program, inputs, hw)` does both, reusing the prepared simulator of the
same program object (the last 8 are kept).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace
from fractions import Fraction
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

from nnc.errors import BlobError, ShapeError, UnsupportedError

from nnc import packing
from nnc.blas_threads import blas_restore, blas_single_thread
from .hardware import Hardware, load_hardware
from .kernels import LayerContext, Work, build
from .program import DTYPE_CODES, LayerDesc, Program, TensorDesc
from .sim_stats import LayerStats, SimStats, utilization, view_stats
from .tile_plan import RECURRENT_WEIGHTS, check_recurrent_weights
from nnc.records import record

if TYPE_CHECKING:
    from .pipeline import PieceCost

NUMPY_TYPES = {DTYPE_CODES["i8"]: "i1", DTYPE_CODES["u8"]: "u1", DTYPE_CODES["i16"]: "<i2",
               DTYPE_CODES["i32"]: "<i4", DTYPE_CODES["i64"]: "<i8", DTYPE_CODES["f32"]: "<f4"}


@record
class _Step:
    run: Callable[[], int | None]
    stats: LayerStats  # the static accounting (activation skipping off)


class Simulator:
    """A program prepared for one machine: activation SRAM, decoded weights, kernels."""

    def __init__(self, program: Program, hw: Hardware | None = None):
        self.program = program
        self.hw = hw if hw is not None else load_hardware()
        self._sram = np.zeros(_sram_size(program), np.uint8)
        self._external = np.zeros(_external_size(program), np.uint8)  # off-chip activation memory
        self._arrays = [self._array(i, t) for i, t in enumerate(program.tensors)]
        for index in (*program.inputs, *program.outputs):
            if not 0 <= index < len(program.tensors) or program.tensors[index].offset < 0:
                raise BlobError(f"program input or output {index} has no place in activation SRAM")
        self._decoded: dict[int, np.ndarray] = {}  # stream index -> decoded weights
        self._pieces: dict[str, list[PieceCost]] = {}  # tiled layer name -> its pieces' static costs
        self._steps = [self._prepare(layer) for layer in program.layers]
        self._runs = tuple(step.run for step in self._steps)
        self._inputs = tuple((program.tensors[i].name, self._arrays[i]) for i in program.inputs)
        self._outputs = tuple((program.tensors[i].name, self._arrays[i]) for i in program.outputs)

    def run(self, inputs: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], SimStats]:
        """One inference: inputs by tensor name -> (outputs by tensor name, stats).
        Unless a layer reports data-dependent MAC counts (activation zero-skipping),
        the stats are the static ones, totalled once per simulator (SimStats is frozen)."""
        self._write_inputs(inputs)
        changed = blas_single_thread()
        try:
            executed = [run() for run in self._runs]
        finally:
            blas_restore(changed)
        if executed.count(None) == len(executed):
            stats = self.static_totals
        else:
            stats = SimStats.of(self.hw, tuple(step.stats if count is None else self._recount(step.stats, count)
                                               for step, count in zip(self._steps, executed)))
        return {name: array.copy() for name, array in self._outputs}, stats

    @cached_property
    def static_totals(self) -> SimStats:
        """The stats of an inference whose layers all run their static MAC counts:
        those of every inference unless the stats are `data_dependent`."""
        return SimStats.of(self.hw, tuple(step.stats for step in self._steps))

    @property
    def data_dependent(self) -> bool:
        """Whether an inference's stats depend on its inputs: only on a machine
        that skips zero activations, where each layer counts the MACs it ran."""
        return self.hw.skip_zero_activations

    # -- preparation --------------------------------------------------------------------
    def _array(self, index: int, t: TensorDesc) -> np.ndarray | None:
        """A view of activation SRAM, a constant's data, or None (no data: a weight slot)."""
        if t.dtype not in NUMPY_TYPES:
            raise BlobError(f"tensor {index} ({t.name!r}) has unknown dtype code {t.dtype}")
        dtype = np.dtype(NUMPY_TYPES[t.dtype])
        size = math.prod(t.shape) * dtype.itemsize
        if t.offset >= 0:
            return np.ndarray(t.shape, dtype, buffer=self._external if t.external else self._sram, offset=t.offset)
        if t.data is None:
            return None
        if len(t.data) != size:
            raise BlobError(f"constant {t.name!r} holds {len(t.data)} bytes, its shape needs {size}")
        return np.frombuffer(t.data, dtype).reshape(t.shape)

    def _prepare(self, layer: LayerDesc) -> _Step:
        self._check_capacity(layer)
        if layer.tiling is not None:
            return self._prepare_tiled(layer)
        if any(i >= 0 and self.program.tensors[i].external for i in (*layer.inputs, *layer.outputs)):
            raise BlobError(f"layer {layer.name!r} touches a tensor in external memory but is not tiled")
        stream = self._weights(layer)
        args = [self._operand(i, layer) for i in layer.inputs]
        outs = [self._operand(i, layer) for i in layer.outputs]
        if any(self.program.tensors[i].offset < 0 for i in layer.outputs):
            raise BlobError(f"layer {layer.name!r} writes a tensor without a place in activation SRAM")
        aliased = len(layer.inputs) >= 1 and len(layer.outputs) == 1 and layer.inputs[0] >= 0 and \
            self.program.tensors[layer.inputs[0]].offset == self.program.tensors[layer.outputs[0]].offset
        ctx = LayerContext(layer, args, outs, stream, self.hw.zero_skip_group,
                           self.hw.skip_zero_activations, aliased)
        built = build(ctx)
        if built.work.view:  # the chip has nothing to run
            return _Step(built.run, view_stats(layer.name, layer.op))
        return _Step(built.run, self._static_stats(layer, built.work))

    def _operand(self, index: int, layer: LayerDesc) -> np.ndarray | None:
        if index == -1:
            return None
        if not 0 <= index < len(self._arrays):
            raise BlobError(f"layer {layer.name!r} refers to tensor {index}, which does not exist")
        return self._arrays[index]

    def _weights(self, layer: LayerDesc) -> np.ndarray | None:
        """The layer's decoded weights (None without a stream), each stream decoded
        once, and only after its size is known to fit weight SRAM."""
        index = layer.weights
        if index < 0:
            return None
        if index >= len(self.program.streams):
            raise BlobError(f"layer {layer.name!r} refers to weight stream {index}, which does not exist")
        size = math.prod(self.program.streams[index].shape)
        if size > self.hw.weight_sram_bytes:
            said = (f"layer {layer.name!r} ({layer.op}): its decoded weights take {size} bytes, more than the "
                    f"{self.hw.weight_sram_bytes}-byte weight SRAM of {self.hw.name!r}")
            raise UnsupportedError(f"{said} (compile with hw set to this machine to stream them in chunks)",
                                   cli=f"{said} (compile for this machine, --hw, to stream them in chunks)")
        return self._decode(index)

    def _prepare_tiled(self, layer: LayerDesc) -> _Step:
        """A layer run piece by piece (tiled.py), its static accounting by pipeline.py."""
        def error(why: str) -> BlobError:
            return BlobError(f"layer {layer.name!r} ({layer.op}): {why}")

        from .tiled import build_tiled  # tiled layers only (and pipeline.py, below)

        tiled = build_tiled(layer, self.program, self._arrays, self._sram, self._decode, self.hw, error)
        self._pieces[layer.name] = tiled.costs
        costs = tiled.costs
        stats = LayerStats(
            name=layer.name, op=layer.op, macs_total=sum(c.macs_total for c in costs), macs_executed=0,
            macs_skipped=0, bytes_loaded=sum(c.in_bytes for c in costs),
            weight_stream_bytes=sum(c.weight_bytes for c in costs), sram_bytes=sum(c.sram_bytes for c in costs),
            load_cycles=sum(_ceil_div(c.in_bytes, self.hw.bus_bytes_per_cycle)
                            + _ceil_div(c.out_bytes, self.hw.bus_bytes_per_cycle) for c in costs),
            decoder_cycles=sum(_ceil_div(c.weight_bytes, self.hw.decoder_bytes_per_cycle) for c in costs),
            compute_cycles=0, post_cycles=math.ceil(sum(c.ppu_elements for c in costs)
                                                    * _exact(self.hw.post_cycles_per_output)),
            cycles=0, energy_uj=0.0, dma_in_bytes=sum(c.in_bytes for c in costs),
            dma_out_bytes=sum(c.out_bytes for c in costs), tiles=len(costs))
        return _Step(tiled.run, self._recount(stats, tuple(c.macs_executed for c in costs)))

    def _decode(self, index: int) -> np.ndarray:
        """Stream `index` decoded (once per simulator)."""
        if not 0 <= index < len(self.program.streams):
            raise BlobError(f"weight stream {index} does not exist")
        if index not in self._decoded:
            self._decoded[index] = _decode_stream(index, self.program.streams[index])
        return self._decoded[index]

    def _check_capacity(self, layer: LayerDesc) -> None:
        where = f"layer {layer.name!r} ({layer.op})"
        if layer.op in RECURRENT_WEIGHTS:
            held = [self.program.tensors[layer.inputs[k]] for k in RECURRENT_WEIGHTS[layer.op]
                    if k < len(layer.inputs) and 0 <= layer.inputs[k] < len(self.program.tensors)]
            check_recurrent_weights(layer.name, layer.op, sum(_nbytes(t) for t in held), self.hw)
        placed = [self.program.tensors[i] for i in (*layer.inputs, *layer.outputs)
                  if i >= 0 and self.program.tensors[i].offset >= 0 and not self.program.tensors[i].external]
        end = max((t.offset + _nbytes(t) for t in placed), default=0)
        if layer.tiling is not None and layer.tiling.staging >= 0:
            end = max(end, layer.tiling.staging + layer.tiling.staging_bytes)
        if end > self.hw.activation_sram_bytes:
            working = sum(_nbytes(t) for t in placed)
            said = (f"{where}: its activations ({working} bytes) are planned up to byte {end}, beyond the "
                    f"{self.hw.activation_sram_bytes}-byte activation SRAM of {self.hw.name!r}")
            raise UnsupportedError(f"{said} (compile with hw set to this machine to tile them)",
                                   cli=f"{said} (compile for this machine, --hw, to tile them)")

    def _static_stats(self, layer: LayerDesc, work: Work) -> LayerStats:
        tensors = self.program.tensors
        stream_bytes = len(self.program.streams[layer.weights].payload) if layer.weights >= 0 else 0
        constant = sum(_nbytes(tensors[i]) for i in layer.inputs if i >= 0 and tensors[i].offset < 0
                       and tensors[i].data is not None)
        activation = sum(_nbytes(tensors[i]) for i in (*layer.inputs, *layer.outputs)
                         if i >= 0 and tensors[i].offset >= 0)
        decoded = math.prod(self.program.streams[layer.weights].shape) if layer.weights >= 0 else 0
        hw = self.hw
        bytes_loaded = stream_bytes + constant
        stats = LayerStats(
            name=layer.name, op=layer.op, macs_total=work.macs_total, macs_executed=work.macs_executed,
            macs_skipped=work.macs_total - work.macs_executed, bytes_loaded=bytes_loaded,
            weight_stream_bytes=stream_bytes, sram_bytes=activation + 2 * decoded + constant,
            load_cycles=_ceil_div(bytes_loaded, hw.bus_bytes_per_cycle),
            decoder_cycles=_ceil_div(stream_bytes, hw.decoder_bytes_per_cycle),
            compute_cycles=0, post_cycles=math.ceil(work.ppu_elements * _exact(hw.post_cycles_per_output)),
            cycles=0, energy_uj=0.0, dma_in_bytes=bytes_loaded)
        return self._recount(stats, work.macs_executed)

    def _recount(self, stats: LayerStats, executed: int | tuple[int, ...]) -> LayerStats:
        """`stats` with `executed` MACs (per piece for a tiled layer): compute,
        stall and total cycles, utilization and energy."""
        hw, costs = self.hw, self._pieces.get(stats.name)
        if costs is None:  # a whole layer streams: load, decode and compute overlap
            total = executed
            compute = -(-executed // hw.mac_lanes)
            core = max(stats.load_cycles, stats.decoder_cycles, compute)
        else:  # a tiled layer: the double-buffered pipeline of pipeline.py
            from .pipeline import pipeline_cycles

            per_piece = executed if isinstance(executed, tuple) else tuple(c.macs_executed for c in costs)
            total = sum(per_piece)
            computes = [-(-e // hw.mac_lanes) for e in per_piece]
            fetch = [max(_ceil_div(c.in_bytes, hw.bus_bytes_per_cycle),
                         _ceil_div(c.weight_bytes, hw.decoder_bytes_per_cycle)) for c in costs]
            core = pipeline_cycles(fetch, computes, [_ceil_div(c.out_bytes, hw.bus_bytes_per_cycle) for c in costs])
            compute = sum(computes)
        cycles = core + stats.post_cycles + hw.layer_overhead_cycles
        energy_pj = (total * hw.energy_pj_per_mac + stats.sram_bytes * hw.energy_pj_per_sram_byte
                     + (stats.dma_in_bytes + stats.dma_out_bytes) * hw.energy_pj_per_offchip_byte)
        return replace(stats, macs_executed=total, macs_skipped=stats.macs_total - total, compute_cycles=compute,
                       cycles=cycles, energy_uj=energy_pj * 1e-6, stall_cycles=core - compute,
                       utilization=utilization(total, hw.mac_lanes, cycles))

    # -- one inference ------------------------------------------------------------------
    def _write_inputs(self, inputs: dict[str, np.ndarray]) -> None:
        """Each input into its place; arrays of exactly the input's dtype and shape
        are copied without further checks (every value fits)."""
        if len(inputs) == len(self._inputs):
            for name, target in self._inputs:
                value = inputs.get(name)
                if type(value) is not np.ndarray or value.dtype != target.dtype or value.shape != target.shape:
                    break
                target[...] = value
            else:
                return
        names = [name for name, _ in self._inputs]
        missing, extra = [n for n in names if n not in inputs], [n for n in inputs if n not in names]
        if missing or extra:
            raise ShapeError(f"inputs do not match the program: missing {missing}, unknown {extra}; "
                             f"expected {names}")
        for index, name in zip(self.program.inputs, names):
            target = self._arrays[index]
            value = np.asarray(inputs[name])
            if value.shape != target.shape:
                raise ShapeError(f"input {name!r} has shape {list(value.shape)}, the program expects "
                                 f"{list(target.shape)}")
            target[...] = _convert(name, value, target.dtype)


def simulate(program: Program, inputs: dict[str, np.ndarray],
             hw: Hardware | None = None) -> tuple[dict[str, np.ndarray], SimStats]:
    """Run one inference of `program` on the machine `hw` (the default machine if None)."""
    return _prepared(program, hw if hw is not None else _default_hardware()).run(inputs)


# -- helpers ----------------------------------------------------------------------------
_PREPARED: OrderedDict = OrderedDict()  # (id(program), hw) -> Simulator, least recently used first
_PREPARED_MAX = 8


def _prepared(program: Program, hw: Hardware) -> Simulator:
    """The Simulator of this very program object on `hw`, prepared once and kept
    for the last few programs (the decoded weights are what weight SRAM holds).
    A cached Simulator keeps its program alive, so an id is never reused while
    it is a key here."""
    key = (id(program), hw)
    simulator = _PREPARED.get(key)
    if simulator is None or simulator.program is not program:
        simulator = _PREPARED[key] = Simulator(program, hw)
        while len(_PREPARED) > _PREPARED_MAX:
            _PREPARED.popitem(last=False)
    _PREPARED.move_to_end(key)
    return simulator


_DEFAULT: list[Hardware] = []


def _default_hardware() -> Hardware:
    if not _DEFAULT:
        _DEFAULT.append(load_hardware())
    return _DEFAULT[0]


def _nbytes(t: TensorDesc) -> int:
    return math.prod(t.shape) * np.dtype(NUMPY_TYPES.get(t.dtype, "i1")).itemsize


def _sram_size(program: Program) -> int:
    ends = [t.offset + _nbytes(t) for t in program.tensors if t.offset >= 0 and not t.external]
    staging = [layer.tiling.staging + layer.tiling.staging_bytes for layer in program.layers
               if layer.tiling is not None and layer.tiling.staging >= 0]
    return max([program.activation_bytes, *ends, *staging, 1])


def _external_size(program: Program) -> int:
    return max([t.offset + _nbytes(t) for t in program.tensors if t.external] + [1])


def _decode_stream(index: int, stream) -> np.ndarray:
    """The stream's weights in its shape: the values the blob reader built when
    it checked the payload, else decoded here."""
    if stream.decoded is not None:
        return stream.decoded.reshape(stream.shape)
    try:
        flat = packing.decode(stream.payload, stream.bits, stream.format, math.prod(stream.shape))
    except ValueError as exc:
        raise BlobError(f"weight stream {index}: {exc}") from None
    return flat.reshape(stream.shape)


def _exact(rate: float) -> Fraction:
    """A TOML rate as the decimal the user wrote (0.1 is 1/10, not the nearest double)."""
    return Fraction(repr(rate))


def _ceil_div(amount: int, rate: float) -> int:
    return math.ceil(Fraction(amount) / _exact(rate))


def _convert(name: str, value: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """`value` in the input's type; ShapeError if that type cannot hold it."""
    if value.dtype == dtype or (dtype.kind == "f" and value.dtype.kind in "fiu"):
        return value.astype(dtype, copy=False)
    if dtype.kind in "iu" and value.dtype.kind in "iu":
        info = np.iinfo(dtype)
        if value.size == 0 or (value.min() >= info.min and value.max() <= info.max):
            return value.astype(dtype)
    raise ShapeError(f"input {name!r} has dtype {value.dtype}, the program expects {dtype.name}")
