"""Integer element-wise ops (docs/numerics.md §3–4): `Requantize`, `QAdd`, `QLut`.

    Requantize  y = clamp(zy + round_shift((x − zx) · m, n), out_min, out_max)
    QAdd        y = clamp(zy + round_shift((a − za) · ma + (b − zb) · mb, n), out_min, out_max)
                with ma ≈ sa/sy · 2^n and mb ≈ sb/sy · 2^n sharing one shift n: a
                single rounding of the exact sum (numpy broadcasting of a and b);
                |ma|, |mb| < 2^31, signed (a − b is mb ≈ −sb/sy · 2^n)
    QLut        y = table[x − min(type of x)]: any unary function of an 8-bit value,
                tabulated at compile time (sigmoid, tanh, hard-swish, ...)
"""

from __future__ import annotations


import numpy as np

from ..errors import ShapeError
from ..ir import TensorType
from ..numerics import round_shift
from ..records import record
from .elementwise import broadcast_shape
from .qlinear import ACTIVATION_TYPES, check_multiplier, check_output_range, check_zero_point
from .registry import NoAttrs, OpDef, register_op


def to_type(y: np.ndarray, dtype: str) -> np.ndarray:
    return y.astype(np.int8 if dtype == "i8" else np.uint8)


def check_rescale(attrs, x: TensorType) -> None:
    """The checks of an op that rescales one 8-bit input x with attrs
    x_zero_point, multiplier, shift and an output range."""
    check_activation(x)
    check_zero_point("x_zero_point", attrs.x_zero_point, x.dtype)
    check_multiplier(attrs.multiplier, attrs.shift)
    check_output_range(attrs)


def check_activation(t: TensorType) -> None:
    if t.dtype not in ACTIVATION_TYPES:
        raise ShapeError(f"needs an i8/u8 input, got {t.dtype}")


@record
class RequantizeAttrs:
    x_zero_point: int
    y_zero_point: int
    multiplier: int
    shift: int
    out_min: int
    out_max: int
    out_dtype: str = "i8"


@register_op
class Requantize(OpDef):
    name = "Requantize"
    Attrs = RequantizeAttrs
    elementwise = True

    @staticmethod
    def infer(attrs, inputs):
        check_rescale(attrs, inputs[0])
        return [TensorType(attrs.out_dtype, inputs[0].shape)]

    @staticmethod
    def evaluate(attrs, inputs):
        centred = inputs[0].astype(np.int64) - attrs.x_zero_point
        y = round_shift(centred * attrs.multiplier, attrs.shift) + attrs.y_zero_point
        return [to_type(np.clip(y, attrs.out_min, attrs.out_max), attrs.out_dtype)]


@record
class QAddAttrs:
    a_zero_point: int
    b_zero_point: int
    y_zero_point: int
    a_multiplier: int
    b_multiplier: int
    shift: int
    out_min: int
    out_max: int
    out_dtype: str = "i8"


@register_op
class QAdd(OpDef):
    name = "QAdd"
    Attrs = QAddAttrs
    elementwise = True

    @staticmethod
    def infer(attrs, inputs):
        a, b = inputs
        check_activation(a)
        check_activation(b)
        check_zero_point("a_zero_point", attrs.a_zero_point, a.dtype)
        check_zero_point("b_zero_point", attrs.b_zero_point, b.dtype)
        check_multiplier(abs(attrs.a_multiplier), attrs.shift)  # signed: Sub negates b's
        check_multiplier(abs(attrs.b_multiplier), attrs.shift)
        check_output_range(attrs)
        return [TensorType(attrs.out_dtype, broadcast_shape(a.shape, b.shape))]

    @staticmethod
    def evaluate(attrs, inputs):
        a = (inputs[0].astype(np.int64) - attrs.a_zero_point) * attrs.a_multiplier
        b = (inputs[1].astype(np.int64) - attrs.b_zero_point) * attrs.b_multiplier
        y = round_shift(a + b, attrs.shift) + attrs.y_zero_point
        return [to_type(np.clip(y, attrs.out_min, attrs.out_max), attrs.out_dtype)]


@register_op
class QLut(OpDef):
    """Inputs x (i8/u8) and table (i8/u8, 256 entries, a constant)."""

    name = "QLut"
    Attrs = NoAttrs
    elementwise = True
    param_inputs = ()

    @staticmethod
    def infer(attrs, inputs):
        x, table = inputs
        check_activation(x)
        if table.dtype not in ACTIVATION_TYPES or table.shape != (256,):
            raise ShapeError(f"table must be i8/u8[256], got {table.dtype}{list(table.shape)}")
        return [TensorType(table.dtype, x.shape)]

    @staticmethod
    def evaluate(attrs, inputs):
        x, table = inputs
        offset = 128 if x.dtype == np.int8 else 0
        return [table[x.astype(np.int64) + offset]]
