"""nnc.train's twin: the exact mode equals the compiled targets bit for bit on
every model of the training test set, export keeps the compression asked for,
training is deterministic and moves the one-shot result back toward the float
model."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from onnx import helper

torch = pytest.importorskip("torch", reason="nnc.train needs PyTorch (pip install 'nnc[train]')")

import nnc  # noqa: E402
from nnc.backends import get_target  # noqa: E402
from nnc.errors import OptionError, TrainingError, UnsupportedError  # noqa: E402
from nnc.frontend.onnx_loader import load  # noqa: E402
from nnc.layer_select import weighted_layers  # noqa: E402
from nnc.train import Compression, export, prepare, save  # noqa: E402
from nnc.train import loop  # noqa: E402
from nnc.train.distill import logits  # noqa: E402
from nnc.train.export import integer_graph  # noqa: E402
from nnc.train.loop import FitOptions, fit  # noqa: E402
from nnc.textir import parse_ir, print_ir  # noqa: E402
from nnc.train.compression import UnitPlan  # noqa: E402
from nnc.train.twin import Twin, int8_rows  # noqa: E402

from graphs import (activations_graph, attention_graph, ctc_graph, embedding_predictor_graph,  # noqa: E402
                    frame_head_graph, keyword_spotter_graph, onnx_graph, pool_concat_graph, recurrent_pair_graph,
                    residual_graph, residual_lstm_graph, separable_graph, std_pooling_graph, tied_residual_graph,
                    weights)

DIGITS = "examples/digits/digits.onnx"
MODELS = {"digits": lambda: DIGITS, "digits_channels": lambda: DIGITS,
          "tiny_cnn": lambda: "examples/01-tiny-cnn/tiny_cnn.onnx",
          "residual": residual_graph, "tied_residual": tied_residual_graph, "pool_concat": pool_concat_graph, "activations": activations_graph,
          "frame_head": frame_head_graph, "attention": attention_graph,
          "kws_lstm": lambda: keyword_spotter_graph("LSTM"), "kws_gru": lambda: keyword_spotter_graph("GRU"),
          "kws_lstm_units": lambda: keyword_spotter_graph("LSTM"), "separable": separable_graph,
          "ctc_lstm": ctc_graph,
          "kws_rnn_bidirectional": lambda: keyword_spotter_graph("RNN", "bidirectional"),
          "predictor": embedding_predictor_graph}
# each model of the set with a setting that exercises another quantizer or mask
CASES = {"digits": Compression(weight_bits=4, sparsity=0.75),
         "digits_channels": Compression(weight_bits=4, prune_channels=0.5, sparsity=0.5),
         "tiny_cnn": Compression(weight_bits=2, codebook=True),
         "residual": Compression(weight_bits=4, sparsity_pattern="2:4"),
         "tied_residual": Compression(weight_bits=4, prune_channels=0.5),  # channels tied through the Add
         "pool_concat": Compression(weight_bits=3, sparsity=0.5),
         "activations": Compression(weight_bits=2),
         "frame_head": Compression(weight_bits=4, sparsity=0.5),
         "attention": Compression(weight_bits=4),
         "kws_lstm": Compression(weight_bits=4, sparsity=0.5),  # recurrent W, R: int8 per row, dense
         "kws_gru": Compression(weight_bits=3),
         "kws_lstm_units": Compression(weight_bits=4, prune_channels=0.5),  # hidden units go while training
         "separable": Compression(weight_bits=4, prune_channels=0.5),  # a depthwise layer between pruned ones
         "ctc_lstm": Compression(weight_bits=4),  # log probabilities [T, tokens]: no leading batch of 1
         "kws_rnn_bidirectional": Compression(weight_bits=4),
         "predictor": Compression(weight_bits=4)}  # an embedding table's lookup at the table's parameters


def _data(model, count: int, seed: int) -> dict[str, np.ndarray]:
    """Uniform [-1, 1) floats, or token ids below 12 for an integer input."""
    graph = load(model) if isinstance(model, str) else model
    rng = np.random.default_rng(seed)
    return {name: rng.integers(0, 12, shape) if graph.tensor(name).dtype == "i64" else
            rng.uniform(-1, 1, shape).astype(np.float32)
            for name, shape in ((n, (count, *graph.tensor(n).shape[1:])) for n in graph.inputs)}


def _trained(name: str, epochs: int = 1):
    model = MODELS[name]()
    data = _data(model, 64, 1)
    twin = prepare(model, CASES[name], calib=data)
    fit(twin, data, options=FitOptions(epochs=epochs, batch_size=32, holdout=0.25))
    return twin


def _exact(twin, data: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    twin.eval().set_mode("exact")
    with torch.no_grad():
        out = twin({name: torch.from_numpy(x) for name, x in data.items()})
    out = out if isinstance(out, dict) else {twin.graph.outputs[0]: out}
    return {name: value.numpy() for name, value in out.items()}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_exact_twin_equals_the_compiled_targets(name, tmp_path):
    twin = _trained(name)
    data = _data(twin.graph, 24, 2)
    expected = _exact(twin, data)
    model = save(export(twin), tmp_path / f"{name}.nnir")
    samples = [{k: v[i:i + 1] for k, v in data.items()} for i in range(24)]
    for target in ("c", "az-sim"):
        result = nnc.compile(model, target, tmp_path / target, verify=False)
        stem = next(a.rsplit(".", 1)[0] for a in result.artifacts if a.endswith((".c", ".azb")))
        with get_target(target, None).runner(result.graph, tmp_path / target, stem) as run:
            outputs = run(samples)
        for output, values in expected.items():
            got = np.concatenate([o[output] for o in outputs])
            assert got.dtype == values.dtype and np.array_equal(got, values.reshape(got.shape)), (target, output)


def test_a_graph_that_moves_the_batch_axis_runs_sample_by_sample():
    """The attention block's q, k, v come out of a Transpose that moves axis 0:
    the twin runs each sample alone at the IR's shapes, as the reference does."""
    from nnc.interpreter import run

    graph = attention_graph()
    twin = prepare(graph, Compression(weight_bits=4), calib=_data(graph, 8, 1), mode="float")
    assert "Transpose" in twin.sample_by_sample and "axis 0" in twin.sample_by_sample
    data = _data(graph, 6, 3)
    with torch.no_grad():
        got = twin(torch.from_numpy(data["x"])).numpy()
    want = np.concatenate([run(twin.graph, {"x": data["x"][i:i + 1]})["y"] for i in range(6)])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert prepare(residual_graph(), calib=_data(residual_graph(), 4, 1)).sample_by_sample is None


