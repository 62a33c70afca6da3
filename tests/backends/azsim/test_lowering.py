"""Lowering integer IR graphs to az-sim Programs: the tensor table, SRAM placement
(views share bytes, live tensors never overlap), layer operands and params,
weight streams that decode to the graph's weights, one error listing every node
the chip cannot run, and on the MLPerf models the simulator computing exactly
what the reference interpreter computes from the blob alone."""

from __future__ import annotations

import math

import numpy as np
import pytest
from mlperf import MODEL_NAMES, MODELS_DIR, requires_models
from test_blob import integer_program

import nnc
from nnc import packing
from nnc.backends.azsim.blob import read_blob, write_blob
from nnc.backends.azsim.lowering import to_program
from nnc.backends.azsim.program import DTYPE_CODES, WeightStream
from nnc.ir import Graph, Node, QuantParams, Tensor, TensorType
from nnc.ops import get_op
from nnc.ops.elementwise import ClipAttrs
from nnc.ops.pool import PoolAttrs
from nnc.ops.qlinear import QGemmAttrs
from nnc.ops.shape import PadAttrs, ReshapeAttrs
from nnc.passmanager import PassManager, parse_pipeline
from nnc.pipelines import CANONICAL

I8 = DTYPE_CODES["i8"]
GEMM = QGemmAttrs(x_zero_point=3, y_zero_point=-1, out_min=-128, out_max=127)


class Builder:
    """A graph node by node; output types come from each op's shape inference."""

    def __init__(self):
        self.graph = Graph("g")

    def input(self, name: str, dtype: str, shape, quant: QuantParams | None = None) -> str:
        self.graph.add_tensor(Tensor(name, dtype, tuple(shape), quant=quant))
        self.graph.inputs.append(name)
        return name

    def const(self, name: str, data) -> str:
        return self.graph.add_constant(name, np.asarray(data)).name

    def op(self, op: str, inputs: list[str], attrs=None, name: str | None = None) -> str:
        cls = get_op(op)
        attrs = cls.Attrs() if attrs is None else attrs
        types = [TensorType(self.graph.tensor(t).dtype, self.graph.tensor(t).shape) if t else None for t in inputs]
        (out,) = cls.infer(attrs, types)
        name = name or f"{op}{len(self.graph)}"
        self.graph.add_tensor(Tensor(name + ".out", out.dtype, out.shape))
        self.graph.add_node(Node(name, op, list(inputs), [name + ".out"], attrs))
        return name + ".out"

    def gemm(self, x: str, w, name: str | None = None) -> str:
        w = w if isinstance(w, str) else self.const("w", np.asarray(w, np.int8))
        n = self.graph.tensor(w).shape[0]
        return self.op("QGemm", [x, w,
                                 self.const("bias", np.arange(n, dtype=np.int32)),
                                 self.const("m", np.full(n, 1 << 30, np.int32)),
                                 self.const("n", np.full(n, 20, np.int32))], GEMM, name)

    def done(self, *outputs: str) -> Graph:
        self.graph.outputs.extend(outputs)
        nnc.verify(self.graph)
        return self.graph


W = np.array([[1, 0, -3, 7], [0, 0, 0, 2], [-7, 1, 1, 1]], np.int8)


def gemm_reshape_lut() -> Graph:
    b = Builder()
    x = b.input("x", "i8", (1, 4), QuantParams((0.5,), (3,)))
    y = b.gemm(x, W, "fc")
    z = b.op("Reshape", [y], ReshapeAttrs((3,)), "flat")
    return b.done(b.op("QLut", [z, b.const("table", np.arange(-128, 128, dtype=np.int8))], name="lut"))


def test_tensor_table_and_layer_operands():
    program = to_program(gemm_reshape_lut())
    names = [t.name for t in program.tensors]
    assert names == ["x", "bias", "m", "n", "fc.out", "flat.out", "table", "lut.out"]  # no "w"
    fc, flat, lut = program.layers
    assert (fc.op, fc.inputs, fc.outputs, fc.weights) == ("QGemm", (0, -1, 1, 2, 3), (4,), 0)
    assert (flat.inputs, flat.outputs, lut.inputs, lut.outputs) == ((4,), (5,), (5, 6), (7,))
    assert fc.params == {"x_zero_point": 3, "y_zero_point": -1, "out_min": -128, "out_max": 127, "out_dtype": I8}
    assert flat.params == {"shape": (3,)} and lut.params == {}
    assert (program.inputs, program.outputs, program.name) == ((0,), (7,), "g")
    x, bias = program.tensors[0], program.tensors[1]
    assert (x.dtype, x.shape, x.scale, x.zero_point, x.data) == (I8, (1, 4), (0.5,), (3,), None)
    assert (bias.offset, bias.data) == (-1, np.arange(3, dtype="<i4").tobytes())


def test_weights_become_a_stream_packed_at_their_natural_width():
    (stream,) = to_program(gemm_reshape_lut()).streams
    packed = packing.pack(W)
    assert stream == WeightStream(packed.format, packed.bits, (3, 4), packed.payload)
    np.testing.assert_array_equal(packing.decode(stream.payload, stream.bits, stream.format, 12).reshape(3, 4), W)


