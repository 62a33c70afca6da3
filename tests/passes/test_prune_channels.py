"""prune-channels: shapes shrink along every path it understands, parameters and MACs
drop by what the removed channels held, the removed channels' constant output is
folded into the next bias, and what it does not understand is left alone."""

from __future__ import annotations

import numpy as np
import pytest

from nnc.ops import get_op
from onnx import helper

from nnc.errors import OptionError
from nnc.frontend.onnx_loader import load
from nnc.interpreter import run
from nnc.passes.prune_channels import Plan, plan, tied_layers
from nnc.passmanager import PassManager, parse_pipeline
from nnc.pipelines import CANONICAL
from nnc.summary import summarize
from nnc.textir import print_ir
from nnc.verifier import verify

from mlperf import MODELS_DIR, requires_models
from pass_testing import build, feeds_for

RNG = np.random.default_rng(3)


def randn(*shape, scale=1.0) -> np.ndarray:
    return (RNG.standard_normal(shape) * scale).astype(np.float32)


def prune(graph, pipeline: str = "prune-channels"):
    """The pruned copy of `graph`, checked valid with the same interface."""
    after = graph.copy()
    for p in parse_pipeline(pipeline):
        after = p.run(after)
    verify(after)
    assert after.inputs == graph.inputs and after.outputs == graph.outputs
    for name in graph.inputs + graph.outputs:
        assert after.tensor(name).shape == graph.tensor(name).shape
    return after


def canonical(graph):
    return PassManager(parse_pipeline(CANONICAL), verify_each=True).run(graph.copy())


def drop(graph, after) -> tuple[int, int]:
    """(parameters, MACs) the pruning removed."""
    before, now = summarize(graph).totals, summarize(after).totals
    return before["params"] - now["params"], before["macs"] - now["macs"]


def outputs(graph, seed: int = 0) -> dict[str, np.ndarray]:
    return run(graph, feeds_for(graph, seed))


def assert_same_outputs(graph, after, tolerance: float = 1e-5):
    for seed in range(2):
        want, got = outputs(graph, seed), outputs(after, seed)
        for name in want:
            np.testing.assert_allclose(got[name], want[name], rtol=tolerance, atol=tolerance)


def node(graph, name: str):
    return graph.node(name)


# -- Conv -> Relu -> Conv -> Flatten -> Gemm --------------------------------------------------
def cnn(dead=(), dead2=(), nhwc_flatten=False):
    """x [1,3,8,8] -> conv1 (8, 3x3, pads 1) -> Relu -> conv2 (6, 1x1) -> Flatten -> fc (5).
    Channels in `dead` of conv1 (`dead2` of conv2) get zero weights, so their output
    is the constant act(bias) that pruning folds into the next layer."""
    w1, w2 = randn(8, 3, 3, 3), randn(6, 8, 1, 1)
    w1[list(dead)], w2[list(dead2)] = 0, 0
    b1 = np.abs(randn(8)) + 0.5  # positive: the dead channels pass Relu as constants
    flat = [helper.make_node("Flatten", ["c2"], ["f"], name="flatten")]
    if nhwc_flatten:  # as TensorFlow exports: flatten in channels-last order
        flat = [helper.make_node("Transpose", ["c2"], ["t"], name="to_nhwc", perm=[0, 2, 3, 1]),
                helper.make_node("Flatten", ["t"], ["f"], name="flatten")]
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], name="conv2"),
             *flat,
             helper.make_node("Gemm", ["f", "wf", "bf"], ["y"], name="fc")]
    constants = {"w1": w1, "b1": b1, "w2": w2, "b2": randn(6), "wf": randn(384, 5, scale=0.1), "bf": randn(5)}
    return build(nodes, {"x": [1, 3, 8, 8]}, {"y": [1, 5]}, constants)


def test_conv_chain_shapes_and_weights_by_hand():
    graph = cnn()
    w1, w2, wf = (graph.tensor(n).data for n in ("w1", "w2", "wf"))
    keep1 = np.sort(np.argsort(np.abs(w1).sum(axis=(1, 2, 3)), kind="stable")[2:])
    after = prune(graph, 'prune-channels{overrides="conv2:0"}')
    assert after.tensor("c1").shape == after.tensor("r1").shape == (1, 6, 8, 8)
    assert after.tensor("c2").shape == (1, 6, 8, 8) and after.tensor("f").shape == (1, 384)
    conv1, conv2 = node(after, "conv1"), node(after, "conv2")
    assert np.array_equal(after.tensor(conv1.inputs[1]).data, w1[keep1])
    assert np.array_equal(after.tensor(conv1.inputs[2]).data, graph.tensor("b1").data[keep1])
    assert np.array_equal(after.tensor(conv2.inputs[1]).data, w2[:, keep1])
    removed1 = np.setdiff1d(np.arange(8), keep1)
    b2 = graph.tensor("b2").data.astype(np.float64) + w2[:, removed1, 0, 0] @ np.maximum(
        graph.tensor("b1").data[removed1], 0)
    np.testing.assert_allclose(after.tensor(conv2.inputs[2]).data, b2, rtol=1e-6)
    assert np.array_equal(after.tensor("wf").data, wf)


def test_flatten_drops_the_features_of_removed_channels():
    graph = cnn()
    w2, wf = graph.tensor("w2").data, graph.tensor("wf").data
    keep2 = np.sort(np.argsort(np.abs(w2).sum(axis=(1, 2, 3)), kind="stable")[2:])
    after = prune(graph, 'prune-channels{overrides="conv1:0"}')
    features = [c * 64 + i for c in keep2 for i in range(64)]  # NCHW: feature = c*H*W + h*W + w
    assert after.tensor("f").shape == (1, 256)
    assert node(after, "flatten").attrs.shape == (1, 256)
    assert np.array_equal(after.tensor(node(after, "fc").inputs[1]).data, wf[features])


def test_channels_last_flatten_order():
    graph = cnn(nhwc_flatten=True)
    w2, wf = graph.tensor("w2").data, graph.tensor("wf").data
    keep2 = np.sort(np.argsort(np.abs(w2).sum(axis=(1, 2, 3)), kind="stable")[2:])
    after = prune(graph, 'prune-channels{overrides="conv1:0"}')
    features = [p * 6 + c for p in range(64) for c in keep2]  # NHWC: feature = (h*W + w)*C + c
    assert after.tensor("t").shape == (1, 8, 8, 4)
    assert np.array_equal(after.tensor(node(after, "fc").inputs[1]).data, wf[features])


