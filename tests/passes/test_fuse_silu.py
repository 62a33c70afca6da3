"""fuse_silu (a canonicalize rule): Mul(x, Sigmoid(x)), as PyTorch exports SiLU,
becomes one Silu in either operand order; a Sigmoid read elsewhere or a
product with another tensor stays as it is."""

from __future__ import annotations

import pytest
from onnx import helper

from nnc.textir import parse_ir, print_ir

from pass_testing import apply, build, ops


def _graph(order=("x", "s"), extra=(), outputs=None):
    nodes = [helper.make_node("Sigmoid", ["x"], ["s"], name="gate"),
             helper.make_node("Mul", list(order), ["y"], name="silu"), *extra]
    inputs = {"x": [2, 9], "z": [2, 9]}
    return build(nodes, inputs, outputs or {"y": [2, 9]}, {})


@pytest.mark.parametrize("order", [("x", "s"), ("s", "x")])
def test_x_times_its_sigmoid_becomes_one_silu(order):
    after = apply(_graph(order), "canonicalize", exact=False)
    assert ops(after) == ["Silu"] and after.producer("y").name == "silu" and "s" not in after.tensors
    assert print_ir(parse_ir(print_ir(after))) == print_ir(after)


@pytest.mark.parametrize("graph", [
    pytest.param(lambda: _graph(extra=[helper.make_node("Relu", ["s"], ["r"], name="r")],
                                outputs={"y": [2, 9], "r": [2, 9]}), id="sigmoid-read-elsewhere"),
    pytest.param(lambda: _graph(outputs={"y": [2, 9], "s": [2, 9]}), id="sigmoid-is-an-output"),
    pytest.param(lambda: _graph(order=("z", "s")), id="another-tensor"),
])
def test_other_products_stay(graph):
    g = graph()
    assert "Silu" not in ops(apply(g, "canonicalize", exact=False))
