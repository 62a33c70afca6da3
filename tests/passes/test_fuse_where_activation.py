"""where_to_activation (a canonicalize rule): a Where choosing between x and
a · x (or 0) by x's comparison with a constant becomes LeakyRelu (or
ThresholdedRelu) with the same values, and compiles on every target (the model
sweep's hand-written leaky ReLU and threshold were refused)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper

import nnc
from nnc.interpreter import run

from pass_testing import apply, build, ops

RNG = np.random.default_rng(6)
SHAPE = [2, 3, 8]


def where_graph(test: str, limit: float, then: str, other: str, mul_first: bool = False, zeros_like: bool = False):
    nodes = [helper.make_node(test, ["x", "limit"], ["c"])]
    constants = {"limit": np.float32(limit), "a": np.float32(0.2),
                 "zero": np.zeros(SHAPE, np.float32) if zeros_like else np.float32(0.0)}
    if "ax" in (then, other):
        nodes.append(helper.make_node("Mul", ["a", "x"] if mul_first else ["x", "a"], ["ax"]))
    nodes.append(helper.make_node("Where", ["c", then, other], ["y"]))
    return build(nodes, {"x": SHAPE}, {"y": SHAPE}, constants)


@pytest.mark.parametrize("graph, op", [
    (lambda: where_graph("Greater", 0.0, "x", "ax"), "LeakyRelu"),
    (lambda: where_graph("GreaterOrEqual", 0.0, "x", "ax", mul_first=True), "LeakyRelu"),
    (lambda: where_graph("Less", 0.0, "ax", "x"), "LeakyRelu"),
    (lambda: where_graph("Greater", 0.1, "x", "zero"), "ThresholdedRelu"),
    (lambda: where_graph("LessOrEqual", 0.1, "zero", "x", zeros_like=True), "ThresholdedRelu"),
])
def test_where_becomes_the_activation_with_the_same_values(graph, op):
    before = graph()
    after = apply(before, "canonicalize", exact=False)
    assert ops(after) == [op]
    x = RNG.standard_normal(SHAPE).astype(np.float32)
    x[0, 0, :3] = [0.0, 0.1, -0.0]  # the points where the comparison's forms differ
    np.testing.assert_array_equal(run(after, {"x": x})["y"], run(before, {"x": x})["y"])


@pytest.mark.parametrize("graph", [
    lambda: where_graph("GreaterOrEqual", 0.1, "x", "zero"),  # keeps x = t: not ThresholdedRelu
    lambda: where_graph("Greater", 0.5, "x", "ax"),           # the branches differ at the threshold
])
def test_other_wheres_stay(graph):
    assert "Where" in ops(apply(graph(), "canonicalize", exact=False))


@pytest.mark.parametrize("target", ["c", "az-sim", "onnx"])
def test_hand_written_activations_compile(target, tmp_path):
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"]),
             helper.make_node("Greater", ["h", "t"], ["c"]), helper.make_node("Where", ["c", "h", "z"], ["y"])]
    inits = [onnx.numpy_helper.from_array(RNG.standard_normal((8, 8)).astype(np.float32) * 0.4, "w"),
             onnx.numpy_helper.from_array(np.array(0.1, np.float32), "t"),
             onnx.numpy_helper.from_array(np.array(0.0, np.float32), "z")]
    graph = helper.make_graph(nodes, "thr", [helper.make_tensor_value_info("x", 1, SHAPE)],
                              [helper.make_tensor_value_info("y", 1, SHAPE)], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "m.onnx")
    result = nnc.compile(tmp_path / "m.onnx", target, tmp_path / "out",
                         calib={"x": RNG.standard_normal((16, *SHAPE)).astype(np.float32)})
    assert result.report["verification"]["vs_reference"]["bit_exact"]
    assert result.report["verification"]["vs_float"]["cosine"] > 0.999
