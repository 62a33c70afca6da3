"""ONNX front end: file -> checked, shape-inferred, cleaned ONNX -> IR graph.

Steps, each failing with one clear NncError:
1. read the file (missing, truncated or malformed -> ModelError) and its external
   data, validated field by field, from inside the model's folder only
   (external_data.py);
2. structural checks (model_check.py: UTF-8 strings, data types, tensor payload
   sizes, graph outputs), then onnx.checker and the opset range check (11 ..
   newest the installed onnx knows);
3. bind every symbolic or unknown input dimension (to 1, or to the user's
   `input_shapes`), then ONNX shape inference with data propagation, and fold
   every shape computation into constants (shape_folding.py); every value shape
   known after each inference passes the size limits (size_check.py);
4. the nodes a graph output depends on, in file order (topological: the checker
   verified it), with Python attribute values (onnx_graph.py);
5. refuse the model if any op lacks a lowering, listing every such node at once;
6. lower node by node through the `@lowers` table; output types come from nnc's
   own shape inference (`OpDef.infer`), must pass the size limits and are checked
   against ONNX's; a float constant a node reads must hold finite numbers of
   moderate magnitude (model_check.py).
The result holds no ONNX objects and no optimization has been applied.
"""

from __future__ import annotations

import math

from pathlib import Path

import numpy as np
from google.protobuf.message import DecodeError

from .. import dtypes
from ..errors import ModelError, NncError, ShapeError, UnsupportedError, not_a_file
from ..ir import Graph, Node, Tensor, TensorType
from ..limits import check_elements
from ..ops import get_op, lowering
from ..ops.registry import Lowered, OnnxNode
from ..ops.softmax import additive_mask, scale_factor
from . import onnx_proto
from .external_data import load_external_data
from .model_check import check_model, refuse_bad_weights
from .onnx_graph import GraphNode, OnnxGraph, ValueType, read_graph
from .onnx_proto import ModelProto
from .shape_folding import fold_shapes
from .size_check import check_values, checked_shapes, propagation_affordable

MIN_OPSET = 11
# The first bytes of an az-sim blob (backends/azsim/blob.py MAGIC), named when one is given as a model.
AZ_SIM_BLOB = b"\x89AZB\r\n\x1a\n"
MAX_OPSET = onnx_proto.MAX_OPSET
# An unsupported-op error names at most this many nodes of each op.
LISTED_NODES = 5


def load(path: str | Path, input_shapes: dict[str, tuple[int, ...]] | None = None,
         resize: frozenset[str] = frozenset()) -> Graph:
    """Lower the ONNX model at `path` into an IR graph (see module docstring).
    Inputs named in `resize` may take shapes other than the model's fixed dims
    (a streaming chunk of a fixed-length sequence)."""
    model = read_model(path)
    return lower_model(model, input_shapes or {}, name=Path(path).stem, resize=resize)


def read_model(path: str | Path) -> ModelProto:
    path = Path(path)
    problem = not_a_file(path, "model file")
    if problem:
        raise ModelError(f"{path}: {problem}")
    try:
        data = path.read_bytes()
        model = onnx_proto.parse_model(data)
    except OSError as exc:
        raise ModelError(f"{path}: cannot read the model file: {exc.strerror or exc}") from None
    except (DecodeError, ValueError, RuntimeError) as exc:
        if data.startswith(AZ_SIM_BLOB):
            raise ModelError(f"{path}: an az-sim blob, not a model: nnc takes ONNX models and text IR (.nnir); "
                             "`nnc run` runs a blob") from None
        raise ModelError(f"{path}: not a valid ONNX model (truncated or corrupt?): {_first_line(exc)}") from None
    if not model.graph.node and not model.graph.output:
        raise ModelError(f"{path}: not a valid ONNX model (no graph)")
    load_external_data(model, path.parent)
    return model


def symbolic_axes(path: str | Path) -> dict[str, dict[int, str]]:
    """The axes each graph input of the ONNX model at `path` leaves without a
    size: {input: {axis: its dim_param, or ""}}."""
    graph = read_model(path).graph
    initializers = {t.name for t in graph.initializer}
    return {i.name: {a: d.dim_param for a, d in enumerate(i.type.tensor_type.shape.dim) if not d.HasField("dim_value")}
            for i in graph.input if i.name not in initializers}


