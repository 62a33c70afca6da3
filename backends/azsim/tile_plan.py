"""The tiling plan of the az-sim lowering: what does not fit a machine's SRAMs
runs in pieces (docs/azsim.md §3.2). Pure and deterministic: same graph, same
machine, same plan.

Weights (`weight_chunks`): a QConv/QGemm whose decoded weights exceed
`weight_sram_bytes` streams them in output-channel chunks of at most half of
weight SRAM (two halves: the decoder fills one while the MAC array reads the
other); every chunk but the last holds the most whole channels (whole groups for
a grouped convolution) that fit. A layer one of whose channels (groups) alone
passes half of weight SRAM is refused (no K blocks). A recurrent layer's w and
r (`RECURRENT_WEIGHTS`) are read at every time step and must fit weight SRAM
together; they are not chunked (refused otherwise).

Activations (`plan_activations`):
1. Plan every activation tensor in activation SRAM as before; if the arena fits
   `activation_sram_bytes`, that is the plan (no tile, no external tensor).
2. Otherwise repeat: take the step whose live on-chip bytes (tensors and staging
   areas) are largest; move the largest tensor live there that may live off
   chip (`_eligible`) to external activation memory; re-plan. Stop when the
   arena fits; refuse (UnsupportedError naming the layer) when that step has no
   tensor left to move.
3. Every layer touching an external tensor runs in row tiles: the most rows
   whose staged bytes (its external operands' tiles, halo included, each
   rounded up to 16 bytes) fit STAGING_FRACTION of activation SRAM, at least 1.
   Its staging area (double-buffered when it has two pieces or more) is a buffer
   live at its step only, planned with the tensors.
External tensors get offsets in external memory by the same planner.
"""

from __future__ import annotations

import math

from nnc import memory_plan
from nnc.errors import UnsupportedError
from nnc.ir import Graph, Node
from nnc.ops.registry import attrs_dict

from .hardware import Hardware
from .tiling import PER_TENSOR, ROW_TILED, follows_rows, is_windowed, piece_view, pieces, sliced_shape, tile_axis
from nnc.records import record

STAGING_FRACTION = 8  # a piece's staged bytes fit activation_sram_bytes / 8
STAGING_ALIGN = 16


@record
class RowTiles:
    """One layer's activation tiles: output `axis`, `rows` per tile, and its
    staging area (offset in activation SRAM, bytes)."""

    axis: int
    rows: int
    staging: int
    staging_bytes: int


@record
class ActivationPlan:
    offsets: dict[str, int]     # on-chip tensors -> activation SRAM offset
    activation_bytes: int
    external: dict[str, int]    # off-chip tensors -> external memory offset
    tiles: dict[str, RowTiles]  # node name -> its row tiles


# The constant operands (w, r) of a recurrent layer: the MAC array reads both at
# every time step, so weight SRAM holds them for the whole layer (not streamed).
RECURRENT_WEIGHTS = {"QLSTM": (1, 2), "QGRU": (1, 2), "QRNN": (1, 2)}


def check_recurrent_weights(name: str, op: str, weight_bytes: int, hw: Hardware) -> None:
    """UnsupportedError unless a recurrent layer's w and r (`weight_bytes`, int8)
    fit the weight SRAM of `hw`."""
    if weight_bytes > hw.weight_sram_bytes:
        said = (f"layer {name!r} ({op}): its weights w and r take {weight_bytes} bytes, more than the "
                f"{hw.weight_sram_bytes}-byte weight SRAM of {hw.name!r}; az-sim keeps a recurrent layer's weights "
                "on chip for all its time steps and does not stream them (a smaller hidden size, or a machine with "
                "more weight SRAM")
        raise UnsupportedError(f"{said} given as hw)", cli=f"{said}, --hw)")


