"""remove-identity: delete Identity and (inference) Dropout nodes.

Rewrites: every `Identity` or `Dropout` node y = op(x) disappears and the
consumers of y read x instead. When y is a graph output, the graph keeps the
name y (graph input and output names are a contract with the user):
- if x is a constant, y becomes a constant with the same data;
- if x is produced by a node and is not itself a graph output, that node now
  produces y directly (x is renamed to y for all its readers);
- if x is a graph input or also a graph output, the node stays: two interface
  names for one value cannot be merged without renaming one of them.

Requires: a valid graph. Dropout nodes are in inference mode (the front end
refuses training mode), so both ops forward their input unchanged.

Guarantees: a valid graph with the same inputs and outputs (names, types and
values, bit for bit); no Identity or Dropout node remains except in the case
above; no arithmetic changes.
"""

from __future__ import annotations

import dataclasses

from nnc.ir import Graph, Node
from nnc.passmanager import Pass, register_pass
from nnc.records import record

from .graph_edits import drop_unused_constant

FORWARDING_OPS = ("Identity", "Dropout")


@register_pass
@record
class RemoveIdentity(Pass):
    name = "remove-identity"

    def run(self, graph: Graph) -> Graph:
        for node in graph.nodes():
            if node.op in FORWARDING_OPS:
                _remove(graph, node)
        return graph


def _remove(graph: Graph, node: Node) -> None:
    x, y = node.inputs[0], node.outputs[0]
    if y not in graph.outputs:
        graph.remove_node(node.name)
        graph.replace_uses(y, x)
        del graph.tensors[y]
    elif graph.tensor(x).is_constant:
        graph.remove_node(node.name)
        graph.tensors[y] = dataclasses.replace(graph.tensor(y), data=graph.tensor(x).data)
        drop_unused_constant(graph, x)
    elif x not in graph.inputs and x not in graph.outputs:
        graph.remove_node(node.name)
        _rename_produced(graph, x, y)


def _rename_produced(graph: Graph, old: str, new: str) -> None:
    """Make the producer of `old` produce `new` instead; every reader of `old`
    reads `new`. `new` must be declared and produced by no node."""
    producer = graph.producer(old)
    graph.replace_uses(old, new)
    graph.remove_node(producer.name)
    outputs = [new if t == old else t for t in producer.outputs]
    graph.add_node(Node(producer.name, producer.op, list(producer.inputs), outputs, producer.attrs))
    kept = graph.tensor(old)
    graph.tensors[new] = dataclasses.replace(graph.tensor(new), layout=kept.layout or graph.tensor(new).layout,
                                             quant=kept.quant or graph.tensor(new).quant)
    del graph.tensors[old]
