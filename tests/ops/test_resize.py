"""Resize (compiler/ops/resize.py) against onnxruntime: nearest with every
nearest_mode and linear (1-D, bilinear), by scales or sizes, under every
coordinate_transformation_mode, channels-first and channels-last; and the
cases the front end refuses."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper, numpy_helper

from nnc.errors import UnsupportedError
from nnc.frontend.onnx_loader import lower_model
from nnc.interpreter import run
from nnc.ops import get_op

TRANSFORMS = ("half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners", "asymmetric",
              "tf_half_pixel_for_nn")
NEAREST = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")
RNG = np.random.default_rng(5)


def resize_model(x_shape, scales=None, sizes=None, opset=19, **attrs):
    inits = [numpy_helper.from_array(np.zeros(0, np.float32), "roi")]
    inputs = ["x", "roi", "", ""]
    if scales is not None:
        inits.append(numpy_helper.from_array(np.asarray(scales, np.float32), "scales"))
        inputs[2] = "scales"
    if sizes is not None:
        inits.append(numpy_helper.from_array(np.asarray(sizes, np.int64), "sizes"))
        inputs[3] = "sizes"
    node = helper.make_node("Resize", inputs, ["y"], **attrs)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", 1, x_shape)],
                              [helper.make_tensor_value_info("y", 1, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=9)
    return onnx.shape_inference.infer_shapes(model)


def compare(model, x_shape, channels_last=False):
    x = RNG.standard_normal(x_shape).astype(np.float32)
    want = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    graph = lower_model(model, {})
    if channels_last:
        (node,) = graph.nodes()
        attrs = dataclasses.replace(node.attrs, channels_last=True)
        got = np.moveaxis(get_op("Resize").evaluate(attrs, [np.moveaxis(x, 1, -1)])[0], -1, 1)
    else:
        got = run(graph, {"x": x})["y"]
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


SCALES = [[1, 1, 2, 2], [1, 1, 0.5, 0.75], [1, 1, 1.75, 3.0], [1, 1, 0.25, 2.5]]  # integral sizes from [4, 8]


@pytest.mark.parametrize("transform, nearest, scales", [
    (t, n, s) for (t, n), s in zip(itertools.product(TRANSFORMS, NEAREST), itertools.cycle(SCALES))])
def test_nearest_by_scales(transform, nearest, scales):
    if transform == "half_pixel_symmetric":
        with pytest.raises(UnsupportedError, match="nearest with half_pixel_symmetric"):
            lower_model(resize_model([1, 2, 4, 8], scales=scales, coordinate_transformation_mode=transform), {})
        return
    model = resize_model([1, 2, 4, 8], scales=scales, mode="nearest", coordinate_transformation_mode=transform,
                         nearest_mode=nearest)
    compare(model, [1, 2, 4, 8], channels_last=nearest == "floor")


ROUNDED_DOWN = ("half_pixel", "half_pixel_symmetric", "asymmetric", "pytorch_half_pixel")


@pytest.mark.parametrize("mode, transform", [  # nearest with half_pixel_symmetric is refused
    (m, t) for m in ("nearest", "linear") for t in ROUNDED_DOWN if (m, t) != ("nearest", "half_pixel_symmetric")])
def test_scales_whose_sizes_are_rounded_down(mode, transform):
    model = resize_model([1, 2, 5, 7], scales=[1, 1, 1.7, 0.6], mode=mode, coordinate_transformation_mode=transform)
    compare(model, [1, 2, 5, 7])


@pytest.mark.parametrize("transform", TRANSFORMS[:5])
@pytest.mark.parametrize("sizes", [[1, 3, 9, 14], [1, 3, 3, 4], [1, 3, 1, 11]])
def test_linear_by_sizes(transform, sizes):
    model = resize_model([1, 3, 4, 6], sizes=sizes, mode="linear", coordinate_transformation_mode=transform)
    compare(model, [1, 3, 4, 6], channels_last=transform == "asymmetric")


@pytest.mark.parametrize("transform", ["half_pixel", "align_corners", "pytorch_half_pixel"])
def test_linear_by_scales_and_one_dimensional(transform):
    compare(resize_model([2, 3, 4, 4], scales=[1, 1, 2.5, 1.5], mode="linear",
                         coordinate_transformation_mode=transform), [2, 3, 4, 4])
    compare(resize_model([2, 3, 7], scales=[1, 1, 2], mode="linear", coordinate_transformation_mode=transform),
            [2, 3, 7])


def test_nearest_with_axes_and_integers():
    compare(resize_model([1, 2, 3, 5], sizes=[6, 10], axes=[2, 3], opset=19), [1, 2, 3, 5])
    attrs = get_op("Resize").Attrs((4,), (2.0,))
    (y,) = get_op("Resize").evaluate(attrs, [np.arange(6, dtype=np.int8).reshape(1, 2, 3)])
    # half_pixel: x = -0.25, 0.25, 0.75, 1.25
    assert y.dtype == np.int8 and y.tolist() == [[[0, 0, 1, 1], [3, 3, 4, 4]]]


@pytest.mark.parametrize("policy", ["not_larger", "not_smaller"])
def test_keep_aspect_ratio_policy(policy):
    model = resize_model([1, 2, 4, 6], sizes=[7, 8], axes=[2, 3], opset=19, keep_aspect_ratio_policy=policy)
    compare(model, [1, 2, 4, 6])


@pytest.mark.parametrize("scales, attrs, why", [
    ([1, 1, 2, 2], dict(mode="cubic"), "mode 'cubic'"),
    ([1, 1, 2, 2], dict(coordinate_transformation_mode="tf_crop_and_resize"), "tf_crop_and_resize"),
    ([1, 2, 2, 2], {}, "only the spatial axes"),
    ([1, 1, 2, 2], dict(antialias=1), "antialias"),
    ([1, 1, 0.6, 0.6], dict(mode="linear", coordinate_transformation_mode="align_corners"), "onnxruntime"),
])
def test_refused(scales, attrs, why):
    with pytest.raises(UnsupportedError, match=f"Resize node .*{why}"):
        lower_model(resize_model([1, 2, 3, 3], scales=scales, **attrs), {})
