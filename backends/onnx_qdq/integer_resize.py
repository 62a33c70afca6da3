"""Integer-form writers of Resize on integers: ResizeNearest and QResize
(docs/numerics.md §17).

nnc computes both from compile-time index tables, so the file does too:
ResizeNearest gathers each spatial axis with its index column (data
movement, exact); QResize gathers the two taps of each axis from x − z_x in
int64 and weighs them with the integer weights (2^F − w, w), axis after axis,
as nnc's reference does (|acc| ≤ 255 · 2^(F·nd) < 2^31), then requantizes.
"""

from __future__ import annotations

import numpy as np

from nnc.ir import Node
from nnc.ops.qresize import split_columns

from .integer_arith import binary, centred, channel_shape, int64_constant, requantize
from .integer_writer import integer_writes
from .ops_nn import refuse_channels_last
from .writer import OnnxBuilder


def gathered(out: OnnxBuilder, x: str, index: np.ndarray, axis: int, base: str) -> str:
    """x[..., index, ...] along `axis`."""
    result = out.fresh(f"{base}.axis{axis}")
    out.add("Gather", [x, int64_constant(out, f"{base}.index{axis}", index)], [result], f"{base}.gather{axis}",
            axis=axis)
    return result


@integer_writes("ResizeNearest")
def _resize_nearest(out: OnnxBuilder, node: Node) -> None:
    refuse_channels_last(node)
    columns = split_columns(out.graph.constant(node.inputs[1]), node.attrs.sizes)
    x = node.inputs[0]
    for axis, index in enumerate(columns[:-1]):
        x = gathered(out, x, index, axis + 2, node.name)
    out.add("Gather", [x, int64_constant(out, f"{node.name}.index_last", columns[-1])], node.outputs, node.name,
            axis=len(columns) + 1)


@integer_writes("QResize")
def _qresize(out: OnnxBuilder, node: Node) -> None:
    refuse_channels_last(node)
    a, base = node.attrs, node.name
    acc, one = centred(out, node.inputs[0], a.x_zero_point, base), 1 << a.weight_bits
    rank = len(out.graph.tensor(node.inputs[0]).shape)
    for axis, (i0, i1, w) in enumerate(split_columns(out.graph.constant(node.inputs[1]), a.sizes)):
        tap = f"{base}.axis{axis}"
        low = binary(out, "Mul", gathered(out, acc, i0, axis + 2, f"{tap}.i0"),
                     int64_constant(out, f"{tap}.w0", channel_shape(one - w, rank, axis + 2)), tap)
        high = binary(out, "Mul", gathered(out, acc, i1, axis + 2, f"{tap}.i1"),
                      int64_constant(out, f"{tap}.w1", channel_shape(w, rank, axis + 2)), tap)
        acc = binary(out, "Add", low, high, tap)
    requantize(out, acc, a.multiplier, a.shift, a, node.outputs[0], base)
