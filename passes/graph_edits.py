"""Graph edits every rewrite rule needs: whether a value has one reader, a new
value for a rewrite to write, and dropping what a rewrite left unused (a
constant alone, or a dead chain)."""

from __future__ import annotations

from nnc.ir import Graph, Tensor


def new_value(graph: Graph, base: str, dtype: str, shape, layout: str | None = None, quant=None) -> str:
    """A new run-time tensor named after `base` (made unique); returns its name."""
    name = graph.unique_tensor_name(base)
    graph.add_tensor(Tensor(name, dtype, tuple(shape), layout=layout, quant=quant))
    return name


def single_use(graph: Graph, tensor: str) -> bool:
    """True when one node input reads `tensor` and it is not a graph output."""
    return graph.uses(tensor) == 1 and tensor not in graph.outputs


def drop_unused_constant(graph: Graph, name: str) -> None:
    """Delete tensor `name` if nothing uses it and no node writes it (a constant
    or a dangling value); graph inputs stay."""
    if name and name in graph.tensors and not graph.uses(name) and name not in graph.inputs \
            and graph.producer(name) is None:
        del graph.tensors[name]


def drop_if_dead(graph: Graph, name: str) -> None:
    """Delete tensor `name` if nothing uses it, with its producer when all that
    producer's outputs are unused, and so on upwards. Graph inputs stay."""
    if not name or name not in graph.tensors or graph.uses(name) or name in graph.inputs:
        return
    producer = graph.producer(name)
    if producer is None:
        del graph.tensors[name]
        return
    if any(graph.uses(o) for o in producer.outputs if o):
        return
    graph.remove_node(producer.name)
    for out in producer.outputs:
        graph.tensors.pop(out, None)
    for src in producer.inputs:
        drop_if_dead(graph, src)
