"""fuse_softsign (a canonicalize rule): dynamo's x / (1 + |x|) becomes one
Softsign, in either Add operand order; another denominator stays."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from nnc.interpreter import run

from pass_testing import apply, build, ops


def _graph(order=("a", "one"), numerator="x"):
    nodes = [helper.make_node("Abs", ["x"], ["a"]), helper.make_node("Add", list(order), ["d"]),
             helper.make_node("Div", [numerator, "d"], ["y"], name="softsign")]
    return build(nodes, {"x": [2, 7], "z": [2, 7]}, {"y": [2, 7]}, {"one": np.array(1.0, np.float32)})


@pytest.mark.parametrize("order", [("a", "one"), ("one", "a")])
def test_x_over_one_plus_its_magnitude_is_one_softsign(order):
    before = _graph(order)
    after = apply(before, "canonicalize", exact=False)
    assert ops(after) == ["Softsign"] and after.producer("y").name == "softsign"
    x = np.linspace(-9, 9, 14, dtype=np.float32).reshape(2, 7)
    np.testing.assert_allclose(run(after, {"x": x, "z": x})["y"], run(before, {"x": x, "z": x})["y"], rtol=1e-6)


def test_another_numerator_stays():
    assert "Div" in ops(apply(_graph(numerator="z"), "canonicalize", exact=False))
