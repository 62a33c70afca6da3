"""Resize on integers (docs/numerics.md §17): `ResizeNearest` (data movement)
and `QResize` (linear interpolation with fixed-point weights).

Both read the spatial axes of x as Resize does (`channels_last` or not) and take
their per-axis tables as a constant i32 input whose columns are the output
indices of spatial axis 0, then of axis 1, ... (Σ sizes columns):

    ResizeNearest(x, index[Σ])     y[n, c, *o] = x[n, c, *(index_a[o_a])]
    QResize(x, table[3, Σ])        rows i0, i1, w (weight of i1, 0 <= w <= 2^F)
        acc = Σ over the 2^nd corners of Π_a (corner_a ? w_a : 2^F − w_a) · (x[corner] − zx)
        y   = clamp(zy + round_shift(acc · multiplier, shift), out_min, out_max)

with F = `weight_bits` and M = s_x / (s_y · 2^(F·nd)). |acc| <= 255 · 2^(F·nd) < 2^31
when F·nd <= 22 (checked), so acc is exact in int32 and acc · m in int64.
"""

from __future__ import annotations


import numpy as np

from ..errors import ShapeError
from ..ir import TensorType
from ..numerics import requantize
from ..records import record
from .conv import channels_first, join_shape, restore_layout, split_shape
from .qelementwise import to_type, check_rescale
from .registry import OpDef, register_op

MAX_WEIGHT_BITS_TOTAL = 22  # F · nd: keeps 255 · 2^(F·nd) < 2^31


@record
class ResizeNearestAttrs:
    sizes: tuple[int, ...]
    channels_last: bool = False


@record
class QResizeAttrs:
    sizes: tuple[int, ...]
    channels_last: bool
    weight_bits: int
    x_zero_point: int
    y_zero_point: int
    multiplier: int
    shift: int
    out_min: int
    out_max: int
    out_dtype: str = "i8"


def split_columns(table: np.ndarray, sizes: tuple[int, ...]) -> list[np.ndarray]:
    """The per-axis column blocks of a table whose last axis holds Σ sizes columns."""
    return np.split(np.asarray(table, np.int64), np.cumsum(sizes)[:-1], axis=-1)


def _infer(attrs, x: TensorType, table: TensorType, rows: tuple[int, ...]) -> TensorType:
    n, c, spatial = split_shape(x.shape, attrs.channels_last)
    if len(attrs.sizes) != len(spatial) or min(attrs.sizes) < 1:
        raise ShapeError(f"sizes {list(attrs.sizes)} do not fit {len(spatial)} spatial axes")
    if table.dtype != "i32" or table.shape != (*rows, sum(attrs.sizes)):
        raise ShapeError(f"table must be i32{[*rows, sum(attrs.sizes)]}, got {table.dtype}{list(table.shape)}")
    return TensorType(x.dtype, join_shape(n, c, attrs.sizes, attrs.channels_last))


@register_op
class ResizeNearest(OpDef):
    name = "ResizeNearest"
    Attrs = ResizeNearestAttrs

    @staticmethod
    def infer(attrs, inputs):
        return [_infer(attrs, inputs[0], inputs[1], ())]

    @staticmethod
    def evaluate(attrs, inputs):
        x = channels_first(inputs[0], attrs.channels_last)
        spatial = x.shape[2:]
        for axis, index in enumerate(split_columns(inputs[1], attrs.sizes)):
            if index.min(initial=0) < 0 or index.max(initial=0) >= spatial[axis]:
                raise ShapeError(f"index of spatial axis {axis} outside [0, {spatial[axis]})")
            x = np.take(x, index, axis=axis + 2)
        return [restore_layout(x, attrs.channels_last)]


@register_op
class QResize(OpDef):
    name = "QResize"
    Attrs = QResizeAttrs

    @staticmethod
    def infer(attrs, inputs):
        x = inputs[0]
        check_rescale(attrs, x)
        if not 1 <= attrs.weight_bits * len(attrs.sizes) <= MAX_WEIGHT_BITS_TOTAL:
            raise ShapeError(f"weight_bits {attrs.weight_bits} times {len(attrs.sizes)} axes exceeds "
                             f"{MAX_WEIGHT_BITS_TOTAL}")
        out = _infer(attrs, x, inputs[1], (3,))
        return [TensorType(attrs.out_dtype, out.shape)]

    @staticmethod
    def evaluate(attrs, inputs):
        acc = channels_first(inputs[0], attrs.channels_last).astype(np.int64) - attrs.x_zero_point
        one = 1 << attrs.weight_bits
        for axis, (i0, i1, w) in enumerate(split_columns(inputs[1], attrs.sizes)):
            extent = acc.shape[axis + 2]
            if min(i0.min(), i1.min(), w.min()) < 0 or max(i0.max(), i1.max()) >= extent or w.max() > one:
                raise ShapeError(f"table of spatial axis {axis} outside [0, {extent}) or weights outside [0, {one}]")
            shape = [1] * acc.ndim
            shape[axis + 2] = -1
            acc = np.take(acc, i0, axis=axis + 2) * (one - w).reshape(shape) \
                + np.take(acc, i1, axis=axis + 2) * w.reshape(shape)
        y = requantize(acc, attrs.multiplier, attrs.shift, attrs.y_zero_point, attrs.out_min, attrs.out_max)
        return [restore_layout(to_type(y, attrs.out_dtype), attrs.channels_last)]


def linear_table(taps: list[tuple[np.ndarray, np.ndarray, np.ndarray]], weight_bits: int) -> np.ndarray:
    """The QResize table from per-axis (i0, i1, f): w = floor(f · 2^F + 1/2)."""
    columns = [np.stack([i0, i1, np.floor(f * (1 << weight_bits) + 0.5)]) for i0, i1, f in taps]
    return np.concatenate(columns, axis=1).astype(np.int32)