def lower_model(model: ModelProto, input_shapes: dict[str, tuple[int, ...]],
                name: str | None = None, resize: frozenset[str] = frozenset()) -> Graph:
    """Lower an in-memory model (left unchanged); the graph is called `name`, else
    the ONNX graph's name."""
    model = _copy(model)
    check_model(model)
    opset = _check(model)
    _bind_input_shapes(model, input_shapes, resize)
    model = fold_shapes(_infer_shapes(check_values(model)), opset, _infer_shapes)
    graph = read_graph(model.graph)
    _refuse_unsupported(graph, opset)
    lowered = _lower(graph, opset, name or model.graph.name or "model")
    _give_cell_scales(model, lowered)
    return lowered


def _give_cell_scales(model: ModelProto, graph: Graph) -> None:
    """The LSTM cell scales nnc wrote into the model's metadata (a fine-tuned
    model's, backends/onnx_qdq/ops_recurrent.py), on the nodes they name; a
    name the graph lacks is ignored (another tool may have edited the model)."""
    given = {p.key: p.value for p in model.metadata_props if p.key.startswith("nnc.cell_scale.")}
    if not given:
        return
    from ..quantizer.recurrent_plan import CELL_SCALE_KEY, give_cell_scale

    lstms = {node.name: node for node in graph.nodes() if node.op == "LSTM"}
    for key, value in given.items():
        node = lstms.get(key[len(CELL_SCALE_KEY):])
        if node is None:
            continue
        try:
            scale = float(value)
        except ValueError:
            scale = float("nan")
        if not (scale > 0 and math.frexp(scale)[0] == 0.5 and 2.0 ** -15 <= scale <= 1.0):
            raise ModelError(f"model metadata {key}: {value!r} is not a cell scale (a power of two in [2^-15, 1])")
        give_cell_scale(graph, node, scale)


def _copy(model: ModelProto) -> ModelProto:
    copied = ModelProto()
    copied.CopyFrom(model)
    return copied


def _infer_shapes(model: ModelProto) -> ModelProto:
    """The model with ONNX's inferred shapes, each within the size limits:
    inferred without data propagation first, whose memory grows with the 1-D
    values (size_check.py), then with it when that is affordable and some
    value is left without a static shape (data propagation only completes
    shapes; nnc's own inference checks every shape against ONNX's later)."""
    plain = _onnx_inference(model, data_prop=False)
    shapes = checked_shapes(plain)
    if all(name in shapes for node in plain.graph.node for name in node.output if name) \
            or not propagation_affordable(shapes):
        return plain
    return check_values(_onnx_inference(model, data_prop=True))


def _onnx_inference(model: ModelProto, data_prop: bool) -> ModelProto:
    try:
        return onnx_proto.infer_shapes(model, strict_mode=True, data_prop=data_prop)
    except Exception as exc:  # onnx raises several unrelated types here
        raise ShapeError(f"shape inference failed: {_first_line(exc)}") from None


# -- reading and checking --------------------------------------------------------
def _check(model: ModelProto) -> int:
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is None:
        raise ModelError("the model imports no ai.onnx opset")
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise UnsupportedError(f"opset {opset} is not supported (nnc supports {MIN_OPSET} to {MAX_OPSET})")
    try:
        onnx_proto.check_model(model)
    except (onnx_proto.ValidationError, ValueError) as exc:
        raise ModelError(f"the model fails the ONNX checker: {_first_line(exc)}") from None
    return opset


def _bind_input_shapes(model: ModelProto, input_shapes: dict[str, tuple[int, ...]],
                       resize: frozenset[str]) -> None:
    """Give every graph input a fully static shape; clear the outputs' dims so
    that shape inference recomputes them from the bound inputs. Inputs in
    `resize` may change fixed dims; then every recorded intermediate shape is
    dropped too, since it may no longer hold."""
    initializers = {t.name for t in model.graph.initializer}
    inputs = {i.name: i for i in model.graph.input if i.name not in initializers}
    unknown = set(input_shapes) - set(inputs)
    if unknown:
        said = f"names unknown input(s) {sorted(unknown)}; the model's inputs are {sorted(inputs)}"
        raise ShapeError(f"input_shapes {said}", cli=f"--input-shape {said}")
    for name, value in inputs.items():
        dims = value.type.tensor_type.shape.dim
        wanted = input_shapes.get(name)
        if wanted is not None and len(wanted) != len(dims):
            raise ShapeError(f"input {name!r} has rank {len(dims)}, but its shape was given as {list(wanted)}")
        if not value.type.HasField("tensor_type"):
            raise UnsupportedError(f"input {name!r} is not a tensor (sequences, maps and optionals are not supported)")
        for i, dim in enumerate(dims):
            fixed = dim.dim_value if dim.HasField("dim_value") else None
            size = wanted[i] if wanted is not None else (1 if fixed is None else fixed)
            if fixed is not None and size != fixed and name not in resize:
                raise ShapeError(f"input {name!r}: dimension {i} is {fixed} in the model, not {size}")
            if size < 1:
                raise ShapeError(f"input {name!r}: dimension {i} must be positive, got {size}")
            dim.Clear()
            dim.dim_value = int(size)
    for output in model.graph.output:
        for dim in output.type.tensor_type.shape.dim:
            if resize or not dim.HasField("dim_value"):
                dim.Clear()
    if resize:
        del model.graph.value_info[:]


