"""QLSTM, QGRU and QRNN through the C target: quantized one-node models built
with gcc and clang (-Werror, ASan/UBSan), bit-exact with the reference
interpreter (docs/numerics.md §15), in both layouts, every direction, with
constant and run-time initial states, Y_h and the int16 Y_c (GRU with linear_before_reset = 0
and forward QRNN run in the end-to-end tests, tests/test_recurrent_e2e.py)."""

from __future__ import annotations

import pytest
from c_testing import check_graph
from rnn_models import Spec, integer_graph, model, samples, split_samples

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
