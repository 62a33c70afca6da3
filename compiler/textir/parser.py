"""Parsing text IR (grammar.lark) back into a Graph.

The lark LALR parser runs with an inline transformer that turns each statement
into a small record; `_build` then replays the records in order into a Graph, so
tensors and nodes are added in printed order and `graph.nodes()` keeps it. Every
tensor must be defined (input, const, tensor or node result) before it is used,
and every type's shape must pass limits.check_elements (no negative dims, rank
and element count within nnc's limits) before any data is built.
Every mistake raises IRError with a one-line message starting `line L:C:`.
"""

from __future__ import annotations

import contextlib
import functools
import json
import struct
from dataclasses import field
from pathlib import Path
from typing import Any

import numpy as np
from lark import Lark, Token, Transformer
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken, VisitError

from .. import dtypes
from ..errors import IRError
from ..ir import Graph, Node, QuantParams, Tensor
from ..limits import check_elements
from ..ops import get_op, make_attrs
from ..records import record
from .printer import LITTLE_ENDIAN


def parse_ir(text: str) -> Graph:
    """The Graph that `text` describes; IRError (with line:column) on any mistake."""
    try:
        name, stmts = _parser().parse(text)
    except UnexpectedInput as exc:
        raise IRError(_syntax_message(exc, text)) from None
    except VisitError as exc:  # pragma: no cover - lark wraps some callback errors
        if isinstance(exc.orig_exc, IRError):
            raise exc.orig_exc from None
        raise
    return _build(name, stmts)


@functools.cache
def _parser() -> Lark:
    grammar = (Path(__file__).parent / "grammar.lark").read_text()
    return Lark(grammar, parser="lalr", lexer="contextual", transformer=_Records(),
                maybe_placeholders=False)


# -- records -------------------------------------------------------------------------
@record(frozen=False)
class _Type:
    dtype: str
    shape: tuple[int, ...]
    layout: str | None = None
    quant: QuantParams | None = None


@record(frozen=False)
class _Data:
    token: Token | None  # HEX or ELIDED; None for a list of values
    values: Any = None  # a tuple of values, or one bare value


@record(frozen=False)
class _Decl:
    kind: str  # input, const or tensor
    name: Token
    type: _Type
    data: _Data | None


@record(frozen=False)
class _Node:
    op: Token
    name: str
    results: list[tuple[Token, _Type]]
    args: list[Token]
    attrs: dict[str, Any] = field(default_factory=dict)


@record(frozen=False)
class _Output:
    names: list[Token]


@record(frozen=False)
class _State:
    input: Token
    output: Token


class _Results(list):
    pass


class _Args(list):
    pass


class _Layout(str):
    pass


def _error(token: Token, message: str) -> IRError:
    return IRError(f"line {token.line}:{token.column}: {message}")


def _name(token: Token) -> str:
    """The tensor name of a TENSOR token (`%x` or `%"..."`)."""
    text = token.value[1:]
    return _unquote(token, text) if text.startswith('"') else text


def _unquote(token: Token, text: str) -> str:
    try:
        return json.loads(text, strict=False)
    except json.JSONDecodeError as exc:
        raise _error(token, f"bad string {text[:60]}: {exc.msg}") from None


