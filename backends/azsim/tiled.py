"""Execution of a tiled az-sim layer: piece by piece (tiling.py gives each
piece's slices), each computed by its own kernel from its own inputs.

For every piece, in run order:
1. DMA in: each external operand's slice (halo included) is copied from
   external memory into the piece's half of the staging area (half i mod 2,
   operands one after another at 16-byte aligned offsets);
2. the piece's kernel runs on its operands: staged tiles, slices of on-chip
   tensors, its weight chunk and per-channel vectors, writing its output slice
   (on chip) or a staged output tile;
3. DMA out: a staged output tile is copied to its place in external memory.
Anything that does not fit (a staged tile beyond its half, a chunk beyond half
of weight SRAM) is a BlobError or UnsupportedError when the layer is prepared,
so a program that runs has proven its plan: results are bit-exact only if every
piece computes exactly its part.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from nnc.errors import UnsupportedError

from .hardware import Hardware
from .kernels import LayerContext, build
from .pipeline import PieceCost
from .program import LayerDesc, Program
from .tile_plan import STAGING_ALIGN
from .tiling import CHUNKED, ROW_TILED, channel_axis, piece_view, pieces
from nnc.records import record

Decoder = Callable[[int], np.ndarray]  # stream index -> decoded weights


@record(frozen=False)
class TiledLayer:
    run: Callable[[], tuple[int, ...] | None]  # per-piece executed MACs when data-dependent
    costs: list[PieceCost]


def build_tiled(layer: LayerDesc, program: Program, arrays: list, sram: np.ndarray, decode: Decoder,
                hw: Hardware, error) -> TiledLayer:
    """The pieces of `layer` prepared for one machine (see the module docstring);
    `error(message)` makes the BlobError of a layer that contradicts its plan."""
    t = layer.tiling
    if len(layer.outputs) != 1 or (t.chunks and layer.op not in CHUNKED) or (t.rows and layer.op not in ROW_TILED):
        raise error(f"has a tiling its op cannot run: chunks for {', '.join(CHUNKED)}, row tiles for "
                    f"{', '.join(ROW_TILED)}, one output")
    out_shape = program.tensors[layer.outputs[0]].shape
    if t.rows and not 0 <= t.axis < len(out_shape):
        raise error(f"is tiled along axis {t.axis} of a rank-{len(out_shape)} output")
    if layer.op in CHUNKED and not t.chunks and layer.weights < 0:
        raise error("has neither a weight stream nor weight chunks")
    chunk_weights = [_weights(layer, program, i, decode, hw, hw.weight_sram_bytes // 2) for i in t.chunks]
    channels = out_shape[channel_axis(layer.op, layer.params, len(out_shape))] if t.chunks else 0
    if sum(w.shape[0] for w in chunk_weights) != channels:
        raise error(f"has weight chunks of {[w.shape[0] for w in chunk_weights]} channels for {channels} outputs")
    whole = _weights(layer, program, layer.weights, decode, hw, hw.weight_sram_bytes) if layer.weights >= 0 else None
    steps = pieces(out_shape[t.axis] if t.rows else None, t.rows, [w.shape[0] for w in chunk_weights])
    halves = min(2, max(len(steps), 1))  # a piece per half of the staging area, one when alone
    half = t.staging_bytes // halves if t.staging >= 0 else 0
    prepared = [_piece(layer, program, arrays, sram, p, chunk_weights, whole, hw, (t.staging + p.index % 2 * half,
                                                                                      half), error)
                for p in steps]

    def run():
        counts = []
        for dma_in, kernel, dma_out in (entry[0] for entry in prepared):
            for source, target in dma_in:
                target[...] = source
            counts.append(kernel())
            for source, target in dma_out:
                target[...] = source
        if all(c is None for c in counts):
            return None
        return tuple(c if c is not None else cost.macs_executed for c, (_, cost) in zip(counts, prepared))

    return TiledLayer(run, [cost for _, cost in prepared])


def _weights(layer: LayerDesc, program: Program, index: int, decode: Decoder, hw: Hardware,
             limit: int) -> np.ndarray:
    """Stream `index` decoded, once it is known to fit `limit` bytes (a chunk:
    half of weight SRAM; whole weights: all of it)."""
    size = math.prod(program.streams[index].shape) if 0 <= index < len(program.streams) else 0
    if size > limit:
        said = (f"layer {layer.name!r} ({layer.op}): its weights (stream {index}) take {size} bytes, more than the "
                f"{limit} bytes of weight SRAM they may use on {hw.name!r} ({hw.weight_sram_bytes} bytes, chunks in "
                "halves")
        raise UnsupportedError(f"{said}; compile with hw set to this machine)",
                               cli=f"{said}; compile with --hw for this machine)")
    return decode(index)


def _piece(layer, program, arrays, sram, piece, chunk_weights, whole, hw, area, error):
    """((DMA-in copies, kernel run, DMA-out copies), PieceCost) of one piece."""
    tensors = program.tensors
    in_shapes = [tensors[i].shape if i >= 0 else None for i in layer.inputs]
    out_index = layer.outputs[0]
    try:
        view = piece_view(layer.op, layer.params, in_shapes, tensors[out_index].shape, layer.tiling.axis, piece)
    except (KeyError, IndexError, TypeError, ValueError, ZeroDivisionError):
        raise error("has parameters that do not fit its tiling") from None
    stage = _Stager(sram, *area, error)
    dma_in, operands, constant_bytes, touched = [], [], 0, 0
    for pos, index in enumerate(layer.inputs):
        if index < 0:
            operands.append(None)
            continue
        array = arrays[index]
        if view.vector[pos]:
            array = array.reshape(-1)[slice(*piece.channels)]
        elif view.inputs[pos] is not None:
            array = array[view.inputs[pos]]
        if tensors[index].data is not None:
            constant_bytes += len(tensors[index].data) if piece.index == 0 else 0
        elif tensors[index].external:
            staged = stage.take(array)
            dma_in.append((array, staged))
            array = staged
        touched += array.nbytes if tensors[index].data is None else 0
        operands.append(array)
    target = arrays[out_index][view.output]
    output, dma_out = target, []
    if tensors[out_index].external:
        output = stage.take(target)
        dma_out.append((output, target))
    weights, weight_bytes = _piece_weights(layer, program, piece, chunk_weights, whole)
    desc = LayerDesc(layer.name, layer.op, layer.inputs, layer.outputs, view.params, layer.weights)
    built = build(LayerContext(desc, operands, [output], weights, hw.zero_skip_group, hw.skip_zero_activations))
    tiles_in, out_bytes = sum(s.nbytes for s, _ in dma_in), sum(s.nbytes for s, _ in dma_out)
    in_bytes = weight_bytes + constant_bytes + tiles_in
    decoded = weights.size if weights is not None and weight_bytes else 0
    # kernel reads and writes, DMA writes and reads of the staging area, decoder and MAC array, constants
    sram = touched + output.nbytes + tiles_in + out_bytes + 2 * decoded + constant_bytes
    cost = PieceCost(weight_bytes, in_bytes, out_bytes, built.work.macs_total, built.work.macs_executed,
                     built.work.ppu_elements, sram)
    return (dma_in, built.run, dma_out), cost


def _piece_weights(layer, program, piece, chunk_weights, whole) -> tuple[np.ndarray | None, int]:
    """(the piece's decoded weights, their stream bytes if the piece loads them)."""
    rows_first = piece.rows is None or piece.rows[0] == 0
    if piece.chunk is not None:
        stream = program.streams[layer.tiling.chunks[piece.chunk]]
        return chunk_weights[piece.chunk], len(stream.payload) if rows_first else 0
    if whole is None:
        return None, 0
    return whole, len(program.streams[layer.weights].payload) if piece.index == 0 else 0


class _Stager:
    """Hands out 16-byte aligned views of one staging half, in order."""

    def __init__(self, sram: np.ndarray, start: int, size: int, error):
        self.sram, self.start, self.size, self.used, self.error = sram, start, size, 0, error

    def take(self, like: np.ndarray) -> np.ndarray:
        if self.start < 0 or self.used + like.nbytes > self.size:
            raise self.error(f"stages {self.used + like.nbytes} bytes in a staging half of {self.size} bytes "
                             f"at {self.start}")
        view = np.ndarray(like.shape, like.dtype, buffer=self.sram, offset=self.start + self.used)
        self.used += -(-like.nbytes // STAGING_ALIGN) * STAGING_ALIGN
        return view
