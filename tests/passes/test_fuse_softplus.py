"""fuse_softplus_threshold (a canonicalize rule): dynamo's export of
softplus, Where(Greater(x, 20), x, Softplus(x)), becomes Softplus(x); a lower
threshold, or another Where, stays."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from nnc.interpreter import run

from pass_testing import apply, build, ops


def _graph(threshold: float, taken: str = "x"):
    nodes = [helper.make_node("Softplus", ["x"], ["s"]), helper.make_node("Greater", ["x", "t"], ["g"]),
             helper.make_node("Where", ["g", taken, "s"], ["w"]), helper.make_node("Relu", ["w"], ["y"])]
    return build(nodes, {"x": [2, 6], "z": [2, 6]}, {"y": [2, 6]}, {"t": np.array(threshold, np.float32)})


def test_the_threshold_goes():
    before = _graph(20.0)
    after = apply(before, "canonicalize", exact=False)
    assert ops(after) == ["Softplus", "Relu"] and "g" not in after.tensors
    x = np.linspace(-30, 30, 12, dtype=np.float32).reshape(2, 6)
    feeds = {"x": x, "z": x}
    np.testing.assert_array_equal(run(after, feeds)["y"], run(before, feeds)["y"])


@pytest.mark.parametrize("threshold, taken", [(5.0, "x"), (20.0, "z")])
def test_other_wheres_stay(threshold, taken):
    assert "Where" in ops(apply(_graph(threshold, taken), "canonicalize", exact=False))
