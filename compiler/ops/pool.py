"""Pooling: `MaxPool`, `AveragePool` (N-D windows) and `GlobalAveragePool`,
`GlobalMaxPool` (over every spatial axis, which are kept with size 1).

Windows follow ONNX (and PyTorch): window o along an axis covers padded positions
o * stride + k * dilation. With ceil_mode the output size rounds up, except that
a window must start inside the input or the begin pad; positions past the end
pad are never part of a window. MaxPool ignores padding; AveragePool divides by
the number of input positions in the window, or with count_include_pad by the
number of input and explicit pad positions. Geometry attributes are explicit:
the ONNX lowering resolves auto_pad into pads (the output size then follows the
auto_pad rule, so ceil_mode is dropped).
"""

from __future__ import annotations


import numpy as np

from ..dtypes import FLOAT_TYPES
from ..errors import ShapeError
from ..ir import TensorType
from ..records import record
from .conv import (channels_first, check_geometry, check_padded, int_attr, join_shape, lowered_geometry,
                   pad_spatial, restore_layout, split_shape, window_view)
from .registry import Lowered, OnnxNode, OpDef, lowers, register_op

_MAX_POOL_TYPES = (*FLOAT_TYPES, "i8", "u8")


@record
class PoolAttrs:
    """Window geometry over nd = len(kernel_shape) spatial axes; pads are ONNX
    ordered (nd begins, then nd ends) and >= 0."""

    kernel_shape: tuple[int, ...]
    strides: tuple[int, ...]
    pads: tuple[int, ...]
    dilations: tuple[int, ...]
    ceil_mode: bool = False
    channels_last: bool = False


@record
class AveragePoolAttrs(PoolAttrs):
    """PoolAttrs plus count_include_pad: explicit pad positions count as zeros."""

    count_include_pad: bool = False


@record
class GlobalPoolAttrs:
    """channels_last: the channel axis is the last one instead of axis 1."""

    channels_last: bool = False


