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

QLogSoftmax(x, exp_table, log_table) shares d_i and S and works in Q24 nats
(LOG_BITS fraction bits). S's bit length k + 1 and its next INDEX_BITS +
STEP_BITS bits after the leading one, t = S · 2^(24 − k) (a left or right
shift; t ∈ [2^24, 2^25)), split into a segment j = t >> 16 − 256 and a step
r = t mod 2^16 of log_table[j] = round(2^LOG_BITS · ln(1 + j / 256)), j = 0..256:

    L   = (k − EXP_BITS) · LN2 + log_table[j] + floor((log_table[j+1] − log_table[j]) · r / 2^16)
    N_i = d_i · SX + L                         (Q24 nats of −ln p_i)
    y_i = clamp(zy − round_shift(N_i · m, n), out_min, out_max)

with SX = round(sx · 2^LOG_BITS) and 1/(sy · 2^LOG_BITS) stored as (m, n), m a
MULT_BITS-bit mantissa. L is ln(S / 2^EXP_BITS) by linear interpolation (within
2e-6 nats). S < 2^47 keeps |L| < 2^29; SX ≤ 2^27 (s_x ≤ 8) keeps
|N_i| < 2^36 and |N_i · m| < 2^63.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import ShapeError, UnsupportedError
from ..ir import TensorType
from ..numerics import quantize_multiplier, round_shift
from ..records import record
from .qelementwise import check_activation, to_type
from .qlinear import check_multiplier, check_output_range
from .registry import OpDef, register_op
from .softmax import check_keep_mask

EXP_BITS = 24
LOG_BITS = 24
LN2 = round(math.log(2) * (1 << LOG_BITS))  # ln 2 in Q24 nats: 11629080
INDEX_BITS, STEP_BITS = 8, 16
MAX_SX = 1 << 27
MULT_BITS = 27


def log_table() -> np.ndarray:
    """log_table[j] = round(2^LOG_BITS · ln(1 + j / 2^INDEX_BITS)), j = 0..2^INDEX_BITS (i32)."""
    segments = 1 << INDEX_BITS
    return np.rint(np.log1p(np.arange(segments + 1) / segments) * (1 << LOG_BITS)).astype(np.int32)


@record
class QSoftmaxAttrs:
    y_zero_point: int
    multiplier: int
    shift: int
    out_min: int
    out_max: int
    out_dtype: str = "i8"


def _check_rows(x, what: str) -> None:
    """ShapeError unless x is an 8-bit activation of rank >= 1 whose rows (last
    axis) hold at most 2^16 values (`what`: the op's name in the message)."""
    check_activation(x)
    if not x.shape:
        raise ShapeError(f"needs an input of rank >= 1 ({what} over the last axis)")
    if x.shape[-1] > 1 << 16:
        raise ShapeError(f"{what} over more than 65536 values is not supported")


def _check_table(what: str, table, size: int) -> None:
    if table.dtype != "i32" or table.shape != (size,):
        raise ShapeError(f"{what} must be i32[{size}], got {table.dtype}{list(table.shape)}")


@register_op
class QSoftmax(OpDef):
    name = "QSoftmax"
    Attrs = QSoftmaxAttrs
    param_inputs = ()

    @staticmethod
    def infer(attrs, inputs):
        x, table = inputs[:2]
        _check_rows(x, "softmax")
        check_multiplier(attrs.multiplier, attrs.shift)
        check_output_range(attrs)
        _check_table("exp_table", table, 256)
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


@record
class QLogSoftmaxAttrs:
    """`x_scale`: SX = round(s_x · 2^LOG_BITS), in 1..MAX_SX; (multiplier, shift)
    stores 1 / (s_y · 2^LOG_BITS) with a MULT_BITS-bit multiplier."""

    x_scale: int
    y_zero_point: int
    multiplier: int
    shift: int
    out_min: int
    out_max: int
    out_dtype: str = "i8"


