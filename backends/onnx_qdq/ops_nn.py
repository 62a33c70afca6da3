"""ONNX writers of the layers: Conv, Gemm, MatMul, pools, normalizations, Softmax,
LogSoftmax.

The IR fuses a clamp into Conv and Gemm (`act_min`/`act_max`); ONNX writes it
back as the op followed by Relu (bounds [0, none]) or Clip (any other bounds),
which is the QDQ pattern DequantizeLinear -> Conv -> Relu -> QuantizeLinear
that onnxruntime and nnc's own front end fuse again. Spatial ops must be
channels first (NCHW): the ONNX target's pipeline has no layout pass.
"""

from __future__ import annotations

import numpy as np

from nnc import dtypes
from nnc.ir import Node

from .writer import OnnxBuilder, refuse, writes


def clamped_output(out: OnnxBuilder, node: Node) -> str:
    """The tensor the op itself writes: its IR output, or a fresh one that the
    fused clamp (`write_clamp`) reads when it has one."""
    lo, hi = node.attrs.act_min, node.attrs.act_max
    return node.outputs[0] if lo is None and hi is None else out.fresh(f"{node.outputs[0]}.unclamped")


def write_clamp(out: OnnxBuilder, node: Node, source: str) -> None:
    """Relu or Clip from `source` to the node's output, for a fused clamp."""
    lo, hi = node.attrs.act_min, node.attrs.act_max
    if lo is None and hi is None:
        return
    if lo == 0.0 and hi is None:
        out.add("Relu", [source], node.outputs, f"{node.name}.relu")
        return
    bounds = [out.constant(f"{node.name}.{side}", np.float32(v)) if v is not None else ""
              for side, v in (("min", lo), ("max", hi))]
    out.add("Clip", [source, *bounds], node.outputs, f"{node.name}.clip")


def refuse_channels_last(node: Node) -> None:
    if node.attrs.channels_last:
        raise refuse(node, "a channels-last layout (the layout pass ran)")


@writes("Conv")
def _conv(out: OnnxBuilder, node: Node) -> None:
    refuse_channels_last(node)
    a = node.attrs
    result = clamped_output(out, node)
    out.add("Conv", node.inputs, [result], node.name, kernel_shape=list(a.kernel_shape), strides=list(a.strides),
            pads=list(a.pads), dilations=list(a.dilations), group=a.group)
    write_clamp(out, node, result)


@writes("Gemm")
def _gemm(out: OnnxBuilder, node: Node) -> None:
    a = node.attrs
    result = clamped_output(out, node)
    out.add("Gemm", node.inputs, [result], node.name, alpha=a.alpha, beta=a.beta, transA=int(a.trans_a),
            transB=int(a.trans_b))
    write_clamp(out, node, result)


@writes("MatMul")
def _matmul(out: OnnxBuilder, node: Node) -> None:
    out.add("MatMul", node.inputs, node.outputs, node.name)


@writes("MaxPool")
def _max_pool(out: OnnxBuilder, node: Node) -> None:
    refuse_channels_last(node)
    a = node.attrs
    out.add("MaxPool", node.inputs, node.outputs, node.name, kernel_shape=list(a.kernel_shape),
            strides=list(a.strides), pads=list(a.pads), dilations=list(a.dilations), ceil_mode=int(a.ceil_mode))


@writes("AveragePool")
def _average_pool(out: OnnxBuilder, node: Node) -> None:
    refuse_channels_last(node)
    a = node.attrs
    if any(d != 1 for d in a.dilations):
        raise refuse(node, f"dilations {list(a.dilations)} (AveragePool has them from opset 19)")
    out.add("AveragePool", node.inputs, node.outputs, node.name, kernel_shape=list(a.kernel_shape),
            strides=list(a.strides), pads=list(a.pads), ceil_mode=int(a.ceil_mode),
            count_include_pad=int(a.count_include_pad))


@writes("GlobalAveragePool", "GlobalMaxPool")
def _global_pool(out: OnnxBuilder, node: Node) -> None:
    refuse_channels_last(node)
    out.add(node.op, node.inputs, node.outputs, node.name)


@writes("BatchNormalization")
def _batch_norm(out: OnnxBuilder, node: Node) -> None:
    refuse_channels_last(node)
    out.add("BatchNormalization", node.inputs, node.outputs, node.name, epsilon=node.attrs.epsilon)


@writes("LayerNormalization")
def _layer_norm(out: OnnxBuilder, node: Node) -> None:
    out.add("LayerNormalization", node.inputs, node.outputs, node.name, axis=node.attrs.axis,
            epsilon=node.attrs.epsilon)


@writes("Softmax", "LogSoftmax")
def _softmax(out: OnnxBuilder, node: Node) -> None:
    """The op of the same name after a Mul by its `scale` (when not 1); only
    Softmax has a keep mask."""
    if node.attrs.coerce_2d:
        raise refuse(node, "a softmax over several axes (opset < 13)")
    x = node.inputs[0]
    if node.attrs.scale != 1.0:
        factor = np.array(node.attrs.scale, dtype=dtypes.to_numpy(out.graph.tensor(x).dtype))
        scaled = out.fresh(f"{node.name}.scaled")
        out.add("Mul", [x, out.constant(f"{node.name}.scale", factor)], [scaled], f"{node.name}.scaling")
        x = scaled
    if len(node.inputs) > 1 and node.inputs[1]:  # the keep mask, as the additive mask the front end fuses back
        fill = np.where(out.graph.constant(node.inputs[1]), 0.0, -np.inf).astype(np.float32)
        masked = out.fresh(f"{node.name}.masked")
        out.add("Add", [x, out.constant(f"{node.name}.mask", fill)], [masked], f"{node.name}.mask")
        x = masked
    out.add(node.op, [x], node.outputs, node.name, axis=node.attrs.axis)