def weight_chunks(node: Node, shape: tuple[int, ...], hw: Hardware) -> list[int]:
    """Output channels per chunk of `node`'s weights [Cout, ...], or [] when
    they fit weight SRAM whole."""
    if math.prod(shape) <= hw.weight_sram_bytes:
        return []
    group = int(getattr(node.attrs, "group", 1) or 1) if node.op == "QConv" else 1
    unit = shape[0] // group if group > 1 else 1
    unit_bytes, half = unit * math.prod(shape[1:]), hw.weight_sram_bytes // 2
    if unit_bytes > half:
        what = "one group's" if group > 1 else "one output channel's"
        raise UnsupportedError(f"layer {node.name!r} ({node.op}): {what} weights take {unit_bytes} bytes, more "
                               f"than half of the {hw.weight_sram_bytes}-byte weight SRAM of {hw.name!r} "
                               "(az-sim streams weights in output-channel chunks, not K blocks)")
    per_chunk = half // unit_bytes * unit
    full, rest = divmod(shape[0], per_chunk)
    return [per_chunk] * full + ([rest] if rest else [])


def plan_activations(graph: Graph, nodes: list[Node], names: list[str], hw: Hardware | None,
                     chunks: dict[str, list[int]]) -> ActivationPlan:
    """The activation plan (see the module docstring); without `hw`, step 1's
    plan whatever its size."""
    spans, views = _live_ranges(graph, nodes)
    active = [n for n in names if n in spans]
    external: set[str] = set()
    while True:
        tiles = {node.name: _row_tiles(graph, node, external, hw, chunks) for node in nodes
                 if any(n in external for n in (*node.inputs, *node.outputs) if n)}
        offsets, arena, staging = _plan_chip(graph, nodes, active, spans, views, external, tiles)
        if hw is None or arena <= hw.activation_sram_bytes:
            break
        external.add(_next_external(graph, nodes, active, spans, views, external, tiles, hw))
    placed = {name: RowTiles(t.axis, t.rows, staging[name], t.staging_bytes) for name, t in tiles.items()}
    outside = [n for n in active if n in external]
    buffers = [memory_plan.Buffer(graph.tensor(n).nbytes, *spans[n], n) for n in outside]
    return ActivationPlan({n: offsets[n] for n in active if n not in external}, arena,
                          dict(zip(outside, memory_plan.plan(buffers))), placed)


def _live_ranges(graph: Graph, nodes: list[Node]) -> tuple[dict[str, list[int]], dict[str, str]]:
    """Tensor -> [first, last] step (as the lowering's step 3), and Reshape view -> its input."""
    spans = {name: [0, 0] for name in graph.inputs}
    views: dict[str, str] = {}
    for step, node in enumerate(nodes):
        for name in node.inputs:
            if name in spans:
                spans[name][1] = step
        for name in node.outputs:
            spans[name] = [step, step]
        if node.op == "Reshape" and node.inputs[0] in spans:
            views[node.outputs[0]] = node.inputs[0]
    for name in graph.outputs:
        spans[name][1] = len(nodes)
    return spans, views


def _plan_chip(graph, nodes, active, spans, views, external, tiles):
    """(on-chip offsets, arena bytes, staging offset per tiled node)."""
    chip = [n for n in active if n not in external]
    position = {name: i for i, name in enumerate(chip)}
    buffers = [memory_plan.Buffer(graph.tensor(n).nbytes, *spans[n], n, position.get(views.get(n)))
               for n in chip]
    steps = {node.name: step for step, node in enumerate(nodes)}
    buffers += [memory_plan.Buffer(t.staging_bytes, steps[name], steps[name], f"{name}:staging")
                for name, t in tiles.items()]
    offsets = memory_plan.plan(buffers)
    staging = dict(zip(tiles, offsets[len(chip):]))
    return dict(zip(chip, offsets)), memory_plan.arena_bytes(buffers, offsets), staging


