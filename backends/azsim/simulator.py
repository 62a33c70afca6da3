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
                      × window size for pooling, × 2 for softmax, 0 for an aliased Reshape)
    cycles          = max(load_cycles, decoder_cycles, compute_cycles) + post_cycles + layer_overhead_cycles
    sram_bytes      = activation bytes read + activation bytes written
                      + 2 · decoded weight bytes (decoder writes, MAC array reads) + constant bytes
    energy_pj       = macs_executed · energy_pj_per_mac + sram_bytes · energy_pj_per_sram_byte
                      + bytes_loaded · energy_pj_per_offchip_byte

    macs_executed   = macs_total − macs_skipped; a MAC is skipped when its weight lies in an
                      all-zero group of `zero_skip_group` consecutive weights along the
                      reduction axis, or (`skip_zero_activations`) its activation is zero
                      (equals the zero point, padding included)

Layers run one after another: totals are sums, latency_ms = cycles / (clock_mhz · 1000).
Weights are streamed from off-chip on every inference, one layer at a time; a layer
whose decoded weights exceed weight SRAM, or whose activations (at their planned
offsets) reach beyond activation SRAM, is refused (UnsupportedError): no tiling.

`Simulator(program, hw)` decodes each layer's weights once (the host-side cost of
preparing the model, not part of the accounting) and `run(inputs)` executes one inference;
`simulate(program, inputs, hw)` does both, reusing the prepared simulator of the
same program object (the last 8 are kept).
"""

from __future__ import annotations

import contextlib
import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from fractions import Fraction

import numpy as np

from nnc.errors import BlobError, ShapeError, UnsupportedError

from nnc import packing
from . import mac, ppu, ppu_data  # noqa: F401  (mac, ppu and ppu_data register the kernels)
from . import ppu_resize  # noqa: F401  (registers the Resize kernels)
from . import ppu_transformer  # noqa: F401  (registers QReduce, QMatMul, QLayerNorm)
from . import recurrent  # noqa: F401  (registers QLSTM, QGRU, QRNN)
from . import ppu_elementwise  # noqa: F401  (registers QMul, QAffine)
from .hardware import Hardware, load_hardware
from .kernels import LayerContext, Work, build
from .program import DTYPE_CODES, LayerDesc, Program, TensorDesc

NUMPY_TYPES = {DTYPE_CODES["i8"]: "i1", DTYPE_CODES["u8"]: "u1", DTYPE_CODES["i16"]: "<i2",
               DTYPE_CODES["i32"]: "<i4", DTYPE_CODES["i64"]: "<i8", DTYPE_CODES["f32"]: "<f4"}
TOTAL_KEYS = ("macs_total", "macs_executed", "macs_skipped", "bytes_loaded", "sram_bytes",
              "load_cycles", "decoder_cycles", "compute_cycles", "post_cycles", "cycles", "energy_uj")


@dataclass(frozen=True)
class LayerStats:
    """One layer's accounting for one inference (cycles in core clock cycles)."""

    name: str
    op: str
    macs_total: int
    macs_executed: int
    macs_skipped: int
    bytes_loaded: int
    weight_stream_bytes: int
    sram_bytes: int
    load_cycles: int
    decoder_cycles: int
    compute_cycles: int
    post_cycles: int
    cycles: int
    energy_uj: float


@dataclass(frozen=True)
class SimStats:
    """Per-layer rows and their totals for one inference."""

    hardware: str
    clock_mhz: float
    layers: tuple[LayerStats, ...]
    macs_total: int
    macs_executed: int
    macs_skipped: int
    bytes_loaded: int
    sram_bytes: int
    load_cycles: int
    decoder_cycles: int
    compute_cycles: int
    post_cycles: int
    cycles: int
    energy_uj: float
    latency_ms: float

    @classmethod
    def of(cls, hw: Hardware, rows: tuple[LayerStats, ...]) -> SimStats:
        totals = {key: sum(getattr(row, key) for row in rows) for key in TOTAL_KEYS}
        return cls(hw.name, hw.clock_mhz, rows, **totals,
                   latency_ms=totals["cycles"] / (hw.clock_mhz * 1000.0))

    @property
    def totals(self) -> dict:
        return {key: getattr(self, key) for key in (*TOTAL_KEYS, "latency_ms")}

    def to_json(self) -> dict:
        return {"hardware": self.hardware, "clock_mhz": self.clock_mhz, **self.totals,
                "layers": [asdict(row) for row in self.layers]}


@dataclass(frozen=True)
class _Step:
    run: Callable[[], int | None]
    stats: LayerStats  # the static accounting (activation skipping off)


