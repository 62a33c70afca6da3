"""Integer-form writers of the element-wise integer ops: Requantize, QAdd,
QMul, QAffine, QLut, QSoftmax, QLogSoftmax (docs/numerics.md §3, §4, §6, §6a,
§7, §18).

Each is nnc's formula term by term in int64 (integer_arith.py): products of
centred 8-bit values with int32 multipliers stay below 2^48, sums below 2^49.
QLut is a Gather on its table; QSoftmax gathers its int32 exp table, sums in
int64 and divides e_i · m (< 2^55, non-negative) by the positive sum S: on
non-negative operands integer Div's truncation is the floor nnc takes.
QLogSoftmax shares d_i and S (1 ≤ S < 2^47); the bit length of S is the count
of powers 2^0..2^47 at most S (LessOrEqual, ReduceSum), so k = that − 1;
t = S · 2^(24 − k) or S Div 2^(k − 24) (Where), whose segment j = t Div 2^16 − 256
and step r gather and interpolate log_table (non-negative operands: Div is the
floor), and N_i · m < 2^62.01 is rounded by round_shift and subtracted from z_y.
"""

from __future__ import annotations

import numpy as np

from nnc.ir import Node
from nnc.ops.qsoftmax import EXP_BITS, INDEX_BITS, LN2, STEP_BITS

from .integer_arith import binary, centred, finish, int64_constant, requantize, round_shift, where, widen
from .integer_layernorm import POWERS, compare, power_of_two
from .integer_writer import integer_writes
from .writer import OnnxBuilder


def scaled(out: OnnxBuilder, x: str, zero_point: int, multiplier, base: str) -> str:
    """(x − zero_point) · multiplier in int64."""
    return binary(out, "Mul", centred(out, x, zero_point, base), int64_constant(out, f"{base}.multiplier", multiplier),
                  base)


@integer_writes("Requantize")
def _requantize(out: OnnxBuilder, node: Node) -> None:
    a = node.attrs
    requantize(out, centred(out, node.inputs[0], a.x_zero_point, node.name), a.multiplier, a.shift, a,
               node.outputs[0], node.name)


@integer_writes("QAdd")
def _qadd(out: OnnxBuilder, node: Node) -> None:
    a, base = node.attrs, node.name
    total = binary(out, "Add", scaled(out, node.inputs[0], a.a_zero_point, a.a_multiplier, f"{base}.a"),
                   scaled(out, node.inputs[1], a.b_zero_point, a.b_multiplier, f"{base}.b"), base)
    finish(out, round_shift(out, total, a.shift, base), a.y_zero_point, a.out_min, a.out_max, a.out_dtype,
           node.outputs[0], base)


@integer_writes("QMul")
def _qmul(out: OnnxBuilder, node: Node) -> None:
    a, base = node.attrs, node.name
    product = binary(out, "Mul", centred(out, node.inputs[0], a.a_zero_point, f"{base}.a"),
                     centred(out, node.inputs[1], a.b_zero_point, f"{base}.b"), base)
    requantize(out, product, a.multiplier, a.shift, a, node.outputs[0], base)


@integer_writes("QAffine")
def _qaffine(out: OnnxBuilder, node: Node) -> None:
    """d · (d < 0 ? m⁻ : m) + o, with Where choosing the slope."""
    a, base = node.attrs, node.name
    d = centred(out, node.inputs[0], a.x_zero_point, base)
    slope = int64_constant(out, f"{base}.multiplier", out.graph.constant(node.inputs[1]))
    negative_input = node.inputs[3] if len(node.inputs) > 3 else ""
    if negative_input:
        below = out.fresh(f"{base}.negative")
        out.add("Less", [d, int64_constant(out, f"{base}.zero", 0)], [below], f"{base}.less")
        negative = int64_constant(out, f"{base}.negative_multiplier", out.graph.constant(negative_input))
        slope = where(out, below, negative, slope, f"{base}.slope")
    offset = int64_constant(out, f"{base}.offset", out.graph.constant(node.inputs[2]))
    total = binary(out, "Add", binary(out, "Mul", d, slope, base), offset, base)
    finish(out, round_shift(out, total, a.shift, base), a.y_zero_point, a.out_min, a.out_max, a.out_dtype,
           node.outputs[0], base)


@integer_writes("QLut")
def _qlut(out: OnnxBuilder, node: Node) -> None:
    """table[x − min(type of x)]: x + 128 for int8, x for uint8."""
    x, table = node.inputs
    offset = 128 if out.graph.tensor(x).dtype == "i8" else 0
    index = binary(out, "Add", widen(out, x, node.name), int64_constant(out, f"{node.name}.offset", offset),
                   node.name)
    out.add("Gather", [table, index], node.outputs, node.name, axis=0)


def last_sum(out: OnnxBuilder, x: str, base: str) -> str:
    """Σ x over the last axis, kept (int64)."""
    total = out.fresh(f"{base}.sum")
    out.add("ReduceSum", [x, out.ints(f"{base}.axes", [-1])], [total], f"{base}.reduce_sum", keepdims=1)
    return total