@pytest.mark.parametrize("choice", packing.FORMAT_NAMES)
def test_pack_forces_a_format(choice):
    (stream,) = to_program(gemm_reshape_lut(), pack=choice).streams
    format = packing.FORMAT_NAMES[choice]
    assert (stream.format, stream.bits) == (format, packing.natural_bits(W, format))
    np.testing.assert_array_equal(packing.decode(stream.payload, stream.bits, format, 12).reshape(3, 4), W)


def test_unknown_pack_is_refused():
    with pytest.raises(ValueError, match="unknown packing 'zip'"):
        to_program(gemm_reshape_lut(), pack="zip")


def test_views_share_bytes_and_live_tensors_do_not_overlap():
    program = to_program(gemm_reshape_lut())
    x, y, z, out = (program.tensors[i] for i in (0, 4, 5, 7))
    assert y.offset == z.offset  # the Reshape is a view
    assert y.offset >= x.offset + 4 or x.offset >= y.offset + 3  # x is read while y is written
    assert program.activation_bytes >= max(t.offset + math.prod(t.shape) for t in (x, y, out))
    assert read_blob(write_blob(program)) == program  # the reader's overlap check agrees


def test_shared_weights_share_one_stream():
    b = Builder()
    w, x = b.const("w", W), b.input("x", "i8", (1, 4))
    program = to_program(b.done(b.gemm(x, w, "fc1"), b.gemm(x, w, "fc2")))
    assert [layer.weights for layer in program.layers] == [0, 0] and len(program.streams) == 1


def test_params_encode_bools_enums_dtypes_and_integral_floats():
    b = Builder()
    x = b.input("x", "i8", (1, 4, 4, 2))
    pooled = b.op("MaxPool", [x], PoolAttrs((2, 2), (2, 2), (0, 0, 0, 0), (1, 1), False, True), "pool")
    clipped = b.op("Clip", [pooled], ClipAttrs(0.0, None), "clip")
    padded = b.op("Pad", [clipped], PadAttrs((0, 1, 1, 0, 0, 1, 1, 0), "edge", 0.0), "pad")
    pool, clip, pad = to_program(b.done(padded)).layers
    assert pool.params == {"kernel_shape": (2, 2), "strides": (2, 2), "pads": (0, 0, 0, 0),
                           "dilations": (1, 1), "ceil_mode": 0, "channels_last": 1}
    assert clip.params == {"min": 0}  # max None is omitted
    assert pad.params == {"pads": (0, 1, 1, 0, 0, 1, 1, 0), "mode": 2, "value": 0}


def test_one_error_lists_every_node_the_chip_cannot_run():
    b = Builder()
    x = b.input("x", "i8", (1, 4))
    half = b.op("Clip", [x], ClipAttrs(0.5, 6.0), "halfclip")
    f = b.input("f", "f32", (1, 4))
    graph = b.done(half, b.op("Relu", [f], name="relu"),
                   b.op("Clip", [f], ClipAttrs(0.0, 6.0), "floatclip"))
    with pytest.raises(nnc.UnsupportedError) as error:
        to_program(graph)
    message = str(error.value)
    assert message.startswith("the az-sim target cannot compile 3 node(s)")
    assert "Clip node 'halfclip': attribute min = 0.5" in message
    assert "Relu node 'relu': the chip does not run Relu" in message
    assert "Clip node 'floatclip': input 0 ('f') is f32" in message


def test_weights_outside_the_symmetric_range_are_refused():
    b = Builder()
    graph = b.done(b.gemm(b.input("x", "i8", (1, 4)), np.full((3, 4), -128, np.int8), "fc"))
    with pytest.raises(nnc.UnsupportedError, match="QGemm node 'fc': weights 'w' hold -128"):
        to_program(graph)


def test_lowering_is_deterministic():
    assert to_program(gemm_reshape_lut()) == to_program(gemm_reshape_lut())


# -- the MLPerf models ---------------------------------------------------------------
def integer_graph(name: str) -> Graph:
    pipeline = f"{CANONICAL},quantize{{calib=\"{MODELS_DIR / (name + '.io.npz')}\"}}"
    return PassManager(parse_pipeline(pipeline)).run(nnc.load(MODELS_DIR / f"{name}.onnx"))


@requires_models
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_mlperf_programs_mirror_their_graphs(name):
    graph = integer_graph(name)
    program = to_program(graph)
    nodes = graph.nodes()
    assert [(layer.name, layer.op) for layer in program.layers] == [(n.name, n.op) for n in nodes]
    for node, layer in zip(nodes, program.layers):
        if layer.weights >= 0:
            stream, expected = program.streams[layer.weights], graph.tensor(node.inputs[1]).data
            decoded = packing.decode(stream.payload, stream.bits, stream.format, expected.size)
            np.testing.assert_array_equal(decoded.reshape(stream.shape), expected)
    assert program == integer_program(name)


@requires_models
@pytest.mark.parametrize("name", [n for n in ("ad_autoencoder_int8_qdq", "kws_dscnn_f32", "sww_int8_qdq")
                                  if n in MODEL_NAMES])
def test_simulator_on_the_blob_matches_the_reference(name):
    from nnc.backends.azsim.simulator import simulate

    graph = integer_graph(name)
    program = read_blob(write_blob(to_program(graph)))
    inputs = {graph.inputs[0]: np.load(MODELS_DIR / f"{name}.io.npz")["input"]}
    outputs, _ = simulate(program, inputs)
    for key, expected in nnc.run(graph, inputs).items():
        np.testing.assert_array_equal(outputs[key], expected)
