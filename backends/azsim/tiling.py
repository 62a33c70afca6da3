"""Tile geometry of az-sim layers: which slice of each operand one piece of a
tiled layer reads and writes. The lowering plans with it (tile_plan.py) and the
simulator executes with it (tiled.py), so both agree by construction.

A piece is (weight chunk, row tile):
- a row tile is output rows [r0, r1) along the output axis `axis`, tiles of
  `rows` rows from row 0 (the last one shorter);
- a chunk is output channels [c0, c1), blocks of the chunk streams' shape[0].

Operand slices of a piece (`piece_slices`), per op family:
- windowed ops (QConv, MaxPool, QAveragePool) along a spatial axis: input 0
  rows [max(0, s), min(H, e)) with s = r0·stride − pad_begin and
  e = (r1 − 1)·stride − pad_begin + (kernel − 1)·dilation + 1: the halo.
  The piece runs with pad_begin' = max(0, s) − s and pad_end' = e − min(H, e),
  so its output has exactly r1 − r0 rows (ceil_mode is then 0);
- a pooling whose output has a single row is tiled along its channel axis;
- every other operand of the output's rank (right-aligned, as numpy broadcasts)
  whose size along `axis` equals the output's is sliced [r0, r1); operands of
  size 1 there, or of lower rank, are read whole;
- a chunk slices the output, bias, multiplier and shift to [c0, c1) along the
  channel axis (QConv: 1, or the last axis with channels_last; QGemm: the last);
  a grouped QConv chunk holds whole groups and reads their input channels.
"""

from __future__ import annotations

from nnc.records import record


WINDOWED = ("QConv", "MaxPool", "QAveragePool")
# ops that run in row tiles; QuantizeLinear and DequantizeLinear only per tensor (scalar scale)
ROW_TILED = WINDOWED + ("QAdd", "Requantize", "Clip", "QLut", "QuantizeLinear", "DequantizeLinear")
PER_TENSOR = ("QuantizeLinear", "DequantizeLinear")
CHUNKED = ("QConv", "QGemm")  # ops whose weights stream in output-channel chunks


@record
class Piece:
    """One piece: `index` in run order, output rows [r0, r1) along the tiled axis
    (or None), output channels [c0, c1) and its chunk number (or None)."""

    index: int
    rows: tuple[int, int] | None
    channels: tuple[int, int] | None
    chunk: int | None


def row_ranges(size: int, rows: int) -> list[tuple[int, int]]:
    """[(r0, r1)] tiles of `rows` rows covering [0, size); one range if rows is 0."""
    if rows <= 0:
        return [(0, size)]
    return [(r0, min(size, r0 + rows)) for r0 in range(0, size, rows)]


def chunk_ranges(counts: list[int]) -> list[tuple[int, int]]:
    """[(c0, c1)] consecutive channel blocks of the given sizes."""
    ranges, start = [], 0
    for count in counts:
        ranges.append((start, start + count))
        start += count
    return ranges


def pieces(out_size: int | None, rows: int, chunk_counts: list[int]) -> list[Piece]:
    """The layer's pieces in run order: chunk-major, then row tiles."""
    tiles = row_ranges(out_size, rows) if out_size is not None and rows else [None]
    chunks = list(enumerate(chunk_ranges(chunk_counts))) if chunk_counts else [(None, None)]
    return [Piece(i, tile, channels, chunk)
            for i, ((chunk, channels), tile) in enumerate((c, t) for c in chunks for t in tiles)]


def spatial_geometry(params: dict, axis: int) -> tuple[int, int, int, int, int, int]:
    """(spatial index a, kernel, stride, dilation, pad_begin, spatial rank) of a
    windowed op along output axis `axis`."""
    first = 1 if params.get("channels_last", 0) else 2
    a = axis - first
    kernel = tuple(params["kernel_shape"])
    nd = len(kernel)
    dilations = tuple(params.get("dilations", (1,) * nd))
    return a, kernel[a], tuple(params["strides"])[a], dilations[a], tuple(params["pads"])[a], nd


def halo(rows: tuple[int, int], in_size: int, kernel: int, stride: int, dilation: int,
         pad_begin: int) -> tuple[int, int, int, int]:
    """(i0, i1, pad_begin', pad_end'): the input rows output rows `rows` read,
    and the padding the piece adds around them (see the module docstring)."""
    start = rows[0] * stride - pad_begin
    end = (rows[1] - 1) * stride - pad_begin + (kernel - 1) * dilation + 1
    i0, i1 = max(0, start), min(in_size, end)
    return i0, i1, i0 - start, end - i1