def _refuse_unsupported(graph: OnnxGraph, opset: int) -> None:
    missing: dict[str, list[str]] = {}
    for n in graph.nodes:
        domain = n.domain or ""
        if domain not in ("", "ai.onnx") or (lowering(n.op) is None and n.op != "Constant"):
            missing.setdefault(f"{domain}::{n.op}" if domain else n.op, []).append(repr(n.name))
    if missing:
        listing = "; ".join(f"{op} ({_some_nodes(names)})" for op, names in sorted(missing.items()))
        raise UnsupportedError(f"unsupported op(s) in this opset-{opset} model: {listing}")


def _some_nodes(names: list[str]) -> str:
    """The first LISTED_NODES of `names` and how many more (an unrolled graph
    can hold hundreds of one op)."""
    if len(names) == 1:
        return f"node {names[0]}"
    shown = ", ".join(names[:LISTED_NODES])
    more = f" and {len(names) - LISTED_NODES} more" if len(names) > LISTED_NODES else ""
    return f"{len(names)} nodes: {shown}{more}" if more else f"nodes {shown}"


# -- lowering --------------------------------------------------------------------
def _lower(src: OnnxGraph, opset: int, name: str) -> Graph:
    graph = Graph(name)
    constants = dict(src.constants)
    for constant, data in constants.items():
        graph.add_tensor(_constant_tensor(constant, data))
    for value in src.inputs:
        graph.add_tensor(Tensor(value, _dtype_of(value, src.types.get(value)), _input_shape(value, src.types.get(value))))
        graph.inputs.append(value)
    used = {i for n in src.nodes for i in n.inputs} | set(src.outputs)
    names: set[str] = set()
    masked = _softmax_masks(src, constants)
    for index, node in enumerate(src.nodes):
        node_name = _unique_node_name(node, index, names)
        if node.op == "Constant":
            _lower_constant_node(graph, node, node_name, constants)
            continue
        for value in node.inputs:
            if value in constants and (index, value) not in masked:
                refuse_bad_weights(value, constants[value], f"{node.op} node {node_name!r}")
        onnx_node = OnnxNode(
            name=node_name, op_type=node.op,
            inputs=list(node.inputs),
            outputs=[o if o and o in used else "" for o in node.outputs],
            attributes=node.attrs,
            opset=opset, constants=constants,
            input_types=[_type_of(graph, t) for t in node.inputs],
        )
        _add_lowered(graph, onnx_node, src.types)
    graph.outputs = list(src.outputs)
    missing = [o for o in graph.outputs if o not in graph.tensors]
    if missing:
        raise ModelError(f"graph output(s) {missing} are produced by no node")
    return graph


