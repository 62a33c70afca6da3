"""fuse_softmax_mask (a canonicalize rule): Add(scores, additive attention mask)
→ Softmax becomes Softmax(scores, keep) with the same values, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from nnc.errors import ModelError
from nnc.interpreter import run
from nnc.passmanager import parse_pipeline
from nnc.textir import parse_ir, print_ir
from nnc.verifier import verify

from pass_testing import build, feeds_for, ops

T = 5
CAUSAL = np.triu(np.full((T, T), -np.inf, np.float32), 1)


def canonicalize(mask: np.ndarray, extra_nodes=(), outputs=("y",), axis: int = -1):
    nodes = [helper.make_node("Add", ["x", "mask"], ["s"], name="add"),
             helper.make_node("Softmax", ["s"], ["y"], name="softmax", axis=axis), *extra_nodes]
    graph = build(nodes, {"x": [1, 2, T, T]}, {o: [1, 2, T, T] for o in outputs}, {"mask": mask})
    (pass_,) = parse_pipeline("canonicalize")
    after = pass_.run(graph.copy())
    verify(after)
    feeds = feeds_for(graph)
    for name, value in run(graph, feeds).items():
        np.testing.assert_array_equal(run(after, feeds)[name], value)
    return after


@pytest.mark.parametrize("fill", [-np.inf, np.finfo(np.float32).min, -1e9, -1e4])
def test_an_additive_mask_becomes_the_softmax_keep_mask(fill):
    after = canonicalize(np.where(np.isinf(CAUSAL), np.float32(fill), np.float32(0)))
    assert ops(after) == ["Softmax"]
    softmax = after.producer("y")
    keep = after.constant(softmax.inputs[1])
    assert keep.dtype == bool and keep.shape == (1, 1, T, T)
    np.testing.assert_array_equal(keep[0, 0], np.tril(np.ones((T, T), bool)))
    assert "mask" not in after.tensors
    assert print_ir(parse_ir(print_ir(after))) == print_ir(after)


@pytest.mark.parametrize("fill_first", [True, False])
def test_a_masked_fill_becomes_the_softmax_keep_mask(fill_first):
    """scores.masked_fill(hide, lowest) exports as Where(hide, lowest, scores);
    Where(keep, scores, lowest) is the same mask the other way round."""
    keep = np.tril(np.ones((T, T), bool))
    inputs = ["hide", "fill", "x"] if fill_first else ["keep", "x", "fill"]
    nodes = [helper.make_node("Where", inputs, ["s"], name="where"),
             helper.make_node("Softmax", ["s"], ["y"], name="softmax", axis=-1)]
    graph = build(nodes, {"x": [1, 2, T, T]}, {"y": [1, 2, T, T]},
                  {"hide": ~keep, "keep": keep, "fill": np.float32(np.finfo(np.float32).min)})
    (pass_,) = parse_pipeline("canonicalize")
    after = pass_.run(graph.copy())
    verify(after)
    assert ops(after) == ["Softmax"]
    np.testing.assert_array_equal(after.constant(after.producer("y").inputs[1])[0, 0], keep)
    feeds = feeds_for(graph)
    np.testing.assert_array_equal(run(after, feeds)["y"], run(graph, feeds)["y"])


def test_a_mask_on_another_axis_follows_it():
    mask = np.zeros((1, 1, T, 1), np.float32)
    mask[:, :, -2:] = -np.inf
    after = canonicalize(mask, axis=2)
    assert ops(after) == ["Softmax"] and after.producer("y").attrs.axis == 2


@pytest.mark.parametrize("case", ["read_elsewhere", "not_a_mask", "hides_a_row"])
def test_what_a_keep_mask_cannot_express_is_left_alone(case):
    if case == "read_elsewhere":  # the masked scores are also an output (a -inf fill would be refused)
        after = canonicalize(np.maximum(CAUSAL, np.float32(-1e9)), [helper.make_node("Relu", ["s"], ["z"], name="z")], outputs=("y", "z"))
    elif case == "not_a_mask":  # a bias of finite values
        after = canonicalize(np.where(np.isinf(CAUSAL), np.float32(-3), np.float32(0)))
    else:
        hidden = CAUSAL.copy()
        hidden[2] = -np.inf
        with np.errstate(invalid="ignore"):
            after = canonicalize(hidden)
    assert ops(after)[:2] == ["Add", "Softmax"]


def test_minus_infinity_elsewhere_is_still_refused():
    graph = [helper.make_node("Add", ["x", "mask"], ["y"], name="add")]
    with pytest.raises(ModelError, match=r"constant 'mask' \(read by Add node 'add'\) holds -inf"):
        build(graph, {"x": [1, 2, T, T]}, {"y": [1, 2, T, T]}, {"mask": CAUSAL})