def test_params_and_macs_drop_by_the_removed_channels():
    graph = cnn()
    after = prune(graph)  # conv1: 8 -> 6 channels; then conv2: 6 -> 4; fc feeds the output
    conv1 = (2 * 27 + 2 + 6 * 2, 2 * 64 * 27 + 6 * 64 * 2)  # its weights+bias; conv2's inputs
    conv2 = (2 * 6 + 2 + 2 * 64 * 5, 2 * 64 * 6 + 2 * 64 * 5)  # its weights+bias; fc's features
    assert drop(graph, after) == (conv1[0] + conv2[0], conv1[1] + conv2[1])
    assert after.tensor("w1").shape == (6, 3, 3, 3) and after.tensor("w2").shape == (4, 6, 1, 1)
    assert after.tensor("wf").shape == (256, 5)


@pytest.mark.parametrize("nhwc_flatten", [False, True])
@pytest.mark.parametrize("canonicalize", [False, True])
def test_dead_channels_leave_the_output_unchanged(canonicalize, nhwc_flatten):
    """Channels with zero weights output act(bias) everywhere; folded into the next
    bias (1x1 Conv, Gemm: exact) the network computes what it did."""
    graph = cnn(dead=(2, 5), dead2=(1, 4), nhwc_flatten=nhwc_flatten)
    graph = canonical(graph) if canonicalize else graph
    after = prune(graph)
    assert drop(graph, after)[0] == 68 + 654
    assert_same_outputs(graph, after)


def test_padded_consumer_is_exact_away_from_the_border():
    w1, w2 = randn(4, 3, 1, 1), randn(3, 4, 3, 3)
    w1[1] = 0
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1"),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Conv", ["r1", "w2", "b2"], ["y"], name="conv2", pads=[1, 1, 1, 1])]
    graph = build(nodes, {"x": [1, 3, 6, 6]}, {"y": [1, 3, 6, 6]},
                  {"w1": w1, "b1": np.float32([0.5, 2.0, 0.5, 0.5]), "w2": w2, "b2": randn(3)})
    after = prune(graph)
    want, got = outputs(graph)["y"], outputs(after)["y"]
    np.testing.assert_allclose(got[..., 1:-1, 1:-1], want[..., 1:-1, 1:-1], rtol=1e-5, atol=1e-5)
    assert not np.allclose(got[..., 0, :], want[..., 0, :])  # border taps read padding, not 2.0


# -- depthwise chains --------------------------------------------------------------------------------
def separable(multiplier: int = 1):
    """x [1,4,6,6] -> pw1 (8, 1x1) -> Relu -> dw (3x3, group 8, pads 1) -> Relu -> pw2 (5)
    -> GlobalAveragePool -> Flatten -> fc (3). pw1's channels 1 and 6 are dead with a
    negative bias: they output 0 and the depthwise layer outputs relu(its bias) there."""
    k = multiplier
    w1 = randn(8, 4, 1, 1)
    w1[[1, 6]] = 0
    b1 = np.abs(randn(8)) + 0.1
    b1[[1, 6]] = -1.0
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["p1"], name="pw1"),
             helper.make_node("Relu", ["p1"], ["r1"]),
             helper.make_node("Conv", ["r1", "wd", "bd"], ["d"], name="dw", group=8, pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["d"], ["r2"]),
             helper.make_node("Conv", ["r2", "w2", "b2"], ["p2"], name="pw2"),
             helper.make_node("GlobalAveragePool", ["p2"], ["g"]),
             helper.make_node("Flatten", ["g"], ["f"]),
             helper.make_node("Gemm", ["f", "wf", "bf"], ["y"], name="fc")]
    constants = {"w1": w1, "b1": b1, "wd": randn(8 * k, 1, 3, 3), "bd": randn(8 * k),
                 "w2": randn(5, 8 * k, 1, 1), "b2": randn(5), "wf": randn(5, 3), "bf": randn(3)}
    return build(nodes, {"x": [1, 4, 6, 6]}, {"y": [1, 3]}, constants)


@pytest.mark.parametrize("multiplier", [1, 2])
@pytest.mark.parametrize("canonicalize", [False, True])
def test_depthwise_chain(multiplier, canonicalize):
    k = multiplier
    graph = separable(k)
    graph = canonical(graph) if canonicalize else graph
    after = prune(graph, 'prune-channels{overrides="pw2:0"}')
    dw = node(after, "dw")
    assert dw.attrs.group == 6 and after.tensor(dw.inputs[1]).shape == (6 * k, 1, 3, 3)
    assert after.tensor(node(after, "pw2").inputs[1]).shape == (5, 6 * k, 1, 1)
    kept = [c * k + j for c in (0, 2, 3, 4, 5, 7) for j in range(k)]
    assert np.array_equal(after.tensor(dw.inputs[2]).data, graph.tensor("bd").data[kept])
    pw1 = (2 * 4 + 2, 2 * 36 * 4)  # weights + bias, MACs
    depthwise = (2 * k * 9 + 2 * k, 2 * k * 36 * 9)
    pw2 = (5 * 2 * k, 5 * 36 * 2 * k)
    assert drop(graph, after) == tuple(map(sum, zip(pw1, depthwise, pw2)))
    assert_same_outputs(graph, after)


def test_depthwise_layer_is_not_pruned_on_its_own():
    graph = separable()
    reason = plan(graph, node(graph, "dw"), 0.5)
    assert isinstance(reason, str) and "depthwise" in reason


def test_a_depthwise_layer_reading_a_graph_input_is_no_error():
    """A conformer's depthwise Conv behind a Transpose: the tie search walked
    back from it and failed with "unknown node None" (an error, not a reason)."""
    nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=[0, 2, 1]),
             helper.make_node("Conv", ["t", "wd", "bd"], ["d"], name="dw", group=4, pads=[1, 1]),
             helper.make_node("Conv", ["d", "w2", "b2"], ["y"], name="pw")]
    graph = build(nodes, {"x": [1, 6, 4]}, {"y": [1, 3, 6]},
                  {"wd": randn(4, 1, 3), "bd": randn(4), "w2": randn(3, 4, 1), "b2": randn(3)})
    assert [n.name for n in tied_layers(graph, node(graph, "dw"))] == ["dw"]
    assert "depthwise" in plan(graph, node(graph, "dw"), 0.5)
    assert print_ir(prune(graph, "prune-channels{ratio=0.5}")) == print_ir(graph)


