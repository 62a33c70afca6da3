"""nnc.train.float_ops: batched PyTorch kernels of the float IR ops.

Whole canonical graphs (the shipped examples and small onnx.helper models) run
node by node on a batch of 8 and must equal nnc's reference interpreter on
every sample; single nodes with the corners of their attributes must equal
the op's numpy `evaluate`; gradients reach the weights; check_kernels
refuses what has no kernel, and what would mix the samples of a batch
(batch_problem) runs sample by sample."""

from __future__ import annotations

import re

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="nnc.train needs PyTorch (pip install 'nnc[train]')")

from onnx import helper  # noqa: E402

import nnc  # noqa: E402
from nnc.errors import UnsupportedError  # noqa: E402
from nnc.frontend.onnx_loader import load  # noqa: E402
from nnc.ir import Graph, Node  # noqa: E402
from nnc.ops import get_op  # noqa: E402
from nnc.ops.conv import ConvAttrs  # noqa: E402
from nnc.ops.elementwise import AlphaAttrs, HardSigmoidAttrs, SeluAttrs  # noqa: E402
from nnc.ops.gemm import GemmAttrs  # noqa: E402
from nnc.ops.indexing import GatherAttrs, SliceAttrs, SplitAttrs  # noqa: E402
from nnc.ops.layernorm import LayerNormAttrs  # noqa: E402
from nnc.ops.math_unary import GeluAttrs  # noqa: E402
from nnc.ops.normalization import BatchNormAttrs  # noqa: E402
from nnc.ops.pool import AveragePoolAttrs, GlobalPoolAttrs, PoolAttrs  # noqa: E402
from nnc.ops.reduce import ReduceAttrs  # noqa: E402
from nnc.ops.registry import NoAttrs  # noqa: E402
from nnc.ops.replicate import CastAttrs, ExpandAttrs, TileAttrs  # noqa: E402
from nnc.ops.resize import ResizeAttrs  # noqa: E402
from nnc.ops.shape import ConcatAttrs, PadAttrs, ReshapeAttrs, TransposeAttrs  # noqa: E402
from nnc.ops.softmax import SoftmaxAttrs  # noqa: E402
from nnc.textir import parse_ir  # noqa: E402
from nnc.train.float_ops import batch_problem, check_kernels, run_node, sample_problem, supported_ops  # noqa: E402,E501

from graphs import activations_graph, canonical, onnx_graph, pool_concat_graph, residual_graph  # noqa: E402

BATCH = 8
TOL = {"rtol": 1e-5, "atol": 1e-5}

def _canonical(graph: Graph) -> Graph:
    return canonical(graph)


def _run_batched(graph: Graph, feeds: dict[str, np.ndarray], weights: dict | None = None) -> dict:
    """Every value of `graph` on batched `feeds`, node by node (as the twin runs it);
    `weights` replace constants by name."""
    env = {name: torch.from_numpy(value) for name, value in feeds.items()}
    for name, tensor in graph.tensors.items():
        if tensor.is_constant:
            env[name] = (weights or {}).get(name, torch.from_numpy(tensor.data))
    for node in graph.nodes():
        outputs = run_node(node, [env[t] if t else None for t in node.inputs])
        env.update((name, value) for name, value in zip(node.outputs, outputs) if name)
    return env


