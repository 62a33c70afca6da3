"""Data-movement ops: Reshape, Transpose, Concat, Pad, Identity and Dropout.

Shapes in nnc are static, so every ONNX input that computes a shape (Reshape's
shape, Squeeze/Unsqueeze axes, Pad's pads) must be a constant and becomes an
attribute. ONNX Reshape, Flatten, Squeeze and Unsqueeze all lower to the one IR
`Reshape`, whose attribute is the resolved output shape. Every op here works on
any element type and moves values without changing them (Pad adds a fill value).
"""

from __future__ import annotations

import math

import numpy as np

from ..dtypes import to_numpy
from ..errors import ShapeError
from ..ir import TensorType
from ..records import record
from .registry import Lowered, OnnxNode, OpDef, lowers, register_op


def normalize_axis(axis: int, rank: int) -> int:
    """`axis` in [-rank, rank) as a non-negative index; ShapeError otherwise."""
    if not -rank <= axis < rank:
        raise ShapeError(f"axis {axis} is out of range for rank {rank}")
    return axis % rank


def node_error(n: OnnxNode, why: str) -> ShapeError:
    """A ShapeError naming ONNX node `n`: the model itself is inconsistent."""
    return ShapeError(f"{n.op_type} node {n.name!r}: {why}")


def node_axis(n: OnnxNode, axis: int, rank: int) -> int:
    """`normalize_axis` for an axis read from ONNX node `n`."""
    try:
        return normalize_axis(int(axis), rank)
    except ShapeError as exc:
        raise node_error(n, str(exc)) from None


# -- Reshape -------------------------------------------------------------------
@record
class ReshapeAttrs:
    """`shape`: the output shape, every extent literal (no -1 or 0 placeholders;
    a 0 is a genuinely empty axis). It holds as many elements as the input."""

    shape: tuple[int, ...]


@register_op
class Reshape(OpDef):
    """Same elements in row-major order, new shape."""

    name = "Reshape"
    Attrs = ReshapeAttrs

    @staticmethod
    def infer(attrs, inputs):
        x = inputs[0]
        if min(attrs.shape, default=0) < 0 or math.prod(attrs.shape) != math.prod(x.shape):
            raise ShapeError(f"cannot reshape {list(x.shape)} to {list(attrs.shape)}")
        return [TensorType(x.dtype, attrs.shape)]

    @staticmethod
    def evaluate(attrs, xs):
        return [xs[0].reshape(attrs.shape)]


def _reshape_to(n: OnnxNode, shape) -> Lowered:
    return Lowered("Reshape", ReshapeAttrs(tuple(int(d) for d in shape)), inputs=n.inputs[:1])


@lowers("Reshape")
def _lower_reshape(n: OnnxNode):
    target = n.const_input(1, "shape")
    if target is None:
        raise node_error(n, "has no shape input")
    allowzero = bool(n.attr("allowzero", 0))
    return _reshape_to(n, _resolve_shape(n, n.input_types[0].shape, [int(d) for d in target], allowzero))


def _resolve_shape(n: OnnxNode, src: tuple[int, ...], target: list[int], allowzero: bool) -> list[int]:
    """ONNX Reshape's target made literal: 0 copies the input extent at the same
    index (a literal 0 with allowzero), one -1 takes the remaining elements."""
    if allowzero and 0 in target and -1 in target:
        raise node_error(n, "shape holds both 0 and -1 with allowzero=1")
    if not allowzero and any(d == 0 and i >= len(src) for i, d in enumerate(target)):
        raise node_error(n, f"shape {target} copies an axis that input {list(src)} lacks")
    dims = [src[i] if d == 0 and not allowzero else d for i, d in enumerate(target)]
    if dims.count(-1) > 1 or min(dims, default=0) < -1:
        raise node_error(n, f"invalid shape {target}")
    if -1 in dims:
        known = math.prod(d for d in dims if d != -1)
        if known == 0 or math.prod(src) % known:
            raise node_error(n, f"cannot reshape {list(src)} to {target}")
        dims[dims.index(-1)] = math.prod(src) // known
    return dims


@lowers("Flatten")
def _lower_flatten(n: OnnxNode):
    src = n.input_types[0].shape
    axis = int(n.attr("axis", 1))
    if not -len(src) <= axis <= len(src):
        raise node_error(n, f"axis {axis} is out of range for rank {len(src)}")
    axis = axis + len(src) if axis < 0 else axis
    return _reshape_to(n, (math.prod(src[:axis]), math.prod(src[axis:])))


