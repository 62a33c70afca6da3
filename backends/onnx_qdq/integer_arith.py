"""nnc's requantization (docs/numerics.md §1–2) in ONNX int64 arithmetic, exactly.

The integer form writes every rounding of nnc's integer graph with these
helpers, so onnxruntime computes the same integers bit for bit:

    round_shift(v, n) = floor((v + 2^(n−1)) / 2^n)
                      = (t − Mod(t, 2^n)) / 2^n,   t = v + 2^(n−1)

ONNX BitShift shifts unsigned integers only, and integer Div rounds toward
zero in onnxruntime (C++ division), which is not a floor for negative t. ONNX
Mod with fmod=0 returns the remainder with the sign of the divisor, so for
d = 2^n > 0 it is r = t − d · floor(t / d) ∈ [0, d): t − r is then an exact
multiple of d, and Div of an exact multiple has no remainder to round, under
any rounding rule. So the quotient is floor(t / d), with no assumption about
how Div rounds.

No intermediate leaves int64: an accumulator with its bias satisfies
|acc| < 2^31 (the compile-time overflow proof of §2), m < 2^31, so
|acc · m| < 2^62, and 2^(n−1) ≤ 2^61 keeps |t| < 2^62 + 2^61 < 2^63; t − r
lies between t − 2^n and t. The zero point, the clamp (Clip on int64) and the
final Cast to int8/uint8 of a value inside the type's range are exact.

ConvInteger and MatMulInteger read uint8 operands here (`as_uint8`): an int8
activation x becomes x + 128 with zero point z + 128, an int8 weight w + 128
with zero point 128, which leaves every (x − z)(w − z_w) unchanged. uint8 x
uint8 is the pair onnxruntime implements on every CPU without the 16-bit
saturation of its u8 x s8 kernels on AVX2 (onnxruntime's quantization docs),
and the int32 accumulator is exact because the true sum fits int32 (a
wrapped partial sum in int32 ring arithmetic still ends at the true value).
"""

from __future__ import annotations

import numpy as np
from onnx import TensorProto

from .writer import OnnxBuilder

INT64, INT32, UINT8 = TensorProto.INT64, TensorProto.INT32, TensorProto.UINT8
ONNX_TYPES = {"i8": TensorProto.INT8, "u8": TensorProto.UINT8}
UINT8_OFFSET = 128


def widen(out: OnnxBuilder, x: str, base: str) -> str:
    """x cast to int64 (exact for every integer type nnc uses)."""
    wide = out.fresh(f"{base}.i64")
    out.add("Cast", [x], [wide], f"{base}.widen", to=INT64)
    return wide


def centred(out: OnnxBuilder, x: str, zero_point: int, base: str) -> str:
    """x − zero_point in int64."""
    wide = widen(out, x, base)
    if zero_point == 0:
        return wide
    return binary(out, "Sub", wide, out.constant(f"{base}.zero_point", np.int64(zero_point)), base)


def binary(out: OnnxBuilder, op: str, a: str, b: str, base: str) -> str:
    """The new tensor `op(a, b)` (an ONNX binary op, numpy broadcasting)."""
    result = out.fresh(f"{base}.{op.lower()}")
    out.add(op, [a, b], [result], f"{base}.{op.lower()}")
    return result


def where(out: OnnxBuilder, condition: str, a: str, b: str, base: str) -> str:
    """The new tensor Where(condition, a, b)."""
    result = out.fresh(base)
    out.add("Where", [condition, a, b], [result], base)
    return result


def int64_constant(out: OnnxBuilder, base: str, values) -> str:
    return out.constant(base, np.asarray(values, np.int64))


