"""The compile report (report.json): what was compiled, how, and what it costs.

Weight accounting (docs/compression.md):
- the *weights* are the weight tensors of the multiply-accumulate layers
  (QConv, QGemm, Conv, Gemm, MatMul: input 1); `fp32_bytes` is 4 bytes per weight,
  `stored_bytes` what the target really stores for them (`Stored` per layer,
  from the target's `weight_encodings`, else the tensors' own bytes);
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


def storage(graph: Graph, target) -> dict[str, Stored]:
    """{layer name: Stored} of every weighted layer: the target's encodings
    (`weight_encodings(graph)` -> {layer: (format, bits, bytes)}), else the
    weight tensors' own arrays."""
    encodings = getattr(target, "weight_encodings", None)
    if encodings is not None:
        return {layer: Stored(*encoding) for layer, encoding in encodings(graph).items()}
    return {layer: Stored("dense", 8 * t.data.itemsize, t.nbytes) for layer, t in layer_weights(graph).items()}


def layer_weights(graph: Graph) -> dict:
    """{layer name: Tensor} of the constant weights (input 1) of weighted layers."""
    found = {}
    for node in graph.nodes():
        if node.op in WEIGHTED_OPS and len(node.inputs) > 1:
            tensor = parameter_tensors(graph, node).get(node.inputs[1])
            if tensor is not None:
                found[node.name] = tensor
    return found


def build(model: Path, target: str, graph: Graph, pipeline: str, records: list[dict],
          storage: dict[str, Stored], sha256: str) -> dict:
    """The report of a compiled graph (verification and target extras are added later)."""
    summary = summarize(graph)
    by_layer = layer_weights(graph)
    rows = [_layer_row(graph, layer, by_layer.get(layer.name), storage.get(layer.name)) for layer in summary.layers]
    for index, row in enumerate((row for row in rows if row["name"] in by_layer), 1):
        row["id"] = f"#{index}"  # layer_select.layer_ids: weighted layers in schedule order
    first_reader = {t.name: layer for layer, t in reversed(by_layer.items())}
    weights = {name: by_layer[layer] for name, layer in first_reader.items()}
    totals = summary.totals
    weight_count = sum(t.size for t in weights.values())
    stored = sum(storage[layer].nbytes for layer in first_reader.values())
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


def _layer_row(graph: Graph, layer, weight, stored: Stored | None) -> dict:
    others = sum(t.nbytes for t in parameter_tensors(graph, graph.node(layer.name)).values() if t is not weight)
    return {
        "id": None,
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
