"""Per-layer output error of a compiled integer graph against the float graph it
was quantized from: which layer pays for which byte saved.

Each integer layer with weights (QConv, QGemm; QLSTM, QGRU, QRNN on the first
of their outputs the float graph holds: Y, or Y_h when the model does not use
Y; a Gather on an int8 embedding table) is measured alone, on what it was
given: it runs by itself on the float graph's own values of its inputs, and its
output is compared with the float graph's value of the same tensor. Errors
therefore do not accumulate through the network: a layer that nnc left as the
model defined it shows cosine 1.0, whatever the layers before it did (the model
output's error against the float model is the verification's `vs_float`).

Where a tensor of the integer graph comes from in the float graph (the graph as
it was before the first compression pass):
- the very same tensor, when the float graph holds it with the same type: a
  QDQ model keeps its QuantizeLinear outputs' names, so its int8 activations
  are there, computed as the model defines them (dequantize -> float op ->
  quantize). Such an input is fed as it is; such an output is compared after
  both sides are dequantized with its scale, so an untouched QDQ layer matches
  exactly;
- else its float counterpart: the input of the QuantizeLinear that produced the
  tensor, or the tensor named without the ".q" suffix that the quantize pass
  appends to the float activation it quantizes (quantizer/annotate.py). Such an
  input is fed quantized with the integer tensor's scale and zero point (as
  QuantizeLinear does); such an output is compared in float.
A tensor with neither, between a Reshape and the layer (a MatMul on the rows of
a [B, T, D] activation becomes Reshape, QGemm, Reshape), takes the source of
the Reshape's other side, reshaped. A layer with an input or output that has
no source, or a counterpart of another shape (structured pruning changed it),
has no error entry.

Metrics, over all samples: cosine similarity and RMSE (in the float tensor's
units) of the dequantized integer output, scale · (q − zero_point), against the
reference values.
"""

from __future__ import annotations


import numpy as np

from .interpreter import run
from .ir import Graph, Node
from .layer_select import embedding_tables
from .ops import get_op
from .ops.quantize import QuantizeAttrs
from .records import record
from .verification import cosine_rmse

WEIGHTED_INTEGER_OPS = ("QConv", "QGemm", "QLSTM", "QGRU", "QRNN")
QUANTIZED_SUFFIX = ".q"


@record
class Source:
    """Where the float graph holds an integer tensor: `name` in the float graph;
    `same` when it is the very tensor (same type), else its float counterpart."""

    name: str
    same: bool


@record
class Isolated:
    """A layer run alone: the source of each run-time input, and of the output
    measured, its `index`-th."""

    node: Node
    inputs: dict[str, Source]
    output: Source
    index: int = 0

    @property
    def output_name(self) -> str:
        return self.node.outputs[self.index]


def isolate(float_graph: Graph, graph: Graph) -> dict[str, Isolated]:
    """{layer name: Isolated} of the weighted integer layers that can be measured
    alone (see the module docstring), each on its first output the float graph
    holds (a recurrent layer's Y_h when the model does not use Y)."""
    found = {}
    tables = {node.name for node in embedding_tables(graph)}
    for node in graph.nodes():
        if node.op not in WEIGHTED_INTEGER_OPS and node.name not in tables:
            continue
        outputs = [(i, source_of(float_graph, graph, name)) for i, name in enumerate(node.outputs)
                   if name and graph.tensor(name).quant is not None]
        index, output = next(((i, source) for i, source in outputs if source), (0, None))
        runtime = [name for name in node.inputs if name and not graph.tensor(name).is_constant]
        inputs = {name: source_of(float_graph, graph, name) for name in runtime}
        if output and all(inputs.values()):
            found[node.name] = Isolated(node, inputs, output, index)
    return found


