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

When the joined outputs differ from the whole run, `first_mixing_node` finds
the cause: the first layer whose output, joined the same way, differs — one
that reads frames outside a chunk (a convolution or mean over time).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from .dtypes import to_numpy
from .errors import OptionError, ShapeError
from .interpreter import run
from .ir import Graph, Node
from .quality import FLOAT_PARITY

Sample = dict[str, np.ndarray]


def time_axes(whole: Graph, chunk: Graph, streamed: list[str]) -> dict[str, int]:
    """Time axis of each streamed input; OptionError unless the shapes fit (see the
    module docstring). Returns {input: axis}."""
    return split_axes({n: whole.tensor(n).shape for n in streamed}, {n: chunk.tensor(n).shape for n in streamed})


def split_axes(whole: dict[str, tuple[int, ...]], chunk: dict[str, tuple[int, ...]]) -> dict[str, int]:
    """`time_axes` on shapes: {input: its whole shape}, {input: its chunk shape}."""
    axes, counts = {}, set()
    for name, c in chunk.items():
        w = whole[name]
        differ = [a for a, (x, y) in enumerate(zip(w, c)) if x != y] if len(w) == len(c) else None
        if differ is None or len(differ) != 1 or w[differ[0]] % c[differ[0]]:
            rule = f"a chunk must split the whole input {list(w)} along one axis into equal parts"
            raise OptionError(f"stream={{{name!r}: {tuple(c)}}}: {rule}",
                              cli=f"--stream {name}={','.join(map(str, c))}: {rule}")
        axes[name] = differ[0]
        counts.add(w[differ[0]] // c[differ[0]])
    if len(counts) != 1:
        raise OptionError(f"the streamed inputs split into different numbers of chunks ({sorted(counts)})")
    return axes


def check_stream(model, whole: Graph, stream: dict[str, tuple[int, ...]],
                 input_shapes: dict[str, tuple[int, ...]] | None) -> None:
    """Before anything is compiled: OptionError unless `stream` names inputs of
    the model (`whole`, as loaded) and each chunk shape splits its whole shape.
    When the whole input is too short to split because a symbolic dim of the
    model was bound to 1 (no `input_shapes` for it), the error says to bind it."""
    unknown = sorted(set(stream) - set(whole.inputs))
    if unknown:
        text = f"names unknown input(s) {unknown}; the model's inputs are {sorted(whole.inputs)}"
        raise OptionError(f"stream {text}", cli=f"--stream {text}")
    try:
        split_axes({n: whole.tensor(n).shape for n in stream}, stream)
    except OptionError as exc:
        hint = _unbound_time(model, whole, stream, input_shapes or {})
        if hint is None:
            raise
        api, cli = hint
        raise OptionError(f"{exc}; {api}", cli=f"{exc.cli or exc}; {cli}") from None


def _unbound_time(model, whole: Graph, stream, input_shapes) -> tuple[str, str] | None:
    """(API, CLI) wordings of the hint when a streamed input's symbolic dims
    bound to 1 leave nothing to split (the chunk is the whole input, or longer
    along those dims), else None."""
    from .frontend.model_file import is_text_ir
    from .frontend.onnx_loader import symbolic_axes

    symbolic = {} if is_text_ir(model) else symbolic_axes(model)
    for name in stream:
        shape = whole.tensor(name).shape
        chunk = tuple(stream[name])
        bound = {a: symbolic[name][a] or f"D{a}" for a in symbolic.get(name, {})
                 if shape[a] == 1 and name not in input_shapes}
        if chunk != shape:  # the chunk splits some axis: only dims it is longer than are to blame
            bound = {a: label for a, label in bound.items() if a < len(chunk) and chunk[a] > 1}
        if bound:
            dims = " and ".join(f"{a} ({label})" for a, label in bound.items())
            said = (f"input {name!r} has symbolic dim{'s' * (len(bound) > 1)} {dims}, bound to 1 when no shape "
                    f"is given, so the whole sequence is no longer than a chunk: give its whole shape with ")
            whole_shape = [bound.get(a, str(d)) for a, d in enumerate(shape)]
            lengths = f" ({', '.join(bound.values())}: {'its sizes' if len(bound) > 1 else 'its length'})"
            return (said + f"input_shapes={{{name!r}: ({', '.join(whole_shape)})}}" + lengths,
                    said + f"--input-shape {name}={','.join(whole_shape)}" + lengths)
    return None


def split(sample: Sample, axes: dict[str, int], chunk: Graph) -> list[Sample]:
    """The chunk inputs of one whole-sequence sample, states not yet filled in."""
    name = next(iter(axes))
    length = chunk.tensor(name).shape[axes[name]]
    count = sample[name].shape[axes[name]] // length
    return [{key: (np.take(value, range(k * length, (k + 1) * length), axis=axes[key]) if key in axes else value)
             for key, value in sample.items()} for k in range(count)]


def run_chunks(chunk: Graph, pieces: list[Sample], run_one: Callable[[Graph, Sample], Sample]
               ) -> tuple[list[Sample], list[Sample]]:
    """Run the chunks in order, each reading the states the one before wrote;
    the first reads the sample's own initial states where the model takes them
    as inputs (its h0, c0), zero states otherwise. Returns the full inputs
    (states filled in) and outputs of every chunk."""
    first = pieces[0] if pieces else {}
    states = {s_in: first[s_in] if s_in in first else np.zeros(chunk.tensor(s_in).shape,
                                                                 to_numpy(chunk.tensor(s_in).dtype))
              for s_in, _ in chunk.states}
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
        value = _joined(w, c, [o[name] for o in outputs])
        if value is None:
            raise ShapeError(f"output {name!r}: its chunk shape {list(c)} neither equals its whole shape "
                             f"{list(w)} nor splits it along one axis; the outputs cannot be compared")
        joined[name] = value
    return joined


def _joined(whole: tuple[int, ...], chunk: tuple[int, ...], values: list[np.ndarray]) -> np.ndarray | None:
    """One tensor's whole-sequence value from its chunk values: the last chunk's
    when the shapes are equal, the chunks' concatenated along the one axis the
    shapes differ in by the number of chunks; None otherwise."""
    if whole == chunk:
        return values[-1]
    differ = [a for a, (x, y) in enumerate(zip(whole, chunk)) if x != y] if len(whole) == len(chunk) else []
    if len(differ) != 1 or whole[differ[0]] != chunk[differ[0]] * len(values):
        return None
    return np.concatenate(values, axis=differ[0])


def first_mixing_node(whole: Graph, chunk: Graph, sample: Sample, axes: dict[str, int]) -> Node | None:
    """Why chunk by chunk differs from the whole sequence on `sample`: the first
    node of the whole graph whose output, computed chunk by chunk (states fed
    back) and joined, differs from the whole run's — a layer whose output over
    a chunk reads frames outside it (a convolution, pooling or mean over time).
    None when every node's output that can be compared agrees."""
    whole_values: Sample = {}
    run(whole, sample, whole_values.__setitem__)
    chunk_values: list[Sample] = []

    def run_one(graph: Graph, feed: Sample) -> Sample:
        chunk_values.append({})
        return run(graph, feed, chunk_values[-1].__setitem__)

    run_chunks(chunk, split(sample, axes, chunk), run_one)
    for node in whole.nodes():
        for name in filter(None, node.outputs):
            if name not in chunk.tensors or any(name not in values for values in chunk_values):
                continue
            joined = _joined(whole.tensor(name).shape, chunk.tensor(name).shape, [v[name] for v in chunk_values])
            if joined is not None and _differs(whole_values[name], joined):
                return node
    return None


def _differs(expected: np.ndarray, got: np.ndarray) -> bool:
    """Not equal: exactly for integers, beyond float summation order for floats
    (the float parity verification allows, quality.FLOAT_PARITY)."""
    if expected.dtype.kind != "f":
        return not np.array_equal(expected, got)
    scale = max(1.0, float(np.max(np.abs(expected), initial=0.0)))
    return float(np.max(np.abs(expected.astype(np.float64) - got), initial=0.0)) > FLOAT_PARITY * scale


def describe(whole: Graph, chunk: Graph, streamed: list[str]) -> dict:
    """The report's `streaming` section."""
    axes = time_axes(whole, chunk, streamed)
    name = streamed[0]
    return {"inputs": {n: {"chunk_shape": list(chunk.tensor(n).shape), "time_axis": axes[n]} for n in streamed},
            "chunks_per_sequence": whole.tensor(name).shape[axes[name]] // chunk.tensor(name).shape[axes[name]],
            "states": [{"input": a, "output": b, "shape": list(chunk.tensor(a).shape)} for a, b in chunk.states]}