# -- other paths ------------------------------------------------------------------------------------
def test_batchnorm_and_pools_on_the_path():
    w1 = randn(6, 3, 3, 3)
    w1[[0, 3]] = 0
    bn = {"s": np.abs(randn(6)) + 0.5, "bb": randn(6), "m": randn(6), "v": np.abs(randn(6)) + 0.5}
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
             helper.make_node("BatchNormalization", ["c1", "s", "bb", "m", "v"], ["n"], name="bn"),
             helper.make_node("LeakyRelu", ["n"], ["a"], alpha=0.1),
             helper.make_node("MaxPool", ["a"], ["mp"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("AveragePool", ["mp"], ["ap"], kernel_shape=[2, 2]),
             helper.make_node("Conv", ["ap", "w2", "b2"], ["y"], name="conv2")]
    graph = build(nodes, {"x": [1, 3, 8, 8]}, {"y": [1, 4, 3, 3]},
                  {"w1": w1, "b1": randn(6), **bn, "w2": randn(4, 6, 1, 1), "b2": randn(4)})
    after = prune(graph, "prune-channels{ratio=0.34}")
    assert after.tensor("ap").shape == (1, 4, 3, 3)
    assert all(after.tensor(t).shape == (4,) for t in node(after, "bn").inputs[1:])
    assert drop(graph, after)[0] == 2 * 27 + 2 + 2 * 4 + 4 * 2
    assert_same_outputs(graph, after)


def dense_chain(dead=(3, 6), alpha=1.0, beta=1.0):
    """x [2,6] -> g1 (8) -> Relu -> g2 (5, trans_b, alpha, beta) -> Relu -> g3 (3)."""
    b1 = randn(6, 8)
    b1[:, list(dead)] = 0
    nodes = [helper.make_node("Gemm", ["x", "b1", "c1"], ["h1"], name="g1"),
             helper.make_node("Relu", ["h1"], ["r1"]),
             helper.make_node("Gemm", ["r1", "b2", "c2"], ["h2"], name="g2", transB=1, alpha=alpha, beta=beta),
             helper.make_node("Relu", ["h2"], ["r2"]),
             helper.make_node("Gemm", ["r2", "b3", "c3"], ["y"], name="g3")]
    constants = {"b1": b1, "c1": np.abs(randn(8)) + 0.5, "b2": randn(5, 8), "c2": randn(5),
                 "b3": randn(5, 3), "c3": randn(3)}
    return build(nodes, {"x": [2, 6]}, {"y": [2, 3]}, constants)


@pytest.mark.parametrize("alpha, beta", [(1.0, 1.0), (0.5, 2.0)])
def test_gemm_chain(alpha, beta):
    graph = dense_chain(alpha=alpha, beta=beta)
    after = prune(graph, 'prune-channels{overrides="g2:0"}')
    assert after.tensor("h1").shape == (2, 6) and after.tensor(node(after, "g2").inputs[1]).shape == (5, 6)
    assert_same_outputs(graph, after)
    g2_rows = np.abs(graph.tensor("b2").data).sum(axis=1)  # trans_b: B [N, K], row n is channel n
    after2 = prune(graph, 'prune-channels{overrides="g1:0"}')
    assert after2.tensor(node(after2, "g2").inputs[1]).shape == (4, 8)
    kept = np.sort(np.argsort(g2_rows, kind="stable")[1:])
    assert np.array_equal(after2.tensor(node(after2, "g2").inputs[1]).data, graph.tensor("b2").data[kept])
    assert after2.tensor(node(after2, "g3").inputs[1]).shape == (4, 3)


@pytest.mark.parametrize("activation", ["Silu", "Gelu", "Elu", "Softplus", "Softsign"])
def test_channels_pass_through_smooth_activations(activation):
    """SiLU (EfficientNet, conformers), GELU, ELU, Softplus, Softsign act per
    element: the cut passes them, the dead channels' constant act(bias) folds
    into the next layer's bias (SiLU stopped the cut before)."""
    graph = dense_chain()
    for n in graph.nodes():
        if n.op == "Relu" and n.inputs[0] == "h1":
            n.op = activation
            n.attrs = get_op(activation).Attrs(1.0) if activation == "Elu" else get_op(activation).Attrs()
    after = prune(graph, 'prune-channels{overrides="g2:0"}')
    assert after.tensor("h1").shape == (2, 6) and after.tensor(node(after, "g2").inputs[1]).shape == (5, 6)
    assert_same_outputs(graph, after)


@pytest.mark.parametrize("bias, pruned", [(-1.0, True), (1.0, False)])
def test_matmul_consumer_takes_only_a_zero_output(bias, pruned):
    """MatMul has no bias: relu(-1) = 0 is nothing to fold; relu(1) would be lost."""
    w = randn(4, 8)
    w[:, :2] = 0
    nodes = [helper.make_node("Gemm", ["x", "w", "c"], ["h"], name="g"), helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("MatMul", ["r", "m"], ["y"], name="mm")]
    c = np.abs(randn(8)) + 0.5
    c[:2] = bias
    graph = build(nodes, {"x": [1, 4]}, {"y": [1, 3]}, {"w": w, "c": c, "m": randn(8, 3)})
    found = plan(graph, node(graph, "g"), 0.25)
    assert isinstance(found, Plan) == pruned
    after = prune(graph)
    assert after.tensor("r").shape == ((1, 6) if pruned else (1, 8))
    if pruned:
        assert_same_outputs(graph, after)
    else:
        assert "no bias" in found


def test_fan_out_to_two_consumers():
    w1 = randn(6, 3, 1, 1)
    w1[[0, 4]] = 0
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1"), helper.make_node("Relu", ["c1"], ["r"]),
             helper.make_node("Conv", ["r", "w2", "b2"], ["y2"], name="conv2"),
             helper.make_node("Conv", ["r", "w3"], ["y3"], name="conv3")]
    graph = build(nodes, {"x": [1, 3, 4, 4]}, {"y2": [1, 2, 4, 4], "y3": [1, 5, 4, 4]},
                  {"w1": w1, "b1": np.abs(randn(6)) + 0.5, "w2": randn(2, 6, 1, 1), "b2": randn(2),
                   "w3": randn(5, 6, 1, 1)})
    after = prune(graph, "prune-channels{ratio=0.34}")
    assert after.tensor("r").shape == (1, 4, 4, 4)
    assert after.tensor(node(after, "conv3").inputs[2]).shape == (5,)  # conv3 got a bias for the fold
    assert drop(graph, after)[0] == 2 * 3 + 2 + 2 * 2 + 5 * 2 - 5
    assert_same_outputs(graph, after)


