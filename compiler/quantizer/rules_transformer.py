"""Lowering rules of the transformer building blocks (docs/numerics.md §11–14):

    ReduceSum, ReduceMean,
    ReduceMax                 → QReduce (sum or max on the integers, one requantization)
    MatMul of two activations,
    or with a constant of
    rank > 2                  → QMatMul (a constant operand: int8 symmetric per tensor);
                                an 8-bit Transpose of b's last two axes that only this
                                product reads (attention's kᵀ) is folded in: b_transposed
    MatMul with constant 2-D
    weights                   → QGemm (linear.py); an activation of rank != 2 is folded
                                into rows by a Reshape before and after
    LayerNormalization        → QLayerNorm with per-element integer γ, β
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ..ir import Graph, QuantParams
from ..ops import get_op
from ..ops.layernorm import FRACTION_BITS, MAX_EPS, QLayerNormAttrs
from ..ops.qmatmul import MAX_K, QMatMulAttrs, swap_last_two
from ..ops.reduce import QReduceAttrs, reduced_count
from ..ops.shape import ReshapeAttrs
from . import linear, rules
from .emit import add_node, constant, new_tensor
from .groups import Group, Operand, rule
from .params import Affine
from .weights import WEIGHT_LIMIT, dequantized_constant



# -- reductions ------------------------------------------------------------------------
@rule("ReduceSum", "ReduceMean", "ReduceMax")
def lower_reduce(graph: Graph, group: Group) -> None:
    """M = s_x / s_y (sum, max) or s_x / (s_y · count) (mean)."""
    x, out, attrs = group.operand(0), group.out, group.node.attrs
    count = reduced_count(graph.tensor(x.tensor).shape, attrs.axes)
    real = x.affine.scale / out.scale / (count if group.node.op == "ReduceMean" else 1)
    m, n = rules.multiplier(group, real)
    lo, hi = group.bounds()
    qattrs = QReduceAttrs(attrs.axes, attrs.keepdims, x.affine.zero_point, out.zero_point, m, n, lo, hi, out.dtype,
                          is_max=group.node.op == "ReduceMax")
    add_node(graph, group.name, "QReduce", [x.tensor], [group.output], qattrs)


# -- matrix products -------------------------------------------------------------------
@rule("MatMul")
def lower_matmul(graph: Graph, group: Group) -> None:
    a_shape = graph.tensor(group.node.inputs[0]).shape
    w = group.node.inputs[1]
    if _is_constant(graph, group, 1) and len(graph.tensor(w).shape) == 2 and not _is_constant(graph, group, 0):
        if len(a_shape) == 2:
            linear.lower_matmul(graph, group)
        else:
            _gemm_on_rows(graph, group)
        return
    b_shape = graph.tensor(w).shape
    if len(a_shape) < 2 or len(b_shape) < 2:
        raise rules.unsupported(group, "a 1-D operand has an integer lowering only against constant 2-D weights")
    if a_shape[-1] > MAX_K:
        raise rules.unsupported(group, f"inner dimension {a_shape[-1]} > {MAX_K} may overflow the int32 accumulator")
    a, b = _matmul_operand(graph, group, 0), _matmul_operand(graph, group, 1)
    m, n = rules.multiplier(group, a.affine.scale * b.affine.scale / group.out.scale)
    lo, hi = group.bounds()
    b_stored = _untransposed(graph, b.tensor)
    attrs = QMatMulAttrs(a.affine.zero_point, b.affine.zero_point, group.out.zero_point, m, n, lo, hi,
                         group.out.dtype, b_transposed=b_stored is not None)
    add_node(graph, group.name, "QMatMul", [a.tensor, b_stored or b.tensor], [group.output], attrs)


def _untransposed(graph: Graph, b: str) -> str | None:
    """The input of the 8-bit Transpose that makes `b` by swapping its last two
    axes, when nothing else reads `b` (its only readers are DequantizeLinears
    left dead by the detached group); else None. The Transpose, then dead, goes
    with the graph's dead nodes."""
    producer = graph.producer(b)
    if producer is None or producer.op != "Transpose" or b in graph.outputs:
        return None
    rank = len(producer.attrs.perm)
    if rank < 2 or tuple(producer.attrs.perm) != swap_last_two(rank):
        return None
    for reader in graph.consumers(b):
        if reader.op != "DequantizeLinear" or graph.consumers(reader.outputs[0]) or reader.outputs[0] in graph.outputs:
            return None
    return producer.inputs[0]


def _is_constant(graph: Graph, group: Group, index: int) -> bool:
    """Input `index` is a constant (float, or integer behind a DequantizeLinear)."""
    operand = group.operands[index]
    return operand is None or graph.tensor(operand.tensor).is_constant


