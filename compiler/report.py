"""The compile report (report.json): what was compiled, how, and what it costs.

Weight accounting (docs/compression.md):
- the *weights* are the weight tensors of the multiply-accumulate layers
  (QConv, QGemm, Conv, Gemm, MatMul: input 1); `fp32_bytes` is 4 bytes per weight,
  `stored_bytes` what the target really stores for them (`Stored`, from the
  target's `weight_storage`, else the tensors' own bytes);
- every other parameter (biases, multipliers, lookup tables) counts in
  `other_bytes` at its dtype's size;
- a tensor shared by several layers is counted once in the totals and in every
  sharing layer's row.
Per layer: params, weight format/bits/sparsity, weight and total stored bytes,
MACs, and (after verification) the output error against the float model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import __version__
from .ir import Graph
from .summary import parameter_tensors, summarize

WEIGHTED_OPS = ("QConv", "QGemm", "Conv", "Gemm", "MatMul")


@dataclass(frozen=True)
class Stored:
    """How a target stores one weight tensor."""

    format: str
    bits: int
    nbytes: int


def dense_storage(graph: Graph) -> dict[str, Stored]:
    """Every weight tensor as plain arrays of its dtype."""
    return {name: Stored("dense", 8 * t.data.itemsize, t.nbytes) for name, t in weight_tensors(graph).items()}


def weight_tensors(graph: Graph) -> dict:
    """{tensor name: Tensor} of the constant weights (input 1) of weighted layers."""
    found = {}
    for node in graph.nodes():
        if node.op in WEIGHTED_OPS and len(node.inputs) > 1:
            tensor = parameter_tensors(graph, node).get(node.inputs[1])
            if tensor is not None:
                found[tensor.name] = tensor
    return found


def build(model: Path, target: str, graph: Graph, pipeline: str, records: list[dict],
          storage: dict[str, Stored], sha256: str) -> dict:
    """The report of a compiled graph (verification and target extras are added later)."""
    summary = summarize(graph)
    weights = weight_tensors(graph)
    rows = [_layer_row(graph, layer, weights, storage) for layer in summary.layers]
    totals = summary.totals
    weight_count = sum(t.size for t in weights.values())
    stored = sum(storage[name].nbytes for name in weights)
    other = sum(t.nbytes for name, t in summary.unique_params.items() if name not in weights)
    return {
        "nnc_version": __version__,
        "target": target,
        "model": {"file": model.name, "sha256": sha256, "name": graph.name},
        "pipeline": pipeline,
        "compile_seconds": None,
        "passes": records,
        "weights": {
            "params": totals["params"],
            "weights": weight_count,
            "fp32_bytes": 4 * weight_count,
            "stored_bytes": stored,
            "compression": round(4 * weight_count / stored, 3) if stored else None,
            "sparsity": _zeros(weights.values()) / weight_count if weight_count else 0.0,
            "other_bytes": other,
        },
        "layers": rows,
        "totals": {"params": totals["params"], "macs": totals["macs"], "layers": totals["layers"]},
    }


def _layer_row(graph: Graph, layer, weights: dict, storage: dict[str, Stored]) -> dict:
    node = graph.node(layer.name)
    tensors = parameter_tensors(graph, node)
    weight = tensors.get(node.inputs[1]) if node.op in WEIGHTED_OPS and len(node.inputs) > 1 else None
    stored = storage.get(weight.name) if weight is not None and weight.name in weights else None
    others = sum(t.nbytes for t in tensors.values() if t is not weight)
    return {
        "name": layer.name,
        "op": layer.op,
        "params": layer.params,
        "macs": layer.macs,
        "format": stored.format if stored else None,
        "weight_bits": stored.bits if stored else None,
        "sparsity": _zeros([weight]) / weight.size if weight is not None and weight.size else 0.0,
        "weight_bytes": stored.nbytes if stored else 0,
        "stored_bytes": (stored.nbytes if stored else 0) + others,
        "fp32_bytes": 4 * layer.params,
        "error": None,
        "output_shapes": layer.output_shapes,
    }


def _zeros(tensors) -> int:
    return sum(int(np.count_nonzero(t.data == 0)) for t in tensors)


def add_layer_errors(report: dict, errors: dict[str, dict]) -> None:
    """Attach each layer's output error against the float model (layer_error.py)."""
    for row in report["layers"]:
        if row["name"] in errors:
            row["error"] = {key: round(value, 6) for key, value in errors[row["name"]].items()}
