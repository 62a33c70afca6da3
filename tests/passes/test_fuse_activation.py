"""fuse-activation: Relu/Clip become the fused clamp of Conv/ConvTranspose/Gemm, bit-exactly."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from onnx import helper

from nnc.passmanager import parse_pipeline
from nnc.verifier import verify

import pass_testing
from pass_testing import apply, build, ops

RNG = np.random.default_rng(4)


def randn(*shape) -> np.ndarray:
    return pass_testing.randn(RNG, *shape)


def fuse(graph, pipeline="fuse-activation"):
    """The rewritten graph, checked valid with bit-identical outputs."""
    return apply(graph, pipeline, input_scale=4.0)








def clip(x: str, y: str, lo=None, hi=None):
    return helper.make_node("Clip", [x, "" if lo is None else f"{y}.min", "" if hi is None else f"{y}.max"], [y])


def clip_bounds(y: str, lo=None, hi=None) -> dict:
    return {k: np.float32(v) for k, v in ((f"{y}.min", lo), (f"{y}.max", hi)) if v is not None}


def conv_graph(*act_nodes, outputs=None, act_constants=None):
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]), *act_nodes]
    return build(nodes, {"x": [1, 2, 5, 5]}, outputs or {"y": [1, 3, 5, 5]},
                 {"w": randn(3, 2, 3, 3), "b": randn(3), **(act_constants or {})})


def test_conv_relu():
    after = fuse(conv_graph(helper.make_node("Relu", ["c"], ["y"])))
    (conv,) = after.nodes()
    assert conv.op == "Conv" and conv.outputs == ["y"] and "c" not in after.tensors
    assert (conv.attrs.act_min, conv.attrs.act_max) == (0.0, None)


@pytest.mark.parametrize("lo, hi", [(0.0, 6.0), (None, 0.7), (0.1, None), (-0.3, 0.3)])
def test_gemm_clip(lo, hi):
    nodes = [helper.make_node("Gemm", ["x", "w"], ["g"], transB=1), clip("g", "y", lo, hi)]
    graph = build(nodes, {"x": [3, 4]}, {"y": [3, 5]}, {"w": randn(5, 4), **clip_bounds("y", lo, hi)})
    (gemm,) = fuse(graph).nodes()
    assert (gemm.attrs.act_min, gemm.attrs.act_max) == tuple(None if v is None else float(np.float32(v))
                                                             for v in (lo, hi))


def test_bounds_that_f32_cannot_hold_stay_bit_exact():
    graph = conv_graph(clip("c", "y", 0.1, 0.7), act_constants=clip_bounds("y", 0.1, 0.7))
    act = graph.nodes()[1]
    act.attrs = dataclasses.replace(act.attrs, min=0.1, max=0.7)  # doubles, not f32 values
    (conv,) = fuse(graph).nodes()
    assert (conv.attrs.act_min, conv.attrs.act_max) == (0.1, 0.7)


def test_conv_transpose_relu():
    nodes = [helper.make_node("ConvTranspose", ["x", "w"], ["c"], strides=[2, 2]),
             helper.make_node("Relu", ["c"], ["y"])]
    graph = build(nodes, {"x": [1, 2, 3, 3]}, {"y": [1, 3, 7, 7]}, {"w": randn(2, 3, 3, 3)})
    assert ops(fuse(graph)) == ["ConvTranspose"]


def test_relu_then_clip_intersect():
    graph = conv_graph(helper.make_node("Relu", ["c"], ["r"]), clip("r", "y", -1.0, 6.0),
                       act_constants=clip_bounds("y", -1.0, 6.0))
    (conv,) = fuse(graph).nodes()
    assert (conv.attrs.act_min, conv.attrs.act_max) == (0.0, 6.0)


def test_existing_clamp_is_intersected():
    graph = conv_graph(clip("c", "y", 0.5, 3.0), act_constants=clip_bounds("y", 0.5, 3.0))
    conv = graph.nodes()[0]
    conv.attrs = dataclasses.replace(conv.attrs, act_min=0.0, act_max=2.0)
    (conv,) = fuse(graph).nodes()
    assert (conv.attrs.act_min, conv.attrs.act_max) == (0.5, 2.0)


def test_disjoint_clamps_are_left_alone():
    graph = conv_graph(clip("c", "y", 2.0, 3.0), act_constants=clip_bounds("y", 2.0, 3.0))
    conv = graph.nodes()[0]
    conv.attrs = dataclasses.replace(conv.attrs, act_min=0.0, act_max=1.0)
    assert ops(fuse(graph)) == ["Conv", "Clip"]


@pytest.mark.parametrize("graph", [
    pytest.param(lambda: conv_graph(helper.make_node("Relu", ["c"], ["y"]),
                                    outputs={"y": [1, 3, 5, 5], "c": [1, 3, 5, 5]}), id="intermediate-is-output"),
    pytest.param(lambda: conv_graph(helper.make_node("Relu", ["c"], ["y"]), helper.make_node("Sigmoid", ["c"], ["z"]),
                                    outputs={"y": [1, 3, 5, 5], "z": [1, 3, 5, 5]}), id="intermediate-read-twice"),
    pytest.param(lambda: build([helper.make_node("Add", ["x", "x"], ["a"]), helper.make_node("Relu", ["a"], ["y"])],
                               {"x": [2, 2]}, {"y": [2, 2]}, {}), id="producer-not-a-layer"),
])
def test_not_fused(graph):
    g = graph()
    assert ops(fuse(g)) == ops(g)


def test_fully_connected_layer_becomes_one_gemm_with_clamp():
    nodes = [helper.make_node("MatMul", ["x", "w"], ["m"]), helper.make_node("Add", ["m", "b"], ["a"]),
             helper.make_node("Relu", ["a"], ["y"])]
    graph = build(nodes, {"x": [2, 4]}, {"y": [2, 3]}, {"w": randn(4, 3), "b": randn(3)})
    (p1, p2) = parse_pipeline("fuse-bias,fuse-activation")
    after = p2.run(p1.run(graph.copy()))
    verify(after)
    (gemm,) = after.nodes()
    assert gemm.op == "Gemm" and gemm.attrs.act_min == 0.0 and gemm.outputs == ["y"]
