"""The entry points of a C program: the functions `S.c` defines, what each
runs, and where a quantized model's float interface meets its integer core.

Every program has `{p}_invoke_with_arena(arena, ports...)`: it refuses a NULL
pointer or a misaligned arena (-1), then runs every step with the arena
pointer variables computed from the caller's arena. `{p}_invoke(ports...)`
calls it with a static arena; both the static arena and these wrappers sit
under `#ifndef {P}_EXTERNAL_ARENA`.

A model compiled from float is quantized inside but keeps a float interface:
its first steps are QuantizeLinear (f32 -> i8) of the inputs, its last steps
DequantizeLinear (i8 -> f32) to the outputs. Firmware that feeds raw int8 data
(a microphone front end, a camera in int8) wants the core alone, so that its
binary needs no float at all. `int8_entry` finds that core when it exists:

- every graph input is f32 and read by exactly one step, a per-tensor
  QuantizeLinear to i8 whose output lives in the arena, and these steps come
  first;
- every graph output is f32, appears once, and is written by a per-tensor
  DequantizeLinear from an i8 arena tensor, and these steps come last;
- every other step (the core) reads and writes integer tensors only;
- the program has no streaming states and no final output copies.

Then `{p}_invoke_int8` copies the caller's int8 inputs where the quantizers
would have written them, runs the core (one static function, shared with the
float entry point) and copies the int8 outputs from where the dequantizers
would have read them. A model whose interface is already integer (QDQ models)
gets no second entry point: its `{p}_invoke` takes raw int8 already.
"""

from __future__ import annotations

import re

import numpy as np

from . import cformat
from .library import C_TYPES
from .lowering import Program, Step
from nnc.records import record

FLOAT_TYPES = ("f32", "f64")
CORE = "run_integer_layers"  # the static function of the integer layers
_COMMENT = re.compile(r"/\*.*?\*/")


@record
class Edge:
    """One port's conversion: `step` (the QuantizeLinear of an input or the
    DequantizeLinear of an output), the int8 tensor on the core's side and its
    per-tensor scale and zero point (real = scale * (q - zero_point))."""

    step: Step
    tensor: str
    scale: float
    zero_point: int


@record
class Int8Entry:
    inputs: tuple[Edge, ...]  # one per graph input, in order
    outputs: tuple[Edge, ...]  # one per graph output, in order
    core: tuple[Step, ...]  # the steps between, in order


def int8_entry(program: Program) -> Int8Entry | None:
    """The int8 entry point of `program` (module docstring), or None."""
    graph, steps = program.graph, program.steps
    n_in, n_out = len(graph.inputs), len(graph.outputs)
    if graph.states or program.final_copies or not n_in or not n_out or n_in + n_out >= len(steps):
        return None
    if len(set(graph.outputs)) != n_out:
        return None
    inputs = [_edge(program, steps[:n_in], name, "QuantizeLinear") for name in graph.inputs]
    outputs = [_edge(program, steps[len(steps) - n_out:], name, "DequantizeLinear") for name in graph.outputs]
    if None in inputs or None in outputs:
        return None
    core = tuple(steps[n_in:len(steps) - n_out])
    if any(_touches_float(program, step) for step in core):
        return None
    if any([n.name for n in graph.consumers(name)] != [e.step.node.name] for name, e in zip(graph.inputs, inputs)):
        return None
    return Int8Entry(tuple(inputs), tuple(outputs), core)


def _edge(program: Program, candidates: list[Step], port: str, op: str) -> Edge | None:
    """The conversion step among `candidates` between float port `port` and an
    int8 arena tensor, or None."""
    graph = program.graph
    if graph.tensor(port).dtype != "f32":
        return None
    for step in candidates:
        node = step.node
        if node.op != op or port not in (node.inputs[0], node.outputs[0]):
            continue
        quantized = node.outputs[0] if op == "QuantizeLinear" else node.inputs[0]
        scale = program.consts.get(node.inputs[1])
        has_zero = len(node.inputs) > 2 and node.inputs[2]
        zero = program.consts.get(node.inputs[2]) if has_zero else np.zeros(1, np.int64)
        if (graph.tensor(quantized).dtype != "i8" or scale is None or zero is None or scale.size != 1
                or zero.size != 1 or quantized in graph.outputs
                or program.idents.get(quantized) not in program.storage.arena_idents):
            return None
        return Edge(step, quantized, float(scale.reshape(-1)[0]), int(zero.reshape(-1)[0]))
    return None


def _touches_float(program: Program, step: Step) -> bool:
    graph = program.graph
    names = [t for t in (*step.node.inputs, *step.node.outputs) if t and t not in program.consts]
    return any(graph.tensor(t).dtype in FLOAT_TYPES for t in names)


def uses_arena(program: Program) -> bool:
    """Whether some statement uses a pointer variable into the arena."""
    storage = program.storage
    used = {storage.idents[n] for n in program.used} | set(storage.scratch.values())
    return bool(used & storage.arena_idents)