def concat_model(dead1=(), dead2=()):
    """x -> conv1 (4) and conv2 (5) -> Concat on the channels -> Relu -> conv3 (3,
    1x1); zero weights make channels `dead1`, `dead2` constant (positive bias)."""
    w1, w2 = randn(4, 3, 1, 1), randn(5, 3, 1, 1)
    w1[list(dead1)], w2[list(dead2)] = 0, 0
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1"),
             helper.make_node("Conv", ["x", "w2", "b2"], ["c2"], name="conv2"),
             helper.make_node("Concat", ["c1", "c2"], ["cat"], name="cat", axis=1),
             helper.make_node("Relu", ["cat"], ["r"], name="relu"),
             helper.make_node("Conv", ["r", "w3", "b3"], ["y"], name="conv3")]
    constants = {"w1": w1, "b1": np.abs(randn(4)) + 0.5, "w2": w2, "b2": np.abs(randn(5)) + 0.5,
                 "w3": randn(3, 9, 1, 1), "b3": randn(3)}
    return build(nodes, {"x": [1, 3, 4, 4]}, {"y": [1, 3, 4, 4]}, constants)


@pytest.mark.parametrize("method", ["magnitude", "obs"])
def test_channels_pass_a_concat_at_their_offset(method, tmp_path):
    """Both inputs of a channel Concat (a U-Net skip, a YOLO neck) lose their dead
    channels; conv3 loses the matching input channels at their offsets (conv2's
    after conv1's four) and the fold keeps the output (it stopped at Concat)."""
    graph = concat_model(dead1=(1,), dead2=(0, 3))
    calib = tmp_path / "calib.npz"
    np.savez(calib, x=np.random.default_rng(7).standard_normal((32, 1, 3, 4, 4)).astype(np.float32))
    after = prune(graph, f'prune-channels{{overrides="conv1:0.25,conv2:0.4,conv3:0",method={method},'
                         f'calib="{calib}"}}')
    assert after.tensor("c1").shape == (1, 3, 4, 4) and after.tensor("c2").shape == (1, 3, 4, 4)
    assert after.tensor("cat").shape == after.tensor("r").shape == (1, 6, 4, 4)
    w3 = after.tensor(node(after, "conv3").inputs[1]).data
    if method == "magnitude":
        assert np.array_equal(w3, graph.tensor("w3").data[:, [0, 2, 3, 5, 6, 8]])
        assert_same_outputs(graph, after)
        return
    # conv3 is refit for conv1 (damped least squares); conv2's cut then takes the magnitude plan
    assert w3.shape == (3, 6, 1, 1)
    want, got = outputs(graph)["y"].ravel(), outputs(after)["y"].ravel()
    assert want @ got / (np.linalg.norm(want) * np.linalg.norm(got)) > 0.999


