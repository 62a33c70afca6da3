"""Small float models for the training tests, built with onnx.helper and
lowered through nnc's canonical pipeline without the layout pass (NCHW), the
graphs nnc.train's twin is built from."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from nnc.frontend.onnx_loader import lower_model
from nnc.ir import Graph
from nnc.passmanager import PassManager, parse_pipeline
from nnc.pipelines import CANONICAL

FLOAT_PIPELINE = ",".join(p for p in CANONICAL.split(",") if p != "layout")  # NCHW kept


def canonical(graph: Graph) -> Graph:
    return PassManager(parse_pipeline(FLOAT_PIPELINE)).run(graph)


def onnx_graph(name: str, nodes, inputs: dict, outputs: dict, weights: dict, opset: int = 13) -> Graph:
    """The canonical graph of a float ONNX model; `inputs` and `outputs` map names to shapes."""
    model = helper.make_model(
        helper.make_graph(nodes, name,
                          [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs.items()],
                          [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in outputs.items()],
                          [numpy_helper.from_array(np.asarray(v), k) for k, v in weights.items()]),
        opset_imports=[helper.make_opsetid("", opset)], ir_version=8)
    return canonical(lower_model(model, {}, name=name))


def weights(seed: int, **shapes) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {k: (rng.standard_normal(s) * 0.5).astype(np.float32) for k, s in shapes.items()}


def residual_graph() -> Graph:
    """Depthwise conv, a constant-first Mul, a residual Add, a strided dilated
    conv with asymmetric pads and a fused Clip, GlobalAveragePool, Gemm."""
    w = weights(1, dw_w=(4, 1, 3, 3), dw_b=(4,), scale=(1, 4, 1, 1), pw_w=(6, 4, 3, 3), pw_b=(6,),
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
    return onnx_graph("residual", nodes, {"x": [1, 4, 8, 8]}, {"logits": [1, 5]}, w)


def tied_residual_graph() -> Graph:
    """A ResNet block: stem conv -> Relu; conv_a -> Relu -> conv_b; Add(stem,
    conv_b) -> Relu -> GlobalAveragePool -> Gemm. The stem and conv_b are tied:
    channel pruning removes the same channels from both."""
    w = weights(5, stem_w=(8, 3, 3, 3), stem_b=(8,), a_w=(8, 8, 1, 1), a_b=(8,), b_w=(8, 8, 1, 1), b_b=(8,),
                fc_w=(5, 8), fc_b=(5,))
    nodes = [
        helper.make_node("Conv", ["x", "stem_w", "stem_b"], ["stem"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["stem"], ["r0"]),
        helper.make_node("Conv", ["r0", "a_w", "a_b"], ["a"]),
        helper.make_node("Relu", ["a"], ["ra"]),
        helper.make_node("Conv", ["ra", "b_w", "b_b"], ["b"]),
        helper.make_node("Add", ["r0", "b"], ["res"]),
        helper.make_node("Relu", ["res"], ["r1"]),
        helper.make_node("GlobalAveragePool", ["r1"], ["gap"]),
        helper.make_node("Flatten", ["gap"], ["flat"]),
        helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["logits"], transB=1),
    ]
    return onnx_graph("tied_residual", nodes, {"x": [1, 3, 8, 8]}, {"logits": [1, 5]}, w)


def pool_concat_graph() -> Graph:
    """MaxPool (ceil_mode) and AveragePool (count_include_pad) joined by Concat,
    Pad, a strided Slice, Transpose, Reshape, Softmax, batched MatMul, ReduceMean."""
    w = weights(2, conv_w=(4, 3, 3, 3), conv_b=(4,), proj=(8, 4))
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
    return onnx_graph("pool_concat", nodes, {"x": [1, 3, 9, 9]}, {"out": [1, 4]}, w)


def activations_graph() -> Graph:
    """Gemm, LeakyRelu, a Clip fused into a Gemm, Sigmoid, constant-minus-value,
    Tanh, a standalone Clip, HardSigmoid, HardSwish, Div, Unsqueeze."""
    w = weights(3, w1=(16, 12), b1=(12,), w2=(12, 12), b2=(12,), half=(12,))
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
    return onnx_graph("activations", nodes, {"x": [1, 16]}, {"out1": [1, 1, 12], "hd": [1, 12]}, w, opset=14)


def std_pooling_graph() -> Graph:
    """Conv1d, Relu and mean + standard-deviation pooling over time (as
    torch.std exports it: ReduceMean, Sub, Mul, ReduceMean, Sqrt) into a Gemm;
    the conv's last channel has a bias so negative that the Relu makes it 0 for
    every sample, so its standard deviation is exactly 0."""
    w = weights(5, w1=(6, 4, 3), b1=(6,), wf=(7, 12), bf=(7,))
    w["b1"][-1] = -100.0
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c"]),
        helper.make_node("Relu", ["c"], ["h"]),
        helper.make_node("ReduceMean", ["h"], ["mean"], axes=[2], keepdims=0),
        helper.make_node("ReduceMean", ["h"], ["mean_k"], axes=[2], keepdims=1),
        helper.make_node("Sub", ["h", "mean_k"], ["dev"]),
        helper.make_node("Mul", ["dev", "dev"], ["sq"]),
        helper.make_node("ReduceMean", ["sq"], ["var"], axes=[2], keepdims=0),
        helper.make_node("Sqrt", ["var"], ["std"]),
        helper.make_node("Concat", ["mean", "std"], ["stats"], axis=1),
        helper.make_node("Gemm", ["stats", "wf", "bf"], ["y"], transB=1),
    ]
    return onnx_graph("std_pooling", nodes, {"x": [1, 4, 10]}, {"y": [1, 7]}, w)


def frame_head_graph() -> Graph:
    """A CTC-style head over the frames of a [1, T, D] sequence: LayerNorm, two
    Linears (MatMul + Add: Reshape to rows, Gemm, Reshape back after fuse-bias)
    with a Relu between, and a LogSoftmax over the tokens."""
    w = weights(6, gamma=(8,), beta=(8,), w1=(8, 16), b1=(16,), w2=(16, 11), b2=(11,))
    w["gamma"] += 1.0
    nodes = [
        helper.make_node("LayerNormalization", ["x", "gamma", "beta"], ["n"], axis=-1),
        helper.make_node("MatMul", ["n", "w1"], ["m1"]),
        helper.make_node("Add", ["m1", "b1"], ["a1"]),
        helper.make_node("Relu", ["a1"], ["h"]),
        helper.make_node("MatMul", ["h", "w2"], ["m2"]),
        helper.make_node("Add", ["m2", "b2"], ["logits"]),
        helper.make_node("LogSoftmax", ["logits"], ["y"], axis=-1),
    ]
    return onnx_graph("frame_head", nodes, {"x": [1, 6, 8]}, {"y": [1, 6, 11]}, w, opset=17)


def attention_graph() -> Graph:
    """Multi-head self-attention as a hand-written PyTorch block exports it: one
    qkv Linear over the [1, T, D] rows, Reshape to [1, T, 3, H, d] and
    Transpose (2, 0, 3, 1, 4), which moves the batch off axis 0 (so the twin
    runs it sample by sample), Split into q, k, v, scores scaled by 1/√d,
    Softmax, the heads joined back, an output Linear."""
    t, d, heads = 5, 8, 2
    w = weights(7, w_qkv=(d, 3 * d), b_qkv=(3 * d,), w_out=(d, d), b_out=(d,))
    w.update(qkv_shape=np.array([1, t, 3, heads, d // heads], np.int64), root=np.float32((d // heads) ** -0.5),
             out_shape=np.array([1, t, d], np.int64))
    nodes = [
        helper.make_node("MatMul", ["x", "w_qkv"], ["qkv_m"]),
        helper.make_node("Add", ["qkv_m", "b_qkv"], ["qkv"]),
        helper.make_node("Reshape", ["qkv", "qkv_shape"], ["qkv_heads"]),
        helper.make_node("Transpose", ["qkv_heads"], ["qkv_first"], perm=[2, 0, 3, 1, 4]),
        helper.make_node("Split", ["qkv_first"], ["q5", "k5", "v5"], axis=0, num_outputs=3),
        *[helper.make_node("Squeeze", [f"{n}5", "zero"], [n]) for n in "qkv"],
        helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 1, 3, 2]),
        helper.make_node("MatMul", ["q", "kt"], ["scores"]),
        helper.make_node("Mul", ["scores", "root"], ["scaled"]),
        helper.make_node("Softmax", ["scaled"], ["p"], axis=-1),
        helper.make_node("MatMul", ["p", "v"], ["mixed"]),
        helper.make_node("Transpose", ["mixed"], ["mixed_t"], perm=[0, 2, 1, 3]),
        helper.make_node("Reshape", ["mixed_t", "out_shape"], ["joined"]),
        helper.make_node("MatMul", ["joined", "w_out"], ["out_m"]),
        helper.make_node("Add", ["out_m", "b_out"], ["y"]),
    ]
    w["zero"] = np.array([0], np.int64)
    return onnx_graph("attention", nodes, {"x": [1, t, d]}, {"y": [1, t, d]}, w, opset=18)


def keyword_spotter_graph(op: str, direction: str = "forward") -> Graph:
    """tests/rnn_models.keyword_spotter, small: MFCC [1, 6, 10] -> Transpose ->
    `op` (hidden 8) -> Y_h -> Gemm -> 12 logits."""
    from rnn_models import keyword_spotter

    return canonical(lower_model(keyword_spotter(op, hidden=8, frames=6, direction=direction), {}, name="kws"))


def embedding_predictor_graph() -> Graph:
    """An RNN-T predictor as PyTorch exports one: tokens [1, 5] (int64) ->
    Gather on an embedding table [12, 6] -> Transpose to time-major -> LSTM
    (hidden 8) -> Y_h -> Gemm -> 12 logits."""
    rng = np.random.default_rng(3)
    w = {"table": rng.standard_normal((12, 6)), "W": rng.standard_normal((1, 32, 6)) * 0.4,
         "R": rng.standard_normal((1, 32, 8)) * 0.4, "B": rng.standard_normal((1, 64)) * 0.1,
         "flat": np.array([1, 8], np.int64), "head_w": rng.standard_normal((8, 12)) * 0.3,
         "head_b": rng.standard_normal(12) * 0.1}
    nodes = [helper.make_node("Gather", ["table", "tokens"], ["embedded"], name="embed"),
             helper.make_node("Transpose", ["embedded"], ["x_t"], name="to_time", perm=[1, 0, 2]),
             helper.make_node("LSTM", ["x_t", "W", "R", "B"], ["", "h"], name="lstm", hidden_size=8),
             helper.make_node("Reshape", ["h", "flat"], ["h_flat"], name="flatten"),
             helper.make_node("Gemm", ["h_flat", "head_w", "head_b"], ["logits"], name="joint")]
    model = helper.make_model(
        helper.make_graph(nodes, "predictor", [helper.make_tensor_value_info("tokens", TensorProto.INT64, [1, 5])],
                          [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 12])],
                          [numpy_helper.from_array(v if v.dtype == np.int64 else v.astype(np.float32), k)
                           for k, v in w.items()]),
        opset_imports=[helper.make_opsetid("", 14)], ir_version=8)
    return canonical(lower_model(model, {}, name="predictor"))


def separable_graph() -> Graph:
    """x [1, 2, 6, 6] -> conv (8, 3×3) -> Relu -> depthwise 3×3 -> Relu ->
    pointwise (6) -> GlobalAveragePool -> Gemm (3): the depthwise layer's
    channels follow the first conv's."""
    w = weights(9, c1=(8, 2, 3, 3), b1=(8,), dw=(8, 1, 3, 3), bdw=(8,), pw=(6, 8, 1, 1), bpw=(6,), fc=(3, 6), bfc=(3,))
    w["flat"] = np.array([1, 6], np.int64)
    nodes = [helper.make_node("Conv", ["x", "c1", "b1"], ["a"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["a"], ["ar"]),
             helper.make_node("Conv", ["ar", "dw", "bdw"], ["d"], name="depthwise", group=8, pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["d"], ["dr"]),
             helper.make_node("Conv", ["dr", "pw", "bpw"], ["p"], name="pointwise"),
             helper.make_node("GlobalAveragePool", ["p"], ["g"]),
             helper.make_node("Reshape", ["g", "flat"], ["gf"]),
             helper.make_node("Gemm", ["gf", "fc", "bfc"], ["y"], name="fc", transB=1)]
    return onnx_graph("separable", nodes, {"x": [1, 2, 6, 6]}, {"y": [1, 3]}, w)


def recurrent_pair_graph(tied: bool) -> Graph:
    """x [1, 4, 5] -> Transpose -> LSTM (8) and then, `tied`, a second LSTM on
    x whose Y_h is added to the first's, else a GRU (8) on the first's Y
    (stacked) -> Y_h -> Gemm (3)."""
    rng = np.random.default_rng(0)
    shapes = dict(W1=(1, 32, 5), R1=(1, 32, 8), B1=(1, 64), hw=(3, 8), hb=(3,))
    shapes |= dict(W2=(1, 32, 5), R2=(1, 32, 8), B2=(1, 64)) if tied else dict(W2=(1, 24, 8), R2=(1, 24, 8), B2=(1, 48))
    w = {k: (rng.standard_normal(s) * 0.4).astype(np.float32) for k, s in shapes.items()}
    w |= {"flat": np.array([1, 8], np.int64), "axis": np.array([1], np.int64)}
    nodes = [helper.make_node("Transpose", ["x"], ["xt"], perm=[1, 0, 2]),
             helper.make_node("LSTM", ["xt", "W1", "R1", "B1"], ["y1", "h1"], name="first", hidden_size=8)]
    if tied:
        nodes += [helper.make_node("LSTM", ["xt", "W2", "R2", "B2"], ["", "h2"], name="second", hidden_size=8),
                  helper.make_node("Add", ["h1", "h2"], ["h"])]
    else:
        nodes += [helper.make_node("Squeeze", ["y1", "axis"], ["y1s"]),
                  helper.make_node("GRU", ["y1s", "W2", "R2", "B2"], ["", "h"], name="second", hidden_size=8)]
    nodes += [helper.make_node("Reshape", ["h", "flat"], ["hf"]),
              helper.make_node("Gemm", ["hf", "hw", "hb"], ["y"], name="fc", transB=1)]
    return onnx_graph("pair", nodes, {"x": [1, 4, 5]}, {"y": [1, 3]}, w, opset=14)


def ctc_graph() -> Graph:
    """tests/rnn_models.ctc_recognizer, small: features [1, 6, 10] -> LSTM (8)
    -> Gemm over the frames -> LogSoftmax -> log probabilities [6, 29]."""
    from rnn_models import ctc_recognizer

    return canonical(lower_model(ctc_recognizer("LSTM", hidden=8, frames=6), {}, name="ctc"))


def residual_lstm_graph() -> Graph:
    """x [1, 5, 8] -> Transpose -> LSTM (8) -> Squeeze -> LSTM (8), whose
    output is added to its input (a residual stack: the two layers' units
    tied) -> Reshape [5, 8] -> Gemm (3): y [5, 3]."""
    rng = np.random.default_rng(0)
    shapes = dict(W1=(1, 32, 8), R1=(1, 32, 8), B1=(1, 64), W2=(1, 32, 8), R2=(1, 32, 8), B2=(1, 64), hw=(3, 8),
                  hb=(3,))
    w = {k: (rng.standard_normal(s) * 0.4).astype(np.float32) for k, s in shapes.items()}
    w |= {"axis": np.array([1], np.int64), "rows": np.array([5, 8], np.int64)}
    nodes = [helper.make_node("Transpose", ["x"], ["xt"], perm=[1, 0, 2]),
             helper.make_node("LSTM", ["xt", "W1", "R1", "B1"], ["y1"], name="first", hidden_size=8),
             helper.make_node("Squeeze", ["y1", "axis"], ["s1"]),
             helper.make_node("LSTM", ["s1", "W2", "R2", "B2"], ["y2"], name="second", hidden_size=8),
             helper.make_node("Squeeze", ["y2", "axis"], ["s2"]),
             helper.make_node("Add", ["s1", "s2"], ["r"]),
             helper.make_node("Reshape", ["r", "rows"], ["rf"]),
             helper.make_node("Gemm", ["rf", "hw", "hb"], ["y"], name="fc", transB=1)]
    return onnx_graph("residual_lstm", nodes, {"x": [1, 5, 8]}, {"y": [5, 3]}, w, opset=14)
