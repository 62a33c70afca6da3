"""Integer softmax `QSoftmax` and log-softmax `QLogSoftmax` over the last axis
(docs/numerics.md §6, §6a).

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

QLogSoftmax(x, exp_table, log_table) shares d_i and S, and works in Q16 nats
(LOG_BITS fraction bits). With k = bit length of S − 1 and j the 8 bits of S
after its leading one, L = (k − EXP_BITS) · LN2 + log_table[j] is ln(S / 2^EXP_BITS)
(log_table[j] = round(2^LOG_BITS · ln(1 + (j + ½) / 256)), within 0.002 nats).
With SX = round(sx · 2^LOG_BITS) and 1/(sy · 2^LOG_BITS) stored as (m, n):

    N_i = d_i · SX + L                         (Q16 nats of −log p_i, ≥ 0)
    y_i = clamp(zy − round_shift(N_i · m, n), out_min, out_max)

SX ≤ 2^23 keeps |N_i| < 2^32 and |N_i · m| < 2^63 (S < 2^47, so |L| < 2^21).
"""

from __future__ import annotations

import math
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
LOG_BITS = 16
LN2 = round(math.log(2) * (1 << LOG_BITS))  # ln 2 in Q16 nats: 45426
MAX_SX = 1 << 23


def log_table() -> np.ndarray:
    """log_table[j] = round(2^LOG_BITS · ln(1 + (j + ½) / 256)), j = 0..255 (i32)."""
    return np.rint(np.log1p((np.arange(256) + 0.5) / 256) * (1 << LOG_BITS)).astype(np.int32)


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


@dataclass(frozen=True)
class QLogSoftmaxAttrs:
    """`x_scale`: SX = round(s_x · 2^LOG_BITS), in 1..MAX_SX; (multiplier, shift)
    stores 1 / (s_y · 2^LOG_BITS)."""

    x_scale: int
    y_zero_point: int
    multiplier: int
    shift: int
    out_min: int
    out_max: int
    out_dtype: str = "i8"


@register_op
class QLogSoftmax(OpDef):
    name = "QLogSoftmax"
    Attrs = QLogSoftmaxAttrs
    param_inputs = ()

    @staticmethod
    def infer(attrs, inputs):
        if len(inputs) != 3:
            raise ShapeError(f"takes x, exp_table and log_table, got {len(inputs)} inputs")
        x, *tables = inputs
        check_activation(x)
        if not x.shape:
            raise ShapeError("needs an input of rank >= 1 (log-softmax over the last axis)")
        check_multiplier(attrs.multiplier, attrs.shift)
        check_output_range(attrs)
        if not 1 <= attrs.x_scale <= MAX_SX:
            raise ShapeError(f"x_scale {attrs.x_scale} must be in 1..{MAX_SX} (s_x up to 128)")
        for what, table in zip(("exp_table", "log_table"), tables):
            if table.dtype != "i32" or table.shape != (256,):
                raise ShapeError(f"{what} must be i32[256], got {table.dtype}{list(table.shape)}")
        if x.shape[-1] > 1 << 16:
            raise ShapeError("log-softmax over more than 65536 values is not supported")
        return [TensorType(attrs.out_dtype, x.shape)]

    @staticmethod
    def evaluate(attrs, inputs):
        x, exp, log = (t.astype(np.int64) for t in inputs)
        d = x.max(axis=-1, keepdims=True) - x
        total = exp[d].sum(axis=-1, keepdims=True)
        # 0 < S < 2^47 (65536 terms below 2^31), so float64's frexp gives its bit length exactly
        k = np.frexp(total.astype(np.float64))[1].astype(np.int64) - 1
        j = ((total << 8) >> k) - 256
        nats = d * attrs.x_scale + (k - EXP_BITS) * LN2 + log[j]
        y = attrs.y_zero_point - round_shift(nats * attrs.multiplier, attrs.shift)
        return [to_type(np.clip(y, attrs.out_min, attrs.out_max), attrs.out_dtype)]