def residual(dead=(), stage=False, bias_shift=None):
    """x [1,3,6,6] -> stem (8, 3x3, pads 1) -> Relu -> r0; block: conv_a (1x1) ->
    Relu -> conv_b (1x1); Add(r0, conv_b) -> Relu -> conv_out (4) -> y. `stage`
    adds a second block whose conv_c adds to the first Add's output (a
    MobileNetV2 stage: three layers tied). `bias_shift`: a per-channel constant
    added after the last Add. Channels `dead` of stem, conv_b (and conv_c) get
    zero weights and positive biases: constant, so pruning them keeps y."""
    w0, wb, wc = randn(8, 3, 3, 3), randn(8, 8, 1, 1), randn(8, 8, 1, 1)
    for w in (w0, wb, wc):
        w[list(dead)] = 0
    nodes = [helper.make_node("Conv", ["x", "w0", "b0"], ["c0"], name="stem", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c0"], ["r0"]),
             helper.make_node("Conv", ["r0", "wa", "ba"], ["ca"], name="conv_a"),
             helper.make_node("Relu", ["ca"], ["ra"]),
             helper.make_node("Conv", ["ra", "wb", "bb"], ["cb"], name="conv_b"),
             helper.make_node("Add", ["r0", "cb"], ["s1"], name="add1")]
    last = "s1"
    if stage:
        nodes += [helper.make_node("Conv", ["s1", "wc", "bc"], ["cc"], name="conv_c"),
                  helper.make_node("Add", ["s1", "cc"], ["s2"], name="add2")]
        last = "s2"
    if bias_shift is not None:
        nodes.append(helper.make_node("Add", [last, "shift"], ["shifted"], name="shift"))
        last = "shifted"
    nodes += [helper.make_node("Relu", [last], ["r1"]),
              helper.make_node("Conv", ["r1", "wo", "bo"], ["y"], name="conv_out")]
    constants = {"w0": w0, "b0": np.abs(randn(8)) + 0.5, "wa": randn(8, 8, 1, 1), "ba": randn(8), "wb": wb,
                 "bb": np.abs(randn(8)) + 0.5, "wc": wc, "bc": np.abs(randn(8)) + 0.5, "wo": randn(4, 8, 1, 1),
                 "bo": randn(4)}
    if bias_shift is not None:
        constants["shift"] = bias_shift
    return build(nodes, {"x": [1, 3, 6, 6]}, {"y": [1, 4, 6, 6]}, constants)


@pytest.mark.parametrize("stage", [False, True], ids=["block", "stage"])
def test_layers_tied_through_an_add_lose_the_same_channels(stage):
    """A residual block's last Conv and the layer its skip comes from (ResNet),
    or every layer adding into one stage (MobileNetV2), lose the same channels:
    those with the smallest L1 norm summed over them. They kept every channel
    before (the cut stopped at the Add)."""
    graph = residual(dead=(2, 5), stage=stage)
    group = ["stem", "conv_b", "conv_c"] if stage else ["stem", "conv_b"]
    assert [n.name for n in tied_layers(graph, node(graph, "conv_b"))] == group
    assert [n.name for n in tied_layers(graph, node(graph, "conv_a"))] == ["conv_a"]
    after = prune(graph, 'prune-channels{overrides="conv_a:0,conv_out:0",ratio=0.25}')
    for name in ["c0", "r0", "cb", "s1", "r1"] + (["cc", "s2"] if stage else []):
        assert after.tensor(name).shape == (1, 6, 6, 6), name
    assert np.array_equal(after.tensor(node(after, "conv_a").inputs[1]).data,
                          graph.tensor("wa").data[:, [0, 1, 3, 4, 6, 7]])
    assert after.tensor(node(after, "conv_out").inputs[1]).shape == (4, 6, 1, 1)
    assert drop(graph, after)[0] == 2 * (27 + 1) + 2 * 8 + 2 * (8 + 1) + 4 * 2 + ((8 * 8 + 8) - (6 * 6 + 6) if stage else 0)  # conv_c loses rows and columns
    assert_same_outputs(graph, after)


def test_a_group_prunes_once_at_the_smallest_ratio_asked():
    """Each tied layer is asked for its own ratio: the group removes the
    smallest; a layer asked to keep its channels keeps the whole group."""
    graph = residual()
    after = prune(graph, 'prune-channels{overrides="stem:0.5,conv_b:0.25,conv_a:0,conv_out:0"}')
    assert after.tensor("s1").shape == (1, 6, 6, 6)
    (warning,) = channel_warnings(graph, 'prune-channels{overrides="stem:0.5,conv_b:0,conv_a:0,conv_out:0"}')
    assert "'stem' (the channels are tied to 'conv_b', which keeps its channels)" in warning


@pytest.mark.parametrize("shift", [np.float32(0.3), "per-channel"])
def test_an_add_of_a_constant_passes_the_channels(shift):
    """A constant added after the group (one value, or one per channel whose
    removed entries go) shifts the removed channels' constant output."""
    shift = np.linspace(-1, 1, 8, dtype=np.float32).reshape(1, 8, 1, 1) if isinstance(shift, str) else shift
    graph = residual(dead=(2, 5), bias_shift=shift)
    after = prune(graph, 'prune-channels{overrides="conv_a:0,conv_out:0",ratio=0.25}')
    assert after.tensor("shifted").shape == (1, 6, 6, 6)
    if shift.size > 1:
        assert after.tensor(node(after, "shift").inputs[1]).shape == (1, 6, 1, 1)
    assert_same_outputs(graph, after)


def squeeze_excite(dead=()):
    """x -> conv (8, 1x1) -> Relu -> r; squeeze-excitation: GlobalAveragePool(r)
    -> fc1 (2, 1x1) -> Relu -> fc2 (8, 1x1) -> Sigmoid -> s [1,8,1,1]; Mul(r, s)
    -> head (3, 1x1) -> y. Channels `dead` of conv and fc2 get zero weights."""
    w, w2 = randn(8, 3, 1, 1), randn(8, 2, 1, 1)
    w[list(dead)], w2[list(dead)] = 0, 0
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv"), helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("GlobalAveragePool", ["r"], ["g"]),
             helper.make_node("Conv", ["g", "w1", "b1"], ["f1"], name="fc1"), helper.make_node("Relu", ["f1"], ["h"]),
             helper.make_node("Conv", ["h", "w2", "b2"], ["f2"], name="fc2"),
             helper.make_node("Sigmoid", ["f2"], ["s"]), helper.make_node("Mul", ["r", "s"], ["m"], name="scale"),
             helper.make_node("Conv", ["m", "wh", "bh"], ["y"], name="head")]
    constants = {"w": w, "b": np.abs(randn(8)) + 0.5, "w1": randn(2, 8, 1, 1), "b1": randn(2), "w2": w2,
                 "b2": randn(8), "wh": randn(3, 8, 1, 1), "bh": randn(3)}
    return build(nodes, {"x": [1, 3, 5, 5]}, {"y": [1, 3, 5, 5]}, constants)


def test_a_squeeze_excitation_ties_its_last_layer_to_the_layer_it_scales():
    """MobileNetV3 / EfficientNet: Mul(r, sigmoid(fc2(...))) ties conv and fc2;
    fc1 and head lose the channels as their inputs (it stopped at the Mul)."""
    graph = squeeze_excite(dead=(1, 6))
    assert [n.name for n in tied_layers(graph, node(graph, "conv"))] == ["conv", "fc2"]
    after = prune(graph, 'prune-channels{overrides="fc1:0,head:0",ratio=0.25}')
    assert after.tensor("r").shape == after.tensor("m").shape == (1, 6, 5, 5) and after.tensor("s").shape == (1, 6, 1, 1)
    assert after.tensor(node(after, "fc1").inputs[1]).shape == (2, 6, 1, 1)
    assert_same_outputs(graph, after)


def test_a_gated_unit_ties_its_two_convs():
    """WaveNet / TCN: tanh(conv_f(x)) * sigmoid(conv_g(x)) -> conv_out."""
    wf, wg = randn(6, 3, 1), randn(6, 3, 1)
    wf[[0, 3]], wg[[0, 3]] = 0, 0
    nodes = [helper.make_node("Conv", ["x", "wf", "bf"], ["f"], name="conv_f"), helper.make_node("Tanh", ["f"], ["tf"]),
             helper.make_node("Conv", ["x", "wg", "bg"], ["g"], name="conv_g"),
             helper.make_node("Sigmoid", ["g"], ["sg"]), helper.make_node("Mul", ["tf", "sg"], ["z"], name="gate"),
             helper.make_node("Conv", ["z", "wo", "bo"], ["y"], name="conv_out")]
    constants = {"wf": wf, "bf": randn(6), "wg": wg, "bg": randn(6), "wo": randn(4, 6, 1), "bo": randn(4)}
    graph = build(nodes, {"x": [1, 3, 7]}, {"y": [1, 4, 7]}, constants)
    assert [n.name for n in tied_layers(graph, node(graph, "conv_g"))] == ["conv_f", "conv_g"]
    after = prune(graph, 'prune-channels{overrides="conv_out:0",ratio=0.34}')
    assert after.tensor("z").shape == (1, 4, 7)
    assert_same_outputs(graph, after)


