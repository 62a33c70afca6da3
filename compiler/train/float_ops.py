"""Differentiable PyTorch kernels of nnc's float IR ops, batched on axis 0.

The training twin runs a float graph node by node: `run_node(node, args)`
computes one node from torch tensors, one kernel per op in `_KERNELS`.
Invariants:
- a run-time value of IR shape (1, d1, ...) is a tensor [N, d1, ...]: the
  IR's leading 1 is the batch. Constants, weights included (which the twin may
  have fake-quantized), come unbatched with the IR's shape; kernels take them
  from `args`, never from the graph;
- every kernel computes what the op's numpy `evaluate` (compiler/ops/)
  computes, in float32, so the two agree up to float32 rounding; gradients are
  PyTorch's own, except that Sqrt's gradient at 0 is 0 (as torch.std's is),
  not the infinity that turns a standard deviation of constant values into NaN;
- `check_kernels(graph)` refuses, before anything runs, a node whose op has
  no kernel (so a recurrent layer is named rather than the time-major
  Transpose before it) and a convolution or pool over more than 3 spatial axes;
- `batch_problem(graph)` says why the batched kernels would mix the samples
  of a batch: a node that moves, joins, pads, reduces or normalizes along
  axis 0, produces a value whose axis 0 is not 1 (except rows that fold the
  batch in: `_row_fold`), or reads a run-time value where the batch would not
  stay on axis 0 (a weight position, a lower-rank operand of a broadcast).
  Such a graph (a transformer whose q, k and v move the batch axis) runs
  sample by sample instead, each sample alone at the IR's shapes, where every
  kernel computes exactly the op; `sample_problem` refuses what cannot run
  that way either (an input whose axis 0 is not 1; an output whose axis 0 is
  not 1, a CTC head's [T, tokens], is one sample's whole value). Batched,
  the kernels rely on those checks and do not repeat them.
Recurrent ops (LSTM, GRU, RNN) step through time as the numpy reference
does (compiler/ops/recurrent.py), the LSTM's IR-only cell sequence included;
a time-major one (layout 0, batch on axis 1) runs sample by sample. The
integer ops have no kernel here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..records import record
from nnc import dtypes
from nnc.errors import UnsupportedError
from nnc.ir import Graph, Node
from nnc.ops import get_op
from nnc.ops.pool import pooled_size
from nnc.ops.recurrent import DEFAULT_ACTIVATIONS, GATES, RecurrentAttrs, gru_step, lstm_step, time_steps
from nnc.ops.resize import linear_taps, nearest_indices

Kernel = Callable[[Any, list], "torch.Tensor | list[torch.Tensor]"]  # (attrs, args) -> output(s)
Rule = Callable[["_Site"], "str | None"]  # why a node would mix the batch, or None
_KERNELS: dict[str, Kernel] = {}
_RULES: dict[str, Rule] = {}
_BATCH_AWARE: set[str] = set()  # kernels that also take `batched` (axis 0 means something else per sample)
_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}
_MAX_POOL = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}


def run_node(node: Node, args: list[torch.Tensor | None], batched: bool = True) -> list[torch.Tensor]:
    """The outputs of `node` on `args` (its inputs in order, None for an omitted
    one; float tensors are computed in float32), a batch whose axis 0 replaces
    the IR's leading 1 or (not `batched`) one sample at the IR's shapes.
    UnsupportedError when the op has no kernel."""
    kernel = _KERNELS.get(node.op)
    if kernel is None:
        raise UnsupportedError(f"node {node.name!r}: op {node.op} has no training kernel")
    args = [a.float() if a is not None and a.is_floating_point() else a for a in args]
    out = kernel(node.attrs, args, batched) if node.op in _BATCH_AWARE else kernel(node.attrs, args)
    return out if isinstance(out, list) else [out]


def supported_ops() -> frozenset[str]:
    return frozenset(_KERNELS)


SPATIAL_OPS = ("Conv", "ConvTranspose", "MaxPool", "AveragePool")  # PyTorch has 1-D to 3-D kernels of them


def check_kernels(graph: Graph) -> None:
    """UnsupportedError naming the first node (in schedule order) whose op has
    no kernel, or a convolution or pool over more than 3 spatial axes."""
    for node in graph.nodes():
        if node.op not in _KERNELS:
            raise UnsupportedError(f"node {node.name!r} ({node.op}): {_no_kernel(node.op)}")
        if node.op in SPATIAL_OPS and len(node.attrs.kernel_shape) > 3:
            raise UnsupportedError(f"node {node.name!r} ({node.op}): has {len(node.attrs.kernel_shape)} spatial "
                                   "axes; the PyTorch kernels take 1 to 3")


def batch_problem(graph: Graph) -> str | None:
    """Why the batched kernels cannot run `graph` (see the module docstring),
    naming the first input, node or output in schedule order; None when they can."""
    runtime = set(graph.inputs) | {t for n in graph.nodes() for t in n.outputs if t}
    if reason := sample_problem(graph):
        return reason
    folded: set[str] = set()
    for node in graph.nodes():
        if reason := _node_problem(node, graph, runtime, folded):
            return f"node {node.name!r} ({node.op}): {reason}"
    for name in graph.outputs:
        if name in folded:
            return f"output {name!r} {batch_axis_problem(graph, name)}"
    return None


def sample_problem(graph: Graph) -> str | None:
    """Why `graph` cannot run sample by sample either: an input whose axis 0 is
    not 1, the batch; None when it can."""
    for name in graph.inputs:
        if reason := batch_axis_problem(graph, name):
            return f"input {name!r} {reason}"
    return None


def _no_kernel(op: str) -> str:
    return f"op {op} has no training kernel (the twin runs float graphs)"


def _node_problem(node: Node, graph: Graph, runtime: set[str], folded: set[str]) -> str | None:
    """Why the batched kernels cannot run `node`, or None; adds its outputs to
    `folded` when they hold the batch folded into rows (`_row_fold`)."""
    if not any(t in runtime for t in node.inputs):
        return "reads only constants (run fold-constants first)"
    rows = _row_fold(node, graph, folded)
    if rows is None:
        return ("reads rows that hold the batch folded in (a Reshape [1, T, K] -> [T, K]), which only a Gemm, "
                "an element-wise op or the Reshape back may")
    if rows:
        folded.update(filter(None, node.outputs))
    for out in filter(None, node.outputs):
        if not rows and (reason := batch_axis_problem(graph, out)):
            return f"output {out!r} {reason}"
    rule = _RULES.get(node.op)
    return rule(_Site(node, graph, runtime)) if rule else None


def _row_fold(node: Node, graph: Graph, folded: set[str]) -> bool | None:
    """Whether `node`'s outputs hold the batch folded into axis 0: the rows of a
    [1, T, K] activation, as fuse-bias makes a Linear over a sequence (Reshape to
    [T, K], Gemm, Reshape back), batched as [N · T, K]. True for a Reshape that
    folds an input with a leading 1 into [rows, K] and for a Gemm or element-wise
    op over folded rows (their other operands constants that vary along the last
    axis only); False for a Reshape back to a leading 1 and for nodes that read
    no folded rows; None for any other reader of folded rows."""
    shape = lambda name: graph.tensor(name).shape  # noqa: E731
    reads = [name for name in node.inputs if name in folded]
    if node.op == "Reshape":  # each sample's values stay one contiguous block either way
        source, out = shape(node.inputs[0]), shape(node.outputs[0])
        if reads:
            return False if out[:1] == (1,) else None
        return source[:1] == (1,) and len(out) == 2 and out[0] != 1
    if not reads:
        return False
    weight = node.inputs[1] if node.op == "Gemm" else None  # a Gemm's B: a constant, checked by its rule
    others = [name for name in node.inputs if name and name not in folded]
    per_column = all(graph.tensor(name).is_constant and all(d == 1 for d in shape(name)[:-1])
                     for name in others if name != weight)
    if node.op == "Gemm":
        return True if node.inputs[0] in folded and weight in others and per_column else None
    return True if get_op(node.op).elementwise and per_column else None


def batch_axis_problem(graph: Graph, name: str) -> str | None:
    """Why tensor `name` cannot be batched on axis 0 (its axis 0 is not 1), or None."""
    shape = graph.tensor(name).shape
    if shape[:1] == (1,):
        return None
    return f"has shape {list(shape)}; the training twin batches axis 0, which must be 1"


# -- batch rules: a reason to refuse a node, or None -----------------------------------
@record
class _Site:
    """What a batch rule sees of one node: IR shapes and which inputs run."""

    node: Node
    graph: Graph
    runtime: set[str]

    def is_runtime(self, index: int) -> bool:
        return index < len(self.node.inputs) and self.node.inputs[index] in self.runtime

    def rank(self, index: int) -> int:
        return len(self.graph.tensor(self.node.inputs[index]).shape)

    @property
    def out_rank(self) -> int:
        return len(self.graph.tensor(self.node.outputs[0]).shape)


def _all(*rules: Rule) -> Rule:
    """The first reason any of `rules` gives."""
    return lambda site: next(filter(None, (rule(site) for rule in rules)), None)


def _constant(*positions: int) -> Rule:
    def rule(site: _Site) -> str | None:
        bad = [site.node.inputs[i] for i in positions if site.is_runtime(i)]
        return f"input {bad[0]!r} must be a constant (a weight), not a run-time value" if bad else None
    return rule


def _same_rank(site: _Site) -> str | None:
    """Broadcasting keeps the batch on axis 0 only for operands of the result's rank."""
    for i, name in enumerate(site.node.inputs):
        if site.is_runtime(i) and site.rank(i) != site.out_rank:
            return (f"run-time input {name!r} of rank {site.rank(i)} broadcasts to rank "
                    f"{site.out_rank}, which moves its batch axis")
    return None


