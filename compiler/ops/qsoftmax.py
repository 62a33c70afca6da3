"""Integer softmax `QSoftmax` over the last axis (docs/numerics.md §6).

Inputs: x (i8/u8, scale sx) and `exp_table` (i32[256], a compile-time constant with
exp_table[d] = round(2^EXP_BITS · exp(−sx · d))). With 1/sy stored as (multiplier,
shift) = (m, n):

    d_i  = max(x) − x_i                       (0 .. 255)
    e_i  = exp_table[d_i],  S = Σ e_i          (int64)
    y_i  = clamp(zy + floor((e_i · m + S · 2^(n−1)) / (S · 2^n)), out_min, out_max)

i.e. zy + e_i / (S · sy) rounded half up. It is computed as round_shift(e_i · m // S, n),
the same value (nested floors), so no intermediate exceeds e_i · m < 2^62.

An optional third input `keep` (a u8 constant of x's rank that broadcasts to
x; 0 where Softmax's mask hides a position; docs/numerics.md §6) hides
positions: the max runs over the kept positions only, and a hidden position
has e_i = 0, so its y is zy (the code of probability 0). Every row keeps at
least one position.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ShapeError
from ..ir import TensorType
from ..numerics import round_shift
from .qelementwise import check_activation, to_type
from .qlinear import check_multiplier, check_output_range
from .registry import OpDef, register_op
from .softmax import check_keep_mask

EXP_BITS = 24


@dataclass(frozen=True)
class QSoftmaxAttrs:
    y_zero_point: int
    multiplier: int
    shift: int
    out_min: int
    out_max: int
    out_dtype: str = "i8"


@register_op
class QSoftmax(OpDef):
    name = "QSoftmax"
    Attrs = QSoftmaxAttrs
    param_inputs = ()

    @staticmethod
    def infer(attrs, inputs):
        x, table = inputs[:2]
        check_activation(x)
        if not x.shape:
            raise ShapeError("needs an input of rank >= 1 (softmax over the last axis)")
        check_multiplier(attrs.multiplier, attrs.shift)
        check_output_range(attrs)
        if table.dtype != "i32" or table.shape != (256,):
            raise ShapeError(f"exp_table must be i32[256], got {table.dtype}{list(table.shape)}")
        if x.shape[-1] > 1 << 16:
            raise ShapeError("softmax over more than 65536 values is not supported")
        if len(inputs) > 2 and inputs[2] is not None:
            check_keep_mask(inputs[2], x, False, "u8")
        return [TensorType(attrs.out_dtype, x.shape)]

    @staticmethod
    def evaluate(attrs, inputs):
        x, table = inputs[0].astype(np.int64), inputs[1].astype(np.int64)
        if len(inputs) > 2 and inputs[2] is not None:
            keep = np.broadcast_to(inputs[2] != 0, x.shape)
            top = np.where(keep, x, np.iinfo(np.int64).min).max(axis=-1, keepdims=True)
            e = np.where(keep, table[np.where(keep, top - x, 0)], 0)
        else:
            e = table[x.max(axis=-1, keepdims=True) - x]
        total = e.sum(axis=-1, keepdims=True)
        # floor((e·m + S·2^(n−1)) / (S·2^n)) = round_shift(floor(e·m / S), n) exactly
        # (nested floors): no term exceeds e·m < 2^62, whereas S·2^n reaches 2^63
        # already for 2^16 classes and n = 23 (s_y = 1/255).
        y = round_shift(e * attrs.multiplier // total, attrs.shift)
        return [to_type(np.clip(y + attrs.y_zero_point, attrs.out_min, attrs.out_max), attrs.out_dtype)]
