"""Integer-form writer of QLayerNorm (docs/numerics.md §14) in int64 ONNX ops.

Per row of N values, as nnc computes it:

    S = Σ x,  c_i = N · x_i − S,  U = Σ c_i² + e                       (int64, U < 2^62)
    b = bit length of U = #{j ∈ 0..62 : U ≥ 2^j}                    (GreaterOrEqual, ReduceSum)
    k = ceil((b − 32) / 2) = round_shift(b − 32, 1)
    u = floor(U · 2^max(−2k, 0) / 2^max(2k, 0)),  u ≥ 1              (one factor is 1; u < 2^32)
    r = isqrt(floor(2^62 / u))
    H_i = floor((c_i · r · 2^max(−s, 0) + ⌊2^max(s, 0) / 2⌋) / 2^max(s, 0)),  s = 31 + k − F
    y_i = clamp(z_y + round_shift(g_i · H_i + b_i, T), lo, hi)

Powers of two are gathered from a table of 2^0..2^62; floors of quotients of
non-negative values are integer Div, the others integer_arith.floor_divide.
isqrt: a = floor(2^62 / u) ≤ 2^32 is exact in float64 and Sqrt is correctly
rounded, so floor(Sqrt(a)) is within one of isqrt(a); one correction each way,
r0 − [r0² > a] + [(r0 + 1)² ≤ a], makes it exact. U = 0 (a constant row, ε
below one step) has every c_i = 0, so H_i = 0 as nnc defines it; u is kept ≥ 1
so that nothing divides by zero.
"""

from __future__ import annotations

import math

import numpy as np
from onnx import TensorProto

from nnc.ir import Node
from nnc.ops.layernorm import FRACTION_BITS

from .integer_arith import INT64, binary, finish, floor_divide, int64_constant, round_shift, widen
from .integer_writer import integer_writes
from .writer import OnnxBuilder

DOUBLE = TensorProto.DOUBLE
POWERS = np.left_shift(np.int64(1), np.arange(63, dtype=np.int64))


def unary(out: OnnxBuilder, op: str, x: str, base: str, **attributes) -> str:
    result = out.fresh(f"{base}.{op.lower()}")
    out.add(op, [x], [result], f"{base}.{op.lower()}", **attributes)
    return result


def compare(out: OnnxBuilder, op: str, a: str, b: str, base: str) -> str:
    """The int64 0/1 tensor op(a, b) (GreaterOrEqual, Greater, LessOrEqual)."""
    return unary(out, "Cast", binary(out, op, a, b, base), base, to=INT64)


def power_of_two(out: OnnxBuilder, powers: str, exponent: str, base: str) -> str:
    """2^max(exponent, 0) by a Gather on the table of powers."""
    clamped = binary(out, "Max", exponent, int64_constant(out, f"{base}.zero", 0), base)
    result = out.fresh(f"{base}.pow2")
    out.add("Gather", [powers, clamped], [result], f"{base}.gather", axis=0)
    return result


def row_sum(out: OnnxBuilder, x: str, base: str) -> str:
    result = out.fresh(f"{base}.rowsum")
    out.add("ReduceSum", [x, out.ints(f"{base}.axes", [1])], [result], f"{base}.reduce_sum", keepdims=1)
    return result


def isqrt(out: OnnxBuilder, a: str, base: str) -> str:
    """The largest r with r² ≤ a, for 0 ≤ a ≤ 2^32 (module docstring)."""
    root = unary(out, "Cast", unary(out, "Floor", unary(out, "Sqrt", unary(out, "Cast", a, base, to=DOUBLE), base),
                                    base), base, to=INT64)
    one = int64_constant(out, f"{base}.one", 1)
    too_big = compare(out, "Greater", binary(out, "Mul", root, root, base), a, base)
    above = binary(out, "Add", root, one, base)
    too_small = compare(out, "LessOrEqual", binary(out, "Mul", above, above, base), a, base)
    return binary(out, "Add", binary(out, "Sub", root, too_big, base), too_small, base)


def normalized(out: OnnxBuilder, rows: str, count: int, eps: int, base: str) -> str:
    """H [R, N] of int64 rows [R, N]: c_i / √U with F fraction bits (module docstring)."""
    powers = int64_constant(out, f"{base}.powers", POWERS)
    c = binary(out, "Sub", binary(out, "Mul", rows, int64_constant(out, f"{base}.count", count), base),
               row_sum(out, rows, base), base)
    total = binary(out, "Add", row_sum(out, binary(out, "Mul", c, c, base), base),
                   int64_constant(out, f"{base}.eps", eps), base)
    bits = row_sum(out, compare(out, "GreaterOrEqual", total, powers, base), base)
    k = round_shift(out, binary(out, "Sub", bits, int64_constant(out, f"{base}.32", 32), base), np.int64(1), base)
    two_k = binary(out, "Mul", k, int64_constant(out, f"{base}.two", 2), base)
    minus_two_k = unary(out, "Neg", two_k, base)
    scaled = binary(out, "Div", binary(out, "Mul", total, power_of_two(out, powers, minus_two_k, base), base),
                    power_of_two(out, powers, two_k, base), base)
    u = binary(out, "Max", scaled, int64_constant(out, f"{base}.one_u", 1), base)
    r = isqrt(out, binary(out, "Div", int64_constant(out, f"{base}.2^62", 1 << 62), u, base), base)
    s = binary(out, "Add", k, int64_constant(out, f"{base}.s", 31 - FRACTION_BITS), base)
    divisor = power_of_two(out, powers, s, base)
    half = binary(out, "Div", divisor, int64_constant(out, f"{base}.two_h", 2), base)
    lifted = binary(out, "Mul", binary(out, "Mul", c, r, base), power_of_two(out, powers, unary(out, "Neg", s, base),
                                                                            base), base)
    return floor_divide(out, binary(out, "Add", lifted, half, base), divisor, base)


@integer_writes("QLayerNorm")
def _qlayernorm(out: OnnxBuilder, node: Node) -> None:
    a, base = node.attrs, node.name
    x, g, b = node.inputs
    shape = out.graph.tensor(x).shape
    count = math.prod(shape[a.axis:])
    rows = out.fresh(f"{base}.rows")
    out.add("Reshape", [widen(out, x, base), out.ints(f"{base}.row_shape", [-1, count])], [rows], f"{base}.reshape")
    h = normalized(out, rows, count, a.eps_int, base)
    acc = binary(out, "Add", binary(out, "Mul", h, int64_constant(out, f"{base}.g", out.graph.constant(g)), base),
                 int64_constant(out, f"{base}.b", out.graph.constant(b)), base)
    shaped = out.fresh(f"{base}.shaped")
    out.add("Reshape", [acc, out.ints(f"{base}.shape", shape)], [shaped], f"{base}.unreshape")
    finish(out, round_shift(out, shaped, a.shift, base), a.y_zero_point, a.out_min, a.out_max, a.out_dtype,
           node.outputs[0], base)
