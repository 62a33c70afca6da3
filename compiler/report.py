"""The compile report (report.json): what was compiled, how, and what it costs.

Weight accounting (docs/compression.md):
- the *weights* are the weight tensors of the multiply-accumulate layers
  (QConv, QGemm, Conv, Gemm, MatMul: input 1), the W and R of recurrent layers
  (LSTM, GRU, RNN and their integer forms: inputs 1 and 2) and embedding
  tables (Gather on a constant table: input 0); `fp32_bytes` is 4 bytes per
  weight, `stored_bytes` what the target really stores for them (`Stored` per
  layer, from the target's `weight_encodings`, else the tensors' own bytes).
  The recurrent and embedding weights, which compression leaves as they are,
  are also counted apart (`kept_weights`, `kept_bytes`);
- every other parameter (biases, multipliers, activation tables) counts in
  `other_bytes` at its dtype's size;
- a tensor shared by several layers is counted once in the totals and in every
  sharing layer's row.
Per layer: its short id `#i` (the compressible layers), params, the weight format,
`bits` (the weight grid asked for: see `grid_bits`) and `code_bits` (the
storage code width of that format: huffman codes of up to 6 bits for a 4-bit
layer, say), sparsity, weight and total stored bytes, MACs, and (after
verification) the output error against the float model (layer_error.py).
For the C target, `arena_layout` adds each arena buffer's place and live steps.
Renderings of the report (report.html, layers.csv) come from report_html.py
and report_csv.py; `render_files` gives all three files' text.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from . import __version__, output_folder
from .errors import OptionError, not_a_file
from .ir import Graph
from .layer_select import RECURRENT_OPS, embedding_tables
from .records import record
from .summary import parameter_tensors, summarize

WEIGHTED_OPS = ("QConv", "QGemm", "Conv", "Gemm", "MatMul")
RECURRENT_WEIGHTS = (1, 2)  # W and R of LSTM, GRU, RNN and QLSTM, QGRU, QRNN
RECURRENT = tuple(op for base in RECURRENT_OPS for op in (base, "Q" + base))
REPORT_FILES = ("report.json", "report.html", "layers.csv")
RENDERINGS = ("report.html", "layers.csv")  # what `nnc report` writes again from report.json
REQUIRED_KEYS = ("nnc_version", "target", "model", "pipeline", "passes", "weights", "layers", "totals")
MIN_BITS, MAX_BITS = 2, 8  # the weight grids the quantize pass offers


@record
class Stored:
    """How a target stores one weight tensor."""

    format: str
    bits: int
    nbytes: int


def storage(graph: Graph, target) -> dict[str, Stored]:
    """{layer name: Stored} of every layer with weights: the target's encodings
    (`weight_encodings(graph)` -> {layer: (format, bits, bytes)}), else the
    weight tensors' own arrays; the weights compression leaves as they are
    (kept_weights), which the targets store so, by their tensors."""
    encodings = getattr(target, "weight_encodings", None)
    found = {layer: Stored("dense", 8 * ts[0].data.itemsize, sum(t.nbytes for t in ts))
             for layer, ts in kept_weights(graph).items()}
    if encodings is not None:
        return found | {layer: Stored(*encoding) for layer, encoding in encodings(graph).items()}
    return found | {layer: Stored("dense", 8 * t.data.itemsize, t.nbytes) for layer, t in layer_weights(graph).items()}


def layer_weights(graph: Graph) -> dict:
    """{layer name: Tensor} of the constant weights (input 1) of weighted layers."""
    found = {}
    for node in graph.nodes():
        if node.op in WEIGHTED_OPS and len(node.inputs) > 1:
            tensor = parameter_tensors(graph, node).get(node.inputs[1])
            if tensor is not None:
                found[node.name] = tensor
    return found


def kept_weights(graph: Graph) -> dict[str, list]:
    """{layer name: [Tensor]} of the weights compression leaves as they are:
    the W and R of recurrent layers, the table of an embedding."""
    found = {}
    for node in graph.nodes():
        if node.op in RECURRENT:
            tensors = [parameter_tensors(graph, node).get(node.inputs[i]) for i in RECURRENT_WEIGHTS]
            found[node.name] = [t for t in tensors if t is not None]
    for node in embedding_tables(graph):
        found[node.name] = [parameter_tensors(graph, node)[node.inputs[0]]]
    return {layer: tensors for layer, tensors in found.items() if tensors}


def build(model: Path, target: str, graph: Graph, pipeline: str, records: list[dict],
          storage: dict[str, Stored], sha256: str, model_fp32: int = 0) -> dict:
    """The report of a compiled graph (verification and target extras are added
    later). `model_fp32`: the fp32 bytes of the model's compressible weights as
    given (what channel pruning removed counts there); `compression` divides
    the larger of it and the compiled weights' (plus the kept weights')."""
    summary = summarize(graph)
    by_layer, kept = layer_weights(graph), kept_weights(graph)
    codebook = _asks_codebook(pipeline)
    rows = [_layer_row(graph, layer, [by_layer[layer.name]] if layer.name in by_layer else kept.get(layer.name),
                       storage.get(layer.name), codebook and layer.name in by_layer)
            for layer in summary.layers]
    for index, row in enumerate((row for row in rows if row["name"] in by_layer), 1):
        row["id"] = f"#{index}"  # layer_select.layer_ids: weighted layers in schedule order
    first_reader = {t.name: layer for layer, t in reversed(by_layer.items())}
    kept_reader = {tuple(t.name for t in ts): layer for layer, ts in reversed(kept.items())}
    kept_tensors = {t.name: t for ts in kept.values() for t in ts}
    weights = {name: by_layer[layer] for name, layer in first_reader.items()} | kept_tensors
    totals = summary.totals
    weight_count = sum(t.size for t in weights.values())
    kept_bytes = sum(storage[layer].nbytes for layer in kept_reader.values())
    stored = sum(storage[layer].nbytes for layer in first_reader.values()) + kept_bytes
    other = sum(t.nbytes for name, t in summary.unique_params.items() if name not in weights)
    kept_count = sum(t.size for t in kept_tensors.values())
    model_bytes = max(model_fp32, 4 * (weight_count - kept_count)) + 4 * kept_count
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
            "model_fp32_bytes": model_bytes,
            "compression": round(model_bytes / stored, 3) if stored else None,
            "sparsity": _zeros(weights.values()) / weight_count if weight_count else 0.0,
            "other_bytes": other,
            "kept_weights": kept_count,
            "kept_bytes": kept_bytes,
        },
        "layers": rows,
        "totals": {"params": totals["params"], "macs": totals["macs"], "layers": totals["layers"]},
    }


def _layer_row(graph: Graph, layer, weights: list | None, stored: Stored | None, codebook: bool) -> dict:
    """The report row of `layer`, whose weight tensors are `weights` (None: it has none)."""
    others = sum(t.nbytes for t in parameter_tensors(graph, graph.node(layer.name)).values()
                 if not any(t is w for w in weights or ()))
    values = np.concatenate([w.data.reshape(-1) for w in weights]) if weights else None
    size = 0 if values is None else values.size
    return {
        "id": None,
        "name": layer.name,
        "op": layer.op,
        "params": layer.params,
        "macs": layer.macs,
        "format": stored.format if stored else None,
        "bits": grid_bits(values, codebook) if values is not None else None,
        "code_bits": stored.bits if stored else None,
        "sparsity": _zeros(weights) / size if size else 0.0,
        "weight_bytes": stored.nbytes if stored else 0,
        "stored_bytes": (stored.nbytes if stored else 0) + others,
        "fp32_bytes": 4 * layer.params,
        "error": None,
        "output_shapes": layer.output_shapes,
    }


def _zeros(tensors) -> int:
    """The weights of `tensors` that stand for 0: those equal to their zero
    point (nonzero only for an embedding table, quantized at its own range)."""
    return sum(int(np.count_nonzero(t.data == _zero_point(t))) for t in tensors)


def _zero_point(tensor) -> np.ndarray | int:
    quant = tensor.quant
    if quant is None or not any(quant.zero_point):
        return 0
    if quant.axis is None:
        return quant.zero_point[0]
    return np.asarray(quant.zero_point).reshape([-1 if a == quant.axis else 1 for a in range(tensor.data.ndim)])


def add_layer_errors(report: dict, errors: dict[str, dict]) -> None:
    """Attach each layer's output error against the float model (layer_error.py)."""
    for row in report["layers"]:
        if row["name"] in errors:
            row["error"] = {key: round(value, 6) for key, value in errors[row["name"]].items()}


