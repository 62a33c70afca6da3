"""Transformer building blocks end to end (tests/e2e.py): small onnx.helper
models compiled for ir, c and az-sim, bit-exact across targets, int8 output
cosine to the float model >= 0.99 on the calibration samples."""

from __future__ import annotations

import numpy as np
import pytest
import nnc
from e2e import compile_everywhere
from onnx import TensorProto, helper, numpy_helper, shape_inference

RNG = np.random.default_rng(5)


def model(nodes, x_shape, inits: dict, opset: int = 18):
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    return shape_inference.infer_shapes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                                                          ir_version=8))


def weights(*shape, scale=0.3):
    return (RNG.standard_normal(shape) * scale).astype(np.float32)


def samples(shape, count=8):
    return {"x": RNG.standard_normal((count, *shape)).astype(np.float32)}


def node(op, inputs, output, **attrs):
    return helper.make_node(op, inputs, [output], name=f"{op}_{output}", **attrs)


def test_single_head_attention(tmp_path):
    """Q, K, V projections (3-D activation @ 2-D weights: QGemm on rows), Q·Kᵀ and
    A·V (QMatMul of two activations), Mul by 1/√d, softmax over the last axis."""
    t, d = 8, 16
    inits = {"wq": weights(d, d), "wk": weights(d, d), "wv": weights(d, d), "scale": np.float32(1 / np.sqrt(d))}
    nodes = [node("MatMul", ["x", "wq"], "q"), node("MatMul", ["x", "wk"], "k"), node("MatMul", ["x", "wv"], "v"),
             node("Transpose", ["k"], "kt", perm=[0, 2, 1]), node("MatMul", ["q", "kt"], "s"),
             node("Mul", ["s", "scale"], "ss"), node("Softmax", ["ss"], "a", axis=-1),
             node("MatMul", ["a", "v"], "y")]
    reports = compile_everywhere(model(nodes, [1, t, d], inits), tmp_path, samples([1, t, d]))
    ops = {layer["op"] for layer in reports["az-sim"]["layers"]}
    assert {"QMatMul", "QGemm", "QSoftmax"} <= ops


def test_multi_head_scores_with_broadcast_batch(tmp_path):
    """Heads as a batch axis: [1, 2, t, dh] @ [1, 2, dh, t], softmax on axis 2 (not last)."""
    t, dh = 6, 8
    inits = {"wq": weights(2 * dh, 2 * dh), "wk": weights(2 * dh, 2 * dh), "shape": np.array([1, t, 2, dh])}
    nodes = [node("MatMul", ["x", "wq"], "q"), node("MatMul", ["x", "wk"], "k"),
             node("Reshape", ["q", "shape"], "q4"), node("Reshape", ["k", "shape"], "k4"),
             node("Transpose", ["q4"], "qh", perm=[0, 2, 1, 3]), node("Transpose", ["k4"], "kh", perm=[0, 2, 3, 1]),
             node("MatMul", ["qh", "kh"], "s"), node("Softmax", ["s"], "y", axis=2)]
    compile_everywhere(model(nodes, [1, t, 2 * dh], inits), tmp_path, samples([1, t, 2 * dh]))


def test_layer_norm_after_projection(tmp_path):
    inits = {"w": weights(24, 32), "gamma": 1 + weights(32, scale=0.2), "beta": weights(32, scale=0.2)}
    nodes = [node("MatMul", ["x", "w"], "h"),
             node("LayerNormalization", ["h", "gamma", "beta"], "y", axis=-1, epsilon=1e-5)]
    reports = compile_everywhere(model(nodes, [1, 6, 24], inits, opset=17), tmp_path, samples([1, 6, 24]))
    assert "QLayerNorm" in {layer["op"] for layer in reports["c"]["layers"]}


def test_reduce_mean_pooling_head(tmp_path):
    """The dynamo exporter's global average pooling: ReduceMean over H, W (axes
    input, keepdims) becomes GlobalAveragePool; then a classifier."""
    inits = {"w": weights(8, 3, 3, 3), "axes": np.array([-2, -1], np.int64), "fc": weights(8, 5),
             "flat": np.array([1, 8])}
    nodes = [node("Conv", ["x", "w"], "c", pads=[1, 1, 1, 1]), node("Relu", ["c"], "r"),
             node("ReduceMean", ["r", "axes"], "p", keepdims=1), node("Reshape", ["p", "flat"], "f"),
             node("MatMul", ["f", "fc"], "y")]
    reports = compile_everywhere(model(nodes, [1, 3, 8, 8], inits), tmp_path, samples([1, 3, 8, 8]))
    ops = {layer["op"] for layer in reports["az-sim"]["layers"]}
    assert "QAveragePool" in ops and "QReduce" not in ops


