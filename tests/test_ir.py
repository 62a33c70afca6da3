"""Graph bookkeeping that passes rely on: copies and the cached topological order."""

import numpy as np

from nnc.ir import Graph, Node, Tensor
from nnc.ops import NoAttrs


def _graph() -> Graph:
    """x -> a -> c, x -> b -> c, inserted c, b, a (insertion order is not topological)."""
    g = Graph("g")
    for name in ("x", "ya", "yb", "yc"):
        g.add_tensor(Tensor(name, "f32", (2,)))
    g.add_tensor(Tensor("k", "f32", (2,), data=np.ones(2, np.float32)))
    g.inputs, g.outputs = ["x"], ["yc"]
    g.add_node(Node("c", "Add", ["ya", "yb"], ["yc"], NoAttrs()))
    g.add_node(Node("b", "Mul", ["x", "k"], ["yb"], NoAttrs()))
    g.add_node(Node("a", "Add", ["x", "k"], ["ya"], NoAttrs()))
    return g


def _rebuilt(g: Graph) -> Graph:
    """A copy made by adding g's nodes one by one in its topological order."""
    clone = Graph(g.name)
    for tensor in g.tensors.values():
        clone.add_tensor(Tensor(tensor.name, tensor.dtype, tensor.shape, tensor.data, tensor.layout, tensor.quant))
    clone.inputs, clone.outputs = list(g.inputs), list(g.outputs)
    for node in g.nodes():
        clone.add_node(Node(node.name, node.op, list(node.inputs), list(node.outputs), node.attrs))
    return clone


def _names(g: Graph) -> list[str]:
    return [n.name for n in g.nodes()]


def test_a_copy_orders_and_indexes_its_nodes_as_adding_them_in_order_would():
    g = _graph()
    clone, rebuilt = g.copy(), _rebuilt(g)
    assert _names(clone) == _names(g) == ["b", "a", "c"]
    assert [n.name for n in clone._topological_order()] == _names(clone)
    assert clone._seq == rebuilt._seq and clone._producer == rebuilt._producer
    assert clone._consumers == rebuilt._consumers and clone._inserted == rebuilt._inserted
    # later edits order the same way in both
    for h in (clone, rebuilt):
        h.add_tensor(Tensor("yd", "f32", (2,)))
        h.add_node(Node("d", "Mul", ["x", "x"], ["yd"], NoAttrs()))
        h.set_inputs(h.node("c"), ["yd", "yb"])
    assert _names(clone) == _names(rebuilt)


def test_a_copy_is_independent_of_its_source():
    g = _graph()
    clone = g.copy()
    clone.set_inputs(clone.node("c"), ["ya", "ya"])
    clone.tensors["ya"].layout = "NC"
    clone.remove_node("b")
    assert g.node("c").inputs == ["ya", "yb"] and g.tensors["ya"].layout is None
    assert _names(g) == ["b", "a", "c"] and _names(clone) == ["a", "c"]
    assert g.tensors["k"].data is clone.tensors["k"].data  # constants are shared, never mutated
