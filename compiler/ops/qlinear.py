"""Integer multiply-accumulate layers: `QConv` and `QGemm` (docs/numerics.md §2).

Both take x (i8 or u8, per-tensor zero point zx), w (i8, symmetric: zero point 0,
per output channel scales folded into the multipliers), an optional i32 bias and
two i32 vectors `multiplier` and `shift` of one entry per output channel:

    acc[c] = bias[c] + Σ (x − zx) · w[c]          exact, in int32 (proved at compile time)
    y[c]   = clamp(zy + round_shift(acc[c] · multiplier[c], shift[c]), out_min, out_max)

Padding positions of QConv hold zx, i.e. real zero. `out_min`/`out_max` carry both
the output type's range and a fused ReLU/ReLU6. QGemm's weights are [N, K] (one row
per output feature) and x is [M, K].

The reference evaluates the sum in floating point, which is exact: in float64
because the compiler proves |acc| < 2^31 < 2^53 (`numerics.accumulator_bound`),
in float32 where the layer's depth bounds every partial sum below 2^24
(`numerics.exact_float`); the requantization runs in int64.
"""

from __future__ import annotations

import math

import numpy as np

from ..dtypes import integer_range
from ..errors import ShapeError
from ..ir import TensorType
from ..numerics import MANTISSA_BITS, MAX_SHIFT, exact_float, requantize
from ..records import record
from .conv import ConvAttrs, Conv, _conv, channels_first, pad_spatial, restore_layout, split_shape
from .registry import OpDef, register_op

ACTIVATION_TYPES = ("i8", "u8")


@record
class QConvAttrs:
    """Conv geometry (as ConvAttrs, without the float clamp) plus the quantized
    output: zero points of x and y, output type, integer clamp bounds."""

    kernel_shape: tuple[int, ...]
    strides: tuple[int, ...]
    pads: tuple[int, ...]
    dilations: tuple[int, ...]
    group: int
    channels_last: bool
    x_zero_point: int
    y_zero_point: int
    out_min: int
    out_max: int
    out_dtype: str = "i8"

    def geometry(self) -> ConvAttrs:
        return ConvAttrs(self.kernel_shape, self.strides, self.pads, self.dilations, self.group,
                         self.channels_last)


@record
class QGemmAttrs:
    x_zero_point: int
    y_zero_point: int
    out_min: int
    out_max: int
    out_dtype: str = "i8"


def check_requant_inputs(inputs: list, channels: int, attrs) -> None:
    """Types of the shared integer-layer inputs (x, w, bias, multiplier, shift)."""
    if len(inputs) != 5:
        raise ShapeError(f"needs 5 inputs (x, w, bias, multiplier, shift), got {len(inputs)}")
    x, w, bias, multiplier, shift = inputs
    if x.dtype not in ACTIVATION_TYPES or w.dtype != "i8":
        raise ShapeError(f"needs i8/u8 x and i8 w, got {x.dtype} and {w.dtype}")
    if bias is not None and (bias.dtype != "i32" or bias.shape != (channels,)):
        raise ShapeError(f"bias must be i32[{channels}], got {bias.dtype}{list(bias.shape)}")
    for name, t in (("multiplier", multiplier), ("shift", shift)):
        if t is None or t.dtype != "i32" or t.shape != (channels,):
            raise ShapeError(f"{name} must be i32[{channels}]")
    check_zero_point("x_zero_point", attrs.x_zero_point, x.dtype)
    check_output_range(attrs)


def check_output_range(attrs) -> None:
    """out_min <= out_max within the output type (i8/u8), y_zero_point within it."""
    if attrs.out_dtype not in ACTIVATION_TYPES:
        raise ShapeError(f"out_dtype must be i8 or u8, got {attrs.out_dtype!r}")
    lo, hi = integer_range(attrs.out_dtype)
    if not lo <= attrs.out_min <= attrs.out_max <= hi:
        raise ShapeError(f"clamp [{attrs.out_min}, {attrs.out_max}] does not fit {attrs.out_dtype}")
    check_zero_point("y_zero_point", attrs.y_zero_point, attrs.out_dtype)


