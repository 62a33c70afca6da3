"""Softmax: exp(x - max) / sum(exp(x - max)) over one axis (or, for ONNX models
before opset 13, over every axis from `axis` on), and LogSoftmax, its log:
x - max - log(sum(exp(x - max))), a CTC head's output. Both are computed in
float64 and cast back, so the result is the correctly rounded value in all but
rare cases. Both first multiply x by the attribute `scale` (> 0) in x's type,
as the Mul an attention's 1/√d is exported as computes it (the
fuse_softmax_scale rule folds that Mul in).

An optional second input `keep` (a bool constant of x's rank, broadcasting to
x) masks positions out: they get probability exactly 0 and take no part in
the max and the sum, as if x held -inf there (an attention mask; the
fuse_softmax_mask rule makes it from Add(x, mask) → Softmax, and fuses only a
mask that keeps at least one position in every row)."""

from __future__ import annotations

import math

import numpy as np

from ..dtypes import FLOAT_TYPES
from ..errors import ShapeError
from ..records import record
from .registry import Lowered, OnnxNode, OpDef, lowers, register_op
from .shape import node_axis


@record
class SoftmaxAttrs:
    """`axis`: non-negative axis over which the outputs sum to one.
    `coerce_2d`: normalise over axes `axis`..rank-1 together, as ONNX Softmax
    before opset 13 does (it flattens the input to 2-D at `axis`). Lowering keeps
    it False whenever `axis` is the last axis, where both meanings agree.
    `scale`: the positive finite factor x is multiplied by first (rounded to
    x's type, as a float32 Mul rounds it)."""

    axis: int
    coerce_2d: bool = False
    scale: float = 1.0


@register_op
class Softmax(OpDef):
    name = "Softmax"
    Attrs = SoftmaxAttrs

    @staticmethod
    def infer(attrs, inputs):
        x = inputs[0]
        if x.dtype not in FLOAT_TYPES:
            raise ShapeError(f"needs a float input, got {x.dtype}")
        if attrs.axis >= len(x.shape):
            raise ShapeError(f"axis {attrs.axis} is out of range for rank {len(x.shape)}")
        if not (math.isfinite(attrs.scale) and attrs.scale > 0):
            raise ShapeError(f"scale must be a positive finite number, got {attrs.scale!r}")
        if len(inputs) > 1 and inputs[1] is not None:
            check_keep_mask(inputs[1], x, attrs.coerce_2d)
        return [x]

    @staticmethod
    def evaluate(attrs, xs):
        x = scaled(xs[0], attrs.scale)
        if len(xs) > 1 and xs[1] is not None:
            x = np.where(xs[1], x, -np.inf).astype(x.dtype)
        if attrs.coerce_2d:
            rows = x.reshape(math.prod(x.shape[:attrs.axis]), math.prod(x.shape[attrs.axis:]))
            return [_softmax(rows, 1).reshape(x.shape)]
        return [_softmax(x, attrs.axis)]


@register_op
class LogSoftmax(OpDef):
    """log(Softmax(x)) with Softmax's attributes; it takes no keep mask."""

    name = "LogSoftmax"
    Attrs = SoftmaxAttrs

    @staticmethod
    def infer(attrs, inputs):
        if len(inputs) > 1:
            raise ShapeError("takes one input (no keep mask)")
        return Softmax.infer(attrs, inputs)

    @staticmethod
    def evaluate(attrs, xs):
        x = scaled(xs[0], attrs.scale)
        if attrs.coerce_2d:
            rows = x.reshape(math.prod(x.shape[:attrs.axis]), math.prod(x.shape[attrs.axis:]))
            return [_log_softmax(rows, 1).reshape(x.shape)]
        return [_log_softmax(x, attrs.axis)]


def check_keep_mask(keep, x, coerce_2d: bool, dtype: str = "bool") -> None:
    """ShapeError unless `keep` (a TensorType) is a `dtype` mask of x's rank
    that broadcasts to x, over one softmax axis (not coerce_2d)."""
    if keep.dtype != dtype or len(keep.shape) != len(x.shape) or coerce_2d:
        raise ShapeError(f"the keep mask must be {dtype} of the input's rank over one axis, got "
                         f"{keep.dtype}{list(keep.shape)}")
    if any(k not in (1, d) for k, d in zip(keep.shape, x.shape)):
        raise ShapeError(f"the keep mask {list(keep.shape)} does not broadcast to the input {list(x.shape)}")


# A mask's fill hides a position: at most this. exp(fill + x - max) is 0 in
# float64 (below e^-745) unless the row's scores spread over 9,000, so a
# hidden position gets probability 0, as with -inf.
MASK_FILL = -1e4


def scale_factor(data: np.ndarray, divides: bool = False) -> float | None:
    """The factor a constant multiplying (or, `divides`, dividing) the scores
    folds into a softmax's `scale`: its one float value (its reciprocal) when
    finite and above 0; None for any other constant. Whether it adds axes is
    the caller's to check."""
    if data.size != 1 or data.dtype.kind != "f":
        return None
    value = float(data.reshape(-1)[0])
    factor = (1.0 / value if value else math.inf) if divides else value
    return factor if math.isfinite(factor) and factor > 0 else None


def additive_mask(data: np.ndarray) -> np.ndarray | None:
    """The keep mask (entries equal to 0) of a float constant that is an additive
    attention mask: every entry 0 or at most MASK_FILL (-inf, float32's lowest,
    -1e9, -1e4), at least one of each. None for any other constant."""
    if data.dtype.kind != "f" or data.size < 2 or np.isnan(data).any():
        return None
    keep, hide = data == 0, data <= MASK_FILL
    return keep if bool((keep | hide).all() and keep.any() and hide.any()) else None


def keep_pattern(keep: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A flat pattern p (one period) such that `keep` broadcast to `shape` and
    flattened equals p repeated: position e of a row-major tensor of `shape` is
    kept when p[e % len(p)] (the targets store p as bits). The period is the
    size of `shape` from `keep`'s first axis longer than 1 on."""
    lead = next((i for i, k in enumerate(keep.shape) if k != 1), len(shape))
    return np.broadcast_to(keep, keep.shape[:lead] + tuple(shape[lead:])).reshape(-1)


def scaled(x: np.ndarray, scale: float) -> np.ndarray:
    """x · scale in x's type (x itself for scale 1)."""
    return x if scale == 1.0 else x * np.asarray(scale, x.dtype)


def _softmax(x: np.ndarray, axis: int) -> np.ndarray:
    wide = x.astype(np.float64)
    e = np.exp(wide - wide.max(axis=axis, keepdims=True))
    return (e / e.sum(axis=axis, keepdims=True)).astype(x.dtype)


def _log_softmax(x: np.ndarray, axis: int) -> np.ndarray:
    shifted = x.astype(np.float64) - x.astype(np.float64).max(axis=axis, keepdims=True)
    return (shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))).astype(x.dtype)


@lowers("Softmax", "LogSoftmax")
def _lower_softmax(n: OnnxNode):
    rank = len(n.input_types[0].shape)
    axis = node_axis(n, n.attr("axis", 1 if n.opset < 13 else -1), rank)
    return Lowered(n.op_type, SoftmaxAttrs(axis, coerce_2d=n.opset < 13 and axis != rank - 1))