def test_reductions_on_any_axes(tmp_path):
    """ReduceMax over the sequence, ReduceSum over features (keepdims 0), a
    ReduceMean that is not a pooling, and batched constant weights (QMatMul)."""
    inits = {"w3": weights(2, 6, 5), "a1": np.array([1], np.int64), "a2": np.array([-1], np.int64)}
    nodes = [node("MatMul", ["x", "w3"], "h"), node("ReduceMax", ["h", "a1"], "m", keepdims=1),
             node("ReduceMean", ["h", "a2"], "mean", keepdims=1), node("Add", ["m", "mean"], "s"),
             node("ReduceSum", ["s", "a2"], "y", keepdims=0)]
    reports = compile_everywhere(model(nodes, [2, 4, 6], inits), tmp_path, samples([2, 4, 6]))
    ops = [layer["op"] for layer in reports["az-sim"]["layers"]]
    assert ops.count("QReduce") == 3 and "QMatMul" in ops


def test_pre_norm_encoder_block(tmp_path):
    """LayerNorm, two-head attention (heads split by Reshape/Transpose), output
    projection with bias, residual, LayerNorm, an Erf-GELU feed-forward, residual,
    mean over tokens: every transformer block op together."""
    t, d, h, f = 8, 16, 2, 32
    inits = {"g1": 1 + weights(d, scale=0.1), "b1": weights(d, scale=0.1), "g2": 1 + weights(d, scale=0.1),
             "b2": weights(d, scale=0.1), "wq": weights(d, d), "wk": weights(d, d), "wv": weights(d, d),
             "wo": weights(d, d), "bo": weights(d, scale=0.1), "w1": weights(d, f), "bf1": weights(f, scale=0.1),
             "w2": weights(f, d, scale=0.2), "bf2": weights(d, scale=0.1), "heads": np.array([1, t, h, d // h]),
             "merge": np.array([1, t, d]), "scale": np.float32(1 / np.sqrt(d // h)), "half": np.float32(0.5),
             "one": np.float32(1.0), "rsqrt2": np.float32(1 / np.sqrt(2)), "tokens": np.array([1])}
    attention = [node("LayerNormalization", ["x", "g1", "b1"], "l1", axis=-1),
                 *(node("MatMul", ["l1", f"w{p}"], p) for p in "qkv"),
                 *(node("Reshape", [p, "heads"], f"{p}4") for p in "qkv"),
                 node("Transpose", ["q4"], "qh", perm=[0, 2, 1, 3]), node("Transpose", ["k4"], "kh", perm=[0, 2, 3, 1]),
                 node("Transpose", ["v4"], "vh", perm=[0, 2, 1, 3]), node("MatMul", ["qh", "kh"], "s"),
                 node("Mul", ["s", "scale"], "ss"), node("Softmax", ["ss"], "a", axis=-1),
                 node("MatMul", ["a", "vh"], "o4"), node("Transpose", ["o4"], "ot", perm=[0, 2, 1, 3]),
                 node("Reshape", ["ot", "merge"], "o"), node("MatMul", ["o", "wo"], "po"),
                 node("Add", ["po", "bo"], "pob"), node("Add", ["x", "pob"], "r1")]
    feed_forward = [node("LayerNormalization", ["r1", "g2", "b2"], "l2", axis=-1),
                    node("MatMul", ["l2", "w1"], "f1"), node("Add", ["f1", "bf1"], "f1b"),
                    node("Mul", ["f1b", "rsqrt2"], "gs"), node("Erf", ["gs"], "ge"), node("Add", ["ge", "one"], "gp"),
                    node("Mul", ["f1b", "gp"], "gm"), node("Mul", ["gm", "half"], "gelu"),
                    node("MatMul", ["gelu", "w2"], "f2"), node("Add", ["f2", "bf2"], "f2b"),
                    node("Add", ["r1", "f2b"], "r2"), node("ReduceMean", ["r2", "tokens"], "y", keepdims=0)]
    reports = compile_everywhere(model(attention + feed_forward, [1, t, d], inits), tmp_path, samples([1, t, d], 16))
    ops = [layer["op"] for layer in reports["c"]["layers"]]
    assert ops.count("QLayerNorm") == 2 and ops.count("QMatMul") == 2 and "QReduce" in ops


def _attention_scores(t: int, d: int, h: int):
    """Nodes and weights of two-head scores [1, h, t, t] = (x·wq)(x·wk)ᵀ / √dh."""
    inits = {"wq": weights(d, d), "wk": weights(d, d), "heads": np.array([1, t, h, d // h]),
             "scale": np.float32(1 / np.sqrt(d // h))}
    nodes = [node("MatMul", ["x", "wq"], "q"), node("MatMul", ["x", "wk"], "k"),
             node("Reshape", ["q", "heads"], "q4"), node("Reshape", ["k", "heads"], "k4"),
             node("Transpose", ["q4"], "qh", perm=[0, 2, 1, 3]), node("Transpose", ["k4"], "kh", perm=[0, 2, 3, 1]),
             node("MatMul", ["qh", "kh"], "s"), node("Mul", ["s", "scale"], "ss")]
    return nodes, inits


def test_causal_attention_mask_as_pytorch_exports_it(tmp_path):
    """scaled_dot_product_attention(is_causal=True) exports the mask as
    Where(Trilu(ones) == 0, -inf, 0) added to the scores: nnc folds it to a
    constant and the Softmax takes it as a keep mask, so hidden positions get
    probability exactly 0 on every target (not the int8 code nearest to it)."""
    t, d, h = 6, 16, 2
    nodes, inits = _attention_scores(t, d, h)
    inits.update(ones=np.ones((t, t), np.float32), zero=np.float32(0), fill=np.float32(-np.inf))
    nodes += [node("Trilu", ["ones"], "lower", upper=0), node("Equal", ["lower", "zero"], "hidden"),
              node("Where", ["hidden", "fill", "zero"], "mask"), node("Add", ["ss", "mask"], "masked"),
              node("Softmax", ["masked"], "y", axis=-1)]
    reports = compile_everywhere(model(nodes, [1, t, d], inits), tmp_path, samples([1, t, d]), targets=("az-sim",))
    assert "QSoftmax" in {layer["op"] for layer in reports["az-sim"]["layers"]}
    result = nnc.compile(tmp_path / "model.onnx", target="c", output_dir=tmp_path / "c", calib=tmp_path / "samples.npz")
    assert result.report["verification"]["vs_reference"]["bit_exact"]
    y = result.run(samples([1, t, d], 3))["y"]
    upper = np.triu(np.ones((t, t), bool), 1)
    assert y.shape == (3, 1, h, t, t) and (y[..., upper] == 0).all()
    assert (y[..., 0, 0] == np.float32(255 / 256)).all()  # the first row keeps one position: probability 1


def test_padding_mask_of_lowest_floats_on_a_softmax_over_another_axis(tmp_path):
    """A key mask [1, 1, t, 1] of 0 and float32's lowest (as Hugging Face
    writes masks) on a softmax over axis 2: the mask moves with the axis."""
    t, d, h = 6, 16, 2
    nodes, inits = _attention_scores(t, d, h)
    mask = np.zeros((1, 1, t, 1), np.float32)
    mask[..., t - 2:, :] = np.finfo(np.float32).min
    inits.update(mask=mask)
    nodes += [node("Add", ["mask", "ss"], "masked"), node("Softmax", ["masked"], "y", axis=2)]
    compile_everywhere(model(nodes, [1, t, d], inits), tmp_path, samples([1, t, d]))


def test_masked_fill_of_the_scores_as_hugging_face_writes_it(tmp_path):
    """scores.masked_fill(~keep, finfo.min) exports as Where(hide, lowest, scores)."""
    t, d, h = 6, 16, 2
    nodes, inits = _attention_scores(t, d, h)
    inits.update(hide=~np.tril(np.ones((t, t), bool)), lowest=np.float32(np.finfo(np.float32).min))
    nodes += [node("Where", ["hide", "lowest", "ss"], "masked"), node("Softmax", ["masked"], "y", axis=-1)]
    reports = compile_everywhere(model(nodes, [1, t, d], inits), tmp_path, samples([1, t, d]))
    assert "QSoftmax" in {layer["op"] for layer in reports["c"]["layers"]}


@pytest.mark.parametrize("b_shape", [(16,), (1, 16), (1, 1, 16)])
def test_linear_layers_over_a_sequence_with_any_bias_shape(b_shape, tmp_path):
    """MatMul + Add on x [2, 6, 8]: a bias of [N] or [1, N] joins the Gemm over the
    rows (fuse-bias), a [1, 1, N] one stays a broadcast add (a QAffine); each
    compiles bit-exact."""
    nodes = [node("MatMul", ["x", "w1"], "m1"), node("Add", ["m1", "b1"], "a1"), node("Relu", ["a1"], "h"),
             node("MatMul", ["h", "w2"], "m2"), node("Add", ["m2", "b2"], "y")]
    inits = {"w1": weights(8, 16), "b1": weights(*b_shape), "w2": weights(16, 5), "b2": weights(5)}
    m = model(nodes, [2, 6, 8], inits)
    reports = compile_everywhere(m, tmp_path, samples([2, 6, 8]))
    layers = [row["op"] for row in reports["c"]["layers"]]
    assert layers.count("QGemm") == 2 and ("QAffine" in layers) == (b_shape == (1, 1, 16))
