"""Which layers a compression pass touches, and per-layer settings.

Compression passes (prune, prune-channels, quantize) act on the weighted layers:
Conv, Gemm and MatMul nodes whose weights (input 1) are constants — float, or a
DequantizeLinear of integer constants in QDQ models. `weighted_layers` lists them
in schedule order, so "first" and "last" mean the first and last such layer.

Per-layer overrides are written `"KEY:VALUE,KEY:VALUE"` in a pass option, where
KEY is a node name, an op type or a layer id `#i` (the i-th weighted layer,
from 1; `"conv1:8,Gemm:6,#3:4"`). A name or id key beats an op-type key. A key
that matches no weighted layer, and a layer set twice (by one key given twice, or
by its id and its name), are OptionErrors: a typo must not silently do nothing,
nor one setting silently replace another.

Other weights stay as they are: the W and R of recurrent layers (LSTM, GRU,
RNN: int8, dense) and embedding tables (Gather on a constant table: int8 at
the table's own range). A compression pass that asks for more warns, naming
them (`warn_left_out`), and says so when the model has no weighted layer at all.
"""

from __future__ import annotations

from typing import Callable, TypeVar

from .errors import OptionError
from .ir import Graph, Node
from .summary import through_dequantize

WEIGHTED_OPS = ("Conv", "Gemm", "MatMul")
T = TypeVar("T")


def weight_constant(graph: Graph, node: Node) -> str | None:
    """The name of the constant behind `node`'s weights (input 1): the tensor itself,
    or the integer constant a DequantizeLinear reads; None if it is not constant,
    or for a MatMul whose constant is not 2-D weights (attention's position
    scores: an int8 QMatMul operand, not a layer's weights; docs/numerics.md §12)."""
    if node.op not in WEIGHTED_OPS or len(node.inputs) < 2 or not node.inputs[1]:
        return None
    tensor = through_dequantize(graph, node.inputs[1])
    if tensor is None or (node.op == "MatMul" and len(tensor.shape) != 2):
        return None
    return tensor.name


def weighted_layers(graph: Graph) -> list[Node]:
    """Conv/Gemm/MatMul nodes with constant weights, in schedule order."""
    return [n for n in graph.nodes() if weight_constant(graph, n) is not None]


RECURRENT_OPS = ("LSTM", "GRU", "RNN")
RECURRENT_PARAMETERS = (1, 2, 3)  # the input positions of a recurrent node's W, R and B


def recurrent_parameters(graph: Graph) -> list[str]:
    """The float constants recurrent nodes read as W, R or B, in schedule order
    (a tensor two nodes share, once)."""
    names = [node.inputs[i] for node in graph.nodes() if node.op in RECURRENT_OPS
             for i in RECURRENT_PARAMETERS if i < len(node.inputs) and node.inputs[i]]
    return [name for name in dict.fromkeys(names)
            if graph.tensor(name).is_constant and graph.tensor(name).dtype in ("f32", "f64")]
TABLE_DTYPES = ("f16", "f32", "f64", "i8", "u8")


def embedding_tables(graph: Graph) -> list[Node]:
    """Gather nodes that look rows up in a constant table (an embedding), float
    or 8-bit, or behind a DequantizeLinear of one."""
    found = []
    for node in graph.nodes():
        table = through_dequantize(graph, node.inputs[0]) if node.op == "Gather" else None
        if table is not None and table.dtype in TABLE_DTYPES:
            found.append(node)
    return found


def left_out_text(graph: Graph, kept: str, recurrent: bool = True) -> str:
    """The weights the compression passes leave as they are, in words: the
    recurrent layers (keeping their weights `kept`: "at int8", "dense"; unless
    not `recurrent`: the pass compresses them) and the embedding tables,
    named; "" when there are none."""
    parts = []
    recurrent = [n.name for n in graph.nodes() if n.op in RECURRENT_OPS] if recurrent else []
    if recurrent:
        parts.append(f"{len(recurrent)} recurrent layer(s) ({_shown(recurrent)}) keep their weights {kept}")
    tables = [n.name for n in embedding_tables(graph)]
    if tables:
        parts.append(f"{len(tables)} embedding table(s) ({_shown(tables)}) stay {kept}")
    return " and ".join(parts)