def _batch_inputs(graph: Graph, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {name: rng.standard_normal((BATCH, *graph.tensor(name).shape[1:])).astype(np.float32)
            for name in graph.inputs}


def _assert_matches_reference(graph: Graph) -> None:
    feeds = _batch_inputs(graph)
    env = _run_batched(graph, feeds)
    for i in range(BATCH):
        reference = nnc.run(graph, {name: x[i:i + 1] for name, x in feeds.items()})
        for name, expected in reference.items():
            got = env[name][i:i + 1].detach().numpy()
            assert got.dtype == np.float32 and got.shape == expected.shape
            assert np.allclose(got, expected, **TOL), f"{name} sample {i}: max error {np.abs(got - expected).max()}"


EXAMPLES = {"digits": lambda: _canonical(load("examples/digits/digits.onnx")),
            "tiny_cnn": lambda: _canonical(load("examples/01-tiny-cnn/tiny_cnn.onnx")),
            "residual": residual_graph, "pool_concat": pool_concat_graph, "activations": activations_graph}


@pytest.fixture(scope="module", params=sorted(EXAMPLES))
def example(request) -> Graph:
    return EXAMPLES[request.param]()


def test_canonical_graph_matches_reference_per_sample(example):
    check_kernels(example)
    assert batch_problem(example) is None
    _assert_matches_reference(example)


def test_gradients_reach_the_first_weight(example):
    weighted = next(n for n in example.nodes() if n.op in ("Conv", "Gemm"))
    name = weighted.inputs[1]
    weight = torch.from_numpy(example.tensor(name).data.copy()).requires_grad_()
    env = _run_batched(example, _batch_inputs(example, seed=1), {name: weight})
    loss = sum(env[out].square().mean() for out in example.outputs)
    loss.backward()
    assert weight.grad is not None and torch.isfinite(weight.grad).all() and weight.grad.abs().sum() > 0


# -- single nodes against the ops' numpy evaluate ------------------------------------------
def _x(*shape, low=None):
    """A run-time input: a batch of samples of IR shape `shape` (leading 1)."""
    rng = np.random.default_rng(len(shape) * 7 + sum(shape))
    batch = (BATCH, *shape[1:])
    values = rng.standard_normal(batch) if low is None else rng.uniform(low, 2.0, batch)
    return ("run", values.astype(np.float32))


def _c(*shape, low=None):
    """A constant input of `shape`."""
    _, values = _x(1, *shape, low=low)
    return ("const", values[0])


NODE_CASES = {
    "conv_transpose": ("ConvTranspose", ConvAttrs((3, 3), (2, 2), (1, 0, -1, 1), (1, 2), group=2, act_max=0.7),
                       [_x(1, 4, 5, 5), _c(4, 3, 3, 3), _c(6)]),
    "conv1d_channels_last": ("Conv", ConvAttrs((3,), (2,), (1, 2), (1,), channels_last=True, act_min=-0.5),
                             [_x(1, 9, 4), _c(5, 4, 3), None]),
    "max_pool_ceil": ("MaxPool", PoolAttrs((3, 2), (2, 2), (1, 0, 0, 1), (1, 2), ceil_mode=True),
                      [_x(1, 3, 8, 9)]),
    "average_pool_ceil": ("AveragePool", AveragePoolAttrs((3, 3), (3, 2), (1, 1, 1, 0), (1, 1), ceil_mode=True,
                                                          count_include_pad=True), [_x(1, 2, 8, 7)]),
    "average_pool_dilated_nwc": ("AveragePool", AveragePoolAttrs((2,), (1,), (1, 1), (2,), channels_last=True),
                                 [_x(1, 7, 3)]),
    "global_max_pool_nhwc": ("GlobalMaxPool", GlobalPoolAttrs(channels_last=True), [_x(1, 3, 4, 5)]),
    "gemm": ("Gemm", GemmAttrs(0.5, 2.0, False, True, -1.0, 1.0), [_x(1, 6), _c(4, 6), _c(4)]),
    "matmul_both_run": ("MatMul", NoAttrs(), [_x(1, 2, 3, 5), _x(1, 2, 5, 4)]),
    "matmul_vector": ("MatMul", NoAttrs(), [_x(1, 3, 5), _c(5)]),
    "batch_norm": ("BatchNormalization", BatchNormAttrs(1e-3), [_x(1, 3, 4, 4), _c(3), _c(3), _c(3),
                                                               _c(3, low=0.5)]),
    "layer_norm": ("LayerNormalization", LayerNormAttrs(2), [_x(1, 3, 8), _c(8), _c(8)]),
    "softmax_coerce_2d": ("Softmax", SoftmaxAttrs(1, coerce_2d=True), [_x(1, 3, 4)]),
    "softmax_keep_mask": ("Softmax", SoftmaxAttrs(2), [_x(1, 3, 4), ("const", np.tril(np.ones((1, 3, 4), bool)))]),
    "log_softmax": ("LogSoftmax", SoftmaxAttrs(1), [_x(1, 5, 3)]),
    "log_softmax_coerce_2d": ("LogSoftmax", SoftmaxAttrs(1, coerce_2d=True), [_x(1, 3, 4)]),
    "reduce_max": ("ReduceMax", ReduceAttrs((2,), keepdims=False), [_x(1, 3, 4)]),
    "reduce_sum": ("ReduceSum", ReduceAttrs((1, 2)), [_x(1, 3, 4)]),
    "gelu": ("Gelu", GeluAttrs(), [_x(1, 6)]),
    "gelu_tanh": ("Gelu", GeluAttrs("tanh"), [_x(1, 6)]),
    "leaky_relu": ("LeakyRelu", AlphaAttrs(0.2), [_x(1, 6)]),
    "thresholded_relu": ("ThresholdedRelu", AlphaAttrs(0.3), [_x(1, 6)]),
    "elu": ("Elu", AlphaAttrs(0.7), [_x(1, 6)]),
    "selu": ("Selu", SeluAttrs(), [_x(1, 6)]),
    "hard_sigmoid": ("HardSigmoid", HardSigmoidAttrs(0.3, 0.4), [_x(1, 6)]),
    "prelu": ("PRelu", NoAttrs(), [_x(1, 3, 4), _c(3, 1)]),
    "pow": ("Pow", NoAttrs(), [_x(1, 6, low=0.5), _c(6)]),
    **{op.lower(): (op, NoAttrs(), [_x(1, 6, low=0.5)]) for op in ("Erf", "Sqrt", "Exp", "Log", "Neg", "Abs",
                                                                   "Reciprocal", "Sign", "Sin", "Cos", "Relu", "HardSwish", "Softplus",
                                                                   "Softsign", "Mish")},
    "silu": ("Silu", NoAttrs(), [_x(1, 6)]),
    "cast": ("Cast", CastAttrs("f64"), [_x(1, 6)]),
    "expand": ("Expand", ExpandAttrs((1, 3, 4)), [_x(1, 1, 4)]),
    "tile": ("Tile", TileAttrs((1, 2, 3)), [_x(1, 2, 2)]),
    "concat_constant": ("Concat", ConcatAttrs(2), [_x(1, 2, 3), ("const", np.ones((1, 2, 2), np.float32))]),
    "split": ("Split", SplitAttrs(1, (1, 2)), [_x(1, 3, 4)]),
    "slice_negative_step": ("Slice", SliceAttrs((0, 3, 1), (1, -2, 1), (1, 2, 3)), [_x(1, 4, 5)]),
    "pad_reflect": ("Pad", PadAttrs((0, 2, -1, 0, 1, 2), "reflect"), [_x(1, 4, 5)]),
    "pad_edge": ("Pad", PadAttrs((0, 1, 3, 0, 2, 0), "edge"), [_x(1, 4, 5)]),
    "pad_wrap": ("Pad", PadAttrs((0, 3, 1, 0, 0, 2), "wrap"), [_x(1, 4, 5)]),
    "pad_constant_crop": ("Pad", PadAttrs((0, -1, 2, 0, 1, -2), value=1.5), [_x(1, 4, 5)]),
    "gather_embedding": ("Gather", GatherAttrs(0), [_c(10, 4), ("run", np.arange(-12, 12).reshape(BATCH, 3))]),
    "gather_run_data": ("Gather", GatherAttrs(2), [_x(1, 3, 5), ("const", np.array([[4, -1], [0, 2]]))]),
    "resize_linear": ("Resize", ResizeAttrs((6, 9), (1.5, 2.25), "linear"), [_x(1, 2, 4, 4)]),
    "resize_nearest": ("Resize", ResizeAttrs((8, 6), (2.0, 1.5), "nearest", "asymmetric", "floor"),
                       [_x(1, 2, 4, 4)]),
    "transpose": ("Transpose", TransposeAttrs((0, 2, 1)), [_x(1, 3, 4)]),
    "reshape": ("Reshape", ReshapeAttrs((1, 12)), [_x(1, 3, 4)]),
}


@pytest.mark.parametrize("case", sorted(NODE_CASES))
def test_node_matches_evaluate_per_sample(case):
    op, attrs, inputs = NODE_CASES[case]
    names = [f"in{i}" if spec else "" for i, spec in enumerate(inputs)]
    reference_outputs = len(get_op(op).evaluate(attrs, [_sample(spec, 0) for spec in inputs]))
    node = Node("node", op, names, [f"out{i}" for i in range(reference_outputs)], attrs)
    got = run_node(node, [torch.from_numpy(spec[1]) if spec else None for spec in inputs])
    for i in range(BATCH):
        expected = get_op(op).evaluate(attrs, [_sample(spec, i) for spec in inputs])
        for g, e in zip(got, expected, strict=True):
            assert g[i:i + 1].shape == e.shape
            assert np.allclose(g[i:i + 1].numpy(), e, **TOL), f"{case} sample {i}"


def _sample(spec, i: int):
    if spec is None:
        return None
    kind, values = spec
    return values[i:i + 1] if kind == "run" else values


# -- refusals --------------------------------------------------------------------------
def test_supported_ops_cover_the_cnn_and_keyword_classifier_ops():
    assert {"Conv", "Gemm", "MatMul", "Relu", "Clip", "LeakyRelu", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish",
            "Gelu", "Add", "Sub", "Mul", "Div", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool",
            "Reshape", "Transpose", "Concat", "Softmax", "LogSoftmax", "Pad", "ReduceMean", "Slice",
            "Resize"} <= supported_ops()


def test_unsupported_op_is_named():
    """(The front end lowers an ONNX CumSum to a MatMul; the IR op has no kernel.)"""
    graph = parse_ir('graph "g" {\n  input %x: f32[1,5]\n'
                     '  %y: f32[1,5] = CumSum "running_total" (%x) {axis=1}\n  output %y\n}\n')
    with pytest.raises(UnsupportedError, match="node 'running_total' \\(CumSum\\): op CumSum has no training kernel"):
        check_kernels(graph)
    node = next(n for n in graph.nodes() if n.op == "CumSum")
    with pytest.raises(UnsupportedError, match="running_total.*CumSum"):
        run_node(node, [torch.zeros(2, 5)])


RECURRENT_CASES = [  # (op, direction, layout, clip, initial states, LSTM peepholes, GRU linear_before_reset)
    (op, direction, layout, clip, states, peep, reset)
    for op in ("LSTM", "GRU", "RNN") for direction in ("forward", "reverse", "bidirectional") for layout in (0, 1)
    for clip, states, peep, reset in ((None, False, False, False), (0.7, True, op == "LSTM", op == "GRU"))]


@pytest.mark.parametrize("op,direction,layout,clip,states,peep,reset", RECURRENT_CASES)
def test_recurrent_kernels_equal_the_reference(op, direction, layout, clip, states, peep, reset):
    """LSTM, GRU and RNN against recurrent.evaluate_float: every output, the
    LSTM's IR-only cell sequence included, to float32 rounding; gradients
    reach X, W, R and B."""
    from nnc.ops.recurrent import DEFAULT_ACTIVATIONS, GATES, RecurrentAttrs

    rng = np.random.default_rng(len(RECURRENT_CASES) + RECURRENT_CASES.index(
        (op, direction, layout, clip, states, peep, reset)))
    d, hidden, features, steps, batch, gates = 1 + (direction == "bidirectional"), 3, 4, 5, 2, GATES[op]
    acts = DEFAULT_ACTIVATIONS[op] * d
    attrs = RecurrentAttrs(hidden, direction, layout, acts, (0.0,) * len(acts), (0.0,) * len(acts), clip, False,
                           reset)
    state = (d, batch, hidden) if layout == 0 else (batch, d, hidden)
    x = rng.standard_normal((steps, batch, features) if layout == 0 else (batch, steps, features))
    inputs = [x, rng.standard_normal((d, gates * hidden, features)), rng.standard_normal((d, gates * hidden, hidden)),
              rng.standard_normal((d, 2 * gates * hidden)), None,
              rng.standard_normal(state) if states else None]
    if op == "LSTM":
        inputs += [rng.standard_normal(state) if states else None, rng.standard_normal((d, 3 * hidden)) if peep else None]
    inputs = [None if v is None else v.astype(np.float32) for v in inputs]
    want = get_op(op).evaluate(attrs, inputs)
    tensors = [None if v is None else torch.tensor(v, requires_grad=True) for v in inputs]
    got = run_node(Node("rnn", op, [], [], attrs), tensors)
    assert len(got) == len(want) == (4 if op == "LSTM" else 2)
    for w, g in zip(want, got):
        np.testing.assert_allclose(g.detach().numpy(), w, rtol=1e-5, atol=1e-5)
    sum(g.sum() for g in got).backward()
    assert all(t.grad is not None and t.grad.abs().sum() > 0 for t in tensors[:4])


@pytest.mark.parametrize("name", ["Relu", "Affine", "LeakyRelu", "ThresholdedRelu", "ScaledTanh", "HardSigmoid",
                                  "Elu", "Softsign", "Softplus"])
def test_recurrent_activations_equal_the_reference(name):
    """Every ONNX recurrent activation, at its parameters, as an RNN's one gate."""
    from nnc.ops import rnn_activations
    from nnc.ops.recurrent import RecurrentAttrs

    (act,), alphas, betas = rnn_activations.resolve([name], [0.3], [0.6], "test")
    attrs = RecurrentAttrs(3, "forward", 0, (act,), alphas, betas)
    rng = np.random.default_rng(9)
    inputs = [rng.standard_normal(s).astype(np.float32) * 2 for s in ((6, 2, 4), (1, 3, 4), (1, 3, 3))]
    want = get_op("RNN").evaluate(attrs, inputs)
    got = run_node(Node("rnn", "RNN", [], [], attrs), [torch.from_numpy(v) for v in inputs])
    for w, g in zip(want, got):
        np.testing.assert_allclose(g.numpy(), w, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("op,gates", [("GRU", 3), ("LSTM", 4), ("RNN", 1)])
def test_a_time_major_recurrent_layer_runs_sample_by_sample(op, gates):
    """As PyTorch exports nn.GRU(batch_first=True): a Transpose to time-major
    [T, 1, F] feeds the recurrent node, whose batch is then axis 1. The graph
    has kernels, runs sample by sample, and equals the reference there."""
    from nnc.interpreter import run

    rng = np.random.default_rng(5)
    weights = {"w": rng.standard_normal((1, gates * 4, 3)).astype(np.float32),
               "r": rng.standard_normal((1, gates * 4, 4)).astype(np.float32)}
    nodes = [helper.make_node("Transpose", ["x"], ["x_t"], name="/gru/Transpose", perm=[1, 0, 2]),
             helper.make_node(op, ["x_t", "w", "r"], ["", "h"], name="/gru/GRU", hidden_size=4),
             helper.make_node("Transpose", ["h"], ["y"], name="/gru/batch_first", perm=[1, 0, 2])]
    graph = onnx_graph("seq", nodes, {"x": [1, 5, 3]}, {"y": [1, 1, 4]}, weights, opset=14)
    check_kernels(graph)
    assert re.search(r"node '.*' \(.*\): output '.*' has shape \[5, 1, 3\]", batch_problem(graph))
    for sample in rng.standard_normal((3, 1, 5, 3)).astype(np.float32):
        env = {"x": torch.from_numpy(sample)}
        for node in graph.nodes():
            args = [None if not t else env[t] if t in env else torch.from_numpy(graph.constant(t))
                    for t in node.inputs]
            env.update((t, v) for t, v in zip(node.outputs, run_node(node, args, batched=False)) if t)
        np.testing.assert_allclose(env["y"].numpy(), run(graph, {"x": sample})["y"], rtol=1e-5, atol=1e-5)


BATCH_MIXING = {
    "transpose_moves_batch": ("%y: f32[1,1,5] = Transpose \"swap\" (%x) {perm=[1,0,2]}", "x: f32[1,1,5]",
                              "moves axis 0"),
    "reshape_drops_batch": ("%y: f32[4,5] = Reshape \"flat\" (%x) {shape=[4,5]}", "x: f32[1,4,5]",
                            "output 'y' has shape \\[4, 5\\]"),
    "rows_with_a_per_row_gemm_bias": ("const %w: f32[3,5] = hex\"" + "00" * 60 + "\"\n"
                                      "  const %c: f32[4,3] = hex\"" + "00" * 48 + "\"\n"
                                      "  %r: f32[4,5] = Reshape \"rows\" (%x) {shape=[4,5]}\n"
                                      "  %y: f32[4,3] = Gemm \"fc\" (%r, %w, %c) {alpha=1.0, beta=1.0, trans_a=false, "
                                      "trans_b=true, act_min=none, act_max=none}", "x: f32[1,4,5]",
                                      "reads rows that hold the batch folded in"),
    "rows_read_across": ("%r: f32[4,5] = Reshape \"rows\" (%x) {shape=[4,5]}\n"
                         "  %y: f32[4,5] = Softmax \"sm\" (%r) {axis=0, coerce_2d=false}", "x: f32[1,4,5]",
                         "reads rows that hold the batch folded in"),
    "softmax_over_batch": ("%y: f32[1,4] = Softmax \"sm\" (%x) {axis=0, coerce_2d=false}", "x: f32[1,4]",
                           "axis 0"),
    "log_softmax_over_batch": ("%y: f32[1,4] = LogSoftmax \"lsm\" (%x) {axis=0, coerce_2d=false}", "x: f32[1,4]",
                               "axis 0"),
    "reduce_over_batch": ("%y: f32[1,4] = ReduceMean \"mean\" (%x) {axes=[0], keepdims=true}", "x: f32[1,4]",
                          "reduces axis 0"),
    "concat_on_batch": ("%y: f32[1,4] = Concat \"cat\" (%x) {axis=0}", "x: f32[1,4]", "axis 0"),
    "gemm_runtime_b": (("%y: f32[1,1] = Gemm \"fc\" (%x, %x, _) {alpha=1.0, beta=1.0, trans_a=false, "
                        "trans_b=true, act_min=none, act_max=none}"), "x: f32[1,4]", "must be a constant"),
    "pad_on_batch": ("%y: f32[1,4] = Pad \"pad\" (%x) {pads=[1,0,-1,0], mode=\"constant\", value=0.0}",
                     "x: f32[1,4]", "pads axis 0"),
    "matmul_runtime_matrix_b": ("%y: f32[1,1] = MatMul \"mm\" (%x, %x) {}", "x: f32[1,1]", "run-time B of rank 2"),
    "gather_batch_axis": ("const %i: i64[1] = [0]\n  %y: f32[1,4] = Gather \"g\" (%x, %i) {axis=0}", "x: f32[1,4]",
                          "gathers along axis 0"),
    "input_without_batch": ("%y: f32[2,4] = Relu \"relu\" (%x) {}", "x: f32[2,4]", "input 'x' has shape"),
}


# the cases whose graph input keeps a leading 1: they run sample by sample (an output without one stacks)
SAMPLE_BY_SAMPLE = set(BATCH_MIXING) - {"input_without_batch"}


@pytest.mark.parametrize("case", sorted(BATCH_MIXING))
def test_batch_mixing_node_runs_sample_by_sample_or_is_refused(case):
    """The batched kernels cannot run these nodes (batch_problem says why); the
    twin runs each sample alone at the IR's shapes, as the reference does,
    unless a graph input has no leading 1 (sample_problem); an output without
    one comes back as [N, *its shape]."""
    from nnc.train.twin import Twin

    statement, input_type, reason = BATCH_MIXING[case]
    graph = parse_ir(f'graph "g" {{\n  input %{input_type}\n  {statement}\n  output %y\n}}\n')
    assert re.search(reason, batch_problem(graph))
    if case not in SAMPLE_BY_SAMPLE:
        assert sample_problem(graph) is not None
        with pytest.raises(UnsupportedError, match="has shape"):
            Twin(graph)
        return
    twin = Twin(graph)
    x = np.random.default_rng(3).standard_normal((3, *graph.tensor("x").shape[1:])).astype(np.float32)
    with torch.no_grad():
        got = twin(torch.from_numpy(x)).numpy()
    join = np.concatenate if graph.tensor("y").shape[0] == 1 else np.stack
    want = join([nnc.run(graph, {"x": x[i:i + 1]})["y"] for i in range(3)])
    assert got.shape == want.shape and np.allclose(got, want, **TOL)


def test_a_linear_over_the_rows_of_a_sequence_runs_batched():
    """fuse-bias's Linear over [1, T, K]: Reshape [T, K], Gemm, Reshape back holds
    the batch folded into the rows ([N · T, K]) and matches the reference per sample."""
    rng = np.random.default_rng(4)
    text = ('graph "g" {\n  input %x: f32[1,4,5]\n'
            f'  const %w: f32[3,5] = hex"{rng.standard_normal((3, 5)).astype(np.float32).tobytes().hex()}"\n'
            f'  const %b: f32[3] = hex"{rng.standard_normal(3).astype(np.float32).tobytes().hex()}"\n'
            '  %r: f32[4,5] = Reshape "rows" (%x) {shape=[4,5]}\n'
            '  %g: f32[4,3] = Gemm "fc" (%r, %w, %b) {alpha=1.0, beta=1.0, trans_a=false, trans_b=true, '
            'act_min=0.0, act_max=none}\n'
            '  %y: f32[1,4,3] = Reshape "unrows" (%g) {shape=[1,4,3]}\n  output %y\n}\n')
    graph = parse_ir(text)
    assert batch_problem(graph) is None
    _assert_matches_reference(graph)


# graphs whose kernels meet IR shapes with axis 0 other than the batch when run
# sample by sample (found by review: Gemm's trans_a, Pad's other modes and
# Expand of a lower rank gave wrong values or shapes there)
ONE_SAMPLE = {
    "gemm_trans_a": ('const %w: f32[4,4] = hex"' + np.arange(16, dtype=np.float32).tobytes().hex() + '"\n'
                     '  %a: f32[4,4] = Reshape "r" (%x) {shape=[4,4]}\n'
                     '  %g: f32[4,4] = Gemm "fc" (%a, %w, _) {alpha=1.0, beta=1.0, trans_a=true, trans_b=false, '
                     'act_min=none, act_max=none}\n'
                     '  %y: f32[1,16] = Reshape "u" (%g) {shape=[1,16]}', "x: f32[1,16]"),
    **{f"pad_{mode}_axis0": ('%t: f32[4,1] = Transpose "t" (%x) {perm=[1,0]}\n'
                             f'  %p: f32[6,1] = Pad "pad" (%t) {{pads=[1,0,1,0], mode="{mode}", value=0.0}}\n'
                             '  %y: f32[1,6] = Transpose "u" (%p) {perm=[1,0]}', "x: f32[1,4]")
       for mode in ("edge", "reflect", "wrap", "constant")},
    "expand_lower_rank": ('%s: f32[4] = Reshape "r" (%x) {shape=[4]}\n'
                          '  %y: f32[1,4] = Expand "e" (%s) {shape=[1,4]}', "x: f32[1,4]"),
    "tile_axis0": ('%t: f32[4,1] = Transpose "t" (%x) {perm=[1,0]}\n'
                   '  %p: f32[8,1] = Tile "tile" (%t) {repeats=[2,1]}\n'
                   '  %y: f32[1,8] = Transpose "u" (%p) {perm=[1,0]}', "x: f32[1,4]"),
    "slice_axis0_backwards": ('%t: f32[4,1] = Transpose "t" (%x) {perm=[1,0]}\n'
                              '  %p: f32[2,1] = Slice "s" (%t) {starts=[3,0], steps=[-2,1], sizes=[2,1]}\n'
                              '  %y: f32[1,2] = Transpose "u" (%p) {perm=[1,0]}', "x: f32[1,4]"),
}


@pytest.mark.parametrize("case", sorted(ONE_SAMPLE))
def test_kernels_on_one_sample_compute_the_op(case):
    from nnc.train.twin import Twin

    statement, input_type = ONE_SAMPLE[case]
    graph = parse_ir(f'graph "g" {{\n  input %{input_type}\n  {statement}\n  output %y\n}}\n')
    assert batch_problem(graph) is not None
    x = np.random.default_rng(3).standard_normal((3, *graph.tensor("x").shape[1:])).astype(np.float32)
    with torch.no_grad():
        got = Twin(graph)(torch.from_numpy(x)).numpy()
    join = np.concatenate if graph.tensor("y").shape[0] == 1 else np.stack
    want = join([nnc.run(graph, {"x": x[i:i + 1]})["y"] for i in range(3)])
    assert got.shape == want.shape and np.allclose(got, want, **TOL), case


def test_a_convolution_over_four_spatial_axes_is_refused_by_name():
    from nnc.train.twin import Twin

    text = ('graph "g" {\n  input %x: f32[1,1,2,2,2,2]\n  const %w: f32[1,1,1,1,1,1] = [2.0]\n'
            '  %y: f32[1,1,2,2,2,2] = Conv "c" (%x, %w, _) {kernel_shape=[1,1,1,1], strides=[1,1,1,1], '
            'pads=[0,0,0,0,0,0,0,0], dilations=[1,1,1,1], group=1, channels_last=false, act_min=none, '
            'act_max=none}\n  output %y\n}\n')
    with pytest.raises(UnsupportedError, match="node 'c' \\(Conv\\): has 4 spatial axes"):
        Twin(parse_ir(text))


def test_a_lower_rank_runtime_operand_runs_sample_by_sample():
    """Batched, the rank-1 sum would broadcast along the batch axis."""
    from nnc.train.twin import Twin

    text = ('graph "g" {\n  input %x: f32[1,4]\n'
            '  %s: f32[1] = ReduceSum "sum" (%x) {axes=[1], keepdims=false}\n'
            '  %y: f32[1,4] = Add "add" (%x, %s) {}\n  output %y\n}\n')
    graph = parse_ir(text)
    assert re.search("node 'add' \\(Add\\): run-time input 's' of rank 1", batch_problem(graph))
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    with torch.no_grad():
        got = Twin(graph)(torch.from_numpy(x)).numpy()
    np.testing.assert_array_equal(got, x + x.sum(axis=1, keepdims=True))
