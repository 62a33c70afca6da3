"""fold-batchnorm: BatchNormalization folded into Conv/ConvTranspose/Gemm weights."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from onnx import helper

from nnc.verifier import verify

import pass_testing
from pass_testing import apply, build, ops

RNG = np.random.default_rng(3)


def randn(*shape) -> np.ndarray:
    return pass_testing.randn(RNG, *shape)


def fold(graph):
    """The folded graph, checked valid, same interface, outputs within rounding."""
    return apply(graph, "fold-batchnorm", exact=False, tolerance=1e-5)


def bn_constants(c: int) -> dict:
    return {"scale": randn(c), "shift": randn(c), "mean": randn(c),
            "var": RNG.uniform(0.5, 2.0, c).astype(np.float32)}


def bn_node(x: str, y: str, **attrs):
    return helper.make_node("BatchNormalization", [x, "scale", "shift", "mean", "var"], [y], **attrs)








@pytest.mark.parametrize("with_bias", [True, False])
def test_conv_absorbs_batchnorm(with_bias):
    w, b = randn(4, 3, 3, 3), randn(4)
    constants = {"w": w, **bn_constants(4), **({"b": b} if with_bias else {})}
    conv = helper.make_node("Conv", ["x", "w", "b"] if with_bias else ["x", "w"], ["c"], pads=[1, 1, 1, 1])
    graph = build([conv, bn_node("c", "y", epsilon=1e-3)], {"x": [1, 3, 5, 5]}, {"y": [1, 4, 5, 5]}, constants)
    after = fold(graph)
    assert ops(after) == ["Conv"] and after.nodes()[0].outputs == ["y"]
    assert "c" not in after.tensors and "scale" not in after.tensors
    s = constants["scale"].astype(np.float64) / np.sqrt(constants["var"].astype(np.float64) + 1e-3)
    bias = (b.astype(np.float64) if with_bias else 0.0) - constants["mean"]
    x, w_new, b_new = after.nodes()[0].inputs
    assert np.array_equal(after.tensor(w_new).data, (w * s.reshape(4, 1, 1, 1)).astype(np.float32))
    assert np.array_equal(after.tensor(b_new).data, (bias * s + constants["shift"]).astype(np.float32))


def test_depthwise_conv():
    conv = helper.make_node("Conv", ["x", "w"], ["c"], group=4)
    graph = build([conv, bn_node("c", "y")], {"x": [1, 4, 4, 4]}, {"y": [1, 4, 2, 2]},
                  {"w": randn(4, 1, 3, 3), **bn_constants(4)})
    assert ops(fold(graph)) == ["Conv"]


def test_grouped_conv_transpose():
    conv = helper.make_node("ConvTranspose", ["x", "w", "b"], ["c"], group=2, strides=[2, 2])
    graph = build([conv, bn_node("c", "y")], {"x": [1, 4, 3, 3]}, {"y": [1, 6, 7, 7]},
                  {"w": randn(4, 3, 3, 3), "b": randn(6), **bn_constants(6)})
    assert ops(fold(graph)) == ["ConvTranspose"]


@pytest.mark.parametrize("trans_b, with_c", [(0, True), (1, True), (0, False)])
def test_gemm_absorbs_batchnorm(trans_b, with_c):
    w = randn(5, 3) if trans_b else randn(3, 5)
    constants = {"w": w, **bn_constants(5), **({"c": randn(1, 5)} if with_c else {})}
    gemm = helper.make_node("Gemm", ["x", "w", "c"] if with_c else ["x", "w"], ["g"],
                            alpha=0.5, beta=2.0, transB=trans_b)
    graph = build([gemm, bn_node("g", "y")], {"x": [2, 3]}, {"y": [2, 5]}, constants)
    after = fold(graph)
    assert ops(after) == ["Gemm"] and after.nodes()[0].attrs.beta == 1.0
    assert after.nodes()[0].attrs.alpha == 0.5


def test_shared_weight_is_not_changed_for_its_other_reader():
    w = randn(2, 2, 1, 1)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c1"]), bn_node("c1", "y1"),
             helper.make_node("Conv", ["x", "w"], ["y2"])]
    graph = build(nodes, {"x": [1, 2, 3, 3]}, {"y1": [1, 2, 3, 3], "y2": [1, 2, 3, 3]},
                  {"w": w, **bn_constants(2)})
    after = fold(graph)
    assert ops(after) == ["Conv", "Conv"]
    second = next(n for n in after.nodes() if n.outputs == ["y2"])
    assert second.inputs[1] == "w" and np.array_equal(after.tensor("w").data, w)


def _conv_bn(extra_nodes=(), outputs=None, runtime_mean=False):
    constants = {"w": randn(2, 2, 1, 1), **bn_constants(2)}
    inputs = {"x": [1, 2, 3, 3]}
    if runtime_mean:
        inputs["mean"] = [2]
        del constants["mean"]
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"]), bn_node("c", "y"), *extra_nodes]
    return build(nodes, inputs, outputs or {"y": [1, 2, 3, 3]}, constants)


@pytest.mark.parametrize("graph", [
    pytest.param(lambda: _conv_bn([helper.make_node("Relu", ["c"], ["r"])], {"y": [1, 2, 3, 3], "r": [1, 2, 3, 3]}),
                 id="conv-output-read-twice"),
    pytest.param(lambda: _conv_bn(outputs={"y": [1, 2, 3, 3], "c": [1, 2, 3, 3]}), id="conv-output-is-graph-output"),
    pytest.param(lambda: _conv_bn(runtime_mean=True), id="statistics-not-constant"),
])
def test_not_folded(graph):
    assert "BatchNormalization" in ops(fold(graph()))


def test_not_folded_after_a_fused_clamp_or_runtime_weight():
    graph = _conv_bn()
    conv = graph.nodes()[0]
    conv.attrs = dataclasses.replace(conv.attrs, act_min=0.0)
    assert ops(fold(graph)) == ["Conv", "BatchNormalization"]
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"]), bn_node("c", "y")]
    graph = build(nodes, {"x": [1, 2, 3, 3], "w": [2, 2, 1, 1]}, {"y": [1, 2, 3, 3]}, bn_constants(2))
    assert ops(fold(graph)) == ["Conv", "BatchNormalization"]


def test_batchnorm_after_other_ops_stays():
    nodes = [helper.make_node("Relu", ["x"], ["r"]), bn_node("r", "y")]
    graph = build(nodes, {"x": [1, 2, 3, 3]}, {"y": [1, 2, 3, 3]}, bn_constants(2))
    assert ops(fold(graph)) == ["Relu", "BatchNormalization"]


def test_channels_last_conv():
    from nnc.ir import Graph, Node, Tensor
    from nnc.ops.conv import ConvAttrs
    from nnc.ops.normalization import BatchNormAttrs

    graph = Graph("g")
    graph.add_tensor(Tensor("x", "f32", (1, 3, 3, 2)))
    graph.inputs.append("x")
    names = [graph.add_constant(n, v).name for n, v in {"w": randn(4, 2, 1, 1), **bn_constants(4)}.items()]
    for t in ("c", "y"):
        graph.add_tensor(Tensor(t, "f32", (1, 3, 3, 4)))
    graph.add_node(Node("conv", "Conv", ["x", "w", ""], ["c"], ConvAttrs((1, 1), (1, 1), (0,) * 4, (1, 1),
                                                                         channels_last=True)))
    graph.add_node(Node("bn", "BatchNormalization", ["c", *names[1:]], ["y"], BatchNormAttrs(channels_last=True)))
    graph.outputs.append("y")
    verify(graph)
    assert ops(fold(graph)) == ["Conv"]
