"""Integer-form writers of QuantizeLinear / DequantizeLinear at a float
interface (docs/numerics.md §9).

int8 and uint8 are ONNX's own QuantizeLinear / DequantizeLinear (writer.py's
writers), which onnxruntime computes as nnc does. int16 (an LSTM's cell state
Y_c and a graph-input initial_c, §15) has no opset-17 form, so it is written
out with the same arithmetic, per tensor:

    quantize:   q = Cast(Clip(Round(x / s), lo − z, hi − z)) + z     (float32 Div, Round half to even)
    dequantize: r = Cast(q − z to float32) · s                       (float32 Mul)

Clipping before adding z equals clip(round(x / s) + z, lo, hi) (lo − z and
hi − z are exact in float32), and q − z (|q − z| < 2^17) is exact in float32,
so both are nnc's formulas with the same float32 roundings.
"""

from __future__ import annotations

import numpy as np
from onnx import TensorProto

from nnc import dtypes
from nnc.ir import Node

from .integer_arith import binary
from .integer_writer import integer_writes
from .writer import WRITERS, OnnxBuilder, refuse

NATIVE = ("i8", "u8")  # what opset 17's QuantizeLinear produces (DequantizeLinear also reads int32)


def per_tensor(out: OnnxBuilder, node: Node) -> tuple[str, int]:
    """(the scale's name, the zero point) of a per-tensor int16 Q/DQ node."""
    scale, zero_point = (node.inputs + [""])[1:3]
    if out.graph.constant(scale).size != 1:
        raise refuse(node, "an int16 quantization with a scale per channel")
    return scale, int(out.graph.constant(zero_point).reshape(-1)[0]) if zero_point else 0


@integer_writes("QuantizeLinear")
def _quantize(out: OnnxBuilder, node: Node) -> None:
    if node.attrs.dtype in NATIVE:
        WRITERS["QuantizeLinear"](out, node)
        return
    scale, zero = per_tensor(out, node)
    lo, hi = dtypes.integer_range(node.attrs.dtype)
    base = node.name
    rounded = out.fresh(f"{base}.rounded")
    out.add("Round", [binary(out, "Div", node.inputs[0], scale, base)], [rounded], f"{base}.round")
    clipped = out.fresh(f"{base}.clipped")
    out.add("Clip", [rounded, out.constant(f"{base}.lo", np.float32(lo - zero)),
                     out.constant(f"{base}.hi", np.float32(hi - zero))], [clipped], f"{base}.clip")
    whole = out.fresh(f"{base}.i32")
    out.add("Cast", [clipped], [whole], f"{base}.to_i32", to=TensorProto.INT32)
    shifted = binary(out, "Add", whole, out.constant(f"{base}.zero_point", np.int32(zero)), base)
    out.add("Cast", [shifted], node.outputs, f"{base}.narrow", to=dtypes.to_onnx(node.attrs.dtype))


@integer_writes("DequantizeLinear")
def _dequantize(out: OnnxBuilder, node: Node) -> None:
    if out.graph.tensor(node.inputs[0]).dtype in (*NATIVE, "i32"):
        WRITERS["DequantizeLinear"](out, node)
        return
    scale, zero = per_tensor(out, node)
    base = node.name
    whole = out.fresh(f"{base}.i32")
    out.add("Cast", [node.inputs[0]], [whole], f"{base}.to_i32", to=TensorProto.INT32)
    centred = binary(out, "Sub", whole, out.constant(f"{base}.zero_point", np.int32(zero)), base)
    real = out.fresh(f"{base}.f32")
    out.add("Cast", [centred], [real], f"{base}.to_f32", to=TensorProto.FLOAT)
    out.add("Mul", [real, scale], node.outputs, base)