@pytest.mark.parametrize("name", ["attention", "kws_lstm", "predictor"])
def test_sample_by_sample_runs_vectorized_as_the_loop_does(name, monkeypatch):
    """torch.func.vmap over the samples gives the loop's outputs, gradients and
    range updates exactly; an op vmap cannot batch falls back to the loop."""
    graph = MODELS[name]()
    data = {k: torch.from_numpy(v).float() for k, v in _data(graph, 16, 4).items()}
    runs = []
    for vectorized in (True, False):
        twin = prepare(graph, CASES[name], calib={k: v.numpy() for k, v in data.items()})
        assert twin.sample_by_sample
        twin.train().set_mode("train")
        twin._vectorized = vectorized
        out = twin(data)
        out = out if isinstance(out, dict) else {"out": out}
        sum(v.sum() for v in out.values()).backward()
        runs.append((out, [p.grad for p in twin.parameters() if p.grad is not None],
                     [q.range.clone() for q in twin.activations.values()]))
        assert twin._vectorized == vectorized
    (out_v, grads_v, ranges_v), (out_l, grads_l, ranges_l) = runs
    assert all(torch.equal(out_v[k], out_l[k]) for k in out_l)
    assert len(grads_v) == len(grads_l) and all(torch.allclose(a, b, rtol=1e-5, atol=1e-4)  # summation order
                                                for a, b in zip(grads_v, grads_l))
    assert all(torch.equal(a, b) for a, b in zip(ranges_v, ranges_l))

    def refuse(*args, **kwargs):
        raise RuntimeError("Batching rule not implemented")

    fallback, loop = (prepare(graph, CASES[name], calib={k: v.numpy() for k, v in data.items()})
                      for _ in range(2))
    monkeypatch.setattr(fallback, "_run_vectorized", refuse)
    loop._vectorized = False
    with torch.no_grad():
        got, want = (twin.eval().set_mode("train")(data) for twin in (fallback, loop))
    assert not fallback._vectorized
    assert all(torch.equal(a, b) for a, b in zip(*(x.values() if isinstance(x, dict) else [x] for x in (got, want))))


