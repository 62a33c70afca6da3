"""A graph in QDQ form -> an ONNX model (opset OPSET, IR version IR_VERSION).

Each IR op has one writer, registered with `@writes`, that appends the ONNX
nodes computing it (ops_*.py). The writer keeps every IR tensor's name and each
IR node's name for its main ONNX node; tensors and nodes it adds (shape
initializers, the output of a Conv before its fused Relu) get fresh names that
no IR tensor has. Constants become initializers with their own element type
(int8 weights, int32 biases, f32 scales), so a pruned zero stays a stored 0.
Every tensor a node writes gets a value_info with its type and shape, so Netron
shows them and `onnx.checker.check_model(full_check=True)` proves them: the
builder types each output as it adds the node (an IR tensor by the IR, one of
its own by ONNX's shape inference of that node), so no writer can leave one out.

Average-pool groups whose window means can fall exactly half-way between two
steps are written so that onnxruntime rounds them as nnc does
(exact_pool.py). Only live nodes are written (the quantize pass leaves the float weights it
replaced behind). A graph holding ops without a writer is refused with one
UnsupportedError naming every such node.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx
from onnx import helper, numpy_helper, shape_inference

from nnc import __version__, dtypes
from nnc.errors import UnsupportedError
from nnc.ir import Graph, Node

from .exact_pool import exact_average_pools

OPSET = 17
IR_VERSION = 8  # the oldest IR that holds opset 17: onnxruntime 1.17 and up load it

Writer = Callable[["OnnxBuilder", Node], None]
WRITERS: dict[str, Writer] = {}


def registrar(table: dict[str, Writer]):
    """A decorator factory: `@registrar(table)(*ops)` enters the function as `table`'s writer of `ops`."""

    def register(*ops: str):
        def decorate(fn: Writer) -> Writer:
            for op in ops:
                table[op] = fn
            return fn
        return decorate

    return register


writes = registrar(WRITERS)  # the QDQ form's writers


def _first_free(base: str, taken: set[str], next_suffix: dict[str, int]) -> str:
    """The first of `base`, `base_1`, `base_2`, ... not in `taken` (then taken),
    searched from where the last search for `base` ended."""
    suffix = next_suffix.get(base, 0)
    name = f"{base}_{suffix}" if suffix else base
    while name in taken:
        suffix += 1
        name = f"{base}_{suffix}"
    next_suffix[base] = suffix + 1
    taken.add(name)
    return name


class OnnxBuilder:
    """The ONNX nodes and initializers of one graph under construction."""

    def __init__(self, graph: Graph):
        self.graph = graph
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.types: dict[str, onnx.TypeProto] = {}  # every tensor a node writes: its element type and shape
        self._data: dict[str, onnx.TensorProto] = {}  # the initializers above, by name
        self._taken = set(graph.tensors)
        self._node_names: set[str] = set()
        # per base name, the suffix its next search starts from: every lower one is
        # taken, and taken names stay taken (an unrolled recurrent island asks for
        # one base thousands of times; searching from _1 each time was quadratic)
        self._next_tensor: dict[str, int] = {}
        self._next_node: dict[str, int] = {}
        self.metadata: dict[str, str] = {}  # the model's metadata_props (ops_recurrent.py's cell scales)

    def fresh(self, base: str) -> str:
        """A tensor name no IR tensor and no earlier fresh name has: `base`, else
        the first free `base_1`, `base_2`, ..."""
        return _first_free(base, self._taken, self._next_tensor)

    def constant(self, base: str, array: np.ndarray) -> str:
        """A new initializer holding `array`; returns its name."""
        name = self.fresh(base)
        self._data[name] = numpy_helper.from_array(np.asarray(array), name)
        self.initializers.append(self._data[name])
        return name

    def ints(self, base: str, values) -> str:
        """A new int64 vector initializer (shapes, pads, axes)."""
        return self.constant(base, np.asarray(list(values), np.int64))

    def scalar(self, base: str, value: float, like: str) -> str:
        """A new scalar initializer of tensor `like`'s element type."""
        return self.constant(base, np.asarray(value, dtypes.to_numpy(self.graph.tensor(like).dtype)))

    def add(self, op_type: str, inputs: list[str], outputs: list[str], name: str, **attributes) -> None:
        """Append one ONNX node and type its outputs (`types`); trailing omitted
        inputs ("") are dropped and attributes that are None are left out."""
        while inputs and not inputs[-1]:
            inputs = inputs[:-1]
        unique = _first_free(name, self._node_names, self._next_node)
        given = {key: value for key, value in attributes.items() if value is not None}
        node = helper.make_node(op_type, list(inputs), list(outputs), name=unique, **given)
        self.types.update(self._output_types(node))
        self.nodes.append(node)

    def _output_types(self, node: onnx.NodeProto) -> dict[str, onnx.TypeProto]:
        """The type and shape of each output of `node`: an IR tensor's from the
        IR; a tensor of the builder's own (a Conv's output before its Relu, a
        step of the Gelu chain, the integer form's int64 terms) inferred by
        ONNX from the node and its inputs, which must give a static shape."""
        outputs = [name for name in node.output if name]  # "" is an optional output left out
        declared = {name: _tensor_type(self.graph, name) for name in outputs if name in self.graph.tensors}
        if len(declared) == len(outputs):
            return declared
        schema = onnx.defs.get_schema(node.op_type, OPSET)
        known = [name for name in node.input if name]
        values = {name: self._constant(name) for name in known}
        try:
            inferred = shape_inference.infer_node_outputs(
                schema, node, {name: self._type(name) for name in known},
                {name: value for name, value in values.items() if value is not None},
                opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION)
        except shape_inference.InferenceError as exc:
            raise RuntimeError(f"the ONNX writer wrote a node ONNX cannot type, {node.op_type} {node.name!r}: "
                               f"{exc}") from None
        for name in outputs:
            if name not in declared and not _is_static(inferred.get(name)):
                raise RuntimeError(f"the ONNX writer cannot type tensor {name!r} of {node.op_type} node "
                                   f"{node.name!r}: ONNX infers no static shape for it")
        return {name: declared.get(name) or inferred[name] for name in outputs}

    def _type(self, name: str) -> onnx.TypeProto:
        """The type of an input: a tensor some node wrote, an initializer, or an IR tensor."""
        if name in self.types:
            return self.types[name]
        if name in self._data:
            return helper.make_tensor_type_proto(self._data[name].data_type, list(self._data[name].dims))
        return _tensor_type(self.graph, name)

    def _constant(self, name: str) -> onnx.TensorProto | None:
        """An input's value when it is a constant (shapes, axes and sizes that inference reads)."""
        if name in self._data:
            return self._data[name]
        tensor = self.graph.tensors.get(name)
        return numpy_helper.from_array(tensor.data, name) if tensor is not None and tensor.is_constant else None


