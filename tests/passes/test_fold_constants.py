"""fold-constants: constant subgraphs become constants, bit for bit; dequantization stays."""

from __future__ import annotations

import dataclasses

import numpy as np
from onnx import helper

from nnc.interpreter import run
from nnc.passmanager import format_pipeline, parse_pipeline

from pass_testing import apply, build, ops








def fold(graph, pipeline="fold-constants"):
    """The folded graph, checked valid with bit-identical outputs."""
    return apply(graph, pipeline)


def computed(graph, name: str) -> np.ndarray:
    """What the interpreter computes for tensor `name` of the unfolded graph."""
    seen = {}
    feeds = {n: np.zeros(graph.tensor(n).shape, np.float32) for n in graph.inputs}
    run(graph, feeds, observe=lambda t, v: seen.setdefault(t, v))
    return seen[name]


def test_constant_arithmetic_folds_bit_exactly():
    a = np.random.default_rng(2).standard_normal((3, 4)).astype(np.float32)
    nodes = [helper.make_node("Div", ["a", "b"], ["q"]),
             helper.make_node("Sigmoid", ["q"], ["s"]),
             helper.make_node("Transpose", ["s"], ["t"], perm=[1, 0]),
             helper.make_node("MatMul", ["x", "t"], ["y"])]
    # `a` enters as an input and becomes a constant in the IR: the front end would
    # otherwise fold the whole chain itself (compiler/frontend/shape_folding.py)
    graph = build(nodes, {"x": [2, 4], "a": [3, 4]}, {"y": [2, 3]}, {"b": np.float32([3.0])})
    graph.inputs.remove("a")
    graph.tensors["a"] = dataclasses.replace(graph.tensor("a"), data=a)
    after = fold(graph)
    assert ops(after) == ["MatMul"]
    assert after.node("MatMul_3").inputs == ["x", "t"]
    assert after.tensor("t").data.tobytes() == computed(graph, "t").tobytes()
    assert set(after.tensors) == {"x", "t", "y"}  # a, b, q, s are gone


def test_folded_graph_output_keeps_its_name():
    nodes = [helper.make_node("Mul", ["a", "a"], ["sq"]), helper.make_node("Relu", ["x"], ["r"])]
    graph = build(nodes, {"x": [2]}, {"sq": [2], "r": [2]}, {"a": np.float32([1.5, -2.0])})
    after = fold(graph)
    assert ops(after) == ["Relu"] and after.outputs == ["sq", "r"]
    assert after.tensor("sq").data.tolist() == [2.25, 4.0]


def test_dead_nodes_are_removed():
    nodes = [helper.make_node("Relu", ["x"], ["unused"]), helper.make_node("Sigmoid", ["x"], ["y"])]
    assert ops(fold(build(nodes, {"x": [3]}, {"y": [3]}, {}))) == ["Sigmoid"]


def _qdq_graph():
    w = np.arange(-6, 6, dtype=np.int8).reshape(3, 4)
    constants = {"w": w, "scale": np.float32([0.5, 0.25, 0.125]), "zp": np.zeros(3, np.int8)}
    nodes = [helper.make_node("DequantizeLinear", ["w", "scale", "zp"], ["wf"], axis=0),
             helper.make_node("Transpose", ["wf"], ["wt"], perm=[1, 0]),
             helper.make_node("MatMul", ["x", "wt"], ["y"])]
    return build(nodes, {"x": [2, 4]}, {"y": [2, 3]}, constants)


def test_dequantize_and_everything_after_it_stay_by_default():
    after = fold(_qdq_graph())
    assert ops(after) == ["DequantizeLinear", "Transpose", "MatMul"]
    assert after.tensor("w").dtype == "i8"


def test_fold_dequantize_turns_integer_weights_into_floats():
    graph = _qdq_graph()
    after = fold(graph, "fold-constants{fold_dequantize=true}")
    assert ops(after) == ["MatMul"] and "w" not in after.tensors
    assert after.tensor("wt").data.tobytes() == computed(graph, "wt").tobytes()


def test_quantizing_a_float_constant_is_folded():
    constants = {"wf": np.float32([[0.5, -1.0], [0.26, 2.0]]), "scale": np.float32(0.5), "zp": np.int8(0)}
    nodes = [helper.make_node("QuantizeLinear", ["wf", "scale", "zp"], ["q"]),
             helper.make_node("DequantizeLinear", ["q", "scale", "zp"], ["w"]),
             helper.make_node("MatMul", ["x", "w"], ["y"])]
    after = fold(build(nodes, {"x": [1, 2]}, {"y": [1, 2]}, constants))
    assert ops(after) == ["DequantizeLinear", "MatMul"]
    assert after.tensor("q").data.tolist() == [[1, -2], [1, 4]]


def test_option_round_trips_through_the_pipeline_string():
    text = "fold-constants{fold_dequantize=true}"
    assert format_pipeline(parse_pipeline(text)) == text
    assert format_pipeline(parse_pipeline("fold-constants")) == "fold-constants"