def _gemm_on_rows(graph: Graph, group: Group) -> None:
    """x [..., K] (rank != 2) @ W [K, N]: Reshape x to [rows, K], QGemm, Reshape back."""
    x = group.operand(0)
    shape = graph.tensor(x.tensor).shape
    out_shape = graph.tensor(group.output).shape
    k, n = graph.tensor(group.node.inputs[1]).shape
    rows = math.prod(shape[:-1])
    flat = new_tensor(graph, x.tensor, x.affine, (rows, k))
    add_node(graph, f"{group.name}.rows", "Reshape", [x.tensor], [flat], ReshapeAttrs((rows, k)))
    mid = new_tensor(graph, group.output, group.out, (rows, n))
    linear.lower_matmul(graph, dataclasses.replace(group, operands=[Operand(flat, x.affine), None], output=mid))
    add_node(graph, f"{group.name}.unrows", "Reshape", [mid], [group.output], ReshapeAttrs(tuple(out_shape)))


def _matmul_operand(graph: Graph, group: Group, index: int) -> Operand:
    """Input `index` as an 8-bit operand: the dequantized activation, or a constant
    int8 symmetric per tensor behind DequantizeLinear (docs/numerics.md §12; the
    annotation quantizes a float one: layer_weights.quantize_matmul_operands)."""
    if group.operands[index] is not None:
        return group.operands[index]
    name = group.node.inputs[index]
    q = dequantized_constant(graph, name, f"input #{index}", group.name)
    if q.scale.size != 1 or q.data.dtype != np.int8 or np.abs(q.data.astype(np.int64)).max() > WEIGHT_LIMIT:
        raise rules.unsupported(group, f"constant input #{index} must be int8 in [-127, 127] with one scale")
    scale = float(q.scale[0])
    tensor = constant(graph, f"{group.name}.b{index}", q.data, QuantParams((scale,), (0,)))
    return Operand(tensor, Affine(scale, 0))


# -- layer normalization ---------------------------------------------------------------
@rule("LayerNormalization")
def lower_layer_norm(graph: Graph, group: Group) -> None:
    x, out, attrs = group.operand(0), group.out, group.node.attrs
    shape = graph.tensor(x.tensor).shape
    normalized = shape[attrs.axis:]
    count = math.prod(normalized)
    gamma = _affine_constant(graph, group, 1, normalized, 1.0)
    beta = _affine_constant(graph, group, 2, normalized, 0.0)
    eps = round(attrs.epsilon * count ** 3 / x.affine.scale ** 2)
    if not 0 <= eps < MAX_EPS:
        raise rules.unsupported(group, f"epsilon {attrs.epsilon} is too large for the input scale {x.affine.scale}")
    g_real, b_real = gamma * math.sqrt(count) / out.scale, beta / out.scale
    shift = _layer_norm_shift(group, g_real, b_real)
    g = np.rint(g_real * 2.0 ** (shift - FRACTION_BITS)).astype(np.int32)
    b = np.rint(b_real * 2.0 ** shift).astype(np.int64)
    if (g == g[0]).all() and (b == b[0]).all():  # one value each (InstanceNorm's, no affine): stored once
        g, b = g[:1], b[:1]
    lo, hi = group.bounds()
    g_name = constant(graph, f"{group.name}.gamma", g)
    b_name = constant(graph, f"{group.name}.beta", b)
    qattrs = QLayerNormAttrs(attrs.axis, int(eps), shift, out.zero_point, lo, hi, out.dtype)
    add_node(graph, group.name, "QLayerNorm", [x.tensor, g_name, b_name], [group.output], qattrs)


def _affine_constant(graph: Graph, group: Group, index: int, normalized: tuple[int, ...],
                     default: float) -> np.ndarray:
    """γ or β (float64) broadcast to the normalized shape and flattened: a float
    constant, or the real values a QDQ model computes from constants alone
    (DequantizeLinear of integers as onnxruntime's quantize_static writes it,
    also behind a tied weight's Identity and QuantizeLinear)."""
    name = group.node.inputs[index] if index < len(group.node.inputs) else ""
    if not name:
        return np.full(math.prod(normalized), default)
    data = _computed_from_constants(graph, name)
    if data is None:
        raise rules.unsupported(group, f"input #{index} (scale or bias) must be a constant")
    return np.broadcast_to(np.asarray(data, np.float64), normalized).reshape(-1)


def _computed_from_constants(graph: Graph, name: str, depth: int = 8) -> np.ndarray | None:
    """The value of tensor `name` when it is a constant or computed by at most
    `depth` nodes from constants only (each node's reference semantics); else None."""
    data = graph.constant(name)
    node = graph.producer(name)
    if data is not None or node is None or depth == 0:
        return data
    args = [_computed_from_constants(graph, t, depth - 1) if t else None for t in node.inputs]
    if any(a is None for a, t in zip(args, node.inputs) if t):
        return None
    return get_op(node.op).evaluate(node.attrs, args)[node.outputs.index(name)]


def _layer_norm_shift(group: Group, g_real: np.ndarray, b_real: np.ndarray) -> int:
    """The largest T <= 62 with every |g_i| <= 2^30 and |b_i| < 2^61 (docs/numerics.md §14)."""
    g_peak, b_peak = float(np.abs(g_real).max()), float(np.abs(b_real).max())
    for shift in range(62, 0, -1):
        if round(g_peak * 2.0 ** (shift - FRACTION_BITS)) <= 1 << 30 and round(b_peak * 2.0 ** shift) < 1 << 61:
            return shift
    raise rules.unsupported(group, "scale or bias is too large for the output scale")