def grid_bits(weights: np.ndarray, codebook: bool) -> int | None:
    """The bits of the weight grid integer `weights` lie on (None for float
    weights), clamped to MIN_BITS..MAX_BITS. A b-bit linear grid holds
    ±(2^(b−1)−1) and the quantize pass maps each channel's largest weight to its
    end, so b is the signed width of the weights' range; a b-bit codebook holds
    at most 2^b values (zero included), so b is ceil(log2) of the distinct ones."""
    if weights.dtype.kind not in "iu":
        return None
    if codebook:
        bits = math.ceil(math.log2(max(np.unique(weights).size, 1)))
    else:
        high, low = int(weights.max(initial=0)), int(weights.min(initial=0))
        bits = max(high.bit_length(), (-low - 1).bit_length()) + 1
    return min(max(bits, MIN_BITS), MAX_BITS)


def _asks_codebook(pipeline: str) -> bool:
    """True when the pipeline's quantize pass snaps weights to a codebook."""
    from .passmanager import parse_pipeline

    return any(p.name == "quantize" and p.codebook for p in parse_pipeline(pipeline))


def arena_layout(program) -> dict:
    """The C target's arena plan for report["memory"]: `steps`, the layer run at
    each step, and `buffers`, each arena buffer's tensor, offset, bytes, the
    first and last step it is live (inclusive) and `in_place_of`, the tensor
    whose bytes it takes over (memory_plan.Buffer.alias) or None."""
    storage = program.storage
    buffers = storage.buffers
    return {"steps": [step.node.name for step in program.steps],
            "buffers": [{"tensor": b.name, "offset": offset, "bytes": b.size, "first": b.first, "last": b.last,
                         "in_place_of": None if b.alias is None else buffers[b.alias].name}
                        for b, offset in zip(buffers, storage.offsets)]}


