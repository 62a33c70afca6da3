"""QLSTM, QGRU and QRNN through the C target: quantized one-node models built
with gcc and clang (-Werror, ASan/UBSan), bit-exact with the reference
interpreter (docs/numerics.md §15), in both layouts, every direction, with
constant and run-time initial states, Y_h and the int16 Y_c (GRU with linear_before_reset = 0
and forward QRNN run in the end-to-end tests, tests/test_recurrent_e2e.py).
The float LSTM, GRU and RNN (`--no-quantize`) likewise, within the float parity
tolerance, with peepholes, input_forget, clip and other activations."""

from __future__ import annotations

import pytest
from c_testing import check_graph
from rnn_models import Spec, integer_graph, model, samples, split_samples

from nnc.frontend.onnx_loader import lower_model

CASES = {
    "lstm-bidirectional-layout1-input-states-clip": Spec("LSTM", steps=6, batch=2, inputs=5, hidden=7,
                                                         direction="bidirectional", layout=1, states="input",
                                                         outputs=("Y", "Y_h", "Y_c"),
                                                         attrs={"clip": 1.5}),
    "gru-linear-before-reset-reverse-const-states": Spec("GRU", steps=6, batch=3, inputs=5, hidden=6,
                                                         direction="reverse", states="const", outputs=("Y_h",),
                                                         attrs={"linear_before_reset": 1}),
    "rnn-bidirectional-layout1": Spec("RNN", steps=6, batch=2, inputs=5, hidden=6, direction="bidirectional",
                                      layout=1, states="input"),
}


@pytest.mark.parametrize("spec", CASES.values(), ids=CASES.keys())
def test_recurrent_ops(spec, tmp_path):
    m = model(spec)
    stacked = {k: v * (1.0 if k == "X" else 0.4) for k, v in samples(m, 3).items()}
    _, graph = integer_graph(m, tmp_path, stacked)
    assert "Q" + spec.op in {n.op for n in graph.nodes()}
    check_graph(graph, tmp_path, split_samples(stacked))


FLOAT_CASES = {
    "lstm-bidirectional-layout1-peepholes-clip": Spec("LSTM", steps=5, batch=2, inputs=4, hidden=6,
                                                      direction="bidirectional", layout=1, states="input",
                                                      outputs=("Y", "Y_h", "Y_c"), peepholes=True,
                                                      attrs={"clip": 1.5}),
    "lstm-input-forget-activations": Spec("LSTM", steps=4, batch=1, inputs=3, hidden=5, direction="reverse",
                                          states="const", outputs=("Y_h", "Y_c"),
                                          attrs={"input_forget": 1,
                                                 "activations": ["HardSigmoid", "Softsign", "ScaledTanh"],
                                                 "activation_alpha": [0.3, 0.8], "activation_beta": [0.4, 1.2]}),
    "gru-linear-before-reset-reverse": Spec("GRU", steps=5, batch=3, inputs=4, hidden=6, direction="reverse",
                                            states="const", outputs=("Y", "Y_h"), attrs={"linear_before_reset": 1}),
    "gru-bidirectional-layout1": Spec("GRU", steps=5, batch=2, inputs=4, hidden=6, direction="bidirectional",
                                      layout=1, states="input"),
    "rnn-relu-elu-bidirectional": Spec("RNN", steps=5, batch=2, inputs=4, hidden=6, direction="bidirectional",
                                       attrs={"activations": ["Relu", "Elu"], "activation_alpha": [0.7]}),
    "rnn-leaky-softplus-layout1": Spec("RNN", steps=4, batch=2, inputs=3, hidden=5, direction="bidirectional",
                                      layout=1, attrs={"activations": ["LeakyRelu", "Softplus"],
                                                       "activation_alpha": [0.2]}),
}


@pytest.mark.parametrize("spec", FLOAT_CASES.values(), ids=FLOAT_CASES.keys())
def test_float_recurrent_ops(spec, tmp_path):
    m = model(spec)
    graph = lower_model(m, {})
    assert [n.op for n in graph.nodes()] == [spec.op]
    check_graph(graph, tmp_path, split_samples(samples(m, 3)))
