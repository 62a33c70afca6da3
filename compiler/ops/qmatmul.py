"""Integer matrix product of two 8-bit operands, `QMatMul` (docs/numerics.md §12).

Inputs a [..., M, K] and b [..., K, N] (i8/u8; b may be a constant), numpy matmul
semantics with broadcast batch axes (both operands of rank >= 2); with
`b_transposed`, b is stored [..., N, K] (attention's kᵀ: the quantizer folds a
Transpose of b's last two axes into the product, so no copy makes kᵀ):

    acc[..., i, j] = Σ_k (a[..., i, k] − za) · (b[..., k, j] − zb)      (int32, exact)
    y[..., i, j]   = clamp(zy + round_shift(acc · m, n), out_min, out_max)

with M = sa · sb / sy as (m, n). K <= MAX_K keeps |acc| <= K · 255² < 2^31.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import ShapeError
from ..ir import TensorType
from ..numerics import requantize
from ..records import record
from .gemm import matmul_shape
from .qbinary import QProductAttrs
from .qelementwise import check_activation, to_type
from .qlinear import check_multiplier, check_output_range, check_zero_point
from .registry import OpDef, register_op

MAX_K = ((1 << 31) - 1) // (255 * 255)


@record
class QMatMulAttrs(QProductAttrs):
    """QProductAttrs; `b_transposed`: b holds the matrices of the product's
    right operand transposed, [..., N, K]."""

    b_transposed: bool = False


def swap_last_two(rank: int) -> tuple[int, ...]:
    """The Transpose perm that swaps the last two of `rank` axes (how b_transposed stores b)."""
    return (*range(rank - 2), rank - 1, rank - 2)


def right_operand(attrs, b_shape: tuple[int, ...]) -> tuple[int, ...]:
    """The shape of the product's right operand [..., K, N] for b of `b_shape`."""
    return tuple(b_shape[i] for i in swap_last_two(len(b_shape))) if attrs.b_transposed else tuple(b_shape)


@register_op
class QMatMul(OpDef):
    name = "QMatMul"
    Attrs = QMatMulAttrs
    param_inputs = (1,)

    @staticmethod
    def infer(attrs, inputs):
        a, b = inputs
        check_activation(a)
        check_activation(b)
        if len(a.shape) < 2 or len(b.shape) < 2:
            raise ShapeError(f"needs operands of rank >= 2, got {list(a.shape)} and {list(b.shape)}")
        check_zero_point("a_zero_point", attrs.a_zero_point, a.dtype)
        check_zero_point("b_zero_point", attrs.b_zero_point, b.dtype)
        check_multiplier(attrs.multiplier, attrs.shift)
        check_output_range(attrs)
        shape, k = matmul_shape(a.shape, right_operand(attrs, b.shape))
        if k > MAX_K:
            raise ShapeError(f"inner dimension {k} > {MAX_K} may overflow the int32 accumulator")
        return [TensorType(attrs.out_dtype, shape)]

    @staticmethod
    def evaluate(attrs, inputs):
        a = inputs[0].astype(np.int64) - attrs.a_zero_point
        b = inputs[1].astype(np.int64) - attrs.b_zero_point
        acc = np.matmul(a, np.swapaxes(b, -1, -2) if attrs.b_transposed else b)
        y = requantize(acc, attrs.multiplier, attrs.shift, attrs.y_zero_point, attrs.out_min, attrs.out_max)
        return [to_type(y, attrs.out_dtype)]

    @staticmethod
    def macs(attrs, inputs, outputs):
        shape, k = matmul_shape(inputs[0].shape, right_operand(attrs, inputs[1].shape))
        return math.prod(shape) * k