def test_hidden_units_channel_pruning_removes_leave_the_exported_graph():
    """prune-channels on a keyword spotter's LSTM: the twin masks the units
    nnc's pass would remove (how many) gradually, and export removes the ones
    its mask ended on, with the head's input columns."""
    twin = _trained("kws_lstm_units", epochs=2)
    assert twin.unit_plans == {"rnn": UnitPlan(4, ("rnn",))}
    removed = np.flatnonzero(twin.units("rnn").numpy() == 0)
    assert len(removed) == 4
    graph = export(twin)
    (lstm,) = [n for n in graph.nodes() if n.op == "LSTM"]
    assert lstm.attrs.hidden_size == 4 and graph.tensor(lstm.inputs[1]).shape == (1, 16, 10)
    (head,) = [n for n in graph.nodes() if n.op == "Gemm"]
    assert graph.tensor(graph.producer(head.inputs[1]).inputs[0]).shape[0] == 4  # [K, N] int8 behind its DQ


def test_a_depthwise_layer_loses_only_the_channels_of_its_input():
    """Its channels follow the conv before it: it gets no mask of its own (it
    had one, ranked by its own norms, so twice the channels went), and the
    train mode's outputs stay close to what the targets compute."""
    graph = separable_graph()
    data = _data(graph, 64, 1)
    twin = prepare(graph, CASES["separable"], calib=data)
    assert twin.layer_plans["depthwise"].rule.channels == 0 and twin.layer_plans["conv"].rule.channels == 4
    twin.set_progress(1.0)
    x = torch.from_numpy(_data(graph, 32, 2)["x"])
    with torch.no_grad():
        trained, exact = (twin.eval().set_mode(mode)(x) for mode in ("train", "exact"))
    assert float(torch.nn.functional.cosine_similarity(trained.flatten(), exact.flatten(), dim=0)) > 0.99


@pytest.mark.parametrize("kind", ["stacked", "tied", "residual"])
def test_pruned_hidden_units_train_as_they_export(kind):
    """Stacked LSTM -> GRU: both lose half their units, and the exported model
    computes what train mode trained (every layer's removed units silenced
    before any is cut: cutting the first used to fold into the second's
    biases, 0.25 apart on outputs of 0.76). Two LSTMs whose final states an
    Add ties, or a residual stack, lose the same units, ranked by their
    summed norms (export used to fail on them)."""
    graph = residual_lstm_graph() if kind == "residual" else recurrent_pair_graph(kind == "tied")
    data = _data(graph, 64, 1)
    twin = prepare(graph, Compression(prune_channels=0.5), calib=data)
    tied = kind != "stacked"
    group = ("first", "second") if tied else None
    assert twin.unit_plans == {name: UnitPlan(4, group or (name,)) for name in ("first", "second")}
    twin.set_progress(1.0)
    assert not tied or torch.equal(twin.units("first"), twin.units("second"))
    exported = {n.name: n.attrs.hidden_size for n in export(twin).nodes() if n.op in ("LSTM", "GRU")}
    assert exported == {"first": 4, "second": 4}
    x = torch.from_numpy(data["x"])
    with torch.no_grad():
        trained, exact = (twin.eval().set_mode(mode)(x) for mode in ("train", "exact"))
    assert float((trained - exact).abs().max()) < 0.02 * float(trained.abs().max())


