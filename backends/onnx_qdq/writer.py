"""A graph in QDQ form -> an ONNX model (opset OPSET, IR version IR_VERSION).

Each IR op has one writer, registered with `@writes`, that appends the ONNX
nodes computing it (ops_*.py). The writer keeps every IR tensor's name and each
IR node's name for its main ONNX node; tensors and nodes it adds (shape
initializers, the output of a Conv before its fused Relu) get fresh names that
no IR tensor has. Constants become initializers with their own element type
(int8 weights, int32 biases, f32 scales), so a pruned zero stays a stored 0.
Every tensor of the graph gets a value_info with its type and shape, so Netron
shows them and `onnx.checker.check_model(full_check=True)` proves them.

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
from onnx import helper, numpy_helper

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


class OnnxBuilder:
    """The ONNX nodes and initializers of one graph under construction."""

    def __init__(self, graph: Graph):
        self.graph = graph
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._taken = set(graph.tensors)
        self._node_names: set[str] = set()

    def fresh(self, base: str) -> str:
        """A tensor name no IR tensor and no earlier fresh name has."""
        name, index = base, 1
        while name in self._taken:
            name, index = f"{base}_{index}", index + 1
        self._taken.add(name)
        return name

    def constant(self, base: str, array: np.ndarray) -> str:
        """A new initializer holding `array`; returns its name."""
        name = self.fresh(base)
        self.initializers.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def ints(self, base: str, values) -> str:
        """A new int64 vector initializer (shapes, pads, axes)."""
        return self.constant(base, np.asarray(list(values), np.int64))

    def scalar(self, base: str, value: float, like: str) -> str:
        """A new scalar initializer of tensor `like`'s element type."""
        return self.constant(base, np.asarray(value, dtypes.to_numpy(self.graph.tensor(like).dtype)))

    def add(self, op_type: str, inputs: list[str], outputs: list[str], name: str, **attributes) -> None:
        """Append one ONNX node; trailing omitted inputs ("") are dropped and
        attributes that are None are left out."""
        while inputs and not inputs[-1]:
            inputs = inputs[:-1]
        unique, index = name, 1
        while unique in self._node_names:
            unique, index = f"{name}_{index}", index + 1
        self._node_names.add(unique)
        given = {key: value for key, value in attributes.items() if value is not None}
        self.nodes.append(helper.make_node(op_type, list(inputs), list(outputs), name=unique, **given))


def to_onnx(graph: Graph) -> onnx.ModelProto:
    """The ONNX model computing `graph` (see the module docstring)."""
    return qdq_model(graph)[0]


def qdq_model(graph: Graph) -> tuple[onnx.ModelProto, dict[str, bool]]:
    """The ONNX model computing `graph`, and per average pool whose means can be
    half-way whether it was written to round them as nnc does (exact_pool.py)."""
    live = graph.copy()
    live.remove_dead()
    _refuse_unwritable(live)
    pools = exact_average_pools(live)
    return build_model(live, WRITERS, "written by nnc --target onnx: QDQ form of the quantized model"), pools


def build_model(live: Graph, writers: dict[str, Writer], doc: str) -> onnx.ModelProto:
    """The ONNX model of `live` (no dead nodes, a writer in `writers` for every
    op): each node written by its writer, the graph's constants as initializers,
    a value_info for every tensor."""
    builder = OnnxBuilder(live)
    for node in live.nodes():
        writers[node.op](builder, node)
    read = {name for node in builder.nodes for name in node.input} | set(live.outputs)  # a constant output too
    constants = [t for t in live.tensors.values() if t.is_constant and t.name in read]
    initializers = [numpy_helper.from_array(t.data, t.name) for t in constants] + builder.initializers
    inner = [t for t in live.tensors if t not in live.inputs and t not in live.outputs
             and not live.tensors[t].is_constant]
    onnx_graph = helper.make_graph(builder.nodes, live.name, [_value_info(live, t) for t in live.inputs],
                                   [_value_info(live, t) for t in live.outputs], initializers,
                                   value_info=[_value_info(live, t) for t in inner])
    model = helper.make_model(onnx_graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="nnc", producer_version=__version__, ir_version=IR_VERSION)
    model.doc_string = doc
    return model


def _value_info(graph: Graph, name: str) -> onnx.ValueInfoProto:
    tensor = graph.tensor(name)
    return helper.make_tensor_value_info(name, dtypes.to_onnx(tensor.dtype), list(tensor.shape))


# Ops nnc quantizes whose integer rule has no QDQ form.
NO_QDQ_FORM = {op: "its integer rule, with fixed-point gates and an int16 cell state, has no QDQ ONNX form; "
                   "targets c and az-sim compile it, and --onnx-form integer writes it"
               for op in ("LSTM", "GRU", "RNN")}


def _refuse_unwritable(graph: Graph) -> None:
    missing = [n for n in graph.nodes() if n.op not in WRITERS]
    if not missing:
        return
    listed = ", ".join(f"{n.op} node {n.name!r}" for n in missing)
    if any(_is_integer_op(n.op) for n in missing):
        raise UnsupportedError(f"no ONNX writer for {listed}: the graph was lowered to integer ops, and the ONNX "
                               "target writes it before lowering (the quantize pass with lower=false)")
    reasons = sorted({NO_QDQ_FORM[n.op] for n in missing if n.op in NO_QDQ_FORM})
    why = "; ".join(reasons) if reasons else f"written ops: {', '.join(sorted(WRITERS))}"
    raise UnsupportedError(f"no ONNX writer for {listed} ({why})")


def _is_integer_op(op: str) -> bool:
    """nnc's integer ops (QConv, QAdd, Requantize, ...), which only lowering makes."""
    return op == "Requantize" or (len(op) > 1 and op[0] == "Q" and op[1].isupper())


def refuse(node: Node, why: str) -> UnsupportedError:
    """The error for a node whose attributes standard ONNX at OPSET cannot express."""
    return UnsupportedError(f"{node.op} node {node.name!r}: {why} has no ONNX opset {OPSET} form")