def to_onnx(graph: Graph) -> onnx.ModelProto:
    """The ONNX model computing `graph` (see the module docstring)."""
    return qdq_model(graph)[0]


def qdq_model(graph: Graph, islands: dict[str, Writer] | None = None) -> tuple[onnx.ModelProto, dict[str, bool]]:
    """The ONNX model computing `graph`, and per average pool whose means can be
    half-way whether it was written to round them as nnc does (exact_pool.py).
    `islands`: writers of integer ops the graph holds (recurrent layers, see
    integer_writer.recurrent_islands)."""
    live = graph.copy()
    live.remove_dead()
    writers = WRITERS | (islands or {})
    _refuse_unwritable(live, writers)
    pools = exact_average_pools(live)
    return build_model(live, writers, "written by nnc --target onnx: QDQ form of the quantized model"), pools


def build_model(live: Graph, writers: dict[str, Writer], doc: str) -> onnx.ModelProto:
    """The ONNX model of `live` (no dead nodes, a writer in `writers` for every
    op): each node written by its writer, the graph's constants as initializers,
    a value_info for every tensor a node writes but the graph's outputs."""
    builder = OnnxBuilder(live)
    for node in live.nodes():
        writers[node.op](builder, node)
    read = {name for node in builder.nodes for name in node.input} | set(live.outputs)  # a constant output too
    constants = [t for t in live.tensors.values() if t.is_constant and t.name in read]
    initializers = [numpy_helper.from_array(t.data, t.name) for t in constants] + builder.initializers
    inner = [helper.make_value_info(name, kind) for name, kind in builder.types.items() if name not in live.outputs]
    onnx_graph = helper.make_graph(builder.nodes, live.name, [_value_info(live, t) for t in live.inputs],
                                   [_value_info(live, t) for t in live.outputs], initializers, value_info=inner)
    model = helper.make_model(onnx_graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="nnc", producer_version=__version__, ir_version=IR_VERSION)
    model.doc_string = doc
    for key, value in sorted(builder.metadata.items()):
        model.metadata_props.add(key=key, value=value)
    return model


def _value_info(graph: Graph, name: str) -> onnx.ValueInfoProto:
    return helper.make_value_info(name, _tensor_type(graph, name))


def _tensor_type(graph: Graph, name: str) -> onnx.TypeProto:
    tensor = graph.tensor(name)
    return helper.make_tensor_type_proto(dtypes.to_onnx(tensor.dtype), list(tensor.shape))


def _is_static(kind: onnx.TypeProto | None) -> bool:
    """Whether `kind` is a tensor type with an element type and every dimension known."""
    if kind is None or not kind.HasField("tensor_type"):
        return False
    tensor = kind.tensor_type
    return (tensor.elem_type != onnx.TensorProto.UNDEFINED and tensor.HasField("shape")
            and all(dim.HasField("dim_value") for dim in tensor.shape.dim))


# Ops nnc quantizes whose integer rule has no QDQ form.
def _refuse_unwritable(graph: Graph, writers: dict[str, Writer]) -> None:
    missing = [n for n in graph.nodes() if n.op not in writers]
    if not missing:
        return
    listed = ", ".join(f"{n.op} node {n.name!r}" for n in missing)
    if any(_is_integer_op(n.op) for n in missing):
        raise UnsupportedError(f"no ONNX writer for {listed}: the graph was lowered to integer ops, and the ONNX "
                               "target writes it before lowering (the quantize pass with lower=false)")
    raise UnsupportedError(f"no ONNX writer for {listed} (written ops: {', '.join(sorted(writers))})")


def _is_integer_op(op: str) -> bool:
    """nnc's integer ops (QConv, QAdd, Requantize, ...), which only lowering makes."""
    return op == "Requantize" or (len(op) > 1 and op[0] == "Q" and op[1].isupper())


def refuse(node: Node, why: str) -> UnsupportedError:
    """The error for a node whose attributes standard ONNX at OPSET cannot express."""
    return UnsupportedError(f"{node.op} node {node.name!r}: {why} has no ONNX opset {OPSET} form")
