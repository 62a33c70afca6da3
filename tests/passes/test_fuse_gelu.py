"""fuse_gelu (a canonicalize rule): the decomposed GELU that PyTorch exports
below opset 20 (exact and tanh forms, x³ by Pow or by Muls) becomes one Gelu,
in each product order; chains that differ (another constant, an intermediate
read elsewhere) stay as they are."""

from __future__ import annotations

import math

import numpy as np
import pytest
from onnx import helper

from nnc.interpreter import run
from nnc.passmanager import parse_pipeline
from nnc.textir import parse_ir, print_ir
from nnc.verifier import verify

from pass_testing import build, feeds_for, ops

SQRT2 = np.float32(math.sqrt(2.0))
CONSTANTS = {"sqrt2": SQRT2, "inv_sqrt2": np.float32(1 / math.sqrt(2.0)), "one": np.float32(1.0),
             "half": np.float32(0.5), "other": np.float32(0.4), "three": np.float32(3.0),
             "cubic": np.float32(0.044715), "tanh_scale": np.float32(math.sqrt(2 / math.pi))}


def _mul(a, b, out):
    return helper.make_node("Mul", [a, b], [out], name=out)


def _inner(scaled: str) -> list:
    """Nodes computing e = F(x): Erf(x/√2) (Div or Mul) or the tanh form (x³ by Pow or by Muls)."""
    if scaled in ("div", "mul"):
        first = helper.make_node("Div", ["x", "sqrt2"], ["u"], name="u") if scaled == "div" \
            else _mul("inv_sqrt2", "x", "u")
        return [first, helper.make_node("Erf", ["u"], ["e"], name="e")]
    cube = [helper.make_node("Pow", ["x", "three"], ["x3"], name="x3")] if scaled == "tanh_pow" \
        else [_mul("x", "x", "x2"), _mul("x2", "x", "x3")]
    return cube + [_mul("cubic", "x3", "c"), helper.make_node("Add", ["x", "c"], ["s"], name="s"),
                   _mul("s", "tanh_scale", "v"), helper.make_node("Tanh", ["v"], ["e"], name="e")]


def _chain(scaled: str = "div", form: str = "x_add_half", half: str = "half") -> list:
    """x → e = F(x) → Add 1 → the product with x and `half` in one of three forms."""
    nodes = _inner(scaled) + [helper.make_node("Add", ["one", "e"], ["a"], name="a")]
    nodes += {"x_add_half": [_mul("x", "a", "p"), _mul("p", half, "y")],
              "x_half_add": [_mul("x", half, "p"), _mul("a", "p", "y")],
              "add_half_x": [_mul("a", half, "p"), _mul("x", "p", "y")]}[form]
    return nodes


def canonicalize(nodes, outputs=("y",)):
    graph = build(nodes, {"x": [2, 9]}, {o: [2, 9] for o in outputs}, CONSTANTS)
    (pass_,) = parse_pipeline("canonicalize")
    after = pass_.run(graph.copy())
    verify(after)
    feeds = feeds_for(graph)
    for name, value in run(graph, feeds).items():
        np.testing.assert_allclose(run(after, feeds)[name], value, rtol=1e-6, atol=1e-6)
    return after


@pytest.mark.parametrize("scaled", ["div", "mul", "tanh_pow", "tanh_mul"])
@pytest.mark.parametrize("form", ["x_add_half", "x_half_add", "add_half_x"])
def test_decomposed_gelu_becomes_one_gelu(scaled, form):
    after = canonicalize(_chain(scaled, form))
    assert ops(after) == ["Gelu"]
    assert after.producer("y").attrs.approximate == ("tanh" if scaled.startswith("tanh") else "none")
    assert not [t for t in after.tensors.values() if t.is_constant]
    assert print_ir(parse_ir(print_ir(after))) == print_ir(after)


@pytest.mark.parametrize("scaled", ["div", "tanh_mul"])
def test_a_different_constant_is_left_alone(scaled):
    assert "Gelu" not in ops(canonicalize(_chain(scaled, half="other")))


def test_an_intermediate_read_elsewhere_is_left_alone():
    nodes = _chain() + [helper.make_node("Relu", ["e"], ["z"], name="z")]
    after = canonicalize(nodes, outputs=("y", "z"))
    assert "Gelu" not in ops(after) and "Erf" in ops(after)
