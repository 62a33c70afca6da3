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
- `params` holds only ints and tuples of ints (dtypes as DTYPE_CODES values);
- an `external` activation tensor lives in off-chip activation memory at `offset`
  (two external tensors live at the same time never overlap there) and is only
  touched by tiled layers, which DMA its rows through their staging area;
- a layer's `tiling` (or None: the layer runs whole) names its weight chunks and
  activation tiles (backends/azsim/tiling.py gives their geometry).
"""

from __future__ import annotations

from dataclasses import field

import numpy as np

# Element types in the blob, and their sizes in bytes.
DTYPE_CODES = {"i8": 1, "u8": 2, "i32": 3, "f32": 4, "i16": 5, "i64": 6}
ITEMSIZE = {DTYPE_CODES[name]: size for name, size in (("i8", 1), ("u8", 1), ("i32", 4), ("f32", 4), ("i16", 2),
                                                        ("i64", 8))}

# Weight stream formats: nnc.packing defines them (one code per format).
from nnc.packing import FORMAT_BITMASK, FORMAT_CODEBOOK, FORMAT_DENSE, FORMAT_NAMES, FORMAT_RLE  # noqa: E402,F401
from nnc.records import record


@record
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
    external: bool = False  # `offset` is in off-chip activation memory


@record
class Tiling:
    """How one layer runs in pieces (docs/azsim.md §3.2).

    - `chunks`: weight stream indices, one per output-channel block in channel
      order (each stream's shape[0] is its block's channel count); () when the
      layer's weights are its whole stream `weights`.
    - `rows`: output rows per activation tile along output axis `axis` (the
      last tile may be shorter); 0 when the layer is not tiled by rows.
    - `staging`: byte offset in activation SRAM of the layer's staging area
      (two halves of `staging_bytes // 2`, alternating between tiles), where
      the tiles of its external operands are DMA-ed in and out; -1 without.
    Pieces run chunk-major: every row tile of chunk 0, then of chunk 1, ...
    """

    chunks: tuple[int, ...] = ()
    axis: int = -1
    rows: int = 0
    staging: int = -1
    staging_bytes: int = 0


@record
class WeightStream:
    """Compressed int8 weights of one layer, decoded by the on-chip decoder:
    `payload` in nnc.packing's `format` at `bits`."""

    format: int
    bits: int
    shape: tuple[int, ...]
    payload: bytes
    # the flat values the payload decodes to, when known without decoding it: the
    # writer's values (to_program), or what the blob reader built to check the
    # payload (read-only; not part of the stream's identity); the simulator then
    # skips decoding
    decoded: np.ndarray | None = field(default=None, compare=False, repr=False)


@record
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
    tiling: Tiling | None = None


@record
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
    its weight stream, or of its chunks' streams together (one format; layers
    sharing a stream each list it)."""
    name_of = {code: name for name, code in FORMAT_NAMES.items()}
    found = {}
    for layer in program.layers:
        indices = layer.tiling.chunks if layer.tiling and layer.tiling.chunks else \
            ((layer.weights,) if layer.weights >= 0 else ())
        if indices:
            first = program.streams[indices[0]]
            found[layer.name] = (name_of[first.format], first.bits,
                                 sum(len(program.streams[i].payload) for i in indices))
    return found