def exp_terms(out: OnnxBuilder, node: Node, keep: str | None, base: str) -> tuple[str, str, str]:
    """(d, e, S) of §6 in int64 for QSoftmax / QLogSoftmax `node`: d = max − x
    over the last axis, e = exp_table[d], S = Σ e (kept axis). With `keep` (a
    bool initializer) the max runs over the kept positions, a hidden one has
    e = 0, and d is meaningful at the kept positions only."""
    x = widen(out, node.inputs[0], base)
    if keep is not None:
        lowest = int64_constant(out, f"{base}.lowest", np.iinfo(np.int64).min)
        zero = int64_constant(out, f"{base}.zero", 0)
    largest = out.fresh(f"{base}.max")
    kept = x if keep is None else where(out, keep, x, lowest, f"{base}.kept")
    out.add("ReduceMax", [kept], [largest], f"{base}.reduce_max", axes=[-1], keepdims=1)
    table = int64_constant(out, f"{base}.exp_table", out.graph.constant(node.inputs[1]).astype(np.int64))
    distance = binary(out, "Sub", largest, x, base)
    if keep is None:
        e = out.fresh(f"{base}.e")
        out.add("Gather", [table, distance], [e], f"{base}.exp", axis=0)
    else:
        looked_up = out.fresh(f"{base}.e_all")
        out.add("Gather", [table, where(out, keep, distance, zero, f"{base}.distance")], [looked_up], f"{base}.exp",
                axis=0)
        e = where(out, keep, looked_up, zero, f"{base}.e")
    return distance, e, last_sum(out, e, base)


@integer_writes("QSoftmax")
def _qsoftmax(out: OnnxBuilder, node: Node) -> None:
    a, base = node.attrs, node.name
    keep = None
    if len(node.inputs) > 2 and node.inputs[2]:  # hidden positions: out of the max, e = 0
        keep = out.constant(f"{base}.keep", out.graph.constant(node.inputs[2]) != 0)
    _, e, total = exp_terms(out, node, keep, base)
    scaled_e = binary(out, "Mul", e, int64_constant(out, f"{base}.multiplier", a.multiplier), base)
    quotient = binary(out, "Div", scaled_e, total, base)
    finish(out, round_shift(out, quotient, a.shift, base), a.y_zero_point, a.out_min, a.out_max, a.out_dtype,
           node.outputs[0], base)


@integer_writes("QLogSoftmax")
def _qlogsoftmax(out: OnnxBuilder, node: Node) -> None:
    """y = clamp(z_y − round_shift(N · m, n)), N = d · SX + L (§6a)."""
    a, base = node.attrs, node.name
    distance, _, total = exp_terms(out, node, None, base)
    powers = int64_constant(out, f"{base}.powers", POWERS[:48])  # S < 2^47
    bits = last_sum(out, compare(out, "LessOrEqual", powers, total, base), f"{base}.bits")
    k = binary(out, "Sub", bits, int64_constant(out, f"{base}.one", 1), base)
    top = int64_constant(out, f"{base}.top", INDEX_BITS + STEP_BITS)
    up = binary(out, "Mul", total, power_of_two(out, powers, binary(out, "Sub", top, k, base), f"{base}.up"), base)
    down = binary(out, "Div", total, power_of_two(out, powers, binary(out, "Sub", k, top, base), f"{base}.down"), base)
    t = where(out, binary(out, "LessOrEqual", k, top, base), up, down, f"{base}.t")
    step = int64_constant(out, f"{base}.step", 1 << STEP_BITS)
    segment = binary(out, "Div", t, step, base)
    j = binary(out, "Sub", segment, int64_constant(out, f"{base}.segments", 1 << INDEX_BITS), base)
    r = binary(out, "Sub", t, binary(out, "Mul", segment, step, base), base)
    table = int64_constant(out, f"{base}.log_table", out.graph.constant(node.inputs[2]).astype(np.int64))
    low, high = out.fresh(f"{base}.log_low"), out.fresh(f"{base}.log_high")
    out.add("Gather", [table, j], [low], f"{base}.log_low", axis=0)
    out.add("Gather", [table, binary(out, "Add", j, int64_constant(out, f"{base}.next", 1), base)], [high],
            f"{base}.log_high", axis=0)
    rise = binary(out, "Div", binary(out, "Mul", binary(out, "Sub", high, low, base), r, base), step, base)
    octaves = binary(out, "Sub", k, int64_constant(out, f"{base}.exp_bits", EXP_BITS), base)
    log_total = binary(out, "Add", binary(out, "Add", binary(out, "Mul", octaves, int64_constant(
        out, f"{base}.ln2", LN2), base), low, base), rise, base)
    nats = binary(out, "Add", binary(out, "Mul", distance, int64_constant(out, f"{base}.x_scale", a.x_scale), base),
                  log_total, base)
    scaled = binary(out, "Mul", nats, int64_constant(out, f"{base}.multiplier", a.multiplier), base)
    negated = binary(out, "Sub", int64_constant(out, f"{base}.y_zero_point", a.y_zero_point),
                     round_shift(out, scaled, a.shift, base), base)
    finish(out, negated, 0, a.out_min, a.out_max, a.out_dtype, node.outputs[0], base)
