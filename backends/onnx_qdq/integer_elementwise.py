"""Integer-form writers of the element-wise integer ops: Requantize, QAdd,
QMul, QAffine, QLut, QSoftmax (docs/numerics.md §3, §4, §6, §7, §18).

Each is nnc's formula term by term in int64 (integer_arith.py): products of
centred 8-bit values with int32 multipliers stay below 2^48, sums below 2^49.
QLut is a Gather on its table; QSoftmax gathers its int32 exp table, sums in
int64 and divides e_i · m (< 2^55, non-negative) by the positive sum S: on
non-negative operands integer Div's truncation is the floor nnc takes.
"""

from __future__ import annotations

import numpy as np

from nnc.ir import Node

from .integer_arith import binary, centred, finish, int64_constant, requantize, round_shift, where, widen
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


@integer_writes("QSoftmax")
def _qsoftmax(out: OnnxBuilder, node: Node) -> None:
    a, base = node.attrs, node.name
    x = widen(out, node.inputs[0], base)
    keep = None
    if len(node.inputs) > 2 and node.inputs[2]:  # hidden positions: out of the max, e = 0
        keep = out.constant(f"{base}.keep", out.graph.constant(node.inputs[2]) != 0)
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
    total = out.fresh(f"{base}.sum")
    out.add("ReduceSum", [e, out.ints(f"{base}.axes", [-1])], [total], f"{base}.reduce_sum", keepdims=1)
    scaled_e = binary(out, "Mul", e, int64_constant(out, f"{base}.multiplier", a.multiplier), base)
    quotient = binary(out, "Div", scaled_e, total, base)
    finish(out, round_shift(out, quotient, a.shift, base), a.y_zero_point, a.out_min, a.out_max, a.out_dtype,
           node.outputs[0], base)

