"""Structural checks of an ONNX model, before nnc or onnx uses any of it.

`check_model(model)` is the front end's first step on a parsed ModelProto (before
the ONNX checker, which assumes some of this). It walks every message once and
refuses the model with one line naming the field, node or tensor when:
- a string field (a name, op type, domain, ...) or a string attribute is not
  valid UTF-8 (protobuf hands such a field over as bytes);
- the graph has no output;
- a tensor (initializer, Constant value, sparse values; subgraphs included) has
  a data type that is no ONNX type or none at all, negative dims, a shape past
  compiler/limits.py's limits, data still in an external file, or a payload
  whose size is not exactly what its dims and type need (raw_data bytes, or the
  count of the typed field in use);
- a graph input, output or value_info declares an element type that is no ONNX type;
- a float attribute of a node is NaN or ±inf (Clip's min/max may be ±inf).

`refuse_bad_weights` checks the weights a lowered node reads (docs/limits.md).
Every check is linear in the size of the model and allocates nothing sizable.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import ModelError, UnsupportedError
from ..limits import MAX_WEIGHT_MAGNITUDE, check_elements
from .onnx_proto import AttributeProto, TensorProto

_T = TensorProto
# Bits per element of each ONNX data type whose storage nnc can size (those the
# installed onnx knows). Types of fewer than 8 bits are packed, in raw_data as in
# int32_data (one entry per byte).
_BITS_BY_NAME = {"FLOAT": 32, "UINT8": 8, "INT8": 8, "UINT16": 16, "INT16": 16, "INT32": 32, "INT64": 64,
                 "BOOL": 8, "FLOAT16": 16, "DOUBLE": 64, "UINT32": 32, "UINT64": 64, "COMPLEX64": 64,
                 "COMPLEX128": 128, "BFLOAT16": 16, "FLOAT8E4M3FN": 8, "FLOAT8E4M3FNUZ": 8, "FLOAT8E5M2": 8,
                 "FLOAT8E5M2FNUZ": 8, "FLOAT8E8M0": 8, "UINT4": 4, "INT4": 4, "FLOAT4E2M1": 4, "UINT2": 2, "INT2": 2}
_BITS = {_T.DataType.Value(name): bits for name, bits in _BITS_BY_NAME.items() if name in _T.DataType.keys()}
# The typed field that holds each type's values when raw_data is not used.
_TYPED_FIELD = {_T.FLOAT: "float_data", _T.COMPLEX64: "float_data", _T.DOUBLE: "double_data",
                _T.COMPLEX128: "double_data", _T.INT64: "int64_data", _T.UINT32: "uint64_data",
                _T.UINT64: "uint64_data", _T.STRING: "string_data"}
_ONNX_TYPES = frozenset(_T.DataType.values())
_NAMED_CHILDREN = {"node", "initializer", "input", "output", "value_info", "attribute", "sparse_initializer"}


def check_model(model) -> None:
    """Refuse `model` (a ModelProto) with a ModelError or UnsupportedError naming
    the first field that breaks a rule of the module docstring."""
    for path, message in _walk(model):
        kind = message.DESCRIPTOR.full_name
        if kind == "onnx.TensorProto":
            _check_tensor(message, _Described(path))
        elif kind == "onnx.AttributeProto" and message.type in (AttributeProto.STRING, AttributeProto.STRINGS):
            _check_attribute_text(message, _Described(path))
    graph = model.graph
    if not graph.output:
        raise ModelError("the graph has no outputs; a model must name at least one graph output")
    for node in graph.node:
        _check_float_attributes(node)
    for kind, values in (("graph input", graph.input), ("graph output", graph.output), ("value", graph.value_info)):
        for value in values:
            code = value.type.tensor_type.elem_type
            if value.type.HasField("tensor_type") and code not in _ONNX_TYPES:
                raise ModelError(f"{kind} {value.name!r} declares element type {code}, which is not an ONNX "
                                 "data type")


def tensor_bytes(tensor, where: str) -> int:
    """Bytes of raw data that `tensor` needs for its dims and data type, once
    `check_elements` accepts its dims; ModelError/UnsupportedError otherwise."""
    count = check_elements(tensor.dims, f"{where}: dims", ModelError)
    return math.ceil(count * _bits(tensor, where) / 8)


def refuse_bad_weights(name: str, data: np.ndarray, reader: str) -> None:
    """ModelError naming float constant `name`, the node reading it and the first
    index holding NaN, or, in a tensor of more than one element, ±inf or a value
    past ±MAX_WEIGHT_MAGNITUDE (a lone ±inf or huge value is a bound or a fill
    value, such as Clip's max or a mask's fill)."""
    if data.dtype.kind not in "fc" or data.size == 0:
        return
    bad = np.isnan(data) if data.size == 1 else ~(np.abs(data) <= MAX_WEIGHT_MAGNITUDE)
    if bad.any():
        index = np.unravel_index(int(np.argmax(bad.reshape(-1))), data.shape)
        where = f" at index {list(map(int, index))}" if data.ndim else ""
        raise ModelError(f"constant {name!r} (read by {reader}) holds {data[index]:g}{where}; weights must be "
                         f"finite numbers within ±{MAX_WEIGHT_MAGNITUDE:g} (docs/limits.md)")


# -- the walk ---------------------------------------------------------------------
# A path is a tuple of steps (field name, index or None, message), formatted by
# `_describe` only when a check fails.
def _walk(message, path: tuple = ()):
    """(path, message) for `message` and every message inside it, depth first
    (a message before its children, fields in order), each after its own string
    fields are checked. One explicit stack: no generator per level to pass
    every deeper message through."""
    stack = [(path, message)]
    while stack:
        path, message = stack.pop()
        children = []
        for field, value in message.ListFields():
            if field.type == field.TYPE_STRING:
                _check_text(value if _repeated(field) else [value], path, field.name)
            elif field.type == field.TYPE_MESSAGE:
                items = enumerate(value) if _repeated(field) else [(None, value)]
                children += [(path + ((field.name, i, item),), item) for i, item in items]
        yield path, message
        stack += reversed(children)


def _repeated(field) -> bool:
    """Whether a protobuf field is repeated (`is_repeated` replaced `label` in protobuf 6)."""
    is_repeated = getattr(field, "is_repeated", None)
    return field.label == field.LABEL_REPEATED if is_repeated is None else is_repeated


class _Described:
    """A message's place, formatted by `_describe` only when an error message
    names it (f"{where}: ...")."""

    __slots__ = ("path",)

    def __init__(self, path: tuple):
        self.path = path

    def __format__(self, spec: str) -> str:
        return format(_describe(self.path), spec)


def _describe(path: tuple) -> str:
    """Readable path: "node 'conv', attribute 'value'"; the main graph is implicit."""
    if [step[0] for step in path] == ["graph"]:
        return "the graph"
    labels = [_label(*step) for step in path if step[:2] != ("graph", None)]
    return ", ".join(labels) or "the model"


def _label(field: str, index: int | None, item) -> str:
    readable = isinstance(getattr(item, "name", None), str) and item.name
    if field == "node":
        return f"node {item.name!r}" if readable else f"node #{index} ({item.op_type})"
    if field in _NAMED_CHILDREN:
        return f"{field.replace('_', ' ')} {item.name!r}" if readable else f"{field.replace('_', ' ')} #{index}"
    return field if index is None else f"{field}[{index}]"


def _check_text(values, path: tuple, field: str) -> None:
    for value in values:
        if isinstance(value, bytes):
            raise ModelError(f"{_describe(path)}: field '{field}' is not valid UTF-8 ({_short(value)}); "
                             "ONNX strings must be UTF-8")


def _check_attribute_text(attribute, where: str | _Described) -> None:
    texts = [attribute.s] if attribute.type == AttributeProto.STRING else \
        list(attribute.strings) if attribute.type == AttributeProto.STRINGS else []
    for text in texts:
        try:
            text.decode("utf-8")
        except UnicodeDecodeError:
            raise ModelError(f"{where}: the value is not valid UTF-8 ({_short(text)}); "
                             "string attributes must be UTF-8") from None


def _check_float_attributes(node) -> None:
    """Float attributes are finite numbers; only Clip's min/max (before opset 11)
    may be ±inf, meaning no bound on that side."""
    for attribute in node.attribute:
        values = ([attribute.f] if attribute.type == AttributeProto.FLOAT else []) + list(attribute.floats)
        bad = [v for v in values if math.isnan(v) or (math.isinf(v) and node.op_type != "Clip")]
        if bad:
            label = f"{node.op_type} node {node.name!r}" if node.name else f"an unnamed {node.op_type} node"
            raise ModelError(f"{label}: attribute {attribute.name!r} holds {bad[0]}; float attributes must be "
                             "finite numbers")


def _short(raw: bytes) -> str:
    return repr(raw[:32]) + ("..." if len(raw) > 32 else "")


# -- tensors ----------------------------------------------------------------------
def _check_tensor(tensor, where: str | _Described) -> None:
    if tensor.data_location == TensorProto.EXTERNAL:
        raise ModelError(f"{where}: its data is in an external file that nnc did not read (nnc reads "
                         "the external data of initializers when it loads a model from its file)")
    if tensor.HasField("segment"):
        raise UnsupportedError(f"{where}: segmented tensors are not supported")
    count = check_elements(tensor.dims, lambda: f"{where}: dims", ModelError)
    if tensor.data_type == _T.STRING:
        _check_count(len(tensor.string_data), count, tensor, where, "string_data")
        return
    bits = _bits(tensor, where)
    if tensor.HasField("raw_data"):
        need = math.ceil(count * bits / 8)
        if len(tensor.raw_data) != need:
            raise ModelError(f"{where}: raw_data holds {len(tensor.raw_data)} bytes, but dims "
                             f"{list(tensor.dims)} of {_type_name(tensor.data_type)} need exactly {need}")
        return
    field = _TYPED_FIELD.get(tensor.data_type, "int32_data")
    per_element = 2 if tensor.data_type in (_T.COMPLEX64, _T.COMPLEX128) else 1
    need = count * per_element if bits >= 8 else math.ceil(count * bits / 8)
    _check_count(len(getattr(tensor, field)), need, tensor, where, field)


def _check_count(have: int, need: int, tensor, where: str | _Described, field: str) -> None:
    if have != need:
        raise ModelError(f"{where}: {field} holds {have} values, but dims {list(tensor.dims)} of "
                         f"{_type_name(tensor.data_type)} need exactly {need}")


def _bits(tensor, where: str | _Described) -> int:
    code = tensor.data_type
    if code == _T.UNDEFINED:
        raise ModelError(f"{where}: the tensor has no data type")
    if code not in _ONNX_TYPES:
        raise ModelError(f"{where}: data type {code} is not an ONNX data type")
    if code not in _BITS:
        raise UnsupportedError(f"{where}: data type {_type_name(code)} is not supported")
    return _BITS[code]


def _type_name(code: int) -> str:
    return _T.DataType.Name(code)