def test_a_stacked_layer_s_int8_rows_leave_out_the_columns_of_removed_units():
    """The compile quantizes the second layer's W after its input columns that
    read the first layer's removed units are cut; train mode takes its row
    scales from the same columns (it used to take them from all of them)."""
    graph = recurrent_pair_graph(False)
    twin = prepare(graph, Compression(prune_channels=0.5), calib=_data(graph, 64, 1))
    twin.set_progress(1.0)
    kept = np.flatnonzero(twin.units("first").numpy() == 1)
    second = twin.graph.node("second")
    rows = (np.arange(3)[:, None] * 8 + np.flatnonzero(twin.units("second").numpy() == 1)).reshape(-1)  # 3 gates
    with torch.no_grad():
        trained = twin._recurrent_weights(second, 1, "train")[:, rows][..., kept]
    exported = export(twin)
    w = exported.constant(exported.node("second").inputs[1])
    assert w.shape[-1] == len(kept) == 4
    compiled = int8_rows(torch.from_numpy(w))  # compile's rows: the scales of the columns left
    assert torch.equal(trained, compiled)
    assert not torch.equal(int8_rows(twin.recurrent_weight(second.inputs[1]).detach())[:, rows][..., kept], compiled)


def test_a_model_of_recurrent_weights_alone_trains():
    """No Conv, Gemm or MatMul: export used to take the twin for uncalibrated."""
    graph = parse_ir(print_ir(recurrent_pair_graph(False)))
    graph.outputs[:] = [next(n.outputs[1] for n in graph.nodes() if n.name == "second")]
    data = _data(graph, 32, 1)
    twin = prepare(graph, Compression(), calib=data)
    fit(twin, data, options=FitOptions(epochs=1, batch_size=16, holdout=0.25))
    assert twin.calibrated and not twin.quantizers and [n.op for n in export(twin).nodes()].count("GRU") == 1


