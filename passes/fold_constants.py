"""fold-constants: evaluate at compile time every node whose inputs are all constants.

Rewrites: in topological order, a node whose (non-omitted) inputs are all
constants is evaluated with its op's reference semantics
(`nnc.ops.get_op(op).evaluate`, exactly what the interpreter runs); its output
tensors become constants under the same names and the node is removed. Nodes
and tensors left unused are then removed (`Graph.remove_dead`).

Option `fold_dequantize` (default false): by default a node that dequantizes
is not folded: a `DequantizeLinear`, or any node whose first input has a type
DequantizeLinear accepts (8/16/32-bit integers) and that yields a float (such as
a Cast of integer weights). In a quantized (QDQ) model, `DequantizeLinear(w_int8, scale, zero_point)` is how the
integer weights, their scales and zero points, and the int32 biases reach the
float ops; folding it would replace them by float weights, and the quantization
passes that come later could then only re-quantize those floats (losing the
model's own scales, and possibly its exact integer values). Because such a node's
result is not a constant, nothing downstream of it is folded either.
`fold_dequantize=true` folds these too (for running a QDQ model as float).

Requires: a valid graph.

Guarantees: a valid graph with the same interface computing bit-identical
outputs: every folded constant is bit for bit what the interpreter computes for
that tensor. Graph outputs keep their names (a folded output becomes a constant
output). Dead nodes and unused tensors are gone.
"""

from __future__ import annotations

import dataclasses

from nnc import dtypes
from nnc.errors import IRError
from nnc.ir import Graph, Node
from nnc.ops import get_op
from nnc.ops.quantize import DEQUANTIZABLE_TYPES
from nnc.passmanager import Pass, register_pass
from nnc.records import record

@register_pass
@record
class FoldConstants(Pass):
    name = "fold-constants"
    fold_dequantize: bool = False

    def run(self, graph: Graph) -> Graph:
        for node in graph.nodes():
            if self._foldable(graph, node):
                _fold(graph, node)
        graph.remove_dead()
        return graph

    def _foldable(self, graph: Graph, node: Node) -> bool:
        if not all(graph.tensor(t).is_constant for t in node.inputs if t):
            return False
        return self.fold_dequantize or not dequantizes(graph, node)


def dequantizes(graph: Graph, node: Node) -> bool:
    """True for DequantizeLinear and for nodes that turn integer data (first
    input i8/u8/i16/i32) into floats."""
    if node.op == "DequantizeLinear":
        return True
    first = node.inputs[0] if node.inputs else ""
    return bool(first) and graph.tensor(first).dtype in DEQUANTIZABLE_TYPES and any(
        graph.tensor(t).dtype in dtypes.FLOAT_TYPES for t in node.outputs if t)


def _fold(graph: Graph, node: Node) -> None:
    """Replace `node` by constants holding its outputs."""
    args = [graph.tensor(t).data if t else None for t in node.inputs]
    results = get_op(node.op).evaluate(node.attrs, args)
    graph.remove_node(node.name)
    for name, value in zip(node.outputs, results):
        if not name:
            continue
        tensor = graph.tensor(name)
        if tuple(value.shape) != tensor.shape or value.dtype != dtypes.to_numpy(tensor.dtype):
            raise IRError(f"node {node.name!r} produced {value.dtype}{list(value.shape)} for {name!r}, "
                          f"the IR declares {tensor.dtype}{list(tensor.shape)}")
        graph.tensors[name] = dataclasses.replace(tensor, data=value)
