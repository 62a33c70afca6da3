"""Layer normalization: float `LayerNormalization` (ONNX opset 17) and the integer
`QLayerNorm` (docs/numerics.md §14).

LayerNormalization normalizes over the axes `axis`..rank-1 (non-negative in the
IR): y = (x − mean) / sqrt(var + epsilon) · scale + bias, with scale and the
optional bias broadcasting to the normalized shape. Computed in float64 and cast
back. The optional outputs Mean and InvStdDev (shape x.shape[:axis] + 1s) are
computed too; the integer form has only y (a used statistic is not quantized).

QLayerNorm (inputs x i8/u8, g i32[N], b i64[N] over the N normalized elements),
per row:

    S = Σ x,  c_i = N·x_i − S,  U = Σ c_i² + eps_int
    (r, k) = rsqrt_fixed(U)       r ≈ 2^31 / √(U · 4^−k)
    H_i = sround(c_i · r, 31 + k − FRACTION_BITS)
    y_i = clamp(zy + round_shift(g_i · H_i + b_i, shift), out_min, out_max)
"""

from __future__ import annotations

import math

import numpy as np

from ..dtypes import FLOAT_TYPES
from ..errors import ShapeError
from ..ir import TensorType
from ..numerics import round_shift
from ..records import record
from .qelementwise import check_activation, to_type
from .qlinear import check_output_range
from .registry import Lowered, OnnxNode, OpDef, lowers, register_op
from .shape import node_axis

FRACTION_BITS = 30  # F of docs/numerics.md §14
MAX_ROW = 1 << 15
MAX_EPS = 1 << 61


@record
class LayerNormAttrs:
    axis: int
    epsilon: float = 1e-5


def _normalized(shape: tuple[int, ...], axis: int) -> tuple[int, ...]:
    if not 0 <= axis < len(shape):
        raise ShapeError(f"axis {axis} is out of range for rank {len(shape)}")
    return shape[axis:]


@register_op
class LayerNormalization(OpDef):
    """Inputs x, scale and an optional bias ("" when absent)."""

    name = "LayerNormalization"
    Attrs = LayerNormAttrs
    param_inputs = (1, 2)

    @staticmethod
    def infer(attrs, inputs):
        x = inputs[0]
        if x.dtype not in FLOAT_TYPES:
            raise ShapeError(f"needs a float input, got {x.dtype}")
        normalized = _normalized(x.shape, attrs.axis)
        for what, p in zip(("scale", "bias"), inputs[1:3]):
            if p is not None and (p.dtype != x.dtype or not _broadcasts(p.shape, normalized)):
                raise ShapeError(f"{what} {p.dtype}{list(p.shape)} does not broadcast to {list(normalized)}")
        stats = TensorType(x.dtype, x.shape[:attrs.axis] + (1,) * len(normalized))
        return [x, stats, stats]

    @staticmethod
    def evaluate(attrs, inputs):
        x = inputs[0]
        wide = x.astype(np.float64)
        axes = tuple(range(attrs.axis, x.ndim))
        mean = wide.mean(axis=axes, keepdims=True)
        inv_std = 1.0 / np.sqrt(((wide - mean) ** 2).mean(axis=axes, keepdims=True) + attrs.epsilon)
        y = (wide - mean) * inv_std * inputs[1].astype(np.float64)
        if len(inputs) > 2 and inputs[2] is not None:
            y = y + inputs[2].astype(np.float64)
        return [y.astype(x.dtype), mean.astype(x.dtype), inv_std.astype(x.dtype)]


def _broadcasts(shape: tuple[int, ...], target: tuple[int, ...]) -> bool:
    try:
        return np.broadcast_shapes(shape, target) == target
    except ValueError:
        return False


# -- integer form --------------------------------------------------------------------
@record
class QLayerNormAttrs:
    axis: int
    eps_int: int  # round(epsilon · N³ / sx²)
    shift: int  # T
    y_zero_point: int
    out_min: int
    out_max: int
    out_dtype: str = "i8"


def rsqrt_fixed(u_total: int) -> tuple[int, int]:
    """(r, k) for U >= 1: k = ceil((bitlen(U) − 32) / 2), u = U·4^−k (floor),
    r = isqrt(floor(2^62 / u)); so r · 2^(−31−k) ≈ 1/√U (docs/numerics.md §14)."""
    k = -(-(u_total.bit_length() - 32) // 2)
    u = u_total >> (2 * k) if k >= 0 else u_total << (-2 * k)
    return math.isqrt((1 << 62) // u), k


def normalized_rows(rows: np.ndarray, eps_int: int) -> np.ndarray:
    """H [rows, N] (int64) of 8-bit rows: c_i / √U with FRACTION_BITS fraction bits,
    H_i = sround(c_i · r, s): round_shift for s >= 1, an exact left shift otherwise."""
    n = rows.shape[1]
    c = n * rows.astype(np.int64) - rows.astype(np.int64).sum(axis=1, keepdims=True)
    out = np.zeros(c.shape, np.int64)
    for i, row in enumerate(c):
        total = int((row * row).sum()) + eps_int
        if total:
            r, k = rsqrt_fixed(total)
            shift = 31 + k - FRACTION_BITS
            out[i] = round_shift(row * r, shift) if shift >= 1 else (row * r) << -shift
    return out


@register_op
class QLayerNorm(OpDef):
    name = "QLayerNorm"
    Attrs = QLayerNormAttrs
    param_inputs = (1, 2)

    @staticmethod
    def infer(attrs, inputs):
        x, g, b = inputs
        check_activation(x)
        check_output_range(attrs)
        n = math.prod(_normalized(x.shape, attrs.axis))
        if n > MAX_ROW:
            raise ShapeError(f"rows of {n} > {MAX_ROW} values may overflow the int64 variance")
        if g.dtype != "i32" or b.dtype != "i64" or g.shape != b.shape or g.shape not in ((n,), (1,)):
            raise ShapeError(f"g must be i32[{n}] and b i64[{n}] (or both of one value, [1]), got "
                             f"{g.dtype}{list(g.shape)}, {b.dtype}{list(b.shape)}")
        if not 0 <= attrs.eps_int < MAX_EPS or not 1 <= attrs.shift <= 62:
            raise ShapeError(f"eps_int {attrs.eps_int} or shift {attrs.shift} out of range")
        return [TensorType(attrs.out_dtype, x.shape)]

    @staticmethod
    def evaluate(attrs, inputs):
        x, g, b = inputs
        rows = x.reshape(-1, math.prod(x.shape[attrs.axis:]))
        h = normalized_rows(rows, attrs.eps_int)
        acc = g.astype(np.int64) * h + b.astype(np.int64)
        y = round_shift(acc, attrs.shift) + attrs.y_zero_point
        return [to_type(np.clip(y, attrs.out_min, attrs.out_max), attrs.out_dtype).reshape(x.shape)]


# -- ONNX lowering ---------------------------------------------------------------------
@lowers("LayerNormalization")
def _lower_layer_norm(n: OnnxNode):
    if n.input_types[0].dtype not in FLOAT_TYPES:
        raise n.unsupported(f"{n.input_types[0].dtype} input is not supported (float only)")
    axis = node_axis(n, n.attr("axis", -1), len(n.input_types[0].shape))
    attrs = LayerNormAttrs(axis, float(n.attr("epsilon", 1e-5)))
    return Lowered("LayerNormalization", attrs, inputs=(n.inputs + [""] * 3)[:3])
