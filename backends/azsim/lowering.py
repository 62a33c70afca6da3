"""Lowering: an integer IR graph becomes the `Program` the az-sim chip runs
(backends/azsim/program.py), which the blob writer serializes.

`to_program(graph, pack)`, as one flat sequence of steps:
1. Refuse what the chip cannot run, all at once: ops without a blob op code
   (`blob.OP_CODES`), float tensors anywhere except QuantizeLinear's input and
   scale and DequantizeLinear's output and scale, dtypes without a blob code,
   tensors of more than blob.MAX_RANK (8) axes, attributes that are not integers, QConv/QGemm weights that are not constant or
   fall outside the symmetric range [-127, 127]. One UnsupportedError lists every
   node with its reason.
2. Number the tensors: graph inputs, then in schedule order each node's constant
   inputs (first use) and outputs. QConv/QGemm weights are not tensors: they
   become weight streams.
3. Place the activation tensors in activation SRAM with `memory_plan.plan`: a
   tensor is live from the step that writes it (0 for graph inputs) to the last
   step that reads it (len(layers) for graph outputs), inclusive; a Reshape
   output is a view that shares its input's bytes (an alias in the plan).
   `activation_bytes` is the planned arena size. With a machine `hw` whose
   activation SRAM the arena passes, tile_plan.plan_activations moves tensors
   to external memory and gives the layers touching them row tiles and a
   staging area (docs/azsim.md §3.2).
4. One layer per node, in schedule order. `inputs` keep the IR op's input
   positions; an omitted optional input is -1, and so is the weight position
   (input 1) of QConv/QGemm, whose weights are the layer's stream instead.
   `params` are the op's attribute dataclass: ints as ints, bools as 0/1, tuples
   of ints, dtype names (fields ending in "dtype") as DTYPE_CODES, Pad's `mode`
   as its index in PAD_MODES, floats only when integral (Clip bounds and Pad's
   value on integer tensors) and then as ints; None is omitted.
5. Each weight tensor is encoded once with `packing.pack(values, pack)`: "auto"
   (the default) takes the shortest of all nnc.packing formats (the chip decodes
   every one, huffman included), a format name forces that one; either way at the
   format's natural bits. It becomes a WeightStream of the weight's shape; layers
   sharing a weight tensor share it. With a machine `hw` whose weight SRAM the
   decoded weights pass, they become one stream per output-channel chunk
   (tile_plan.weight_chunks), each in the whole tensor's format and bits, listed
   in the layer's `tiling.chunks` (and `weights` is -1).
Same graph, same machine, same program: every step is deterministic. Without
`hw` nothing is tiled (the program of a machine with unbounded SRAMs).
"""

from __future__ import annotations

import math

import numpy as np

from nnc.dtypes import FLOAT_TYPES
from nnc.errors import UnsupportedError
from nnc.ir import Graph, Node, Tensor
from nnc.ops.registry import attrs_dict
from nnc.ops.shape import PAD_MODES

from nnc import packing
from .blob import MAX_RANK, OP_CODES, PARAM_SINCE
from .hardware import Hardware
from .program import DTYPE_CODES, LayerDesc, Program, TensorDesc, Tiling, WeightStream
from .recurrent import DIRECTIONS  # the table the recurrent kernel decodes `direction` with
from .tile_plan import RECURRENT_WEIGHTS, RowTiles, check_recurrent_weights, plan_activations, weight_chunks

WEIGHTED = {"QConv": 1, "QGemm": 1}  # op -> position of its weight input
# op -> positions (inputs, outputs) that may hold float tensors
_FLOAT_OK = {"QuantizeLinear": ({0, 1}, set()), "DequantizeLinear": ({1}, {0})}
_ENUMS = {"mode": PAD_MODES, "direction": DIRECTIONS}
WEIGHT_LIMIT = 127


class _Refused(Exception):
    """A reason why the chip cannot run one node."""


