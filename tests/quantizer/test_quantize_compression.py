"""quantize's compression options: b-bit weight grids, per-layer overrides and the
first/last policy, codebook weights, bias correction, and QDQ weights
re-quantized below 8 bits; plus the per-layer error measurement."""

from __future__ import annotations

import numpy as np
import pytest

from nnc.errors import OptionError
from nnc.interpreter import run
from nnc.layer_error import layer_errors
from nnc.quantizer import codebook
from nnc.quantizer.weights import quantize_weights
from qmodels import Builder, quantized, randn


def three_layers(qdq: bool = False):
    """x → conv1 (Relu) → conv2 (Relu) → Flatten → fc: three weighted layers."""
    b = Builder()
    x = b.input("x", [1, 3, 6, 6])
    w1, w2, w3 = randn(8, 3, 3, 3), randn(8, 8, 3, 3, scale=0.3), randn(8 * 6 * 6, 5, scale=0.1)
    if qdq:
        x = b.dq(b.q(x, 0.02, 0), 0.02, 0)
        s1 = np.abs(w1).reshape(8, -1).max(1) / 127
        w1_in = b.weights(np.rint(w1 / s1[:, None, None, None]), s1)
        b1_in = b.bias(np.rint(randn(8) / (0.02 * s1)), 0.02 * s1)
    else:
        w1_in, b1_in = b.const(w1), b.const(randn(8))
    h = b.node("Relu", [b.node("Conv", [x, w1_in, b1_in], pads=[1, 1, 1, 1])], "h1")
    h = b.node("Relu", [b.node("Conv", [h, b.const(w2), b.const(randn(8))], pads=[1, 1, 1, 1])], "h2")
    flat = b.node("Flatten", [h])
    b.node("Add", [b.node("MatMul", [flat, b.const(w3)]), b.const(randn(5))], "y")
    b.output("y", [1, 5])
    return b.model()


def calib(tmp_path, count: int = 16, seed: int = 3):
    rng = np.random.default_rng(seed)
    samples = [{"x": rng.uniform(0, 2, (1, 3, 6, 6)).astype(np.float32)} for _ in range(count)]
    path = tmp_path / "calib.npz"
    np.savez(path, x=np.stack([s["x"] for s in samples]))
    return path, samples


def weights_by_layer(graph) -> dict[str, np.ndarray]:
    return {n.name: graph.constant(n.inputs[1]) for n in graph.nodes() if n.op in ("QConv", "QGemm")}


def peaks(graph) -> list[int]:
    return [int(np.abs(w.astype(int)).max()) for w in weights_by_layer(graph).values()]


@pytest.mark.parametrize("bits", [2, 3, 4, 6, 8])
def test_weight_bits_bound_every_layer(tmp_path, bits):
    path, _ = calib(tmp_path)
    _, graph = quantized(three_layers(), f'calib="{path}",weight_bits={bits}')
    assert peaks(graph) == [(1 << (bits - 1)) - 1] * 3


def test_below_8_bits_a_model_of_weighted_layers_alone_gets_no_left_out_warning(tmp_path):
    import warnings

    path, _ = calib(tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quantized(three_layers(), f'calib="{path}",weight_bits=4')
    assert not [w for w in caught if "Conv, Gemm and MatMul" in str(w.message)]


def test_first_last_and_overrides(tmp_path):
    path, _ = calib(tmp_path)
    model = three_layers()
    _, graph = quantized(model, f'calib="{path}",weight_bits=3,first_last_bits=8')
    assert peaks(graph) == [127, 3, 127]
    names = list(weights_by_layer(graph))
    _, graph = quantized(model, f'calib="{path}",weight_bits=4,overrides="{names[1]}:2,Gemm:6"')
    assert peaks(graph) == [7, 1, 31]  # the name override, the op-type override (fc is a Gemm)


@pytest.mark.parametrize("options, message", [
    ("weight_bits=9", "weight_bits must be in 2..8"),
    ("first_last_bits=1", "first_last_bits must be in 2..8"),
    ('overrides="conv9:4"', "no weighted layer"),
    ('overrides="Conv=4"', "not KEY:VALUE"),
    ('overrides="Conv:x"', "'x' is not a whole number"),
])
def test_bad_options_are_option_errors(tmp_path, options, message):
    path, _ = calib(tmp_path)
    with pytest.raises(OptionError, match=message):
        quantized(three_layers(), f'calib="{path}",{options}')


def test_narrow_grid_clips_outliers_to_lower_the_error():
    w = np.concatenate([np.random.default_rng(0).normal(0, 1, 200), [12.0]])[None, :]
    q, s = quantize_weights(w, 0, bits=3)
    plain = np.clip(np.rint(w / (12.0 / 3)), -3, 3) * (12.0 / 3)
    assert float(s[0]) < 12.0 / 3
    assert np.sum((q * float(s[0]) - w) ** 2) < np.sum((plain - w) ** 2)


def test_codebook_limits_distinct_values_and_keeps_zeros(tmp_path):
    path, _ = calib(tmp_path)
    _, graph = quantized(three_layers(), f'calib="{path}",weight_bits=3,codebook=true')
    for w in weights_by_layer(graph).values():
        assert np.unique(w).size <= 8
    q = np.random.default_rng(1).normal(0, 30, 500)
    q[::4] = 0.0
    snapped = codebook.snap(q, 8)
    assert np.unique(snapped).size <= 8 and np.all(snapped[q == 0] == 0) and np.all(np.abs(snapped) <= 127)
    assert np.array_equal(snapped, codebook.snap(q, 8))  # deterministic
    assert np.mean(np.abs(snapped - q)[q != 0]) < np.mean(np.abs(np.rint(q / 32) * 32 - q)[q != 0])


def test_bias_correction_removes_the_mean_output_error(tmp_path):
    path, samples = calib(tmp_path)
    float_graph, corrected = quantized(three_layers(), f'calib="{path}",weight_bits=3')
    _, plain = quantized(three_layers(), f'calib="{path}",weight_bits=3,bias_correction=false')

    def mean_bias(graph):
        diffs = [run(graph, s)["y"].astype(np.float64) - run(float_graph, s)["y"] for s in samples]
        return float(np.abs(np.mean(diffs, axis=0)).mean())

    assert mean_bias(corrected) < 0.5 * mean_bias(plain)


def test_qdq_weights_requantized_only_when_asked(tmp_path):
    _, graph = quantized(three_layers(qdq=True), "weight_bits=8", expect_warning=True)
    assert peaks(graph)[0] == 127
    _, graph = quantized(three_layers(qdq=True), "weight_bits=4", expect_warning=True)
    assert peaks(graph) == [7, 7, 7]


def test_layer_errors_grow_as_bits_shrink(tmp_path):
    path, samples = calib(tmp_path)
    errors, model = {}, three_layers()
    for bits in (8, 3):
        float_graph, graph = quantized(model, f'calib="{path}",weight_bits={bits}')
        errors[bits] = layer_errors(float_graph, graph, samples)
        assert len(errors[bits]) == 3
    for layer in errors[8]:
        assert errors[8][layer]["cosine"] > 0.999
        assert errors[3][layer]["rmse"] > errors[8][layer]["rmse"]
