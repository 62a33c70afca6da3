"""Softmax: exp(x - max) / sum(exp(x - max)) over one axis (or, for ONNX models
before opset 13, over every axis from `axis` on). Computed in float64 and cast
back, so the result is the correctly rounded value in all but rare cases."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..dtypes import FLOAT_TYPES
from ..errors import ShapeError
from .registry import Lowered, OnnxNode, OpDef, lowers, register_op
from .shape import node_axis


@dataclass(frozen=True)
class SoftmaxAttrs:
    """`axis`: non-negative axis over which the outputs sum to one.
    `coerce_2d`: normalise over axes `axis`..rank-1 together, as ONNX Softmax
    before opset 13 does (it flattens the input to 2-D at `axis`). Lowering keeps
    it False whenever `axis` is the last axis, where both meanings agree."""

    axis: int
    coerce_2d: bool = False


@register_op
class Softmax(OpDef):
    name = "Softmax"
    Attrs = SoftmaxAttrs

    @staticmethod
    def infer(attrs, inputs):
        x = inputs[0]
        if x.dtype not in FLOAT_TYPES:
            raise ShapeError(f"needs a float input, got {x.dtype}")
        if attrs.axis >= len(x.shape):
            raise ShapeError(f"axis {attrs.axis} is out of range for rank {len(x.shape)}")
        return [x]

    @staticmethod
    def evaluate(attrs, xs):
        x = xs[0]
        if attrs.coerce_2d:
            rows = x.reshape(math.prod(x.shape[:attrs.axis]), math.prod(x.shape[attrs.axis:]))
            return [_softmax(rows, 1).reshape(x.shape)]
        return [_softmax(x, attrs.axis)]


def _softmax(x: np.ndarray, axis: int) -> np.ndarray:
    wide = x.astype(np.float64)
    e = np.exp(wide - wide.max(axis=axis, keepdims=True))
    return (e / e.sum(axis=axis, keepdims=True)).astype(x.dtype)


@lowers("Softmax")
def _lower_softmax(n: OnnxNode):
    rank = len(n.input_types[0].shape)
    axis = node_axis(n, n.attr("axis", 1 if n.opset < 13 else -1), rank)
    return Lowered("Softmax", SoftmaxAttrs(axis, coerce_2d=n.opset < 13 and axis != rank - 1))
