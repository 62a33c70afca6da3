"""Activation quantization parameters: choosing them, reading them from
QuantizeLinear/DequantizeLinear nodes, and applying them the way ONNX does.

An `Affine` is the per-tensor map r = scale · (q − zero_point) of an 8-bit
activation (docs/numerics.md §1). Invariants of every Affine nnc creates:
- scale > 0 and is a float32 value (it is stored as an f32 constant in Q/DQ nodes,
  so the Python float and the constant agree exactly);
- zero_point lies in the range of `dtype`, so real 0 is exactly representable.
"""

from __future__ import annotations


import numpy as np

from ..dtypes import integer_range
from ..errors import UnsupportedError
from ..ir import Graph, Node, QuantParams
from ..records import record

ACTIVATION_TYPES = ("i8", "u8")


@record
class Affine:
    scale: float
    zero_point: int
    dtype: str = "i8"

    @property
    def qrange(self) -> tuple[int, int]:
        return integer_range(self.dtype)

    def quantize(self, r: float) -> int:
        """QuantizeLinear of one real value: saturate(round_half_even(r / scale) + zp),
        the division in float32 (docs/numerics.md §9)."""
        q = float(np.rint(np.float32(r) / np.float32(self.scale))) + self.zero_point
        lo, hi = self.qrange
        return int(min(max(q, lo), hi))

    def bounds(self, lo: float | None, hi: float | None) -> tuple[int, int]:
        """Integer clamp bounds of a float clamp [lo, hi] (None: unbounded),
        intersected with the type's range (docs/numerics.md §2)."""
        qlo, qhi = self.qrange
        return (qlo if lo is None else max(qlo, self.quantize(lo)),
                qhi if hi is None else min(qhi, self.quantize(hi)))

    def quant_params(self) -> QuantParams:
        return QuantParams((float(self.scale),), (int(self.zero_point),))


# The smallest activation scale: a tensor calibrated to a range narrower than
# 255 · 2^-64 (≈ 1.4e-17) holds values that are zero for any practical purpose;
# a denormal scale would make 1/scale and the requantization multipliers overflow.
MIN_SCALE = 2.0 ** -64


def affine_from_range(lo: float, hi: float, dtype: str = "i8") -> Affine:
    """Asymmetric parameters covering [min(lo, 0), max(hi, 0)]: scale = span / 255,
    at least MIN_SCALE, zero point = round(qmin − lo / scale) clamped to the type
    (so 0 is exact). An empty span (all values 0) gets scale 1."""
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise UnsupportedError(f"cannot quantize the range [{lo}, {hi}] to {dtype}: it is not finite")
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    qmin, qmax = integer_range(dtype)
    span = hi - lo
    scale = max(float(np.float32(span / (qmax - qmin))), MIN_SCALE) if span > 0 else 1.0
    if scale <= 0 or not np.isfinite(scale):
        raise UnsupportedError(f"cannot quantize the range [{lo}, {hi}] to {dtype}")
    zero_point = int(np.clip(np.round(qmin - lo / scale), qmin, qmax))
    return Affine(scale, zero_point, dtype)


# Output parameters fixed by the function's range, as TFLite fixes them.
FIXED_OUTPUT = {
    "Softmax": Affine(1.0 / 256.0, -128),
    "Sigmoid": Affine(1.0 / 256.0, -128),
    "Tanh": Affine(1.0 / 128.0, 0),
}


def qdq_affine(graph: Graph, node: Node) -> Affine:
    """The per-tensor parameters of a QuantizeLinear/DequantizeLinear node with
    constant scale and zero point; UnsupportedError for per-axis or 16-bit ones."""
    scale = graph.constant(node.inputs[1])
    zp_name = node.inputs[2] if len(node.inputs) > 2 else ""
    zero_point = graph.constant(zp_name) if zp_name else None
    dtype = node.attrs.dtype if node.op == "QuantizeLinear" else graph.tensor(node.inputs[0]).dtype
    if node.attrs.axis is not None or scale is None or (zp_name and zero_point is None):
        raise UnsupportedError(f"{node.op} node {node.name!r}: activations need constant per-tensor "
                               "scale and zero point")
    if dtype not in ACTIVATION_TYPES:
        raise UnsupportedError(f"{node.op} node {node.name!r}: {dtype} activations are not supported "
                               f"(only {', '.join(ACTIVATION_TYPES)})")
    value = float(scale.reshape(-1)[0])
    if not value > 0 or not np.isfinite(value):
        raise UnsupportedError(f"{node.op} node {node.name!r}: scale {value} must be positive")
    return Affine(value, 0 if zero_point is None else int(zero_point.reshape(-1)[0]), dtype)


def add_qdq_constants(graph: Graph, base: str, affine: Affine) -> tuple[str, str]:
    """Constant tensors (scale f32[], zero point of the activation type) for a Q/DQ pair."""
    scale = graph.add_constant(f"{base}.scale", np.array(affine.scale, np.float32)).name
    dtype = {"i8": np.int8, "u8": np.uint8, "i16": np.int16}[affine.dtype]  # i16: recurrent cell states
    zero_point = graph.add_constant(f"{base}.zero_point", np.array(affine.zero_point, dtype)).name
    return scale, zero_point


def record(graph: Graph, name: str, params: QuantParams) -> None:
    """Set Tensor.quant of `name` unless it already carries parameters."""
    tensor = graph.tensor(name)
    if tensor.quant is None:
        tensor.quant = params
