"""The ONNX graph as the lowering reads it: the nodes that a graph output
depends on, in file order (which onnx.checker has verified to be topological),
their attributes as Python values, the initializers they read as arrays
(sparse ones made dense), and each value's declared element type and shape.

Attribute values: int, float, str, lists of those, numpy arrays for tensors;
other kinds (graphs, sparse tensors, type protos) stay protobuf messages, which
no lowering reads (a node carrying one is refused or takes its default).
"""

from __future__ import annotations


import numpy as np

from ..errors import ModelError
from ..limits import check_elements
from ..records import record
from .onnx_proto import AttributeProto, to_array

Dim = int | str | None  # a fixed size, a symbolic name, or unknown


@record(frozen=False)
class GraphNode:
    name: str
    op: str
    domain: str
    inputs: list[str]  # "" for an omitted optional input
    outputs: list[str]
    attrs: dict


@record(frozen=False)
class ValueType:
    elem_type: int  # an ONNX TensorProto data type; 0 when not declared
    shape: tuple[Dim, ...] | None  # None when not declared


@record(frozen=False)
class OnnxGraph:
    nodes: list[GraphNode]
    constants: dict[str, np.ndarray]  # the initializers the nodes or graph outputs read
    inputs: list[str]  # graph inputs that are not initializers
    outputs: list[str]
    types: dict[str, ValueType]  # declared types of inputs, outputs and inferred values


def read_graph(graph) -> OnnxGraph:
    """The OnnxGraph of a checked GraphProto (see the module docstring)."""
    live = {o.name for o in graph.output}
    kept = []  # (node, its inputs, its outputs), each protobuf list read once
    for node in reversed(graph.node):  # a node lives when a live value is among its outputs
        writes = list(node.output)
        if any(o in live for o in writes):
            reads = list(node.input)
            kept.append((node, reads, writes))
            live.update(i for i in reads if i)
    kept.reverse()
    initializers = {t.name: t for t in graph.initializer}
    sparse = {t.values.name: t for t in graph.sparse_initializer}
    constants = {name: _array(initializers[name]) if name in initializers
                 else _dense(sparse[name]) for name in _read_order(kept, graph) if name in initializers or name in sparse}
    types = {}
    for value in (*graph.value_info, *graph.output, *graph.input):  # the inputs' bound shapes win
        if value.type.HasField("tensor_type"):
            types[value.name] = _value_type(value.type.tensor_type)
    inputs = [value.name for value in graph.input if value.name not in initializers and value.name not in sparse]
    nodes = [GraphNode(node.name, node.op_type, node.domain, reads, writes,
                       {a.name: _attribute(a) for a in node.attribute}) for node, reads, writes in kept]
    return OnnxGraph(nodes, constants, inputs, [o.name for o in graph.output], types)


def _read_order(kept, graph) -> list[str]:
    """Names the `kept` nodes read and the graph outputs, each once, in first-read order."""
    names = dict.fromkeys(i for _, reads, _ in kept for i in reads if i)
    names.update(dict.fromkeys(o.name for o in graph.output))
    return list(names)


def _value_type(tensor_type) -> ValueType:
    shape = None
    if tensor_type.HasField("shape"):
        shape = tuple([d.dim_value if d.HasField("dim_value") else d.dim_param if d.HasField("dim_param") else None
                       for d in tensor_type.shape.dim])
    return ValueType(tensor_type.elem_type, shape)


def _attribute(attribute):
    if attribute.type == AttributeProto.TENSOR:
        return _array(attribute.t)
    if attribute.type == AttributeProto.STRING:
        return attribute.s.decode()
    if attribute.type == AttributeProto.STRINGS:
        return [s.decode() for s in attribute.strings]
    if attribute.type == AttributeProto.UNDEFINED:
        return None
    field = _ATTRIBUTE_FIELDS.get(attribute.type)
    if field is None:
        raise ModelError(f"attribute {attribute.name!r} has a value of unknown type {attribute.type}")
    value = getattr(attribute, field)
    return value if attribute.type in _SINGLE_VALUES else list(value)


# The field holding each kind of attribute value other than a tensor or strings
# (as onnx.helper.get_attribute_value reads them); graphs and sparse tensors stay messages.
_ATTRIBUTE_FIELDS = {AttributeProto.FLOAT: "f", AttributeProto.INT: "i", AttributeProto.GRAPH: "g",
                     AttributeProto.SPARSE_TENSOR: "sparse_tensor", AttributeProto.TYPE_PROTO: "tp",
                     AttributeProto.FLOATS: "floats", AttributeProto.INTS: "ints", AttributeProto.TENSORS: "tensors",
                     AttributeProto.GRAPHS: "graphs", AttributeProto.SPARSE_TENSORS: "sparse_tensors",
                     AttributeProto.TYPE_PROTOS: "type_protos"}
_SINGLE_VALUES = frozenset({AttributeProto.FLOAT, AttributeProto.INT, AttributeProto.GRAPH,
                            AttributeProto.SPARSE_TENSOR, AttributeProto.TYPE_PROTO})


def _array(tensor) -> np.ndarray:
    """A TensorProto's values as an array of its own (writable, like every
    array nnc makes)."""
    array = to_array(tensor)
    return array if array.flags.writeable else array.copy()


def _dense(sparse) -> np.ndarray:
    """A SparseTensorProto's values scattered into zeros of its dims; indices are
    [nnz] positions in the flattened tensor or [nnz, rank] coordinates."""
    values = to_array(sparse.values).reshape(-1)
    indices = to_array(sparse.indices).astype(np.int64) if sparse.HasField("indices") \
        else np.zeros(0, np.int64)
    dims = tuple(sparse.dims)
    size = check_elements(dims, f"sparse initializer {sparse.values.name!r}: dims", ModelError)
    if indices.ndim == 2 and indices.shape == (values.size, len(dims)) and \
            ((0 <= indices) & (indices < np.array(dims, np.int64))).all():
        indices = indices @ np.array([int(np.prod(dims[a + 1:], dtype=np.int64)) for a in range(len(dims))], np.int64)
    if indices.shape != (values.size,) or (indices.size and (indices.min() < 0 or indices.max() >= size)):
        raise ModelError(f"sparse initializer {sparse.values.name!r}: indices do not fit its {values.size} values "
                         f"and dims {list(dims)}")
    dense = np.zeros(size, values.dtype)
    dense[indices] = values
    return dense.reshape(dims)