def pooled_size(size: int, k: int, s: int, d: int, begin: int, end: int, ceil: bool) -> int:
    """Windows along one axis (see the module docstring for ceil_mode)."""
    span = size + begin + end - (k - 1) * d - 1
    out = (-(-span // s) if ceil else span // s) + 1
    if ceil and (out - 1) * s >= size + begin:
        out -= 1
    return out


def window_counts(attrs: AveragePoolAttrs, spatial) -> np.ndarray:
    """The divisor of each AveragePool window [1, 1, *output spatial] (float64):
    its input positions, and with count_include_pad its explicit pad positions
    too."""
    ones = np.ones((1, 1, *spatial))
    kernel_axes = tuple(range(ones.ndim, 2 * ones.ndim - 2))
    return _windows(ones, attrs, float(attrs.count_include_pad), 0.0).sum(axis=kernel_axes)


def _out_spatial(attrs: PoolAttrs, spatial) -> tuple[int, ...]:
    nd = len(spatial)
    return tuple(pooled_size(i, k, s, d, attrs.pads[a], attrs.pads[a + nd], attrs.ceil_mode)
                 for a, (i, k, s, d) in enumerate(zip(spatial, attrs.kernel_shape, attrs.strides,
                                                       attrs.dilations)))


def _infer_pool(attrs: PoolAttrs, x: TensorType, allowed: tuple[str, ...]) -> list[TensorType]:
    n, c, spatial = split_shape(x.shape, attrs.channels_last)
    check_geometry(attrs.kernel_shape, attrs.strides, attrs.pads, attrs.dilations, len(spatial))
    if x.dtype not in allowed:
        raise ShapeError(f"{x.dtype} input is not supported (needs one of {', '.join(allowed)})")
    if min(attrs.pads) < 0:
        raise ShapeError(f"pads must be >= 0, got {list(attrs.pads)}")
    out = _out_spatial(attrs, spatial)
    if min(out) < 1:
        raise ShapeError(f"the window does not fit the padded input {list(x.shape)}")
    check_padded(n, c, spatial, attrs.pads)
    return [TensorType(x.dtype, join_shape(n, c, out, attrs.channels_last))]


def _windows(x: np.ndarray, attrs: PoolAttrs, pad_value, beyond_value) -> np.ndarray:
    """Windows [N, C, *out, *kernel] of channels-first x padded with `pad_value` by
    the explicit pads, and with `beyond_value` past the end pad as far as ceil_mode
    windows reach."""
    nd = x.ndim - 2
    out = _out_spatial(attrs, x.shape[2:])
    padded = pad_spatial(x, attrs.pads, pad_value)
    reach = [(o - 1) * s + (k - 1) * d + 1
             for o, k, s, d in zip(out, attrs.kernel_shape, attrs.strides, attrs.dilations)]
    beyond = [max(0, r - size) for r, size in zip(reach, padded.shape[2:])]
    padded = pad_spatial(padded, (0,) * nd + tuple(beyond), beyond_value)
    return window_view(padded, attrs.kernel_shape, attrs.strides, attrs.dilations, out)


@register_op
class MaxPool(OpDef):
    """y[n, c, *o] = max of x over window o; padding never wins."""

    name = "MaxPool"
    Attrs = PoolAttrs

    @staticmethod
    def infer(attrs, inputs):
        return _infer_pool(attrs, inputs[0], _MAX_POOL_TYPES)

    @staticmethod
    def evaluate(attrs, inputs):
        x = channels_first(inputs[0], attrs.channels_last)
        lowest = -np.inf if x.dtype.kind == "f" else np.iinfo(x.dtype).min
        windows = _windows(x, attrs, lowest, lowest)
        y = windows.max(axis=tuple(range(x.ndim, windows.ndim)))
        return [restore_layout(y, attrs.channels_last)]


@register_op
class AveragePool(OpDef):
    """y[n, c, *o] = sum of x over window o / count of counted positions in it."""

    name = "AveragePool"
    Attrs = AveragePoolAttrs

    @staticmethod
    def infer(attrs, inputs):
        return _infer_pool(attrs, inputs[0], FLOAT_TYPES)

    @staticmethod
    def evaluate(attrs, inputs):
        x = channels_first(inputs[0], attrs.channels_last)
        kernel_axes = tuple(range(x.ndim, 2 * x.ndim - 2))
        sums = _windows(x.astype(np.float64), attrs, 0.0, 0.0).sum(axis=kernel_axes)
        return [restore_layout(sums / window_counts(attrs, x.shape[2:]), attrs.channels_last).astype(x.dtype)]


# -- global pooling -----------------------------------------------------------------
class _GlobalPool(OpDef):
    Attrs = GlobalPoolAttrs
    allowed: tuple[str, ...] = FLOAT_TYPES

    @classmethod
    def infer(cls, attrs, inputs):
        x = inputs[0]
        n, c, spatial = split_shape(x.shape, attrs.channels_last)
        if x.dtype not in cls.allowed:
            raise ShapeError(f"{x.dtype} input is not supported (needs one of {', '.join(cls.allowed)})")
        return [TensorType(x.dtype, join_shape(n, c, (1,) * len(spatial), attrs.channels_last))]


def _spatial_axes(x: np.ndarray, channels_last: bool) -> tuple[int, ...]:
    return tuple(range(1, x.ndim - 1)) if channels_last else tuple(range(2, x.ndim))


@register_op
class GlobalAveragePool(_GlobalPool):
    """y[n, c, 1, ...] = mean of x[n, c] over every spatial position."""

    name = "GlobalAveragePool"

    @staticmethod
    def evaluate(attrs, inputs):
        x = inputs[0]
        axes = _spatial_axes(x, attrs.channels_last)
        return [x.astype(np.float64).mean(axis=axes, keepdims=True).astype(x.dtype)]


@register_op
class GlobalMaxPool(_GlobalPool):
    """y[n, c, 1, ...] = max of x[n, c] over every spatial position."""

    name = "GlobalMaxPool"
    allowed = _MAX_POOL_TYPES

    @staticmethod
    def evaluate(attrs, inputs):
        x = inputs[0]
        return [x.max(axis=_spatial_axes(x, attrs.channels_last), keepdims=True)]


# -- ONNX lowering ------------------------------------------------------------------
def _pool_geometry(n: OnnxNode) -> dict:
    """Explicit geometry and ceil_mode; storage_order only concerns Indices."""
    geometry = lowered_geometry(n, int_attr(n, "kernel_shape", ()))
    ceil_mode = bool(n.attr("ceil_mode", 0)) and n.attr("auto_pad", "NOTSET") == "NOTSET"
    return dict(geometry, ceil_mode=ceil_mode)


@lowers("MaxPool")
def _lower_max_pool(n: OnnxNode):
    n.require_unused_outputs(1)
    return Lowered("MaxPool", PoolAttrs(**_pool_geometry(n)), inputs=n.inputs[:1])


@lowers("AveragePool")
def _lower_average_pool(n: OnnxNode):
    attrs = AveragePoolAttrs(**_pool_geometry(n), count_include_pad=bool(n.attr("count_include_pad", 0)))
    return Lowered("AveragePool", attrs)


@lowers("GlobalAveragePool", "GlobalMaxPool")
def _lower_global_pool(n: OnnxNode):
    return Lowered(n.op_type, GlobalPoolAttrs())