@pytest.mark.parametrize("op, keepdims", [("ReduceMean", 0), ("ReduceMean", 1), ("ReduceSum", 0),
                                         ("ReduceMax", 0)])
def test_channels_pass_a_reduction_over_other_axes(op, keepdims):
    """PyTorch's x.mean((2, 3)) before a classifier stopped the cut."""
    w1 = randn(6, 3, 3, 3)
    w1[[1, 4]] = 0
    shape = [1, 6, 1, 1] if keepdims else [1, 6]
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1"),
             helper.make_node(op, ["c1", "axes"], ["m"], keepdims=keepdims) if op == "ReduceSum" else
             helper.make_node(op, ["c1"], ["m"], axes=[2, 3], keepdims=keepdims),
             helper.make_node("Flatten", ["m"], ["f"]),
             helper.make_node("Gemm", ["f", "wf", "bf"], ["y"], name="fc", transB=1)]
    constants = {"w1": w1, "b1": randn(6), "axes": np.int64([2, 3]), "wf": randn(4, 6), "bf": randn(4)}
    graph = build(nodes, {"x": [1, 3, 6, 6]}, {"y": [1, 4]}, constants)
    after = prune(graph, 'prune-channels{overrides="fc:0",ratio=0.34}')
    assert after.tensor("m").shape == tuple(4 if d == 6 else d for d in shape)
    assert after.tensor(node(after, "fc").inputs[1]).shape == (4, 4)
    assert_same_outputs(graph, after)


def test_a_sequence_models_feed_forward_and_residual_stream_between_reshapes():
    """x [1, 5, 3] -> inp (MatMul + Add) -> h; FFN: fc1 (8) -> Relu -> fc2 (4) -> f;
    Add(h, f) -> head (2). canonicalize makes each a Gemm between Reshapes
    ([B, T, D] <-> [B·T, D]), which stopped the cut: the FFN's hidden
    channels go, and inp and fc2 are tied through the residual Add."""
    wi, w1, w2 = randn(3, 4), randn(4, 8), randn(8, 4)
    wi[:, 1], w2[:, 1], w1[:, [0, 5]] = 0, 0, 0

    def dense(x, w, b, y, name):
        return [helper.make_node("MatMul", [x, w], [y + "_mm"], name=name), helper.make_node("Add", [y + "_mm", b], [y])]

    nodes = [*dense("x", "wi", "bi", "h", "inp"), *dense("h", "w1", "b1", "a", "fc1"),
             helper.make_node("Relu", ["a"], ["r"]), *dense("r", "w2", "b2", "f", "fc2"),
             helper.make_node("Add", ["h", "f"], ["s"], name="residual"), *dense("s", "wo", "bo", "y", "head")]
    constants = {"wi": wi, "bi": randn(4), "w1": w1, "b1": np.abs(randn(8)) + 0.5, "w2": w2, "b2": randn(4),
                 "wo": randn(4, 2), "bo": randn(2)}
    graph = canonical(build(nodes, {"x": [1, 5, 3]}, {"y": [1, 5, 2]}, constants))
    layers = {n.name: n for n in graph.nodes() if n.op == "Gemm"}
    inp, fc1, fc2 = (next(n for name, n in layers.items() if name.startswith(k)) for k in ("inp", "fc1", "fc2"))
    assert [n.name for n in tied_layers(graph, fc2)] == [inp.name, fc2.name]
    after = prune(graph, "prune-channels{ratio=0.25}")
    assert after.tensor(node(after, fc1.name).inputs[1]).shape[1 if not fc1.attrs.trans_b else 0] == 6
    assert after.tensor(node(after, fc2.name).outputs[0]).shape == (5, 3)
    assert after.tensor("s").shape == (1, 5, 3)
    assert_same_outputs(graph, after)


def test_obs_prunes_a_group_closer_to_the_model_than_magnitude(tmp_path):
    """Channels that are not dead: the group loses a quarter, which conv_a and
    conv_out absorb; obs refits them by least squares on samples and keeps
    the output closer (12 seeds: obs 0.80-0.98, magnitude 0.23-0.96)."""
    graph = residual()
    calib = tmp_path / "calib.npz"
    np.savez(calib, x=np.random.default_rng(5).standard_normal((32, 1, 3, 6, 6)).astype(np.float32))
    cosine = {}
    for method in ("magnitude", "obs"):
        after = prune(graph, f'prune-channels{{overrides="conv_a:0,conv_out:0",ratio=0.25,method={method},'
                             f'calib="{calib}"}}')
        assert after.tensor("s1").shape == (1, 6, 6, 6)
        want, got = outputs(graph)["y"].ravel(), outputs(after)["y"].ravel()
        cosine[method] = want @ got / (np.linalg.norm(want) * np.linalg.norm(got))
    assert cosine["obs"] > max(cosine["magnitude"], 0.75)


@pytest.mark.parametrize("slope", [np.float32(0.25), "per-channel"])
def test_channels_pass_prelu(slope):
    """A single or per-channel PReLU slope (Conv-TasNet's, DS-CNN's) stopped the cut."""
    w1 = randn(4, 4, 1, 1)
    w1[2] = 0  # a dead channel with a negative bias: its constant goes through the slope
    b1 = np.array([0.5, -0.3, -0.8, 0.2], np.float32)
    slope = np.array([[[0.1]], [[0.2]], [[0.3]], [[0.4]]], np.float32) if isinstance(slope, str) else slope
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1"),
             helper.make_node("PRelu", ["c1", "slope"], ["p"], name="prelu"),
             helper.make_node("Conv", ["p", "w2", "b2"], ["y"], name="conv2")]
    constants = {"w1": w1, "b1": b1, "slope": slope, "w2": randn(3, 4, 1, 1), "b2": randn(3)}
    graph = build(nodes, {"x": [1, 4, 5, 5]}, {"y": [1, 3, 5, 5]}, constants)
    after = prune(graph, 'prune-channels{overrides="conv2:0"}')
    assert after.tensor("p").shape == (1, 3, 5, 5)
    if slope.size > 1:
        assert after.tensor(node(after, "prelu").inputs[1]).data.reshape(-1).tolist() == \
            pytest.approx([0.1, 0.2, 0.4])
    assert_same_outputs(graph, after)