def _axes(n: OnnxNode) -> list[int] | None:
    """Squeeze/Unsqueeze axes: an attribute before opset 13, a constant input from 13."""
    data = n.attr("axes") if n.opset < 13 else n.const_input(1, "axes")
    return None if data is None else [int(a) for a in np.asarray(data).reshape(-1)]


def _distinct_axes(n: OnnxNode, axes: list[int], rank: int) -> set[int]:
    normalized = {node_axis(n, a, rank) for a in axes}
    if len(normalized) != len(axes):
        raise node_error(n, f"axes {axes} repeat an axis")
    return normalized


@lowers("Squeeze")
def _lower_squeeze(n: OnnxNode):
    src = n.input_types[0].shape
    axes = _axes(n)
    if axes is None:
        axes = [i for i, d in enumerate(src) if d == 1]
    axes = _distinct_axes(n, axes, len(src))
    if any(src[a] != 1 for a in axes):
        raise node_error(n, f"cannot squeeze axes {sorted(axes)} of shape {list(src)}: extent is not 1")
    return _reshape_to(n, [d for i, d in enumerate(src) if i not in axes])


@lowers("Unsqueeze")
def _lower_unsqueeze(n: OnnxNode):
    src = n.input_types[0].shape
    axes = _axes(n)
    if axes is None:
        raise node_error(n, "has no axes")
    shape = list(src)
    for axis in sorted(_distinct_axes(n, axes, len(src) + len(axes))):
        shape.insert(axis, 1)
    return _reshape_to(n, shape)


# -- Transpose -----------------------------------------------------------------
@record
class TransposeAttrs:
    """`perm`: output axis i is input axis perm[i]; a permutation of range(rank)."""

    perm: tuple[int, ...]


@register_op
class Transpose(OpDef):
    name = "Transpose"
    Attrs = TransposeAttrs

    @staticmethod
    def infer(attrs, inputs):
        x = inputs[0]
        if sorted(attrs.perm) != list(range(len(x.shape))):
            raise ShapeError(f"perm {list(attrs.perm)} is not a permutation of the {len(x.shape)} axes")
        return [TensorType(x.dtype, tuple(x.shape[p] for p in attrs.perm))]

    @staticmethod
    def evaluate(attrs, xs):
        return [np.transpose(xs[0], attrs.perm)]


@lowers("Transpose")
def _lower_transpose(n: OnnxNode):
    perm = n.attr("perm")
    if perm is None:
        perm = range(len(n.input_types[0].shape) - 1, -1, -1)
    return Lowered("Transpose", TransposeAttrs(tuple(int(p) for p in perm)))


# -- Concat --------------------------------------------------------------------
@record
class ConcatAttrs:
    """`axis`: the non-negative axis along which the inputs are joined."""

    axis: int


@register_op
class Concat(OpDef):
    """Joins one or more tensors of one type whose shapes differ only along `axis`."""

    name = "Concat"
    Attrs = ConcatAttrs

    @staticmethod
    def infer(attrs, inputs):
        first = inputs[0]
        if attrs.axis >= len(first.shape):
            raise ShapeError(f"axis {attrs.axis} is out of range for rank {len(first.shape)}")
        for t in inputs:
            if t.dtype != first.dtype:
                raise ShapeError(f"operand types differ: {first.dtype} vs {t.dtype}")
            if len(t.shape) != len(first.shape) or _drop(t.shape, attrs.axis) != _drop(first.shape, attrs.axis):
                raise ShapeError(f"shapes {list(first.shape)} and {list(t.shape)} differ off axis {attrs.axis}")
        shape = list(first.shape)
        shape[attrs.axis] = sum(t.shape[attrs.axis] for t in inputs)
        return [TensorType(first.dtype, tuple(shape))]

    @staticmethod
    def evaluate(attrs, xs):
        return [np.concatenate(xs, axis=attrs.axis)]


def _drop(shape: tuple[int, ...], axis: int) -> tuple[int, ...]:
    return shape[:axis] + shape[axis + 1:]


@lowers("Concat")
def _lower_concat(n: OnnxNode):
    rank = len(n.input_types[0].shape)
    return Lowered("Concat", ConcatAttrs(node_axis(n, n.attr("axis"), rank)))


# -- Pad -----------------------------------------------------------------------
PAD_MODES = ("constant", "reflect", "edge", "wrap")


@record
class PadAttrs:
    """`pads`: amounts to add before every axis, then after every axis (ONNX
    order, 2·rank entries); a negative amount removes elements, and removal
    happens before padding. `mode`: one of PAD_MODES. `value`: the fill of
    "constant" mode, converted to the tensor's type (0.0 in the other modes)."""

    pads: tuple[int, ...]
    mode: str = "constant"
    value: float = 0.0


