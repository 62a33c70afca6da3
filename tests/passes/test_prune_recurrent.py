"""prune-channels on LSTM, GRU and RNN layers: hidden units go from every gate
and direction, the removed units' settled output is folded into what reads
it, and a unit that was constant leaves the outputs unchanged."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from nnc.passes.prune_channels import plan
from nnc.textir import print_ir

from pass_testing import build
from test_prune_channels import assert_same_outputs, channel_warnings, node, prune

RNG = np.random.default_rng(11)
GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
HIDDEN, STEPS = 6, 5


def randn(*shape, scale=0.5) -> np.ndarray:
    return (RNG.standard_normal(shape) * scale).astype(np.float32)


def recurrent_weights(op: str, inputs: int, dirs: int, dead=(), read_dead=False):
    """W, R, B of a layer whose units `dead` have zero W and R rows and a state
    that is constant from the first step (LSTM: forget gate bias -30; GRU:
    update gate bias -30); unless `read_dead`, no unit reads them through R."""
    g, h = GATES[op], HIDDEN
    w, r, b = randn(dirs, g * h, inputs), randn(dirs, g * h, h), randn(dirs, 2 * g * h)
    for j in dead:
        rows = [k * h + j for k in range(g)]
        w[:, rows], r[:, rows] = 0, 0
        if not read_dead:
            r[:, :, j] = 0
        if op in ("LSTM", "GRU"):
            gate = 2 if op == "LSTM" else 0  # LSTM i, o, f, c: f; GRU z, r, h: z
            b[:, gate * h + j], b[:, (g + gate) * h + j] = -30, 0
    b[1:] = b[:1] if dead else b[1:]  # both directions settle alike: the mean they carry is exact
    return w, r, b


def head_model(op="LSTM", dead=(1, 4), direction="forward", read_dead=False, extra=None):
    """x [T, 1, 3] -> op (H 6) -> Y [T, D, 1, 6] -> Reshape [T, D*6] -> Gemm (4) -> y."""
    dirs = 2 if direction == "bidirectional" else 1
    w, r, b = recurrent_weights(op, 3, dirs, dead, read_dead)
    attrs = {"linear_before_reset": 1} if extra == "lbr" else {}
    nodes = [helper.make_node(op, ["x", "w", "r", "b"], ["y_seq"], name="rnn", hidden_size=HIDDEN,
                              direction=direction, **attrs),
             helper.make_node("Reshape", ["y_seq", "shape"], ["flat"]),
             helper.make_node("Gemm", ["flat", "wf", "bf"], ["y"], name="fc", transB=1)]
    constants = {"w": w, "r": r, "b": b, "shape": np.int64([STEPS, dirs * HIDDEN]),
                 "wf": randn(4, dirs * HIDDEN), "bf": randn(4)}
    return build(nodes, {"x": [STEPS, 1, 3]}, {"y": [STEPS, 4]}, constants)


@pytest.mark.parametrize("op, extra", [("LSTM", None), ("GRU", None), ("GRU", "lbr"), ("RNN", None)])
def test_constant_units_go_and_the_output_stays(op, extra):
    graph = head_model(op, extra=extra)
    after = prune(graph, 'prune-channels{overrides="fc:0",ratio=0.34}')
    rnn = node(after, "rnn")
    assert rnn.attrs.hidden_size == 4
    assert after.tensor(rnn.inputs[1]).shape == (1, GATES[op] * 4, 3)
    assert after.tensor(rnn.inputs[2]).shape == (1, GATES[op] * 4, 4)
    assert after.tensor(rnn.inputs[3]).shape == (1, 2 * GATES[op] * 4)
    assert after.tensor("flat").shape == (STEPS, 4)
    assert after.tensor(node(after, "fc").inputs[1]).shape == (4, 4)
    assert_same_outputs(graph, after)


def test_a_bidirectional_layer_loses_the_unit_in_both_directions():
    graph = head_model("LSTM", direction="bidirectional")
    after = prune(graph, 'prune-channels{overrides="fc:0",ratio=0.34}')
    assert after.tensor("y_seq").shape == (STEPS, 2, 1, 4) and after.tensor("flat").shape == (STEPS, 8)
    assert_same_outputs(graph, after)


def test_what_the_other_units_read_of_a_removed_one_goes_into_their_recurrent_bias():
    """Units that read the removed ones through R read their settled h, folded
    into the recurrent bias. A constant initial state that starts the removed
    units there makes it exact at every step (it loses their entries too)."""
    dead, h = (1, 4), HIDDEN
    w, r, b = recurrent_weights("LSTM", 3, 1, dead, read_dead=True)
    pre = (b[0, :4 * h] + b[0, 4 * h:]).astype(np.float64)
    sigmoid = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    h0, c0 = randn(1, 1, h), randn(1, 1, h)
    for j in dead:  # i, o, f, c: f is near 0, so c = i·g and h = o·tanh(c)
        h0[0, 0, j] = sigmoid(pre[h + j]) * np.tanh(sigmoid(pre[j]) * np.tanh(pre[3 * h + j]))
    nodes = [helper.make_node("LSTM", ["x", "w", "r", "b", "", "h0", "c0"], ["y_seq"], name="rnn", hidden_size=h),
             helper.make_node("Reshape", ["y_seq", "shape"], ["flat"]),
             helper.make_node("Gemm", ["flat", "wf", "bf"], ["y"], name="fc", transB=1)]
    constants = {"w": w, "r": r, "b": b, "h0": h0, "c0": c0, "shape": np.int64([STEPS, h]), "wf": randn(4, h),
                 "bf": randn(4)}
    graph = build(nodes, {"x": [STEPS, 1, 3]}, {"y": [STEPS, 4]}, constants)
    after = prune(graph, 'prune-channels{overrides="fc:0",ratio=0.34}')
    rnn = node(after, "rnn")
    assert after.tensor(rnn.inputs[5]).shape == after.tensor(rnn.inputs[6]).shape == (1, 1, 4)
    kept_rows = [k * h + j for k in range(4) for j in range(h) if j not in dead]
    assert not np.allclose(after.tensor(rnn.inputs[3]).data[0, 16:], b[0, 4 * h:][kept_rows])  # the fold
    assert_same_outputs(graph, after)


def test_a_stacked_layer_loses_the_input_columns():
    """LSTM -> LSTM (time-first, one direction: Y squeezed by a Reshape) -> Gemm."""
    w1, r1, b1 = recurrent_weights("LSTM", 3, 1, dead=(0, 3))
    w2, r2, b2 = recurrent_weights("LSTM", HIDDEN, 1)
    nodes = [helper.make_node("LSTM", ["x", "w1", "r1", "b1"], ["y1"], name="lstm1", hidden_size=HIDDEN),
             helper.make_node("Reshape", ["y1", "s3"], ["x2"]),
             helper.make_node("LSTM", ["x2", "w2", "r2", "b2"], ["y2"], name="lstm2", hidden_size=HIDDEN),
             helper.make_node("Reshape", ["y2", "s2"], ["flat"]),
             helper.make_node("Gemm", ["flat", "wf", "bf"], ["y"], name="fc", transB=1)]
    constants = {"w1": w1, "r1": r1, "b1": b1, "w2": w2, "r2": r2, "b2": b2, "s3": np.int64([STEPS, 1, HIDDEN]),
                 "s2": np.int64([STEPS, HIDDEN]), "wf": randn(4, HIDDEN), "bf": randn(4)}
    graph = build(nodes, {"x": [STEPS, 1, 3]}, {"y": [STEPS, 4]}, constants)
    after = prune(graph, 'prune-channels{overrides="lstm2:0,fc:0",ratio=0.34}')
    assert node(after, "lstm1").attrs.hidden_size == 4 and node(after, "lstm2").attrs.hidden_size == HIDDEN
    assert after.tensor(node(after, "lstm2").inputs[1]).shape == (1, 4 * HIDDEN, 4)
    assert_same_outputs(graph, after)


@pytest.mark.parametrize("take", ["gather", "slice"])
def test_the_last_step_taken_by_gather_or_slice_passes_the_units(take):
    """A keyword spotter's classifier reads y[-1] (Gather) or y[-1:] (Slice)."""
    w, r, b = recurrent_weights("GRU", 3, 1, dead=(2,))
    pick = helper.make_node("Gather", ["y_seq", "last"], ["h"], axis=0) if take == "gather" else \
        helper.make_node("Slice", ["y_seq", "start", "end"], ["h"])
    nodes = [helper.make_node("GRU", ["x", "w", "r", "b"], ["y_seq"], name="rnn", hidden_size=HIDDEN), pick,
             helper.make_node("Reshape", ["h", "shape"], ["flat"]),
             helper.make_node("Gemm", ["flat", "wf", "bf"], ["y"], name="fc", transB=1)]
    constants = {"w": w, "r": r, "b": b, "last": np.int64(STEPS - 1), "start": np.int64([STEPS - 1]),
                 "end": np.int64([STEPS]), "shape": np.int64([1, HIDDEN]), "wf": randn(4, HIDDEN), "bf": randn(4)}
    graph = build(nodes, {"x": [STEPS, 1, 3]}, {"y": [1, 4]}, constants)
    after = prune(graph, 'prune-channels{overrides="fc:0",ratio=0.2}')
    assert node(after, "rnn").attrs.hidden_size == 5
    assert_same_outputs(graph, after)