def source_of(float_graph: Graph, graph: Graph, name: str) -> Source | None:
    """The Source of integer tensor `name`, or None. A tensor with none of its
    own takes that of the tensor a Reshape made it from, or of the one Reshape
    that reads it alone (a MatMul on rows of a [B, T, D] activation is a QGemm
    between two Reshapes); its float value is then reshaped, which keeps the
    row-major order of the elements."""
    found = _own_source(float_graph, graph, name)
    if found is not None:
        return found
    producer, readers = graph.producer(name), graph.consumers(name)
    neighbours = ([producer.inputs[0]] if producer is not None and producer.op == "Reshape" else []) + \
        ([readers[0].outputs[0]] if len(readers) == 1 and readers[0].op == "Reshape" else [])
    for neighbour in neighbours:
        found = _own_source(float_graph, graph, neighbour)
        if found is not None and graph.tensor(neighbour).quant == graph.tensor(name).quant:
            return found
    return None


def _own_source(float_graph: Graph, graph: Graph, name: str) -> Source | None:
    """The Source of integer tensor `name` itself (module docstring), or None;
    its shape may differ from `name`'s only by a Reshape."""
    tensor = graph.tensor(name)
    twin = float_graph.tensors.get(name)
    if twin is not None and (twin.dtype, twin.shape) == (tensor.dtype, tensor.shape):
        return Source(name, True)
    if tensor.quant is None:
        return None
    counterpart = _float_counterpart(float_graph, name)
    if counterpart is None or float_graph.tensor(counterpart).shape != tensor.shape:
        return None
    return Source(counterpart, False)


def _float_counterpart(float_graph: Graph, name: str) -> str | None:
    if name in float_graph.tensors:
        producer = float_graph.producer(name)
        return producer.inputs[0] if producer is not None and producer.op == "QuantizeLinear" else None
    stem = name.removesuffix(QUANTIZED_SUFFIX)
    return stem if stem != name and stem in float_graph.tensors else None


def layer_errors(float_graph: Graph, graph: Graph, samples: list[dict]) -> dict[str, dict]:
    """{layer name: {"cosine", "rmse"}} over the samples (compression keeps the
    graph's inputs, so the same samples feed the float graph)."""
    layers = isolate(float_graph, graph)
    wanted = {s.name for layer in layers.values() for s in (*layer.inputs.values(), layer.output)}
    values = _collect(float_graph, samples, wanted)
    errors = {}
    for name, layer in layers.items():
        got, want = [], []
        for index in range(len(samples)):
            given = {tensor: values[source.name][index].reshape(graph.tensor(tensor).shape)
                     for tensor, source in layer.inputs.items()}
            output = _run_alone(graph, layer, given)
            got.append(_dequantized(graph, layer.output_name, output).ravel())
            want.append(_reference(graph, layer, values[layer.output.name][index]).ravel())
        errors[name] = cosine_rmse(np.concatenate(want), np.concatenate(got))
    return errors


def _run_alone(graph: Graph, layer: Isolated, given: dict[str, np.ndarray]) -> np.ndarray:
    """The layer's integer output; `given`: the float graph's value of each of
    its run-time inputs (quantized here when it is a float counterpart)."""
    args = []
    for name in layer.node.inputs:
        if not name:
            args.append(None)
        elif graph.tensor(name).is_constant:
            args.append(graph.tensor(name).data)
        else:
            args.append(given[name] if layer.inputs[name].same else _quantized(graph, name, given[name]))
    return get_op(layer.node.op).evaluate(layer.node.attrs, args)[layer.index]


def _reference(graph: Graph, layer: Isolated, value: np.ndarray) -> np.ndarray:
    """The float graph's value of the layer's output, in float."""
    return _dequantized(graph, layer.output_name, value) if layer.output.same else value.astype(np.float64)


def _quantized(graph: Graph, name: str, value: np.ndarray) -> np.ndarray:
    """A float value quantized as integer tensor `name` (QuantizeLinear's rule)."""
    tensor = graph.tensor(name)
    quant = tensor.quant
    attrs = QuantizeAttrs(quant.axis, tensor.dtype)
    scale = np.asarray(quant.scale, np.float32)
    zero_point = np.asarray(quant.zero_point, np.int64)
    return get_op("QuantizeLinear").evaluate(attrs, [value.astype(np.float32), scale, zero_point])[0]


def _dequantized(graph: Graph, name: str, value: np.ndarray) -> np.ndarray:
    """scale · (q − zero_point) of integer tensor `name`'s value, in float64."""
    scale, zero_point = _broadcastable(graph.tensor(name).quant, value.ndim)
    return (value.astype(np.float64) - zero_point) * scale


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