def test_export_keeps_the_compression_asked_for():
    settings = {"4bit_75": Compression(weight_bits=4, sparsity=0.75),
                "codebook2": Compression(weight_bits=2, codebook=True, sparsity=0.5),
                "2of4": Compression(weight_bits=4, sparsity_pattern="2:4")}
    data = _data(DIGITS, 64, 3)
    for setting, compression in settings.items():
        twin = prepare(DIGITS, compression, calib=data)
        fit(twin, data, options=FitOptions(epochs=1, batch_size=32))
        graph = export(twin)
        for layer in weighted_layers(twin.graph):
            rule = twin.layer_plans[layer.name].rule
            q = graph.constant(graph.producer(graph.node(layer.name).inputs[1]).inputs[0])
            assert q.dtype == np.int8, setting
            if setting == "4bit_75":
                assert np.abs(q).max() <= 7
            if setting == "codebook2":
                assert len(np.unique(q[q != 0])) <= (3 if rule.prunes else 4)
            if setting == "2of4" and rule.prunes:
                rows = q.reshape(q.shape[0], -1)
                groups = rows[:, :rows.shape[1] // 4 * 4].reshape(q.shape[0], -1, 4)
                assert np.all(np.count_nonzero(groups, axis=2) <= 2)
            if rule.prunes and not rule.pattern:
                assert np.count_nonzero(q == 0) >= round(rule.target * q.size)


def test_channel_masks_leave_the_exported_graph():
    twin = _trained("digits_channels", epochs=2)
    graph = export(twin)
    for layer, kept in (("conv1", 8), ("conv2", 16), ("conv3", 8)):
        weights = graph.producer(graph.node(layer).inputs[1]).inputs[0]
        assert graph.tensor(weights).shape[0] == kept, layer
    fc = graph.producer(graph.node("fc").inputs[1]).inputs[0]
    assert graph.tensor(fc).shape == (10, 128)


def test_tied_layers_mask_the_same_channels_and_leave_the_graph_together():
    """A residual block's stem and last conv are ranked by their summed L1 norm
    (as prune-channels ranks them), so export removes half of both; ranked
    apart they masked different channels and export could remove only the
    channels both had masked."""
    twin = _trained("tied_residual")
    assert twin.layer_plans["Conv_0"].tied == twin.layer_plans["Conv_4"].tied == ("Conv_0", "Conv_4")
    assert np.array_equal(twin.keep("Conv_0").numpy().any(axis=(1, 2, 3)), twin.keep("Conv_4").numpy().any(axis=(1, 2, 3)))
    graph = export(twin)
    for layer in ("Conv_0", "Conv_2", "Conv_4"):
        assert graph.tensor(graph.producer(graph.node(layer).inputs[1]).inputs[0]).shape[0] == 4, layer


def test_layers_nnc_keeps_dense_stay_dense():
    twin = prepare(DIGITS, Compression(weight_bits=4, sparsity=0.75), calib=_data(DIGITS, 16, 0))
    plans = twin.layer_plans
    assert plans["conv1"].rule.target == 0  # a 3x3 kernel over one input channel: nnc's prune pass keeps it dense
    assert all(plans[n].rule.target == pytest.approx(0.75, abs=1e-3) for n in ("conv2", "conv3", "fc"))


def test_fine_tuning_recovers_the_one_shot_loss():
    sys.path.insert(0, "examples/digits")
    from dataset import split

    d = split()
    twin = prepare(DIGITS, Compression(weight_bits=4, sparsity=0.75), calib="examples/digits/calib.npz")
    test = {"image": d.x_test}
    twin.set_progress(1.0)
    one_shot = np.mean(_exact(twin, test)["logits"].argmax(1) == d.y_test)
    fit(twin, {"image": d.x_train}, d.y_train, FitOptions(epochs=6))
    tuned = np.mean(_exact(twin, test)["logits"].argmax(1) == d.y_test)
    assert one_shot < 0.95 and tuned >= 0.965 and tuned > one_shot + 0.04, (one_shot, tuned)


def test_the_one_shot_start_is_kept_when_training_only_makes_it_worse(monkeypatch):
    """A loss that pushes the model away from its teacher (the distillation
    loss negated): every epoch scores below the one-shot start, which fit keeps,
    masks and all, so its exact outputs are the one-shot ones."""
    graph = frame_head_graph()
    data = _data(graph, 32, 1)
    twin = prepare(graph, Compression(weight_bits=4, sparsity=0.5), calib=data)
    twin.set_progress(1.0)
    before = _exact(twin, data)
    step = loop._step
    monkeypatch.setattr(loop, "_step", lambda *args: -step(*args))
    result = fit(twin, data, options=FitOptions(epochs=2, lr=0.05, batch_size=8, holdout=0.25))
    assert result.best is result.start and result.best.epoch == 0 and result.best.loss is None
    assert all(epoch.score < result.start.score for epoch in result.history)
    after = _exact(twin, data)
    assert all(np.array_equal(after[name], before[name]) for name in before)


def test_patience_counts_from_the_best_epoch_not_from_the_one_shot_start(monkeypatch):
    """Epochs that climb but stay below the one-shot score run to the end (the
    start does not use up the patience); the start is kept at the end."""
    scores = iter([0.9, 0.5, 0.6, 0.7, 0.8])  # the start, then four epochs

    def scripted(twin, held, epoch, loss, final, seconds):
        return loop.Epoch(epoch + 1, loss, next(scores), None, None, True, seconds)

    monkeypatch.setattr(loop, "_evaluate", scripted)
    graph = frame_head_graph()
    data = _data(graph, 16, 1)
    twin = prepare(graph, Compression(weight_bits=4), calib=data)
    result = fit(twin, data, options=FitOptions(epochs=4, patience=1, batch_size=8, holdout=0.25))
    assert [e.score for e in result.history] == [0.5, 0.6, 0.7, 0.8]
    assert result.best is result.start and result.start.score == 0.9


def test_training_is_deterministic():
    texts = []
    for _ in range(2):
        twin = _trained("residual")
        texts.append(nnc.print_ir(export(twin)))
    assert texts[0] == texts[1]


def test_exact_mode_carries_straight_through_gradients():
    twin = _trained("digits")
    data = {"image": torch.from_numpy(_data(DIGITS, 8, 5)["image"])}
    twin.eval().set_mode("exact")  # eval: the activation ranges stay as they are between the two calls
    out = twin(data)
    with torch.no_grad():
        exact = twin(data)
    assert torch.equal(out.detach(), exact)
    out.square().sum().backward()
    grad = twin.weight("conv2").grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_a_log_softmax_head_trains_and_runs_exactly():
    """A CTC-style head (LogSoftmax over the classes of every frame): its output
    is read as logits as it is; exact mode equals nnc's reference interpreter on
    the compiled graph (QLogSoftmax) and carries the train mode's gradients, the
    float log_softmax's through the fake-quantized output."""
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"]), helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("MatMul", ["r", "w2"], ["logits"]),
             helper.make_node("LogSoftmax", ["logits"], ["y"], axis=-1)]
    model = onnx_graph("ctc_head", nodes, {"x": [1, 6, 12]}, {"y": [1, 6, 9]}, weights(7, w1=(12, 16), w2=(16, 9)))
    data = _data(model, 64, 1)
    twin = prepare(model, Compression(weight_bits=4), calib=data)
    fit(twin, data, options=FitOptions(epochs=1, batch_size=32, holdout=0.25))
    x = torch.from_numpy(_data(model, 8, 2)["x"])
    exact = torch.from_numpy(_exact(twin, {"x": x.numpy()})["y"])
    graph = integer_graph(twin)
    assert "QLogSoftmax" in {n.op for n in graph.nodes()}
    for i in range(len(x)):
        assert np.array_equal(nnc.run(graph, {"x": x[i:i + 1].numpy()})["y"], exact[i:i + 1].numpy())
    weight = twin.weight(weighted_layers(twin.graph)[0].name)
    probe = torch.from_numpy(np.random.default_rng(3).standard_normal(exact.shape).astype(np.float32))
    weight.grad = None
    out = twin.set_mode("exact")(x)
    assert torch.equal(out.detach(), exact) and logits(twin.graph, "y", out) is out
    (out * probe).sum().backward()
    through_exact, weight.grad = weight.grad, None
    (twin.set_mode("train")(x) * probe).sum().backward()
    assert torch.equal(through_exact, weight.grad)
    assert torch.isfinite(through_exact).all() and through_exact.abs().sum() > 0


