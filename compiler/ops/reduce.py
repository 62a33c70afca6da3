"""Reductions: float `ReduceSum`, `ReduceMean`, `ReduceMax` and the integer
`QReduce` (docs/numerics.md §11).

IR attributes are resolved at load time: `axes` is a sorted tuple of distinct
non-negative axes (never empty: ONNX's "no axes" means every axis, and with
`noop_with_empty_axes` the node lowers to Identity), `keepdims` a bool. ONNX
passes axes as an attribute (ReduceSum before opset 13, ReduceMean/ReduceMax
before 18) or as a constant input (from then on).

A ReduceMean over exactly the spatial axes 2..rank-1 of a rank >= 4 tensor with
keepdims lowers to `GlobalAveragePool` (the PyTorch dynamo exporter's global
average pooling of images), so the layout pass and the pooling kernels apply.
Rank 3 stays a reduction: there [batch, tokens, features] is as common as NCW,
and a GlobalAveragePool would put two layout transposes around a feature mean.

    QReduce   acc = Σ_axes (x − zx)   or, with is_max,   max_axes(x) − zx
              y   = clamp(zy + round_shift(acc · m, n), out_min, out_max)
"""

from __future__ import annotations

import math

import numpy as np

from ..dtypes import FLOAT_TYPES
from ..errors import ShapeError
from ..ir import TensorType
from ..numerics import round_shift
from ..records import record
from .pool import GlobalPoolAttrs
from .qelementwise import check_activation, to_type
from .qlinear import check_multiplier, check_output_range, check_zero_point
from .registry import Lowered, OnnxNode, OpDef, lowers, register_op
from .shape import node_axis, node_error

REDUCE_OPS = ("ReduceSum", "ReduceMean", "ReduceMax")
# Reductions that canonicalize writes out with the ones above (passes/norm_reductions.py):
# the L1 and L2 norms (F.normalize exports ReduceL2) and the sum of squares.
NORM_REDUCTIONS = {"ReduceL1": lambda x, axes, keep: np.abs(x).sum(axis=axes, keepdims=keep),
                   "ReduceL2": lambda x, axes, keep: np.sqrt((x * x).sum(axis=axes, keepdims=keep)),
                   "ReduceSumSquare": lambda x, axes, keep: (x * x).sum(axis=axes, keepdims=keep)}
MAX_SUM_COUNT = (1 << 31) // 256  # count · 255 < 2^31 (docs/numerics.md §11)


@record
class ReduceAttrs:
    """`axes`: sorted distinct non-negative axes reduced; `keepdims`: keep them as 1s."""

    axes: tuple[int, ...]
    keepdims: bool = True


def reduced_shape(shape: tuple[int, ...], axes: tuple[int, ...], keepdims: bool) -> tuple[int, ...]:
    if not axes or any(not 0 <= a < len(shape) for a in axes) or list(axes) != sorted(set(axes)):
        raise ShapeError(f"axes {list(axes)} must be sorted distinct axes of rank {len(shape)}")
    if keepdims:
        return tuple(1 if i in axes else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in axes)


def reduced_count(shape: tuple[int, ...], axes: tuple[int, ...]) -> int:
    return math.prod(shape[a] for a in axes)


class _Reduce(OpDef):
    Attrs = ReduceAttrs

    @staticmethod
    def infer(attrs, inputs):
        x = inputs[0]
        if x.dtype not in FLOAT_TYPES:
            raise ShapeError(f"needs a float input, got {x.dtype}")
        return [TensorType(x.dtype, reduced_shape(x.shape, attrs.axes, attrs.keepdims))]


@register_op
class ReduceSum(_Reduce):
    name = "ReduceSum"

    @staticmethod
    def evaluate(attrs, inputs):
        x = inputs[0]
        return [np.asarray(x.astype(np.float64).sum(axis=attrs.axes, keepdims=attrs.keepdims)).astype(x.dtype)]


@register_op
class ReduceMean(_Reduce):
    name = "ReduceMean"

    @staticmethod
    def evaluate(attrs, inputs):
        x = inputs[0]
        return [np.asarray(x.astype(np.float64).mean(axis=attrs.axes, keepdims=attrs.keepdims)).astype(x.dtype)]


