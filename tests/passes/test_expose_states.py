"""expose-states: recurrent states become graph inputs/outputs, and running a
sequence chunk by chunk through them equals one run over the whole sequence."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from nnc.errors import UnsupportedError
from nnc.frontend.onnx_loader import lower_model
from nnc.interpreter import run
from nnc.passmanager import PassManager, parse_pipeline
from nnc.textir import parse_ir, print_ir
from nnc.verifier import verify

RNG = np.random.default_rng(11)
HIDDEN, FEATURES = 5, 3


def _lstm_model(initial_h: np.ndarray | None = None, direction: str = "forward"):
    """X [T, 1, F] -> LSTM -> Y (all steps) and Y_h unused; T symbolic."""
    d = 2 if direction == "bidirectional" else 1
    inits = [numpy_helper.from_array(RNG.standard_normal((d, 4 * HIDDEN, n)).astype(np.float32) * 0.5, name)
             for name, n in (("W", FEATURES), ("R", HIDDEN))]
    inputs = ["x", "W", "R", "", "", ""]
    if initial_h is not None:
        inits.append(numpy_helper.from_array(initial_h, "h0"))
        inputs[5] = "h0"
    node = helper.make_node("LSTM", inputs, ["y"], name="lstm", hidden_size=HIDDEN, direction=direction)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["T", 1, FEATURES])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["T", d, 1, HIDDEN])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _exposed(model, frames: int):
    graph = lower_model(model, {"x": (frames, 1, FEATURES)})
    graph = PassManager(parse_pipeline("expose-states")).run(graph)
    verify(graph)
    return graph


def test_states_become_inputs_and_outputs():
    graph = _exposed(_lstm_model(np.zeros((1, 1, HIDDEN), np.float32)), 4)
    assert graph.inputs == ["x", "lstm.h_in", "lstm.c_in"]
    assert graph.outputs == ["y", "lstm.h_out", "lstm.c_out"]
    assert graph.states == [("lstm.h_in", "lstm.h_out"), ("lstm.c_in", "lstm.c_out")]
    assert parse_ir(print_ir(graph)).states == graph.states
    for name in ("lstm.h_in", "lstm.c_in", "lstm.h_out", "lstm.c_out"):
        assert graph.tensor(name).shape == (1, 1, HIDDEN)
    assert "h0" not in graph.tensors


def test_chunks_equal_one_run():
    model = _lstm_model()
    x = RNG.standard_normal((6, 1, FEATURES)).astype(np.float32)
    (whole,) = run(lower_model(model, {"x": (6, 1, FEATURES)}), {"x": x}).values()
    graph = _exposed(model, 2)
    h = c = np.zeros((1, 1, HIDDEN), np.float32)
    pieces = []
    for start in range(0, 6, 2):
        out = run(graph, {"x": x[start:start + 2], "lstm.h_in": h, "lstm.c_in": c})
        pieces.append(out["y"])
        h, c = out["lstm.h_out"], out["lstm.c_out"]
    # float states cross chunk boundaries as float32 (the run keeps float64 inside)
    np.testing.assert_allclose(np.concatenate(pieces), whole, rtol=0, atol=1e-6)


@pytest.mark.parametrize("direction", ["reverse", "bidirectional"])
def test_backward_recurrence_is_refused(direction):
    with pytest.raises(UnsupportedError, match=f"a {direction} recurrence needs the whole sequence"):
        _exposed(_lstm_model(direction=direction), 3)


def test_nonzero_initial_state_is_refused():
    with pytest.raises(UnsupportedError, match="non-zero constant"):
        _exposed(_lstm_model(np.ones((1, 1, HIDDEN), np.float32)), 2)