def test_bad_options_and_models_are_refused():
    with pytest.raises(OptionError, match="^weight_bits must be in 2..8, got 9"):
        Compression(weight_bits=9)
    with pytest.raises(OptionError, match="sparsity-pattern"):
        Compression(sparsity_pattern="4:2")
    with pytest.raises(OptionError, match="epochs"):
        FitOptions(epochs=0)
    total = parse_ir('graph "g" {\n  input %x: f32[1,5]\n'
                     '  %y: f32[1,5] = CumSum "running_total" (%x) {axis=1}\n  output %y\n}\n')
    with pytest.raises(UnsupportedError, match="running_total.*CumSum"):  # (canonicalize lowers CumSum)
        Twin(total)
    time_major = parse_ir('graph "g" {\n  input %x: f32[6,1,10]\n  %y: f32[6,1,10] = Relu "r" (%x) {}\n'
                          '  output %y\n}\n')
    with pytest.raises(UnsupportedError, match="input 'x' has shape \\[6, 1, 10\\]"):
        prepare(time_major, Compression(), calib=np.zeros((2, 6, 1, 10), np.float32))


def test_standard_deviation_of_a_dead_channel_trains_to_finite_weights():
    """torch.std's gradient at std 0 is 0; the twin's Sqrt follows it, where a
    plain sqrt's infinite slope times a zero deviation would give NaN."""
    model = std_pooling_graph()
    data = _data(model, 64, 2)
    twin = prepare(model, Compression(weight_bits=4), calib=data)
    fit(twin, data, options=FitOptions(epochs=2, batch_size=32, holdout=0.25))
    assert all(torch.isfinite(p).all() for p in twin.parameters())


