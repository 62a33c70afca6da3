"""Batched, bit-exact PyTorch execution of nnc's integer IR graphs.

`IntegerProgram(graph)` runs a graph that the quantize pass produced (what the c
and az-sim targets execute) on N samples at once and returns, for every sample,
exactly what the reference interpreter (`nnc.interpreter.run`) returns for it:
the same integers, and the same float32 bits out of DequantizeLinear.

Batching. nnc graphs have batch 1, so the program adds the batch as one more
leading axis: a run-time tensor the IR declares with shape S is held as [N, *S]
(constants keep their IR shape). Every kernel applies its op to each sample
with that extra axis in front, so no op can mix samples, whatever its axes: a
Transpose moving axis 0, a Concat along it, or the Reshape [1, T, D] -> [T, D]
that the quantizer puts before a QGemm over the rows of a sequence all act
within each sample. Graph inputs must have dim 0 = 1; callers pass and get
[N, *S[1:]] (S's leading 1 replaced by N), and an output whose dim 0 is not 1
(a CTC head's [T, tokens]) as [N, *S]. A node whose inputs are all
constants is evaluated once, at construction, by the reference op itself; so
is, on each sample, a node no batched kernel here takes (an op without one,
`supported_ops()`, such as QResize or the recurrent QLSTM, QGRU and QRNN,
whose time steps batching would not speed up much; a QConv over more than 3
spatial axes; a Gather of run-time data by run-time indices). The
constructor raises UnsupportedError, naming the tensor, for a graph input
whose dim 0 is not 1.

Exactness. Each kernel mirrors its op's numpy reference (compiler/ops/q*.py,
layernorm.py; docs/numerics.md), or calls it on each sample (above):
- multiply-accumulate sums (QConv, QGemm, QMatMul) run in float64; they are exact
  because the compiler proves |acc| < 2^31 < 2^53 for every partial sum, in any
  order, so the result is rounded to the integer it already is;
- pooling sums, rounding, requantization and saturation run in int64 exactly as
  compiler/numerics.py: round_shift(v, n) = (v + 2^(n−1)) >> n, arithmetic shift;
- QLogSoftmax takes the bit length of its sum S from float64's frexp, as the
  reference does: exact, since 1 <= S < 2^47 < 2^53;
- QLayerNorm takes the bit length of U (< 2^62) by integer shifts and r = isqrt(q),
  q = floor(2^62 / u) <= 2^32, as floor(√q) in float64: exact, since q is exact in
  float64, r <= √q < r + 1 with r + 1 − √q = ((r + 1)² − q) / (r + 1 + √q) > 2^−18
  (integers, r <= 2^16), and rounding √q (monotone, error <= 2^−37) keeps it in [r, r + 1);
- QuantizeLinear divides in float32 and rounds half to even, DequantizeLinear
  multiplies in float32, as the reference does.

IntegerProgram is a plain class, not a torch.nn.Module: it has nothing to train
and lives on the CPU; its constants become torch tensors once, at construction.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..dtypes import integer_range, to_numpy
from ..errors import IRError, ShapeError, UnsupportedError
from ..ir import Graph, Node, Tensor
from ..ops import get_op
from ..ops.layernorm import FRACTION_BITS
from ..ops.qsoftmax import EXP_BITS, INDEX_BITS, LN2, STEP_BITS
from ..ops.shape import pad_fill
from ..records import record
from .float_ops import gather_along

TORCH_DTYPES = {"f32": torch.float32, "f64": torch.float64, "i8": torch.int8, "u8": torch.uint8,
                "i16": torch.int16, "i32": torch.int32, "i64": torch.int64, "bool": torch.bool}
NUMPY_DTYPES = {torch_type: to_numpy(name) for name, torch_type in TORCH_DTYPES.items()}
_CONVOLUTIONS = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


@record
class Step:
    """One node as the program runs it: the IR shape of its first output, which
    inputs are constants (held without the batch axis) and its kernel."""

    node: Node
    out_shape: tuple[int, ...]
    constant: tuple[bool, ...]
    kernel: Callable[["Step", list], list]

    @property
    def attrs(self) -> Any:
        return self.node.attrs


Kernel = Callable[[Step, list], list]
_KERNELS: dict[str, Kernel] = {}


def kernel(*ops: str) -> Callable[[Kernel], Kernel]:
    """Register the decorated function as the batched kernel of the named IR ops.
    A kernel gets run-time inputs as [N, *IR shape] and constants as stored."""

    def register(fn: Kernel) -> Kernel:
        for op in ops:
            _KERNELS[op] = fn
        return fn

    return register


def supported_ops() -> frozenset[str]:
    """The IR ops an IntegerProgram executes (a node of constants folds, whatever its op)."""
    return frozenset(_KERNELS)


# -- the integer primitives of compiler/numerics.py, in int64 torch ----------------------
def round_shift(value: torch.Tensor, shift) -> torch.Tensor:
    """(value + 2^(shift−1)) >> shift on int64, shift >= 1 (int or broadcast tensor)."""
    shift = torch.as_tensor(shift, dtype=torch.int64)
    return (value + (torch.ones_like(shift) << (shift - 1))) >> shift


def saturate(y: torch.Tensor, attrs) -> torch.Tensor:
    """y + y_zero_point clamped to [out_min, out_max], cast to out_dtype."""
    return torch.clamp(y + attrs.y_zero_point, attrs.out_min, attrs.out_max).to(TORCH_DTYPES[attrs.out_dtype])


# -- layout helpers -----------------------------------------------------------------------
def channels_first(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    return torch.movedim(x, -1, 1) if channels_last else x


def restore_layout(y: torch.Tensor, channels_last: bool) -> torch.Tensor:
    return torch.movedim(y, 1, -1) if channels_last else y


def torch_pads(begins, ends) -> list[int]:
    """ONNX-ordered pads (of the last len(begins) axes) as torch's F.pad wants them."""
    return [p for b, e in zip(reversed(begins), reversed(ends)) for p in (b, e)]


