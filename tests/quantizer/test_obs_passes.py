"""Method obs in the compression passes (prune, prune-channels, quantize), the
layer rules of the prune pass, the driver's method option, and bit-exact parity
of an obs-compressed model on every target."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from nnc import hessian
from nnc.driver import CompileOptions, default_pipeline
from nnc.errors import NncWarning, OptionError
from nnc.interpreter import run
from nnc.layer_select import weighted_layers
from nnc.passmanager import parse_pipeline
from nnc.sensitivity import analyze
from nnc.verifier import verify
from e2e import compile_everywhere
from qmodels import Builder, canonical

MIXING = np.random.default_rng(4).standard_normal((6, 3 * 8 * 8)).astype(np.float32)


def images(count: int, seed: int) -> np.ndarray:
    """[count, 1, 3, 8, 8] inputs whose pixels share a few factors (as real images do)."""
    rng = np.random.default_rng(seed)
    flat = rng.standard_normal((count, 6)) @ MIXING + 0.2 * rng.standard_normal((count, MIXING.shape[1]))
    return flat.reshape(count, 1, 3, 8, 8).astype(np.float32)


def cnn(seed: int = 5):
    """conv1 3x3 (3→16) → dw 3x3 depthwise (16) → pw 1x1 (16→24) → GAP → fc Gemm (24→10)."""
    rng, b = np.random.default_rng(seed), Builder()
    b.input("x", [1, 3, 8, 8])
    h = b.node("Relu", [b.node("Conv", ["x", b.const(rng.standard_normal((16, 3, 3, 3)).astype(np.float32) * 0.3),
                                         b.const(rng.standard_normal(16).astype(np.float32) * 0.1)],
                               pads=[1, 1, 1, 1])])
    h = b.node("Relu", [b.node("Conv", [h, b.const(rng.standard_normal((16, 1, 3, 3)).astype(np.float32) * 0.3),
                                        b.const(rng.standard_normal(16).astype(np.float32) * 0.1)],
                               pads=[1, 1, 1, 1], group=16)])
    h = b.node("Relu", [b.node("Conv", [h, b.const(rng.standard_normal((24, 16, 1, 1)).astype(np.float32) * 0.3),
                                        b.const(rng.standard_normal(24).astype(np.float32) * 0.1)])])
    flat = b.node("Flatten", [b.node("GlobalAveragePool", [h])])
    b.node("Gemm", [flat, b.const(rng.standard_normal((10, 24)).astype(np.float32) * 0.3),
                    b.const(rng.standard_normal(10).astype(np.float32) * 0.1)], "y", transB=1)
    b.output("y", [1, 10])
    return b.model()


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    folder = tmp_path_factory.mktemp("obs")
    np.savez(folder / "calib.npz", x=images(48, seed=1))
    graph = canonical(cnn())
    layers = dict(zip(("conv1", "dw", "pw", "fc"), weighted_layers(graph)))
    return graph, str(folder / "calib.npz"), layers


def passes(graph, pipeline: str, expect_warning: bool = False):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", NncWarning)
        for p in parse_pipeline(pipeline):
            graph = p.run(graph.copy())
    assert any(issubclass(w.category, NncWarning) for w in caught) == expect_warning, [str(w.message) for w in caught]
    verify(graph)
    return graph


def output_error(reference, graph, count: int = 32) -> float:
    """Mean squared difference of the outputs on fresh inputs of the calibration distribution."""
    return float(np.mean([(run(reference, {"x": x})["y"] - run(graph, {"x": x})["y"]) ** 2
                          for x in images(count, seed=9)]))


def weights(graph, node) -> np.ndarray:
    return graph.constant(graph.node(node.name).inputs[1])


# -- prune ---------------------------------------------------------------------------------
def test_obs_pruning_counts_and_error(setup):
    graph, calib, layers = setup
    magnitude = passes(graph, "prune{sparsity=0.6}")
    second = passes(graph, f'prune{{sparsity=0.6,method=obs,calib="{calib}"}}')
    for name in ("conv1", "pw", "fc"):
        node = layers[name]
        assert np.count_nonzero(weights(second, node) == 0) == round(0.6 * weights(graph, node).size)
        assert np.count_nonzero(weights(second, node) == 0) == np.count_nonzero(weights(magnitude, node) == 0)
    assert np.array_equal(weights(second, layers["dw"]), weights(graph, layers["dw"]))  # small kernels: dense
    assert output_error(graph, second) < 0.5 * output_error(graph, magnitude)


def test_obs_pattern_and_per_layer_method(setup):
    graph, calib, layers = setup
    after = passes(graph, f'prune{{pattern="2:4",method=obs,calib="{calib}",method_overrides="Gemm:magnitude"}}')
    for name in ("pw", "fc"):
        rows = weights(after, layers[name]).reshape(weights(after, layers[name]).shape[0], -1, 4)
        assert np.all(np.count_nonzero(rows, axis=-1) == 2)
    magnitude = passes(graph, 'prune{pattern="2:4"}')
    assert np.array_equal(weights(after, layers["fc"]), weights(magnitude, layers["fc"]))
    assert not np.array_equal(weights(after, layers["pw"]), weights(magnitude, layers["pw"]))


@pytest.mark.parametrize("method", ["magnitude", "obs"])
def test_small_kernel_rules(setup, method):
    graph, calib, layers = setup
    dw, extra = layers["dw"], f',method={method},calib="{calib}"'
    per_kernel = weights(passes(graph, f"prune{{sparsity=0.75,small_layers=kernel{extra}}}"), dw)
    assert np.all(np.count_nonzero(per_kernel.reshape(16, -1) == 0, axis=1) == round(0.75 * 9))
    ranked = weights(passes(graph, f"prune{{sparsity=0.75,small_layers=layer{extra}}}"), dw)
    assert np.count_nonzero(ranked == 0) == round(0.75 * 16 * 9)
    wider = passes(graph, f"prune{{sparsity=0.75,small_fan_in=27{extra}}}")  # conv1 (fan-in 27) counts as small
    assert np.array_equal(weights(wider, layers["conv1"]), weights(graph, layers["conv1"]))
    ends = passes(graph, f"prune{{sparsity=0.75,first_last=0{extra}}}")
    for name in ("conv1", "fc"):
        assert np.array_equal(weights(ends, layers[name]), weights(graph, layers[name]))
    assert np.count_nonzero(weights(ends, layers["pw"]) == 0) == round(0.75 * 16 * 24)


def test_obs_without_calibration_warns_and_uses_magnitude(setup):
    graph, _, layers = setup
    after = passes(graph, "prune{sparsity=0.5,method=obs}", expect_warning=True)
    assert np.array_equal(weights(after, layers["fc"]), weights(passes(graph, "prune{sparsity=0.5}"), layers["fc"]))


# -- quantize ----------------------------------------------------------------------------
def integer_layers(graph) -> dict[str, tuple[np.ndarray, tuple]]:
    return {n.name: (graph.constant(n.inputs[1]), graph.tensor(n.inputs[1]).quant.scale)
            for n in graph.nodes() if n.op in ("QConv", "QGemm")}


@pytest.mark.parametrize("bits", [3, 4])
def test_gptq_stays_on_the_grid_of_rounding(setup, bits):
    graph, calib, _ = setup
    nearest = integer_layers(passes(graph, f'quantize{{calib="{calib}",weight_bits={bits}}}'))
    gptq_graph = passes(graph, f'quantize{{calib="{calib}",weight_bits={bits},method=obs}}')
    gptq = integer_layers(gptq_graph)
    limit = (1 << (bits - 1)) - 1
    for name, (q, scales) in gptq.items():
        assert scales == nearest[name][1]  # the same per-channel grid, exactly
        assert q.dtype == np.int8 and np.abs(q.astype(int)).max() <= limit
    assert any(not np.array_equal(q, nearest[name][0]) for name, (q, _) in gptq.items())
    assert output_error(graph, gptq_graph) < output_error(graph, passes(graph, f'quantize{{calib="{calib}",'
                                                                               f'weight_bits={bits}}}'))


def test_joint_prune_and_quantize_keeps_zeros_and_codebook(setup):
    graph, calib, _ = setup
    pruned = passes(graph, f'prune{{sparsity=0.5,method=obs,calib="{calib}"}}')
    zeros = {n.name: weights(pruned, n) == 0 for n in pruned.nodes() if n.op in ("Conv", "Gemm")}
    done = passes(pruned, f'quantize{{calib="{calib}",weight_bits=3,codebook=true,method=obs}}')
    for name, (q, _) in integer_layers(done).items():
        assert np.all(q[zeros[name]] == 0)
        assert len(np.unique(q)) <= 8


def test_eight_bit_layers_keep_rounding(setup):
    graph, calib, _ = setup
    assert integer_layers(passes(graph, f'quantize{{calib="{calib}",method=obs}}')).keys() == \
        integer_layers(passes(graph, f'quantize{{calib="{calib}"}}')).keys()
    for (a, _), (b, _) in zip(integer_layers(passes(graph, f'quantize{{calib="{calib}",method=obs}}')).values(),
                              integer_layers(passes(graph, f'quantize{{calib="{calib}"}}')).values()):
        assert np.array_equal(a, b)


def test_deterministic(setup):
    graph, calib, _ = setup
    pipeline = f'prune{{sparsity=0.5,method=obs,calib="{calib}"}},quantize{{calib="{calib}",weight_bits=4,method=obs}}'
    first, second = passes(graph, pipeline), passes(graph, pipeline)
    assert all(first.tensor(name).data.tobytes() == second.tensor(name).data.tobytes()
               for name, t in first.tensors.items() if t.is_constant)


# -- prune-channels ---------------------------------------------------------------------
def test_channel_pruning_refits_the_consumer(setup):
    graph, calib, layers = setup
    magnitude = passes(graph, "prune-channels{ratio=0.5}")
    second = passes(graph, f'prune-channels{{ratio=0.5,method=obs,calib="{calib}"}}')
    assert {n: t.shape for n, t in second.tensors.items() if not t.is_constant} == \
        {n: t.shape for n, t in magnitude.tensors.items() if not t.is_constant}
    assert weights(second, layers["fc"]).shape == (10, 12)
    assert output_error(graph, second) < 0.5 * output_error(graph, magnitude)


# -- options, driver, sensitivity, targets ---------------------------------------------
@pytest.mark.parametrize("pipeline, message", [
    ("prune{method=newton}", "method must be one of magnitude, obs"),
    ('prune{method_overrides="Gemm:exact"}', "method must be one of"),
    ("quantize{damping=-1}", "damping must be in"),
    ("prune-channels{method=Obs}", "method must be one of"),
    ("prune{small_layers=sparse}", "small_layers must be one of"),
    ("prune{first_last=1.5}", "first_last must be in"),
])
def test_bad_options(pipeline, message):
    with pytest.raises(OptionError, match=message):
        parse_pipeline(pipeline)


def test_driver_method_option(tmp_path):
    class Target:
        quantizes, base_pipeline = True, "canonicalize"

    calib = tmp_path / "c.npz"
    with_calib = default_pipeline(Target, CompileOptions(calib=calib, weight_bits=4, sparsity=0.5))
    assert f'prune{{sparsity=0.5,method="obs",calib="{calib}"}}' in with_calib and 'method="obs"}' in with_calib
    assert "obs" not in default_pipeline(Target, CompileOptions(weight_bits=4, sparsity=0.5))  # no samples
    assert "obs" not in default_pipeline(Target, CompileOptions(calib=calib, sparsity=0.5, method="magnitude"))
    int8 = default_pipeline(Target, CompileOptions(calib=calib, sparsity=0.5))
    assert int8.endswith(f'quantize{{calib="{calib}"}}')  # 8-bit weights keep rounding to nearest
    with pytest.raises(OptionError, match="method must be one of"):
        CompileOptions(method="second-order")
    with pytest.raises(OptionError, match="^method='obs' cannot be combined with stream "):
        CompileOptions(method="obs", stream={"x": (1, 2)})
    CompileOptions(method="obs", calib=calib, ratio=16)  # the budget search measures with obs too


def test_sensitivity_follows_the_method(setup):
    graph, calib, _ = setup
    samples = [{"x": x} for x in images(8, seed=3)]
    _, magnitude = analyze(graph, samples, calib, bits=2, sparsity=0.75, method="magnitude")
    _, second = analyze(graph, samples, calib, bits=2, sparsity=0.75)  # default with calibration data: obs
    assert sum(r.bits["rmse"] for r in second) < sum(r.bits["rmse"] for r in magnitude)
    assert sum(r.pruned["rmse"] for r in second) < sum(r.pruned["rmse"] for r in magnitude)


def test_obs_compile_is_bit_exact_on_every_target(tmp_path):
    reports = compile_everywhere(cnn(), tmp_path, {"x": images(16, seed=4)}, min_cosine=0.9, quantize=True,
                                 weight_bits=4, sparsity=0.5, prune_channels=0.25, method="obs")
    for report in reports.values():
        assert "prune{" in report["pipeline"] and "method=obs" in report["pipeline"]


def test_limits_split_the_runs_and_keep_large_layers_on_magnitude(setup, monkeypatch):
    graph, calib, layers = setup
    samples = [{"x": x} for x in images(4, seed=6)]
    whole = hessian.collect(graph, samples, list(layers.values()))
    largest = max(hessian.footprint(graph, n) for n in layers.values())
    monkeypatch.setattr(hessian, "MAX_HESSIAN_BYTES", largest)  # no two layers fit one run together
    assert len(hessian._batches(graph, list(layers.values()))) > 1
    split = hessian.collect(graph, samples, list(layers.values()))
    assert all(np.array_equal(whole[n].sums, split[n].sums) and whole[n].rows == split[n].rows for n in whole)
    monkeypatch.setattr(hessian, "MAX_OBS_FAN_IN", 20)  # conv1 (27) and fc (24) are now too large
    after = passes(graph, f'prune{{sparsity=0.5,method=obs,calib="{calib}"}}', expect_warning=True)
    magnitude = passes(graph, "prune{sparsity=0.5}")
    assert np.array_equal(weights(after, layers["fc"]), weights(magnitude, layers["fc"]))
    assert not np.array_equal(weights(after, layers["pw"]), weights(magnitude, layers["pw"]))


def test_a_shared_bias_is_copied_not_changed(tmp_path):
    rng = np.random.default_rng(13)
    w1, w2 = rng.standard_normal((8, 16)).astype(np.float32), rng.standard_normal((8, 8)).astype(np.float32)

    def two_layers(shared: bool):
        b = Builder()
        b.input("x", [1, 16])
        biases = [b.const(np.full(8, 0.5, np.float32))] * 2 if shared else \
            [b.const(np.full(8, 0.5, np.float32)) for _ in range(2)]
        h = b.node("Gemm", ["x", b.const(w1), biases[0]], transB=1)
        b.node("Gemm", [h, b.const(w2), biases[1]], "y", transB=1)
        b.output("y", [1, 8])
        return canonical(b.model())

    np.savez(tmp_path / "c.npz", x=rng.standard_normal((32, 1, 16)).astype(np.float32) + 1.0)
    pipeline = f'prune{{sparsity=0.5,method=obs,calib="{tmp_path / "c.npz"}"}}'
    shared, separate = passes(two_layers(True), pipeline), passes(two_layers(False), pipeline)
    x = {"x": rng.standard_normal((1, 16)).astype(np.float32)}
    assert np.array_equal(run(shared, x)["y"], run(separate, x)["y"])
    assert not np.array_equal(run(shared, x)["y"], run(two_layers(True), x)["y"])


def test_integer_weights_are_pruned_on_their_own_grid(tmp_path):
    rng = np.random.default_rng(12)
    mixing = rng.standard_normal((4, 24)).astype(np.float32)

    def inputs(count, seed):
        rng = np.random.default_rng(seed)
        return (rng.standard_normal((count, 1, 4)) @ mixing + 0.2 * rng.standard_normal((count, 1, 24))).astype(
            np.float32)

    w = rng.standard_normal((16, 24)).astype(np.float32)
    scales = np.abs(w).max(axis=1) / 127
    b = Builder()
    b.input("x", [1, 24])
    b.node("Gemm", ["x", b.weights(np.rint(w / scales[:, None]), scales), b.const(np.zeros(16, np.float32))], "y",
           transB=1)
    b.output("y", [1, 16])
    graph = canonical(b.model())
    np.savez(tmp_path / "c.npz", x=inputs(64, seed=1))
    magnitude = passes(graph, "prune{sparsity=0.5}")
    second = passes(graph, f'prune{{sparsity=0.5,method=obs,calib="{tmp_path / "c.npz"}"}}')
    (layer,) = weighted_layers(second)
    dq = second.producer(layer.inputs[1])
    q = second.constant(dq.inputs[0])
    assert q.dtype == np.int8 and np.abs(q.astype(int)).max() <= 127 and np.count_nonzero(q == 0) == 16 * 24 // 2
    assert np.array_equal(second.constant(dq.inputs[1]), graph.constant(graph.producer(layer.inputs[1]).inputs[1]))

    def error(after):
        return np.mean([(run(graph, {"x": x})["y"] - run(after, {"x": x})["y"]) ** 2 for x in inputs(32, seed=2)])

    assert error(second) < 0.5 * error(magnitude)