def _along_axis(site: _Site) -> str | None:
    return "works along axis 0, the batch axis" if site.node.attrs.axis == 0 else None


def _reduce_axes(site: _Site) -> str | None:
    return "reduces axis 0, the batch axis" if 0 in site.node.attrs.axes else None


def _keeps_axis0(site: _Site) -> str | None:
    return "moves axis 0, the batch axis" if site.node.attrs.perm[0] != 0 else None


def _no_axis0_pad(site: _Site) -> str | None:
    pads = site.node.attrs.pads
    return "pads axis 0, the batch axis" if pads[0] or pads[len(pads) // 2] else None


def _gemm_rule(site: _Site) -> str | None:
    if not site.is_runtime(0) or site.node.attrs.trans_a:
        return "needs a run-time A that is not transposed (A is the batch of rows)"
    return _constant(1)(site) or _same_rank(site)


def _matmul_rule(site: _Site) -> str | None:
    """numpy matmul keeps a run-time operand's axis 0 first when it is a matrix
    (a's rows) or a stack of matrices with the most batch axes."""
    ra, rb = site.rank(0), site.rank(1)
    if site.is_runtime(0) and (ra < 2 or ra < rb):
        return f"run-time A of rank {ra} with B of rank {rb} moves the batch axis"
    if site.is_runtime(1) and (rb < 3 or rb < ra):
        return f"run-time B of rank {rb} with A of rank {ra} moves the batch axis"
    return None


def _gather_rule(site: _Site) -> str | None:
    data, indices, axis = site.is_runtime(0), site.is_runtime(1), site.node.attrs.axis
    if data and indices:
        return "gathers run-time data by run-time indices"
    if data and axis == 0:
        return "gathers along axis 0, the batch axis"
    if indices and axis != 0:
        return f"looks run-time indices up along axis {axis} of constant data; only axis 0 keeps the batch first"
    return None


def _batch_first(site: _Site) -> str | None:
    return "runs time-major (layout 0: the batch is axis 1)" if site.node.attrs.layout == 0 else None


def _kernel(op: str, rule: Rule | None = None, batch_aware: bool = False):
    """Register the decorated function as the kernel of `op`, with batch `rule`;
    a `batch_aware` kernel also takes run_node's `batched`."""

    def decorate(fn: Kernel) -> Kernel:
        _KERNELS[op] = fn
        if rule is not None:
            _RULES[op] = rule
        if batch_aware:
            _BATCH_AWARE.add(op)
        return fn

    return decorate


# -- shared helpers --------------------------------------------------------------------
def _arg(args: list, index: int):
    return args[index] if index < len(args) else None


def _clamp(y: torch.Tensor, lo: float | None, hi: float | None) -> torch.Tensor:
    """y clamped to [lo, hi]; None is unbounded on that side."""
    if lo is not None:
        y = y.clamp_min(lo)
    if hi is not None:
        y = y.clamp_max(hi)
    return y


def _channels_first(x: torch.Tensor, attrs) -> torch.Tensor:
    return x.movedim(-1, 1) if attrs.channels_last else x


def _restore(y: torch.Tensor, attrs) -> torch.Tensor:
    return y.movedim(1, -1) if attrs.channels_last else y


def _pad_trailing(x: torch.Tensor, pads, value: float = 0.0) -> torch.Tensor:
    """x with its last len(pads) / 2 axes padded by ONNX-ordered pads (begins,
    then ends) with `value`; a negative pad crops."""
    nd = len(pads) // 2
    widths = [w for a in reversed(range(nd)) for w in (pads[a], pads[a + nd])]
    return F.pad(x, widths, value=value) if any(widths) else x


def _pool_input(x: torch.Tensor, attrs, pad_value: float, beyond_value: float) -> torch.Tensor:
    """x padded by the explicit pads with `pad_value`, then past the end pad with
    `beyond_value` as far as ceil_mode windows reach (as nnc's pool windows)."""
    nd = len(attrs.kernel_shape)
    geometry = zip(x.shape[2:], attrs.kernel_shape, attrs.strides, attrs.dilations)
    beyond = []
    for a, (size, k, s, d) in enumerate(geometry):
        begin, end = attrs.pads[a], attrs.pads[a + nd]
        out = pooled_size(size, k, s, d, begin, end, attrs.ceil_mode)
        beyond.append(max(0, (out - 1) * s + (k - 1) * d + 1 - (size + begin + end)))
    return _pad_trailing(_pad_trailing(x, attrs.pads, pad_value), (0,) * nd + tuple(beyond), beyond_value)


def _torch_dtype(name: str) -> torch.dtype:
    return torch.from_numpy(np.empty(0, dtypes.to_numpy(name))).dtype


# -- layers ----------------------------------------------------------------------------
@_kernel("Conv", rule=_constant(1, 2))
def _conv(attrs, args):
    x, w, bias = _channels_first(args[0], attrs), args[1], _arg(args, 2)
    conv = _CONV[len(attrs.kernel_shape)]
    y = conv(_pad_trailing(x, attrs.pads), w, bias, attrs.strides, 0, attrs.dilations, attrs.group)
    return _restore(_clamp(y, attrs.act_min, attrs.act_max), attrs)


@_kernel("ConvTranspose", rule=_constant(1, 2))
def _conv_transpose(attrs, args):
    """The uncropped output, cropped by pads (a negative pad extends it with
    zeros), then the bias, which reaches the extension too, and the clamp."""
    x, w, bias = _channels_first(args[0], attrs), args[1], _arg(args, 2)
    conv = _CONV_T[len(attrs.kernel_shape)]
    full = conv(x, w, None, attrs.strides, 0, 0, attrs.group, attrs.dilations)
    y = _pad_trailing(full, [-p for p in attrs.pads])
    if bias is not None:
        y = y + bias.reshape(-1, *(1,) * (y.ndim - 2))
    return _restore(_clamp(y, attrs.act_min, attrs.act_max), attrs)


@_kernel("Gemm", rule=_gemm_rule)
def _gemm(attrs, args):
    """Batched, A is the batch of rows (never transposed: checked)."""
    a, b, c = args[0], args[1], _arg(args, 2)
    y = attrs.alpha * ((a.t() if attrs.trans_a else a) @ (b.t() if attrs.trans_b else b))
    if c is not None:
        y = y + attrs.beta * c
    return _clamp(y, attrs.act_min, attrs.act_max)


@_kernel("MatMul", rule=_matmul_rule)
def _matmul(attrs, args):
    return torch.matmul(args[0], args[1])


@_kernel("BatchNormalization", rule=_constant(1, 2, 3, 4))
def _batch_norm(attrs, args):
    x = args[0]
    shape = (-1,) if attrs.channels_last else (-1, *(1,) * (x.ndim - 2))
    scale, bias, mean, var = (p.reshape(shape) for p in args[1:5])
    return (x - mean) * (scale / torch.sqrt(var + attrs.epsilon)) + bias


@_kernel("LayerNormalization", rule=_all(_along_axis, _constant(1, 2)))
def _layer_norm(attrs, args):
    """Outputs y, Mean and InvStdDev, as the IR op has them."""
    x, scale, bias = args[0], args[1], _arg(args, 2)
    dims = tuple(range(attrs.axis, x.ndim))
    mean = x.mean(dim=dims, keepdim=True)
    inv_std = torch.rsqrt(((x - mean) ** 2).mean(dim=dims, keepdim=True) + attrs.epsilon)
    y = (x - mean) * inv_std * scale
    return [y if bias is None else y + bias, mean, inv_std]


# -- element-wise ops and other one-input ops: one table entry each --------------------
def _spatial_axes(x: torch.Tensor, attrs) -> tuple[int, ...]:
    return tuple(range(1, x.ndim - 1)) if attrs.channels_last else tuple(range(2, x.ndim))


class _Sqrt(torch.autograd.Function):
    """sqrt whose gradient at 0 is 0: the subgradient torch.std uses, so that
    a pooled standard deviation of constant values does not give NaN."""

    @staticmethod
    def forward(ctx, x):
        y = torch.sqrt(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return torch.where(y > 0, grad / (2 * y).clamp_min(torch.finfo(y.dtype).tiny), torch.zeros_like(grad))


_BROADCASTING = {"Add": torch.add, "Sub": torch.sub, "Mul": torch.mul, "Div": torch.div, "Pow": torch.pow,
                 "PRelu": lambda x, slope: torch.where(x < 0, x * slope, x)}
_UNARY = {"Relu": torch.relu, "Sigmoid": torch.sigmoid, "Tanh": torch.tanh, "Erf": torch.erf, "Sqrt": _Sqrt.apply,
          "Exp": torch.exp, "Log": torch.log, "Neg": torch.neg, "Abs": torch.abs, "Reciprocal": torch.reciprocal,
          "Sign": torch.sign, "Sin": torch.sin, "Cos": torch.cos, "Silu": F.silu, "Softplus": F.softplus, "Softsign": F.softsign, "Mish": F.mish,
          "Identity": lambda x: x, "Dropout": lambda x: x}
_WITH_ATTRS = {  # op -> fn(attrs, x)
    "LeakyRelu": lambda a, x: torch.where(x < 0, x * a.alpha, x),
    "ThresholdedRelu": lambda a, x: torch.where(x > a.alpha, x, torch.zeros_like(x)),
    "Elu": lambda a, x: F.elu(x, a.alpha),
    "Selu": lambda a, x: a.gamma * F.elu(x, a.alpha),
    "Clip": lambda a, x: _clamp(x, a.min, a.max),
    "HardSigmoid": lambda a, x: (x * a.alpha + a.beta).clamp(0, 1),
    "HardSwish": lambda a, x: x * (x * (1 / 6) + 0.5).clamp(0, 1),
    "Gelu": lambda a, x: F.gelu(x, approximate=a.approximate),
    "GlobalAveragePool": lambda a, x: x.mean(dim=_spatial_axes(x, a), keepdim=True),
    "GlobalMaxPool": lambda a, x: x.amax(dim=_spatial_axes(x, a), keepdim=True),
}
_REDUCTIONS = {"ReduceSum": torch.sum, "ReduceMean": torch.mean, "ReduceMax": torch.amax}

for _op, _fn in _BROADCASTING.items():
    _kernel(_op, rule=_same_rank)(lambda attrs, args, fn=_fn: fn(*args))
for _op, _fn in _UNARY.items():
    _kernel(_op)(lambda attrs, args, fn=_fn: fn(args[0]))
for _op, _fn in _WITH_ATTRS.items():
    _kernel(_op)(lambda attrs, args, fn=_fn: fn(attrs, args[0]))
for _op, _fn in _REDUCTIONS.items():
    _kernel(_op, rule=_reduce_axes)(lambda attrs, args, fn=_fn: fn(args[0], attrs.axes, attrs.keepdims))


@_kernel("Cast")
def _cast(attrs, args):
    """Float targets compute in float32 like every kernel; integer ones convert."""
    target = _torch_dtype(attrs.dtype)
    return args[0].float() if target.is_floating_point else args[0].to(target)


def _over_axis(fn: Callable, x: torch.Tensor, attrs) -> torch.Tensor:
    """fn(x, axis) along attrs.axis, or (coerce_2d) along axes axis.. taken together."""
    if attrs.coerce_2d:
        return fn(x.reshape(*x.shape[:attrs.axis], -1), attrs.axis).reshape(x.shape)
    return fn(x, attrs.axis)


@_kernel("Softmax", rule=_along_axis)
def _softmax(attrs, args):
    x = _scaled(args[0], attrs.scale)
    if len(args) > 1 and args[1] is not None:
        x = x.masked_fill(~args[1].bool(), float("-inf"))
    return _over_axis(torch.softmax, x, attrs)


@_kernel("LogSoftmax", rule=_along_axis)
def _log_softmax(attrs, args):
    return _over_axis(torch.log_softmax, _scaled(args[0], attrs.scale), attrs)


def _scaled(x: torch.Tensor, scale: float) -> torch.Tensor:
    """x · scale in x's type, as the reference's softmax.scaled (x for scale 1)."""
    return x if scale == 1.0 else x * torch.tensor(scale, dtype=x.dtype)


# -- pooling ---------------------------------------------------------------------------
@_kernel("MaxPool")
def _max_pool(attrs, args):
    """Padding never wins: it is -inf, and the padded input holds exactly the windows."""
    x = _pool_input(_channels_first(args[0], attrs), attrs, -np.inf, -np.inf)
    y = _MAX_POOL[len(attrs.kernel_shape)](x, attrs.kernel_shape, attrs.strides, 0, attrs.dilations)
    return _restore(y, attrs)


@_kernel("AveragePool")
def _average_pool(attrs, args):
    """Window sums over window counts, both as a depthwise convolution with ones
    (PyTorch's average pooling has no dilation); counts include the explicit
    pads when count_include_pad, never the ceil_mode reach beyond them."""
    x = _channels_first(args[0], attrs)
    channels, conv = x.shape[1], _CONV[len(attrs.kernel_shape)]
    ones = x.new_ones((channels, 1, *attrs.kernel_shape))
    sums = conv(_pool_input(x, attrs, 0.0, 0.0), ones, None, attrs.strides, 0, attrs.dilations, channels)
    covered = _pool_input(x.new_ones((1, 1, *x.shape[2:])), attrs, float(attrs.count_include_pad), 0.0)
    counts = conv(covered, ones[:1], None, attrs.strides, 0, attrs.dilations)
    return _restore(sums / counts, attrs)


# -- data movement ---------------------------------------------------------------------
@_kernel("Reshape")
def _reshape(attrs, args):
    """The IR shape's leading 1 (checked) becomes the batch; rows folded from a
    [1, T, K] input ([T, K]) become [N · T, K], and back (`_row_fold`)."""
    return args[0].reshape(-1, *attrs.shape[1:])


@_kernel("Transpose", rule=_keeps_axis0)
def _transpose(attrs, args):
    return args[0].permute(attrs.perm)


@_kernel("Expand", rule=_same_rank, batch_aware=True)
def _expand(attrs, args, batched: bool):
    """Batched, axis 0 (the IR's leading 1, same rank: checked) stays the batch."""
    return args[0].expand(args[0].shape[0], *attrs.shape[1:]) if batched else args[0].expand(*attrs.shape)


@_kernel("Tile")
def _tile(attrs, args):
    return args[0].repeat(*attrs.repeats)


@_kernel("Concat", rule=_along_axis)
def _concat(attrs, args):
    """Constant operands (axis 0 of 1) are repeated over the batch (unless
    joined along axis 0, which only a sample-by-sample run does)."""
    if attrs.axis == 0:
        return torch.cat(args, dim=0)
    batch = max(a.shape[0] for a in args)
    return torch.cat([a.expand(batch, *a.shape[1:]) for a in args], dim=attrs.axis)


@_kernel("Split", rule=_along_axis)
def _split(attrs, args):
    return list(torch.split(args[0], list(attrs.sizes), dim=attrs.axis))


@_kernel("Slice", batch_aware=True)
def _slice(attrs, args, batched: bool):
    """Batched, axis 0 (the IR's one element, checked) is taken whole;
    index_select takes negative steps, which torch slicing does not."""
    x = args[0]
    for axis, (start, step, size) in enumerate(zip(attrs.starts, attrs.steps, attrs.sizes)):
        if (axis or not batched) and (start, step, size) != (0, 1, x.shape[axis]):
            x = x.index_select(axis, torch.arange(size, device=x.device) * step + start)
    return x


@_kernel("Pad", rule=_no_axis0_pad)
def _pad(attrs, args):
    """Constant mode pads (or crops, where negative) every axis at once; the
    other modes crop first, then read the source index of every position."""
    x, rank = args[0], args[0].ndim
    if attrs.mode == "constant":
        return _pad_trailing(x, attrs.pads, attrs.value)
    begins, ends = attrs.pads[:rank], attrs.pads[rank:]
    x = x[tuple(slice(-min(b, 0), d + min(e, 0)) for d, b, e in zip(x.shape, begins, ends))]
    for axis in range(rank):  # batched, axis 0 has no pads (checked)
        begin, end = max(begins[axis], 0), max(ends[axis], 0)
        if begin or end:
            index = _pad_index(attrs.mode, x.shape[axis], begin, end)
            x = x.index_select(axis, torch.from_numpy(index).to(x.device))
    return x


def _pad_index(mode: str, extent: int, begin: int, end: int) -> np.ndarray:
    """Source index of every position of an axis of `extent` padded by (begin,
    end) in reflect, edge or wrap mode (Pad's infer bounds reflect's reach)."""
    position = np.arange(-begin, extent + end)
    if mode == "edge":
        return np.clip(position, 0, extent - 1)
    if mode == "wrap":
        return position % extent
    position = np.abs(position)
    return np.where(position > extent - 1, 2 * (extent - 1) - position, position)


@_kernel("Gather", rule=_gather_rule)
def _gather(attrs, args):
    return gather_along(*args, attrs.axis)


def gather_along(data: torch.Tensor, indices: torch.Tensor, axis: int) -> torch.Tensor:
    """Gather of `data` along `axis` by `indices`, which count from the end when
    negative and are clamped into the axis (nnc's rule, nnc.ops.indexing.clamp_indices)."""
    extent = data.shape[axis]
    index = indices.long()
    index = torch.where(index < 0, index + extent, index).clamp(0, max(extent - 1, 0))
    picked = data.index_select(axis, index.reshape(-1))
    return picked.reshape(*data.shape[:axis], *index.shape, *data.shape[axis + 1:])


@_kernel("Resize")
def _resize(attrs, args):
    """One spatial axis at a time, with nnc's own index and weight tables."""
    x = _channels_first(args[0], attrs)
    for axis, size in enumerate(x.shape[2:]):
        dim = axis + 2
        if attrs.mode == "nearest":
            x = x.index_select(dim, torch.from_numpy(nearest_indices(attrs, axis, size)).to(x.device))
            continue
        i0, i1, f = (torch.from_numpy(t).to(x.device) for t in linear_taps(attrs, axis, size))
        f = f.to(x.dtype).reshape(-1, *(1,) * (x.ndim - dim - 1))
        x = x.index_select(dim, i0) * (1 - f) + x.index_select(dim, i1) * f
    return _restore(x, attrs)


# -- recurrent ops -------------------------------------------------------------------
_RNN_ACTIVATIONS: dict[str, Callable] = {  # name -> fn(alpha, beta, x), as rnn_activations.apply
    "Relu": lambda a, b, x: torch.relu(x),
    "Tanh": lambda a, b, x: torch.tanh(x),
    "Sigmoid": lambda a, b, x: torch.sigmoid(x),
    "Affine": lambda a, b, x: a * x + b,
    "LeakyRelu": lambda a, b, x: torch.where(x >= 0, x, a * x),
    "ThresholdedRelu": lambda a, b, x: torch.where(x >= a, x, torch.zeros_like(x)),
    "ScaledTanh": lambda a, b, x: a * torch.tanh(b * x),
    "HardSigmoid": lambda a, b, x: (a * x + b).clamp(0.0, 1.0),
    "Elu": lambda a, b, x: torch.where(x >= 0, x, a * torch.expm1(torch.clamp(x, max=0.0))),
    "Softsign": lambda a, b, x: F.softsign(x),
    "Softplus": lambda a, b, x: torch.logaddexp(x, torch.zeros_like(x)),
}


def _recurrent_kernel(op: str) -> Kernel:
    """ONNX's op on X (its layout), W, R, B, initial_h, initial_c, P: Y, Y_h
    (Y_c) and for LSTM the cell sequence [T, D, B, H], as recurrent.evaluate_float."""

    def run(attrs: RecurrentAttrs, args):
        x = args[0] if attrs.layout == 0 else args[0].transpose(0, 1)  # [T, B, I]
        h0, c0 = (_initial_state(attrs, _arg(args, k), x) for k in (5, 6))
        ys, cells, finals = [], [], []
        for d in range(attrs.num_directions):
            y, c, final = _direction(op, attrs, args, d, x, h0[d], c0[d])
            ys.append(y)
            cells.append(c)
            finals.append(final)
        y = torch.stack(ys, 1)  # [T, D, B, H]
        states = [torch.stack(per_direction, 0) for per_direction in zip(*finals)]  # [D, B, H] each
        if attrs.layout == 1:
            y, states = y.permute(2, 0, 1, 3), [s.transpose(0, 1) for s in states]
        return [y, *states, torch.stack(cells, 1)] if op == "LSTM" else [y, *states]

    return run


def _initial_state(attrs: RecurrentAttrs, value: torch.Tensor | None, x: torch.Tensor) -> torch.Tensor:
    """[D, B, H] (zeros when omitted)."""
    if value is None:
        return x.new_zeros((attrs.num_directions, x.shape[1], attrs.hidden_size))
    return value if attrs.layout == 0 else value.transpose(0, 1)


def _direction(op: str, attrs: RecurrentAttrs, args, d: int, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor):
    """Direction d over every time step: Y [T, B, H], cells [T, B, H], final
    states; the steps are the reference's own (recurrent.lstm_step, gru_step)."""
    rows, hidden = GATES[op] * attrs.hidden_size, attrs.hidden_size
    w, r, b, p = args[1][d], args[2][d], _arg(args, 3), _arg(args, 7)
    wb, rb = (b[d, :rows], b[d, rows:]) if b is not None else (x.new_zeros(rows), x.new_zeros(rows))
    peep = None if p is None else p[d].reshape(3, hidden)
    per_direction = len(DEFAULT_ACTIVATIONS[op])

    def act(k: int, v: torch.Tensor, clip: bool) -> torch.Tensor:
        name, alpha, beta = attrs.activation(d, k, per_direction)
        clipped = v.clamp(-attrs.clip, attrs.clip) if clip and attrs.clip is not None else v
        return _RNN_ACTIVATIONS[name](alpha, beta, clipped)

    xw = x @ w.T + wb  # every step's input term at once
    ys, cells = [None] * x.shape[0], [None] * x.shape[0]
    for t in time_steps(attrs, d, x.shape[0]):
        if op == "LSTM":
            h, c = lstm_step(attrs, xw[t], h @ r.T + rb, c, peep, act)
        elif op == "GRU":
            h = gru_step(attrs, xw[t], h, r, rb, act)
        else:
            h = act(0, xw[t] + h @ r.T + rb, True)
        ys[t], cells[t] = h, c
    return torch.stack(ys), torch.stack(cells), ([h, c] if op == "LSTM" else [h])


for _op in GATES:
    _kernel(_op, rule=_all(_batch_first, _constant(1, 2, 3, 7)))(_recurrent_kernel(_op))
