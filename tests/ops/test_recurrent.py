"""Float LSTM, GRU and RNN: nnc's reference semantics (loaded through the ONNX
front end and run by the interpreter) against onnxruntime, for every direction,
layout and kind of initial state, output subsets, clip, activations with
parameters, peepholes, input_forget, linear_before_reset, sequence_lens and a
two-layer stack."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper
from rnn_models import OPSET, Spec, feeds, model, node_parts, ort_run, ort_spec

from nnc.errors import UnsupportedError
from nnc.frontend.onnx_loader import lower_model
from nnc.interpreter import run


def check(m, seed: int = 1, want_from=None) -> None:
    """nnc's outputs of model `m` equal onnxruntime's (`want_from(inputs)` when
    given, else `m` run by onnxruntime)."""
    inputs = feeds(m, seed)
    want = want_from(inputs) if want_from else ort_run(m, inputs)
    graph = lower_model(m, {})
    got = run(graph, inputs)
    assert list(got) == [o.name for o in m.graph.output]
    for g, w in zip(got.values(), want):
        assert g.dtype == w.dtype and g.shape == w.shape
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=2e-6)


@pytest.mark.parametrize("op,direction,layout,states", itertools.product(
    ("LSTM", "GRU", "RNN"), ("forward", "reverse", "bidirectional"), (0, 1), ("none", "const", "input")))
def test_matches_onnxruntime(op, direction, layout, states):
    outputs = ("Y", "Y_h", "Y_c") if op == "LSTM" else ("Y", "Y_h")
    spec = Spec(op, direction=direction, layout=layout, states=states, outputs=outputs)
    check(model(spec), want_from=lambda inputs: ort_spec(spec, 0, inputs))


@pytest.mark.parametrize("op,outputs", [("LSTM", ("Y",)), ("LSTM", ("Y_h",)), ("LSTM", ("Y_c",)),
                                        ("LSTM", ("Y_h", "Y_c")), ("GRU", ("Y_h",)), ("RNN", ("Y_h",))])
def test_output_subsets(op, outputs):
    check(model(Spec(op, outputs=outputs, states="const")))


@pytest.mark.parametrize("op,attrs", [
    ("LSTM", {"clip": 0.7}),
    ("GRU", {"clip": 0.5, "linear_before_reset": 1}),
    ("GRU", {"linear_before_reset": 1}),
    ("RNN", {"activations": ["Relu"]}),
    ("RNN", {"activations": ["LeakyRelu"], "activation_alpha": [0.1]}),
    ("LSTM", {"activations": ["HardSigmoid", "Tanh", "Softsign"], "activation_alpha": [0.3],
              "activation_beta": [0.4]}),
    ("GRU", {"activations": ["sigmoid", "ScaledTanh"], "activation_alpha": [0.9], "activation_beta": [1.1]}),
    ("RNN", {"activations": ["Elu", "Softplus"], "activation_alpha": [0.8], "direction": "bidirectional"}),
    ("LSTM", {"input_forget": 1}),
])
def test_attributes(op, attrs):
    attrs = dict(attrs)
    direction = attrs.pop("direction", "forward")
    check(model(Spec(op, direction=direction, attrs=attrs, outputs=("Y", "Y_h"))))


def test_peepholes_and_sequence_lens():
    check(model(Spec("LSTM", direction="bidirectional", peepholes=True, sequence_lens=True, states="const",
                     outputs=("Y", "Y_h", "Y_c"))))


def test_ragged_sequence_lens_are_refused():
    m = model(Spec("GRU", sequence_lens=True))
    lens = next(i for i in m.graph.initializer if i.name == "lens")
    lens.CopyFrom(numpy_helper.from_array(np.array([5, 3], np.int32), "lens"))
    with pytest.raises(UnsupportedError, match="ragged"):
        lower_model(m, {})


def test_two_layer_stack():
    """The pattern torch.nn.LSTM(num_layers=2) exports: LSTM -> Squeeze(axis 1) -> LSTM."""
    rng = np.random.default_rng(3)
    first = Spec("LSTM", steps=6, inputs=3, hidden=5, states="const")
    second = dataclasses.replace(first, inputs=5)
    inits1, _, names1 = node_parts(first, rng, "X", "l0_")
    inits2, _, names2 = node_parts(second, rng, "s", "l1_")
    axes = numpy_helper.from_array(np.array([1], np.int64), "axes")
    nodes = [helper.make_node("LSTM", names1, ["y0"], name="l0", hidden_size=5),
             helper.make_node("Squeeze", ["y0", "axes"], ["s"], name="sq"),
             helper.make_node("LSTM", names2, ["Y", "Y_h"], name="l1", hidden_size=5)]
    graph = helper.make_graph(
        nodes, "stack", [helper.make_tensor_value_info("X", TensorProto.FLOAT, first.x_shape())],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, second.y_shape()),
         helper.make_tensor_value_info("Y_h", TensorProto.FLOAT, second.state_shape())],
        [*inits1, *inits2, axes])
    check(helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=10))
