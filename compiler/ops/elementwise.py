"""Element-wise ops: binary arithmetic with numpy broadcasting, and unary
activations. All of them are `elementwise`, so layout passes may move
transposes through them."""

from __future__ import annotations


import numpy as np

from ..dtypes import FLOAT_TYPES
from ..errors import ShapeError
from ..ir import TensorType
from ..records import record
from .registry import Lowered, NoAttrs, OnnxNode, OpDef, lowers, register_op


def broadcast_shape(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    try:
        return tuple(np.broadcast_shapes(a, b))
    except ValueError:
        raise ShapeError(f"shapes {list(a)} and {list(b)} do not broadcast") from None


class _Binary(OpDef):
    elementwise = True

    @staticmethod
    def infer(attrs, inputs):
        a, b = inputs
        if a.dtype != b.dtype:
            raise ShapeError(f"operand types differ: {a.dtype} vs {b.dtype}")
        return [TensorType(a.dtype, broadcast_shape(a.shape, b.shape))]


def _binary(op_name: str, fn):
    cls = type(op_name, (_Binary,), {"name": op_name,
                                      "evaluate": staticmethod(lambda attrs, xs: [fn(*xs)])})
    return register_op(cls)


def _divide(a, b):
    if a.dtype.kind == "f":
        return (a / b).astype(a.dtype)
    return np.trunc(a / b).astype(a.dtype)  # ONNX integer Div truncates toward zero


def _same_type(fn):
    return lambda a, b: fn(a, b).astype(a.dtype, copy=False)


_binary("Add", _same_type(np.add))
_binary("Sub", _same_type(np.subtract))
_binary("Mul", _same_type(np.multiply))
_binary("Div", _divide)


@lowers("Add", "Sub", "Mul", "Div")
def _lower_binary(n: OnnxNode):
    return Lowered(n.op_type)


# -- unary activations -----------------------------------------------------------
class _Unary(OpDef):
    elementwise = True

    @staticmethod
    def infer(attrs, inputs):
        return [inputs[0]]


class _FloatUnary(_Unary):
    @staticmethod
    def infer(attrs, inputs):
        if inputs[0].dtype not in FLOAT_TYPES:
            raise ShapeError(f"needs a float input, got {inputs[0].dtype}")
        return [inputs[0]]


@register_op
class Relu(_Unary):
    name = "Relu"

    @staticmethod
    def evaluate(attrs, xs):
        return [np.maximum(xs[0], 0).astype(xs[0].dtype)]


@record
class AlphaAttrs:
    alpha: float


@register_op
class LeakyRelu(_FloatUnary):
    name = "LeakyRelu"
    Attrs = AlphaAttrs

    @staticmethod
    def evaluate(attrs, xs):
        x = xs[0]
        return [np.where(x < 0, x * x.dtype.type(attrs.alpha), x).astype(x.dtype)]


@register_op
class ThresholdedRelu(_FloatUnary):
    """x where x > alpha, else 0 (ONNX opset 10)."""

    name = "ThresholdedRelu"
    Attrs = AlphaAttrs

    @staticmethod
    def evaluate(attrs, xs):
        x = xs[0]
        return [np.where(x > x.dtype.type(attrs.alpha), x, 0).astype(x.dtype)]


def elu(x: np.ndarray, alpha: float) -> np.ndarray:
    """x for x > 0, alpha · (eˣ − 1) otherwise, in float64."""
    x = np.asarray(x, np.float64)
    with np.errstate(over="ignore"):
        return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0.0)))


@register_op
class Elu(_FloatUnary):
    """x for x > 0, alpha · (eˣ − 1) otherwise (float64, cast back once)."""

    name = "Elu"
    Attrs = AlphaAttrs

    @staticmethod
    def evaluate(attrs, xs):
        return [elu(xs[0], attrs.alpha).astype(xs[0].dtype)]


@record
class SeluAttrs:
    alpha: float = 1.67326319217681884765625
    gamma: float = 1.05070102214813232421875


@register_op
class Selu(_FloatUnary):
    """gamma · x for x > 0, gamma · alpha · (eˣ − 1) otherwise (float64, cast back once)."""

    name = "Selu"
    Attrs = SeluAttrs

    @staticmethod
    def evaluate(attrs, xs):
        return [(attrs.gamma * elu(xs[0], attrs.alpha)).astype(xs[0].dtype)]


@register_op
class PRelu(_Binary):
    """PRelu(x, slope): slope broadcasts unidirectionally to x."""

    name = "PRelu"

    @staticmethod
    def infer(attrs, inputs):
        x, slope = inputs
        if broadcast_shape(x.shape, slope.shape) != x.shape:
            raise ShapeError(f"slope {list(slope.shape)} does not broadcast to {list(x.shape)}")
        return [x]

    @staticmethod
    def evaluate(attrs, xs):
        x, slope = xs
        return [np.where(x < 0, x * slope, x).astype(x.dtype)]


