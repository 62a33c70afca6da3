"""The decoded content of an az-sim blob: what the blob writer serializes and the
reader hands to the simulator. Plain data, no IR objects: the simulator sees only
this, so parity between simulator and reference interpreter tests the compiler,
the blob format and the simulator together.

Invariants (the reader checks them all and raises BlobError otherwise):
- tensors are numbered 0..len(tensors)-1; layers refer to tensors by index;
- every activation tensor has an offset in activation SRAM, and two tensors live
  at the same time never overlap there;
- a layer's `weights` indexes `streams` (or is -1), and a stream decodes to
  exactly `prod(shape)` int8 values;
- `params` holds only ints and tuples of ints (dtypes as DTYPE_CODES values).
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Element types in the blob.
DTYPE_CODES = {"i8": 1, "u8": 2, "i32": 3, "f32": 4, "i16": 5, "i64": 6}

# Weight stream formats: nnc.packing defines them (one code per format).
from nnc.packing import FORMAT_BITMASK, FORMAT_CODEBOOK, FORMAT_DENSE, FORMAT_NAMES, FORMAT_RLE  # noqa: E402,F401


@dataclass(frozen=True)
class TensorDesc:
    """An activation or constant tensor. `offset` is its byte offset in activation
    SRAM (-1 for constants, which carry `data` as raw little-endian bytes)."""

    name: str
    dtype: int
    shape: tuple[int, ...]
    offset: int = -1
    scale: tuple[float, ...] = ()
    zero_point: tuple[int, ...] = ()
    data: bytes | None = None


@dataclass(frozen=True)
class WeightStream:
    """Compressed int8 weights of one layer, decoded by the on-chip decoder:
    `payload` in nnc.packing's `format` at `bits`."""

    format: int
    bits: int
    shape: tuple[int, ...]
    payload: bytes


@dataclass(frozen=True)
class LayerDesc:
    """One layer: `op` is the IR op name (QConv, QGemm, QAdd, ...), `params` its
    integer attributes by name, `inputs`/`outputs` tensor indices, `weights` a
    stream index or -1."""

    name: str
    op: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    params: dict[str, int | tuple[int, ...]] = field(default_factory=dict)
    weights: int = -1


@dataclass(frozen=True)
class Program:
    """A whole compiled model as the chip sees it."""

    name: str
    tensors: tuple[TensorDesc, ...]
    layers: tuple[LayerDesc, ...]
    streams: tuple[WeightStream, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    activation_bytes: int


def weight_encodings(program: Program) -> dict[str, tuple[str, int, int]]:
    """Per layer with weights, by layer name: (format name, bits, payload bytes) of
    its weight stream (layers sharing a stream each list it)."""
    name_of = {code: name for name, code in FORMAT_NAMES.items()}
    streams = [(name_of[s.format], s.bits, len(s.payload)) for s in program.streams]
    return {layer.name: streams[layer.weights] for layer in program.layers if layer.weights >= 0}