def functions(program: Program, common: dict) -> list[dict]:
    """The functions of model.c.j2 in order (head, prologue, decls, steps,
    epilogue, comment); an entry point also has its static-arena wrapper's
    `api` (signature) and `call`. `common`: the emitter's context (ports)."""
    entry = int8_entry(program)
    ports = common["inputs"] + common["outputs"]
    if entry is None:
        return [_entry_function(program, "invoke", ports, [_step(s) for s in program.steps], uses_arena(program))]
    first, last = entry.core[0].index, entry.core[-1].index
    core = _function(program, f"static void {CORE}(uint8_t *arena)", [], [_step(s) for s in entry.core], [],
                     [f"/* Steps {first} to {last}: the integer layers, shared by {program.prefix}_invoke_with_arena "
                      f"and {program.prefix}_invoke_int8_with_arena. */"])
    float_steps = [_step(e.step) for e in entry.inputs] + [_core_call(entry)] + [_step(e.step) for e in entry.outputs]
    int8_ports = common["int8_inputs"] + common["int8_outputs"]
    return [core, _entry_function(program, "invoke", ports, float_steps, True),
            _entry_function(program, "invoke_int8", int8_ports, _int8_steps(program, entry), True)]


def _step(step: Step) -> dict:
    return dict(comment=f"[{step.index}] {step.note}: \"{cformat.comment(step.node.name)}\"", lines=step.lines)


def _core_call(entry: Int8Entry) -> dict:
    return dict(comment=f"[{entry.core[0].index}..{entry.core[-1].index}] the integer layers",
                lines=[f"{CORE}(arena);"])


def _entry_function(program: Program, name: str, ports: list[dict], steps: list[dict], arena: bool) -> dict:
    """`{prefix}_{name}_with_arena(arena, ports...)`: checks its pointers (and
    the arena when `arena`), then runs `steps`; plus its wrapper's api and call."""
    prefix, macro = program.prefix, program.prefix.upper()
    signature = ", ".join(f"{p['const']}{p['ctype']} *{p['param']}" for p in ports)
    checks = [f"!{p['param']}" for p in ports]
    if arena:
        checks = ["!arena_memory", f"((uintptr_t)arena_memory & ({macro}_ARENA_ALIGN - 1)) != 0"] + checks
    prologue = ([] if arena else ["(void)arena_memory;"]) + [f"if ({' || '.join(checks) or '0'}) {{",
                                                             "    return -1;", "}"]
    if arena:
        prologue.append("uint8_t *const arena = (uint8_t *)arena_memory;")
    copies = ["/* outputs that share their data with another buffer */", *program.final_copies]
    epilogue = (copies if program.final_copies else []) + ["return 0;"]
    function = _function(program, f"int {prefix}_{name}_with_arena(void *arena_memory, {signature})", prologue,
                         steps, epilogue, [])
    args = ", ".join(["static_arena" if arena else "NULL"] + [p["param"] for p in ports])
    return dict(function, api=f"int {prefix}_{name}({signature})", call=f"{prefix}_{name}_with_arena({args})")


def _int8_steps(program: Program, entry: Int8Entry) -> list[dict]:
    """The int8 entry point's steps: copy the inputs where the quantizers would
    write them, run the integer layers, copy the outputs from where the
    dequantizers would read them."""
    graph, idents, storage = program.graph, program.idents, program.storage
    steps = []
    for kind, edges, params in (("input", entry.inputs, storage.in_params),
                                ("output", entry.outputs, storage.out_params)):
        for i, (edge, param) in enumerate(zip(edges, params)):
            nbytes = graph.tensor(edge.tensor).nbytes
            pointer = idents[edge.tensor]
            copy = f"memcpy({pointer}, {param}, {nbytes});" if kind == "input" else \
                f"memcpy({param}, {pointer}, {nbytes});"
            steps.append(dict(comment=f"[{edge.step.index}] int8 {kind} {i} instead of {edge.step.node.op} "
                                      f"\"{cformat.comment(edge.step.node.name)}\"", lines=[copy]))
        if kind == "input":
            steps.append(_core_call(entry))
    return steps


def _function(program: Program, head: str, prologue: list[str], steps: list[dict], epilogue: list[str],
              comment: list[str]) -> dict:
    decls = _decls(program, steps + [dict(lines=epilogue)])
    return dict(head=head, prologue=prologue, decls=decls, steps=steps, epilogue=epilogue, comment=comment)


def _decls(program: Program, steps: list[dict]) -> list[dict]:
    """The pointer variables the statements of `steps` (dicts with `lines`) use,
    comments aside."""
    storage, graph = program.storage, program.graph
    code = " ".join(_COMMENT.sub(" ", line) for step in steps for line in step["lines"])
    words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", code))
    decls = []
    for name, ident in storage.idents.items():
        if ident in storage.decls and name in program.used and ident in words:
            t = graph.tensor(name)
            const = "const " if ident in storage.const_idents else ""
            decls.append(dict(type=f"{const}{C_TYPES[t.dtype]} *", ident=ident, init=storage.decls[ident],
                              note=cformat.comment(f"{t.dtype}[{','.join(map(str, t.shape))}] {name}", 100)))
    for step, ident in storage.scratch.items():
        if ident in words:
            decls.append(dict(type="uint8_t *", ident=ident, init=storage.decls[ident],
                              note=f"scratch of step {step}, {storage.scratch_bytes[step]} bytes"))
    return decls
