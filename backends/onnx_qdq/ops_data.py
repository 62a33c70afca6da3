"""ONNX writers of ops that move, select or reduce values.

The IR resolves shapes into attributes (Reshape's target, Pad's amounts,
Slice's starts and sizes, Resize's output sizes); ONNX takes most of them as
int64 initializer inputs, which these writers add.
"""

from __future__ import annotations

import numpy as np

from nnc.ir import Node

from .ops_nn import refuse_channels_last
from .writer import OnnxBuilder, refuse, writes

# An ONNX Slice end past the start of an axis when walking backwards.
_BEFORE_FIRST = int(np.iinfo(np.int64).min)


@writes("Reshape")
def _reshape(out: OnnxBuilder, node: Node) -> None:
    shape = out.ints(f"{node.name}.shape", node.attrs.shape)
    out.add("Reshape", [node.inputs[0], shape], node.outputs, node.name)


@writes("Transpose")
def _transpose(out: OnnxBuilder, node: Node) -> None:
    out.add("Transpose", node.inputs, node.outputs, node.name, perm=list(node.attrs.perm))


@writes("Concat")
def _concat(out: OnnxBuilder, node: Node) -> None:
    out.add("Concat", node.inputs, node.outputs, node.name, axis=node.attrs.axis)


@writes("Pad")
def _pad(out: OnnxBuilder, node: Node) -> None:
    x, a = node.inputs[0], node.attrs
    if a.mode == "wrap":
        raise refuse(node, "pad mode wrap (opset 19)")
    inputs = [x, out.ints(f"{node.name}.pads", a.pads)]
    if a.mode == "constant" and a.value != 0.0:
        inputs.append(out.scalar(f"{node.name}.value", a.value, x))
    out.add("Pad", inputs, node.outputs, node.name, mode=a.mode)


@writes("Slice")
def _slice(out: OnnxBuilder, node: Node) -> None:
    """Only the axes the slice changes; an end before the first element when a
    backwards walk reaches index 0."""
    shape = out.graph.tensor(node.inputs[0]).shape
    a = node.attrs
    axes = [i for i, (s, k, n) in enumerate(zip(a.starts, a.steps, a.sizes)) if (s, k, n) != (0, 1, shape[i])]
    if not axes:
        out.add("Identity", node.inputs[:1], node.outputs, node.name)
        return
    ends = [a.starts[i] + a.sizes[i] * a.steps[i] for i in axes]
    ends = [_BEFORE_FIRST if end < 0 else end for end in ends]
    inputs = [out.ints(f"{node.name}.{what}", values)
              for what, values in (("starts", [a.starts[i] for i in axes]), ("ends", ends), ("axes", axes),
                                   ("steps", [a.steps[i] for i in axes]))]
    out.add("Slice", [node.inputs[0], *inputs], node.outputs, node.name)


@writes("Split")
def _split(out: OnnxBuilder, node: Node) -> None:
    sizes = out.ints(f"{node.name}.split", node.attrs.sizes)
    out.add("Split", [node.inputs[0], sizes], node.outputs, node.name, axis=node.attrs.axis)


@writes("Gather")
def _gather(out: OnnxBuilder, node: Node) -> None:
    out.add("Gather", node.inputs, node.outputs, node.name, axis=node.attrs.axis)


@writes("Expand")
def _expand(out: OnnxBuilder, node: Node) -> None:
    out.add("Expand", [node.inputs[0], out.ints(f"{node.name}.shape", node.attrs.shape)], node.outputs, node.name)


@writes("Tile")
def _tile(out: OnnxBuilder, node: Node) -> None:
    out.add("Tile", [node.inputs[0], out.ints(f"{node.name}.repeats", node.attrs.repeats)], node.outputs, node.name)


@writes("ReduceMean", "ReduceMax")
def _reduce_attribute_axes(out: OnnxBuilder, node: Node) -> None:
    out.add(node.op, node.inputs, node.outputs, node.name, axes=list(node.attrs.axes),
            keepdims=int(node.attrs.keepdims))


@writes("ReduceSum")
def _reduce_sum(out: OnnxBuilder, node: Node) -> None:
    axes = out.ints(f"{node.name}.axes", node.attrs.axes)
    out.add("ReduceSum", [node.inputs[0], axes], node.outputs, node.name, keepdims=int(node.attrs.keepdims))


@writes("Resize")
def _resize(out: OnnxBuilder, node: Node) -> None:
    """Output sizes when the IR's scales are out/in (what ONNX derives from
    sizes), else the scales themselves, whose floor(in · scale) the IR's sizes are."""
    refuse_channels_last(node)
    a = node.attrs
    if a.coordinate_transformation_mode == "half_pixel_symmetric":
        raise refuse(node, "coordinate_transformation_mode half_pixel_symmetric (opset 19)")
    shape = out.graph.tensor(node.inputs[0]).shape
    derived = all(np.float32(o) / np.float32(i) == np.float32(s) for o, i, s in zip(a.sizes, shape[2:], a.scales))
    if derived:
        resize = ["", "", out.ints(f"{node.name}.sizes", [*shape[:2], *a.sizes])]
    else:
        resize = ["", out.constant(f"{node.name}.scales", np.asarray([1.0, 1.0, *a.scales], np.float32))]
    out.add("Resize", [node.inputs[0], *resize], node.outputs, node.name, mode=a.mode,
            coordinate_transformation_mode=a.coordinate_transformation_mode,
            nearest_mode=a.nearest_mode if a.mode == "nearest" else None)
