"""The canonicalize rule that rewrites a decomposed GELU into one Gelu.

PyTorch exporters below opset 20 (and hand-written BERT-style code) spell
GELU(x) = x · 0.5 · (1 + F) as elementary ops, with F either
- exact: Erf(u), u = Div(x, √2) or Mul(x, 1/√2);
- tanh:  Tanh(Mul(√(2/π), Add(x, Mul(0.044715, x³)))), x³ = Pow(x, 3) or
  Mul(x, Mul(x, x)) in either nesting;
then a = Add(F, 1) and y = Mul(Mul(x, a), 0.5) | Mul(Mul(x, 0.5), a) |
Mul(x, Mul(a, 0.5)), every binary op in either operand order.
`fuse_gelu` replaces such a chain, whose intermediate tensors are read only
inside it, by y = Gelu(x) with approximate "none" or "tanh", so the quantizer
makes it one 256-entry table instead of several int8 ops each rounding on its
own. The values are the same function computed in float64
(nnc.ops.math_unary.gelu), equal to the chain up to float32 rounding. Each
rewrite removes at least four nodes and adds one, so rewriting terminates.
"""

from __future__ import annotations

import math

import numpy as np

from nnc.ir import Graph, Node
from nnc.ops.math_unary import GeluAttrs

from .graph_edits import drop_if_dead, single_use
from .rule_dispatch import fires_on

_RTOL = 1e-6
_TANH_SCALE = math.sqrt(2.0 / math.pi)
_CUBIC = 0.044715


def _scalar(graph: Graph, name: str, value: float) -> bool:
    data = graph.constant(name)
    return data is not None and data.size == 1 and bool(np.isclose(float(data.reshape(-1)[0]), value,
                                                                    rtol=_RTOL, atol=0.0))


def _producer(graph: Graph, name: str, op: str, chain: list[Node]) -> Node | None:
    """The `op` node producing `name` when nothing else reads `name`; appended to `chain`."""
    node = graph.producer(name)
    if node is None or node.op != op or not single_use(graph, name):
        return None
    chain.append(node)
    return node


def _scaled(graph: Graph, name: str, op: str, value: float, chain: list[Node]) -> str | None:
    """t when `name` is op(t, value) (Mul: either order; Div: t first)."""
    node = graph.producer(name)
    if node is None or node.op != op:
        return None
    orders = ((0, 1), (1, 0)) if op == "Mul" else ((0, 1),)
    for t, c in orders:
        if _scalar(graph, node.inputs[c], value) and _producer(graph, name, op, chain):
            return node.inputs[t]
    return None


def _erf_argument(graph: Graph, name: str, chain: list[Node]) -> str | None:
    """x when `name` is x / √2 or x · (1/√2)."""
    return _scaled(graph, name, "Div", math.sqrt(2.0), chain) or \
        _scaled(graph, name, "Mul", 1.0 / math.sqrt(2.0), chain)


def _cube_of(graph: Graph, name: str, chain: list[Node]) -> str | None:
    """x when `name` is Pow(x, 3), Mul(x, Mul(x, x)) or Mul(Mul(x, x), x)."""
    power = _scaled(graph, name, "Pow", 3.0, chain)
    if power is not None:
        return power
    outer = _producer(graph, name, "Mul", chain)
    for i in (0, 1) if outer is not None else ():
        square = _producer(graph, outer.inputs[i], "Mul", chain)
        if square is not None and len({*square.inputs, outer.inputs[1 - i]}) == 1:
            return square.inputs[0]
        if square is not None:
            chain.pop()
    return None


def _tanh_argument(graph: Graph, name: str, chain: list[Node]) -> str | None:
    """x when `name` is √(2/π) · (x + 0.044715 · x³)."""
    inner = _scaled(graph, name, "Mul", _TANH_SCALE, chain)
    add = _producer(graph, inner, "Add", chain) if inner else None
    for i in (0, 1) if add is not None else ():
        cube = _scaled(graph, add.inputs[1 - i], "Mul", _CUBIC, chain)
        if cube is not None:
            return add.inputs[i] if _cube_of(graph, cube, chain) == add.inputs[i] else None
    return None


def _one_plus(graph: Graph, name: str, chain: list[Node]) -> tuple[str, str] | None:
    """(x, approximate) when `name` is Add(F, 1), F the exact or tanh inner function."""
    add = _producer(graph, name, "Add", chain)
    for i in (0, 1) if add is not None else ():
        if not _scalar(graph, add.inputs[1 - i], 1.0):
            continue
        for op, argument, mode in (("Erf", _erf_argument, "none"), ("Tanh", _tanh_argument, "tanh")):
            inner = _producer(graph, add.inputs[i], op, chain)
            if inner is not None:
                x = argument(graph, inner.inputs[0], chain)
                return (x, mode) if x else None
    return None


def _match(graph: Graph, node: Node) -> tuple[str, str, list[Node]] | None:
    """(x, approximate, the chain's nodes above `node`) when Mul `node` ends a GELU."""
    for i, name in enumerate(node.inputs):
        inner: list[Node] = []
        if _producer(graph, name, "Mul", inner) is None:
            continue
        factors = [*inner[0].inputs, node.inputs[1 - i]]
        for half in [f for f in factors if _scalar(graph, f, 0.5)]:
            rest = [f for f in factors if f != half]
            for a, x in ((rest[0], rest[1]), (rest[1], rest[0])) if len(rest) == 2 else ():
                chain = list(inner)
                found = _one_plus(graph, a, chain)
                if found is not None and found[0] == x:
                    return x, found[1], chain
    return None


@fires_on("Mul")
def fuse_gelu(graph: Graph, node: Node) -> bool:
    match = _match(graph, node) if node.op == "Mul" and len(node.outputs) == 1 else None
    if match is None:
        return False
    x, approximate, chain = match
    graph.remove_node(node.name)
    graph.add_node(Node(node.name, "Gelu", [x], list(node.outputs), GeluAttrs(approximate)))
    for dead in chain:
        graph.remove_node(dead.name)
        del graph.tensors[dead.outputs[0]]
    for name in dict.fromkeys(t for n in (node, *chain) for t in n.inputs):
        drop_if_dead(graph, name)
    return True