class _Records(Transformer):
    """Callbacks of the inline transformer: tokens -> plain records and values."""

    def start(self, items):
        return _unquote(items[0], items[0].value), items[1:]

    def input(self, items):
        return _Decl("input", items[0], items[1], items[2] if len(items) > 2 else None)

    def const(self, items):
        return _Decl("const", items[0], items[1], items[2])

    def tensor(self, items):
        return _Decl("tensor", items[0], items[1], None)

    def node(self, items):
        results = items.pop(0) if isinstance(items[0], _Results) else []
        op, name, rest = items[0], _unquote(items[1], items[1].value), items[2:]
        args = rest.pop(0) if rest and isinstance(rest[0], _Args) else []
        return _Node(op, name, results, args, rest[0] if rest else {})

    def output(self, items):
        return _Output(items)

    def state(self, items):
        return _State(items[0], items[1])

    def results(self, items):
        return _Results(items)

    def result(self, items):
        return items[0], (items[1] if len(items) > 1 else None)  # (OMITTED, None): an omitted output

    def args(self, items):
        return _Args(items)

    def attrs(self, items):
        values = {}
        for key, value in items:
            if key.value in values:
                raise _error(key, f"attribute {key.value!r} is given twice")
            values[key.value] = value
        return values

    def attr(self, items):
        return items[0], items[1]

    def type(self, items):
        dtype, rest = items[0], items[1:]
        if dtype.value not in dtypes.NUMPY:
            raise _error(dtype, f"unknown dtype {dtype.value!r}; known: {', '.join(dtypes.NUMPY)}")
        shape = tuple(int(t) for t in rest if isinstance(t, Token))
        with _at(dtype):
            check_elements(shape, f"type {dtype.value}{list(shape)}", IRError)
        layout = next((x for x in rest if isinstance(x, _Layout)), None)
        quant = next((x for x in rest if isinstance(x, QuantParams)), None)
        return _Type(dtype.value, shape, None if layout is None else str(layout), quant)

    def layout(self, items):
        token = items[0]
        return _Layout(_unquote(token, token.value) if token.type == "STRING" else token.value)

    def quant(self, items):
        return _quant(items)

    def data(self, items):
        item = items[0]
        return _Data(item) if isinstance(item, Token) else _Data(None, item)

    def list(self, items):
        return tuple(items)  # attribute dataclasses hold tuples, nested ones too

    def v_int(self, items):
        return int(items[0])

    def v_float(self, items):
        text = items[0].value
        if text.startswith("nan:0x"):  # a NaN given by its bits
            return struct.unpack("<d", int(text[4:], 16).to_bytes(8, "little"))[0]
        return float(text)

    def v_string(self, items):
        return _unquote(items[0], items[0].value)

    def v_true(self, _):
        return True

    def v_false(self, _):
        return False

    def v_none(self, _):
        return None


def _quant(items) -> QuantParams:
    first = items[0][0]
    values = {key.value: value for key, value in items}
    unknown = set(values) - {"scale", "zero_point", "axis"}
    if unknown or "scale" not in values or "zero_point" not in values:
        raise _error(first, "quant(...) takes scale, zero_point and optionally axis")
    scale, zero_point, axis = values["scale"], values["zero_point"], values.get("axis")
    scale = scale if isinstance(scale, tuple) else (scale,)
    zero_point = zero_point if isinstance(zero_point, tuple) else (zero_point,)
    if not all(_is_number(s) for s in scale) or not all(_is_int(z) for z in zero_point):
        raise _error(first, "quant scale must be numbers and zero_point integers")
    if axis is not None and not _is_int(axis):
        raise _error(first, "quant axis must be an integer")
    try:
        return QuantParams(tuple(float(s) for s in scale), tuple(zero_point), axis)
    except IRError as exc:
        raise _error(first, str(exc)) from None


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# -- building the graph --------------------------------------------------------------
@contextlib.contextmanager
def _at(token: Token):
    """Prefix IRErrors raised inside with the position of `token`."""
    try:
        yield
    except IRError as exc:
        raise _error(token, str(exc)) from None


def _build(name: str, stmts: list) -> Graph:
    graph = Graph(name)
    for stmt in stmts:
        if isinstance(stmt, _Decl):
            _declare(graph, stmt)
        elif isinstance(stmt, _Node):
            _add_node(graph, stmt)
        elif isinstance(stmt, _State):
            graph.states.append((_name(stmt.input), _name(stmt.output)))
        else:
            for token in stmt.names:
                _check_defined(graph, token)
                graph.outputs.append(_name(token))
    return graph


def _declare(graph: Graph, decl: _Decl) -> None:
    name, t = _name(decl.name), decl.type
    data = None if decl.data is None else _constant(decl.data, decl.type, decl.name)
    with _at(decl.name):
        graph.add_tensor(Tensor(name, t.dtype, t.shape, data=data, layout=t.layout, quant=t.quant))
    if decl.kind == "input":
        graph.inputs.append(name)


def _add_node(graph: Graph, stmt: _Node) -> None:
    for token in stmt.args:
        if token.type != "OMITTED":
            _check_defined(graph, token)
    for token, t in stmt.results:
        if token.type == "OMITTED":
            continue
        with _at(token):
            graph.add_tensor(Tensor(_name(token), t.dtype, t.shape, layout=t.layout, quant=t.quant))
    with _at(stmt.op):
        op = get_op(stmt.op.value)
        with _at_node(stmt):
            attrs = make_attrs(op.Attrs, stmt.attrs)
            inputs = ["" if token.type == "OMITTED" else _name(token) for token in stmt.args]
            outputs = ["" if token.type == "OMITTED" else _name(token) for token, _ in stmt.results]
            graph.add_node(Node(stmt.name, op.name, inputs, outputs, attrs))