def check_zero_point(name: str, value: int, dtype: str) -> None:
    """A zero point lies in its tensor's type, so |q − z| <= 255 for 8-bit q (the
    accumulator bounds of docs/numerics.md rely on it)."""
    lo, hi = integer_range(dtype)
    if not lo <= value <= hi:
        raise ShapeError(f"{name} {value} does not fit {dtype}")


def check_multiplier(multiplier: int, shift: int) -> None:
    """An attribute multiplier is an int32 mantissa m ∈ [0, 2^31) with a right
    shift n ∈ [1, 62] (docs/numerics.md §1), what the int64 bounds assume."""
    if not 0 <= multiplier < 1 << MANTISSA_BITS or not 1 <= shift <= MAX_SHIFT:
        raise ShapeError(f"multiplier {multiplier} and shift {shift} must lie in "
                         f"[0, 2^{MANTISSA_BITS}) and [1, {MAX_SHIFT}]")


def finish(acc: np.ndarray, inputs: list, channel_axis: int, attrs) -> np.ndarray:
    """Add the bias, requantize per channel along `channel_axis`, cast."""
    bias, multiplier, shift = inputs[2], inputs[3], inputs[4]
    shape = [1] * acc.ndim
    shape[channel_axis] = -1
    y = requantize(acc, multiplier.reshape(shape), shift.reshape(shape), attrs.y_zero_point,
                   attrs.out_min, attrs.out_max, None if bias is None else bias.reshape(shape))
    return y.astype(np.dtype(np.int8 if attrs.out_dtype == "i8" else np.uint8))


@register_op
class QConv(OpDef):
    name = "QConv"
    Attrs = QConvAttrs
    param_inputs = (1, 2)

    @staticmethod
    def infer(attrs, inputs):
        x, w = inputs[0], inputs[1]
        (out,) = Conv.infer(attrs.geometry(), [TensorType("f32", x.shape), TensorType("f32", w.shape), None])
        check_requant_inputs(inputs, w.shape[0], attrs)
        return [TensorType(attrs.out_dtype, out.shape)]

    @staticmethod
    def evaluate(attrs, inputs):
        x, w = inputs[0], inputs[1]
        exact = exact_float(w.shape[1] * math.prod(attrs.kernel_shape), w)
        # x - x_zero_point padded with 0s: x padded with its zero point, less the zero point, in place
        centred = pad_spatial(channels_first(x, attrs.channels_last), attrs.pads, attrs.x_zero_point, exact)
        centred -= attrs.x_zero_point
        acc = _conv(centred, w.astype(exact), attrs.geometry())
        y = finish(acc.astype(np.int64), inputs, 1, attrs)
        return [restore_layout(y, attrs.channels_last)]

    @staticmethod
    def macs(attrs, inputs, outputs):
        n, cout, out = split_shape(outputs[0].shape, attrs.channels_last)
        return n * cout * math.prod(out) * inputs[1].shape[1] * math.prod(attrs.kernel_shape)


@register_op
class QGemm(OpDef):
    name = "QGemm"
    Attrs = QGemmAttrs
    param_inputs = (1, 2)

    @staticmethod
    def infer(attrs, inputs):
        x, w = inputs[0], inputs[1]
        if len(x.shape) != 2 or len(w.shape) != 2 or x.shape[1] != w.shape[1]:
            raise ShapeError(f"needs x [M, K] and w [N, K], got {list(x.shape)} and {list(w.shape)}")
        check_requant_inputs(inputs, w.shape[0], attrs)
        return [TensorType(attrs.out_dtype, (x.shape[0], w.shape[0]))]

    @staticmethod
    def evaluate(attrs, inputs):
        x, w = inputs[0], inputs[1]
        exact = exact_float(w.shape[1], w)
        acc = (x.astype(exact) - attrs.x_zero_point) @ w.astype(exact).T
        return [finish(acc.astype(np.int64), inputs, 1, attrs)]

    @staticmethod
    def macs(attrs, inputs, outputs):
        return outputs[0].shape[0] * outputs[0].shape[1] * inputs[1].shape[1]