def round_shift(out: OnnxBuilder, value: str, shift: np.ndarray, base: str) -> str:
    """floor((value + 2^(shift−1)) / 2^shift) (module docstring); `shift`
    (1..62) broadcasts against `value` as numpy does."""
    shift = np.asarray(shift, np.int64)
    divisor = int64_constant(out, f"{base}.divisor", np.left_shift(np.int64(1), shift))
    half = int64_constant(out, f"{base}.half", np.left_shift(np.int64(1), shift - 1))
    return floor_divide(out, binary(out, "Add", value, half, base), divisor, base)


def floor_divide(out: OnnxBuilder, value: str, divisor: str, base: str) -> str:
    """floor(value / divisor) for a positive int64 `divisor` (a tensor that
    broadcasts against `value`): (value − Mod(value, divisor)) / divisor, an
    exact division (module docstring)."""
    remainder = out.fresh(f"{base}.remainder")
    out.add("Mod", [value, divisor], [remainder], f"{base}.mod", fmod=0)
    return binary(out, "Div", binary(out, "Sub", value, remainder, base), divisor, base)


def finish(out: OnnxBuilder, value: str, zero_point: int, lo: int, hi: int, dtype: str, output: str,
           base: str) -> None:
    """output = Cast(Clip(value + zero_point, lo, hi)) to int8/uint8 `dtype`."""
    if zero_point != 0:
        value = binary(out, "Add", value, int64_constant(out, f"{base}.y_zero_point", zero_point), base)
    clipped = out.fresh(f"{base}.clipped")
    out.add("Clip", [value, int64_constant(out, f"{base}.lo", lo), int64_constant(out, f"{base}.hi", hi)],
            [clipped], f"{base}.clip")
    out.add("Cast", [clipped], [output], f"{base}.narrow", to=ONNX_TYPES[dtype])


def requantize(out: OnnxBuilder, acc: str, multiplier, shift, attrs, output: str, base: str) -> None:
    """output = clamp(z_y + round_shift(acc · multiplier, shift), out_min, out_max)
    cast to attrs.out_dtype; `acc` int64, multiplier and shift arrays (or
    scalars) that broadcast against it."""
    product = binary(out, "Mul", acc, int64_constant(out, f"{base}.multiplier", multiplier), base)
    rounded = round_shift(out, product, shift, base)
    finish(out, rounded, attrs.y_zero_point, attrs.out_min, attrs.out_max, attrs.out_dtype, output, base)


def as_uint8(out: OnnxBuilder, x: str, zero_point: int, base: str) -> tuple[str, str]:
    """(x as uint8, its zero point as a uint8 scalar initializer): an int8 x is
    shifted by 128 through int32, so every x − zero_point is unchanged."""
    if out.graph.tensor(x).dtype == "u8":
        return x, out.constant(f"{base}.x_zero_point", np.uint8(zero_point))
    wide = out.fresh(f"{base}.i32")
    out.add("Cast", [x], [wide], f"{base}.to_i32", to=INT32)
    lifted = binary(out, "Add", wide, out.constant(f"{base}.offset", np.int32(UINT8_OFFSET)), base)
    unsigned = out.fresh(f"{base}.u8")
    out.add("Cast", [lifted], [unsigned], f"{base}.to_u8", to=UINT8)
    return unsigned, out.constant(f"{base}.x_zero_point", np.uint8(zero_point + UINT8_OFFSET))


def weights_as_uint8(out: OnnxBuilder, w: np.ndarray, base: str) -> tuple[str, str]:
    """(int8 weights + 128 as a uint8 initializer, the zero point 128)."""
    shifted = (np.asarray(w, np.int16) + UINT8_OFFSET).astype(np.uint8)
    return out.constant(f"{base}.w_u8", shifted), out.constant(f"{base}.w_zero_point", np.uint8(UINT8_OFFSET))


def channel_shape(values: np.ndarray, rank: int, axis: int = 1) -> np.ndarray:
    """A per-channel vector reshaped to broadcast along `axis` of a rank-`rank` tensor."""
    shape = [1] * rank
    shape[axis] = -1
    return np.asarray(values, np.int64).reshape(shape)