def _softmax_masks(src: OnnxGraph, constants: dict[str, np.ndarray]) -> set[tuple[int, str]]:
    """(index of an Add node, constant) pairs where the constant is an additive attention
    mask (nnc.ops.softmax.additive_mask: 0 and -inf or another fill) and the
    Add's output feeds one Softmax only, directly or through one Mul/Div by a
    positive one-value constant (attention's 1/√d after the mask): the -inf
    there is no weight, and canonicalize's fuse_softmax_scale and
    fuse_softmax_mask turn it into the softmax's scale and keep mask."""
    readers: dict[str, list] = {}
    for n in src.nodes:
        for value in n.inputs:
            readers.setdefault(value, []).append(n)

    def only_reader(value: str):
        found = readers.get(value, [])
        return found[0] if len(found) == 1 and value not in src.outputs else None

    def feeds_softmax(value: str, mask: np.ndarray) -> bool:
        """The factor, if any, one fuse_softmax_scale folds (scale_factor, adding
        no axes: no more than the mask's, a bound of the sum's rank)."""
        reader = only_reader(value)
        if reader is not None and reader.op in ("Mul", "Div") and reader.inputs[0] == value:
            factor = constants.get(reader.inputs[1])
            if factor is not None and factor.ndim <= mask.ndim and \
                    scale_factor(factor, divides=reader.op == "Div") is not None:
                reader = only_reader(reader.outputs[0])
        return reader is not None and reader.op == "Softmax"

    return {(index, value) for index, n in enumerate(src.nodes) if n.op == "Add" and len(n.outputs) == 1
            for value in n.inputs if value in constants and additive_mask(constants[value]) is not None
            and feeds_softmax(n.outputs[0], constants[value])}


def _add_lowered(graph: Graph, n: OnnxNode, onnx_types: dict[str, ValueType]) -> None:
    lowered = lowering(n.op_type)(n) or Lowered("Identity", inputs=n.inputs[:1])  # None: forwards its input
    inputs = list(n.inputs if lowered.inputs is None else lowered.inputs)
    types = [_type_of(graph, t) for t in inputs]
    try:
        out_types = get_op(lowered.op).infer(lowered.attrs, types)
    except NncError as exc:
        raise type(exc)(f"{n.op_type} node {n.name!r}: {exc}") from None
    outputs = []
    for out_type, out_name in zip(out_types, n.outputs):
        if not out_name:
            outputs.append("")
            continue
        check_elements(out_type.shape, f"{n.op_type} node {n.name!r}: output {out_name!r}")
        _check_against_onnx(n, out_name, onnx_types.get(out_name), out_type)
        graph.add_tensor(Tensor(out_name, out_type.dtype, out_type.shape))
        outputs.append(out_name)
    while outputs and not outputs[-1]:
        outputs.pop()
    graph.add_node(Node(n.name, lowered.op, inputs, outputs, lowered.attrs))


def _check_against_onnx(n: OnnxNode, name: str, onnx_type: ValueType | None, ours: TensorType) -> None:
    shape = onnx_type.shape if onnx_type is not None else None
    if shape is None or not all(isinstance(d, int) for d in shape):
        return
    if tuple(shape) != ours.shape:
        raise ShapeError(f"{n.op_type} node {n.name!r}: nnc infers shape {list(ours.shape)} "
                         f"for {name!r}, ONNX infers {list(shape)}")


def _lower_constant_node(graph: Graph, node: GraphNode, name: str, constants: dict) -> None:
    attrs = node.attrs
    if "value" in attrs:
        data = attrs["value"]
    elif "value_float" in attrs or "value_int" in attrs:
        data = np.asarray(attrs.get("value_float", attrs.get("value_int")),
                          dtype=np.float32 if "value_float" in attrs else np.int64)
    elif "value_floats" in attrs or "value_ints" in attrs:
        data = np.asarray(attrs.get("value_floats", attrs.get("value_ints")),
                          dtype=np.float32 if "value_floats" in attrs else np.int64)
    else:
        raise UnsupportedError(f"Constant node {name!r}: only tensor, float and int values are supported")
    out = node.outputs[0]
    constants[out] = data
    graph.add_tensor(_constant_tensor(out, data))


def _constant_tensor(name: str, data: np.ndarray) -> Tensor:
    return Tensor(name, dtypes.from_numpy(data.dtype), data.shape, data=data)


def _dtype_of(name: str, value: ValueType | None) -> str:
    if value is None or not value.elem_type:
        raise ShapeError(f"tensor {name!r} has no known element type")
    return dtypes.from_onnx(value.elem_type)


def _input_shape(name: str, value: ValueType | None) -> tuple[int, ...]:
    if value is None or value.shape is None:
        raise ShapeError(f"input {name!r} declares no shape")
    return tuple(value.shape)


def _type_of(graph: Graph, name: str) -> TensorType | None:
    if not name:
        return None
    tensor = graph.tensor(name)
    return TensorType(tensor.dtype, tensor.shape)


def _unique_node_name(node: GraphNode, index: int, taken: set[str]) -> str:
    name = node.name or f"{node.op}_{index}"
    while name in taken:
        name = f"{name}_{index}"
    taken.add(name)
    return name


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
