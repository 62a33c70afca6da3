"""Per-layer statistics of a graph: what `nnc inspect` prints and what the
compile report's `layers[]` builds on.

Conventions (they match MANIFEST.md of the MLPerf Tiny models):
- a layer is any node other than QuantizeLinear/DequantizeLinear, which only
  annotate the numerics of their neighbours and are counted separately;
- a layer's parameters are the elements of its constant inputs, looking through a
  DequantizeLinear of a constant (how QDQ models feed integer weights); scales,
  zero points and shape operands (attributes in nnc's IR) are not parameters;
- a parameter tensor shared by several layers counts in each layer's row but once
  in the totals (TFLite exporters share identical bias tensors);
- MACs are the multiply-accumulates of Conv, ConvTranspose, Gemm and MatMul, as
  each op's `macs` defines them; other ops count 0.
"""

from __future__ import annotations

from dataclasses import asdict, field

import numpy as np

from .ir import Graph, Node, Tensor, TensorType
from .ops import get_op
from .records import record

QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")


@record(frozen=False)
class LayerStats:
    name: str
    op: str
    input_shapes: list[list[int]]
    output_shapes: list[list[int]]
    params: int
    macs: int
    weight_dtype: str | None = None
    zero_params: int = 0
    param_bytes: int = 0


@record(frozen=False)
class GraphSummary:
    model: str
    layers: list[LayerStats] = field(default_factory=list)
    qdq_nodes: int = 0
    unique_params: dict[str, Tensor] = field(default_factory=dict, repr=False)

    @property
    def totals(self) -> dict[str, int]:
        tensors = self.unique_params.values()
        return {
            "layers": len(self.layers),
            "params": sum(t.size for t in tensors),
            "macs": sum(layer.macs for layer in self.layers),
            "param_bytes": sum(t.nbytes for t in tensors),
            "zero_params": sum(int(np.count_nonzero(t.data == 0)) for t in tensors),
            "qdq_nodes": self.qdq_nodes,
        }

    def to_json(self) -> dict:
        return {"model": self.model, "layers": [asdict(layer) for layer in self.layers], "totals": self.totals}


def summarize(graph: Graph) -> GraphSummary:
    summary = GraphSummary(graph.name)
    for node in graph.nodes():
        if node.op in QDQ_OPS:
            summary.qdq_nodes += 1
            continue
        summary.layers.append(_layer(graph, node))
        summary.unique_params.update((t.name, t) for t in parameter_tensors(graph, node).values())
    return summary


def parameter_tensors(graph: Graph, node: Node) -> dict[str, Tensor]:
    """Input name -> the constant tensor behind it, for the inputs of `node` that
    are parameters (see module docstring)."""
    op = get_op(node.op)
    indices = op.param_inputs if op.param_inputs is not None else range(len(node.inputs))
    found = {}
    for i in indices:
        name = node.inputs[i] if i < len(node.inputs) else ""
        tensor = through_dequantize(graph, name) if name else None
        if tensor is not None:
            found[name] = tensor
    return found


def through_dequantize(graph: Graph, name: str) -> Tensor | None:
    """The constant tensor `name`, or the constant a DequantizeLinear producing it reads; else None."""
    tensor = graph.tensor(name)
    if tensor.is_constant:
        return tensor
    producer = graph.producer(name)
    if producer is not None and producer.op == "DequantizeLinear":
        source = graph.tensor(producer.inputs[0])
        return source if source.is_constant else None
    return None


def _layer(graph: Graph, node: Node) -> LayerStats:
    by_input = parameter_tensors(graph, node)
    params = list(by_input.values())
    in_types = [_type(graph, t) for t in node.inputs]
    out_types = [_type(graph, t) for t in node.outputs]
    return LayerStats(
        name=node.name,
        op=node.op,
        input_shapes=[list(t.shape) for name, t in zip(node.inputs, in_types)
                      if t is not None and name not in by_input and not graph.tensor(name).is_constant],
        output_shapes=[list(t.shape) for t in out_types if t is not None],
        params=sum(t.size for t in params),
        macs=int(get_op(node.op).macs(node.attrs, in_types, out_types)),
        weight_dtype=params[0].dtype if params else None,
        zero_params=sum(int(np.count_nonzero(t.data == 0)) for t in params),
        param_bytes=sum(t.nbytes for t in params),
    )


def _type(graph: Graph, name: str) -> TensorType | None:
    if not name:
        return None
    tensor = graph.tensor(name)
    return TensorType(tensor.dtype, tensor.shape)
