"""Integer element-wise products and affine maps with numpy broadcasting
(docs/numerics.md §18):

    QMul     y = clamp(zy + round_shift((a − za) · (b − zb) · m, n), out_min, out_max)
             two 8-bit operands, M = s_a · s_b / s_y as (m, n) of §1
    QAffine  y = clamp(zy + round_shift(d · (d < 0 ? mn[j] : m[j]) + o[j], n), out_min, out_max)
             d = x − zx; m, o (and the optional mn, else mn = m) are int32
             constants of one shape that broadcasts against x; j is the element
             of that shape the output element reads. x · const, x + const,
             x − const, const − x, x / const, BatchNormalization and PRelu are
             all QAffine with one rounding.

Bounds: |(a − za)(b − zb)| ≤ 255² and m < 2^31 keep QMul's product below 2^47;
|d · m| < 2^39 and |o| < 2^31 keep QAffine's sum below 2^40.
"""

from __future__ import annotations


import numpy as np

from ..errors import ShapeError
from ..ir import TensorType
from ..numerics import round_shift
from ..records import record
from .elementwise import broadcast_shape
from .qelementwise import check_activation, to_type
from .qlinear import check_multiplier, check_output_range, check_zero_point
from .registry import OpDef, register_op

COEFFICIENT_LIMIT = 1 << 31
MAX_SHIFT = 62


@record
class QProductAttrs:
    """Attributes of the integer products QMul and QMatMul (qmatmul.py)."""

    a_zero_point: int
    b_zero_point: int
    y_zero_point: int
    multiplier: int
    shift: int
    out_min: int
    out_max: int
    out_dtype: str = "i8"


@register_op
class QMul(OpDef):
    name = "QMul"
    Attrs = QProductAttrs
    elementwise = True

    @staticmethod
    def infer(attrs, inputs):
        a, b = inputs
        check_activation(a)
        check_activation(b)
        check_zero_point("a_zero_point", attrs.a_zero_point, a.dtype)
        check_zero_point("b_zero_point", attrs.b_zero_point, b.dtype)
        check_multiplier(attrs.multiplier, attrs.shift)
        check_output_range(attrs)
        return [TensorType(attrs.out_dtype, broadcast_shape(a.shape, b.shape))]

    @staticmethod
    def evaluate(attrs, inputs):
        a = inputs[0].astype(np.int64) - attrs.a_zero_point
        b = inputs[1].astype(np.int64) - attrs.b_zero_point
        y = round_shift(a * b * attrs.multiplier, attrs.shift) + attrs.y_zero_point
        return [to_type(np.clip(y, attrs.out_min, attrs.out_max), attrs.out_dtype)]


@record
class QAffineAttrs:
    x_zero_point: int
    y_zero_point: int
    shift: int
    out_min: int
    out_max: int
    out_dtype: str = "i8"


@register_op
class QAffine(OpDef):
    """Inputs x (i8/u8), multiplier (i32), offset (i32) and the optional
    negative-side multiplier (i32, PRelu), the last three constants of one shape."""

    name = "QAffine"
    Attrs = QAffineAttrs
    elementwise = True
    param_inputs = (1, 2, 3)

    @staticmethod
    def infer(attrs, inputs):
        x, coefficients = inputs[0], [t for i, t in enumerate(inputs[1:]) if t is not None or i < 2]
        check_activation(x)
        if len(coefficients) < 2 or any(t is None or t.dtype != "i32" or t.shape != coefficients[0].shape
                                         for t in coefficients):
            raise ShapeError("multiplier, offset (and negative multiplier) must be i32 tensors of one shape")
        check_zero_point("x_zero_point", attrs.x_zero_point, x.dtype)
        if not 1 <= attrs.shift <= MAX_SHIFT:
            raise ShapeError(f"shift {attrs.shift} must lie in [1, {MAX_SHIFT}]")
        check_output_range(attrs)
        return [TensorType(attrs.out_dtype, broadcast_shape(x.shape, coefficients[0].shape))]

    @staticmethod
    def evaluate(attrs, inputs):
        x, mult, offset = inputs[:3]
        mult_neg = inputs[3] if len(inputs) > 3 and inputs[3] is not None else mult
        d = x.astype(np.int64) - attrs.x_zero_point
        m = np.where(d < 0, mult_neg.astype(np.int64), mult.astype(np.int64))
        y = round_shift(d * m + offset.astype(np.int64), attrs.shift) + attrs.y_zero_point
        return [to_type(np.clip(y, attrs.out_min, attrs.out_max), attrs.out_dtype)]