def test_a_conv_front_end_feeding_an_lstm():
    """CRNN: Conv1d features -> Transpose to [T, B, C] -> LSTM: the Conv's dead
    channels go from the LSTM's input columns, their constant into its bias."""
    wc = randn(6, 2, 3)
    wc[[1, 5]] = 0
    w, r, b = recurrent_weights("LSTM", 6, 1)
    nodes = [helper.make_node("Conv", ["x", "wc", "bc"], ["c"], name="conv", pads=[1, 1]),
             helper.make_node("Transpose", ["c"], ["t"], perm=[2, 0, 1]),
             helper.make_node("LSTM", ["t", "w", "r", "b"], ["y_seq"], name="rnn", hidden_size=HIDDEN),
             helper.make_node("Reshape", ["y_seq", "shape"], ["flat"]),
             helper.make_node("Gemm", ["flat", "wf", "bf"], ["y"], name="fc", transB=1)]
    constants = {"wc": wc, "bc": randn(6), "w": w, "r": r, "b": b, "shape": np.int64([STEPS, HIDDEN]),
                 "wf": randn(4, HIDDEN), "bf": randn(4)}
    graph = build(nodes, {"x": [1, 2, STEPS]}, {"y": [STEPS, 4]}, constants)
    after = prune(graph, 'prune-channels{overrides="rnn:0,fc:0",ratio=0.34}')
    assert after.tensor(node(after, "rnn").inputs[1]).shape == (1, 4 * HIDDEN, 4)
    assert_same_outputs(graph, after)


