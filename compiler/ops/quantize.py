"""QuantizeLinear and DequantizeLinear: the affine map r = scale · (q − zero_point).

Inputs are (x, scale, zero_point), the zero point optional (0 when omitted). The
scale is f32 and the zero point has the quantized type; both hold one value per
tensor (`axis` None, shape [] or [1]) or one per index of `axis` (shape [C]).
Both are constants in lowered models, but they stay inputs, so passes that fold
or fuse Q/DQ pairs see them as tensors (`param_inputs` keeps them out of
`nnc inspect`'s parameter count). Semantics follow ONNX and onnxruntime exactly:

    QuantizeLinear   q = saturate(round_half_to_even(x / scale) + zero_point)
                     with x / scale divided in float32;
    DequantizeLinear r = float32(x − zero_point) · scale, multiplied in float32.

Blocked quantization (block_size), float8, 4-bit and 2-bit types are refused.
"""

from __future__ import annotations

import math

import numpy as np

from .. import dtypes
from ..errors import ShapeError
from ..frontend.onnx_proto import TensorProto
from ..ir import TensorType
from ..records import record
from .registry import Lowered, OnnxNode, OpDef, lowers, register_op
from .shape import node_axis, node_error

QUANTIZED_TYPES = ("u8", "i8", "i16")  # QuantizeLinear outputs
DEQUANTIZABLE_TYPES = ("u8", "i8", "i16", "i32")  # DequantizeLinear inputs


@record
class QuantizeAttrs:
    """`axis`: the non-negative channel axis of per-axis parameters, None for
    per-tensor ones. `dtype`: the output type, one of QUANTIZED_TYPES (equal to
    the zero point's type when there is one)."""

    axis: int | None = None
    dtype: str = "u8"


@record
class DequantizeAttrs:
    """`axis`: the non-negative channel axis of per-axis parameters, None for
    per-tensor ones. The output is always f32."""

    axis: int | None = None


def _unpack(inputs: list) -> tuple:
    """(x, scale, zero_point or None) from an op's 2 or 3 inputs."""
    return tuple(inputs) if len(inputs) == 3 else (*inputs, None)


def _check_param(what: str, t: TensorType, x: TensorType, axis: int | None) -> None:
    """`t` (scale or zero point) holds one value per tensor or one per channel."""
    if axis is None:
        if len(t.shape) > 1 or math.prod(t.shape) != 1:
            raise ShapeError(f"per-tensor {what} must have shape [] or [1], got {list(t.shape)}")
        return
    if axis >= len(x.shape):
        raise ShapeError(f"axis {axis} is out of range for rank {len(x.shape)}")
    if t.shape != (x.shape[axis],):
        raise ShapeError(f"{what} of shape {list(t.shape)} does not fit axis {axis} of {list(x.shape)}")


def _check_params(inputs: list, axis: int | None, zero_point_dtype: str) -> TensorType:
    x, scale, zero_point = _unpack(inputs)
    if scale.dtype != "f32":
        raise ShapeError(f"scale must be f32, got {scale.dtype}")
    _check_param("scale", scale, x, axis)
    if zero_point is not None:
        if zero_point.dtype != zero_point_dtype:
            raise ShapeError(f"zero point must be {zero_point_dtype}, got {zero_point.dtype}")
        _check_param("zero point", zero_point, x, axis)
    return x


def _along(param: np.ndarray, ndim: int, axis: int | None) -> np.ndarray:
    """`param` reshaped to broadcast against a tensor of rank `ndim`."""
    if axis is None:
        return param.reshape(())
    shape = [1] * ndim
    shape[axis] = param.size
    return param.reshape(shape)


@register_op
class QuantizeLinear(OpDef):
    name = "QuantizeLinear"
    Attrs = QuantizeAttrs
    param_inputs = (0,)

    @staticmethod
    def infer(attrs, inputs):
        if attrs.dtype not in QUANTIZED_TYPES:
            raise ShapeError(f"cannot quantize to {attrs.dtype}; supported: {', '.join(QUANTIZED_TYPES)}")
        x = _check_params(inputs, attrs.axis, attrs.dtype)
        if x.dtype != "f32":
            raise ShapeError(f"needs an f32 input, got {x.dtype}")
        return [TensorType(attrs.dtype, x.shape)]

    @staticmethod
    def evaluate(attrs, xs):
        x, scale, zero_point = _unpack(xs)
        q = np.rint(x / _along(scale, x.ndim, attrs.axis)).astype(np.float64)
        if zero_point is not None:
            q += _along(zero_point, x.ndim, attrs.axis)
        lo, hi = dtypes.integer_range(attrs.dtype)
        return [np.clip(q, lo, hi).astype(dtypes.to_numpy(attrs.dtype))]


