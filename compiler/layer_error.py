"""Per-layer output error of a compiled integer graph against the float graph it
was quantized from: which layer pays for which byte saved.

A weighted integer layer (QConv, QGemm) writes an 8-bit tensor whose float
counterpart in the float graph (the graph as it was before compression) is:
- the input of the QuantizeLinear that produced that very tensor (QDQ models keep
  their QuantizeLinear outputs' names), or
- the tensor named without the ".q" suffix that the quantize pass appends to the
  float activation it quantizes (quantizer/annotate.py).
A layer whose counterpart is missing or has another shape (structured pruning
changed it) has no error entry.

Errors accumulate: a layer's output error includes that of every layer before
it, on the same samples the verification uses. Metrics, over all samples:
cosine similarity and RMSE (in the float tensor's units) of the dequantized
integer output, scale · (q − zero_point), against the float values.
"""

from __future__ import annotations

import numpy as np

from .interpreter import run
from .ir import Graph
from .verification import cosine_rmse

WEIGHTED_INTEGER_OPS = ("QConv", "QGemm")
QUANTIZED_SUFFIX = ".q"


def counterparts(float_graph: Graph, graph: Graph) -> dict[str, tuple[str, str]]:
    """{layer name: (its integer output, the float tensor it approximates)}."""
    pairs = {}
    for node in graph.nodes():
        if node.op not in WEIGHTED_INTEGER_OPS:
            continue
        out = node.outputs[0]
        source = _float_source(float_graph, out)
        if source is not None and graph.tensor(out).quant is not None \
                and float_graph.tensor(source).shape == graph.tensor(out).shape:
            pairs[node.name] = (out, source)
    return pairs


def _float_source(float_graph: Graph, name: str) -> str | None:
    if name in float_graph.tensors:
        producer = float_graph.producer(name)
        return producer.inputs[0] if producer is not None and producer.op == "QuantizeLinear" else None
    stem = name.removesuffix(QUANTIZED_SUFFIX)
    return stem if stem != name and stem in float_graph.tensors else None


def layer_errors(float_graph: Graph, graph: Graph, samples: list[dict]) -> dict[str, dict]:
    """{layer name: {"cosine", "rmse"}} over the samples (compression keeps the
    graph's inputs, so the same samples feed both graphs)."""
    pairs = counterparts(float_graph, graph)
    got = _collect(graph, samples, {out for out, _ in pairs.values()})
    want = _collect(float_graph, samples, {source for _, source in pairs.values()})
    errors = {}
    for layer, (out, source) in pairs.items():
        quant = graph.tensor(out).quant
        scale, zero_point = _broadcastable(quant, got[out][0].ndim)
        approx = np.concatenate([((v.astype(np.float64) - zero_point) * scale).ravel() for v in got[out]])
        exact = np.concatenate([v.astype(np.float64).ravel() for v in want[source]])
        errors[layer] = cosine_rmse(exact, approx)
    return errors


def _collect(graph: Graph, samples: list[dict], names: set[str]) -> dict[str, list[np.ndarray]]:
    seen: dict[str, list[np.ndarray]] = {name: [] for name in names}

    def observe(name: str, value: np.ndarray) -> None:
        if name in seen:
            seen[name].append(np.array(value))

    for sample in samples:
        run(graph, sample, observe=observe)
    return seen


def _broadcastable(quant, ndim: int) -> tuple[np.ndarray, np.ndarray]:
    """Scale and zero point shaped to broadcast against a tensor of rank `ndim`."""
    scale, zero_point = np.asarray(quant.scale, np.float64), np.asarray(quant.zero_point, np.float64)
    if quant.axis is None:
        return scale.reshape(()), zero_point.reshape(())
    shape = [1] * ndim
    shape[quant.axis] = -1
    return scale.reshape(shape), zero_point.reshape(shape)