def _next_external(graph, nodes, active, spans, views, external, tiles, hw) -> str:
    """The largest eligible tensor live at the fullest step; UnsupportedError if none."""
    live = [0] * (len(nodes) + 1)
    for name in active:
        if name not in external:
            for step in range(spans[name][0], spans[name][1] + 1):
                live[step] += graph.tensor(name).nbytes
    for step, node in enumerate(nodes):
        if node.name in tiles:
            live[step] += tiles[node.name].staging_bytes
    fullest = max(range(len(live)), key=lambda s: (live[s], -s))
    moved = set(views) | set(views.values())
    candidates = [n for n in active if n not in external and n not in moved
                  and spans[n][0] <= fullest <= spans[n][1] and _eligible(graph, nodes, n)]
    if not candidates:
        node = nodes[min(fullest, len(nodes) - 1)]
        raise UnsupportedError(f"layer {node.name!r} ({node.op}): its activations and staging areas need "
                               f"{live[fullest]} bytes of activation SRAM, more than the {hw.activation_sram_bytes} "
                               f"bytes of {hw.name!r}, and none of its tensors left on chip can be tiled (row "
                               f"tiles: {', '.join(ROW_TILED)})")
    return max(candidates, key=lambda n: (graph.tensor(n).nbytes, -active.index(n)))


def _eligible(graph: Graph, nodes: list[Node], name: str) -> bool:
    """True when every layer touching tensor `name` can read or write it in row tiles."""
    for node in nodes:
        if name not in node.outputs and name not in node.inputs:
            continue
        if not _tileable(graph, node):
            return False
        out_shape = graph.tensor(node.outputs[0]).shape
        params = attrs_dict(node.attrs)
        axis = tile_axis(node.op, params, out_shape)
        windowed = is_windowed(node.op, params, axis)
        reads = [p for p, n in enumerate(node.inputs) if n == name]
        if axis < 0 or any(not (windowed and p == 0) and follows_rows(graph.tensor(name).shape, out_shape, axis)
                           is None for p in reads):
            return False
    return True


def _tileable(graph: Graph, node: Node) -> bool:
    """A single-output op of ROW_TILED (QuantizeLinear, DequantizeLinear: per tensor)."""
    per_tensor = node.op not in PER_TENSOR or all(graph.tensor(n).size == 1 for n in node.inputs[1:] if n)
    return node.op in ROW_TILED and len(node.outputs) == 1 and per_tensor


def _row_tiles(graph: Graph, node: Node, external: set[str], hw: Hardware, chunks) -> RowTiles:
    """The most rows per tile whose staged bytes fit the staging budget."""
    params = attrs_dict(node.attrs)
    out_shape = graph.tensor(node.outputs[0]).shape
    axis = tile_axis(node.op, params, out_shape)
    budget = hw.activation_sram_bytes // STAGING_FRACTION
    rows = out_shape[axis]
    while rows > 1 and _staged(graph, node, params, external, axis, rows) > budget:
        rows = max(1, min(rows - 1, rows * budget // max(1, _staged(graph, node, params, external, axis, rows))))
    count = len(pieces(out_shape[axis], rows, chunks.get(node.name, [])))
    return RowTiles(axis, rows, -1, min(2, count) * _staged(graph, node, params, external, axis, rows))


def _staged(graph, node, params, external, axis, rows) -> int:
    """The largest staged bytes of any row tile of `rows` rows (all channels)."""
    out = graph.tensor(node.outputs[0])
    shapes = [graph.tensor(n).shape if n else None for n in node.inputs]
    worst = 0
    for piece in pieces(out.shape[axis], rows, []):
        view = piece_view(node.op, params, shapes, out.shape, axis, piece)
        total = _aligned(out, view.output) if node.outputs[0] in external else 0
        for name, index in zip(node.inputs, view.inputs):
            if name in external:
                total += _aligned(graph.tensor(name), index)
        worst = max(worst, total)
    return worst


def _aligned(tensor, index) -> int:
    size = math.prod(sliced_shape(tensor.shape, index)) * tensor.nbytes // max(1, math.prod(tensor.shape))
    return -(-size // STAGING_ALIGN) * STAGING_ALIGN