@register_op
class Where(OpDef):
    """Where(condition, a, b): a where the bool condition holds, else b, all three
    broadcasting together (numpy rules). nnc runs it in float only; the
    canonicalize rule fuse_softmax_mask turns an attention mask written with it
    (masked_fill) into Softmax's keep mask."""

    name = "Where"

    @staticmethod
    def infer(attrs, inputs):
        condition, a, b = inputs
        if condition.dtype != "bool":
            raise ShapeError(f"condition must be bool, got {condition.dtype}")
        if a.dtype != b.dtype:
            raise ShapeError(f"operand types differ: {a.dtype} vs {b.dtype}")
        return [TensorType(a.dtype, broadcast_shape(condition.shape, broadcast_shape(a.shape, b.shape)))]

    @staticmethod
    def evaluate(attrs, xs):
        condition, a, b = xs
        return [np.where(condition, a, b).astype(a.dtype, copy=False)]


@lowers("Where")
def _lower_where(n: OnnxNode):
    return Lowered("Where")


@record
class ClipAttrs:
    """Bounds; None means unbounded on that side."""

    min: float | None = None
    max: float | None = None


@register_op
class Clip(_Unary):
    name = "Clip"
    Attrs = ClipAttrs

    @staticmethod
    def evaluate(attrs, xs):
        x = xs[0]
        lo = -np.inf if attrs.min is None else attrs.min
        hi = np.inf if attrs.max is None else attrs.max
        if x.dtype.kind != "f":
            info = np.iinfo(x.dtype)
            lo, hi = max(lo, info.min), min(hi, info.max)
        return [np.minimum(np.maximum(x, x.dtype.type(lo)), x.dtype.type(hi)).astype(x.dtype)]


@register_op
class Sigmoid(_FloatUnary):
    name = "Sigmoid"

    @staticmethod
    def evaluate(attrs, xs):
        x = xs[0].astype(np.float64)
        return [(1.0 / (1.0 + np.exp(-x))).astype(xs[0].dtype)]


@register_op
class Tanh(_FloatUnary):
    name = "Tanh"

    @staticmethod
    def evaluate(attrs, xs):
        return [np.tanh(xs[0])]


@record
class HardSigmoidAttrs:
    alpha: float = 0.2
    beta: float = 0.5


@register_op
class HardSigmoid(_FloatUnary):
    name = "HardSigmoid"
    Attrs = HardSigmoidAttrs

    @staticmethod
    def evaluate(attrs, xs):
        x = xs[0]
        t = x.dtype.type
        return [np.clip(x * t(attrs.alpha) + t(attrs.beta), 0, 1).astype(x.dtype)]


@register_op
class HardSwish(_FloatUnary):
    name = "HardSwish"

    @staticmethod
    def evaluate(attrs, xs):
        x = xs[0]
        t = x.dtype.type
        return [(x * np.clip(x * t(1 / 6) + t(0.5), 0, 1)).astype(x.dtype)]


@lowers("Relu", "Sigmoid", "Tanh", "HardSwish", "PRelu")
def _lower_plain(n: OnnxNode):
    return Lowered(n.op_type)


@lowers("LeakyRelu")
def _lower_leaky(n: OnnxNode):
    return Lowered("LeakyRelu", AlphaAttrs(float(n.attr("alpha", 0.01))))


@lowers("ThresholdedRelu")
def _lower_thresholded_relu(n: OnnxNode):
    return Lowered("ThresholdedRelu", AlphaAttrs(float(n.attr("alpha", 1.0))))


@lowers("Elu")
def _lower_elu(n: OnnxNode):
    return Lowered("Elu", AlphaAttrs(float(n.attr("alpha", 1.0))))


@lowers("Selu")
def _lower_selu(n: OnnxNode):
    defaults = SeluAttrs()
    return Lowered("Selu", SeluAttrs(float(n.attr("alpha", defaults.alpha)), float(n.attr("gamma", defaults.gamma))))


@lowers("HardSigmoid")
def _lower_hard_sigmoid(n: OnnxNode):
    return Lowered("HardSigmoid", HardSigmoidAttrs(float(n.attr("alpha", 0.2)), float(n.attr("beta", 0.5))))


@lowers("Clip")
def _lower_clip(n: OnnxNode):
    if n.opset < 11:
        lo, hi = n.attr("min"), n.attr("max")
    else:
        lo, hi = n.const_input(1, "min"), n.const_input(2, "max")
    return Lowered("Clip", ClipAttrs(_clip_bound(n, "min", lo), _clip_bound(n, "max", hi)), inputs=n.inputs[:1])


def _clip_bound(n: OnnxNode, which: str, value) -> float | None:
    """A Clip bound as a float (None: absent); ShapeError unless it is one
    number that is not NaN, nor the infinity that would clamp every value to
    itself (min +inf, max -inf); the other infinity means no bound on that side."""
    if value is None:
        return None
    data = np.asarray(value)
    if data.size != 1:
        raise ShapeError(f"Clip node {n.name!r}: {which} must be a scalar, got shape {list(data.shape)}")
    bound = float(data.reshape(()))
    if np.isnan(bound) or bound == (np.inf if which == "min" else -np.inf):
        raise ShapeError(f"Clip node {n.name!r}: {which} is {bound}; a bound must be a number "
                         f"({'-inf' if which == 'min' else 'inf'} for none)")
    return bound


__all__ = ["broadcast_shape", "NoAttrs"]
