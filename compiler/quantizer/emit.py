"""Small graph-building helpers shared by the lowering rules: new nodes, tensors
and constants, and the rescaling step that carries an 8-bit tensor into a
group's output parameters (docs/numerics.md §3, §8)."""

from __future__ import annotations

import numpy as np

from ..ir import Graph, Node, QuantParams, Tensor
from ..numerics import quantize_multiplier
from ..ops.elementwise import ClipAttrs
from ..ops.qelementwise import RequantizeAttrs
from .groups import Group
from .params import Affine


def add_node(graph: Graph, name: str, op: str, inputs: list[str], outputs: list[str], attrs) -> Node:
    """Add a node named `name` (made unique)."""
    return graph.add_node(Node(graph.unique_node_name(name), op, list(inputs), list(outputs), attrs))


def new_tensor(graph: Graph, like: str, affine: Affine, shape: tuple[int, ...] | None = None) -> str:
    """Declare an activation tensor shaped like `like` (or `shape`) with `affine`'s
    type and parameters; the layout follows `like` when the shape does."""
    base = graph.tensor(like)
    shape = base.shape if shape is None else tuple(shape)
    layout = base.layout if shape == base.shape else None
    name = graph.unique_tensor_name(f"{like}.{affine.dtype}")
    graph.add_tensor(Tensor(name, affine.dtype, shape, layout=layout, quant=affine.quant_params()))
    return name


def constant(graph: Graph, base: str, data: np.ndarray, quant: QuantParams | None = None,
             reuse: str | None = None) -> str:
    """A constant holding `data` with parameters `quant`: the existing tensor `reuse`
    when it holds exactly that data (so weights shared by layers stay shared),
    else a new one. A shared tensor keeps `quant` only while every integer layer
    reading it agrees (TFLite exporters share one bias among layers whose
    s_x · s_w differ; such a bias carries no `quant`, its scale being each
    layer's s_x · s_w[c]). Failing that, with `reuse` given, a constant that holds
    the same data with the same (non-empty) parameters is shared: the weight an
    exporter's unrolled recurrence reads at every step, transposed per layer."""
    if reuse:
        t = graph.tensor(reuse)
        if t.data is not None and t.data.dtype == data.dtype and t.shape == data.shape \
                and np.array_equal(t.data, data):
            readers = [c for c in graph.consumers(reuse) if c.op != "DequantizeLinear"]
            if t.quant is None and not readers:
                t.quant = quant
            elif t.quant != quant:
                t.quant = None
            return reuse
        twin = _twin_constant(graph, data, quant)
        if twin is not None:
            return twin
    return graph.add_constant(base, np.ascontiguousarray(data), quant=quant).name


def _twin_constant(graph: Graph, data: np.ndarray, quant: QuantParams | None) -> str | None:
    """A constant of `graph` equal to `data` with parameters `quant`, or None."""
    if quant is None:
        return None
    for name, t in graph.tensors.items():
        if (t.data is not None and t.quant == quant and t.data.dtype == data.dtype and t.shape == data.shape
                and np.array_equal(t.data, data)):
            return name
    return None


def multiplier_constants(graph: Graph, base: str, mantissas: np.ndarray, shifts: np.ndarray) -> tuple[str, str]:
    return (graph.add_constant(f"{base}.multiplier", mantissas.astype(np.int32)).name,
            graph.add_constant(f"{base}.shift", shifts.astype(np.int32)).name)


def rescale(graph: Graph, name: str, src: str, a: Affine, dst: str, b: Affine, lo: int, hi: int) -> None:
    """dst = src carried from parameters `a` to `b` and clamped to [lo, hi]: a Clip
    on the integers when a == b, else a Requantize with M = s_a / s_b."""
    if a == b:
        add_node(graph, f"{name}.clip", "Clip", [src], [dst], ClipAttrs(float(lo), float(hi)))
        return
    m, n = quantize_multiplier(a.scale / b.scale)
    attrs = RequantizeAttrs(a.zero_point, b.zero_point, m, n, lo, hi, b.dtype)
    add_node(graph, f"{name}.requantize", "Requantize", [src], [dst], attrs)


def staging(graph: Graph, group: Group, affine: Affine) -> str:
    """Where an op that moves 8-bit values with parameters `affine` should write:
    `group.output` itself when its parameters and clamp change nothing, else a new
    tensor that `rescale` then carries into `group.output`."""
    lo, hi = group.bounds()
    if affine == group.out and (lo, hi) == affine.qrange:
        return group.output
    mid = new_tensor(graph, group.output, affine)
    rescale(graph, group.name, mid, affine, group.output, group.out, lo, hi)
    return mid


def requantized_operand(graph: Graph, group: Group, tensor: str, a: Affine, b: Affine) -> str:
    """`tensor` (parameters `a`) carried to parameters `b` over the full range."""
    if a == b:
        return tensor
    out = new_tensor(graph, tensor, b)
    rescale(graph, f"{group.name}.{tensor}", tensor, a, out, b, *b.qrange)
    return out