def test_a_loss_that_is_not_finite_is_a_training_error(monkeypatch):
    w = np.random.default_rng(6).standard_normal((8, 6)).astype(np.float32)
    nan_first = onnx_graph("sqrt_of_negative", [helper.make_node("Gemm", ["x", "w"], ["g"]),
                                                helper.make_node("Sqrt", ["g"], ["y"])], {"x": [1, 8]}, {"y": [1, 6]},
                           {"w": w})
    data = _data(nan_first, 64, 3)
    twin = prepare(nan_first, Compression(weight_bits=4), calib=data)
    with pytest.raises(TrainingError, match="cannot start: the loss is NaN or infinite on the first batch"):
        fit(twin, data, options=FitOptions(epochs=2, batch_size=16))
    # a loss that becomes NaN later is a divergence: the hint is the learning rate
    model = MODELS["activations"]()
    twin = prepare(model, Compression(weight_bits=4), calib=_data(model, 64, 3))
    steps = iter(range(100))
    real_step = loop._step
    monkeypatch.setattr(loop, "_step", lambda *a: real_step(*a) * (np.nan if next(steps) == 2 else 1.0))
    with pytest.raises(TrainingError, match=r"diverged: the loss became NaN or infinite at step 3 of 12; "
                                            r"lower the learning rate \(lr, now 0.001\)$") as caught:
        fit(twin, _data(model, 64, 3), options=FitOptions(epochs=3, batch_size=16, lr=1e-3))
    assert caught.value.cli.endswith("lower the learning rate (--lr, now 0.001)")  # what nnc finetune prints


def test_recurrent_weights_train_on_the_grid_the_quantize_pass_stores():
    """int8_rows(w) is what rules_recurrent stores for W and R: q · s with the
    int8 per-row q and s of quantize_weights (an all-zero row included)."""
    from nnc.quantizer.weights import quantize_weights
    from nnc.train.twin import int8_rows

    w = np.random.default_rng(8).standard_normal((2, 12, 5)).astype(np.float32)
    w[1, 3] = 0.0
    q, scales = quantize_weights(w.reshape(-1, 5), 0)
    want = (q.astype(np.float32) * scales[:, None]).reshape(w.shape)
    assert np.array_equal(int8_rows(torch.from_numpy(w)).numpy(), want)


def test_fine_tuning_wins_back_what_pruning_half_an_lstm_loses(tmp_path):
    """A PyTorch LSTM (exported time-major) loses half its hidden units: the
    one-shot model falls far, training brings it back near the float model,
    measured on the test images through the integers the targets run. The
    LSTM is the training benchmark's row_lstm, trained here for 10 epochs."""
    sys.path[:0] = ["examples/digits", "benchmarks"]
    from dataset import split
    from training import float_accuracy, train_unseen

    d = split()
    model = train_unseen("row_lstm", d, 10, tmp_path)
    twin = prepare(model, Compression(prune_channels=0.5), calib={"image": d.x_train[:64]})
    assert twin.unit_plans == {"/lstm/LSTM": UnitPlan(16, ("/lstm/LSTM",))}
    test = {"image": d.x_test}
    twin.set_progress(1.0)
    one_shot = np.mean(_exact(twin, test)["logits"].argmax(1) == d.y_test)
    fit(twin, {"image": d.x_train}, d.y_train, FitOptions(epochs=6, threads=1))
    tuned = np.mean(_exact(twin, test)["logits"].argmax(1) == d.y_test)
    # on this machine: float 0.88, one-shot 0.50, fine-tuned 0.84
    float_top1 = float_accuracy(model, d.x_test, d.y_test)
    assert one_shot < 0.65 and tuned > one_shot + 0.2 and tuned > float_top1 - 0.1, (float_top1, one_shot, tuned)