@register_op
class Pad(OpDef):
    name = "Pad"
    Attrs = PadAttrs

    @staticmethod
    def infer(attrs, inputs):
        x = inputs[0]
        rank = len(x.shape)
        if attrs.mode not in PAD_MODES:
            raise ShapeError(f"unknown pad mode {attrs.mode!r}")
        if len(attrs.pads) != 2 * rank:
            raise ShapeError(f"{len(attrs.pads)} pads for rank {rank}; need {2 * rank}")
        axes = list(zip(x.shape, attrs.pads[:rank], attrs.pads[rank:]))
        for extent, begin, end in axes:
            _check_pad(attrs.mode, extent, begin, end)
        pad_fill(attrs.value, to_numpy(x.dtype))
        return [TensorType(x.dtype, tuple(d + b + e for d, b, e in axes))]

    @staticmethod
    def evaluate(attrs, xs):
        x = xs[0]
        begins, ends = attrs.pads[:x.ndim], attrs.pads[x.ndim:]
        kept = x[tuple(slice(-min(b, 0), d + min(e, 0)) for d, b, e in zip(x.shape, begins, ends))]
        width = [(max(b, 0), max(e, 0)) for b, e in zip(begins, ends)]
        if attrs.mode == "constant":
            return [np.pad(kept, width, constant_values=pad_fill(attrs.value, x.dtype))]
        return [np.pad(kept, width, mode=attrs.mode)]


def pad_fill(value: float, dtype: np.dtype):
    """The constant fill as a `dtype` scalar; ShapeError when an integer type
    cannot hold it exactly (a fractional or out-of-range value)."""
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        if not np.isfinite(value) or value != int(value) or not info.min <= value <= info.max:
            raise ShapeError(f"Pad fill value {value} does not fit {np.dtype(dtype).name}")
    return np.dtype(dtype).type(value)


def _check_pad(mode: str, extent: int, begin: int, end: int) -> None:
    """One axis: removal must leave >= 0 elements; reflect needs more kept elements
    than it adds on either side, edge and wrap need at least one."""
    kept = extent + min(begin, 0) + min(end, 0)
    grows = max(begin, end) > 0
    if kept < 0:
        raise ShapeError(f"pads ({begin}, {end}) remove more than the {extent} elements of an axis")
    if mode == "reflect" and grows and max(begin, end) >= kept:
        raise ShapeError(f"reflect pads ({begin}, {end}) need more than {kept} elements on the axis")
    if mode in ("edge", "wrap") and grows and kept == 0:
        raise ShapeError(f"{mode} mode cannot pad an empty axis")


@lowers("Pad")
def _lower_pad(n: OnnxNode):
    mode = n.attr("mode", "constant")
    if mode not in PAD_MODES:
        raise n.unsupported(f"pad mode {mode!r}")
    rank = len(n.input_types[0].shape)
    pads = n.const_input(1, "pads")
    if pads is None:
        raise node_error(n, "has no pads input")
    axes = n.const_input(3, "axes")
    axes = list(range(rank)) if axes is None else [node_axis(n, a, rank) for a in axes.reshape(-1)]
    if pads.size != 2 * len(axes):
        raise node_error(n, f"{pads.size} pads for {len(axes)} axes")
    full = [0] * (2 * rank)
    for i, axis in enumerate(axes):
        full[axis], full[rank + axis] = int(pads[i]), int(pads[len(axes) + i])
    value = n.const_input(2, "constant_value")
    fill = float(value.reshape(-1)[0]) if mode == "constant" and value is not None and value.size else 0.0
    return Lowered("Pad", PadAttrs(tuple(full), mode, fill), inputs=n.inputs[:1])


# -- Identity and Dropout ------------------------------------------------------
class _Forward(OpDef):
    elementwise = True

    @staticmethod
    def infer(attrs, inputs):
        return [inputs[0]]

    @staticmethod
    def evaluate(attrs, xs):
        return [xs[0]]


@register_op
class Identity(_Forward):
    name = "Identity"


@register_op
class Dropout(_Forward):
    """Inference-mode dropout: forwards its input unchanged."""

    name = "Dropout"


@lowers("Identity")
def _lower_identity(n: OnnxNode):
    return Lowered("Identity")


@lowers("Dropout")
def _lower_dropout(n: OnnxNode):
    n.require_unused_outputs(1)
    training = n.const_input(2, "training_mode")
    if training is not None and training.any():
        raise n.unsupported("training mode is not supported")
    return Lowered("Dropout", inputs=n.inputs[:1])