def render_files(report: dict) -> dict[str, str]:
    """{file name: text} of REPORT_FILES: report.json and its renderings, each a
    function of the report alone (byte-identical for the same report)."""
    from .report_csv import render_csv
    from .report_html import render_html

    texts = {"report.json": json.dumps(report, indent=2) + "\n", "report.html": render_html(report),
             "layers.csv": render_csv(report)}
    return {name: texts[name] for name in REPORT_FILES}


def read_report(path: Path) -> dict:
    """The report.json at `path`; OptionError when it is not one. A report of
    an nnc that named the code width `weight_bits` reads as `code_bits`."""
    problem = not_a_file(path, "report.json")
    if problem:
        raise OptionError(f"report {path}: {problem}")
    try:
        report = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise OptionError(f"report {path}: cannot read it as JSON ({exc})") from None
    missing = [key for key in REQUIRED_KEYS if key not in report] if isinstance(report, dict) else list(REQUIRED_KEYS)
    if missing or not isinstance(report["layers"], list) or not all(isinstance(r, dict) for r in report["layers"]):
        raise OptionError(f"report {path}: not a report.json of nnc compile (missing or malformed: "
                          f"{', '.join(missing) or 'layers'})")
    for row in report["layers"]:
        row.setdefault("code_bits", row.get("weight_bits"))
    return report


def render_again(path: Path, out: Path | None = None) -> tuple[Path, list[str]]:
    """`nnc report`: RENDERINGS of the report.json at `path`, written into `out`
    (default: its folder) as output_folder.write_into allows. Returns the folder
    and the file names."""
    report = read_report(path)
    try:
        texts = render_files(report)
    except (KeyError, TypeError, ValueError, AttributeError, ArithmeticError) as exc:
        raise OptionError(f"report {path}: cannot render it ({type(exc).__name__}: {exc}); was it written by "
                          f"this nnc ({__version__})?") from None
    folder = Path(out) if out is not None else Path(path).parent
    output_folder.write_into(folder, {name: texts[name] for name in RENDERINGS})
    return folder, list(RENDERINGS)