def to_program(graph: Graph, pack: str = "auto", hw: Hardware | None = None) -> Program:
    """The Program of integer graph `graph` for machine `hw` (None: untiled), its
    weights packed as `pack` says ("auto" or a name in nnc.packing.FORMAT_NAMES;
    see the module docstring)."""
    packing.check_choice(pack)
    nodes = graph.nodes()
    _refuse_unsupported(graph, nodes)
    names = _number_tensors(graph, nodes)
    index = {name: i for i, name in enumerate(names)}
    chunks = {node.name: weight_chunks(node, graph.tensor(node.inputs[WEIGHTED[node.op]]).shape, hw)
              for node in nodes if hw is not None and node.op in WEIGHTED}
    chunks = {name: counts for name, counts in chunks.items() if counts}
    for node in nodes:
        if hw is not None and node.op in RECURRENT_WEIGHTS:
            held = sum(graph.tensor(node.inputs[k]).nbytes for k in RECURRENT_WEIGHTS[node.op])
            check_recurrent_weights(node.name, node.op, held, hw)
    plan = plan_activations(graph, nodes, names, hw, chunks)  # step 3
    tensors = tuple(_tensor_desc(graph.tensor(n), plan.offsets.get(n, plan.external.get(n, -1)), n in plan.external)
                    for n in names)
    streams: dict[tuple[str, int, int], int] = {}
    layers = tuple(_layer(graph, node, index, streams, chunks.get(node.name, []), plan.tiles.get(node.name))
                   for node in nodes)
    encoded = _streams(graph, streams, pack)
    return Program(graph.name, tensors, layers, encoded, tuple(index[n] for n in graph.inputs),
                   tuple(index[n] for n in graph.outputs), plan.activation_bytes)


# -- 1. what the chip runs ------------------------------------------------------------
def _refuse_unsupported(graph: Graph, nodes: list[Node]) -> None:
    problems = [f"graph output {n!r} is a constant" for n in graph.outputs if graph.tensor(n).is_constant]
    problems += [f"graph input {n!r} has dtype {graph.tensor(n).dtype}" for n in graph.inputs
                 if graph.tensor(n).dtype not in DTYPE_CODES]
    for node in nodes:
        try:
            _check_node(graph, node)
            _params(node)
        except _Refused as exc:
            problems.append(f"{node.op} node {node.name!r}: {exc}")
    if problems:
        raise UnsupportedError(f"the az-sim target cannot compile {len(problems)} node(s):\n  "
                               + "\n  ".join(problems))


def _check_node(graph: Graph, node: Node) -> None:
    """_Refused unless the chip runs `node`: known op, encodable dtypes, floats only
    at a quantization boundary, constant in-range weights."""
    if node.op not in OP_CODES:
        raise _Refused(f"the chip does not run {node.op}")
    float_in, float_out = _FLOAT_OK.get(node.op, (set(), set()))
    for where, names, float_ok in (("input", node.inputs, float_in), ("output", node.outputs, float_out)):
        for pos, name in enumerate(names):
            dtype = graph.tensor(name).dtype if name else None
            if dtype is not None and (dtype not in DTYPE_CODES or dtype in FLOAT_TYPES and pos not in float_ok):
                raise _Refused(f"{where} {pos} ({name!r}) is {dtype}; the chip runs it on integers only")
            if name and len(graph.tensor(name).shape) > MAX_RANK:
                raise _Refused(f"{where} {pos} ({name!r}) has rank {len(graph.tensor(name).shape)}; "
                               f"blob tensors have at most {MAX_RANK} axes")
    if node.op in WEIGHTED:
        weights = graph.tensor(node.inputs[WEIGHTED[node.op]])
        if not weights.is_constant or weights.dtype != "i8":
            raise _Refused(f"weights {weights.name!r} must be a constant i8 tensor")
        if weights.size and np.abs(weights.data.astype(np.int64)).max() > WEIGHT_LIMIT:
            raise _Refused(f"weights {weights.name!r} hold -128, outside the symmetric range [-127, 127]")


def _params(node: Node) -> dict[str, int | tuple[int, ...]]:
    """The op's attributes as blob params (see the module docstring, step 4); a
    param newer than version 5 (blob.PARAM_SINCE) only when it is not 0."""
    return {key: _param(key, value) for key, value in attrs_dict(node.attrs).items()
            if value is not None and (value or (node.op, key) not in PARAM_SINCE)}


