"""Printing a Graph as text IR (the canonical form; grammar in grammar.lark).

One statement per line, in this order:
- `input %x: TYPE` for each graph input, in `graph.inputs` order;
- `const %w: TYPE = DATA` for every constant, and `tensor %t: TYPE` for every other
  tensor that no node produces (e.g. left over by a pass), in `graph.tensors` order;
- `%y: TYPE, ... = Op "node name" (%a, _, %b) {key=value, ...}` for each node in
  `graph.nodes()` order: its outputs with their types, then the op, the node name,
  the inputs (`_` for an omitted optional input) and the attributes in dataclass
  field order (the braces are left out when the op has no attributes);
- `output %y, ...` listing the graph outputs;
- `state %h_in -> %h_out` for each state pair (`Graph.states`).

TYPE is `dtype[d0,d1,...]`, then ` layout=NHWC` and
` quant(scale=S, zero_point=Z)` (per tensor) or
` quant(scale=[...], zero_point=[...], axis=N)` (per axis) when present.
A tensor name prints bare (`%conv_0.out`) when it matches `[A-Za-z0-9_][A-Za-z0-9_.-]*`,
quoted with JSON escapes otherwise (`%"model/conv;1:0"`). Floats print with repr()
(shortest text that reads back to the same double; `inf`, `-inf`, `nan`; a NaN
with its sign or payload set prints `-nan` or `nan:0x` and its 64 bits).
DATA of a constant with at most 16 elements is its values in row-major order
(`[-1,64]`, `[0.5,inf]`; a bare value for a 0-d tensor), each float in the shortest
text that reads back to the same value of its own type; larger constants (and the
rare small one whose values do not read back bit-exactly, e.g. a NaN payload) print
their raw little-endian bytes in hex (`hex"0000803f..."`). With
`elide_constants=True`, hex data prints as `<elided N bytes>` instead: that text is
for reading, and the parser refuses it.
"""

from __future__ import annotations

import json
import re
import struct

import numpy as np

from .. import dtypes
from ..errors import IRError
from ..ir import Graph, Node, QuantParams, Tensor
from ..ops.registry import attrs_dict, make_attrs

BARE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")
_BARE_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
LIST_MAX = 16  # integer/bool constants up to this many elements print as values
LITTLE_ENDIAN = {name: dt.newbyteorder("<") for name, dt in dtypes.NUMPY.items()}


def print_ir(graph: Graph, elide_constants: bool = False) -> str:
    """The text form of `graph`; `parse_ir` reads it back (unless elided)."""
    lines = [f"graph {quote(graph.name)} {{"]
    lines += [f"  input {_declaration(graph.tensor(name), elide_constants)}" for name in graph.inputs]
    inputs = set(graph.inputs)
    for tensor in graph.tensors.values():
        if tensor.name in inputs or graph.producer(tensor.name) is not None:
            continue
        keyword = "tensor" if tensor.data is None else "const"
        lines.append(f"  {keyword} {_declaration(tensor, elide_constants)}")
    lines += [f"  {_node(graph, node)}" for node in graph.nodes()]
    if graph.outputs:
        lines.append("  output " + ", ".join(ref(name) for name in graph.outputs))
    lines += [f"  state {ref(state_in)} -> {ref(state_out)}" for state_in, state_out in graph.states]
    lines.append("}")
    return "\n".join(lines) + "\n"


# -- names and values ------------------------------------------------------------
def quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def ref(name: str) -> str:
    """`%name`, quoted when it is not a bare name; `_` for an omitted input."""
    if not name:
        return "_"
    return "%" + (name if BARE_NAME.fullmatch(name) else quote(name))


def format_value(value) -> str:
    """An attribute value: int, float, str, bool, None or a (nested) tuple of those."""
    if value is None:
        return "none"
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return _float(float(value))
    if isinstance(value, str):
        return quote(value)
    if isinstance(value, (tuple, list)):
        return "[" + ",".join(format_value(v) for v in value) + "]"
    raise IRError(f"cannot print attribute value {value!r} of type {type(value).__name__}")


def _float(value: float) -> str:
    """repr(), which reads back exactly, except for a NaN other than the plain
    quiet one: `-nan` when only its sign is set, else `nan:0x` and its 64 bits."""
    if value == value:
        return repr(value)
    bits = struct.unpack("<Q", struct.pack("<d", value))[0]
    return {_NAN_BITS: "nan", _NAN_BITS | 1 << 63: "-nan"}.get(bits, f"nan:0x{bits:016x}")


_NAN_BITS = 0x7FF8000000000000


# -- tensors -----------------------------------------------------------------------
def _declaration(tensor: Tensor, elide: bool) -> str:
    text = f"{ref(tensor.name)}: {format_type(tensor)}"
    if tensor.data is not None:
        text += " = " + _data(tensor, elide)
    return text


def format_type(tensor: Tensor) -> str:
    text = f"{tensor.dtype}[{','.join(str(d) for d in tensor.shape)}]"
    if tensor.layout is not None:
        layout = tensor.layout
        text += " layout=" + (layout if _BARE_WORD.fullmatch(layout) else quote(layout))
    if tensor.quant is not None:
        text += " " + _quant(tensor.quant)
    return text


def _quant(q: QuantParams) -> str:
    if q.axis is None and len(q.scale) == 1:
        return f"quant(scale={format_value(float(q.scale[0]))}, zero_point={int(q.zero_point[0])})"
    scale = format_value(tuple(float(s) for s in q.scale))
    zero_point = format_value(tuple(int(z) for z in q.zero_point))
    axis = "" if q.axis is None else f", axis={int(q.axis)}"
    return f"quant(scale={scale}, zero_point={zero_point}{axis})"


def _data(tensor: Tensor, elide: bool) -> str:
    data = tensor.data
    values = _values(data) if data.size <= LIST_MAX else None
    if values is not None:
        return values
    if elide:
        return f"<elided {data.nbytes} bytes>"
    raw = np.ascontiguousarray(data).astype(LITTLE_ENDIAN[tensor.dtype], copy=False).tobytes()
    return f'hex"{raw.hex()}"'


def _values(data: np.ndarray) -> str | None:
    """`[v0,v1,...]` (a bare value for a 0-d array) if it reads back bit-exactly, else None.
    Floats print shortest for their own type (str of the numpy scalar); that text is
    checked, since a NaN payload, for one, does not survive it."""
    flat = data.reshape(-1)
    if data.dtype.kind == "f":
        texts = [str(x) for x in flat]
        if np.array([float(t) for t in texts], dtype=data.dtype).tobytes() != flat.tobytes():
            return None
    else:
        texts = [format_value(x) for x in flat.tolist()]
    return texts[0] if data.ndim == 0 else "[" + ",".join(texts) + "]"


# -- nodes -------------------------------------------------------------------------
def _node(graph: Graph, node: Node) -> str:
    results = ", ".join(f"{ref(name)}: {format_type(graph.tensor(name))}" if name else ref(name)
                        for name in node.outputs)
    head = f"{results} = " if results else ""
    args = ", ".join(ref(name) for name in node.inputs)
    return f"{head}{node.op} {quote(node.name)} ({args}){_attrs(node.attrs)}"


def _attrs(attrs) -> str:
    if attrs is None:
        return ""
    # Normalize as the parser will (ints in float fields become floats, lists tuples),
    # so that printing the parsed graph gives the same text.
    values = attrs_dict(make_attrs(type(attrs), attrs_dict(attrs)))
    if not values:
        return ""
    return " {" + ", ".join(f"{key}={format_value(value)}" for key, value in values.items()) + "}"
