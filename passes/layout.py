"""layout: run every spatial op channels-last (NHWC, the layout of TFLite Micro's
and CMSIS-NN's kernels) and move the transposes this needs to where they cancel.

Rewrites, in three steps (docs/layout.md has the rationale):
1. Convert. Every op with a `channels_last` attribute (Conv, ConvTranspose,
   MaxPool, AveragePool, GlobalAveragePool, BatchNormalization, ...) on data of
   rank >= 3 whose layout is not the target gets the target layout, wrapped as
   Transpose(to target) -> op -> Transpose(back): N,C,D.. <-> N,D..,C, any rank
   (NCW <-> NWC for 1-D). Weights keep the ONNX layout.
2. Move, to a fixpoint (`rewrite` with the canonicalize clean-up rules and):
   - `sink_transpose`: op(Transpose(x, p), ...) -> Transpose(op'(x, ...), p) for a
     layout-agnostic op (element-wise, Quantize/DequantizeLinear, Concat, Pad,
     Softmax, LogSoftmax, Slice, Expand, Tile, Gather and keepdims ReduceSum/Mean/Max of
     equal rank) whose run-time inputs all are Transposes with one perm p, at
     least one of them read by this op alone. op' has its axis / pads / per-axis attributes remapped and its
     constants transposed at compile time (a lower-rank constant is first
     expanded to full rank, as broadcasting would, then its leading 1s dropped).
   - `hoist_transpose`: Transpose(u_k(...u_1(x))) -> u_k'(...u_1'(Transpose(x))) through
     agnostic ops with one run-time input each, read only by the next, when x is
     itself a Transpose's output, so that the two then compose; done only when this
     removes a Transpose.
3. Clean up with all canonicalize rules (transposes that only move size-1 axes
   become Reshapes, Reshape chains merge), then mark every tensor known to be in
   the target layout: the data input and output of converted ops, spread through
   agnostic ops (`Tensor.layout` "NWC", "NHWC", "NDHWC"; or "NCW", ... for NCHW).

Options: `target`: "NHWC" (alias "channels_last") or "NCHW" (alias
"channels_first", which converts channels-last ops back).

Requires: a valid graph. Guarantees: a valid graph with the same graph input and
output names, types and values, bit for bit (only data movement changes).
Transposes remain only where no rule reaches: between a spatial op and a graph
input or output in the other layout (the user's contract), or next to an op the
rules cannot move a transpose through (e.g. MatMul, a Reshape that is not a pure
relabelling, a per-channel op fed by two different layouts).

Termination: every rule lowers (number of Transposes, sum over Transposes of the
number of compute ops (neither Transpose nor Reshape) downstream of them, length
of Transpose chains, number of Reshapes) in lexicographic order. Sinking keeps the
count (one input Transpose goes, one comes) and moves a Transpose strictly
below a compute op; hoisting and the clean-up rules remove one; compute-op depths
never change since no rule adds or removes compute ops. `rewrite` also stops at
a step bound.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from nnc.ir import Graph, Node
from nnc.ops import get_op
from nnc.passmanager import Pass, register_pass

from .canonicalize import (
    CANONICAL_RULES,
    QDQ_OPS,
    TRANSPOSE_CLEANUP,
    add_transpose,
    compose,
    compose_transposes,
    data_inputs,
    inverse,
    is_identity,
    only_feeds,
    permute,
    permuted_tensor,
    remove_identity_transpose,
    rewrite,
)
from .graph_edits import drop_if_dead, single_use
from nnc.records import record
from .rule_dispatch import fires_on

TARGETS = {"NHWC": True, "channels_last": True, "NCHW": False, "channels_first": False}
LAYOUT_NAMES = {True: {3: "NWC", 4: "NHWC", 5: "NDHWC"}, False: {3: "NCW", 4: "NCHW", 5: "NCDHW"}}


@register_pass
@record
class Layout(Pass):
    name = "layout"
    target: str = "NHWC"

    def __post_init__(self):
        if self.target not in TARGETS:
            raise ValueError(f"target must be one of {', '.join(TARGETS)}, got {self.target!r}")

    def run(self, graph: Graph) -> Graph:
        channels_last = TARGETS[self.target]
        for node in graph.nodes():
            if _needs_conversion(graph, node, channels_last):
                convert(graph, node, channels_last)
        rewrite(graph, MOTION_RULES)
        rewrite(graph, CANONICAL_RULES)
        mark_layouts(graph, channels_last)
        return graph


# -- 1. convert --------------------------------------------------------------------
def to_channels_last(rank: int) -> tuple[int, ...]:
    """Perm taking N,C,D1..Dk to N,D1..Dk,C."""
    return (0, *range(2, rank), 1)


def _needs_conversion(graph: Graph, node: Node, channels_last: bool) -> bool:
    flag = getattr(node.attrs, "channels_last", None)
    return (flag is not None and flag != channels_last and len(node.outputs) == 1 and bool(node.outputs[0])
            and len(graph.tensor(node.inputs[0]).shape) >= 3)


def convert(graph: Graph, node: Node, channels_last: bool) -> None:
    """Wrap `node` in transposes and flip its `channels_last` attribute."""
    perm = to_channels_last(len(graph.tensor(node.inputs[0]).shape))
    into, back = (perm, inverse(perm)) if channels_last else (inverse(perm), perm)
    x = add_transpose(graph, node.inputs[0], into, name=f"{node.name}.in")
    out = graph.tensor(node.outputs[0])
    y = permuted_tensor(graph, out, into)
    graph.remove_node(node.name)
    attrs = dataclasses.replace(node.attrs, channels_last=channels_last)
    graph.add_node(Node(node.name, node.op, [x, *node.inputs[1:]], [y], attrs))
    add_transpose(graph, y, back, out=out.name, name=f"{node.name}.out")


# -- 2. move -------------------------------------------------------------------------
# Data-movement ops whose attributes hold one entry per axis (nnc.ops.indexing, replicate).
# ops/reduce.py's REDUCE_OPS (the reductions with keepdims), named here so that
# layout does not import the reduce ops (tests/passes/test_layout.py compares them)
KEEPDIMS_REDUCTIONS = ("ReduceSum", "ReduceMean", "ReduceMax")
PER_AXIS_FIELDS = {"Slice": ("starts", "steps", "sizes"), "Expand": ("shape",), "Tile": ("repeats",)}


def reframe(graph: Graph, node: Node, perm: tuple[int, ...]):
    """How layout-agnostic `node` computes when each of its run-time tensors v is
    replaced by transpose(v, perm) (new axis j = old axis perm[j]): (new attrs,
    {input index: new constant data}); None when the node is not agnostic."""
    rank = len(perm)
    data = data_inputs(graph, node)
    tensors = [node.inputs[i] for i in data] + node.outputs
    if not data or len(node.outputs) != 1 or any(len(graph.tensor(t).shape) != rank for t in tensors):
        return None
    inv, attrs = inverse(perm), node.attrs
    if node.op in QDQ_OPS:
        axis = None if attrs.axis is None else inv[attrs.axis]
        return (dataclasses.replace(attrs, axis=axis), {}) if data == [0] else None
    if node.op in ("Softmax", "LogSoftmax"):  # a keep mask (a constant of the input's rank) moves with the axes
        if attrs.coerce_2d or data != [0]:
            return None
        keep = {1: np.transpose(graph.constant(node.inputs[1]), perm)} if len(node.inputs) > 1 else {}
        return dataclasses.replace(attrs, axis=inv[attrs.axis]), keep
    if node.op in KEEPDIMS_REDUCTIONS:  # keepdims (equal ranks): only the axes move
        return dataclasses.replace(attrs, axes=tuple(sorted(inv[a] for a in attrs.axes))), {}
    if node.op == "Pad":
        pads = permute(attrs.pads[:rank], perm) + permute(attrs.pads[rank:], perm)
        return dataclasses.replace(attrs, pads=pads), {}
    if node.op == "Gather":  # constant 1-D indices (equal ranks), so only the axis moves
        return (dataclasses.replace(attrs, axis=inv[attrs.axis]), {}) if data == [0] else None
    if node.op in PER_AXIS_FIELDS:
        return dataclasses.replace(attrs, **{f: permute(getattr(attrs, f), perm) for f in PER_AXIS_FIELDS[node.op]}), {}
    consts = {i: graph.constant(t) for i, t in enumerate(node.inputs) if t and i not in data}
    if node.op == "Concat":
        return dataclasses.replace(attrs, axis=inv[attrs.axis]), {i: np.transpose(k, perm) for i, k in consts.items()}
    if get_op(node.op).elementwise and all(k.ndim <= rank for k in consts.values()):
        return attrs, {i: _broadcast_transpose(k, perm) for i, k in consts.items() if k.size != 1}
    return None


def _broadcast_transpose(k: np.ndarray, perm: tuple[int, ...]) -> np.ndarray:
    """Constant k, broadcast against a rank-len(perm) tensor, for the transposed frame:
    expanded to full rank, transposed, leading 1s dropped again."""
    full = np.transpose(k.reshape((1,) * (len(perm) - k.ndim) + k.shape), perm)
    lead = next((i for i, d in enumerate(full.shape) if d != 1), full.ndim)
    return full.reshape(full.shape[lead:])


def _rebuild(graph: Graph, node: Node, inputs: list[str], change, out: str) -> None:
    """Replace `node` by the same op reading `inputs` (constants replaced as `change`
    says) and writing `out`; the old inputs are left for the caller to drop."""
    attrs, consts = change
    inputs = list(inputs)
    for i, data in consts.items():
        inputs[i] = graph.add_constant(node.inputs[i], data).name
    graph.remove_node(node.name)
    graph.add_node(Node(node.name, node.op, inputs, [out], attrs))


def sink_transpose(graph: Graph, node: Node) -> bool:
    data = data_inputs(graph, node)
    ups = [graph.producer(node.inputs[i]) for i in data]
    if node.op in ("Transpose", "Reshape") or not ups or any(u is None or u.op != "Transpose" for u in ups):
        return False
    perm = ups[0].attrs.perm
    if any(u.attrs.perm != perm for u in ups) or not any(only_feeds(graph, u.outputs[0], node) for u in ups):
        return False
    change = reframe(graph, node, inverse(perm))
    if change is None:
        return False
    out = graph.tensor(node.outputs[0])
    inputs = list(node.inputs)
    for i, u in zip(data, ups):
        inputs[i] = u.inputs[0]
    moved = permuted_tensor(graph, out, inverse(perm))
    _rebuild(graph, node, inputs, change, moved)
    add_transpose(graph, moved, perm, out=out.name, name=ups[0].name)
    for name in node.inputs:
        drop_if_dead(graph, name)
    return True


def _hoist_chain(graph: Graph, node: Node) -> list[Node] | None:
    """The agnostic single-input ops above Transpose `node` up to a Transpose whose
    composition with `node` removes a Transpose; None if there is none."""
    chain, current, perm = [], node.inputs[0], node.attrs.perm
    while (up := graph.producer(current)) is not None and single_use(graph, current) and up.op != "Transpose":
        if len(data_inputs(graph, up)) != 1 or reframe(graph, up, perm) is None:
            return None
        chain.append(up)
        current = up.inputs[data_inputs(graph, up)[0]]
    if up is None or up.op != "Transpose" or not chain:
        return None
    if is_identity(compose(up.attrs.perm, perm)) or only_feeds(graph, current, chain[-1]):
        return chain
    return None


@fires_on("Transpose")
def hoist_transpose(graph: Graph, node: Node) -> bool:
    chain = _hoist_chain(graph, node) if node.op == "Transpose" else None
    if not chain:
        return False
    perm = node.attrs.perm
    changes = [reframe(graph, up, perm) for up in chain]
    graph.remove_node(node.name)
    current = add_transpose(graph, chain[-1].inputs[data_inputs(graph, chain[-1])[0]], perm, name=node.name)
    new = graph.producer(current)
    for up, change in reversed(list(zip(chain, changes))):  # top-down, each above the last
        index = data_inputs(graph, up)[0]
        out = node.outputs[0] if up is chain[0] else permuted_tensor(graph, graph.tensor(up.outputs[0]), perm)
        _rebuild(graph, up, [current if i == index else t for i, t in enumerate(up.inputs)], change, out)
        current = out
    for name in [t for up in chain for t in (*up.inputs, *up.outputs)]:
        drop_if_dead(graph, name)
    compose_transposes(graph, new)
    remove_identity_transpose(graph, new)
    return True


MOTION_RULES = TRANSPOSE_CLEANUP + (sink_transpose, hoist_transpose)


# -- 3. mark -------------------------------------------------------------------------
def mark_layouts(graph: Graph, channels_last: bool) -> None:
    """Set `layout` on the data tensors of converted ops and spread it through
    layout-agnostic ops whose run-time tensors all have the same rank."""
    names = LAYOUT_NAMES[channels_last]
    nodes = graph.nodes()
    for node in nodes:
        if getattr(node.attrs, "channels_last", None) == channels_last:
            for t in (node.inputs[0], node.outputs[0]):
                _mark(graph, t, names)
    # the run-time tensors of each agnostic node, in node order: marking changes
    # layouts only, never what makes a node agnostic (its op, attrs, shapes, constants)
    spreading = []
    for node in nodes:
        tensors = [node.inputs[i] for i in data_inputs(graph, node)] + [o for o in node.outputs if o]
        if node.op in ("Transpose", "Reshape") or len({len(graph.tensor(t).shape) for t in tensors}) != 1:
            continue
        if reframe(graph, node, tuple(range(len(graph.tensor(tensors[0]).shape)))) is not None:
            spreading.append(tensors)
    changed = True
    while changed:
        changed = False
        for tensors in spreading:
            if any(graph.tensor(t).layout in names.values() for t in tensors):
                changed |= any([_mark(graph, t, names) for t in tensors])


def _mark(graph: Graph, name: str, names: dict[int, str]) -> bool:
    t = graph.tensor(name)
    layout = names.get(len(t.shape))
    if t.layout is not None or layout is None:
        return False
    graph.tensors[name] = dataclasses.replace(t, layout=layout)
    return True
