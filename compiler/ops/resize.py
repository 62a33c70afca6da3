"""`Resize`: nearest and linear resampling of the spatial axes of an
(N, C, *spatial) tensor (`channels_last`: (N, *spatial, C)), as ONNX Resize
(opsets 11-19) and onnxruntime compute it.

Attributes are resolved by the ONNX lowering: `sizes` are the output spatial
extents and `scales` the float32 scale of each spatial axis that the coordinate
transform divides by (ONNX: the given scale, or out/in when sizes were given).
The batch and channel axes are never resized.

Per spatial axis, output index o maps to a source coordinate x (float32, as
onnxruntime evaluates it) by `coordinate_transformation_mode`:
    half_pixel             (o + 0.5) / scale − 0.5
    half_pixel_symmetric   the same, shifted so the resized image stays centred
    pytorch_half_pixel     (o + 0.5) / scale − 0.5, or 0 when out = 1
    align_corners          o · (in − 1) / (out − 1), or 0 when out = 1
    asymmetric             o / scale
    tf_half_pixel_for_nn   (o + 0.5) / scale
then
- nearest: index = round(x) by `nearest_mode` (round_prefer_floor rounds a .5 down,
  round_prefer_ceil up; floor; ceil), clamped to [0, in − 1];
- linear: x is clamped to [0, in − 1], i0 = floor(x), i1 = min(i0 + 1, in − 1),
  and the result is (1 − f)·v[i0] + f·v[i1] with f = x − i0, per axis in turn
  (bilinear for two spatial axes).
`nearest_indices` and `linear_taps` compute these tables once; the integer ops
(qresize.py) and the backends use the same tables.

The ONNX lowering also resolves `axes` and keep_aspect_ratio_policy (opset 18)
and refuses cubic mode, antialias, tf_crop_and_resize, nearest with
half_pixel_symmetric (onnxruntime rounds some coordinates a float32 ulp above a
.5 tie down), and align_corners with scales whose product with the input size is
not an integer (ONNX and onnxruntime then disagree).
"""

from __future__ import annotations


import numpy as np

from ..dtypes import FLOAT_TYPES
from ..errors import ShapeError
from ..ir import TensorType
from ..records import record
from .conv import channels_first, join_shape, restore_layout, split_shape
from .registry import Lowered, OnnxNode, OpDef, lowers, register_op

MODES = ("nearest", "linear")
COORDINATE_MODES = ("half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners", "asymmetric",
                    "tf_half_pixel_for_nn")
NEAREST_MODES = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")
ASPECT_POLICIES = {"stretch": None, "not_larger": min, "not_smaller": max}


@record
class ResizeAttrs:
    """See the module docstring; `sizes` and `scales` have one entry per spatial axis."""

    sizes: tuple[int, ...]
    scales: tuple[float, ...]
    mode: str = "nearest"
    coordinate_transformation_mode: str = "half_pixel"
    nearest_mode: str = "round_prefer_floor"
    channels_last: bool = False


def source_coordinates(attrs: ResizeAttrs, axis: int, in_size: int) -> np.ndarray:
    """Float32 source coordinate of every output index along spatial `axis`."""
    out, scale = attrs.sizes[axis], np.float32(attrs.scales[axis])
    o = np.arange(out, dtype=np.float32)
    mode, half = attrs.coordinate_transformation_mode, np.float32(0.5)
    if mode == "asymmetric":
        return o / scale
    if mode == "tf_half_pixel_for_nn":
        return (o + half) / scale
    if mode == "align_corners":
        if out == 1:
            return np.zeros(1, np.float32)
        return o * np.float32(in_size - 1) / np.float32(out - 1)
    if mode == "pytorch_half_pixel" and out == 1:
        return np.zeros(1, np.float32)
    if mode == "half_pixel_symmetric":  # onnxruntime: offset in float32, the rest in float64
        adjustment = np.float32(out) / (scale * np.float32(in_size))
        offset = np.float32(in_size) / np.float32(2) * (np.float32(1) - adjustment)
        return (np.float64(offset) + (o.astype(np.float64) + 0.5) / np.float64(scale) - 0.5).astype(np.float32)
    return (o + half) / scale - half


