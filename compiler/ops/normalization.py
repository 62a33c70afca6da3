"""Normalization: `BatchNormalization` in inference mode (running statistics),
and `InstanceNormalization` (statistics of each sample's channel over its
spatial axes; PyTorch's InstanceNorm and GroupNorm export it).

Training mode (statistics computed from the batch, updated running statistics as
extra outputs) is refused by the ONNX lowering: models for inference are
exported in eval mode. canonicalize rewrites InstanceNormalization into a
LayerNormalization over the spatial axes and a per-channel Mul and Add
(passes/instance_norm.py), which every target runs.
"""

from __future__ import annotations


import numpy as np

from ..dtypes import FLOAT_TYPES
from ..errors import ShapeError
from ..records import record
from .registry import Lowered, OnnxNode, OpDef, lowers, register_op


@record
class BatchNormAttrs:
    """epsilon: added to the variance; channels_last: the channel axis of x is the
    last one instead of axis 1."""

    epsilon: float = 1e-5
    channels_last: bool = False


@register_op
class BatchNormalization(OpDef):
    """Inputs x, scale, B, mean, var (the last four of shape [C]):
    y = (x - mean) * scale / sqrt(var + epsilon) + B, per channel."""

    name = "BatchNormalization"
    Attrs = BatchNormAttrs
    param_inputs = (1, 2, 3, 4)

    @staticmethod
    def infer(attrs, inputs):
        x, params = inputs[0], inputs[1:]
        if len(x.shape) < 2 or x.dtype not in FLOAT_TYPES:
            raise ShapeError(f"needs a float input of rank >= 2, got {x.dtype}{list(x.shape)}")
        channels = x.shape[-1] if attrs.channels_last else x.shape[1]
        for what, p in zip(("scale", "B", "mean", "var"), params, strict=True):
            if p is None or p.dtype not in FLOAT_TYPES or p.shape != (channels,):
                raise ShapeError(f"{what} must be a float vector of {channels} channels, got {p}")
        return [x]

    @staticmethod
    def evaluate(attrs, inputs):
        x = inputs[0]
        shape = (-1,) if attrs.channels_last else (-1, *(1,) * (x.ndim - 2))
        scale, bias, mean, var = (p.astype(np.float64).reshape(shape) for p in inputs[1:])
        y = (x.astype(np.float64) - mean) * (scale / np.sqrt(var + attrs.epsilon)) + bias
        return [y.astype(x.dtype)]


@lowers("BatchNormalization")
def _lower_batch_norm(n: OnnxNode):
    if n.attr("training_mode", 0):
        raise n.unsupported("training_mode=1 is not supported (export the model in eval mode)")
    n.require_unused_outputs(1)
    epsilon = float(n.attr("epsilon", 1e-5))
    var = n.constants.get(n.inputs[4]) if len(n.inputs) > 4 else None
    if var is not None and var.size and not np.all(var.astype(np.float64) + epsilon > 0):
        channel = int(np.argmin(var.astype(np.float64) + epsilon > 0))
        raise ShapeError(f"BatchNormalization node {n.name!r}: var + epsilon must be positive, but channel {channel} "
                         f"has var {var.reshape(-1)[channel]} and epsilon {epsilon}")
    return Lowered("BatchNormalization", BatchNormAttrs(epsilon=epsilon))


@record
class InstanceNormAttrs:
    epsilon: float = 1e-5


@register_op
class InstanceNormalization(OpDef):
    """Inputs x [N, C, D1, ...], scale [C], B [C]: y = (x − mean) / sqrt(var +
    epsilon) · scale + B, mean and (biased) var over D1.. of each (n, c);
    float64, cast back once."""

    name = "InstanceNormalization"
    Attrs = InstanceNormAttrs
    param_inputs = (1, 2)

    @staticmethod
    def infer(attrs, inputs):
        x, params = inputs[0], inputs[1:]
        if len(x.shape) < 3 or x.dtype not in FLOAT_TYPES:
            raise ShapeError(f"needs a float input of rank >= 3, got {x.dtype}{list(x.shape)}")
        for what, p in zip(("scale", "B"), params, strict=True):
            if p is None or p.dtype not in FLOAT_TYPES or p.shape != (x.shape[1],):
                raise ShapeError(f"{what} must be a float vector of {x.shape[1]} channels, got {p}")
        return [x]

    @staticmethod
    def evaluate(attrs, inputs):
        x = inputs[0].astype(np.float64)
        axes = tuple(range(2, x.ndim))
        shape = (-1, *(1,) * (x.ndim - 2))
        scale, bias = (p.astype(np.float64).reshape(shape) for p in inputs[1:])
        mean = x.mean(axis=axes, keepdims=True)
        var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
        return [((x - mean) / np.sqrt(var + attrs.epsilon) * scale + bias).astype(inputs[0].dtype)]


@lowers("InstanceNormalization")
def _lower_instance_norm(n: OnnxNode):
    return Lowered("InstanceNormalization", InstanceNormAttrs(float(n.attr("epsilon", 1e-5))))
