"""nnc's integer graph of a model -> an int8 .tflite flatbuffer (TFLite schema v3).

Benchmark-side tooling: Vela and TensorFlow Lite Micro read .tflite files, and
shared/models/mlperf-tiny holds ONNX only. The graph is the one the c and az-sim
targets compile (`nnc.compile(model, target="ir", quantize=True)`: the canonical
pipeline, whose layout pass makes spatial tensors NHWC, then the quantize pass).
Each IR op maps to one TFLite builtin (PAD added where a convolution's explicit
pads are neither SAME nor VALID):

    QConv -> CONV_2D or DEPTHWISE_CONV_2D   QGemm -> FULLY_CONNECTED
    QAdd -> ADD                             QAveragePool / MaxPool -> AVERAGE_POOL_2D / MAX_POOL_2D
    Reshape -> RESHAPE                      QSoftmax -> SOFTMAX (beta 1)
    QuantizeLinear / DequantizeLinear (at a float interface) -> QUANTIZE / DEQUANTIZE

Activations are int8 with nnc's per-tensor scale and zero point; weights int8
with their per-output-channel scales (quantized_dimension 0 for CONV_2D and
FULLY_CONNECTED, 3 for DEPTHWISE_CONV_2D), biases int32 at scale x_scale ×
w_scale. An integer clamp [out_min, out_max] becomes the fused activation
(NONE, RELU, RELU6, RELU_N1_TO_1) that gives the same clamp; any other clamp is
refused. TFLite recomputes the fixed-point multipliers from these float scales,
and its reference kernels (TFLM's too) round twice per requantization where nnc
rounds once, so outputs may differ from nnc's reference by an LSB per layer,
more after a softmax; `--check` measures it against nnc and against the
original TFLite model's output stored in MODEL.io.npz.
Flatbuffers are written with the generated builders of the `tflite` package
(pip install 'nnc[bench]').

    python benchmarks/tflite_writer.py MODEL.onnx -o MODEL.tflite [--check]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import flatbuffers
import numpy as np
import tflite
from tflite.ActivationFunctionType import ActivationFunctionType as Act
from tflite.BuiltinOperator import BuiltinOperator as Op
from tflite.BuiltinOptions import BuiltinOptions as Opt
from tflite.Padding import Padding
from tflite.TensorType import TensorType

import nnc
from nnc.errors import UnsupportedError
from nnc.ir import Graph, Node

SCHEMA_VERSION = 3
BUFFER_ALIGNMENT = 16  # constant data aligned for kernels that read int32/float directly
TYPES = {"i8": TensorType.INT8, "u8": TensorType.UINT8, "i16": TensorType.INT16, "i32": TensorType.INT32,
         "f32": TensorType.FLOAT32}
# operator versions: the lowest that covers int8 (per-channel where weights are)
VERSIONS = {Op.CONV_2D: 3, Op.DEPTHWISE_CONV_2D: 3, Op.FULLY_CONNECTED: 4, Op.ADD: 2, Op.AVERAGE_POOL_2D: 2,
            Op.MAX_POOL_2D: 2, Op.RESHAPE: 1, Op.SOFTMAX: 2, Op.PAD: 2, Op.QUANTIZE: 2, Op.DEQUANTIZE: 2}


@dataclass
class Quant:
    scale: list[float]
    zero_point: list[int]
    axis: int = 0


@dataclass
class TensorSpec:
    name: str
    shape: tuple[int, ...]
    dtype: int
    buffer: int
    quant: Quant | None


@dataclass
class OperatorSpec:
    code: int
    inputs: list[int]
    outputs: list[int]
    options: str | None = None  # its builtin options table, e.g. "Conv2DOptions"
    fields: dict = field(default_factory=dict)  # that table's fields (CamelCase); tuples become int32 vectors


class FlatModel:
    """One subgraph's tensors, constant buffers and operators, in the order they
    are added (operators in execution order); `to_bytes` serialises them.
    Buffer 0 is the empty buffer every non-constant tensor points at."""

    def __init__(self, graph: Graph):
        self.graph = graph
        self.tensors: list[TensorSpec] = []
        self.buffers: list[bytes] = [b""]
        self.operators: list[OperatorSpec] = []
        self._index: dict[str, int] = {}

    def add_tensor(self, name: str, shape, dtype: str, quant: Quant | None = None,
                   data: np.ndarray | None = None) -> int:
        buffer = 0
        if data is not None:
            self.buffers.append(np.ascontiguousarray(data).tobytes())
            buffer = len(self.buffers) - 1
        self.tensors.append(TensorSpec(name, tuple(int(d) for d in shape), TYPES[dtype], buffer, quant))
        return len(self.tensors) - 1

    def value(self, name: str) -> int:
        """The index of IR tensor `name` (a graph input or a node output), added
        on first use with its per-tensor quantization."""
        if name not in self._index:
            t = self.graph.tensor(name)
            quant = None if t.quant is None else Quant([float(s) for s in t.quant.scale],
                                                       [int(z) for z in t.quant.zero_point])
            self._index[name] = self.add_tensor(name, t.shape, t.dtype, quant)
        return self._index[name]

    def add_operator(self, code: int, inputs: list[int], outputs: list[int], options: str | None = None,
                     **fields) -> None:
        self.operators.append(OperatorSpec(code, inputs, outputs, options, fields))

    def to_bytes(self, description: str) -> bytes:
        graph_inputs, graph_outputs = ([self.value(n) for n in names] for names in (self.graph.inputs,
                                                                                     self.graph.outputs))
        b = flatbuffers.Builder(1 << 16)
        codes = sorted({op.code for op in self.operators})
        buffers = _vector(b, "ModelStartBuffersVector", [_buffer(b, data) for data in self.buffers])
        opcodes = _vector(b, "ModelStartOperatorCodesVector", [_write(
            b, "OperatorCode", DeprecatedBuiltinCode=min(code, 127), BuiltinCode=code, Version=VERSIONS[code])
            for code in codes])
        subgraph = _write(b, "SubGraph", Tensors=_vector(b, "SubGraphStartTensorsVector",
                                                         [_tensor(b, t) for t in self.tensors]),
                          Inputs=_numbers(b, "SubGraphStartInputsVector", graph_inputs),
                          Outputs=_numbers(b, "SubGraphStartOutputsVector", graph_outputs),
                          Operators=_vector(b, "SubGraphStartOperatorsVector",
                                            [_operator(b, op, codes.index(op.code)) for op in self.operators]),
                          Name=b.CreateString(self.graph.name))
        model = _write(b, "Model", Version=SCHEMA_VERSION, OperatorCodes=opcodes,
                       Subgraphs=_vector(b, "ModelStartSubgraphsVector", [subgraph]),
                       Description=b.CreateString(description), Buffers=buffers)
        b.Finish(model, file_identifier=b"TFL3")
        return bytes(b.Output())


# -- flatbuffer pieces: `tflite` holds the schema's generated builder functions --------------------

def _write(b: flatbuffers.Builder, table: str, **fields) -> int:
    """One table: `tflite.<table>Start`, `<table>Add<Field>` for each field given
    and not None (CamelCase keyword names; nested objects already written),
    `<table>End`; returns its offset."""
    getattr(tflite, f"{table}Start")(b)
    for name, value in fields.items():
        if value is not None:
            getattr(tflite, f"{table}Add{name}")(b, value)
    return getattr(tflite, f"{table}End")(b)


def _vector(b: flatbuffers.Builder, start: str, offsets: list[int]) -> int:
    getattr(tflite, start)(b, len(offsets))
    for offset in reversed(offsets):
        b.PrependUOffsetTRelative(offset)
    return b.EndVector()


def _numbers(b: flatbuffers.Builder, start: str, values, prepend: str = "PrependInt32") -> int:
    getattr(tflite, start)(b, len(values))
    for value in reversed(list(values)):
        getattr(b, prepend)(value)
    return b.EndVector()


def _buffer(b: flatbuffers.Builder, data: bytes) -> int:
    vector = None
    if data:  # a byte vector whose first byte is BUFFER_ALIGNMENT-aligned in the finished file
        b.StartVector(1, len(data), BUFFER_ALIGNMENT)
        b.head -= len(data)
        b.Bytes[b.head:b.head + len(data)] = data
        vector = b.EndVector()
    return _write(b, "Buffer", Data=vector)


def _tensor(b: flatbuffers.Builder, t: TensorSpec) -> int:
    quant = None
    if t.quant is not None:
        quant = _write(b, "QuantizationParameters", QuantizedDimension=t.quant.axis,
                       Scale=_numbers(b, "QuantizationParametersStartScaleVector", t.quant.scale, "PrependFloat32"),
                       ZeroPoint=_numbers(b, "QuantizationParametersStartZeroPointVector", t.quant.zero_point,
                                          "PrependInt64"))
    return _write(b, "Tensor", Shape=_numbers(b, "TensorStartShapeVector", t.shape), Type=t.dtype,
                  Buffer=t.buffer, Name=b.CreateString(t.name), Quantization=quant)


def _operator(b: flatbuffers.Builder, op: OperatorSpec, opcode_index: int) -> int:
    options = None
    if op.options is not None:
        fields = {name: _numbers(b, f"{op.options}Start{name}Vector", value) if isinstance(value, tuple) else value
                  for name, value in op.fields.items()}
        options = _write(b, op.options, **fields)
    return _write(b, "Operator", OpcodeIndex=opcode_index, Inputs=_numbers(b, "OperatorStartInputsVector", op.inputs),
                  Outputs=_numbers(b, "OperatorStartOutputsVector", op.outputs),
                  BuiltinOptionsType=getattr(Opt, op.options) if op.options else None, BuiltinOptions=options)


# -- IR ops -> TFLite operators -------------------------------------------------------------------

LOWERINGS: dict[str, Callable[[FlatModel, Node], None]] = {}


def lowers(*ops: str):
    def register(fn):
        for op in ops:
            LOWERINGS[op] = fn
        return fn

    return register


def fused_activation(m: FlatModel, node: Node) -> int:
    """The fused activation whose clamp on the output grid is [out_min, out_max]."""
    a, out = node.attrs, m.graph.tensor(node.outputs[0])
    scale, zp = out.quant.scale[0], out.quant.zero_point[0]
    lo, hi = (-128, 127) if out.dtype == "i8" else (0, 255)
    at = lambda real: int(np.clip(zp + round(real / scale), lo, hi))  # noqa: E731
    candidates = {Act.NONE: (lo, hi), Act.RELU: (at(0.0), hi), Act.RELU6: (at(0.0), at(6.0)),
                  Act.RELU_N1_TO_1: (at(-1.0), at(1.0))}
    for act, clamp in candidates.items():
        if clamp == (a.out_min, a.out_max):
            return act
    raise UnsupportedError(f"node {node.name!r}: clamp [{a.out_min}, {a.out_max}] is no TFLite fused activation")


def padding(m: FlatModel, node: Node, x: str, kernel, dilations=(1, 1)) -> int | None:
    """VALID or SAME when the node's explicit pads (top, left, bottom, right) are
    TensorFlow's for that mode, else None."""
    a = node.attrs
    if not any(a.pads):
        return Padding.VALID
    _, h, w, _ = m.graph.tensor(x).shape
    same = []
    for size, k, s, d in zip((h, w), kernel, a.strides, dilations):
        total = max((-(-size // s) - 1) * s + (k - 1) * d + 1 - size, 0)
        same.append((total // 2, total - total // 2))
    return Padding.SAME if tuple(a.pads) == (same[0][0], same[1][0], same[0][1], same[1][1]) else None


def padded_input(m: FlatModel, node: Node, x: str, kernel, dilations) -> tuple[int, int]:
    """(input tensor, padding mode) for a convolution: x itself with SAME or
    VALID, or x through an explicit PAD (filled with x's zero point) and VALID."""
    mode = padding(m, node, x, kernel, dilations)
    if mode is not None:
        return m.value(x), mode
    top, left, bottom, right = node.attrs.pads
    n, h, w, c = m.graph.tensor(x).shape
    pads = m.add_tensor(f"{node.name}/paddings", (4, 2), "i32",
                        data=np.array([[0, 0], [top, bottom], [left, right], [0, 0]], np.int32))
    padded = m.add_tensor(f"{node.name}/padded", (n, h + top + bottom, w + left + right, c),
                          m.graph.tensor(x).dtype, m.tensors[m.value(x)].quant)
    m.add_operator(Op.PAD, [m.value(x), pads], [padded], "PadOptions")
    return padded, Padding.VALID


def weight_scales(m: FlatModel, node: Node) -> list[float]:
    """The layer's per-output-channel (or one per-tensor) weight scales, as nnc's
    quantizer chose them; the weights must be symmetric."""
    w = m.graph.tensor(node.inputs[1])
    if w.quant is None or any(w.quant.zero_point):
        raise UnsupportedError(f"node {node.name!r}: weights {w.name!r} need symmetric quantization parameters")
    return [float(s) for s in w.quant.scale]


def weights_and_bias(m: FlatModel, node: Node, data: np.ndarray, axis: int) -> tuple[int, int]:
    """Tensors for a layer's int8 weights (`data`, already in TFLite's layout,
    output channels on `axis`) and its int32 bias (zeros when the node has none)."""
    g = m.graph
    w_scales = weight_scales(m, node)
    x_scale = g.tensor(node.inputs[0]).quant.scale[0]
    channels = data.shape[axis]
    bias = g.tensor(node.inputs[2]).data if node.inputs[2] else np.zeros(channels, np.int32)
    w = m.add_tensor(node.inputs[1], data.shape, "i8", Quant(w_scales, [0] * len(w_scales), axis), data)
    b_scales = [float(np.float32(x_scale) * np.float32(s)) for s in w_scales]
    b = m.add_tensor(node.inputs[2] or f"{node.name}/bias", (channels,), "i32",
                     Quant(b_scales, [0] * len(b_scales), 0), bias.astype(np.int32))
    return w, b


@lowers("QConv")
def conv(m: FlatModel, node: Node) -> None:
    a, x = node.attrs, node.inputs[0]
    if not a.channels_last or len(a.kernel_shape) != 2:
        raise UnsupportedError(f"node {node.name!r}: only 2-D channels-last convolutions map to TFLite")
    w = m.graph.tensor(node.inputs[1]).data  # [Cout, Cin/group, kh, kw]
    in_channels = m.graph.tensor(x).shape[-1]
    depthwise = a.group > 1 and a.group == in_channels
    if a.group != 1 and not depthwise:
        raise UnsupportedError(f"node {node.name!r}: grouped convolution (group {a.group}) has no TFLite op")
    source, mode = padded_input(m, node, x, a.kernel_shape, a.dilations)
    (sh, sw), (dh, dw) = a.strides, a.dilations
    geometry = dict(Padding=mode, StrideW=sw, StrideH=sh, DilationWFactor=dw, DilationHFactor=dh,
                    FusedActivationFunction=fused_activation(m, node))
    output = m.value(node.outputs[0])
    if depthwise:
        weights, bias = weights_and_bias(m, node, w.transpose(1, 2, 3, 0), axis=3)  # [1, kh, kw, Cout]
        m.add_operator(Op.DEPTHWISE_CONV_2D, [source, weights, bias], [output], "DepthwiseConv2DOptions",
                       DepthMultiplier=w.shape[0] // in_channels, **geometry)
    else:
        weights, bias = weights_and_bias(m, node, w.transpose(0, 2, 3, 1), axis=0)  # [Cout, kh, kw, Cin]
        m.add_operator(Op.CONV_2D, [source, weights, bias], [output], "Conv2DOptions", **geometry)


@lowers("QGemm")
def fully_connected(m: FlatModel, node: Node) -> None:
    weights, bias = weights_and_bias(m, node, m.graph.tensor(node.inputs[1]).data, axis=0)  # [N, K]
    m.add_operator(Op.FULLY_CONNECTED, [m.value(node.inputs[0]), weights, bias], [m.value(node.outputs[0])],
                   "FullyConnectedOptions", FusedActivationFunction=fused_activation(m, node))


@lowers("QAdd")
def add(m: FlatModel, node: Node) -> None:
    if node.attrs.a_multiplier < 0 or node.attrs.b_multiplier < 0:
        raise UnsupportedError(f"node {node.name!r}: a QAdd with a negative multiplier (a Sub) is not mapped")
    m.add_operator(Op.ADD, [m.value(n) for n in node.inputs], [m.value(node.outputs[0])], "AddOptions",
                   FusedActivationFunction=fused_activation(m, node))


@lowers("QAveragePool", "MaxPool")
def pool(m: FlatModel, node: Node) -> None:
    a, (x,), (y,) = node.attrs, node.inputs, node.outputs
    mode = padding(m, node, x, a.kernel_shape)
    if not a.channels_last or mode is None or getattr(a, "ceil_mode", False):
        raise UnsupportedError(f"node {node.name!r}: pads {list(a.pads)} are neither SAME nor VALID")
    if m.tensors[m.value(x)].quant != m.tensors[m.value(y)].quant:
        raise UnsupportedError(f"node {node.name!r}: TFLite int8 pooling needs equal input and output scales")
    act = fused_activation(m, node) if node.op == "QAveragePool" else Act.NONE
    code = Op.AVERAGE_POOL_2D if node.op == "QAveragePool" else Op.MAX_POOL_2D
    m.add_operator(code, [m.value(x)], [m.value(y)], "Pool2DOptions", Padding=mode, StrideW=a.strides[1],
                   StrideH=a.strides[0], FilterWidth=a.kernel_shape[1], FilterHeight=a.kernel_shape[0],
                   FusedActivationFunction=act)


@lowers("Reshape")
def reshape(m: FlatModel, node: Node) -> None:
    shape = m.graph.tensor(node.outputs[0]).shape
    new_shape = m.add_tensor(f"{node.name}/shape", (len(shape),), "i32", data=np.array(shape, np.int32))

    m.add_operator(Op.RESHAPE, [m.value(node.inputs[0]), new_shape], [m.value(node.outputs[0])], "ReshapeOptions",
                   NewShape=tuple(shape))


@lowers("QSoftmax")
def softmax(m: FlatModel, node: Node) -> None:
    m.add_operator(Op.SOFTMAX, [m.value(node.inputs[0])], [m.value(node.outputs[0])], "SoftmaxOptions", Beta=1.0)


@lowers("QuantizeLinear", "DequantizeLinear")
def quantize(m: FlatModel, node: Node) -> None:
    """A float <-> integer boundary; the integer side takes the node's scale and zero point."""
    scale, zero_point = (m.graph.tensor(n).data for n in node.inputs[1:3])
    if np.size(scale) != 1:
        raise UnsupportedError(f"node {node.name!r}: per-axis {node.op} at the interface is not mapped")
    integer = node.outputs[0] if node.op == "QuantizeLinear" else node.inputs[0]
    index = m.value(integer)
    m.tensors[index].quant = Quant([float(scale)], [int(zero_point)])
    code = Op.QUANTIZE if node.op == "QuantizeLinear" else Op.DEQUANTIZE
    m.add_operator(code, [m.value(node.inputs[0])], [m.value(node.outputs[0])])


# -- entry points ---------------------------------------------------------------------------------

def integer_graph(model: str | Path) -> Graph:
    """The quantized graph the c and az-sim targets compile (no verification)."""
    return nnc.compile(model, target="ir", quantize=True, verify=False).graph


def to_tflite(graph: Graph) -> bytes:
    """The .tflite bytes of an integer graph; UnsupportedError names the first
    node that has no TFLite mapping here."""
    m = FlatModel(graph)
    for node in graph.nodes():
        if node.op not in LOWERINGS:
            raise UnsupportedError(f"node {node.name!r}: op {node.op} has no TFLite mapping in tflite_writer")
        LOWERINGS[node.op](m, node)
    return m.to_bytes(f"nnc {nnc.__version__} integer graph of {graph.name}")


def write_tflite(model: str | Path, out: str | Path) -> Graph:
    """Write `model`'s integer graph as .tflite to `out`; returns the graph."""
    graph = integer_graph(model)
    Path(out).write_bytes(to_tflite(graph))
    return graph


def runtime_outputs(tflite_bytes: bytes, inputs: list[np.ndarray], outputs: int) -> dict[str, list[np.ndarray]]:
    """The .tflite's `outputs` outputs on `inputs` (in subgraph order) under TFLite
    Micro's interpreter, LiteRT's reference kernels and LiteRT's default
    (optimized, XNNPACK) kernels."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    from tflite_micro.python.tflite_micro import runtime

    micro = runtime.Interpreter.from_bytes(tflite_bytes)
    for i, x in enumerate(inputs):
        micro.set_input(x, i)
    micro.invoke()
    found = {"tflm": [micro.get_output(i) for i in range(outputs)]}
    for label, resolver in (("litert_ref", OpResolverType.BUILTIN_REF), ("litert", OpResolverType.AUTO)):
        litert = Interpreter(model_content=tflite_bytes, experimental_op_resolver_type=resolver)
        litert.allocate_tensors()
        for detail, x in zip(litert.get_input_details(), inputs):
            litert.set_tensor(detail["index"], x)
        litert.invoke()
        found[label] = [litert.get_tensor(d["index"]) for d in litert.get_output_details()]
    return found


def max_lsb(found: list[np.ndarray], expected: list[np.ndarray]) -> int:
    """Largest |found − expected| over all outputs, in output LSBs."""
    return max(int(np.abs(f.astype(np.int64) - e.astype(np.int64)).max()) for f, e in zip(found, expected))


def check(model: Path, graph: Graph, tflite_bytes: bytes) -> dict[str, int]:
    """Max LSB difference of each runtime's output from nnc's reference on the
    model's sample (MODEL.io.npz `input`), and from the original TFLite model's
    output stored there (`output_tflite`), when it is."""
    sample = np.load(model.with_suffix(".io.npz"))
    inputs = [sample["input"]]
    reference = nnc.run(graph, {graph.inputs[0]: inputs[0]})
    expected = [reference[name] for name in graph.outputs]
    found = runtime_outputs(tflite_bytes, inputs, len(expected))
    result = {f"{label}_vs_nnc": max_lsb(outputs, expected) for label, outputs in found.items()}
    if "output_tflite" in sample:
        result |= {f"{label}_vs_original": max_lsb(outputs, [sample["output_tflite"]])
                   for label, outputs in found.items()}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("-o", "--output", type=Path, required=True)
    parser.add_argument("--check", action="store_true",
                        help="run the .tflite on MODEL.io.npz's input and print the max LSB difference from nnc")
    args = parser.parse_args()
    graph = write_tflite(args.model, args.output)
    print(f"wrote {args.output} ({args.output.stat().st_size:,} bytes)")
    if args.check:
        print(" ".join(f"{key} {value}" for key, value in check(args.model, graph, args.output.read_bytes()).items()))


if __name__ == "__main__":
    main()