def conv_then(extra_nodes, outputs, extra_constants=None):
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1"), *extra_nodes]
    constants = {"w1": randn(4, 4, 1, 1), "b1": randn(4), **(extra_constants or {})}
    return build(nodes, {"x": [1, 4, 5, 5]}, outputs, constants)


@pytest.mark.parametrize("mode", ["nearest", "linear"])
def test_channels_pass_through_resize(mode):
    """An upsampling Resize (a YOLO neck, a U-Net decoder) keeps each channel's
    constant: the cut passes it (it stopped there before)."""
    w1 = randn(4, 4, 1, 1)
    w1[1] = 0  # a dead channel: its constant bias resizes to itself
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1"),
             helper.make_node("Resize", ["c1", "", "scales"], ["r"], mode=mode),
             helper.make_node("Conv", ["r", "w2", "b2"], ["y"], name="conv2")]
    constants = {"w1": w1, "b1": randn(4), "scales": np.array([1, 1, 2, 2], np.float32), "w2": randn(3, 4, 1, 1),
                 "b2": randn(3)}
    graph = build(nodes, {"x": [1, 4, 5, 5]}, {"y": [1, 3, 10, 10]}, constants)
    after = prune(graph, 'prune-channels{overrides="conv2:0"}')
    assert after.tensor("r").shape == (1, 3, 10, 10)
    assert_same_outputs(graph, after)


@pytest.mark.parametrize("graph, reason", [
    (lambda: conv_then([helper.make_node("Add", ["c1", "x"], ["y"])], {"y": [1, 4, 5, 5]}), "Add"),
    (lambda: conv_then([helper.make_node("Relu", ["c1"], ["y"])], {"y": [1, 4, 5, 5]}), "graph output"),
    (lambda: conv_then([helper.make_node("Concat", ["c1", "x"], ["y"], axis=2)], {"y": [1, 4, 10, 5]}),
     "joins along axis 2"),
    (lambda: conv_then([helper.make_node("Conv", ["c1", "w2"], ["y"], group=2)], {"y": [1, 2, 5, 5]},
                       {"w2": randn(2, 2, 1, 1)}), "grouped"),
    (lambda: conv_then([helper.make_node("Reshape", ["c1", "s"], ["f"]),
                        helper.make_node("MatMul", ["f", "m"], ["y"])], {"y": [4, 3]},
                       {"s": np.int64([4, 25]), "m": randn(25, 3)}), "does not flatten"),
    (lambda: conv_then([helper.make_node("Conv", ["x", "c1"], ["y"])], {"y": [1, 1, 1, 1]}), "data input"),
    (lambda: conv_then([helper.make_node("ReduceMean", ["x"], ["m"], axes=[1], keepdims=1),
                        helper.make_node("Add", ["c1", "m"], ["y"], name="bcast")], {"y": [1, 4, 5, 5]}),
     "Add 'bcast' broadcasts an input along the channels"),
    (lambda: conv_then([helper.make_node("Concat", ["x", "x"], ["xx"], axis=1, name="cat"),
                        helper.make_node("Mul", ["c1", "xx"], ["y"], name="gate")], {"y": [1, 8, 5, 5]},
                       {"w1": randn(8, 4, 1, 1), "b1": randn(8)}),
     "Mul 'gate' combines them with channels that come from Concat 'cat'"),
])
def test_not_understood_is_left_alone(graph, reason):
    g = graph()
    found = plan(g, node(g, "conv1"), 0.5)
    assert isinstance(found, str) and reason in found
    assert print_ir(prune(g, "prune-channels{ratio=0.5}")) == print_ir(g)


def channel_warnings(graph, pipeline: str = "prune-channels{ratio=0.5}") -> list[str]:
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        prune(graph, pipeline)
    return [str(w.message) for w in caught if "prune-channels" in str(w.message)]


def test_a_ratio_that_removes_nothing_names_every_layer_and_why():
    """It was a silent no-op."""
    graph = conv_then([helper.make_node("Add", ["c1", "x"], ["a"]),
                       helper.make_node("Conv", ["a", "w2"], ["y"], name="conv2")],
                      {"y": [1, 2, 5, 5]}, {"w2": randn(2, 4, 1, 1)})
    (warning,) = channel_warnings(graph)
    assert warning.startswith("pass 'prune-channels' (ratio 0.5): removes no channel: ")
    assert "'conv1' (Add 'Add_1' combines them with channels that come from graph input 'x')" in warning and "'conv2' ('y' is a graph output)" in warning


def test_once_some_layer_shrinks_the_layers_kept_whole_are_named_but_not_the_head():
    """conv1 shrinks (into conv2); conv2 feeds an Add; conv3 is the head."""
    graph = conv_then([helper.make_node("Relu", ["c1"], ["r"]),
                       helper.make_node("Conv", ["r", "w2", "b2"], ["c2"], name="conv2"),
                       helper.make_node("Add", ["c2", "x"], ["a"], name="residual"),
                       helper.make_node("Conv", ["a", "w3"], ["y"], name="conv3")],
                      {"y": [1, 2, 5, 5]}, {"w2": randn(4, 4, 1, 1), "b2": randn(4), "w3": randn(2, 4, 1, 1)})
    assert channel_warnings(graph) == ["pass 'prune-channels' (ratio 0.5): 1 layer(s) keep every channel: "
                                       "'conv2' (Add 'residual' combines them with channels that come from graph input 'x')"]


@pytest.mark.parametrize("graph", [lambda: cnn(), lambda: separable()], ids=["cnn", "separable"])
def test_pruned_models_with_a_head_warn_of_nothing(graph):
    """The head (its channels are the outputs) and a depthwise layer, which
    loses the channels of the layer before it, are no news."""
    assert channel_warnings(graph()) == []