def test_state_inputs_and_outputs_keep_the_units():
    """A streaming model's state is a graph input or output: its size is the
    interface, so the layer keeps its units (a warning says why)."""
    w, r, b = recurrent_weights("GRU", 3, 1)
    nodes = [helper.make_node("GRU", ["x", "w", "r", "b", "", "h0"], ["y_seq", "h_n"], name="rnn", hidden_size=HIDDEN),
             helper.make_node("Reshape", ["y_seq", "shape"], ["flat"]),
             helper.make_node("Gemm", ["flat", "wf", "bf"], ["y"], name="fc", transB=1)]
    constants = {"w": w, "r": r, "b": b, "shape": np.int64([STEPS, HIDDEN]), "wf": randn(4, HIDDEN), "bf": randn(4)}
    graph = build(nodes, {"x": [STEPS, 1, 3], "h0": [1, 1, HIDDEN]}, {"y": [STEPS, 4], "h_n": [1, 1, HIDDEN]},
                  constants)
    assert "initial state 'h0'" in plan(graph, node(graph, "rnn"), 0.5)
    (warning,) = channel_warnings(graph)
    assert "'rnn' (the initial state 'h0' of GRU 'rnn' is not a float constant)" in warning
    assert print_ir(prune(graph, "prune-channels{ratio=0.5}")) == print_ir(graph)


