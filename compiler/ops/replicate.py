"""Ops that repeat or retype values without arithmetic: Expand, Tile, Cast.

Expand's shape and Tile's repeats must be constants (they become attributes:
the literal output shape, the per-axis repeat counts). Cast to the input's own
type lowers to Identity; Cast between two float types or two integer types is
the IR `Cast` (numpy `astype`: float rounding to nearest, integer wrap-around,
as ONNX specifies for these pairs). Casts between float and integer types, and
to or from bool, are refused: nnc has no target semantics for them.
"""

from __future__ import annotations


import numpy as np

from .. import dtypes
from ..dtypes import FLOAT_TYPES, INTEGER_TYPES
from ..errors import ShapeError, UnsupportedError
from ..ir import TensorType
from ..records import record
from .registry import Lowered, OnnxNode, OpDef, lowers, register_op
from .shape import node_error


# -- Expand --------------------------------------------------------------------
@record
class ExpandAttrs:
    """`shape`: the literal output shape, which the input broadcasts to
    (numpy rules: the input's axes align with the trailing output axes)."""

    shape: tuple[int, ...]


@register_op
class Expand(OpDef):
    name = "Expand"
    Attrs = ExpandAttrs

    @staticmethod
    def infer(attrs, inputs):
        x = inputs[0]
        try:
            if np.broadcast_shapes(x.shape, attrs.shape) != tuple(attrs.shape):
                raise ValueError
        except ValueError:
            raise ShapeError(f"cannot expand {list(x.shape)} to {list(attrs.shape)}") from None
        return [TensorType(x.dtype, tuple(attrs.shape))]

    @staticmethod
    def evaluate(attrs, xs):
        return [np.ascontiguousarray(np.broadcast_to(xs[0], attrs.shape))]


@lowers("Expand")
def _lower_expand(n: OnnxNode):
    shape = n.const_input(1, "shape")
    if shape is None:
        raise node_error(n, "has no shape input")
    src = n.input_types[0].shape
    try:
        out = np.broadcast_shapes(src, tuple(int(d) for d in shape.reshape(-1)))
    except ValueError:
        raise node_error(n, f"cannot expand {list(src)} to {shape.tolist()}") from None
    return Lowered("Expand", ExpandAttrs(tuple(int(d) for d in out)), inputs=n.inputs[:1])


# -- Tile ----------------------------------------------------------------------
@record
class TileAttrs:
    """`repeats`: per axis, how many copies of the input lie along it (>= 0)."""

    repeats: tuple[int, ...]


@register_op
class Tile(OpDef):
    name = "Tile"
    Attrs = TileAttrs

    @staticmethod
    def infer(attrs, inputs):
        x = inputs[0]
        if len(attrs.repeats) != len(x.shape) or min(attrs.repeats, default=0) < 0:
            raise ShapeError(f"repeats {list(attrs.repeats)} do not fit rank {len(x.shape)}")
        return [TensorType(x.dtype, tuple(d * r for d, r in zip(x.shape, attrs.repeats)))]

    @staticmethod
    def evaluate(attrs, xs):
        return [np.tile(xs[0], attrs.repeats)]


@lowers("Tile")
def _lower_tile(n: OnnxNode):
    repeats = n.const_input(1, "repeats")
    if repeats is None:
        raise node_error(n, "has no repeats input")
    return Lowered("Tile", TileAttrs(tuple(int(r) for r in repeats.reshape(-1))), inputs=n.inputs[:1])


# -- Cast ----------------------------------------------------------------------
@record
class CastAttrs:
    """`dtype`: the output element type (an nnc type name of the input's kind)."""

    dtype: str


def _kind(dtype: str) -> str | None:
    return "float" if dtype in FLOAT_TYPES else "int" if dtype in INTEGER_TYPES else None


@register_op
class Cast(OpDef):
    name = "Cast"
    Attrs = CastAttrs
    elementwise = True

    @staticmethod
    def infer(attrs, inputs):
        x = inputs[0]
        if _kind(x.dtype) is None or _kind(x.dtype) != _kind(attrs.dtype):
            raise ShapeError(f"Cast from {x.dtype} to {attrs.dtype} is not float->float or integer->integer")
        return [TensorType(attrs.dtype, x.shape)]

    @staticmethod
    def evaluate(attrs, xs):
        return [xs[0].astype(dtypes.to_numpy(attrs.dtype))]


@lowers("Cast")
def _lower_cast(n: OnnxNode):
    src = n.input_types[0].dtype
    try:
        to = dtypes.from_onnx(int(n.attr("to")))
    except UnsupportedError as exc:
        raise n.unsupported(str(exc)) from None
    if to == src:
        return Lowered("Identity", inputs=n.inputs[:1])
    if _kind(src) is None or _kind(src) != _kind(to):
        raise n.unsupported(f"Cast from {src} to {to} (only float->float and integer->integer casts)")
    return Lowered("Cast", CastAttrs(to), inputs=n.inputs[:1])