def windowed_params(params: dict, axis: int, rows: tuple[int, int], in_size: int) -> tuple[dict, tuple[int, int]]:
    """(the piece's params, its input rows) for a windowed op's row tile."""
    a, kernel, stride, dilation, pad_begin, nd = spatial_geometry(params, axis)
    i0, i1, begin, end = halo(rows, in_size, kernel, stride, dilation, pad_begin)
    pads = list(params["pads"])
    pads[a], pads[a + nd] = begin, end
    changed = {**params, "pads": tuple(pads)}
    if "ceil_mode" in params:
        changed["ceil_mode"] = 0
    return changed, (i0, i1)


def channel_axis(op: str, params: dict, rank: int) -> int:
    """The output axis that holds output channels."""
    if op == "QConv" and not params.get("channels_last", 0):
        return 1
    return rank - 1


def tile_axis(op: str, params: dict, shape: tuple[int, ...]) -> int:
    """The output axis a layer is tiled along: the first spatial axis of a
    windowed op, or for a pooling whose output has one row there, its channel
    axis; for the others the longest axis (the first of equals; -1 if every
    axis has size 1), so that a row is as small as it can be."""
    if op in WINDOWED:
        spatial = 1 if params.get("channels_last", 0) else 2
        if op == "QConv" or shape[spatial] > 1:
            return spatial
        return len(shape) - 1 if params.get("channels_last", 0) else 1
    largest = max(range(len(shape)), key=lambda a: (shape[a], -a), default=-1)
    return largest if largest >= 0 and shape[largest] > 1 else -1


def is_windowed(op: str, params: dict, axis: int) -> bool:
    """True when `axis` is a spatial axis of windowed op `op` (rows need a halo)."""
    return op in WINDOWED and axis == (1 if params.get("channels_last", 0) else 2)


def follows_rows(operand_shape: tuple[int, ...], out_shape: tuple[int, ...], axis: int) -> int | None:
    """The operand axis that follows the output's tiled `axis` (right-aligned),
    or None when the operand is read whole (lower rank or size 1 there)."""
    a = axis - (len(out_shape) - len(operand_shape))
    if a < 0 or operand_shape[a] != out_shape[axis] or out_shape[axis] == 1:
        return None
    return a


@record
class PieceView:
    """What one piece reads and writes: per input an index tuple (None: the
    operand whole, or omitted), `vector` per input: True for a per-channel
    vector sliced by the chunk (bias, multiplier, shift: flattened first), the
    output's index tuple and the params the piece's kernel runs with."""

    inputs: tuple[tuple | None, ...]
    vector: tuple[bool, ...]
    output: tuple
    params: dict


def piece_view(op: str, params: dict, in_shapes: list[tuple[int, ...] | None], out_shape: tuple[int, ...],
               axis: int, piece: Piece) -> PieceView:
    """The slices of `piece` (see the module docstring); `in_shapes` has None
    for omitted operands and the weight slot."""
    rank = len(out_shape)
    inputs: list = [None] * len(in_shapes)
    out = [slice(None)] * rank
    params = dict(params)
    if piece.rows is not None:
        out[axis] = slice(*piece.rows)
        for pos, shape in enumerate(in_shapes):
            if shape is None:
                continue
            if pos == 0 and is_windowed(op, params, axis):
                params, (i0, i1) = windowed_params(params, axis, piece.rows, shape[axis])
                inputs[0] = _with(rank, axis, slice(i0, i1))
            elif (a := follows_rows(shape, out_shape, axis)) is not None:
                inputs[pos] = _with(len(shape), a, slice(*piece.rows))
    vector = [False] * len(in_shapes)
    if piece.channels is not None:
        c0, c1 = piece.channels
        channel = channel_axis(op, params, rank)
        out[channel] = slice(c0, c1)
        vector[2:5] = [True] * 3
        params, in_channels = _grouped(op, params, in_shapes[0], out_shape[channel], piece.channels)
        if in_channels is not None:
            base = list(inputs[0]) if inputs[0] is not None else [slice(None)] * len(in_shapes[0])
            base[channel] = slice(*in_channels)
            inputs[0] = tuple(base)
    return PieceView(tuple(inputs), tuple(vector), tuple(out), params)


def _grouped(op: str, params: dict, x_shape, cout: int, channels: tuple[int, int]):
    """(params, input channel range or None) of a chunk of a grouped QConv."""
    group = int(params.get("group", 1))
    if op != "QConv" or group == 1:
        return params, None
    per_out, per_in = cout // group, x_shape[channel_axis(op, params, len(x_shape))] // group
    g0, g1 = channels[0] // per_out, channels[1] // per_out
    return {**params, "group": g1 - g0}, (g0 * per_in, g1 * per_in)


def _with(rank: int, axis: int, part: slice) -> tuple:
    index = [slice(None)] * rank
    index[axis] = part
    return tuple(index)


def sliced_shape(shape: tuple[int, ...], index: tuple | None) -> tuple[int, ...]:
    """The shape of `shape`[index] (index None: the whole)."""
    if index is None:
        return tuple(shape)
    return tuple(len(range(*part.indices(size))) for size, part in zip(shape, index))