def test_a_layer_without_bias_gets_one_of_its_new_size():
    """An RNN with Sigmoid units and no B: the removed units settle at
    sigmoid(0) = 0.5, which the other units read through R, so the fold
    creates B; it must have the pruned size."""
    w, r, _ = recurrent_weights("RNN", 3, 1, dead=(2,), read_dead=True)
    nodes = [helper.make_node("RNN", ["x", "w", "r"], ["y_seq"], name="rnn", hidden_size=HIDDEN,
                              activations=["Sigmoid"]),
             helper.make_node("Reshape", ["y_seq", "shape"], ["flat"]),
             helper.make_node("Gemm", ["flat", "wf", "bf"], ["y"], name="fc", transB=1)]
    constants = {"w": w, "r": r, "shape": np.int64([STEPS, HIDDEN]), "wf": randn(4, HIDDEN), "bf": randn(4)}
    graph = build(nodes, {"x": [STEPS, 1, 3]}, {"y": [STEPS, 4]}, constants)
    after = prune(graph, 'prune-channels{overrides="fc:0",ratio=0.2}')
    rnn = node(after, "rnn")
    assert rnn.attrs.hidden_size == 5 and after.tensor(rnn.inputs[3]).shape == (1, 2 * 5)


def test_peepholes_keep_the_units():
    w, r, b = recurrent_weights("LSTM", 3, 1)
    nodes = [helper.make_node("LSTM", ["x", "w", "r", "b", "", "", "", "p"], ["y_seq"], name="rnn",
                              hidden_size=HIDDEN),
             helper.make_node("Reshape", ["y_seq", "shape"], ["y"])]
    graph = build(nodes, {"x": [STEPS, 1, 3]}, {"y": [STEPS, HIDDEN]},
                  {"w": w, "r": r, "b": b, "p": randn(1, 3 * HIDDEN), "shape": np.int64([STEPS, HIDDEN])})
    assert "peepholes" in plan(graph, node(graph, "rnn"), 0.5)


def test_a_layer_whose_y_only_the_final_state_is_read_loses_its_units():
    """A keyword spotter reads Y_h alone (Y is ""): the units still go; the
    pass used to stop at the unused Y with "unknown tensor ''"."""
    w, r, b = recurrent_weights("LSTM", 3, 1, dead=(1, 4))
    nodes = [helper.make_node("LSTM", ["x", "w", "r", "b"], ["", "h"], name="rnn", hidden_size=HIDDEN),
             helper.make_node("Reshape", ["h", "shape"], ["flat"]),
             helper.make_node("Gemm", ["flat", "wf", "bf"], ["y"], name="fc", transB=1)]
    graph = build(nodes, {"x": [STEPS, 1, 3]}, {"y": [1, 4]},
                  {"w": w, "r": r, "b": b, "shape": np.int64([1, HIDDEN]), "wf": randn(4, HIDDEN), "bf": randn(4)})
    after = prune(graph, 'prune-channels{overrides="fc:0",ratio=0.34}')
    assert node(after, "rnn").attrs.hidden_size == 4 and after.tensor("flat").shape == (1, 4)
    assert_same_outputs(graph, after)
