"""LSTM, GRU and RNN quantized to QLSTM, QGRU, QRNN (docs/numerics.md §15):
int8 vs float cosine on random data for every direction, layout and kind of
initial state, the calibrated cell scale, the table primitives, and the cases
the integer rule refuses."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from rnn_models import Spec, cosine, integer_graph, model, samples, split_samples

from nnc.errors import UnsupportedError
from nnc.interpreter import run
from nnc.numerics import round_shift
from nnc.ops import get_op
from nnc.ops.qrecurrent import SUM_LIMIT, bounded_shift, lookup
from nnc.quantizer.recurrent_plan import cell_frac
from nnc.quantizer.rules_recurrent import activation_table

MIN_COSINE = 0.99


def int8_cosine(spec: Spec, tmp_path, seed: int = 0) -> tuple[float, object]:
    """Cosine of the integer graph's outputs to the float graph's on the
    calibration samples (initial states drawn in the range h and c take)."""
    m = model(spec, seed)
    stacked = samples(m, 6, seed + 1)
    stacked = {k: v * (0.4 if k != "X" else 1.0) for k, v in stacked.items()}
    float_graph, int_graph = integer_graph(m, tmp_path, stacked)
    got, want = [], []
    for sample in split_samples(stacked):
        got += [v for v in run(int_graph, sample).values()]
        want += [v for v in run(float_graph, sample).values()]
    return cosine(np.concatenate([g.ravel() for g in got]), np.concatenate([w.ravel() for w in want])), int_graph


@pytest.mark.parametrize("spec", [
    Spec("LSTM", steps=12, hidden=16, inputs=6),
    Spec("LSTM", steps=12, hidden=16, inputs=6, direction="bidirectional", layout=1, states="input"),
    Spec("LSTM", steps=12, hidden=16, inputs=6, direction="reverse", states="const", attrs={"clip": 2.0}),
    Spec("LSTM", steps=12, hidden=16, inputs=6, states="input", outputs=("Y", "Y_h", "Y_c")),
    Spec("GRU", steps=12, hidden=16, inputs=6, direction="bidirectional", states="const"),
    Spec("GRU", steps=12, hidden=16, inputs=6, layout=1, states="input", attrs={"linear_before_reset": 1}),
    Spec("RNN", steps=12, hidden=16, inputs=6, direction="reverse", states="input"),
    Spec("RNN", steps=12, hidden=16, inputs=6, attrs={"activations": ["Sigmoid"]}),
], ids=lambda s: f"{s.op}-{s.direction}-layout{s.layout}-{s.states}-{'-'.join(map(str, s.attrs))}")
def test_int8_matches_float(spec, tmp_path):
    score, graph = int8_cosine(spec, tmp_path)
    ops = {n.op for n in graph.nodes()}
    assert "Q" + spec.op in ops and spec.op not in ops
    assert score >= MIN_COSINE, score


def test_cell_scale_covers_the_observed_cell(tmp_path):
    """F = 15 − ⌈log2 max|c|⌉ from every c_t of the calibration samples, so the
    int16 cell holds each of them."""
    spec = Spec("LSTM", steps=12, hidden=8, inputs=4, weight_scale=1.5)
    m = model(spec)
    stacked = samples(m, 6, 1)
    float_graph, int_graph = integer_graph(m, tmp_path, stacked)
    (lstm,) = [n for n in float_graph.nodes() if n.op == "LSTM"]
    args = [float_graph.tensor(t).data if t else None for t in lstm.inputs]
    peak = max(np.abs(get_op("LSTM").evaluate(lstm.attrs, [sample["X"], *args[1:]])[3]).max()
               for sample in split_samples(stacked))
    (node,) = [n for n in int_graph.nodes() if n.op == "QLSTM"]
    assert node.attrs.cell_frac == cell_frac(-peak, peak) < 15
    assert peak * 2.0 ** node.attrs.cell_frac <= 32768 < 2 * peak * 2.0 ** node.attrs.cell_frac
    assert cell_frac(-3.0, 2.0) == 13 and cell_frac(0.0, 0.4) == 15 and cell_frac(-1e6, 0.0) == 0


def test_table_interpolation():
    """Exact at the 513 grid points; within 2 LSB of round(f · 2^15) in between."""
    table, peak = activation_table("Sigmoid", 0.0, 0.0)
    assert peak <= 1.0 and table.dtype == np.int16
    grid = np.arange(-32768, 32768, 128, dtype=np.int64)
    np.testing.assert_array_equal(lookup(table.astype(np.int64), grid), table[:512])
    q = np.arange(-32768, 32768, dtype=np.int64)
    y = lookup(table.astype(np.int64), q)
    exact = np.rint(32768.0 / (1.0 + np.exp(-q / 4096.0)))
    assert np.abs(y - exact).max() <= 2
    assert np.all(np.diff(y) >= 0)
    assert round_shift(np.int64(-3), 1) == -1  # half up: the one rounding function


@pytest.mark.parametrize("change,match", [
    (dict(peepholes=True), "peepholes"),
    (dict(attrs={"input_forget": 1}), "input_forget"),
    (dict(op="RNN", attrs={"activations": ["Relu"]}), "unbounded"),
    (dict(op="GRU", attrs={"activations": ["Sigmoid", "ScaledTanh"], "activation_alpha": [2.0]}), "Q0.15"),
])
def test_refusals(change, match, tmp_path):
    spec = dataclasses.replace(Spec("LSTM", steps=4, hidden=4, inputs=3), **change)
    m = model(spec)
    with pytest.raises(UnsupportedError, match=match) as info:
        integer_graph(m, tmp_path, samples(m, 2))
    assert "'rnn'" in str(info.value)


@pytest.mark.parametrize("op", ["LSTM", "GRU"])
def test_states_fed_back_keep_every_bit(op, tmp_path):
    """Graph-input initial states and final-state outputs (streaming) cross the
    boundary exactly: h in Y's int8 parameters, c as int16 at the cell's scale,
    so the final states of one run, fed to the next, are the integers the op held."""
    outputs = ("Y", "Y_h", "Y_c") if op == "LSTM" else ("Y", "Y_h")
    spec = Spec(op, steps=8, hidden=8, inputs=4, states="input", outputs=outputs)
    m = model(spec)
    stacked = {k: v * (1.0 if k == "X" else 0.4) for k, v in samples(m, 4).items()}
    _, graph = integer_graph(m, tmp_path, stacked)
    (node,) = [n for n in graph.nodes() if n.op == "Q" + op]
    assert not any(n.op == "Requantize" for n in graph.nodes())
    states = {"h0": node.outputs[1], "c0": node.outputs[2] if op == "LSTM" else None}
    sample = split_samples(stacked)[0]
    held = {}
    first = run(graph, sample, observe=held.__setitem__)
    fed = dict(sample, h0=first["Y_h"], **({"c0": first["Y_c"]} if op == "LSTM" else {}))
    seen = {}
    run(graph, fed, observe=seen.__setitem__)
    for state, final in states.items():
        if final:
            index = 7 if state == "h0" else 8
            np.testing.assert_array_equal(seen[node.inputs[index]], held[final])
    if op == "LSTM":
        assert graph.tensor(node.outputs[2]).dtype == "i16" and graph.tensor(node.inputs[8]).dtype == "i16"


def test_gate_shift_keeps_sums_in_round_shift_domain():
    """n is the largest shift (<= 53) whose mantissas stay below 2^31 and whose sum
    of bound · mantissa stays below 2^62: with accumulators near 2^31 that bound,
    not the mantissas, decides."""
    reals = [np.array([1e-7, 5e-8]), np.array([1e-7, 2e-8])]
    (_, _), free = bounded_shift(reals, [np.array([1000, 1000])] * 2)
    assert free == 53
    reals = [np.array([1e-6]), np.array([1e-6])]
    large = [np.array([(1 << 31) - 1])] * 2
    assert bounded_shift(reals, [np.array([1])] * 2)[1] == 50  # the mantissas alone allow 50
    (m_x, m_h), n = bounded_shift(reals, large)
    assert n == 49 and np.all(large[0] * m_x + large[1] * m_h < SUM_LIMIT)
    assert bounded_shift([np.array([2.0 ** 31])], [np.array([1])]) is None