# -- QDQ --------------------------------------------------------------------------------------------
def qdq_cnn():
    """x -> Q/DQ -> conv1 (DQ int8 weights per channel, DQ int32 bias) -> Relu -> Q/DQ
    -> conv2 (DQ int8 weights sharing conv1's zero point tensor) -> y. conv1's
    channels 2 and 5 are dead (q = 0) with a positive bias."""
    w1q = RNG.integers(-127, 128, (8, 3, 3, 3)).astype(np.int8)
    w1q[[2, 5]] = 0
    s1 = (np.abs(randn(8)) * 0.01 + 0.001).astype(np.float32)
    b1q = RNG.integers(100, 2000, 8).astype(np.int32)
    constants = {
        "sx": np.float32(0.05), "zx": np.int8(0), "s1": s1, "z8": np.zeros(8, np.int8), "w1q": w1q,
        "b1q": b1q, "sb1": (0.05 * s1).astype(np.float32), "zb1": np.zeros(8, np.int32),
        "sa": np.float32(0.04), "za": np.int8(-128),
        "w2q": RNG.integers(-127, 128, (8, 8, 1, 1)).astype(np.int8), "s2": np.full(8, 0.01, np.float32),
        "b2q": RNG.integers(-500, 500, 8).astype(np.int32), "sb2": np.full(8, 0.0004, np.float32),
        "zb2": np.zeros(8, np.int32)}

    def dq(q, s, z, out, **attrs):
        return helper.make_node("DequantizeLinear", [q, s, z], [out], **attrs)

    nodes = [helper.make_node("QuantizeLinear", ["x", "sx", "zx"], ["xq"]), dq("xq", "sx", "zx", "xd"),
             dq("w1q", "s1", "z8", "w1", axis=0), dq("b1q", "sb1", "zb1", "b1", axis=0),
             helper.make_node("Conv", ["xd", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("QuantizeLinear", ["r1", "sa", "za"], ["aq"]), dq("aq", "sa", "za", "ad"),
             dq("w2q", "s2", "z8", "w2", axis=0), dq("b2q", "sb2", "zb2", "b2", axis=0),
             helper.make_node("Conv", ["ad", "w2", "b2"], ["y"], name="conv2")]
    return build(nodes, {"x": [1, 3, 6, 6]}, {"y": [1, 8, 6, 6]}, constants)


def test_qdq_weights_scales_and_biases_shrink():
    graph = qdq_cnn()
    after = prune(graph)
    conv1 = node(after, "conv1")
    w_dq, b_dq = after.producer(conv1.inputs[1]), after.producer(conv1.inputs[2])
    kept = [0, 1, 3, 4, 6, 7]
    assert np.array_equal(after.tensor(w_dq.inputs[0]).data, graph.tensor("w1q").data[kept])
    assert np.array_equal(after.tensor(w_dq.inputs[1]).data, graph.tensor("s1").data[kept])
    assert after.tensor(w_dq.inputs[2]).shape == (6,) and after.tensor("z8").shape == (8,)  # shared: copied
    assert after.tensor(b_dq.inputs[0]).data.dtype == np.int32 and after.tensor(b_dq.inputs[0]).shape == (6,)
    assert after.tensor("aq").shape == (1, 6, 6, 6)
    assert after.tensor(after.producer(node(after, "conv2").inputs[1]).inputs[0]).shape == (8, 6, 1, 1)
    assert drop(graph, after)[0] == 2 * 27 + 2 + 8 * 2


def test_qdq_bias_fold_is_within_half_a_bias_step():
    graph = qdq_cnn()
    after = prune(graph)
    want, got = outputs(graph)["y"], outputs(after)["y"]
    assert np.abs(got - want).max() <= 0.5 * 0.0004 + 1e-6
    b2 = after.tensor(after.producer(node(after, "conv2").inputs[2]).inputs[0]).data
    assert not np.array_equal(b2, graph.tensor("b2q").data)  # the constant went somewhere


# -- options, determinism, MLPerf -----------------------------------------------------------------------
@pytest.mark.parametrize("pipeline, message", [
    ("prune-channels{ratio=1.0}", "ratio must be in"),
    ("prune-channels{ratio=-0.25}", "ratio must be in"),
    ('prune-channels{overrides="conv1:2"}', "conv1:2"),
    ('prune-channels{overrides="conv1=0.5"}', "KEY:VALUE"),
])
def test_invalid_options(pipeline, message):
    with pytest.raises(OptionError, match=message) as info:
        parse_pipeline(pipeline)
    assert "\n" not in str(info.value)


def test_override_of_an_unknown_layer_is_an_error():
    with pytest.raises(OptionError, match="conv9"):
        prune(cnn(), 'prune-channels{overrides="conv9:0.5"}')


def test_ratio_zero_and_deterministic():
    graph = cnn()
    assert print_ir(prune(graph, "prune-channels{ratio=0}")) == print_ir(graph)
    assert print_ir(prune(graph)) == print_ir(prune(graph))


def test_at_least_one_channel_stays():
    after = prune(dense_chain(), "prune-channels{ratio=0.99}")
    assert after.tensor("h1").shape == (2, 1) and after.tensor("h2").shape == (2, 1)


@requires_models
@pytest.mark.parametrize("name", ["kws_dscnn_f32", "ad_autoencoder_int8_qdq", "ic_resnet8_int8_qdq"])
def test_mlperf_models_stay_valid_and_shrink(name):
    graph = canonical(load(MODELS_DIR / f"{name}.onnx"))
    after = PassManager(parse_pipeline("prune-channels{ratio=0.25}"), verify_each=True).run(graph.copy())
    before, now = summarize(graph).totals, summarize(after).totals
    assert now["params"] < 0.8 * before["params"] and now["macs"] < 0.8 * before["macs"]
    sample = np.load(MODELS_DIR / f"{name}.io.npz")["input"]
    (y,) = run(after, {after.inputs[0]: sample}).values()
    assert y.shape == graph.tensor(graph.outputs[0]).shape and np.all(np.isfinite(y.astype(np.float64)))


def test_obs_refits_a_tied_layer_that_also_reads_the_pruned_channels(tmp_path):
    """A MobileNetV2-style stage: conv_c reads the group's channels (s1) and adds
    its output to them, so one plan cuts its input columns and its output
    rows. obs refit it for its original outputs and stored 8 rows where 6
    remain ("cannot reshape"): the removed rows are dropped."""
    graph = residual(stage=True)
    calib = tmp_path / "calib.npz"
    np.savez(calib, x=np.random.default_rng(5).standard_normal((32, 1, 3, 6, 6)).astype(np.float32))
    after = prune(graph, f'prune-channels{{overrides="conv_a:0,conv_out:0",ratio=0.25,method=obs,calib="{calib}"}}')
    assert after.tensor(node(after, "conv_c").inputs[1]).shape == (6, 6, 1, 1)
    want, got = outputs(graph)["y"].ravel(), outputs(after)["y"].ravel()
    assert want @ got / (np.linalg.norm(want) * np.linalg.norm(got)) > 0.5
