"""Lowering rules of the ops without weights: each turns one quantization group
(groups.py) into integer ops that compute docs/numerics.md exactly.

    Add                       → QAdd (two operands, one shared shift; §4): the rule, with
                                the multipliers of add_multipliers, is rules_elementwise.lower_add
    AveragePool, GlobalAvg.   → QAveragePool (uniform window counts only; §5)
    Softmax, LogSoftmax       → QSoftmax with its exp table (§6), QLogSoftmax with its
                                exp and log tables (§6a), on the last axis; on another axis
                                an 8-bit Transpose moves it last and back
    Sigmoid, Tanh, HardSwish,
    HardSigmoid, LeakyRelu, ThresholdedRelu,
    Elu, Selu                 → QLut, a 256-entry table (§7)
    Relu, Clip (standalone)   → Clip on the integers, or Requantize (§3)
    Reshape, Transpose, Pad,
    MaxPool, GlobalMaxPool,
    Identity, Dropout         → the same op on the integers (§8), then Clip or
                                Requantize when the output parameters differ
    Concat                    → Requantize of each operand whose parameters differ
                                from the output's, then Concat (§8)
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ..errors import UnsupportedError
from ..ir import Graph, TensorType
from ..numerics import quantize_multiplier
from ..ops import get_op
from ..ops.conv import split_shape
from ..ops.pool import AveragePool
from ..ops.qpool import QAveragePoolAttrs
from ..ops.qsoftmax import EXP_BITS, QSoftmaxAttrs, log_softmax_attrs, log_table
from ..ops.shape import TransposeAttrs
from .emit import add_node, constant, new_tensor, requantized_operand, rescale, staging
from .groups import Group, clamp_of, rule

QADD_MAX_SHIFT = 62 - 9
LUT_OPS = ("Sigmoid", "Tanh", "HardSwish", "HardSigmoid", "LeakyRelu", "ThresholdedRelu", "Elu", "Selu")


def unsupported(group: Group, why: str) -> UnsupportedError:
    return UnsupportedError(f"{group.node.op} node {group.name!r}: {why}")


# -- element-wise ------------------------------------------------------------------
def add_multipliers(ra: float, rb: float) -> tuple[int, int, int]:
    """(m_a, m_b, n) with m ≈ r · 2^n and n the largest shift <= 53 keeping both
    mantissas below 2^31 (docs/numerics.md §4)."""
    for shift in range(QADD_MAX_SHIFT, 0, -1):
        ma, mb = round(ra * 2.0 ** shift), round(rb * 2.0 ** shift)
        if max(ma, mb) < 1 << 31:
            return ma, mb, shift
    raise UnsupportedError(f"input/output scale ratios {ra:g}, {rb:g} are too large for QAdd")


@rule(*LUT_OPS)
def lower_lut(graph: Graph, group: Group) -> None:
    """T[q − qmin] = clamp(round_half_even(f(s_x·(q − z_x)) / s_y) + z_y), in float64."""
    x, out = group.operand(0), group.out
    qmin, qmax = x.affine.qrange
    real = x.affine.scale * (np.arange(qmin, qmax + 1, dtype=np.float64) - x.affine.zero_point)
    (f,) = get_op(group.node.op).evaluate(group.node.attrs, [real])
    lo, hi = group.bounds()
    table = np.clip(np.rint(np.asarray(f, np.float64) / out.scale) + out.zero_point, lo, hi)
    table_name = constant(graph, f"{group.name}.table", table.astype(np.int8 if out.dtype == "i8" else np.uint8))
    add_node(graph, group.name, "QLut", [x.tensor, table_name], [group.output], get_op("QLut").Attrs())


@rule("Relu", "Clip")
def lower_clamp(graph: Graph, group: Group) -> None:
    x = group.operand(0)
    lo, hi = group.bounds(clamp_of(group.node))
    rescale(graph, group.name, x.tensor, x.affine, group.output, group.out, lo, hi)


# -- pooling -----------------------------------------------------------------------
def _average(graph: Graph, group: Group, kernel, strides, pads, channels_last: bool) -> None:
    """QAveragePool with M = s_x / (s_y · count), count = prod(kernel)."""
    x, out = group.operand(0), group.out
    count = math.prod(kernel)
    m, n = quantize_multiplier(x.affine.scale / (out.scale * count))
    lo, hi = group.bounds()
    attrs = QAveragePoolAttrs(tuple(kernel), tuple(strides), tuple(pads), channels_last, x.affine.zero_point,
                              out.zero_point, m, n, lo, hi, out.dtype)
    add_node(graph, group.name, "QAveragePool", [x.tensor], [group.output], attrs)


@rule("AveragePool")
def lower_average_pool(graph: Graph, group: Group) -> None:
    attrs = group.node.attrs
    if any(d != 1 for d in attrs.dilations):
        raise unsupported(group, "dilated average pooling has no integer lowering")
    if any(attrs.pads) and not attrs.count_include_pad:
        raise unsupported(group, "its windows count different numbers of positions (padding is not counted); "
                                 "integer average pooling needs every window to count prod(kernel_shape)")
    x_type = TensorType("f32", graph.tensor(group.operand(0).tensor).shape)
    (floor,) = AveragePool.infer(dataclasses.replace(attrs, ceil_mode=False), [x_type])
    if floor.shape != graph.tensor(group.output).shape:
        raise unsupported(group, "ceil_mode windows reach past the input and count fewer positions; "
                                 "integer average pooling needs uniform windows")
    _average(graph, group, attrs.kernel_shape, attrs.strides, attrs.pads, attrs.channels_last)


@rule("GlobalAveragePool")
def lower_global_average_pool(graph: Graph, group: Group) -> None:
    shape = graph.tensor(group.operand(0).tensor).shape
    _, _, spatial = split_shape(shape, group.node.attrs.channels_last)
    _average(graph, group, spatial, spatial, (0,) * (2 * len(spatial)), group.node.attrs.channels_last)


# -- softmax -----------------------------------------------------------------------
def exp_table(scale: float) -> np.ndarray:
    """E[d] = round(2^EXP_BITS · exp(−s_x · d)), d = 0..255 (docs/numerics.md §6)."""
    d = np.arange(256, dtype=np.float64)
    return np.rint(np.exp(-scale * d) * float(1 << EXP_BITS)).astype(np.int32)


@rule("Softmax", "LogSoftmax")
def lower_softmax_group(graph: Graph, group: Group) -> None:
    """The Softmax or LogSoftmax rule, on any axis: another axis than the last
    is moved last and back by 8-bit Transposes."""
    x = group.operand(0)
    shape = graph.tensor(x.tensor).shape
    axis, rank = group.node.attrs.axis, len(shape)
    if axis == rank - 1:
        lower_softmax(graph, group, x.tensor, group.output, None)
        return
    if group.node.attrs.coerce_2d:
        raise unsupported(group, "softmax over several axes (opset < 13) has no integer lowering")
    perm = tuple(i for i in range(rank) if i != axis) + (axis,)
    inverse = tuple(int(i) for i in np.argsort(perm))
    moved = new_tensor(graph, x.tensor, x.affine, tuple(shape[p] for p in perm))
    add_node(graph, f"{group.name}.to_last", "Transpose", [x.tensor], [moved], TransposeAttrs(perm))
    soft = new_tensor(graph, group.output, group.out, tuple(shape[p] for p in perm))
    lower_softmax(graph, group, moved, soft, perm)
    add_node(graph, f"{group.name}.from_last", "Transpose", [soft], [group.output], TransposeAttrs(inverse))


def lower_softmax(graph: Graph, group: Group, x: str, y: str, perm: tuple[int, ...] | None) -> None:
    """QSoftmax (§6) or QLogSoftmax (§6a) of Softmax/LogSoftmax `group` from `x`
    to `y`, over their last axis: the node's axes in the order `perm` (None: as
    they are). The exp table steps by x's scale times the op's `scale`
    (a folded attention 1/√d)."""
    # the float scale itself, not its float32 rounding that the float reference
    # multiplies by: the table is QSoftmax's definition, and every target reads it
    sx, out = group.operand(0).affine.scale * group.node.attrs.scale, group.out
    lo, hi = group.bounds()
    table = constant(graph, f"{group.name}.exp_table", exp_table(sx))
    if group.node.op == "LogSoftmax":
        try:
            attrs = log_softmax_attrs(sx, out.scale, out.zero_point, lo, hi, out.dtype)
        except UnsupportedError as exc:
            raise unsupported(group, str(exc)) from None
        logs = constant(graph, f"{group.name}.log_table", log_table())
        add_node(graph, group.name, "QLogSoftmax", [x, table, logs], [y], attrs)
        return
    m, n = multiplier(group, 1.0 / out.scale)
    attrs = QSoftmaxAttrs(out.zero_point, m, n, lo, hi, out.dtype)
    add_node(graph, group.name, "QSoftmax", [x, table, *keep_bytes(graph, group, perm)], [y], attrs)


def multiplier(group: Group, real: float) -> tuple[int, int]:
    """quantize_multiplier(real), its refusal naming the node."""
    try:
        return quantize_multiplier(real)
    except UnsupportedError as exc:
        raise unsupported(group, str(exc)) from None


def keep_bytes(graph: Graph, group: Group, perm: tuple[int, ...] | None) -> list[str]:
    """[QSoftmax's u8 keep mask] from Softmax's bool one, axes in the order
    `perm` (None: as they are); [] without a mask. The mask must be a constant
    keeping a position in every row (as fuse_softmax_mask makes it; a text-IR
    graph may hold anything)."""
    if len(group.node.inputs) < 2 or not group.node.inputs[1]:
        return []
    keep = graph.constant(group.node.inputs[1])
    if keep is None:
        raise unsupported(group, "its keep mask must be a constant")
    shape = graph.tensor(group.node.inputs[0]).shape
    if not np.broadcast_to(keep, shape).any(axis=group.node.attrs.axis).all():
        raise unsupported(group, "its keep mask hides every position of a row (the float softmax is NaN there)")
    keep = keep.astype(np.uint8)
    return [constant(graph, f"{group.name}.keep", keep if perm is None else np.transpose(keep, perm))]


# -- data movement -----------------------------------------------------------------
@rule("Reshape", "Transpose", "MaxPool", "GlobalMaxPool", "Identity", "Dropout")
def lower_move(graph: Graph, group: Group) -> None:
    x = group.operand(0)
    target = staging(graph, group, x.affine)
    add_node(graph, group.name, group.node.op, [x.tensor], [target], group.node.attrs)


@rule("Pad")
def lower_pad(graph: Graph, group: Group) -> None:
    """Constant padding fills with the pad value quantized in the output's
    parameters (the zero point for 0); an input whose parameters differ is
    requantized to the output's first, so a fill outside the input's range (its
    parameters could not hold it) keeps its value."""
    x, attrs, affine = group.operand(0), group.node.attrs, group.operand(0).affine
    source = x.tensor
    if attrs.mode == "constant":
        if affine != group.out:
            source, affine = requantized_operand(graph, group, x.tensor, affine, group.out), group.out
        attrs = dataclasses.replace(attrs, value=float(affine.quantize(attrs.value)))
    target = staging(graph, group, affine)
    add_node(graph, group.name, "Pad", [source], [target], attrs)


@rule("Concat")
def lower_concat(graph: Graph, group: Group) -> None:
    """Every input at the output's parameters: an 8-bit operand requantized
    when its own differ, a float constant (a ViT's class token) quantized to
    them (calibration saw its values in the output)."""
    same = []
    for i, name in enumerate(group.node.inputs):
        data = graph.constant(name) if group.operands[i] is None else None
        if data is not None and data.dtype.kind == "f":
            q = np.vectorize(group.out.quantize, otypes=[np.int64])(np.asarray(data, np.float32))
            narrow = q.astype(np.int8 if group.out.dtype == "i8" else np.uint8)
            same.append(constant(graph, f"{group.name}.{name}", narrow))
            continue
        x = group.operand(i)
        same.append(requantized_operand(graph, group, x.tensor, x.affine, group.out))
    target = staging(graph, group, group.out)
    add_node(graph, group.name, "Concat", same, [target], group.node.attrs)