@register_op
class ReduceMax(_Reduce):
    name = "ReduceMax"

    @staticmethod
    def evaluate(attrs, inputs):
        x = inputs[0]
        return [np.asarray(x.max(axis=attrs.axes, keepdims=attrs.keepdims))]


def _register_norm(name: str, fn) -> None:
    def evaluate(attrs, inputs):
        x = inputs[0]
        return [np.asarray(fn(x.astype(np.float64), attrs.axes, attrs.keepdims)).astype(x.dtype)]

    register_op(type(name, (_Reduce,), {"name": name, "evaluate": staticmethod(evaluate)}))


for _name, _fn in NORM_REDUCTIONS.items():
    _register_norm(_name, _fn)


# -- integer form --------------------------------------------------------------------
@record
class QReduceAttrs:
    axes: tuple[int, ...]
    keepdims: bool
    x_zero_point: int
    y_zero_point: int
    multiplier: int
    shift: int
    out_min: int
    out_max: int
    out_dtype: str = "i8"
    is_max: bool = False  # max instead of sum (ReduceSum, ReduceMean: 1/count is in the multiplier)


@register_op
class QReduce(OpDef):
    name = "QReduce"
    Attrs = QReduceAttrs

    @staticmethod
    def infer(attrs, inputs):
        x = inputs[0]
        check_activation(x)
        check_zero_point("x_zero_point", attrs.x_zero_point, x.dtype)
        check_multiplier(attrs.multiplier, attrs.shift)
        check_output_range(attrs)
        shape = reduced_shape(x.shape, attrs.axes, attrs.keepdims)
        if not attrs.is_max and reduced_count(x.shape, attrs.axes) > MAX_SUM_COUNT:
            raise ShapeError(f"a sum over more than {MAX_SUM_COUNT} values may overflow int32")
        return [TensorType(attrs.out_dtype, shape)]

    @staticmethod
    def evaluate(attrs, inputs):
        x = inputs[0].astype(np.int64)
        if attrs.is_max:
            acc = x.max(axis=attrs.axes, keepdims=attrs.keepdims) - attrs.x_zero_point
        else:
            acc = (x - attrs.x_zero_point).sum(axis=attrs.axes, keepdims=attrs.keepdims)
        y = round_shift(acc * attrs.multiplier, attrs.shift) + attrs.y_zero_point
        return [to_type(np.clip(y, attrs.out_min, attrs.out_max), attrs.out_dtype)]


# -- ONNX lowering ---------------------------------------------------------------------
def _axes_in_node(n: OnnxNode) -> list[int] | None:
    """The node's axes from its constant input #1 or its `axes` attribute; None if absent."""
    if len(n.inputs) > 1 and n.inputs[1]:
        return [int(a) for a in np.asarray(n.const_input(1, "axes")).reshape(-1)]
    axes = n.attr("axes")
    return None if axes is None else [int(a) for a in axes]


def _is_global_pool(op: str, shape: tuple[int, ...], axes: tuple[int, ...], keepdims: bool) -> bool:
    return op == "ReduceMean" and keepdims and len(shape) >= 4 and axes == tuple(range(2, len(shape)))


@lowers(*REDUCE_OPS, *NORM_REDUCTIONS)
def _lower_reduce(n: OnnxNode):
    shape = n.input_types[0].shape
    if n.input_types[0].dtype not in FLOAT_TYPES:
        raise n.unsupported(f"{n.input_types[0].dtype} input is not supported (float only)")
    axes = _axes_in_node(n)
    if not axes:
        if n.attr("noop_with_empty_axes", 0):
            return Lowered("Identity", inputs=n.inputs[:1])
        axes = list(range(len(shape)))
    normalized = tuple(sorted({node_axis(n, a, len(shape)) for a in axes}))
    if len(normalized) != len(axes):
        raise node_error(n, f"axes {axes} repeat an axis")
    keepdims = bool(n.attr("keepdims", 1))
    if _is_global_pool(n.op_type, shape, normalized, keepdims):
        return Lowered("GlobalAveragePool", GlobalPoolAttrs(), inputs=n.inputs[:1])
    return Lowered(n.op_type, ReduceAttrs(normalized, keepdims), inputs=n.inputs[:1])
