"""Second-order compression, the matrix algorithms (compiler/obs.py) and the
layer-as-matrix view they rely on (compiler/layer_rows.py): reconstruction beats
magnitude on correlated inputs, exact pattern counts, GPTQ on the grid, exact
least squares, numerical safety and determinism."""

from __future__ import annotations

import numpy as np
import pytest

from nnc import obs
from nnc.frontend.onnx_loader import lower_model
from nnc.interpreter import run
from nnc.layer_rows import input_rows, matrices
from qmodels import Builder

RNG = np.random.default_rng(2024)


def correlated(rows: int, k: int, factors: int = 8, seed: int = 0) -> np.ndarray:
    """Inputs [rows, k] driven by a few shared factors plus noise, as activations are;
    every seed draws rows from the same distribution (the same factor loadings)."""
    mixing = np.random.default_rng(k).standard_normal((factors, k))
    rng = np.random.default_rng(seed)
    return rng.standard_normal((rows, factors)) @ mixing + 0.3 * rng.standard_normal((rows, k))


def hessian(x: np.ndarray) -> np.ndarray:
    return 2.0 * x.T @ x / len(x)


def output_error(x: np.ndarray, w: np.ndarray, changed: np.ndarray) -> float:
    return float(np.mean((x @ (changed - w).T) ** 2))


def magnitude_prune(w: np.ndarray, count: int) -> np.ndarray:
    pruned = w.copy()
    pruned.reshape(-1)[np.argsort(np.abs(w).reshape(-1), kind="stable")[:count]] = 0
    return pruned


W = RNG.standard_normal((12, 48))
X_CALIB, X_TEST = correlated(512, 48, seed=1), correlated(512, 48, seed=2)
H = hessian(X_CALIB)


# -- pruning ---------------------------------------------------------------------------------
def test_sparsegpt_beats_magnitude_on_correlated_inputs():
    count = W.size // 2
    pruned = obs.prune(W[None], H[None], obs.Sparsity(count=np.array([count])))[0]
    assert np.count_nonzero(pruned == 0) == count
    baseline = magnitude_prune(W, count)
    for x in (X_CALIB, X_TEST):  # also on inputs it never saw
        assert output_error(x, W, pruned) < 0.3 * output_error(x, W, baseline)


@pytest.mark.parametrize("n, m", [(2, 4), (1, 4), (3, 8)])
def test_pattern_keeps_exactly_n_of_every_m(n, m):
    w = RNG.standard_normal((3, 5, 18))  # 18 = whole groups and a shorter last group of 2
    pruned = obs.prune(w, np.stack([hessian(correlated(256, 18, seed=g)) for g in range(3)]),
                       obs.Sparsity(pattern=(n, m)))
    full = pruned[:, :, :18 - 18 % m].reshape(3, 5, -1, m)
    assert np.all(np.count_nonzero(full, axis=-1) == n)
    assert np.all(np.count_nonzero(pruned[:, :, 18 - 18 % m:], axis=-1) == min(n, 18 % m))


def test_two_four_beats_magnitude():
    pruned = obs.prune(W[None], H[None], obs.Sparsity(pattern=(2, 4)))[0]
    groups = W.reshape(12, -1, 4).copy()
    np.put_along_axis(groups, np.argsort(np.abs(groups), axis=-1)[..., :2], 0, axis=-1)
    assert output_error(X_TEST, W, pruned) < 0.5 * output_error(X_TEST, W, groups.reshape(W.shape))


def test_counts_per_group_and_per_row_are_exact():
    w = RNG.standard_normal((4, 3, 9))  # four groups of a depthwise-like layer
    h = np.stack([hessian(correlated(64, 9, seed=g)) for g in range(4)])
    counts = np.array([5, 4, 6, 0])
    pruned = obs.prune(w, h, obs.Sparsity(count=counts))
    assert list(np.count_nonzero(pruned == 0, axis=(1, 2))) == list(counts)
    per_row = obs.prune(w, h, obs.Sparsity(fraction=0.75, per_row=True))
    assert np.all(np.count_nonzero(per_row == 0, axis=2) == round(0.75 * 9))