def log_table_problem(exp: np.ndarray, log: np.ndarray) -> str | None:
    """Why QLogSoftmax cannot take these constant tables, or None: `exp` must be
    non-negative with exp[0] >= 1 (so S >= 1; int32 entries and at most 2^16
    classes keep S < 2^47), `log` must rise from 0 to at most LN2 by steps in
    [0, 2^STEP_BITS) (so the interpolation stays below 2^32 and |L| < 2^29)."""
    exp, log = np.asarray(exp, np.int64), np.asarray(log, np.int64)
    if exp.min() < 0 or exp[0] < 1:
        return "its exp table must be non-negative with exp_table[0] >= 1"
    rises = np.diff(log)
    if log[0] != 0 or log.max() > LN2 or rises.min() < 0 or rises.max() >= 1 << STEP_BITS:
        return f"its log table must rise from 0 to at most {LN2} by steps below 2^{STEP_BITS}"
    return None


def log_of_sum(total: np.ndarray, log: np.ndarray) -> np.ndarray:
    """L = (k − EXP_BITS) · LN2 + log[j] + floor((log[j+1] − log[j]) · r / 2^16) of
    each sum S in `total` (int64, 1 <= S < 2^47), ≈ 2^LOG_BITS · ln(S / 2^EXP_BITS)."""
    # S < 2^47 < 2^53, so float64's frexp gives its bit length exactly
    k = np.frexp(total.astype(np.float64))[1].astype(np.int64) - 1
    top = INDEX_BITS + STEP_BITS
    t = np.where(k <= top, total << np.maximum(top - k, 0), total >> np.maximum(k - top, 0))
    j, r = (t >> STEP_BITS) - (1 << INDEX_BITS), t & ((1 << STEP_BITS) - 1)
    return (k - EXP_BITS) * LN2 + log[j] + (((log[j + 1] - log[j]) * r) >> STEP_BITS)


def log_softmax_attrs(sx: float, sy: float, y_zero_point: int, out_min: int, out_max: int,
                      out_dtype: str = "i8") -> QLogSoftmaxAttrs:
    """QLogSoftmax's attributes for input scale `sx` and output scale `sy`;
    UnsupportedError when SX = round(sx · 2^LOG_BITS) leaves 1..MAX_SX."""
    x_scale = round(sx * (1 << LOG_BITS))
    if not 1 <= x_scale <= MAX_SX:
        raise UnsupportedError(f"integer log-softmax needs an input scale from about 2^-24 to 8, got {sx:g}")
    m, n = quantize_multiplier(1.0 / (sy * (1 << LOG_BITS)), MULT_BITS)
    return QLogSoftmaxAttrs(x_scale, y_zero_point, m, n, out_min, out_max, out_dtype)


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
        _check_rows(x, "log-softmax")
        check_multiplier(attrs.multiplier, attrs.shift)
        if attrs.multiplier >= 1 << MULT_BITS:
            raise ShapeError(f"multiplier {attrs.multiplier} must lie below 2^{MULT_BITS}")
        check_output_range(attrs)
        if not 1 <= attrs.x_scale <= MAX_SX:
            raise ShapeError(f"x_scale {attrs.x_scale} must be in 1..{MAX_SX} (s_x up to 8)")
        for what, table, size in zip(("exp_table", "log_table"), tables, (256, (1 << INDEX_BITS) + 1)):
            _check_table(what, table, size)
        return [TensorType(attrs.out_dtype, x.shape)]

    @staticmethod
    def evaluate(attrs, inputs):
        x, exp, log = (t.astype(np.int64) for t in inputs)
        problem = log_table_problem(exp, log)
        if problem:
            raise ShapeError(problem)
        d = x.max(axis=-1, keepdims=True) - x
        total = exp[d].sum(axis=-1, keepdims=True)
        nats = log_of_sum(total, log) + d * attrs.x_scale
        y = attrs.y_zero_point - round_shift(nats * attrs.multiplier, attrs.shift)
        return [to_type(np.clip(y, attrs.out_min, attrs.out_max), attrs.out_dtype)]