class Simulator:
    """A program prepared for one machine: activation SRAM, decoded weights, kernels."""

    def __init__(self, program: Program, hw: Hardware | None = None):
        self.program = program
        self.hw = hw if hw is not None else load_hardware()
        self._sram = np.zeros(_sram_size(program), np.uint8)
        self._arrays = [self._array(i, t) for i, t in enumerate(program.tensors)]
        for index in (*program.inputs, *program.outputs):
            if not 0 <= index < len(program.tensors) or program.tensors[index].offset < 0:
                raise BlobError(f"program input or output {index} has no place in activation SRAM")
        self._decoded: dict[int, np.ndarray] = {}  # stream index -> decoded weights
        self._steps = [self._prepare(layer) for layer in program.layers]

    def run(self, inputs: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], SimStats]:
        """One inference: inputs by tensor name -> (outputs by tensor name, stats)."""
        self._write_inputs(inputs)
        rows = []
        with _one_blas_thread():
            for step in self._steps:
                executed = step.run()
                rows.append(step.stats if executed is None else self._recount(step.stats, executed))
        outputs = {self.program.tensors[i].name: self._arrays[i].copy() for i in self.program.outputs}
        return outputs, SimStats.of(self.hw, tuple(rows))

    # -- preparation --------------------------------------------------------------------
    def _array(self, index: int, t: TensorDesc) -> np.ndarray | None:
        """A view of activation SRAM, a constant's data, or None (no data: a weight slot)."""
        if t.dtype not in NUMPY_TYPES:
            raise BlobError(f"tensor {index} ({t.name!r}) has unknown dtype code {t.dtype}")
        dtype = np.dtype(NUMPY_TYPES[t.dtype])
        size = math.prod(t.shape) * dtype.itemsize
        if t.offset >= 0:
            return np.ndarray(t.shape, dtype, buffer=self._sram, offset=t.offset)
        if t.data is None:
            return None
        if len(t.data) != size:
            raise BlobError(f"constant {t.name!r} holds {len(t.data)} bytes, its shape needs {size}")
        return np.frombuffer(t.data, dtype).reshape(t.shape)

    def _prepare(self, layer: LayerDesc) -> _Step:
        stream = self._weights(layer)
        self._check_capacity(layer)
        args = [self._operand(i, layer) for i in layer.inputs]
        outs = [self._operand(i, layer) for i in layer.outputs]
        if any(self.program.tensors[i].offset < 0 for i in layer.outputs):
            raise BlobError(f"layer {layer.name!r} writes a tensor without a place in activation SRAM")
        aliased = len(layer.inputs) >= 1 and len(layer.outputs) == 1 and layer.inputs[0] >= 0 and \
            self.program.tensors[layer.inputs[0]].offset == self.program.tensors[layer.outputs[0]].offset
        ctx = LayerContext(layer, args, outs, stream, self.hw.zero_skip_group,
                           self.hw.skip_zero_activations, aliased)
        built = build(ctx)
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
            raise UnsupportedError(f"layer {layer.name!r} ({layer.op}): its decoded weights take {size} bytes, "
                                   f"more than the {self.hw.weight_sram_bytes}-byte weight SRAM of "
                                   f"{self.hw.name!r} (az-sim does not tile weights)")
        if index not in self._decoded:
            self._decoded[index] = _decode_stream(index, self.program.streams[index])
        return self._decoded[index]

    def _check_capacity(self, layer: LayerDesc) -> None:
        where = f"layer {layer.name!r} ({layer.op})"
        placed = [self.program.tensors[i] for i in (*layer.inputs, *layer.outputs)
                  if i >= 0 and self.program.tensors[i].offset >= 0]
        end = max((t.offset + _nbytes(t) for t in placed), default=0)
        if end > self.hw.activation_sram_bytes:
            working = sum(_nbytes(t) for t in placed)
            raise UnsupportedError(f"{where}: its activations ({working} bytes) are planned up to byte {end}, "
                                   f"beyond the {self.hw.activation_sram_bytes}-byte activation SRAM of "
                                   f"{self.hw.name!r} (az-sim does not tile activations)")

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
            cycles=0, energy_uj=0.0)
        return self._recount(stats, work.macs_executed)

    def _recount(self, stats: LayerStats, executed: int) -> LayerStats:
        """`stats` with `executed` MACs: compute cycles, total cycles and energy."""
        hw = self.hw
        compute = -(-executed // hw.mac_lanes)
        cycles = max(stats.load_cycles, stats.decoder_cycles, compute) + stats.post_cycles + hw.layer_overhead_cycles
        energy_pj = (executed * hw.energy_pj_per_mac + stats.sram_bytes * hw.energy_pj_per_sram_byte
                     + stats.bytes_loaded * hw.energy_pj_per_offchip_byte)
        return replace(stats, macs_executed=executed, macs_skipped=stats.macs_total - executed,
                       compute_cycles=compute, cycles=cycles, energy_uj=energy_pj * 1e-6)

    # -- one inference ------------------------------------------------------------------
    def _write_inputs(self, inputs: dict[str, np.ndarray]) -> None:
        names = [self.program.tensors[i].name for i in self.program.inputs]
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
_BLAS: list = []


def _one_blas_thread():
    """A context running BLAS on one thread. The simulator's matrix products are
    small (at most a few million MACs), where a BLAS thread pool costs more than
    it gains: 3× slower for ic on a busy 2-core machine. Uses threadpoolctl when
    it is installed; without it BLAS keeps its own thread count."""
    if not _BLAS:
        try:
            from threadpoolctl import ThreadpoolController
            _BLAS.append(ThreadpoolController())
        except ImportError:
            _BLAS.append(None)
    if _BLAS[0] is None:
        return contextlib.nullcontext()
    return _BLAS[0].limit(limits=1, user_api="blas")


def _default_hardware() -> Hardware:
    if not _DEFAULT:
        _DEFAULT.append(load_hardware())
    return _DEFAULT[0]


def _nbytes(t: TensorDesc) -> int:
    return math.prod(t.shape) * np.dtype(NUMPY_TYPES.get(t.dtype, "i1")).itemsize


def _sram_size(program: Program) -> int:
    ends = [t.offset + _nbytes(t) for t in program.tensors if t.offset >= 0]
    return max([program.activation_bytes, *ends, 1])


def _decode_stream(index: int, stream) -> np.ndarray:
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