def _param(key: str, value) -> int | tuple[int, ...]:
    if isinstance(value, tuple):
        return tuple(_param(key, v) for v in value)
    if isinstance(value, (bool, int, np.integer)):
        return int(value)
    if isinstance(value, float) and math.isfinite(value) and value == int(value):
        return int(value)
    if isinstance(value, str) and key.endswith("dtype") and value in DTYPE_CODES:
        return DTYPE_CODES[value]
    if isinstance(value, str) and value in _ENUMS.get(key, ()):
        return _ENUMS[key].index(value)
    raise _Refused(f"attribute {key} = {value!r} has no integer encoding on the chip")


# -- 2. tensors ---------------------------------------------------------------------
def _number_tensors(graph: Graph, nodes: list[Node]) -> list[str]:
    """Tensor names in table order: graph inputs, then per node its constant
    inputs (weights excluded) and its outputs."""
    names = dict.fromkeys(graph.inputs)
    for node in nodes:
        for pos, name in enumerate(node.inputs):
            if name and graph.tensor(name).is_constant and pos != WEIGHTED.get(node.op):
                names.setdefault(name)
        names.update(dict.fromkeys(n for n in node.outputs if n))
    return list(names)


def _tensor_desc(t: Tensor, offset: int, external: bool) -> TensorDesc:
    scale = tuple(float(s) for s in t.quant.scale) if t.quant else ()
    zero_point = tuple(int(z) for z in t.quant.zero_point) if t.quant else ()
    data = None
    if t.is_constant:
        data = np.ascontiguousarray(t.data, dtype=t.data.dtype.newbyteorder("<")).tobytes()
    return TensorDesc(t.name, DTYPE_CODES[t.dtype], t.shape, offset, scale, zero_point, data, external)


# -- 4. layers and 5. weight streams ----------------------------------------------------
def _layer(graph: Graph, node: Node, index: dict[str, int], streams: dict, chunks: list[int],
           tiles: RowTiles | None) -> LayerDesc:
    weight_pos, weights = WEIGHTED.get(node.op), -1
    chunk_streams: tuple[int, ...] = ()
    if weight_pos is not None and chunks:
        name, start = node.inputs[weight_pos], 0
        for count in chunks:
            chunk_streams += (streams.setdefault((name, start, start + count), len(streams)),)
            start += count
    elif weight_pos is not None:
        weights = streams.setdefault((node.inputs[weight_pos], 0, -1), len(streams))
    inputs = tuple(-1 if not name or pos == weight_pos else index[name] for pos, name in enumerate(node.inputs))
    tiling = None
    if chunk_streams or tiles is not None:
        tiling = Tiling(chunk_streams, *((tiles.axis, tiles.rows, tiles.staging, tiles.staging_bytes)
                                         if tiles else (-1, 0, -1, 0)))
    return LayerDesc(node.name, node.op, inputs, tuple(index[n] for n in node.outputs), _params(node), weights,
                     tiling)


def _streams(graph: Graph, streams: dict[tuple[str, int, int], int], pack: str) -> tuple[WeightStream, ...]:
    """One stream per (weight tensor, first channel, end channel; -1: whole), in
    index order; a chunk takes its whole tensor's format and bits."""
    whole: dict[str, packing.Packed] = {}
    encoded = []
    for name, start, end in streams:
        values = graph.tensor(name).data
        if end < 0:
            encoded.append(_stream(values, packing.pack(values, pack)))
            continue
        if name not in whole:
            whole[name] = packing.pack(values, pack)
        chosen = whole[name]
        part = values[start:end]
        encoded.append(_stream(part, packing.Packed(chosen.format, chosen.bits,
                                                    packing.encode(part, chosen.bits, chosen.format))))
    return tuple(encoded)


def _stream(values: np.ndarray, packed: packing.Packed) -> WeightStream:
    """The stream of `values`, carrying them as its decoded values (what the
    payload decodes to, read-only: the blob reader proves it on read-back)."""
    flat = np.asarray(values, dtype=np.int8).reshape(-1).view()  # a view: the weights are not copied
    flat.flags.writeable = False
    return WeightStream(packed.format, packed.bits, values.shape, packed.payload, flat)
