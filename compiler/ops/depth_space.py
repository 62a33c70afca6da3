"""Blocks of channels to space and back: `DepthToSpace` (PyTorch's
PixelShuffle exports it, mode CRD; TensorFlow's depth_to_space, mode DCR) and
`SpaceToDepth` (ONNX opset 13), on [N, C, H, W].

Each is a Reshape to 6-D, a Transpose and a Reshape back (ONNX Operators.md
gives the three steps; `steps` returns them), which canonicalize writes out
(passes/depth_space.py) so that every target runs them as data movement.
"""

from __future__ import annotations

import numpy as np

from ..errors import ShapeError
from ..ir import TensorType
from ..records import record
from .registry import Lowered, OnnxNode, OpDef, lowers, register_op

MODES = ("DCR", "CRD")


@record
class DepthSpaceAttrs:
    """`blocksize` b ≥ 1; `mode`, the order of the channels a block spreads to
    or gathers from (DCR: depth, column, row; CRD: column, row, depth;
    SpaceToDepth has it from opset 24)."""

    blocksize: int
    mode: str = "DCR"


def steps(op: str, attrs: DepthSpaceAttrs, shape: tuple[int, ...]):
    """(6-D shape, perm, output shape) of the Reshape, Transpose, Reshape that
    `op` is on an input of `shape`."""
    n, c, h, w = shape
    b = attrs.blocksize
    if op == "SpaceToDepth":
        perm = (0, 3, 5, 1, 2, 4) if attrs.mode == "DCR" else (0, 1, 3, 5, 2, 4)
        return (n, c, h // b, b, w // b, b), perm, (n, c * b * b, h // b, w // b)
    if attrs.mode == "DCR":
        return (n, b, b, c // (b * b), h, w), (0, 3, 4, 1, 5, 2), (n, c // (b * b), h * b, w * b)
    return (n, c // (b * b), b, b, h, w), (0, 1, 4, 2, 5, 3), (n, c // (b * b), h * b, w * b)


class _DepthSpace(OpDef):
    Attrs = DepthSpaceAttrs

    @classmethod
    def infer(cls, attrs, inputs):
        x, b = inputs[0], attrs.blocksize
        if len(x.shape) != 4 or b < 1 or attrs.mode not in MODES:
            raise ShapeError(f"needs a 4-D input and blocksize >= 1, got {list(x.shape)}, blocksize {b}, "
                             f"mode {attrs.mode!r}")
        _, c, h, w = x.shape
        if cls.name == "SpaceToDepth" and (h % b or w % b):
            raise ShapeError(f"height {h} and width {w} must be multiples of blocksize {b}")
        if cls.name == "DepthToSpace" and c % (b * b):
            raise ShapeError(f"channels {c} must be a multiple of blocksize² {b * b}")
        return [TensorType(x.dtype, steps(cls.name, attrs, x.shape)[2])]

    @classmethod
    def evaluate(cls, attrs, xs):
        six, perm, out = steps(cls.name, attrs, xs[0].shape)
        return [np.ascontiguousarray(xs[0].reshape(six).transpose(perm)).reshape(out)]


@register_op
class DepthToSpace(_DepthSpace):
    name = "DepthToSpace"


@register_op
class SpaceToDepth(_DepthSpace):
    name = "SpaceToDepth"


@lowers("DepthToSpace", "SpaceToDepth")
def _lower_depth_space(n: OnnxNode):
    mode = n.attr("mode", "DCR")
    if isinstance(mode, bytes):
        mode = mode.decode()
    if mode not in MODES:
        raise n.unsupported(f"mode {mode!r} (ONNX allows {', '.join(MODES)})")
    return Lowered(n.op_type, DepthSpaceAttrs(int(n.attr("blocksize")), mode))
