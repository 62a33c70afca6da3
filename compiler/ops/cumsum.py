"""`CumSum` (ONNX opset 11, 14): the running sum of x along `axis`; with
`exclusive` each output leaves out its own element, with `reverse` the sum
runs from the end. Computed in float64 for float x and cast back once;
integer x sums in its own type (wrapping as numpy does).

It runs in the reference; canonicalize writes a float CumSum as a MatMul of
a constant 0/1 triangular matrix by x (passes/cumsum.py), which every target
runs.
"""

from __future__ import annotations

import numpy as np

from ..errors import ShapeError
from ..records import record
from .registry import Lowered, OnnxNode, OpDef, lowers, register_op

NUMERIC_TYPES = ("f32", "f64", "i32", "i64", "u32", "u64")


@record
class CumSumAttrs:
    """`axis`: the non-negative axis summed along; `exclusive`, `reverse` as ONNX's."""

    axis: int
    exclusive: bool = False
    reverse: bool = False


def cumsum(x: np.ndarray, axis: int, exclusive: bool, reverse: bool) -> np.ndarray:
    """ONNX CumSum of x (in x's type)."""
    v = np.flip(x, axis) if reverse else x
    total = np.cumsum(v, axis=axis, dtype=v.dtype)
    if exclusive:
        total = np.concatenate([np.zeros_like(np.take(total, [0], axis=axis)),
                                np.take(total, range(v.shape[axis] - 1), axis=axis)], axis=axis)
    return np.flip(total, axis) if reverse else total


@register_op
class CumSum(OpDef):
    name = "CumSum"
    Attrs = CumSumAttrs

    @staticmethod
    def infer(attrs, inputs):
        x = inputs[0]
        if x.dtype not in NUMERIC_TYPES:
            raise ShapeError(f"needs a float or 32/64-bit integer input, got {x.dtype}")
        if not 0 <= attrs.axis < len(x.shape):
            raise ShapeError(f"axis {attrs.axis} is out of range for rank {len(x.shape)}")
        return [x]

    @staticmethod
    def evaluate(attrs, xs):
        x = xs[0]
        wide = x.astype(np.float64) if x.dtype.kind == "f" else x
        return [cumsum(wide, attrs.axis, attrs.exclusive, attrs.reverse).astype(x.dtype)]


@lowers("CumSum")
def _lower_cumsum(n: OnnxNode):
    axis = n.const_input(1, "axis")
    if axis is None or np.asarray(axis).size != 1:
        raise n.unsupported("needs a scalar axis")
    rank = len(n.input_types[0].shape)
    value = int(np.asarray(axis).reshape(-1)[0])
    if not -rank <= value < rank:
        raise n.unsupported(f"axis {value} is out of range for rank {rank}")
    return Lowered("CumSum", CumSumAttrs(value % rank, bool(n.attr("exclusive", 0)), bool(n.attr("reverse", 0))),
                   [n.inputs[0]])