@register_op
class DequantizeLinear(OpDef):
    name = "DequantizeLinear"
    Attrs = DequantizeAttrs
    param_inputs = (0,)

    @staticmethod
    def infer(attrs, inputs):
        x = inputs[0]
        if x.dtype not in DEQUANTIZABLE_TYPES:
            raise ShapeError(f"cannot dequantize {x.dtype}; supported: {', '.join(DEQUANTIZABLE_TYPES)}")
        _check_params(inputs, attrs.axis, x.dtype)
        return [TensorType("f32", x.shape)]

    @staticmethod
    def evaluate(attrs, xs):
        x, scale, zero_point = _unpack(xs)
        diff = x.astype(np.int64)
        if zero_point is not None:
            diff = diff - _along(zero_point, x.ndim, attrs.axis)
        return [diff.astype(np.float32) * _along(scale, x.ndim, attrs.axis)]


# -- lowering --------------------------------------------------------------------
def _input_type(n: OnnxNode, index: int) -> TensorType | None:
    return n.input_types[index] if index < len(n.inputs) and n.inputs[index] else None


def _lower_axis(n: OnnxNode) -> int | None:
    """The quantization axis: None when the scale holds one value (per tensor),
    the normalised `axis` attribute when it is 1-D; blocked scales are refused."""
    if n.attr("block_size", 0):
        raise n.unsupported("blocked quantization (block_size) is not supported")
    x, scale = n.input_types[0], n.input_types[1]
    if len(scale.shape) <= 1 and math.prod(scale.shape) == 1:
        return None
    if len(scale.shape) != 1:
        raise node_error(n, f"scale of shape {list(scale.shape)} is neither per-tensor nor per-axis")
    return node_axis(n, n.attr("axis", 1), len(x.shape))


def _lower_common(n: OnnxNode, x_types: tuple[str, ...]) -> None:
    """Refuse input types nnc cannot honour; require constant scale and zero point."""
    x_type = n.input_types[0].dtype
    if x_type not in x_types:
        raise n.unsupported(f"{x_type} input is not supported (only {', '.join(x_types)})")
    if n.input_types[1].dtype != "f32":
        raise n.unsupported(f"{n.input_types[1].dtype} scale is not supported (only f32)")
    n.const_input(1, "scale")
    n.const_input(2, "zero point")


@lowers("QuantizeLinear")
def _lower_quantize(n: OnnxNode):
    axis = _lower_axis(n)
    _lower_common(n, ("f32",))
    if n.attr("precision", 0) not in (0, TensorProto.FLOAT):
        raise n.unsupported("only float32 division precision is supported")
    return Lowered("QuantizeLinear", QuantizeAttrs(axis, _quantized_type(n)))


def _quantized_type(n: OnnxNode) -> str:
    """QuantizeLinear's output type: the zero point's, else `output_dtype`, else u8."""
    code = int(n.attr("output_dtype", 0))
    zero_point = _input_type(n, 2)
    if zero_point is not None:
        if code and code != dtypes.to_onnx(zero_point.dtype):
            raise node_error(n, "output_dtype differs from the zero point's type")
        dtype = zero_point.dtype
    elif code:
        dtype = {dtypes.to_onnx(t): t for t in QUANTIZED_TYPES}.get(code, TensorProto.DataType.Name(code))
    else:
        dtype = "u8"
    if dtype not in QUANTIZED_TYPES:
        raise n.unsupported(f"quantizing to {dtype} is not supported (only {', '.join(QUANTIZED_TYPES)})")
    return dtype


@lowers("DequantizeLinear")
def _lower_dequantize(n: OnnxNode):
    axis = _lower_axis(n)
    _lower_common(n, DEQUANTIZABLE_TYPES)
    if n.attr("output_dtype", 0) not in (0, TensorProto.FLOAT):
        raise n.unsupported("only float32 output is supported")
    return Lowered("DequantizeLinear", DequantizeAttrs(axis))
