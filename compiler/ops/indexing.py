"""Indexing ops that select values without changing them: Gather, GatherND,
Slice, Split.

Every operand that fixes the selection (Slice's starts/ends/axes/steps, Split's
sizes) must be a constant and becomes a resolved attribute; Gather's indices may
be a run-time tensor (an embedding lookup of token ids given as a model input).

Invariants of the IR forms (checked by `infer`):
- Slice attributes are per axis of the input and literal: element k of axis a
  is input element starts[a] + k·steps[a], k < sizes[a], always in bounds.
- Split `sizes` sum to the extent of `axis`; each output is one piece.
- Gather never reads out of bounds: an index i of an axis of extent n selects
  i + n when -n <= i < 0, and is otherwise clamped to [0, n − 1]
  (docs/numerics.md §8a). In-range indices behave exactly as ONNX says;
  ONNX leaves out-of-range indices an error, nnc defines them. GatherND
  follows the same rule on each of its index components.
- GatherND with constant indices and no batch dims is a Gather of the
  flattened leading axes; canonicalize rewrites it so (passes/gather_nd.py),
  which is how every target runs it (PyTorch's dynamo exports a 1-D linear
  Upsample as two GatherNDs).
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import ShapeError
from ..ir import TensorType
from ..records import record
from .registry import Lowered, OnnxNode, OpDef, lowers, register_op
from .shape import node_axis, node_error, normalize_axis

INDEX_TYPES = ("i32", "i64")


# -- Gather --------------------------------------------------------------------
@record
class GatherAttrs:
    """`axis`: the non-negative axis of the data that the indices select along."""

    axis: int


def clamp_indices(indices: np.ndarray, extent: int) -> np.ndarray:
    """Gather's index rule as int64: negative indices count from the end, then
    every index is clamped into [0, extent − 1] (see the module docstring)."""
    idx = np.asarray(indices).astype(np.int64)
    idx = np.where(idx < 0, idx + extent, idx)
    return np.clip(idx, 0, max(extent - 1, 0))


@register_op
class Gather(OpDef):
    """y[o..., j..., i...] = data[o..., clamp(indices[j...]), i...] along `axis`."""

    name = "Gather"
    Attrs = GatherAttrs
    param_inputs = (0,)

    @staticmethod
    def infer(attrs, inputs):
        data, indices = inputs
        if not 0 <= attrs.axis < len(data.shape):
            raise ShapeError(f"axis {attrs.axis} is out of range for rank {len(data.shape)}")
        if indices.dtype not in INDEX_TYPES:
            raise ShapeError(f"indices have type {indices.dtype}; Gather needs {' or '.join(INDEX_TYPES)}")
        if data.shape[attrs.axis] == 0 and math.prod(indices.shape):
            raise ShapeError("cannot gather from an empty axis")
        shape = data.shape[:attrs.axis] + tuple(indices.shape) + data.shape[attrs.axis + 1:]
        return [TensorType(data.dtype, shape)]

    @staticmethod
    def evaluate(attrs, xs):
        data, indices = xs
        return [np.take(data, clamp_indices(indices, data.shape[attrs.axis]), axis=attrs.axis)]


@lowers("Gather")
def _lower_gather(n: OnnxNode):
    shape = n.input_types[0].shape
    axis = node_axis(n, n.attr("axis", 0), len(shape))
    _check_constant_indices(n, n.constants.get(n.inputs[1]), shape[axis])
    return Lowered("Gather", GatherAttrs(axis))


def _check_constant_indices(n: OnnxNode, indices: np.ndarray | None, extent: int) -> None:
    """Constant indices must lie in [-extent, extent - 1] as ONNX requires (nnc
    defines out-of-range indices only for run-time ones)."""
    if indices is None or indices.size == 0:
        return
    bad = (indices < -extent) | (indices >= extent)
    if bad.any():
        index = np.unravel_index(int(np.argmax(bad.reshape(-1))), indices.shape)
        raise node_error(n, f"constant index {int(indices[index])} at {list(map(int, index))} is out of range "
                            f"for an axis of extent {extent}")


# -- GatherND --------------------------------------------------------------------
@record
class GatherNDAttrs:
    """`batch_dims`: leading axes that data and indices share, gathered per entry."""

    batch_dims: int = 0


@register_op
class GatherND(OpDef):
    """y[b..., j...] = data[b..., clamp(indices[b..., j..., :]), ...]: each last-axis
    row of the indices (k components) selects a slice of data after its first
    batch_dims + k axes (ONNX GatherND-13)."""

    name = "GatherND"
    Attrs = GatherNDAttrs
    param_inputs = (0,)

    @staticmethod
    def infer(attrs, inputs):
        data, indices = inputs
        b = attrs.batch_dims
        if indices.dtype not in INDEX_TYPES:
            raise ShapeError(f"indices have type {indices.dtype}; GatherND needs {' or '.join(INDEX_TYPES)}")
        if not indices.shape or not 0 <= b < min(len(data.shape), len(indices.shape)):
            raise ShapeError(f"batch_dims {b} does not fit data {list(data.shape)} and indices {list(indices.shape)}")
        k = indices.shape[-1]
        if data.shape[:b] != indices.shape[:b] or not 1 <= k <= len(data.shape) - b:
            raise ShapeError(f"indices {list(indices.shape)} do not index data {list(data.shape)} "
                             f"with batch_dims {b}")
        if 0 in data.shape[b:b + k] and math.prod(indices.shape):
            raise ShapeError("cannot gather from an empty axis")
        return [TensorType(data.dtype, tuple(indices.shape[:-1]) + data.shape[b + k:])]

    @staticmethod
    def evaluate(attrs, xs):
        data, indices = xs
        b, k = attrs.batch_dims, indices.shape[-1]
        batch = math.prod(data.shape[:b])
        flat_data = data.reshape(batch, *data.shape[b:])
        flat_indices = indices.reshape(batch, -1, k)
        rows = [flat_data[n][tuple(clamp_indices(flat_indices[n][:, a], data.shape[b + a]) for a in range(k))]
                for n in range(batch)]
        return [np.stack(rows).reshape(tuple(indices.shape[:-1]) + data.shape[b + k:])]


@lowers("GatherND")
def _lower_gather_nd(n: OnnxNode):
    shape = n.input_types[0].shape
    b = int(n.attr("batch_dims", 0))
    indices = n.constants.get(n.inputs[1])
    if indices is not None and indices.size and 0 <= b < indices.ndim:
        for a in range(indices.shape[-1]):
            if b + a < len(shape):
                _check_constant_indices(n, indices[..., a], shape[b + a])
    return Lowered("GatherND", GatherNDAttrs(b))


# -- Slice ---------------------------------------------------------------------
@record
class SliceAttrs:
    """Per input axis: the first element `starts`, the stride `steps` (non-zero,
    negative walks backwards) and the number of elements `sizes` taken."""

    starts: tuple[int, ...]
    steps: tuple[int, ...]
    sizes: tuple[int, ...]


def axis_indices(start: int, step: int, size: int) -> slice:
    """The numpy slice of `size` elements from `start` with stride `step`."""
    if size == 0:
        return slice(0, 0)
    last = start + step * (size - 1)
    stop = last + (1 if step > 0 else -1)
    return slice(start, None if stop < 0 else stop, step)


@register_op
class Slice(OpDef):
    name = "Slice"
    Attrs = SliceAttrs

    @staticmethod
    def infer(attrs, inputs):
        x = inputs[0]
        rank = len(x.shape)
        if not len(attrs.starts) == len(attrs.steps) == len(attrs.sizes) == rank:
            raise ShapeError(f"slice attributes need {rank} entries each")
        for extent, start, step, size in zip(x.shape, attrs.starts, attrs.steps, attrs.sizes):
            last = start + step * (size - 1)
            if step == 0 or size < 0 or (size and not (0 <= start < extent and 0 <= last < extent)):
                raise ShapeError(f"slice start {start}, step {step}, size {size} leaves an axis of {extent}")
        return [TensorType(x.dtype, tuple(attrs.sizes))]

    @staticmethod
    def evaluate(attrs, xs):
        index = tuple(axis_indices(*a) for a in zip(attrs.starts, attrs.steps, attrs.sizes))
        return [np.ascontiguousarray(xs[0][index])]


def resolve_slice(extent: int, start: int, end: int, step: int) -> tuple[int, int]:
    """(first index, count) of ONNX Slice on one axis: negative start/end count
    from the end, then both are clamped ([0, extent] forwards, [-1, extent − 1]
    backwards)."""
    start = start + extent if start < 0 else start
    end = end + extent if end < 0 else end
    if step > 0:
        start, end = min(max(start, 0), extent), min(max(end, 0), extent)
        count = max(0, -(-(end - start) // step))
    else:
        start, end = min(max(start, 0), extent - 1), min(max(end, -1), extent - 1)
        count = max(0, -(-(start - end) // -step))
    return (start if count else 0), count


def _slice_operands(n: OnnxNode, rank: int) -> tuple[list[int], list[int], list[int], list[int]]:
    """starts, ends, axes, steps from attributes (opset < 10) or constant inputs."""
    if n.opset < 10:
        starts, ends, axes = n.attr("starts"), n.attr("ends"), n.attr("axes")
        steps = None
    else:
        starts, ends = n.const_input(1, "starts"), n.const_input(2, "ends")
        axes, steps = n.const_input(3, "axes"), n.const_input(4, "steps")
    if starts is None or ends is None:
        raise node_error(n, "has no starts or ends")
    flat = [[int(v) for v in np.asarray(a).reshape(-1)] for a in (starts, ends)]
    axes = list(range(len(flat[0]))) if axes is None else [int(a) for a in np.asarray(axes).reshape(-1)]
    steps = [1] * len(axes) if steps is None else [int(s) for s in np.asarray(steps).reshape(-1)]
    if not len(flat[0]) == len(flat[1]) == len(axes) == len(steps):
        raise node_error(n, "starts, ends, axes and steps differ in length")
    return flat[0], flat[1], [node_axis(n, a, rank) for a in axes], steps


@lowers("Slice")
def _lower_slice(n: OnnxNode):
    shape = n.input_types[0].shape
    starts, ends, axes, steps = _slice_operands(n, len(shape))
    if len(set(axes)) != len(axes) or 0 in steps:
        raise node_error(n, f"axes {axes} repeat an axis or steps {steps} hold 0")
    first, step, size = [0] * len(shape), [1] * len(shape), list(shape)
    for axis, s, e, k in zip(axes, starts, ends, steps):
        first[axis], size[axis] = resolve_slice(shape[axis], s, e, k)
        step[axis] = k
    return Lowered("Slice", SliceAttrs(tuple(first), tuple(step), tuple(size)), inputs=n.inputs[:1])


# -- Split ---------------------------------------------------------------------
@record
class SplitAttrs:
    """`axis` (non-negative) and the extent of each output along it."""

    axis: int
    sizes: tuple[int, ...]


@register_op
class Split(OpDef):
    """Consecutive pieces of the input along `axis`, one per output. The
    canonicalize pass rewrites it into one Slice per used output."""

    name = "Split"
    Attrs = SplitAttrs

    @staticmethod
    def infer(attrs, inputs):
        x = inputs[0]
        normalize_axis(attrs.axis, len(x.shape))
        if min(attrs.sizes, default=0) < 0 or sum(attrs.sizes) != x.shape[attrs.axis]:
            raise ShapeError(f"split sizes {list(attrs.sizes)} do not add up to extent {x.shape[attrs.axis]}")
        shapes = [x.shape[:attrs.axis] + (s,) + x.shape[attrs.axis + 1:] for s in attrs.sizes]
        return [TensorType(x.dtype, s) for s in shapes]

    @staticmethod
    def evaluate(attrs, xs):
        cuts = np.cumsum(attrs.sizes)[:-1]
        return [np.ascontiguousarray(p) for p in np.split(xs[0], cuts, axis=attrs.axis)]


def split_slices(shape: tuple[int, ...], attrs: SplitAttrs) -> list[SliceAttrs]:
    """The Slice that computes each output of Split `attrs` on an input of `shape`."""
    out, offset = [], 0
    for size in attrs.sizes:
        starts = [0] * len(shape)
        starts[attrs.axis] = offset if size else 0
        sizes = list(shape)
        sizes[attrs.axis] = size
        out.append(SliceAttrs(tuple(starts), (1,) * len(shape), tuple(sizes)))
        offset += size
    return out


def _split_sizes(n: OnnxNode, extent: int) -> list[int]:
    """Explicit sizes (attribute before opset 13, input from 13), else
    `num_outputs` pieces of ceil(extent / count) with a smaller last one
    (opset 18), else equal pieces, one per output."""
    sizes = n.attr("split") if n.opset < 13 else n.const_input(1, "split")
    if sizes is not None:
        return [int(s) for s in np.asarray(sizes).reshape(-1)]
    count = int(n.attr("num_outputs", len(n.outputs)))
    if count < 1:
        raise node_error(n, f"cannot split into {count} outputs")
    if n.attr("num_outputs") is None and extent % count:
        raise node_error(n, f"extent {extent} does not split into {count} equal pieces")
    piece = -(-extent // count)
    sizes = [min(piece, max(extent - i * piece, 0)) for i in range(count)]
    if 0 in sizes and extent >= count:
        raise node_error(n, f"num_outputs {count} does not fit extent {extent}")
    return sizes


@lowers("Split")
def _lower_split(n: OnnxNode):
    shape = n.input_types[0].shape
    axis = node_axis(n, n.attr("axis", 0), len(shape))
    sizes = _split_sizes(n, shape[axis])
    if len(sizes) != len(n.outputs):
        raise node_error(n, f"{len(sizes)} split sizes for {len(n.outputs)} outputs")
    return Lowered("Split", SplitAttrs(axis, tuple(sizes)), inputs=n.inputs[:1])


# -- valid indices for sample inputs ---------------------------------------------
PASS_THROUGH = ("Reshape", "Identity", "Cast")  # ops that keep index values


def index_extent(graph, name: str) -> int | None:
    """The smallest axis extent that integer tensor `name` indexes as Gather
    indices (directly or through Reshape/Identity/Cast), so that indices drawn
    from [0, extent) are valid for every reader; None if no Gather reads it."""
    extents = []
    for reader in graph.consumers(name):
        if reader.op == "Gather" and len(reader.inputs) > 1 and reader.inputs[1] == name:
            extents.append(graph.tensor(reader.inputs[0]).shape[reader.attrs.axis])
        elif reader.op in PASS_THROUGH:
            inner = index_extent(graph, reader.outputs[0])
            extents += [] if inner is None else [inner]
    return min(extents) if extents else None