def test_existing_zeros_stay_and_count():
    w = W.copy()
    w[:, :10] = 0
    pruned = obs.prune(w[None], H[None], obs.Sparsity(count=np.array([200])))[0]
    assert np.all(pruned[:, :10] == 0) and np.count_nonzero(pruned == 0) == 200


def test_bias_column_takes_compensation_and_is_never_pruned():
    ones = np.ones((len(X_CALIB), 1))
    x = np.concatenate([X_CALIB + 2.0, ones], axis=1)  # inputs with a mean: the bias matters
    w = np.concatenate([W, RNG.standard_normal((12, 1))], axis=1)
    pruned = obs.prune(w[None], hessian(x)[None], obs.Sparsity(count=np.array([W.size // 2])), frozen=1)[0]
    assert np.all(pruned[:, -1] != 0) and not np.allclose(pruned[:, -1], w[:, -1])
    without = obs.prune(w[None, :, :-1], hessian(x[:, :-1])[None], obs.Sparsity(count=np.array([W.size // 2])))[0]
    assert output_error(x, w, pruned) < output_error(x[:, :-1], w[:, :-1], without)


# -- quantization ----------------------------------------------------------------------------
def test_gptq_integers_lie_on_the_grid_and_beat_rounding():
    scale = np.abs(W).max(axis=1) / 7
    ints = obs.quantize(W[None], H[None], scale[None], obs.uniform_snap(7))[0]
    assert np.array_equal(ints, np.rint(ints)) and np.abs(ints).max() <= 7
    nearest = np.clip(np.rint(W / scale[:, None]), -7, 7)
    assert output_error(X_TEST, W, ints * scale[:, None]) < 0.3 * output_error(X_TEST, W, nearest * scale[:, None])


def test_gptq_keeps_zeros_and_codebook_values():
    w = magnitude_prune(W, W.size // 2)
    scale = np.abs(w).max(axis=1) / 127
    table = np.array([-90.0, -30.0, -5.0, 4.0, 33.0, 101.0])
    ints = obs.quantize(w[None], H[None], scale[None], obs.table_snap(table))[0]
    assert np.all(ints[w == 0] == 0)
    assert set(np.unique(ints[w != 0])) <= set(table)


def test_activation_order_changes_nothing_for_a_diagonal_hessian():
    h = np.diag(RNG.uniform(0.5, 3.0, 48))  # no coupling: GPTQ is rounding to nearest
    scale = np.abs(W).max(axis=1) / 7
    ints = obs.quantize(W[None], h[None], scale[None], obs.uniform_snap(7))[0]
    assert np.array_equal(ints, np.clip(np.rint(W / scale[:, None]), -7, 7))


# -- structured --------------------------------------------------------------------------
def test_remove_inputs_is_least_squares_on_the_rest():
    groups = np.arange(48).reshape(12, 4)
    removed, refit = obs.remove_inputs(W, H, groups, chosen=np.array([3, 7]), damping=0.0)
    assert list(removed) == [3, 7]
    keep = np.setdiff1d(np.arange(48), groups[[3, 7]].ravel())
    exact, *_ = np.linalg.lstsq(X_CALIB[:, keep], X_CALIB @ W.T, rcond=None)
    np.testing.assert_allclose(refit[:, keep], exact.T, rtol=1e-6, atol=1e-8)
    assert np.all(refit[:, groups[[3, 7]].ravel()] == 0)


def test_greedy_removal_picks_cheap_inputs():
    x = X_CALIB.copy()
    x[:, 8:12] *= 1e-3  # channel 2 (columns 8..11) barely reaches the output
    removed, _ = obs.remove_inputs(W, hessian(x), np.arange(48).reshape(12, 4), count=1)
    assert list(removed) == [2]


# -- numerical safety and determinism ------------------------------------------------------
def test_dead_inputs_and_singular_hessians_stay_finite():
    x = correlated(8, 48)  # 8 rows for 48 inputs: H has rank 8
    x[:, 5] = 0  # a dead input: H_55 = 0
    h = hessian(x)
    for damping in (0.0, 0.01):
        pruned = obs.prune(W[None], h[None], obs.Sparsity(count=np.array([300])), damping=damping)[0]
        assert np.all(np.isfinite(pruned)) and np.count_nonzero(pruned == 0) == 300
        u = obs.inverse_factor(h[None], damping)[0]
        assert np.all(np.isfinite(u)) and np.all(np.diag(u) > 0)


def test_an_all_zero_hessian_falls_back_to_plain_rounding():
    scale = np.abs(W).max(axis=1) / 7
    ints = obs.quantize(W[None], np.zeros((1, 48, 48)), scale[None], obs.uniform_snap(7))[0]
    assert np.array_equal(ints, np.clip(np.rint(W / scale[:, None]), -7, 7))


def test_deterministic():
    runs = [obs.prune(W[None], H[None], obs.Sparsity(count=np.array([300]))) for _ in range(2)]
    assert runs[0].tobytes() == runs[1].tobytes()
    scale = np.abs(W).max(axis=1)[None] / 3
    runs = [obs.quantize(W[None], H[None], scale, obs.uniform_snap(3)) for _ in range(2)]
    assert runs[0].tobytes() == runs[1].tobytes()


# -- layers as matrices ------------------------------------------------------------------
def _single(op: str, x_shape, y_shape, w, **attrs):
    b = Builder()
    b.input("x", x_shape)
    b.node(op, ["x", b.const(w)], "y", **attrs)
    b.output("y", y_shape)
    return lower_model(b.model(), {})


def _conv_shape(x_shape, w_shape, attrs) -> list[int]:
    nd = len(x_shape) - 2
    pads, strides = attrs.get("pads", [0] * 2 * nd), attrs.get("strides", [1] * nd)
    dilations = attrs.get("dilations", [1] * nd)
    return [x_shape[0], w_shape[0], *[(x_shape[2 + a] + pads[a] + pads[a + nd] - dilations[a] * (w_shape[2 + a] - 1)
                                       - 1) // strides[a] + 1 for a in range(nd)]]


@pytest.mark.parametrize("x_shape, w_shape, attrs", [
    ([2, 4, 7, 6], [6, 4, 3, 3], {"pads": [1, 0, 2, 1], "strides": [2, 1]}),
    ([1, 6, 9, 9], [6, 1, 3, 3], {"group": 6, "pads": [1, 1, 1, 1], "dilations": [2, 2]}),  # depthwise
    ([1, 6, 8, 5], [4, 3, 2, 2], {"group": 2}),
    ([1, 3, 20], [5, 3, 4], {"strides": [3]}),  # 1-D
])
def test_conv_rows_times_weights_is_the_conv(x_shape, w_shape, attrs):
    graph = _single("Conv", x_shape, _conv_shape(x_shape, w_shape, attrs),
                    RNG.standard_normal(w_shape).astype(np.float32), **attrs)
    node = graph.nodes()[0]
    x = RNG.standard_normal(x_shape).astype(np.float32)
    y = run(graph, {"x": x})["y"].astype(np.float64)
    product = np.matmul(input_rows(node, x), matrices(node, graph.constant(node.inputs[1])).transpose(0, 2, 1))
    g, r = product.shape[0], product.shape[2]  # [G, N·positions, R] -> y [N, G·R, *positions]
    expected = np.moveaxis(y.reshape(y.shape[0], g, r, -1), 3, 1).transpose(2, 0, 1, 3).reshape(g, -1, r)
    np.testing.assert_allclose(product, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("trans_a, trans_b", [(0, 0), (0, 1), (1, 1)])
def test_gemm_rows_times_weights_is_the_gemm(trans_a, trans_b):
    w = RNG.standard_normal((5, 7) if trans_b else (7, 5)).astype(np.float32)
    graph = _single("Gemm", [7, 3] if trans_a else [3, 7], [3, 5], w, transA=trans_a, transB=trans_b)
    node = graph.nodes()[0]
    x = RNG.standard_normal(graph.tensor("x").shape).astype(np.float32)
    product = input_rows(node, x)[0] @ matrices(node, w)[0].T
    np.testing.assert_allclose(product, run(graph, {"x": x})["y"], rtol=1e-5, atol=1e-5)
