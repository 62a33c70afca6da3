"""Lowering rules of the multiply-accumulate layers (docs/numerics.md §2):

    Conv (incl. grouped/depthwise, either layout)   → QConv
    Gemm, and MatMul with constant 2-D weights      → QGemm (weights [N, K]); Gemm's
                                                      trans_a → an 8-bit Transpose of x first

Weights are int8 per output channel (a per-tensor scale is broadcast), biases
int32 at scale s_x · s_w[c] (weights.layer_bias), M[c] = s_x · s_w[c] / s_y as
(multiplier, shift) vectors. The output clamp is the type's range ∩ the layer's
fused clamp ∩ a Relu/Clip chain after it. Every layer passes the overflow proof
(weights.check_accumulator) or is refused.
"""

from __future__ import annotations

import numpy as np

from ..errors import UnsupportedError
from ..ir import Graph, QuantParams
from ..numerics import quantize_multipliers
from ..ops.qlinear import QConvAttrs, QGemmAttrs
from ..ops.shape import TransposeAttrs
from .emit import add_node, constant, multiplier_constants, new_tensor
from .groups import Group, Operand, rule
from .weights import QuantizedConstant, check_accumulator, dequantized_constant, layer_bias


def _weights(graph: Graph, group: Group, axis: int) -> tuple[QuantizedConstant, np.ndarray]:
    """The int8 weights and their per-output-channel scales along `axis`."""
    w = dequantized_constant(graph, group.node.inputs[1], "weights", group.name)
    if w.data.dtype != np.int8:
        raise UnsupportedError(f"layer {group.name!r}: weights must be int8, got {w.data.dtype}")
    try:
        return w, w.scales_along(axis)
    except UnsupportedError as exc:
        raise UnsupportedError(f"layer {group.name!r}: {exc}") from None


def _bias(graph: Graph, group: Group, channels: int, acc_scale: np.ndarray) -> QuantizedConstant | None:
    """The layer's bias at scale `acc_scale` (data int32[channels]), or None."""
    name = group.node.inputs[2] if len(group.node.inputs) > 2 else ""
    if not name:
        return None
    bias = dequantized_constant(graph, name, "bias", group.name)
    return QuantizedConstant(layer_bias(bias, channels, acc_scale, group.name), acc_scale, 0, bias.name)


def _layer_inputs(graph: Graph, group: Group, wq: np.ndarray, w: QuantizedConstant, s_w: np.ndarray,
                  act: tuple) -> tuple[list[str], tuple[int, int]]:
    """[x, w, bias, multiplier, shift] of the integer layer, and its clamp bounds.
    `wq` is the weight data in the integer op's layout (output channels first)."""
    x = group.operand(0)
    acc_scale = x.affine.scale * s_w
    bias = _bias(graph, group, len(s_w), acc_scale)
    check_accumulator(wq, None if bias is None else bias.data, group.name)
    mantissas, shifts = quantize_multipliers(acc_scale / group.out.scale)
    w_name = constant(graph, f"{group.name}.weights", wq, _per_channel(s_w), reuse=w.name)
    b_name = "" if bias is None else constant(graph, f"{group.name}.bias", bias.data,
                                              _per_channel(acc_scale), reuse=bias.name)
    m_name, n_name = multiplier_constants(graph, group.name, mantissas, shifts)
    return [x.tensor, w_name, b_name, m_name, n_name], group.bounds(act)


def _per_channel(scales: np.ndarray) -> QuantParams:
    return QuantParams(tuple(map(float, scales)), (0,) * len(scales), 0)


@rule("Conv")
def lower_conv(graph: Graph, group: Group) -> None:
    attrs = group.node.attrs
    w, s_w = _weights(graph, group, 0)
    inputs, (lo, hi) = _layer_inputs(graph, group, w.data, w, s_w, (attrs.act_min, attrs.act_max))
    x = group.operand(0)
    qattrs = QConvAttrs(attrs.kernel_shape, attrs.strides, attrs.pads, attrs.dilations, attrs.group,
                        attrs.channels_last, x.affine.zero_point, group.out.zero_point, lo, hi, group.out.dtype)
    add_node(graph, group.name, "QConv", inputs, [group.output], qattrs)


def _check_matrix(graph: Graph, group: Group) -> None:
    x = graph.tensor(group.operand(0).tensor)
    if len(x.shape) != 2 or len(graph.tensor(group.node.inputs[1]).shape) != 2:
        raise UnsupportedError(f"{group.node.op} node {group.name!r}: only 2-D operands have an integer "
                               "lowering (QGemm)")


@rule("Gemm")
def lower_gemm(graph: Graph, group: Group) -> None:
    attrs = group.node.attrs
    _check_matrix(graph, group)
    if attrs.alpha != 1.0 or attrs.beta != 1.0:
        raise UnsupportedError(f"Gemm node {group.name!r}: alpha != 1 and beta != 1 have no integer lowering")
    if attrs.trans_a:
        _transpose_operand(graph, group)
    _matrix_layer(graph, group, attrs.trans_b, (attrs.act_min, attrs.act_max))


def _transpose_operand(graph: Graph, group: Group) -> None:
    """Gemm's trans_a as an 8-bit Transpose of x [K, M] into [M, K] (data movement,
    same parameters) in front of the QGemm."""
    x = group.operand(0)
    k, m = graph.tensor(x.tensor).shape
    moved = new_tensor(graph, x.tensor, x.affine, (m, k))
    add_node(graph, f"{group.name}.trans_a", "Transpose", [x.tensor], [moved], TransposeAttrs((1, 0)))
    group.operands[0] = Operand(moved, x.affine)


def lower_matmul(graph: Graph, group: Group) -> None:
    """MatMul x [M, K] @ constant W [K, N] (the rule is rules_transformer.lower_matmul)."""
    _check_matrix(graph, group)
    _matrix_layer(graph, group, False, (None, None))


def _matrix_layer(graph: Graph, group: Group, trans_b: bool, act: tuple) -> None:
    """QGemm from weights [K, N] (or [N, K] when trans_b), output channels N."""
    w, s_w = _weights(graph, group, 0 if trans_b else 1)
    wq = w.data if trans_b else np.ascontiguousarray(w.data.T)
    inputs, (lo, hi) = _layer_inputs(graph, group, wq, w, s_w, act)
    x = group.operand(0)
    qattrs = QGemmAttrs(x.affine.zero_point, group.out.zero_point, lo, hi, group.out.dtype)
    add_node(graph, group.name, "QGemm", inputs, [group.output], qattrs)
