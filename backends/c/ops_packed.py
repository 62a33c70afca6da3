"""C lowering of QConv and QGemm whose weights stay packed in flash
(`--c-weights packed`, docs/c-target.md "Packed weights").

`plan` runs before storage: per layer it takes the weight rows in the order the
kernels consume them (one row per output channel: QConv [k_h][k_w][in_c / groups],
QGemm [k]), encodes them (`packed.choose`: the format `--pack` names, or the
fewest stored bytes), and picks the kernel family and its arena scratch:

| format | layer | family | scratch |
|---|---|---|---|
| dense at 8 bits | any | the int8 kernels (the rows are the int8 array) | none |
| bitmask, rle at 8 bits, on qfast's sparse route | QConv, QGemm | qmms (qfast.sparse_lists: its own nonzero lists) | as qfast |
| dense, codebook | QConv, depthwise with multiplier 1 or one input channel | qdwconvp: decode 16/8/1 channels, qdwconv's loops | widths[0] · k_h·k_w |
| dense, codebook | other QConv | qconvp: decode 8/4/1 rows, qconv's loops | widths[0] · row |
| bitmask, rle | QConv | qconvs: one row's nonzeros grouped by tap | 4·(taps + 1) + 5·nnz_max |
| any | QGemm | qgemmp: decode on the fly while summing | none |

Decoded blocks are as wide as the dense kernels' (8 rows, 16 depthwise
channels) while they take at most SCRATCH_BUDGET bytes, narrower beyond.
The handler then emits the packed arrays, the `qpacked` struct and the call, after
the same compile-time bound checks as the int8 lowering (`ops_int._qlayer`).
"""

from __future__ import annotations


import numpy as np

from . import packed as codec
from . import qfast
from .geometry import conv_fields
from .lowering import Ctx, lowers_packed
from .ops_int import _qdot, _qlayer, _types
from nnc.records import record

SCRATCH_BUDGET = 2048  # bytes of decoded weights a block may take


@record
class PackedLayer:
    rows: codec.PackedRows
    family: str  # "" for the int8 kernels
    widths: tuple[int, ...] = ()  # block widths of qconvp/qdwconvp
    scratch: int = 0  # arena bytes


def plan(program, schedule, pack: str) -> dict[int, PackedLayer]:
    """Step -> PackedLayer for each QConv/QGemm with constant weights."""
    layers = {}
    for step, node in enumerate(schedule):
        if node.op in ("QConv", "QGemm") and node.inputs[1] in program.consts:
            layers[step] = _layer(program, node, program.consts[node.inputs[1]], pack)
    return layers


def weight_rows(node, w: np.ndarray) -> np.ndarray:
    """One row per output channel, in the order the kernels consume it."""
    if node.op == "QGemm":
        return w
    wd = w[:, :, None, :] if w.ndim == 3 else w
    return wd.transpose(0, 2, 3, 1).reshape(wd.shape[0], -1)


def _layer(program, node, w: np.ndarray, pack: str) -> PackedLayer:
    graph = program.graph
    rows = codec.choose(weight_rows(node, w), pack)
    if rows.bits == 8 and (rows.format == "dense" or _fast_sparse(program, node)):
        return PackedLayer(rows, "")
    if node.op == "QGemm":
        return PackedLayer(rows, "qgemmp")
    taps = rows.length // w.shape[1]
    if rows.format in codec.SIZED_ROWS:
        return PackedLayer(rows, "qconvs", scratch=4 * (taps + 1) + 5 * rows.nnz_max)
    in_c, out_c, group = graph.tensor(node.inputs[0]).shape[-1], w.shape[0], node.attrs.group
    if group == in_c and w.shape[1] == 1 and (out_c == in_c or in_c == 1):
        widths = _widths((16, 8), out_c, taps)
        return PackedLayer(rows, "qdwconvp", widths, widths[0] * taps)
    widths = _widths((8, 4), out_c // group, rows.length)
    return PackedLayer(rows, "qconvp", widths, widths[0] * rows.length)


def _fast_sparse(program, node) -> bool:
    """Whether the int8 lowering runs the layer through qmms, which keeps only
    the nonzero weights itself (and skips the zeros in its inner loop)."""
    prepared = qfast.plan(program, node)
    return prepared is not None and prepared.route.kind != "qdwf" and \
        qfast.sparse_lists(prepared.route.rows) is not None


def _widths(wide: tuple[int, ...], channels: int, row: int) -> tuple[int, ...]:
    """The block widths of a decoding kernel: those of `wide` that the channels
    fill and whose rows fit SCRATCH_BUDGET, then 1."""
    return tuple(n for n in wide if n <= channels and n * row <= SCRATCH_BUDGET) + (1,)


@lowers_packed("QConv", "QGemm")
def packed_layer(ctx: Ctx, node):
    layer = ctx.packed
    x, w, y = node.inputs[0], node.inputs[1], node.outputs[0]
    q, bias, _ = _qlayer(ctx, node, 0)
    types = _types(ctx, x, node.attrs.out_dtype) | dict(fmt=layer.rows.format)
    wp = _weights(ctx, layer.rows, w)
    ctx.kernel(f"qp_{layer.rows.format}")
    if layer.family == "qgemmp":
        fn = ctx.kernel("qgemmp", fn=f"qgemmp_{layer.rows.format}_{types['sfx']}", **types)
        m = ctx.shape(x)[0]
        return [f"{fn}({m}, {layer.rows.rows}, {q}, {ctx.ptr(x)}, {wp}, {bias}, {ctx.ptr(y)});"]
    geom = conv_fields(ctx.shape(x), ctx.shape(y), node.attrs)
    if layer.family == "qconvs":
        fn = ctx.kernel("qconvs", fn=f"qconvs_{layer.rows.format}_{types['sfx']}", **types)
    else:
        if layer.family == "qconvp":
            types.update(_qdot(ctx, x, layer.widths[:-1]))
        ctx.kernel("qp_unpack", fn=f"qp_unpack_{layer.rows.format}", fmt=layer.rows.format)
        fn = ctx.kernel(layer.family, fn=f"{layer.family}{layer.widths[0]}_{layer.rows.format}_{types['sfx']}",
                        widths=layer.widths, **types)
    g = ctx.struct("geom", "conv_geom", geom)
    return [f"{fn}({g}, {q}, {ctx.ptr(x)}, {wp}, {bias}, {ctx.ptr(y)}, {ctx.scratch()});"]


def _weights(ctx: Ctx, rows: codec.PackedRows, w: str) -> str:
    """The packed arrays and the `qpacked` struct of `rows`; returns `&ident`."""
    note = f"weights {w}, {rows.format} {rows.bits}-bit, {rows.rows} rows of {rows.length}"
    data = ctx.array("w", np.frombuffer(rows.data, np.uint8), "u8", note)
    fields = dict(data=data, off16="NULL", off32="NULL", table="NULL", row_bytes=rows.row_bytes,
                  len=rows.length, bits=rows.bits, run_bits=rows.run_bits, nnz_max=rows.nnz_max)
    if rows.offsets is not None:
        key = "off16" if rows.offsets.dtype == np.uint16 else "off32"
        fields[key] = ctx.array("w_off", rows.offsets, key.replace("off", "u"), f"row offsets of {data}")
    if rows.table is not None:
        fields["table"] = ctx.array("w_table", rows.table, "i8", f"codebook of {data}")
    ctx.record_weights(rows.format, rows.bits, rows.stored_bytes)
    return ctx.struct("wp", "qpacked", fields)
