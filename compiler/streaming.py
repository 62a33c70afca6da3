"""Streaming: run a sequence model chunk by chunk through its exposed states
(`Graph.states`, passes/expose_states.py) and prove it equals one run over the
whole sequence.

A streaming compile has two graphs of one model: the whole-sequence graph (the
model's own input shapes) and the chunk graph (the streamed inputs bound to a
chunk of the time axis, states exposed). Each streamed input's whole and chunk
shapes differ in exactly one axis, the time axis, whose whole length is a
whole number of chunks (the same number for every streamed input); other inputs
are fed unchanged to every chunk.

Joining the chunk outputs into whole-sequence outputs: an output whose chunk
shape equals its whole shape is the last chunk's (e.g. a classifier on the
final frame); one whose shapes differ in one axis by the number of chunks is
the chunks' outputs concatenated along it (e.g. an encoder's per-frame
output). Anything else cannot be compared and is refused.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from .dtypes import to_numpy
from .errors import OptionError, ShapeError
from .ir import Graph

Sample = dict[str, np.ndarray]


def time_axes(whole: Graph, chunk: Graph, streamed: list[str]) -> dict[str, int]:
    """Time axis of each streamed input; OptionError unless the shapes fit (see the
    module docstring). Returns {input: axis}."""
    axes, counts = {}, set()
    for name in streamed:
        w, c = whole.tensor(name).shape, chunk.tensor(name).shape
        differ = [a for a, (x, y) in enumerate(zip(w, c)) if x != y] if len(w) == len(c) else None
        if differ is None or len(differ) != 1 or w[differ[0]] % c[differ[0]]:
            raise OptionError(f"--stream {name}={','.join(map(str, c))}: a chunk must split the whole "
                              f"input {list(w)} along one axis into equal parts")
        axes[name] = differ[0]
        counts.add(w[differ[0]] // c[differ[0]])
    if len(counts) != 1:
        raise OptionError(f"the streamed inputs split into different numbers of chunks ({sorted(counts)})")
    return axes


def split(sample: Sample, axes: dict[str, int], chunk: Graph) -> list[Sample]:
    """The chunk inputs of one whole-sequence sample, states not yet filled in."""
    name = next(iter(axes))
    length = chunk.tensor(name).shape[axes[name]]
    count = sample[name].shape[axes[name]] // length
    return [{key: (np.take(value, range(k * length, (k + 1) * length), axis=axes[key]) if key in axes else value)
             for key, value in sample.items()} for k in range(count)]


def run_chunks(chunk: Graph, pieces: list[Sample], run_one: Callable[[Graph, Sample], Sample]
               ) -> tuple[list[Sample], list[Sample]]:
    """Run the chunks in order from zero states, each reading the states the one
    before wrote. Returns the full inputs (states filled in) and outputs of every chunk."""
    states = {s_in: np.zeros(chunk.tensor(s_in).shape, to_numpy(chunk.tensor(s_in).dtype)) for s_in, _ in chunk.states}
    inputs, outputs = [], []
    for piece in pieces:
        feed = dict(piece, **states)
        result = run_one(chunk, feed)
        states = {s_in: result[s_out] for s_in, s_out in chunk.states}
        inputs.append(feed)
        outputs.append(result)
    return inputs, outputs


def join(whole: Graph, chunk: Graph, outputs: list[Sample]) -> Sample:
    """The whole-sequence outputs from the chunks' (see the module docstring)."""
    joined = {}
    for name in whole.outputs:
        w, c = whole.tensor(name).shape, chunk.tensor(name).shape
        if w == c:
            joined[name] = outputs[-1][name]
            continue
        differ = [a for a, (x, y) in enumerate(zip(w, c)) if x != y] if len(w) == len(c) else []
        if len(differ) != 1 or w[differ[0]] != c[differ[0]] * len(outputs):
            raise ShapeError(f"output {name!r}: its chunk shape {list(c)} neither equals its whole shape "
                             f"{list(w)} nor splits it along one axis; the outputs cannot be compared")
        joined[name] = np.concatenate([o[name] for o in outputs], axis=differ[0])
    return joined


def describe(whole: Graph, chunk: Graph, streamed: list[str]) -> dict:
    """The report's `streaming` section."""
    axes = time_axes(whole, chunk, streamed)
    name = streamed[0]
    return {"inputs": {n: {"chunk_shape": list(chunk.tensor(n).shape), "time_axis": axes[n]} for n in streamed},
            "chunks_per_sequence": whole.tensor(name).shape[axes[name]] // chunk.tensor(name).shape[axes[name]],
            "states": [{"input": a, "output": b, "shape": list(chunk.tensor(a).shape)} for a, b in chunk.states]}
