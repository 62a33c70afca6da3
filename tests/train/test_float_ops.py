"""nnc.train.float_ops: batched PyTorch kernels of the float IR ops.

Whole canonical graphs (the shipped examples and small onnx.helper models) run
node by node on a batch of 8 and must equal nnc's reference interpreter on
every sample; single nodes with the corners of their attributes must equal
the op's numpy `evaluate`; gradients reach the weights; check_supported
refuses what has no kernel or would mix the samples of a batch."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="nnc.train needs PyTorch (pip install 'nnc[train]')")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import nnc  # noqa: E402
from nnc.errors import UnsupportedError  # noqa: E402
from nnc.frontend.onnx_loader import load, lower_model  # noqa: E402
from nnc.ir import Graph, Node  # noqa: E402
from nnc.ops import get_op  # noqa: E402
from nnc.ops.conv import ConvAttrs  # noqa: E402
from nnc.ops.elementwise import AlphaAttrs, HardSigmoidAttrs  # noqa: E402
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
from nnc.passmanager import PassManager, parse_pipeline  # noqa: E402
from nnc.pipelines import CANONICAL  # noqa: E402
from nnc.textir import parse_ir  # noqa: E402
from nnc.train.float_ops import check_supported, run_node, supported_ops  # noqa: E402

BATCH = 8
TOL = {"rtol": 1e-5, "atol": 1e-5}
FLOAT_PIPELINE = ",".join(p for p in CANONICAL.split(",") if p != "layout")  # NCHW kept


def _canonical(graph: Graph) -> Graph:
    return PassManager(parse_pipeline(FLOAT_PIPELINE)).run(graph)


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


# -- small ONNX models ---------------------------------------------------------------
def _onnx_graph(name: str, nodes, inputs: dict, outputs: dict, weights: dict, opset: int = 13) -> Graph:
    """The canonical graph of a float ONNX model; `inputs` and `outputs` map names to shapes."""
    model = helper.make_model(
        helper.make_graph(nodes, name,
                          [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs.items()],
                          [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in outputs.items()],
                          [numpy_helper.from_array(np.asarray(v), k) for k, v in weights.items()]),
        opset_imports=[helper.make_opsetid("", opset)], ir_version=8)
    return _canonical(lower_model(model, {}, name=name))


def _weights(seed: int, **shapes) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {k: (rng.standard_normal(s) * 0.5).astype(np.float32) for k, s in shapes.items()}


def residual_graph() -> Graph:
    """Depthwise conv, a constant-first Mul, a residual Add, a strided dilated
    conv with asymmetric pads and a fused Clip, GlobalAveragePool, Gemm."""
    w = _weights(1, dw_w=(4, 1, 3, 3), dw_b=(4,), scale=(1, 4, 1, 1), pw_w=(6, 4, 3, 3), pw_b=(6,),
                 fc_w=(5, 6), fc_b=(5,))
    w.update(lo=np.float32(0.0), hi=np.float32(0.8))
    nodes = [
        helper.make_node("Conv", ["x", "dw_w", "dw_b"], ["dw"], group=4, pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["dw"], ["dw_relu"]),
        helper.make_node("Mul", ["scale", "dw_relu"], ["scaled"]),
        helper.make_node("Add", ["scaled", "x"], ["res"]),
        helper.make_node("Conv", ["res", "pw_w", "pw_b"], ["pw"], strides=[2, 2], pads=[0, 1, 1, 0],
                         dilations=[2, 1]),
        helper.make_node("Clip", ["pw", "lo", "hi"], ["pw_clip"]),
        helper.make_node("GlobalAveragePool", ["pw_clip"], ["gap"]),
        helper.make_node("Flatten", ["gap"], ["flat"]),
        helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["logits"], transB=1, alpha=0.5, beta=2.0),
    ]
    return _onnx_graph("residual", nodes, {"x": [1, 4, 8, 8]}, {"logits": [1, 5]}, w)


def pool_concat_graph() -> Graph:
    """MaxPool (ceil_mode) and AveragePool (count_include_pad) joined by Concat,
    Pad, a strided Slice, Transpose, Reshape, Softmax, batched MatMul, ReduceMean."""
    w = _weights(2, conv_w=(4, 3, 3, 3), conv_b=(4,), proj=(8, 4))
    w.update(pads=np.array([0, 0, 1, 0, 0, 0, 0, 1]), fill=np.float32(0.5), starts=np.array([1]),
             ends=np.array([6]), axes=np.array([3]), steps=np.array([2]), shape=np.array([1, 18, 8]))
    nodes = [
        helper.make_node("Conv", ["x", "conv_w", "conv_b"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("MaxPool", ["c"], ["mp"], kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1),
        helper.make_node("AveragePool", ["c"], ["ap"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1],
                         count_include_pad=1),
        helper.make_node("Concat", ["mp", "ap"], ["cat"], axis=1),
        helper.make_node("Pad", ["cat", "pads", "fill"], ["padded"]),
        helper.make_node("Slice", ["padded", "starts", "ends", "axes", "steps"], ["sliced"]),
        helper.make_node("Transpose", ["sliced"], ["nhwc"], perm=[0, 2, 3, 1]),
        helper.make_node("Reshape", ["nhwc", "shape"], ["tokens"]),
        helper.make_node("Softmax", ["tokens"], ["attn"], axis=-1),
        helper.make_node("MatMul", ["attn", "proj"], ["projected"]),
        helper.make_node("ReduceMean", ["projected"], ["out"], axes=[1], keepdims=0),
    ]
    return _onnx_graph("pool_concat", nodes, {"x": [1, 3, 9, 9]}, {"out": [1, 4]}, w)


def activations_graph() -> Graph:
    """Gemm, LeakyRelu, a Clip fused into a Gemm, Sigmoid, constant-minus-value,
    Tanh, a standalone Clip, HardSigmoid, HardSwish, Div, Unsqueeze."""
    w = _weights(3, w1=(16, 12), b1=(12,), w2=(12, 12), b2=(12,), half=(12,))
    w.update(lo=np.float32(-1.0), hi=np.float32(1.0), lo2=np.float32(-0.3), hi2=np.float32(0.4),
             three=np.float32(3.0), axes=np.array([1]))
    nodes = [
        helper.make_node("Gemm", ["x", "w1", "b1"], ["g1"]),
        helper.make_node("LeakyRelu", ["g1"], ["l1"], alpha=0.1),
        helper.make_node("Gemm", ["l1", "w2", "b2"], ["g2"]),
        helper.make_node("Clip", ["g2", "lo", "hi"], ["c2"]),
        helper.make_node("Sigmoid", ["c2"], ["s"]),
        helper.make_node("Sub", ["half", "s"], ["d"]),
        helper.make_node("Tanh", ["d"], ["t"]),
        helper.make_node("Clip", ["t", "lo2", "hi2"], ["tc"]),
        helper.make_node("HardSigmoid", ["tc"], ["hs"], alpha=0.3, beta=0.4),
        helper.make_node("HardSwish", ["g1"], ["hw"]),
        helper.make_node("Div", ["hw", "three"], ["hd"]),
        helper.make_node("Unsqueeze", ["hs", "axes"], ["out1"]),
    ]
    return _onnx_graph("activations", nodes, {"x": [1, 16]}, {"out1": [1, 1, 12], "hd": [1, 12]}, w, opset=14)


EXAMPLES = {"digits": lambda: _canonical(load("examples/digits/digits.onnx")),
            "tiny_cnn": lambda: _canonical(load("examples/01-tiny-cnn/tiny_cnn.onnx")),
            "residual": residual_graph, "pool_concat": pool_concat_graph, "activations": activations_graph}


@pytest.fixture(scope="module", params=sorted(EXAMPLES))
def example(request) -> Graph:
    return EXAMPLES[request.param]()


def test_canonical_graph_matches_reference_per_sample(example):
    check_supported(example)
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
    "reduce_max": ("ReduceMax", ReduceAttrs((2,), keepdims=False), [_x(1, 3, 4)]),
    "reduce_sum": ("ReduceSum", ReduceAttrs((1, 2)), [_x(1, 3, 4)]),
    "gelu": ("Gelu", GeluAttrs(), [_x(1, 6)]),
    "gelu_tanh": ("Gelu", GeluAttrs("tanh"), [_x(1, 6)]),
    "leaky_relu": ("LeakyRelu", AlphaAttrs(0.2), [_x(1, 6)]),
    "hard_sigmoid": ("HardSigmoid", HardSigmoidAttrs(0.3, 0.4), [_x(1, 6)]),
    "prelu": ("PRelu", NoAttrs(), [_x(1, 3, 4), _c(3, 1)]),
    "pow": ("Pow", NoAttrs(), [_x(1, 6, low=0.5), _c(6)]),
    **{op.lower(): (op, NoAttrs(), [_x(1, 6, low=0.5)]) for op in ("Erf", "Sqrt", "Exp", "Neg", "Abs",
                                                                   "Reciprocal", "Relu", "HardSwish")},
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
            "Reshape", "Transpose", "Concat", "Softmax", "Pad", "ReduceMean", "Slice", "Resize"} <= supported_ops()


def test_unsupported_op_is_named():
    rng = np.random.default_rng(4)
    weights = {"w": rng.standard_normal((1, 16, 3)).astype(np.float32),
               "r": rng.standard_normal((1, 16, 4)).astype(np.float32)}
    lstm = helper.make_node("LSTM", ["x", "w", "r"], ["y"], name="kws_lstm", hidden_size=4, layout=1)
    graph = _onnx_graph("lstm", [lstm], {"x": [1, 5, 3]}, {"y": [1, 5, 1, 4]}, weights, opset=14)
    with pytest.raises(UnsupportedError, match="node 'kws_lstm' \\(LSTM\\): op LSTM has no training kernel"):
        check_supported(graph)
    node = next(n for n in graph.nodes() if n.op == "LSTM")
    with pytest.raises(UnsupportedError, match="kws_lstm.*LSTM"):
        run_node(node, [torch.zeros(2, 5, 3), torch.from_numpy(weights["w"]), torch.from_numpy(weights["r"])])


BATCH_MIXING = {
    "transpose_moves_batch": ("%y: f32[1,1,5] = Transpose \"swap\" (%x) {perm=[1,0,2]}", "x: f32[1,1,5]",
                              "moves axis 0"),
    "reshape_drops_batch": ("%y: f32[4,5] = Reshape \"flat\" (%x) {shape=[4,5]}", "x: f32[1,4,5]",
                            "output 'y' has shape \\[4, 5\\]"),
    "softmax_over_batch": ("%y: f32[1,4] = Softmax \"sm\" (%x) {axis=0, coerce_2d=false}", "x: f32[1,4]",
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


@pytest.mark.parametrize("case", sorted(BATCH_MIXING))
def test_batch_mixing_node_is_refused(case):
    statement, input_type, reason = BATCH_MIXING[case]
    text = f'graph "g" {{\n  input %{input_type}\n  {statement}\n  output %y\n}}\n'
    with pytest.raises(UnsupportedError, match=reason):
        check_supported(parse_ir(text))


def test_lower_rank_runtime_operand_is_refused():
    text = ('graph "g" {\n  input %x: f32[1,4]\n'
            '  %s: f32[1] = ReduceSum "sum" (%x) {axes=[1], keepdims=false}\n'
            '  %y: f32[1,4] = Add "add" (%x, %s) {}\n  output %y\n}\n')
    with pytest.raises(UnsupportedError, match="node 'add' \\(Add\\): run-time input 's' of rank 1"):
        check_supported(parse_ir(text))
