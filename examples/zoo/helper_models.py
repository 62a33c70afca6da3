"""Zoo families built with onnx.helper, so part of the zoo exists where
PyTorch is not installed. Each builder takes a seeded numpy generator and
returns an opset-17 model; the same seed gives the same bytes.

They mirror their PyTorch namesakes in shape and purpose but are written the
way other tools emit them, to widen what the zoo exercises: the keyword
spotter reads the LSTM's last state Y_h rather than a slice of Y, the
predictor feeds int64 tokens to a Gather and squeezes Y's direction axis,
and the dynamic-batch CNN flattens through the Shape -> Gather -> Concat ->
Reshape chain of a symbolic batch.
"""

from __future__ import annotations

import itertools

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
VOCAB, JOINT = 29, 32


class Graph:
    """Nodes and initializers of one model under construction."""

    def __init__(self, rng: np.random.Generator):
        self.rng, self.nodes, self.inits = rng, [], []
        self._ids = itertools.count()

    def const(self, array: np.ndarray) -> str:
        name = f"w{next(self._ids)}"
        self.inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def uniform(self, bound: float, *shape: int) -> str:
        return self.const(self.rng.uniform(-bound, bound, shape).astype(np.float32))

    def node(self, op: str, inputs: list[str], outputs: int | list[str] = 1, **attrs) -> list[str]:
        names = outputs if isinstance(outputs, list) else [f"{op.lower()}{next(self._ids)}" for _ in range(outputs)]
        self.nodes.append(helper.make_node(op, inputs, names, name=f"{op}_{names[0]}", **attrs))
        return names

    def linear(self, x: str, cin: int, cout: int, output: str | None = None) -> str:
        bound = cin ** -0.5
        out = [output] if output else 1
        return self.node("Gemm", [x, self.uniform(bound, cout, cin), self.uniform(bound, cout)], out, transB=1)[0]

    def lstm(self, x: str, features: int, hidden: int) -> list[str]:
        """A layout-0 LSTM (ONNX gate order i, o, f, c) with outputs Y and Y_h
        (onnxruntime, nnc's float truth, refuses layout 1)."""
        bound = hidden ** -0.5
        weights = [self.uniform(bound, 1, 4 * hidden, features), self.uniform(bound, 1, 4 * hidden, hidden),
                   self.uniform(bound, 1, 8 * hidden)]
        return self.node("LSTM", [x, *weights], 2, hidden_size=hidden)

    def model(self, name: str, inputs: list, outputs: list) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, name, inputs, outputs, self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="nnc-zoo")
        onnx.checker.check_model(model)
        return model


def _value(name: str, shape: list, dtype=TensorProto.FLOAT) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, dtype, shape)


def kws_lstm(rng: np.random.Generator, hidden: int = 32) -> onnx.ModelProto:
    """mfcc [1, 49, 10] -> Transpose -> LSTM -> Y_h [1, 1, H] -> Reshape -> Gemm -> logits [1, 12]."""
    g = Graph(rng)
    _, last = g.lstm(g.node("Transpose", ["mfcc"], perm=[1, 0, 2])[0], 10, hidden)
    flat = g.node("Reshape", [last, g.const(np.array([1, hidden], np.int64))])[0]
    g.linear(flat, hidden, 12, "logits")
    return g.model("kws_lstm", [_value("mfcc", [1, 49, 10])], [_value("logits", [1, 12])])


def rnnt_predictor(rng: np.random.Generator, embed: int = 16, hidden: int = 32) -> onnx.ModelProto:
    """tokens int64 [1, 4] -> Gather (embedding) -> LSTM (layout 0) -> MatMul + Add -> pred [1, 4, 32]."""
    g = Graph(rng)
    vectors = g.node("Gather", [g.const(rng.standard_normal((VOCAB, embed)).astype(np.float32)), "tokens"])[0]
    steps = g.node("Transpose", [vectors], perm=[1, 0, 2])[0]
    y, _ = g.lstm(steps, embed, hidden)
    y = g.node("Squeeze", [y, g.const(np.array([1], np.int64))])[0]
    y = g.node("Transpose", [y], perm=[1, 0, 2])[0]
    bound = hidden ** -0.5
    y = g.node("MatMul", [y, g.uniform(bound, hidden, JOINT)])[0]
    g.node("Add", [y, g.uniform(bound, JOINT)], ["pred"])
    return g.model("rnnt_predictor", [_value("tokens", [1, 4], TensorProto.INT64)], [_value("pred", [1, 4, JOINT])])


def rnnt_joint(rng: np.random.Generator) -> onnx.ModelProto:
    """enc [1, 32], pred [1, 32] -> Gemm each -> Add -> Tanh -> Gemm -> logits [1, 29]."""
    g = Graph(rng)
    hidden = g.node("Add", [g.linear("enc", JOINT, JOINT), g.linear("pred", JOINT, JOINT)])[0]
    g.linear(g.node("Tanh", [hidden])[0], JOINT, VOCAB, "logits")
    return g.model("rnnt_joint", [_value("enc", [1, JOINT]), _value("pred", [1, JOINT])],
                   [_value("logits", [1, VOCAB])])


def _conv_relu_pool(g: Graph, x: str, cin: int, cout: int) -> str:
    weight = g.const((g.rng.standard_normal((cout, cin, 3, 3)) * (2 / (9 * cin)) ** 0.5).astype(np.float32))
    y = g.node("Conv", [x, weight, g.uniform(0.1, cout)], kernel_shape=[3, 3], pads=[1, 1, 1, 1])[0]
    y = g.node("Relu", [y])[0]
    return g.node("MaxPool", [y], kernel_shape=[2, 2], strides=[2, 2])[0]


def dynamic_batch_cnn(rng: np.random.Generator) -> onnx.ModelProto:
    """image [N, 3, 32, 32] -> (Conv, Relu, MaxPool) x 2 -> Reshape to [N, -1]
    with N read by Shape -> Gather -> Unsqueeze -> Concat -> Gemm -> logits [N, 10]."""
    g = Graph(rng)
    y = _conv_relu_pool(g, _conv_relu_pool(g, "image", 3, 8), 8, 16)
    batch = g.node("Gather", [g.node("Shape", ["image"])[0], g.const(np.array(0, np.int64))], axis=0)[0]
    batch = g.node("Unsqueeze", [batch, g.const(np.array([0], np.int64))])[0]
    shape = g.node("Concat", [batch, g.const(np.array([-1], np.int64))], axis=0)[0]
    g.linear(g.node("Reshape", [y, shape])[0], 16 * 8 * 8, 10, "logits")
    return g.model("dynamic_batch_cnn", [_value("image", ["N", 3, 32, 32])], [_value("logits", ["N", 10])])
