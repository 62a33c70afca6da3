"""Cross-reference checks of a program read from a blob (docs/blob-format.md,
"Cross-reference rules"): what no single record shows. blob.py calls
`check_program` after reading every field; `fail(section kind, message)` raises
the BlobError naming the section."""

from __future__ import annotations

import bisect
import heapq
import math

from .program import ITEMSIZE, LayerDesc, Program

EXTERNAL_ALIGN_SLACK = 64  # bytes per external tensor allowed for alignment gaps


def _nbytes(dtype: int, shape) -> int:
    return math.prod(shape) * ITEMSIZE[dtype]


def check_program(p: Program, fail) -> None:
    """Names unique; program inputs/outputs and layer indices in range; every
    activation tensor written exactly once (by the caller or a layer), before it
    is read; constants never written; no two live tensors overlapping in SRAM.
    `fail(section kind, message)` raises."""
    for kind, items in ((2, p.tensors), (4, p.layers)):
        if len({x.name for x in items}) != len(items):
            fail(kind, "two records have the same name")
    active = {i for i, t in enumerate(p.tensors) if t.data is None}
    if not active.issuperset(p.inputs + p.outputs) or len(set(p.inputs)) != len(p.inputs):
        fail(1, "program inputs and outputs must be activation tensors, inputs listed once")
    written = set(p.inputs)
    for k, layer in enumerate(p.layers):
        what = f"layer {k} ({layer.name!r})"
        if not -1 <= layer.weights < len(p.streams):
            fail(4, f"{what}: weight stream {layer.weights} of {len(p.streams)}")
        if layer.tiling is not None:
            _check_tiling(p, layer, what, lambda message: fail(6, message))
        for t in layer.inputs:
            if not -1 <= t < len(p.tensors) or t in active and t not in written:
                fail(4, f"{what} reads tensor {t}, which is out of range or not written yet")
        for t in layer.outputs:
            if t not in active or t in written:
                fail(4, f"{what} writes tensor {t}, which is out of range, a constant or already written")
            written.add(t)
    if active - written:
        fail(2, f"activation tensor {min(active - written)} is neither a program input nor written by a layer")
    _check_overlap(p, fail)
    _check_external_size(p, fail)


def _check_tiling(p: Program, layer: LayerDesc, what: str, fail) -> None:
    """Chunk streams in range and only instead of a whole stream; the staging
    area inside the arena; rows and axis not negative."""
    t = layer.tiling
    if t.chunks and (layer.weights != -1 or not all(0 <= i < len(p.streams) for i in t.chunks)):
        fail(f"{what}: chunk streams {list(t.chunks)} must exist (of {len(p.streams)}) and replace stream "
             f"{layer.weights}")
    if t.rows < 0 or t.axis < -1 or (t.staging < 0) != (t.staging_bytes == 0) or \
            t.staging + t.staging_bytes > p.activation_bytes:
        fail(f"{what}: axis {t.axis}, {t.rows} rows, staging area of {t.staging_bytes} bytes at {t.staging}: "
             f"needs rows >= 0, axis >= -1, an area inside the {p.activation_bytes}-byte arena or none")


def _spans(p: Program) -> tuple[dict[int, list[int]], dict[int, int]]:
    """([first step, last step] of each activation tensor, view -> the tensor whose
    bytes it shares). A tensor is live from the layer that writes it (0 for
    program inputs) to the last layer that reads it (len(layers) for program
    outputs), both inclusive; a Reshape output at its input's offset, of its
    size, is a view of the input."""
    span = {t: [0, 0] for t in p.inputs}
    root: dict[int, int] = {}
    for step, layer in enumerate(p.layers):
        for t in layer.inputs:
            if t in span:
                span[t][1] = step
        for t in layer.outputs:
            span[t] = [step, step]
        if layer.op == "Reshape" and layer.inputs and layer.outputs and layer.inputs[0] in span:
            x, y = p.tensors[layer.inputs[0]], p.tensors[layer.outputs[0]]
            if (x.offset, _nbytes(x.dtype, x.shape)) == (y.offset, _nbytes(y.dtype, y.shape)):
                root[layer.outputs[0]] = root.get(layer.inputs[0], layer.inputs[0])
    for t in p.outputs:
        span[t][1] = len(p.layers)
    return span, root


def _live_groups(p: Program) -> list[tuple[int, int, int, int, str]]:
    """(offset, size, first step, last step, name) of each group of activation
    tensors sharing SRAM (a tensor and its views, see _spans)."""
    span, root = _spans(p)
    groups: dict[int, list] = {}
    for t, (first, last) in span.items():
        g = groups.setdefault(root.get(t, t), [first, last])
        g[:] = min(g[0], first), max(g[1], last)
    return [(p.tensors[r].offset, _nbytes(p.tensors[r].dtype, p.tensors[r].shape), *g, p.tensors[r].name)
            for r, g in groups.items() if not p.tensors[r].external]


def _external_groups(p: Program) -> list[tuple[int, int, int, int, str]]:
    """(offset, size, first step, last step, name) of each external tensor."""
    span, _ = _spans(p)
    return [(p.tensors[t].offset, _nbytes(p.tensors[t].dtype, p.tensors[t].shape), first, last, p.tensors[t].name)
            for t, (first, last) in span.items() if p.tensors[t].external]


def _check_external_size(p: Program, fail) -> None:
    """External memory ends within the external tensors' summed bytes plus 64 per
    tensor (a planner places each one at most past all earlier ones, aligned), so
    a blob cannot make the simulator allocate more than its tensors need."""
    groups = _external_groups(p)
    end = max((offset + size for offset, size, *_ in groups), default=0)
    room = sum(size for _, size, *_ in groups) + EXTERNAL_ALIGN_SLACK * len(groups)
    if end > room:
        fail(2, f"external tensors reach byte {end} of external memory, more than the {room} bytes "
                "they need together")


def _check_overlap(p: Program, fail) -> None:
    """No two live tensors (or staging areas, live at their layer's step) overlap
    in activation SRAM, nor two live external tensors in external memory."""
    staging = [(layer.tiling.staging, layer.tiling.staging_bytes, step, step, f"{layer.name}:staging")
               for step, layer in enumerate(p.layers) if layer.tiling and layer.tiling.staging >= 0]
    _sweep(_live_groups(p) + staging, fail, "activation SRAM")
    _sweep(_external_groups(p), fail, "external memory")


def _sweep(groups: list[tuple[int, int, int, int, str]], fail, memory: str) -> None:
    """Sweep over steps: `active` holds the live groups sorted by offset (pairwise
    disjoint, or we failed), so a new group can only collide with its neighbours."""
    active: list[tuple[int, int, str]] = []
    expiry: list[tuple[int, int, int, str]] = []
    for offset, size, first, last, name in sorted((g for g in groups if g[1]), key=lambda g: g[2]):
        while expiry and expiry[0][0] < first:
            entry = heapq.heappop(expiry)[1:]
            del active[bisect.bisect_left(active, entry)]
        i = bisect.bisect_left(active, (offset, size, name))
        for o, s, other in active[max(i - 1, 0):i + 1]:
            if o < offset + size and offset < o + s:
                fail(2, f"tensors {other!r} [{o}, {o + s}) and {name!r} [{offset}, {offset + size}) "
                        f"are live together at step {first} and overlap in {memory}")
        active.insert(i, (offset, size, name))
        heapq.heappush(expiry, (last, offset, size, name))