def warn_left_out(graph: Graph, asked: str, kept: str, recurrent: bool = True) -> None:
    """An NncWarning when the compression `asked` ("pass 'prune' (sparsity
    0.5)") leaves weights as they are: the recurrent layers' (unless not
    `recurrent`) and embedding tables' (left_out_text), and every weight when
    the graph has no weighted layer, which the warning then says first."""
    import warnings

    from .errors import NncWarning

    others = left_out_text(graph, kept, recurrent)
    only = f"nnc compresses the weights of Conv, Gemm{' and' if recurrent else ','} MatMul" \
        f"{'' if recurrent else ' and recurrent'} layers only"
    quantized = [n for n in graph.nodes() if n.op in ("QConv", "QGemm", "QMatMul")]
    if weighted_layers(graph) or (not recurrent and any(n.op in RECURRENT_OPS for n in graph.nodes())):
        message = f"{asked}: {others}: {only}" if others else ""
    elif quantized:  # a pipeline that runs it after quantize
        message = (f"{asked} changes no layer: {only}, before the quantize pass; here the model's "
                   f"{len(quantized)} such layer(s) are integer ops already (put the pass before quantize)")
    else:
        message = f"{asked} changes no layer: {only}, and the model has none" + (f"; {others}" if others else "")
    if message:
        warnings.warn(message, NncWarning, stacklevel=3)


def _shown(names: list[str]) -> str:
    return ", ".join(repr(name) for name in names[:3]) + (", ..." if len(names) > 3 else "")


def parse_overrides(text: str, option: str, convert: Callable[[str], T]) -> dict[str, T]:
    """{key: value} of an overrides string; OptionError naming `option` on bad syntax,
    a key given twice, or a value `convert` rejects (it may raise ValueError)."""
    result: dict[str, T] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.rpartition(":")
        key = key.strip()
        if not sep or not key:
            raise OptionError(f"{option}: {item!r} is not KEY:VALUE (KEY a layer name or op type)")
        if key in result:
            raise OptionError(f"{option}: {key!r} is given twice")
        try:
            result[key] = convert(value.strip())
        except ValueError as exc:
            said = str(exc)
            if said.startswith(("invalid literal", "could not convert")):  # int()'s and float()'s own words
                said = f"{value.strip()!r} is not a {'whole ' if 'int()' in said else ''}number"
            raise OptionError(f"{option}: {item!r}: {said}") from None
    return result


def layer_ids(graph: Graph) -> dict[str, str]:
    """{layer name: short id "#i"}: the weighted layers numbered from 1 in
    schedule order (the ids every table shows and overrides accept)."""
    return {node.name: f"#{i}" for i, node in enumerate(weighted_layers(graph), 1)}


def _by_id(key: str, layers: list[Node], option: str) -> str:
    """The layer name a "#i" key stands for; other keys unchanged."""
    if not key.startswith("#"):
        return key
    if not key[1:].isdigit() or not 1 <= int(key[1:]) <= len(layers):
        raise OptionError(f"{option}: layer id {key!r} is not one of #1..#{len(layers)}")
    return layers[int(key[1:]) - 1].name


def by_name(graph: Graph, overrides: dict[str, T], option: str) -> dict[str, T]:
    """`overrides` with each layer id ("#i") replaced by the layer's name (names
    and op types stay); OptionError if an id is out of range, or if an id and a
    name key name the same layer."""
    layers = weighted_layers(graph)
    keys = {}
    for key in overrides:
        name = _by_id(key, layers, option)
        if name in keys:
            raise OptionError(f"{option}: {keys[name]!r} and {key!r} name the same layer")
        keys[name] = key
    return {name: overrides[key] for name, key in keys.items()}


def settings(graph: Graph, overrides: dict[str, T], default: T, option: str,
             first_last: T | None = None) -> dict[str, T]:
    """{layer name: value} for every weighted layer: its override by name, else by
    op type, else `first_last` for the first and last layer (when given), else
    `default`. OptionError if an override key matches no weighted layer, or if a
    layer id and a name key name the same layer."""
    return named_settings(graph, by_name(graph, overrides, option), default, option, first_last)


def named_settings(graph: Graph, named: dict[str, T], default: T, option: str,
                   first_last: T | None = None) -> dict[str, T]:
    """settings() of overrides whose layer ids by_name has already replaced."""
    layers = weighted_layers(graph)
    known = {n.name for n in layers} | {n.op for n in layers}
    unknown = sorted(set(named) - known)
    if unknown:
        integer = [key for key in unknown if key.startswith("Q") and key[1:] in ("Conv", "Gemm", "MatMul")]
        hint = (f" (the tables' {', '.join(integer)} {'is' if len(integer) == 1 else 'are'} the compiled "
                f"{', '.join(k[1:] for k in integer)}: give {', '.join(k[1:] for k in integer)})") if integer else ""
        raise OptionError(f"{option}: no weighted layer (Conv/Gemm/MatMul) is named or has op type "
                          f"{', '.join(map(repr, unknown))}{hint}")
    ends = {layers[0].name, layers[-1].name} if layers and first_last is not None else set()
    result = {}
    for node in layers:
        if node.name in named:
            result[node.name] = named[node.name]
        elif node.op in named:
            result[node.name] = named[node.op]
        else:
            result[node.name] = first_last if node.name in ends else default
    return result