@contextlib.contextmanager
def _at_node(stmt: _Node):
    try:
        yield
    except IRError as exc:
        raise IRError(f"{stmt.op.value} {json.dumps(stmt.name, ensure_ascii=False)}: {exc}") from None


def _check_defined(graph: Graph, token: Token) -> None:
    if _name(token) not in graph.tensors:
        raise _error(token, f"tensor {token.value} is not defined before this use")


def _constant(data: _Data, t: _Type, name: Token) -> np.ndarray:
    size = int(np.prod(t.shape, dtype=np.int64))
    if data.token is None:
        with _at(name):
            return _from_values(data.values, t, size)
    if data.token.type == "ELIDED":
        raise _error(data.token, "constant data was elided (printed with elide_constants=True); "
                                 "this text cannot be parsed back into a graph")
    with _at(data.token):
        try:
            raw = bytearray.fromhex(data.token.value[4:-1])
        except ValueError:
            raise IRError("hex data has an odd number of digits") from None
        nbytes = size * LITTLE_ENDIAN[t.dtype].itemsize
        if len(raw) != nbytes:
            raise IRError(f"hex data holds {len(raw)} bytes, {t.dtype}{list(t.shape)} needs {nbytes}")
        array = np.frombuffer(raw, dtype=LITTLE_ENDIAN[t.dtype])
        return array.astype(dtypes.to_numpy(t.dtype), copy=False).reshape(t.shape)


def _from_values(values, t: _Type, size: int) -> np.ndarray:
    if not isinstance(values, tuple):  # a bare value
        if size != 1:
            raise IRError(f"{t.dtype}{list(t.shape)} needs a list of {size} values")
        values = (values,)
    if len(values) != size:
        raise IRError(f"{t.dtype}{list(t.shape)} needs {size} values, got {len(values)}")
    if t.dtype == "bool":
        ok = all(isinstance(v, bool) for v in values)
    elif t.dtype in dtypes.FLOAT_TYPES:
        ok = all(_is_number(v) for v in values)
    else:
        lo, hi = dtypes.integer_range(t.dtype)
        ok = all(_is_int(v) and lo <= v <= hi for v in values)
    if not ok:
        raise IRError(f"constant values do not fit {t.dtype}")
    return np.array(values, dtype=dtypes.to_numpy(t.dtype)).reshape(t.shape)


# -- syntax errors ---------------------------------------------------------------------
_DESCRIPTIONS = {
    "TENSOR": "a tensor name (%x)",
    "NAME": "a name",
    "STRING": 'a string ("...")',
    "OMITTED": "'_'",
    "INT": "an integer",
    "FLOAT": "a float",
    "HEX": 'hex"..." data',
    "ELIDED": "<elided N bytes>",
    "$END": "end of text",
}


def _describe_terminal(name: str) -> str:
    if name in _DESCRIPTIONS:
        return _DESCRIPTIONS[name]
    terminal = next((t for t in _parser().terminals if t.name == name), None)
    if terminal is not None and terminal.pattern.type == "str":
        return repr(terminal.pattern.value)
    return name


def _syntax_message(exc: UnexpectedInput, text: str) -> str:
    line, column = exc.line, exc.column
    if isinstance(exc, UnexpectedCharacters):
        found = repr(text[exc.pos_in_stream]) if exc.pos_in_stream < len(text) else "end of text"
        expected = exc.allowed or set()
    elif isinstance(exc, UnexpectedToken):
        token = exc.token
        if token.type == "$END":
            found = "end of text"
            line = text.count("\n") + 1
            column = len(text) - text.rfind("\n")
        else:
            value = token.value if len(token.value) <= 40 else token.value[:37] + "..."
            found = repr(value)
        expected = exc.expected or set()
    else:  # pragma: no cover - UnexpectedEOF is not raised by LALR
        found, expected = "end of text", getattr(exc, "expected", set())
    wanted = sorted({_describe_terminal(name) for name in expected})
    return f"line {line}:{column}: unexpected {found}; expected {' or '.join(wanted) or 'nothing'}"
