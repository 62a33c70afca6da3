"""Where each run-time tensor of a C program lives.

Tensors form groups that share bytes:
- a view (Reshape, Identity, Dropout) joins its input's group;
- an op whose handler allows it writes in place: its output joins the group of
  an input with the same number of bytes and elements when that group is dead
  after this step, holds no graph input (the caller's inputs are const) and no
  graph output (those live to the end).
All members of a group have the same size. A group holding a graph input lives
in that input's buffer; one holding a graph output in the buffer of the first
output position it holds (its home); every other group is placed in the arena by
`nnc.memory_plan.plan`, with live ranges from the producing step to the last
reading step. Output positions that are not their group's home (a repeated
output, a view of an input or of another output, a folded constant) are filled
by copies at the end of invoke.

Scratch: a step whose kernel needs working memory (packed weights decoded into
rows) gets an arena buffer live at that step only, placed by the same plan, so
it takes memory that is free at that step when there is some.
"""

from __future__ import annotations

from dataclasses import field

from nnc import memory_plan
from nnc.ir import Graph, Node
from nnc.memory_plan import Buffer

from . import cformat
from .library import C_TYPES
from nnc.records import record

ALIGNMENT = 16


@record(frozen=False)
class Storage:
    in_params: list[str]
    out_params: list[str]  # one per graph output position
    idents: dict[str, str]  # run-time tensor -> C identifier
    decls: dict[str, str] = field(default_factory=dict)  # ident -> initializer, for non-parameters
    const_idents: set[str] = field(default_factory=set)  # pointer variables into a const input
    homes: dict[str, str] = field(default_factory=dict)  # pointer variable -> parameter it points into
    arena_idents: set[str] = field(default_factory=set)  # pointer variables into the arena
    scratch: dict[int, str] = field(default_factory=dict)  # step -> pointer variable of its arena scratch
    scratch_bytes: dict[int, int] = field(default_factory=dict)  # step -> its size
    copies: list[tuple[int, str]] = field(default_factory=list)  # (output position, source tensor)
    buffers: list[Buffer] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)
    arena_bytes: int = 0
    naive_bytes: int = 0
    lower_bound_bytes: int = 0


def _groups(graph: Graph, consts, schedule: list[Node], handlers) -> tuple[dict[str, int], dict[str, int],
                                                                        dict[str, int]]:
    """(group of each run-time tensor, first step, last step); graph outputs are
    read at step len(schedule)."""
    end = len(schedule)
    first = {name: -1 for name in graph.inputs}
    last = {name: -1 for name in graph.inputs}
    for step, node in enumerate(schedule):
        for t in node.inputs:
            if t and t not in consts:
                last[t] = step
        for t in node.outputs:
            if t:
                first[t], last[t] = step, step
    for name in graph.outputs:
        if name not in consts:
            last[name] = end
    group = {name: i for i, name in enumerate(graph.inputs)}
    group_last = {i: last[name] for name, i in group.items()}
    next_id = len(group)
    inputs = set(graph.inputs)
    for step, node in enumerate(schedule):
        handler = handlers.get(node.op)
        for out in (t for t in node.outputs if t):
            source = _shared_input(graph, consts, node, out, handler, group, group_last, step, inputs)
            if source is None:
                group[out], next_id = next_id, next_id + 1
            else:
                group[out] = group[source]
            group_last[group[out]] = max(group_last.get(group[out], -1), last[out])
    return group, first, last


def _shared_input(graph, consts, node, out, handler, group, group_last, step, inputs):
    """The input whose storage `out` takes over, or None."""
    if handler is None:
        return None
    y = graph.tensor(out)
    if handler.view:
        return node.inputs[0]
    for i in handler.in_place:
        x = node.inputs[i] if i < len(node.inputs) else ""
        if not x or x in consts:
            continue
        t = graph.tensor(x)
        members = [n for n, g in group.items() if g == group[x]]
        if (t.nbytes == y.nbytes and t.size == y.size and group_last[group[x]] == step
                and not any(m in inputs for m in members)):
            return x
    return None


def plan_storage(graph: Graph, consts, schedule: list[Node], handlers, names: cformat.Names,
                 scratch: dict[int, int] | None = None) -> Storage:
    """Where every run-time tensor lives; `scratch`: bytes of arena scratch per step."""
    group, first, last = _groups(graph, consts, schedule, handlers)
    in_params = [names.take("in_" + cformat.identifier(n)) for n in graph.inputs]
    out_params = [names.take("out_" + cformat.identifier(n)) for n in graph.outputs]
    home: dict[int, str] = {group[n]: p for n, p in zip(graph.inputs, in_params)}
    storage = Storage(in_params, out_params, {})
    for pos, name in enumerate(graph.outputs):
        if name in consts or group[name] in home:
            storage.copies.append((pos, name))
        else:
            home[group[name]] = out_params[pos]
    storage.idents.update(dict(zip(graph.inputs, in_params)))
    for pos, name in enumerate(graph.outputs):
        if name not in consts and name not in storage.idents and home[group[name]] == out_params[pos]:
            storage.idents[name] = out_params[pos]
    _place_arena(graph, storage, group, first, last, home, names, scratch or {})
    return storage


def _place_arena(graph, storage: Storage, group, first, last, home, names, scratch: dict[int, int]) -> None:
    """Plan the arena groups; give every other run-time tensor a pointer variable."""
    order = [t for t in group if t not in storage.idents]
    index: dict[int, int] = {}
    arena_members = []
    for t in sorted(group, key=lambda n: (first[n], n not in graph.inputs)):
        g = group[t]
        if g in home:
            continue
        alias = index.get(g)
        index.setdefault(g, len(storage.buffers))
        storage.buffers.append(Buffer(graph.tensor(t).nbytes, max(first[t], 0), max(last[t], first[t], 0),
                                      t, alias))
        arena_members.append(t)
    for step, size in sorted(scratch.items()):
        storage.buffers.append(Buffer(size, step, step, f"scratch of step {step}"))
    storage.offsets = memory_plan.plan(storage.buffers, ALIGNMENT)
    storage.arena_bytes = memory_plan.arena_bytes(storage.buffers, storage.offsets, ALIGNMENT)
    storage.naive_bytes = memory_plan.naive_bytes(storage.buffers, ALIGNMENT)
    storage.lower_bound_bytes = memory_plan.lower_bound_bytes(storage.buffers, ALIGNMENT)
    offset_of = dict(zip(arena_members, storage.offsets))
    k = 0
    for t in order:
        ident = names.take(f"t{k}")
        k += 1
        ctype = C_TYPES[graph.tensor(t).dtype]
        storage.idents[t] = ident
        if t in offset_of:
            storage.decls[ident] = f"({ctype} *)(arena + {offset_of[t]})"
            storage.arena_idents.add(ident)
            continue
        storage.homes[ident] = home[group[t]]
        if home[group[t]] in storage.in_params:
            storage.decls[ident] = f"(const {ctype} *){home[group[t]]}"
            storage.const_idents.add(ident)
        else:
            storage.decls[ident] = f"({ctype} *){home[group[t]]}"
    for (step, _), offset in zip(sorted(scratch.items()), storage.offsets[len(arena_members):]):
        ident = names.take("scratch")
        storage.scratch[step], storage.scratch_bytes[step] = ident, scratch[step]
        storage.decls[ident] = f"arena + {offset}"
        storage.arena_idents.add(ident)
