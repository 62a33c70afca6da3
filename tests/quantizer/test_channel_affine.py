"""rewrite_channel_affines: x · k + c with per-channel constants becomes one
BatchNormalization (one QAffine once quantized), with the same values; other
pairs stay."""

from __future__ import annotations

import numpy as np
import pytest

from nnc.interpreter import run
from nnc.ir import Graph, Node, Tensor
from nnc.ops.registry import NoAttrs
from nnc.quantizer.channel_affine import rewrite_channel_affines

RNG = np.random.default_rng(12)


def _graph(k: np.ndarray, c: np.ndarray, shape=(2, 4, 5), read_twice=False) -> Graph:
    g = Graph("affine")
    g.add_tensor(Tensor("x", "f32", shape))
    g.inputs.append("x")
    for name, data in (("k", k), ("c", c)):
        g.add_tensor(Tensor(name, "f32", data.shape, data=data.astype(np.float32)))
    for name in ("m", "y"):
        g.add_tensor(Tensor(name, "f32", shape))
    g.add_node(Node("mul", "Mul", ["x", "k"], ["m"], NoAttrs()))
    g.add_node(Node("add", "Add", ["c", "m"], ["y"], NoAttrs()))
    g.outputs.append("y")
    if read_twice:
        g.outputs.append("m")
    return g


@pytest.mark.parametrize("k_shape, c_shape, last", [((4, 1), (4, 1), False), ((5,), (5,), True),
                                                     ((4, 1), (), False), ((1, 4, 1), (1,), False)])
def test_per_channel_pairs_fuse(k_shape, c_shape, last):
    k, c = RNG.standard_normal(k_shape), RNG.standard_normal(c_shape)
    before = _graph(k, c)
    after = _graph(k, c)
    assert rewrite_channel_affines(after) == 1
    (node,) = after.nodes()
    assert node.op == "BatchNormalization" and node.name == "add" and node.attrs.channels_last == last
    x = RNG.standard_normal((2, 4, 5)).astype(np.float32)
    np.testing.assert_allclose(run(after, {"x": x})["y"], run(before, {"x": x})["y"], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("k_shape, c_shape, read_twice", [((4, 5), (4, 1), False), ((4, 1), (5,), False),
                                                          ((4, 1), (4, 1), True)])
def test_other_pairs_stay(k_shape, c_shape, read_twice):
    graph = _graph(RNG.standard_normal(k_shape), RNG.standard_normal(c_shape), read_twice=read_twice)
    assert rewrite_channel_affines(graph) == 0 and [n.op for n in graph.nodes()] == ["Mul", "Add"]
