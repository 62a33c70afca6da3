"""ONNX writers of element-wise ops, casts and the quantization ops.

Most are the ONNX op of the same name with the same inputs. The exceptions:
- Clip's bounds are IR attributes and ONNX inputs (of the input's type);
- Gelu is an ONNX op only from opset 20: it is written as the float chain
  x · 0.5 · (1 + Erf(x / √2)) (or the tanh form), which nnc's canonicalize
  pass fuses back into one Gelu (passes/fuse_gelu.py);
- Dropout is written as Identity (inference);
- QuantizeLinear gets an explicit zero point when the IR has none (ONNX would
  otherwise quantize to uint8).
"""

from __future__ import annotations

import math

import numpy as np

from nnc import dtypes
from nnc.ir import Node

from .writer import OnnxBuilder, refuse, writes

QUANTIZED = ("i8", "u8")  # ONNX opset 17 quantizes to these; DequantizeLinear also reads i32

_SAME_INPUTS = ("Add", "Sub", "Mul", "Div", "Pow", "PRelu", "Relu", "Sigmoid", "Tanh", "HardSwish", "Abs", "Neg",
                "Exp", "Log", "Erf", "Sqrt", "Reciprocal", "Sign", "Sin", "Cos", "Softplus", "Softsign",
                "Identity")


@writes(*_SAME_INPUTS)
def _same(out: OnnxBuilder, node: Node) -> None:
    out.add(node.op, node.inputs, node.outputs, node.name)


@writes("Dropout")
def _dropout(out: OnnxBuilder, node: Node) -> None:
    out.add("Identity", node.inputs[:1], node.outputs[:1], node.name)


@writes("ThresholdedRelu")
def _thresholded_relu(out: OnnxBuilder, node: Node) -> None:
    out.add("ThresholdedRelu", node.inputs, node.outputs, node.name, alpha=node.attrs.alpha)


@writes("LeakyRelu")
def _leaky_relu(out: OnnxBuilder, node: Node) -> None:
    out.add("LeakyRelu", node.inputs, node.outputs, node.name, alpha=node.attrs.alpha)


@writes("Elu")
def _elu(out: OnnxBuilder, node: Node) -> None:
    out.add("Elu", node.inputs, node.outputs, node.name, alpha=node.attrs.alpha)


@writes("Selu")
def _selu(out: OnnxBuilder, node: Node) -> None:
    out.add("Selu", node.inputs, node.outputs, node.name, alpha=node.attrs.alpha, gamma=node.attrs.gamma)


@writes("Mish")
def _mish(out: OnnxBuilder, node: Node) -> None:
    """Mul(x, Tanh(Softplus(x))): ONNX has Mish only from opset 18."""
    x, y = node.inputs[0], node.outputs[0]
    soft, gate = out.fresh(f"{y}.softplus"), out.fresh(f"{y}.gate")
    out.add("Softplus", [x], [soft], f"{node.name}.softplus")
    out.add("Tanh", [soft], [gate], f"{node.name}.gate")
    out.add("Mul", [x, gate], [y], node.name)


@writes("HardSigmoid")
def _hard_sigmoid(out: OnnxBuilder, node: Node) -> None:
    out.add("HardSigmoid", node.inputs, node.outputs, node.name, alpha=node.attrs.alpha, beta=node.attrs.beta)


@writes("Clip")
def _clip(out: OnnxBuilder, node: Node) -> None:
    x = node.inputs[0]
    bounds = [out.scalar(f"{node.name}.{side}", v, x) if v is not None else ""
              for side, v in (("min", node.attrs.min), ("max", node.attrs.max))]
    out.add("Clip", [x, *bounds], node.outputs, node.name)


@writes("Cast")
def _cast(out: OnnxBuilder, node: Node) -> None:
    out.add("Cast", node.inputs, node.outputs, node.name, to=dtypes.to_onnx(node.attrs.dtype))


@writes("Gelu")
def _gelu(out: OnnxBuilder, node: Node) -> None:
    x, y, name = node.inputs[0], node.outputs[0], node.name
    inner = out.fresh(f"{y}.inner")

    def step(op: str, inputs: list[str], suffix: str, result: str | None = None) -> str:
        result = result or out.fresh(f"{y}.{suffix}")
        out.add(op, inputs, [result], f"{name}.{suffix}")
        return result

    def number(suffix: str, value: float) -> str:
        return out.constant(f"{name}.{suffix}", np.float32(value))

    if node.attrs.approximate == "tanh":
        cube = step("Pow", [x, number("three", 3.0)], "cube")
        cubic = step("Add", [x, step("Mul", [number("cubic", 0.044715), cube], "cubic_term")], "cubic")
        step("Tanh", [step("Mul", [number("sqrt_2_over_pi", math.sqrt(2.0 / math.pi)), cubic], "scaled")],
             "tanh", inner)
    else:
        step("Erf", [step("Div", [x, number("sqrt2", math.sqrt(2.0))], "scaled")], "erf", inner)
    gate = step("Add", [inner, number("one", 1.0)], "gate")
    step("Mul", [step("Mul", [x, gate], "gated"), number("half", 0.5)], "half", y)


@writes("Silu")
def _silu(out: OnnxBuilder, node: Node) -> None:
    """Mul(x, Sigmoid(x)), which nnc's canonicalize fuses back into one Silu."""
    x, y = node.inputs[0], node.outputs[0]
    gate = out.fresh(f"{y}.gate")
    out.add("Sigmoid", [x], [gate], f"{node.name}.gate")
    out.add("Mul", [x, gate], [y], node.name)


@writes("QuantizeLinear")
def _quantize(out: OnnxBuilder, node: Node) -> None:
    x, scale, zero_point = (node.inputs + [""])[:3]
    if node.attrs.dtype not in QUANTIZED:
        raise refuse(node, f"quantizing to {node.attrs.dtype}")
    if not zero_point:
        shape = out.graph.tensor(scale).shape
        zero_point = out.constant(f"{node.name}.zero_point", np.zeros(shape, dtypes.to_numpy(node.attrs.dtype)))
    out.add("QuantizeLinear", [x, scale, zero_point], node.outputs, node.name, axis=node.attrs.axis)


@writes("DequantizeLinear")
def _dequantize(out: OnnxBuilder, node: Node) -> None:
    dtype = out.graph.tensor(node.inputs[0]).dtype
    if dtype not in (*QUANTIZED, "i32"):
        raise refuse(node, f"dequantizing {dtype}")
    out.add("DequantizeLinear", node.inputs, node.outputs, node.name, axis=node.attrs.axis)