def nearest_indices(attrs: ResizeAttrs, axis: int, in_size: int) -> np.ndarray:
    """int64 source index of every output index along spatial `axis`."""
    x = source_coordinates(attrs, axis, in_size).astype(np.float64)
    rounding = {"round_prefer_floor": lambda v: np.ceil(v - 0.5), "round_prefer_ceil": lambda v: np.floor(v + 0.5),
                "floor": np.floor, "ceil": np.ceil}[attrs.nearest_mode]
    return np.clip(rounding(x), 0, in_size - 1).astype(np.int64)


def linear_taps(attrs: ResizeAttrs, axis: int, in_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(i0, i1, f) along spatial `axis`: the two source indices (int64) of every
    output index and the weight f ∈ [0, 1) of i1 (float64 of a float32)."""
    x = np.clip(source_coordinates(attrs, axis, in_size), np.float32(0), np.float32(in_size - 1))
    i0 = np.floor(x).astype(np.int64)
    i1 = np.minimum(i0 + 1, in_size - 1)
    return i0, i1, (x - i0.astype(np.float32)).astype(np.float64)


def check_attrs(attrs: ResizeAttrs, spatial: tuple[int, ...]) -> None:
    if attrs.mode not in MODES or attrs.coordinate_transformation_mode not in COORDINATE_MODES \
            or attrs.nearest_mode not in NEAREST_MODES:
        raise ShapeError(f"unknown mode {attrs.mode!r}, {attrs.coordinate_transformation_mode!r} or "
                         f"{attrs.nearest_mode!r}")
    if len(attrs.sizes) != len(spatial) or len(attrs.scales) != len(spatial):
        raise ShapeError(f"sizes {list(attrs.sizes)} and scales {list(attrs.scales)} do not fit "
                         f"{len(spatial)} spatial axes")
    if min(attrs.sizes) < 1 or min(attrs.scales) <= 0:
        raise ShapeError(f"sizes {list(attrs.sizes)} and scales {list(attrs.scales)} must be positive")


@register_op
class Resize(OpDef):
    name = "Resize"
    Attrs = ResizeAttrs

    @staticmethod
    def infer(attrs, inputs):
        x = inputs[0]
        n, c, spatial = split_shape(x.shape, attrs.channels_last)
        check_attrs(attrs, spatial)
        if attrs.mode == "linear" and x.dtype not in FLOAT_TYPES:
            raise ShapeError(f"linear Resize needs float data, got {x.dtype} (integers use QResize)")
        return [TensorType(x.dtype, join_shape(n, c, attrs.sizes, attrs.channels_last))]

    @staticmethod
    def evaluate(attrs, inputs):
        x = channels_first(inputs[0], attrs.channels_last)
        y = x if attrs.mode == "nearest" else x.astype(np.float64)
        for axis, size in enumerate(x.shape[2:]):
            if attrs.mode == "nearest":
                y = np.take(y, nearest_indices(attrs, axis, size), axis=axis + 2)
            else:
                i0, i1, f = linear_taps(attrs, axis, size)
                shape = [1] * y.ndim
                shape[axis + 2] = -1
                f = f.reshape(shape)
                y = np.take(y, i0, axis=axis + 2) * (1 - f) + np.take(y, i1, axis=axis + 2) * f
        return [restore_layout(y, attrs.channels_last).astype(inputs[0].dtype)]


# -- ONNX lowering ------------------------------------------------------------------
@lowers("Resize")
def _lower_resize(n: OnnxNode):
    rank = len(n.input_types[0].shape)
    _check_supported(n)
    scales, sizes = _scales_and_sizes(n, rank)
    in_shape = n.input_types[0].shape
    if sizes is not None:
        scales = [np.float32(o) / np.float32(i) for o, i in zip(sizes, in_shape)]
        scales, sizes = _keep_aspect_ratio(n, scales, sizes, in_shape)
    else:
        sizes = [int(np.float32(s) * np.float32(i)) for s, i in zip(scales, in_shape)]
        _check_align_corners(n, scales, in_shape, sizes)
    if rank < 3 or list(sizes[:2]) != list(in_shape[:2]):
        raise n.unsupported(f"only the spatial axes (2 and up) can be resized; output {list(sizes)} "
                            f"from input {list(in_shape)}")
    attrs = ResizeAttrs(tuple(int(s) for s in sizes[2:]), tuple(float(s) for s in scales[2:]),
                        n.attr("mode", "nearest"), n.attr("coordinate_transformation_mode", "half_pixel"),
                        n.attr("nearest_mode", "round_prefer_floor"))
    return Lowered("Resize", attrs, inputs=n.inputs[:1])


def _check_align_corners(n: OnnxNode, scales, in_shape, sizes) -> None:
    """align_corners from scales whose product with the input size is fractional:
    ONNX's reference divides by in·scale − 1, onnxruntime by the output size − 1."""
    if n.attr("coordinate_transformation_mode") == "align_corners" and \
            any(np.float32(s) * np.float32(i) != o for s, i, o in zip(scales, in_shape, sizes)):
        raise n.unsupported("align_corners with scales whose product with the input size is not an "
                            "integer: ONNX divides by in·scale − 1, onnxruntime by the output size − 1")


def _check_supported(n: OnnxNode) -> None:
    mode = n.attr("mode", "nearest")
    if mode not in MODES:
        raise n.unsupported(f"mode {mode!r} is not supported (nearest and linear are)")
    transform = n.attr("coordinate_transformation_mode", "half_pixel")
    if transform not in COORDINATE_MODES:
        raise n.unsupported(f"coordinate_transformation_mode {transform!r} is not supported")
    if mode == "nearest" and transform == "half_pixel_symmetric":
        raise n.unsupported("nearest with half_pixel_symmetric is not supported (onnxruntime rounds "
                            "coordinates within float32 noise of a .5 tie in a way nnc cannot reproduce)")
    if n.attr("nearest_mode", "round_prefer_floor") not in NEAREST_MODES:
        raise n.unsupported(f"nearest_mode {n.attr('nearest_mode')!r} is not supported")
    if n.attr("antialias", 0):
        raise n.unsupported("antialias is not supported")
    if n.attr("keep_aspect_ratio_policy", "stretch") not in ASPECT_POLICIES:
        raise n.unsupported(f"keep_aspect_ratio_policy {n.attr('keep_aspect_ratio_policy')!r} is not supported")


def _keep_aspect_ratio(n: OnnxNode, scales: list, sizes: list, in_shape) -> tuple[list, list]:
    """keep_aspect_ratio_policy not_larger/not_smaller (opset 18): the axes given
    share the smallest/largest out/in ratio r (float32) and get size
    round_half_up(r · in); stretch keeps them as they are."""
    pick = ASPECT_POLICIES[n.attr("keep_aspect_ratio_policy", "stretch")]
    if pick is None:
        return scales, sizes
    axes = [int(a) % len(in_shape) for a in n.attr("axes", range(len(in_shape)))]
    ratio = pick(scales[a] for a in axes)
    scales, sizes = list(scales), list(sizes)
    for a in axes:
        scales[a] = ratio
        sizes[a] = int(np.floor(ratio * np.float32(in_shape[a]) + np.float32(0.5)))
    return scales, sizes


def _scales_and_sizes(n: OnnxNode, rank: int) -> tuple[list | None, list | None]:
    """Full-rank scales or sizes from the inputs (X, roi, scales, sizes); with `axes`
    (opset 18) they cover only those axes, the others keep scale 1."""
    scales, sizes = n.const_input(2, "scales"), n.const_input(3, "sizes")
    scales = None if scales is None or scales.size == 0 else [float(s) for s in scales.reshape(-1)]
    sizes = None if sizes is None or sizes.size == 0 else [int(s) for s in sizes.reshape(-1)]
    if (scales is None) == (sizes is None):
        raise n.unsupported("needs exactly one of scales and sizes")
    given = scales if sizes is None else sizes
    axes = [int(a) % rank for a in n.attr("axes", range(rank))]
    if len(axes) != len(given):
        raise n.unsupported(f"{len(given)} scales or sizes for {len(axes)} axes")
    full = [1.0] * rank if sizes is None else list(n.input_types[0].shape)
    for axis, value in zip(axes, given):
        full[axis] = value
    return (full, None) if sizes is None else (None, full)
