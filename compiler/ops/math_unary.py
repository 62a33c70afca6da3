"""Float element-wise math ops beyond the activations of elementwise.py: Erf,
Gelu (opset 20, approximate "none" or "tanh"), Sqrt, Exp, Log, Neg, Abs,
Reciprocal, Sign, Sin, Cos, Softplus (ln(1 + eˣ)), Softsign (x / (1 + |x|)), Mish
(x · tanh(softplus(x)), opset 18), Silu
(x · sigmoid(x): ONNX Swish with alpha 1, opset 24, and what canonicalize
makes of Mul(x, Sigmoid(x))) and Pow (numpy broadcasting of base and exponent).

Each is computed in float64 and cast back to the input's type once, so the
reference differs from float32 implementations (onnxruntime, the C kernels) by
float32 rounding only. They are all `elementwise`; in int8 each is a 256-entry
table (Pow: with a constant scalar exponent; quantizer/rules_elementwise.py,
docs/numerics.md §18).
"""

from __future__ import annotations

import math

import numpy as np

from ..dtypes import FLOAT_TYPES
from ..errors import ShapeError
from ..ir import TensorType
from ..records import record
from .elementwise import broadcast_shape
from .registry import Lowered, OnnxNode, OpDef, lowers, register_op

_ERF = np.frompyfunc(math.erf, 1, 1)
GELU_APPROXIMATIONS = ("none", "tanh")


def erf(x: np.ndarray) -> np.ndarray:
    """The error function of every element, in float64 (math.erf)."""
    return np.asarray(_ERF(np.asarray(x, np.float64)), np.float64)


def gelu(x: np.ndarray, approximate: str) -> np.ndarray:
    """x · Φ(x) exactly ("none") or with the tanh formula ONNX gives ("tanh"), float64."""
    x = np.asarray(x, np.float64)
    if approximate == "tanh":
        inner = math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)
        return 0.5 * x * (1.0 + np.tanh(inner))
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def softplus(x: np.ndarray) -> np.ndarray:
    """ln(1 + eˣ) in float64, without overflow for large x (numpy's logaddexp)."""
    return np.logaddexp(0.0, np.asarray(x, np.float64))


def softsign(x: np.ndarray) -> np.ndarray:
    """x / (1 + |x|), float64."""
    return x / (1.0 + np.abs(x))


def mish(x: np.ndarray) -> np.ndarray:
    """x · tanh(softplus(x)), float64."""
    return x * np.tanh(softplus(x))


def silu(x: np.ndarray) -> np.ndarray:
    """SiLU (Swish): x · sigmoid(x) = x / (1 + exp(−x)), in float64; −0 where
    exp(−x) overflows."""
    with np.errstate(over="ignore"):
        return x / (1.0 + np.exp(-x))


class _Math(OpDef):
    elementwise = True

    @staticmethod
    def infer(attrs, inputs):
        if inputs[0].dtype not in FLOAT_TYPES:
            raise ShapeError(f"needs a float input, got {inputs[0].dtype}")
        return [inputs[0]]


def _unary(op_name: str, fn):
    """Register float op `op_name` computing fn(float64 x, attrs)."""

    def evaluate(attrs, xs):
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return [np.asarray(fn(xs[0].astype(np.float64), attrs)).astype(xs[0].dtype)]

    return register_op(type(op_name, (_Math,), {"name": op_name, "evaluate": staticmethod(evaluate)}))


_unary("Erf", lambda x, a: erf(x))
_unary("Sqrt", lambda x, a: np.sqrt(x))
_unary("Exp", lambda x, a: np.exp(x))
_unary("Log", lambda x, a: np.log(x))
_unary("Softplus", lambda x, a: softplus(x))
_unary("Softsign", lambda x, a: softsign(x))
_unary("Mish", lambda x, a: mish(x))
_unary("Neg", lambda x, a: np.negative(x))
_unary("Abs", lambda x, a: np.abs(x))
_unary("Reciprocal", lambda x, a: 1.0 / x)
_unary("Sign", lambda x, a: np.sign(x))
_unary("Sin", lambda x, a: np.sin(x))
_unary("Cos", lambda x, a: np.cos(x))
_unary("Silu", lambda x, a: silu(x))


@record
class GeluAttrs:
    approximate: str = "none"


@register_op
class Gelu(_Math):
    name = "Gelu"
    Attrs = GeluAttrs

    @staticmethod
    def infer(attrs, inputs):
        if attrs.approximate not in GELU_APPROXIMATIONS:
            raise ShapeError(f"approximate must be one of {GELU_APPROXIMATIONS}, got {attrs.approximate!r}")
        return _Math.infer(attrs, inputs)

    @staticmethod
    def evaluate(attrs, xs):
        with np.errstate(over="ignore", invalid="ignore"):
            return [gelu(xs[0], attrs.approximate).astype(xs[0].dtype)]


@register_op
class Pow(OpDef):
    """Pow(x, e): x float, e numeric (any type), numpy broadcasting; y has x's type."""

    name = "Pow"
    elementwise = True

    @staticmethod
    def infer(attrs, inputs):
        x, e = inputs
        if x.dtype not in FLOAT_TYPES:
            raise ShapeError(f"needs a float base, got {x.dtype}")
        return [TensorType(x.dtype, broadcast_shape(x.shape, e.shape))]

    @staticmethod
    def evaluate(attrs, xs):
        x, e = xs
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return [np.power(x.astype(np.float64), e.astype(np.float64)).astype(x.dtype)]


@lowers("Erf", "Sqrt", "Exp", "Log", "Neg", "Abs", "Reciprocal", "Sign", "Sin", "Cos", "Softplus", "Softsign", "Mish")
def _lower_unary(n: OnnxNode):
    if n.input_types[0] is not None and n.input_types[0].dtype not in FLOAT_TYPES:
        raise n.unsupported(f"{n.input_types[0].dtype} input: only float {n.op_type} is supported")
    return Lowered(n.op_type)


@lowers("Swish")
def _lower_swish(n: OnnxNode):
    alpha = float(n.attr("alpha", 1.0))
    if alpha != 1.0:
        raise n.unsupported(f"alpha={alpha:g}: only Swish with alpha 1 (SiLU) is supported")
    if n.input_types[0] is not None and n.input_types[0].dtype not in FLOAT_TYPES:
        raise n.unsupported(f"{n.input_types[0].dtype} input: only float Swish is supported")
    return Lowered("Silu")


@lowers("Gelu")
def _lower_gelu(n: OnnxNode):
    approximate = n.attr("approximate", "none")
    if approximate not in GELU_APPROXIMATIONS:
        raise n.unsupported(f"approximate={approximate!r} (ONNX allows {', '.join(GELU_APPROXIMATIONS)})")
    return Lowered("Gelu", GeluAttrs(approximate))


@lowers("Pow")
def _lower_pow(n: OnnxNode):
    if n.input_types[0] is not None and n.input_types[0].dtype not in FLOAT_TYPES:
        raise n.unsupported(f"{n.input_types[0].dtype} base: only a float base is supported")
    return Lowered("Pow")
