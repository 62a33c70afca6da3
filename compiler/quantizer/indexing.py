"""Lowering rules of the indexing ops (docs/numerics.md §8a): the integer op is
the float op on the 8-bit values, with the input's parameters.

    Slice, Expand, Tile       → the same op on the integers (as Reshape, §8)
    Gather on a run-time or
    dequantized table         → Gather on the integers, the data's parameters
    Gather on a constant
    float table               → Gather on an int8 copy of the table, quantized
                                with `table_affine` (the output's parameters)

`table_affine` is what the annotator gives a Gather output whose data is a
constant float table: the table's own per-tensor range, so every row stays
representable whichever rows calibration happened to select.
"""

from __future__ import annotations

import numpy as np

from ..errors import UnsupportedError
from ..ir import Graph, Node
from .emit import add_node, constant, staging
from .groups import Group, rule
from .params import Affine, affine_from_range
from .rules import lower_move

rule("Slice", "Expand", "Tile")(lower_move)


def is_table_lookup(graph: Graph, node: Node) -> bool:
    """A Gather whose data is a constant float table (an embedding)."""
    if node.op != "Gather":
        return False
    data = graph.tensor(node.inputs[0])
    return data.is_constant and data.dtype in ("f32", "f64")


def table_affine(graph: Graph, node: Node) -> Affine:
    table = graph.tensor(node.inputs[0]).data
    if table.size == 0 or not np.isfinite(table).all():
        raise UnsupportedError(f"Gather node {node.name!r}: its table is empty or holds non-finite values")
    return affine_from_range(float(table.min()), float(table.max()))


@rule("Gather")
def lower_gather(graph: Graph, group: Group) -> None:
    node, indices = group.node, group.node.inputs[1]
    if graph.tensor(indices).dtype not in ("i32", "i64"):
        raise UnsupportedError(f"Gather node {group.name!r}: indices must be int32 or int64")
    data = group.operands[0]
    if data is not None:
        target = staging(graph, group, data.affine)
        add_node(graph, group.name, "Gather", [data.tensor, indices], [target], node.attrs)
        return
    if not is_table_lookup(graph, node):
        raise UnsupportedError(f"Gather node {group.name!r}: its data is neither quantized nor a constant table")
    affine = table_affine(graph, node)
    table = graph.tensor(node.inputs[0]).data.astype(np.float32)
    q = np.clip(np.rint(table / np.float32(affine.scale)) + affine.zero_point, *affine.qrange).astype(np.int8)
    name = constant(graph, f"{group.name}.table", q, quant=affine.quant_params())
    target = staging(graph, group, affine)
    add_node(graph, group.name, "Gather", [name, indices], [target], node.attrs)