def broadcastable(step: Step, args: list) -> list:
    """Operands of a broadcasting op, aligned for numpy broadcasting per sample: a
    run-time operand of IR rank r below the output's rank R gets R − r unit axes
    after the batch axis; constants broadcast from the right as they are."""
    rank = len(step.out_shape)
    return [x if constant else x.reshape(x.shape[0], *(1,) * (rank + 1 - x.dim()), *x.shape[1:])
            for x, constant in zip(args, step.constant)]


def per_row(op: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """`op`, which treats axis 0 as a batch, applied to x [N, B, ...] as to N·B rows."""
    return op(x.flatten(0, 1)).unflatten(0, x.shape[:2])


def windows(x: torch.Tensor, attrs, out_spatial, fill) -> torch.Tensor:
    """Windows [B, C, *out, *kernel] of channels-first x padded with `fill` by
    attrs.pads and, past the end pad, as far as the last window reaches (ceil_mode);
    `attrs` has the fields of nnc.ops.pool.PoolAttrs."""
    kernel_shape, strides, pads, dilations = attrs.kernel_shape, attrs.strides, attrs.pads, attrs.dilations
    nd = len(kernel_shape)
    spans = [(k - 1) * d + 1 for k, d in zip(kernel_shape, dilations)]
    reach = [(o - 1) * s + span for o, s, span in zip(out_spatial, strides, spans)]
    ends = [max(pads[nd + a], reach[a] - pads[a] - x.shape[2 + a]) for a in range(nd)]
    x = F.pad(x, torch_pads(pads[:nd], ends), value=fill)
    for a in range(nd):
        x = x.unfold(2 + a, spans[a], strides[a]).narrow(2 + a, 0, out_spatial[a])
    return x[(..., *(slice(None, None, d) for d in dilations))]


def spatial_of(shape: tuple[int, ...], channels_last: bool) -> tuple[int, ...]:
    return tuple(shape[1:-1]) if channels_last else tuple(shape[2:])


def pool(x: torch.Tensor, step: Step, attrs, fill, reduce: Callable) -> torch.Tensor:
    """`reduce(windows, kernel dims)` over the windows of attrs' geometry, per row."""
    out_spatial = spatial_of(step.out_shape, attrs.channels_last)
    kernel_dims = tuple(range(-len(out_spatial), 0))

    def rows(x: torch.Tensor) -> torch.Tensor:
        cells = windows(channels_first(x, attrs.channels_last), attrs, out_spatial, fill)
        return restore_layout(reduce(cells, kernel_dims), attrs.channels_last)

    return per_row(rows, x)


# -- boundaries ---------------------------------------------------------------------------
def along(param: torch.Tensor, ndim: int, axis: int | None) -> torch.Tensor:
    """A scale or zero point shaped to broadcast against a batched tensor of rank
    `ndim` (IR axis `axis` is its axis axis + 1)."""
    if axis is None:
        return param.reshape(())
    shape = [1] * ndim
    shape[axis + 1] = param.numel()
    return param.reshape(shape)


@kernel("QuantizeLinear")
def quantize_linear(step: Step, args: list) -> list:
    x, scale, zero_point = (args + [None])[:3]
    q = torch.round(x / along(scale, x.dim(), step.attrs.axis)).to(torch.float64)
    if zero_point is not None:
        q = q + along(zero_point, x.dim(), step.attrs.axis).to(torch.float64)
    lo, hi = integer_range(step.attrs.dtype)
    return [torch.clamp(q, lo, hi).to(TORCH_DTYPES[step.attrs.dtype])]


@kernel("DequantizeLinear")
def dequantize_linear(step: Step, args: list) -> list:
    x, scale, zero_point = (args + [None])[:3]
    diff = x.to(torch.int64)
    if zero_point is not None:
        diff = diff - along(zero_point, x.dim(), step.attrs.axis).to(torch.int64)
    return [diff.to(torch.float32) * along(scale, x.dim(), step.attrs.axis)]


# -- multiply-accumulate layers -------------------------------------------------------------
def finish(acc: torch.Tensor, args: list, attrs, channel_axis: int) -> torch.Tensor:
    """Add the bias, requantize per channel along `channel_axis`, saturate, cast."""
    bias, multiplier, shift = args[2], args[3], args[4]
    shape = [1] * acc.dim()
    shape[channel_axis] = -1
    if bias is not None:
        acc = acc + bias.to(torch.int64).reshape(shape)
    product = acc * multiplier.to(torch.int64).reshape(shape)
    return saturate(round_shift(product, shift.to(torch.int64).reshape(shape)), attrs)


@kernel("QConv")
def qconv(step: Step, args: list) -> list:
    a, w = step.attrs, args[1].to(torch.float64)
    nd = len(a.kernel_shape)

    def rows(x: torch.Tensor) -> torch.Tensor:
        centred = channels_first(x, a.channels_last).to(torch.float64, memory_format=torch.contiguous_format)
        padded = F.pad(centred - a.x_zero_point, torch_pads(a.pads[:nd], a.pads[nd:]))
        acc = _CONVOLUTIONS[nd](padded, w, stride=a.strides, dilation=a.dilations, groups=a.group)
        return restore_layout(finish(torch.round(acc).to(torch.int64), args, a, 1), a.channels_last)

    return [per_row(rows, args[0])]


@kernel("QGemm")
def qgemm(step: Step, args: list) -> list:
    x, w = args[0], args[1]
    acc = (x.to(torch.float64) - step.attrs.x_zero_point) @ w.to(torch.float64).T
    return [finish(torch.round(acc).to(torch.int64), args, step.attrs, -1)]


@kernel("QMatMul")
def qmatmul(step: Step, args: list) -> list:
    a, b = broadcastable(step, args)
    at = step.attrs
    b = b.transpose(-1, -2) if at.b_transposed else b
    acc = torch.matmul(a.to(torch.float64) - at.a_zero_point, b.to(torch.float64) - at.b_zero_point)
    return [saturate(round_shift(torch.round(acc).to(torch.int64) * at.multiplier, at.shift), at)]


# -- element-wise ----------------------------------------------------------------------------
@kernel("Requantize")
def requantize(step: Step, args: list) -> list:
    a = step.attrs
    return [saturate(round_shift((args[0].to(torch.int64) - a.x_zero_point) * a.multiplier, a.shift), a)]


@kernel("QAdd")
def qadd(step: Step, args: list) -> list:
    x, y = broadcastable(step, args)
    a = step.attrs
    total = ((x.to(torch.int64) - a.a_zero_point) * a.a_multiplier
             + (y.to(torch.int64) - a.b_zero_point) * a.b_multiplier)
    return [saturate(round_shift(total, a.shift), a)]


@kernel("QMul")
def qmul(step: Step, args: list) -> list:
    x, y = broadcastable(step, args)
    a = step.attrs
    product = (x.to(torch.int64) - a.a_zero_point) * (y.to(torch.int64) - a.b_zero_point) * a.multiplier
    return [saturate(round_shift(product, a.shift), a)]


@kernel("QAffine")
def qaffine(step: Step, args: list) -> list:
    x, multiplier, offset = broadcastable(step, args[:3])
    negative = args[3] if len(args) > 3 and args[3] is not None else multiplier
    d = x.to(torch.int64) - step.attrs.x_zero_point
    m = torch.where(d < 0, negative.to(torch.int64), multiplier.to(torch.int64))
    return [saturate(round_shift(d * m + offset.to(torch.int64), step.attrs.shift), step.attrs)]


@kernel("QLut")
def qlut(step: Step, args: list) -> list:
    x, table = args
    offset = 128 if x.dtype == torch.int8 else 0
    return [table[x.to(torch.int64) + offset]]


@kernel("Clip")
def clip(step: Step, args: list) -> list:
    x, a = args[0], step.attrs
    lo = -float("inf") if a.min is None else a.min
    hi = float("inf") if a.max is None else a.max
    if not x.dtype.is_floating_point:
        info = torch.iinfo(x.dtype)
        lo, hi = max(lo, info.min), min(hi, info.max)
    # torch.tensor(bound, dtype) converts as numpy's dtype.type(bound) does (truncation)
    return [torch.minimum(torch.maximum(x, torch.tensor(lo, dtype=x.dtype)), torch.tensor(hi, dtype=x.dtype))]


# -- pooling, reduction, softmax, layer norm ------------------------------------------------
@kernel("QAveragePool")
def qaverage_pool(step: Step, args: list) -> list:
    a = step.attrs
    centred = args[0].to(torch.int64) - a.x_zero_point
    acc = pool(centred, step, a.geometry(), 0, lambda cells, dims: cells.sum(dim=dims))
    return [saturate(round_shift(acc * a.multiplier, a.shift), a)]


@kernel("MaxPool")
def max_pool(step: Step, args: list) -> list:
    x = args[0]
    lowest = -float("inf") if x.dtype.is_floating_point else torch.iinfo(x.dtype).min
    return [pool(x, step, step.attrs, lowest, lambda cells, dims: cells.amax(dim=dims))]


@kernel("GlobalMaxPool")
def global_max_pool(step: Step, args: list) -> list:
    x = args[0]  # [N, B, C, *spatial] or [N, B, *spatial, C]
    axes = tuple(range(2, x.dim() - 1)) if step.attrs.channels_last else tuple(range(3, x.dim()))
    return [x.amax(dim=axes, keepdim=True)]


@kernel("QReduce")
def qreduce(step: Step, args: list) -> list:
    a = step.attrs
    x, dims = args[0].to(torch.int64), tuple(axis + 1 for axis in a.axes)
    if a.is_max:
        acc = x.amax(dim=dims, keepdim=a.keepdims) - a.x_zero_point
    else:
        acc = (x - a.x_zero_point).sum(dim=dims, keepdim=a.keepdims)
    return [saturate(round_shift(acc * a.multiplier, a.shift), a)]


@kernel("QSoftmax")
def qsoftmax(step: Step, args: list) -> list:
    x, table = args[0].to(torch.int64), args[1].to(torch.int64)
    a = step.attrs
    if len(args) > 2 and args[2] is not None:  # hidden positions: out of the max, e = 0
        keep = (args[2] != 0).expand_as(x)
        top = x.masked_fill(~keep, torch.iinfo(torch.int64).min).amax(dim=-1, keepdim=True)
        e = torch.where(keep, table[torch.where(keep, top - x, 0)], 0)
    else:
        e = table[x.amax(dim=-1, keepdim=True) - x]
    total = e.sum(dim=-1, keepdim=True)
    # round_shift(floor(e·m / S), n): the nested floors of compiler/ops/qsoftmax.py
    return [saturate(round_shift(torch.div(e * a.multiplier, total, rounding_mode="floor"), a.shift), a)]


@kernel("QLogSoftmax")
def qlogsoftmax(step: Step, args: list) -> list:
    """y = z_y − round_shift(N · m, n) with N = d · SX + L, Q24 nats (numerics §6a)."""
    x, exp, log = (t.to(torch.int64) for t in args)
    a = step.attrs
    d = x.amax(dim=-1, keepdim=True) - x
    total = exp[d].sum(dim=-1, keepdim=True)
    k = torch.frexp(total.to(torch.float64)).exponent.to(torch.int64) - 1  # bit length of S − 1
    top = INDEX_BITS + STEP_BITS  # t = S · 2^(top − k): its leading one at bit `top`
    t = torch.where(k <= top, total << (top - k).clamp(min=0), total >> (k - top).clamp(min=0))
    j, r = (t >> STEP_BITS) - (1 << INDEX_BITS), t & ((1 << STEP_BITS) - 1)
    logs = (k - EXP_BITS) * LN2 + log[j] + (((log[j + 1] - log[j]) * r) >> STEP_BITS)
    return [saturate(-round_shift((d * a.x_scale + logs) * a.multiplier, a.shift), a)]


def bit_length(value: torch.Tensor) -> torch.Tensor:
    """Python's int.bit_length of every non-negative int64, by a binary search of shifts."""
    length = torch.zeros_like(value)
    for shift in (32, 16, 8, 4, 2, 1):
        wide = (value >> shift) != 0
        value = torch.where(wide, value >> shift, value)
        length = length + wide * shift
    return length + (value != 0)


def rsqrt_fixed(total: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """compiler/ops/layernorm.py's rsqrt_fixed of every int64 U in [1, 2^62):
    k = ceil((bitlen(U) − 32) / 2), u = U·4^−k (floor), r = isqrt(floor(2^62 / u)),
    the isqrt as floor(√·) in float64 (exact: module docstring)."""
    k = -torch.div(32 - bit_length(total), 2, rounding_mode="floor")
    u = torch.where(k >= 0, total >> (2 * k).clamp(min=0), total << (-2 * k).clamp(min=0))
    return torch.sqrt(((1 << 62) // u).to(torch.float64)).floor().to(torch.int64), k


@kernel("QLayerNorm")
def qlayernorm(step: Step, args: list) -> list:
    """compiler/ops/layernorm.py's normalized_rows on all rows at once (numerics §14):
    c_i = N·x_i − S, U = Σ c_i² + e, (r, k) = rsqrt_fixed(U), H_i = sround(c_i · r, 1 + k),
    y_i = saturate(round_shift(g_i · H_i + b_i, T)). U = 0 is taken as 1: there every
    c_i = 0, so H = 0 whatever r, as in the reference."""
    x, g, b = args
    a = step.attrs
    rows = x.to(torch.int64).flatten(a.axis + 1)  # [N, *outer, n]
    c = rows.shape[-1] * rows - rows.sum(dim=-1, keepdim=True)
    r, k = rsqrt_fixed(((c * c).sum(dim=-1, keepdim=True) + a.eps_int).clamp(min=1))
    shift = 31 + k - FRACTION_BITS
    product = c * r
    h = torch.where(shift >= 1, round_shift(product, shift.clamp(min=1)), product << (-shift).clamp(min=0))
    acc = g.to(torch.int64) * h + b.to(torch.int64)
    return [saturate(round_shift(acc, a.shift), a).reshape(x.shape)]


# -- data movement ----------------------------------------------------------------------------
@kernel("Reshape")
def reshape(step: Step, args: list) -> list:
    return [args[0].reshape(args[0].shape[0], *step.attrs.shape)]


@kernel("Transpose")
def transpose(step: Step, args: list) -> list:
    return [args[0].permute(0, *(axis + 1 for axis in step.attrs.perm))]


@kernel("Concat")
def concat(step: Step, args: list) -> list:
    batch = next(x.shape[0] for x, constant in zip(args, step.constant) if not constant)
    parts = [x.expand(batch, *x.shape) if constant else x for x, constant in zip(args, step.constant)]
    return [torch.cat(parts, dim=step.attrs.axis + 1)]


@kernel("Slice")
def slice_op(step: Step, args: list) -> list:
    x, a = args[0], step.attrs
    for axis, (start, stride, size) in enumerate(zip(a.starts, a.steps, a.sizes), start=1):
        if (start, stride, size) != (0, 1, x.shape[axis]):
            x = x.index_select(axis, start + stride * torch.arange(size))
    return [x]


@kernel("Gather")
def gather(step: Step, args: list) -> list:
    """Run-time data by constant indices along the op's axis, or a constant
    table's rows by run-time indices (float_ops.gather_along: nnc's index rule)."""
    return [gather_along(*args, step.attrs.axis + (0 if step.constant[0] else 1))]


@kernel("Pad")
def pad(step: Step, args: list) -> list:
    x, a = args[0], step.attrs
    rank = x.dim() - 1
    begins, ends = a.pads[:rank], a.pads[rank:]
    crop = (slice(None), *(slice(-min(b, 0), d + min(e, 0)) for d, b, e in zip(x.shape[1:], begins, ends)))
    kept, widths = x[crop], [(max(b, 0), max(e, 0)) for b, e in zip(begins, ends)]
    if a.mode == "constant":
        fill = pad_fill(a.value, NUMPY_DTYPES[x.dtype]).item()
        return [F.pad(kept, torch_pads(*zip(*widths)), value=fill)]
    for axis, (b, e) in enumerate(widths, start=1):
        if b or e:
            kept = kept.index_select(axis, pad_index(a.mode, kept.shape[axis], b, e))
    return [kept]


def pad_index(mode: str, extent: int, begin: int, end: int) -> torch.Tensor:
    """Source index of every output position along one axis (numpy.pad's modes)."""
    j = torch.arange(-begin, extent + end)
    if mode == "edge":
        return j.clamp(0, extent - 1)
    if mode == "wrap":
        return j.remainder(extent)
    period = 2 * (extent - 1)  # reflect: the op refuses pads that reach past one reflection
    j = j.remainder(period)
    return torch.where(j >= extent, period - j, j)


# -- any other op ------------------------------------------------------------------------------
def reference_per_sample(step: Step, args: list) -> list:
    """The op's reference `evaluate` on each sample: exact by construction."""
    op, batch = get_op(step.node.op), next(x.shape[0] for x, c in zip(args, step.constant) if not c)
    runs = [op.evaluate(step.attrs, [None if x is None else (x if c else x[i]).numpy()
                                     for x, c in zip(args, step.constant)]) for i in range(batch)]
    return [torch.from_numpy(np.stack(values)) for values in zip(*runs)]


# -- the program --------------------------------------------------------------------------------
def _batched_kernel(node: Node, constant: tuple[bool, ...]) -> Kernel | None:
    """The batched kernel that runs `node`, whose inputs are constants where
    `constant` says, or None (the reference then runs it on each sample)."""
    if node.op == "QConv" and len(node.attrs.kernel_shape) not in _CONVOLUTIONS:
        return None  # torch convolves 1 to 3 spatial axes
    if node.op == "Gather" and (not any(constant) or (constant[0] and node.attrs.axis != 0)):
        return None  # run-time data by run-time indices; run-time indices into an axis other than 0
    return _KERNELS.get(node.op)


def _check_boundary(graph: Graph, name: str, role: str, leading_one: bool = True) -> None:
    """A graph input or output: not a constant, and (`leading_one`) dim 0 = 1,
    which the caller's batch replaces."""
    tensor = graph.tensors[name]
    if tensor.is_constant:
        raise UnsupportedError(f"{role} {name!r} is a constant: it has no batch axis")
    if leading_one and (not tensor.shape or tensor.shape[0] != 1):
        raise UnsupportedError(f"{role} {name!r} has shape {list(tensor.shape)}: the batched integer "
                               "program needs dim 0 = 1 there (the caller's batch replaces it)")


class IntegerProgram:
    """A graph prepared once for batched, bit-exact execution (module docstring).

    `program(inputs)` takes {graph input name: tensor [N, *shape[1:]]} (torch or
    numpy) and returns {graph output name: tensor [N, *shape[1:]]} of the dtype the
    IR declares. The constructor raises UnsupportedError naming the node or
    tensor it cannot run."""

    def __init__(self, graph: Graph):
        self.graph = graph
        constants = {name: t.data for name, t in graph.tensors.items() if t.is_constant}
        self._steps: list[Step] = []
        for node in graph.nodes():
            self._add(node, constants)
        for name in graph.inputs:
            _check_boundary(graph, name, "input")
        for name in graph.outputs:
            _check_boundary(graph, name, "output", leading_one=False)
        self._constants = {name: torch.from_numpy(np.array(data)) for name, data in constants.items()}

    def _add(self, node: Node, constants: dict[str, np.ndarray]) -> None:
        """Fold a node of constants with the reference op; else schedule it with its kernel."""
        if all(t in constants for t in node.inputs if t):
            values = get_op(node.op).evaluate(node.attrs, [constants[t] if t else None for t in node.inputs])
            constants.update((t, v) for t, v in zip(node.outputs, values) if t)
            return
        constant = tuple(t in constants for t in node.inputs)
        out_shape = self.graph.tensors[node.outputs[0]].shape
        self._steps.append(Step(node, out_shape, constant, _batched_kernel(node, constant) or reference_per_sample))

    def __call__(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        fed, batch = self._check_inputs(inputs)
        env = {**self._constants, **fed}
        for step in self._steps:
            results = step.kernel(step, [env[t] if t else None for t in step.node.inputs])
            for name, value in zip(step.node.outputs, results):
                if name:
                    self._check_result(step.node, name, value, batch)
                    env[name] = value
        return {name: env[name].squeeze(1) if self.graph.tensors[name].shape[:1] == (1,) else env[name]
                for name in self.graph.outputs}

    def _check_inputs(self, inputs: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], int]:
        """(inputs as [N, *IR shape] of the declared dtypes, N); ShapeError on
        missing or unknown names, wrong shapes, differing batch sizes or values the
        declared type cannot hold (the interpreter's rules)."""
        missing = [n for n in self.graph.inputs if n not in inputs]
        extra = [n for n in inputs if n not in self.graph.inputs]
        if missing or extra:
            raise ShapeError(f"inputs do not match the model: missing {missing}, unknown {extra}; "
                             f"expected {self.graph.inputs}")
        fed = {name: _convert(name, torch.as_tensor(inputs[name]), self.graph.tensors[name]).unsqueeze(1)
               for name in self.graph.inputs}
        batches = {value.shape[0] for value in fed.values()}
        if len(batches) != 1:
            raise ShapeError(f"inputs have different batch sizes {sorted(batches)}")
        return fed, batches.pop()

    def _check_result(self, node: Node, name: str, value: torch.Tensor, batch: int) -> None:
        tensor = self.graph.tensors[name]
        if tuple(value.shape) != (batch, *tensor.shape) or value.dtype != TORCH_DTYPES[tensor.dtype]:
            raise IRError(f"node {node.name!r} produced {value.dtype}{list(value.shape)} for {name!r}, "
                          f"the batched program expects {tensor.dtype}{[batch, *tensor.shape]}")


def _convert(name: str, value: torch.Tensor, tensor: Tensor) -> torch.Tensor:
    """Input `value` [N, *shape[1:]] as the declared dtype."""
    if value.dim() != len(tensor.shape) or tuple(value.shape[1:]) != tensor.shape[1:]:
        raise ShapeError(f"input {name!r} has shape {list(value.shape)}, the batched program expects "
                         f"{['N', *tensor.shape[1:]]}")
    target = TORCH_DTYPES[tensor.dtype]
    if value.dtype == target:
        return value
    if target.is_floating_point and value.dtype != torch.bool:
        return value.to(target)
    if not target.is_floating_point and not value.dtype.is_floating_point and value.dtype != torch.bool:
        lo, hi = integer_range(tensor.dtype)
        if value.numel() == 0 or (int(value.min()) >= lo and int(value.max()) <= hi):
            return value.to(target)
    raise ShapeError(f"input {name!r} has dtype {value.dtype}, the model expects {tensor.dtype}")
