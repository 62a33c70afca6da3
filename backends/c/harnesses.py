"""What the golden-test harnesses print: the host harness (`S_test.c`), the
firmware's `firmware/main.c` and the golden vectors (`S_golden.h`) they share.

Both harnesses run every entry point on the golden samples: `{p}_invoke` on
`golden_in*`/`golden_out*`, and with an int8 entry point (entries.py)
`{p}_invoke_int8` on `golden_int8_in*`/`golden_int8_out*`, the reference
interpreter's values of the int8 tensors at the model's edges. Integer outputs
must match exactly, float ones within FLOAT_PARITY of max(1, |largest
expected value|).
"""

from __future__ import annotations

import numpy as np

from nnc.quality import FLOAT_PARITY
from nnc.interpreter import run

from . import cformat
from .entries import Int8Entry
from .library import C_TYPES

FLOAT_TYPES = ("f32", "f64")


def entries(common: dict) -> list[dict]:
    """Per entry point: its name, call, and input/output ports with their
    buffer, golden array and comparison."""
    prefix = common["prefix"]
    found = [(f"{prefix}_invoke", "", common["inputs"], common["outputs"])]
    if common["int8_inputs"]:
        found.append((f"{prefix}_invoke_int8", "int8_", common["int8_inputs"], common["int8_outputs"]))
    result = []
    for name, form, inputs, outputs in found:
        ports = {kind: [_port(p, f"{kind}{i}" + ("_int8" if form else ""), f"golden_{form}{kind}{i}", form)
                        for i, p in enumerate(group)]
                 for kind, group in (("in", inputs), ("out", outputs))}
        call = f"{name}({', '.join(p['buffer'] for p in ports['in'] + ports['out'])})"
        result.append(dict(name=name, call=call, inputs=ports["in"], outputs=ports["out"]))
    return result


def _port(port: dict, buffer: str, golden: str, form: str) -> dict:
    floating = port["dtype"] in FLOAT_TYPES
    suffix = "f" if port["dtype"] == "f32" else ""
    return dict(port, buffer=buffer, golden=golden, size=max(port["size"], 1), count=port["size"],
                label=cformat.string_literal(port["name"] + (" (int8)" if form else "")), exact=not floating,
                tolerance=f"{FLOAT_PARITY!r}" if floating else "0.0",
                tolerance_literal=f"{FLOAT_PARITY!r}{suffix}")


def host(common: dict) -> dict:
    """The context of test.c.j2."""
    found = entries(common)
    native = found[0]
    return dict(common, entries=found, inputs=native["inputs"], outputs=native["outputs"],
                buffers=[p for e in found for p in e["inputs"] + e["outputs"]],
                call_args=", ".join(p["buffer"] for p in native["inputs"] + native["outputs"]),
                max_output=max(p["size"] for e in found for p in e["outputs"]),
                float_tolerance=f"{FLOAT_PARITY:g}")


def firmware(common: dict) -> dict:
    """The context of firmware_main.c.j2."""
    found = entries(common)
    return dict(common, entries=found, buffers=[p for e in found for p in e["inputs"] + e["outputs"]],
                float_tolerance=f"{FLOAT_PARITY:g}")


def golden_arrays(program, entry: Int8Entry | None, samples: list[dict], expected: list[dict]) -> list[dict]:
    """The arrays of golden.h.j2: per port, its value in each sample."""
    graph = program.graph
    groups = [("", "in", graph.inputs, samples), ("", "out", graph.outputs, expected)]
    if entry is not None:
        values = [_observed(graph, s, [e.tensor for e in entry.inputs + entry.outputs]) for s in samples]
        groups += [("int8_", "in", [e.tensor for e in entry.inputs], values),
                   ("int8_", "out", [e.tensor for e in entry.outputs], values)]
    arrays = []
    for form, kind, names, values in groups:
        for i, name in enumerate(names):
            t = graph.tensor(name)
            rows = ["\n".join(f"    {line}" for line in cformat.array_body(np.asarray(v[name]), t.dtype) or ["    0,"])
                    for v in values]  # each sample's lines as one text, indented within its braces
            arrays.append(dict(ident=f"golden_{form}{kind}{i}", ctype=C_TYPES[t.dtype], size=max(t.size, 1),
                               note=cformat.comment(f"{form.replace('_', ' ')}{kind}put {i}: {name}"),
                               samples=rows))
    return arrays


def _observed(graph, sample: dict, names: list[str]) -> dict:
    """The reference interpreter's values of tensors `names` on `sample`."""
    wanted, seen = set(names), {}

    def keep(name, value):
        if name in wanted:
            seen[name] = value

    run(graph, sample, observe=keep)
    return seen
