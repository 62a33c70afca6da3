"""The IR verifier: one function that checks every structural invariant.

`verify(graph)` raises IRError naming the first broken invariant:
- the graph is acyclic;
- every node's op is registered and its attrs are an instance of the op's Attrs;
- every referenced tensor exists; each tensor has exactly one definition
  (graph input, constant, or one producing node);
- graph inputs are not constants; graph outputs exist;
- each state pairs a graph input with a graph output of the same type;
- re-running each op's shape inference on its input types gives exactly the
  declared output types (shapes consistent);
- layouts, where set, name each axis once and match the tensor's rank;
- quantization parameters, where set, have one scale per slice of their axis.
It runs after every pass under `--verify-each` and in the tests.
"""

from __future__ import annotations

from .errors import IRError, NncError
from .ir import Graph, Tensor, TensorType
from .ops import get_op


def verify(graph: Graph, context: str = "") -> None:
    where = f" ({context})" if context else ""
    try:
        _verify(graph)
    except IRError as exc:
        raise IRError(f"invalid IR{where}: {exc}") from None


def _verify(graph: Graph) -> None:
    nodes = graph.nodes()  # raises on a cycle
    defined = {n for n in graph.inputs}
    for name in graph.inputs:
        if graph.tensor(name).is_constant:
            raise IRError(f"graph input {name!r} is a constant")
    defined |= {n for n, t in graph.tensors.items() if t.is_constant}
    for node in nodes:
        _verify_node(graph, node, defined)
    for name in graph.outputs:
        if name not in defined:
            raise IRError(f"graph output {name!r} is never defined")
    for tensor in graph.tensors.values():
        _verify_tensor(tensor)
    _verify_states(graph)


def _verify_states(graph: Graph) -> None:
    for state_in, state_out in graph.states:
        if state_in not in graph.inputs or state_out not in graph.outputs:
            raise IRError(f"state {state_in!r} -> {state_out!r} must pair a graph input with a graph output")
        a, b = graph.tensor(state_in), graph.tensor(state_out)
        if (a.dtype, a.shape) != (b.dtype, b.shape):
            raise IRError(f"state {state_in!r} -> {state_out!r}: types differ "
                          f"({a.dtype}{list(a.shape)} vs {b.dtype}{list(b.shape)})")


def _verify_node(graph: Graph, node, defined: set[str]) -> None:
    op = get_op(node.op)
    if not isinstance(node.attrs, op.Attrs):
        raise IRError(f"node {node.name!r}: attrs are {type(node.attrs).__name__}, {node.op} needs {op.Attrs.__name__}")
    for name in node.inputs:
        if name and name not in defined:
            raise IRError(f"node {node.name!r} reads {name!r} before it is defined")
    types = [TensorType(graph.tensor(t).dtype, graph.tensor(t).shape) if t else None for t in node.inputs]
    try:
        inferred = op.infer(node.attrs, types)
    except NncError as exc:
        raise IRError(f"node {node.name!r} ({node.op}): {exc}") from None
    for name, expected in zip(node.outputs, inferred):
        if not name:
            continue
        if name in defined:
            raise IRError(f"tensor {name!r} is defined twice")
        tensor = graph.tensor(name)
        if TensorType(tensor.dtype, tensor.shape) != expected:
            raise IRError(f"node {node.name!r} ({node.op}): {name!r} is declared "
                          f"{tensor.dtype}{list(tensor.shape)} but infers to {expected.dtype}{list(expected.shape)}")
        defined.add(name)


def _verify_tensor(tensor: Tensor) -> None:
    if tensor.layout is not None:
        if len(tensor.layout) != len(tensor.shape) or len(set(tensor.layout)) != len(tensor.layout):
            raise IRError(f"tensor {tensor.name!r}: layout {tensor.layout} does not fit rank {len(tensor.shape)}")
    q = tensor.quant
    if q is not None and q.axis is not None:
        if not 0 <= q.axis < len(tensor.shape) or len(q.scale) != tensor.shape[q.axis]:
            raise IRError(f"tensor {tensor.name!r}: {len(q.scale)} scales along axis {q.axis} "
                          f"do not fit shape {list(tensor.shape)}")
