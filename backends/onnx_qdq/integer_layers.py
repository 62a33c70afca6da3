"""Integer-form writers of the accumulating layers: QConv, QGemm, QMatMul,
QAveragePool, QReduce (docs/numerics.md §2, §5, §11, §12).

Each computes its exact int32 accumulator with ConvInteger or MatMulInteger on
uint8 operands (integer_arith.as_uint8), adds the bias in int64 and
requantizes as nnc does (integer_arith.requantize). Padding is an explicit Pad
with the input's zero point (real zero), as nnc's contract defines it, so the
written file does not depend on how a runtime pads ConvInteger.
QAveragePool is a depthwise ConvInteger with a kernel of ones: its
accumulator Σ_window (x − z_x) counts padding as real zero (count_include_pad).
QReduce sums x − z_x in int64 (ReduceSum) or takes the max of x (ReduceMax)
and then subtracts z_x, as nnc does. GlobalMaxPool of integers is ReduceMax
over the spatial axes (ONNX's GlobalMaxPool takes floats only).
"""

from __future__ import annotations

import numpy as np

from nnc.ir import Node
from nnc.ops.qmatmul import swap_last_two

from .integer_arith import (INT64, as_uint8, binary, centred, channel_shape, int64_constant, requantize,
                            weights_as_uint8)
from .integer_writer import integer_writes
from .ops_nn import refuse_channels_last
from .writer import OnnxBuilder


def padded(out: OnnxBuilder, x: str, zero_point: str, pads, base: str) -> str:
    """x padded on its spatial axes with the (uint8) zero point: ONNX conv
    pads [b1, b2, ..., e1, e2, ...] -> Pad over [N, C, spatial...]."""
    if not any(pads):
        return x
    half = len(pads) // 2
    full = [0, 0, *pads[:half], 0, 0, *pads[half:]]
    result = out.fresh(f"{base}.padded")
    out.add("Pad", [x, out.ints(f"{base}.pads", full), zero_point], [result], f"{base}.pad", mode="constant")
    return result


def accumulator(out: OnnxBuilder, op: str, inputs: list[str], base: str, **attributes) -> str:
    """The int32 result of ConvInteger / MatMulInteger, cast to int64."""
    acc32 = out.fresh(f"{base}.acc32")
    out.add(op, inputs, [acc32], base, **attributes)
    acc = out.fresh(f"{base}.acc")
    out.add("Cast", [acc32], [acc], f"{base}.acc64", to=INT64)
    return acc


def with_bias(out: OnnxBuilder, acc: str, bias: str, rank: int, axis: int, base: str) -> str:
    if not bias:
        return acc
    values = channel_shape(out.graph.constant(bias), rank, axis)
    return binary(out, "Add", acc, int64_constant(out, f"{base}.bias", values), base)


@integer_writes("QConv")
def _qconv(out: OnnxBuilder, node: Node) -> None:
    refuse_channels_last(node)
    a, base = node.attrs, node.name
    x, w, bias, multiplier, shift = node.inputs
    rank = len(out.graph.tensor(node.outputs[0]).shape)
    x_u8, x_zero = as_uint8(out, x, a.x_zero_point, base)
    w_u8, w_zero = weights_as_uint8(out, out.graph.constant(w), base)
    acc = accumulator(out, "ConvInteger", [padded(out, x_u8, x_zero, a.pads, base), w_u8, x_zero, w_zero], base,
                      kernel_shape=list(a.kernel_shape), strides=list(a.strides), dilations=list(a.dilations),
                      group=a.group)
    acc = with_bias(out, acc, bias, rank, 1, base)
    requantize(out, acc, channel_shape(out.graph.constant(multiplier), rank),
               channel_shape(out.graph.constant(shift), rank), a, node.outputs[0], base)


@integer_writes("QGemm")
def _qgemm(out: OnnxBuilder, node: Node) -> None:
    a, base = node.attrs, node.name
    x, w, bias, multiplier, shift = node.inputs
    x_u8, x_zero = as_uint8(out, x, a.x_zero_point, base)
    w_u8, w_zero = weights_as_uint8(out, out.graph.constant(w).T, base)
    acc = with_bias(out, accumulator(out, "MatMulInteger", [x_u8, w_u8, x_zero, w_zero], base), bias, 2, 1, base)
    requantize(out, acc, channel_shape(out.graph.constant(multiplier), 2),
               channel_shape(out.graph.constant(shift), 2), a, node.outputs[0], base)


@integer_writes("QMatMul")
def _qmatmul(out: OnnxBuilder, node: Node) -> None:
    a, base = node.attrs, node.name
    a_u8, a_zero = as_uint8(out, node.inputs[0], a.a_zero_point, f"{base}.a")
    b_u8, b_zero = as_uint8(out, node.inputs[1], a.b_zero_point, f"{base}.b")
    if a.b_transposed:  # b holds the right operand's matrices transposed: ONNX's MatMulInteger has no such flag
        rank = len(out.graph.tensor(node.inputs[1]).shape)
        b_u8, stored = out.fresh(f"{base}.bT"), b_u8
        out.add("Transpose", [stored], [b_u8], f"{base}.b_transpose", perm=list(swap_last_two(rank)))
    acc = accumulator(out, "MatMulInteger", [a_u8, b_u8, a_zero, b_zero], base)
    requantize(out, acc, a.multiplier, a.shift, a, node.outputs[0], base)


@integer_writes("QAveragePool")
def _qaverage_pool(out: OnnxBuilder, node: Node) -> None:
    refuse_channels_last(node)
    a, base = node.attrs, node.name
    channels = out.graph.tensor(node.inputs[0]).shape[1]
    x_u8, x_zero = as_uint8(out, node.inputs[0], a.x_zero_point, base)
    ones = out.constant(f"{base}.ones", np.ones((channels, 1, *a.kernel_shape), np.uint8))
    acc = accumulator(out, "ConvInteger", [padded(out, x_u8, x_zero, a.pads, base), ones, x_zero], base,
                      kernel_shape=list(a.kernel_shape), strides=list(a.strides), group=channels)
    requantize(out, acc, a.multiplier, a.shift, a, node.outputs[0], base)


@integer_writes("GlobalMaxPool")
def _global_max_pool(out: OnnxBuilder, node: Node) -> None:
    refuse_channels_last(node)
    rank = len(out.graph.tensor(node.inputs[0]).shape)
    out.add("ReduceMax", node.inputs, node.outputs, node.name, axes=list(range(2, rank)), keepdims=1)


@integer_writes("QReduce")
def _qreduce(out: OnnxBuilder, node: Node) -> None:
    a, base = node.attrs, node.name
    reduced = out.fresh(f"{base}.acc")
    if a.is_max:
        largest = out.fresh(f"{base}.max")
        out.add("ReduceMax", [node.inputs[0]], [largest], base, axes=list(a.axes), keepdims=int(a.keepdims))
        reduced = centred(out, largest, a.x_zero_point, base)
    else:
        out.add("ReduceSum", [centred(out, node.inputs[0], a.x_zero_point, base), out.ints(f"{base}.axes", a.axes)],
                [reduced], base, keepdims=int(a.keepdims))
    requantize(out, reduced, a.multiplier, a.shift, a, node.outputs[0], base)
