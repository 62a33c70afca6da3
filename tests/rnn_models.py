"""Small ONNX models around one recurrent node (LSTM, GRU, RNN), built with
onnx.helper, for the float-reference and end-to-end tests. Imported by module
name (tests/conftest.py puts tests/ on sys.path)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
OPSET = 21


@dataclass
class Spec:
    """One recurrent node: `states` "none", "const" or "input" for initial_h (and
    initial_c); `outputs` the used outputs among Y, Y_h, Y_c."""

    op: str = "LSTM"
    steps: int = 5
    batch: int = 2
    inputs: int = 3
    hidden: int = 4
    direction: str = "forward"
    layout: int = 0
    states: str = "none"
    outputs: tuple[str, ...] = ("Y", "Y_h")
    peepholes: bool = False
    sequence_lens: bool = False
    attrs: dict = field(default_factory=dict)
    weight_scale: float = 0.5

    @property
    def directions(self) -> int:
        return 2 if self.direction == "bidirectional" else 1

    def x_shape(self):
        return (self.steps, self.batch, self.inputs) if self.layout == 0 else (self.batch, self.steps, self.inputs)

    def state_shape(self):
        d = self.directions
        return (d, self.batch, self.hidden) if self.layout == 0 else (self.batch, d, self.hidden)

    def y_shape(self):
        t, b, d, h = self.steps, self.batch, self.directions, self.hidden
        return (t, d, b, h) if self.layout == 0 else (b, t, d, h)


def node_parts(spec: Spec, rng: np.random.Generator, x: str, prefix: str = ""):
    """(initializers, graph inputs, node inputs) of the recurrent node reading `x`."""
    g, d, h = GATES[spec.op], spec.directions, spec.hidden
    s = spec.weight_scale
    inits = [numpy_helper.from_array((rng.standard_normal((d, g * h, spec.inputs)) * s).astype(np.float32),
                                     prefix + "W"),
             numpy_helper.from_array((rng.standard_normal((d, g * h, h)) * s).astype(np.float32), prefix + "R"),
             numpy_helper.from_array((rng.standard_normal((d, 2 * g * h)) * 0.3).astype(np.float32), prefix + "B")]
    names = [x, prefix + "W", prefix + "R", prefix + "B", "", "", "", ""]
    if spec.sequence_lens:
        inits.append(numpy_helper.from_array(np.full(spec.batch, spec.steps, np.int32), prefix + "lens"))
        names[4] = prefix + "lens"
    graph_inputs = []
    for k, state in enumerate(("h0", "c0")[:2 if spec.op == "LSTM" else 1]):
        name = prefix + state
        if spec.states == "const":
            state = rng.standard_normal((spec.directions, spec.batch, h)) * 0.5
            state = state if spec.layout == 0 else np.swapaxes(state, 0, 1)
            inits.append(numpy_helper.from_array(np.ascontiguousarray(state).astype(np.float32), name))
        elif spec.states == "input":
            graph_inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, spec.state_shape()))
        if spec.states != "none":
            names[5 + k] = name
    if spec.peepholes:
        inits.append(numpy_helper.from_array((rng.standard_normal((d, 3 * h)) * 0.5).astype(np.float32),
                                             prefix + "P"))
        names[7] = prefix + "P"
    while not names[-1]:
        names.pop()
    return inits, graph_inputs, names


def attributes(spec: Spec) -> dict:
    attrs = {"hidden_size": spec.hidden, "direction": spec.direction, **spec.attrs}
    if spec.layout:
        attrs["layout"] = 1
    return attrs


def model(spec: Spec, seed: int = 0):
    """The model of one node; outputs named as in `spec.outputs`."""
    rng = np.random.default_rng(seed)
    inits, graph_inputs, names = node_parts(spec, rng, "X")
    all_outputs = ("Y", "Y_h", "Y_c")[:3 if spec.op == "LSTM" else 2]
    node_outputs = [o if o in spec.outputs else "" for o in all_outputs]
    while not node_outputs[-1]:
        node_outputs.pop()
    node = helper.make_node(spec.op, names, node_outputs, name="rnn", **attributes(spec))
    shapes = {"Y": spec.y_shape(), "Y_h": spec.state_shape(), "Y_c": spec.state_shape()}
    outputs = [helper.make_tensor_value_info(o, TensorProto.FLOAT, shapes[o]) for o in spec.outputs]
    x = helper.make_tensor_value_info("X", TensorProto.FLOAT, spec.x_shape())
    graph = helper.make_graph([node], "rnn", [x, *graph_inputs], outputs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=10)


def feeds(m, seed: int = 1, scale: float = 1.0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    result = {}
    for value in m.graph.input:
        shape = [d.dim_value for d in value.type.tensor_type.shape.dim]
        result[value.name] = (rng.standard_normal(shape) * scale).astype(np.float32)
    return result


def ort_run(m, inputs: dict) -> list[np.ndarray]:
    session = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, inputs)


def ort_spec(spec: Spec, seed: int, inputs: dict) -> list[np.ndarray]:
    """onnxruntime's outputs for the model of `spec`; it runs only layout 0, so a
    layout-1 spec runs as its layout-0 twin (the same weights) on transposed
    inputs, its outputs transposed back."""
    if spec.layout == 0:
        return ort_run(model(spec, seed), inputs)
    twin = dataclasses.replace(spec, layout=0)
    moved = {k: np.ascontiguousarray(np.swapaxes(v, 0, 1)) for k, v in inputs.items()}
    outs = ort_run(model(twin, seed), moved)
    return [np.ascontiguousarray(np.transpose(o, (2, 0, 1, 3)) if o.ndim == 4 else np.swapaxes(o, 0, 1))
            for o in outs]


def keyword_spotter(op: str = "LSTM", hidden: int = 32, frames: int = 49, features: int = 10, classes: int = 12,
                    seed: int = 0, direction: str = "forward"):
    """A keyword spotter: MFCC [1, frames, features] -> Transpose -> recurrent
    layer -> Y_h -> Reshape -> Gemm -> logits [1, classes]."""
    rng = np.random.default_rng(seed)
    spec = Spec(op, steps=frames, batch=1, inputs=features, hidden=hidden, direction=direction,
                weight_scale=1.0 / np.sqrt(hidden))
    inits, _, names = node_parts(spec, rng, "x_t")
    width = spec.directions * hidden
    inits += [numpy_helper.from_array(np.array([1, width], np.int64), "flat"),
              numpy_helper.from_array((rng.standard_normal((width, classes)) / np.sqrt(width)).astype(np.float32),
                                      "head_w"),
              numpy_helper.from_array((rng.standard_normal(classes) * 0.1).astype(np.float32), "head_b")]
    nodes = [helper.make_node("Transpose", ["mfcc"], ["x_t"], name="to_time", perm=[1, 0, 2]),
             helper.make_node(op, names, ["", "h_last"], name="rnn", **attributes(spec)),
             helper.make_node("Reshape", ["h_last", "flat"], ["h_flat"], name="flatten"),
             helper.make_node("Gemm", ["h_flat", "head_w", "head_b"], ["logits"], name="head")]
    graph = helper.make_graph(
        nodes, "kws", [helper.make_tensor_value_info("mfcc", TensorProto.FLOAT, [1, frames, features])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, classes])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=10)


def ctc_recognizer(op: str = "LSTM", hidden: int = 16, frames: int = 20, features: int = 10, tokens: int = 29,
                   seed: int = 0):
    """A CTC acoustic model: features [1, frames, features] -> Transpose ->
    recurrent layer -> Y [frames, 1, 1, hidden] -> Reshape -> Gemm -> LogSoftmax
    over `tokens` (blank included) -> log probabilities [frames, tokens]."""
    rng = np.random.default_rng(seed)
    spec = Spec(op, steps=frames, batch=1, inputs=features, hidden=hidden, weight_scale=1.0 / np.sqrt(hidden))
    inits, _, names = node_parts(spec, rng, "x_t")
    inits += [numpy_helper.from_array(np.array([-1, hidden], np.int64), "rows"),
              numpy_helper.from_array((rng.standard_normal((hidden, tokens)) * 3 / np.sqrt(hidden)).astype(np.float32),
                                      "head_w"),
              numpy_helper.from_array((rng.standard_normal(tokens) * 0.5).astype(np.float32), "head_b")]
    nodes = [helper.make_node("Transpose", ["features"], ["x_t"], name="to_time", perm=[1, 0, 2]),
             helper.make_node(op, names, ["y"], name="rnn", **attributes(spec)),
             helper.make_node("Reshape", ["y", "rows"], ["frames"], name="rows"),
             helper.make_node("Gemm", ["frames", "head_w", "head_b"], ["logits"], name="head"),
             helper.make_node("LogSoftmax", ["logits"], ["log_probs"], name="log_probs", axis=-1)]
    graph = helper.make_graph(
        nodes, "ctc", [helper.make_tensor_value_info("features", TensorProto.FLOAT, [1, frames, features])],
        [helper.make_tensor_value_info("log_probs", TensorProto.FLOAT, [frames, tokens])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=10)


def predictor(vocabulary: int = 12, width: int = 6, hidden: int = 8, tokens: int = 5, seed: int = 0):
    """An RNN-T predictor without Conv, Gemm or MatMul: tokens [1, tokens]
    (int64) -> Gather on an embedding table [vocabulary, width] -> Transpose ->
    LSTM -> Y [tokens, 1, 1, hidden]."""
    rng = np.random.default_rng(seed)
    spec = Spec("LSTM", steps=tokens, batch=1, inputs=width, hidden=hidden, weight_scale=1.0 / np.sqrt(hidden))
    inits, _, names = node_parts(spec, rng, "x_t")
    inits.append(numpy_helper.from_array(rng.standard_normal((vocabulary, width)).astype(np.float32), "table"))
    nodes = [helper.make_node("Gather", ["table", "tok"], ["embedded"], name="embed"),
             helper.make_node("Transpose", ["embedded"], ["x_t"], name="to_time", perm=[1, 0, 2]),
             helper.make_node("LSTM", names, ["y"], name="rnn", **attributes(spec))]
    graph = helper.make_graph(
        nodes, "predictor", [helper.make_tensor_value_info("tok", TensorProto.INT64, [1, tokens])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, spec.y_shape())], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=10)


def token_samples(m, count: int = 8, vocabulary: int = 12, seed: int = 5) -> dict[str, np.ndarray]:
    """`count` random token sequences per int64 graph input, stacked on a leading axis."""
    rng = np.random.default_rng(seed)
    result = {}
    for value in m.graph.input:
        shape = [d.dim_value for d in value.type.tensor_type.shape.dim]
        result[value.name] = rng.integers(0, vocabulary, (count, *shape)).astype(np.int64)
    return result


def samples(m, count: int = 8, seed: int = 5, scale: float = 1.0) -> dict[str, np.ndarray]:
    """`count` random samples per graph input, stacked on a leading axis."""
    rng = np.random.default_rng(seed)
    result = {}
    for value in m.graph.input:
        shape = [d.dim_value for d in value.type.tensor_type.shape.dim]
        result[value.name] = (rng.standard_normal((count, *shape)) * scale).astype(np.float32)
    return result


def integer_graph(m, tmp_path, calibration: dict[str, np.ndarray]):
    """(float graph, integer graph) of model `m` after CANONICAL and quantize,
    calibrated on `calibration` (stacked samples)."""
    from nnc.frontend.onnx_loader import lower_model
    from nnc.passmanager import PassManager, parse_pipeline
    from nnc.pipelines import CANONICAL

    path = tmp_path / "calib.npz"
    np.savez(path, **calibration)
    graph = PassManager(parse_pipeline(CANONICAL)).run(lower_model(m, {}))
    quantized = PassManager(parse_pipeline(f'quantize{{calib="{path}"}}')).run(graph.copy())
    return graph, quantized


def split_samples(stacked: dict[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
    count = len(next(iter(stacked.values())))
    return [{k: v[i] for k, v in stacked.items()} for i in range(count)]


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.ravel(a).astype(np.float64), np.ravel(b).astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
