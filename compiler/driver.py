"""The compile driver: model file -> front end -> pipeline -> target -> verify -> report.

`compile` is the one entry point behind both `nnc compile` and the Python API.
Outputs are written into a temporary folder beside `output_dir` and moved into
place only when everything, verification included, succeeded; an existing
`output_dir` is replaced only if it is empty or an earlier nnc output (it holds a
report.json), so a mistyped `-o` never deletes a user's folder.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from . import __version__
from .errors import OptionError, VerificationError
from .frontend.onnx_loader import load
from .interpreter import run
from .ir import Graph
from .passmanager import PassManager, format_pipeline, parse_pipeline
from .summary import summarize
from .textir import print_ir
from .verification import compare, load_samples, onnxruntime_outputs, synthetic_samples

Progress = Callable[[str], None]


@dataclass
class CompileResult:
    """What `compile` produced: the compiled graph, the report (also written as
    report.json) and the files written, relative to `output_dir`."""

    graph: Graph
    report: dict
    output_dir: Path | None = None
    artifacts: list[str] = field(default_factory=list)


@dataclass
class CompileOptions:
    target: str = "ir"
    pipeline: str | None = None
    input_shapes: dict[str, tuple[int, ...]] | None = None
    inputs: str | Path | None = None
    verify: bool = True
    verify_each: bool = False
    print_ir_after: tuple[str, ...] = ()
    synthetic_samples: int = 4


def compile(model: str | Path, target: str = "ir", output_dir: str | Path | None = None, *,
            progress: Progress | None = None, dump: Callable[[str], None] | None = None,
            **options) -> CompileResult:
    """Compile the ONNX model at `model` for `target`; see CompileOptions for the
    options. Raises an NncError subclass on bad input or failed verification."""
    from nnc.backends import get_target

    try:
        opts = CompileOptions(target=target, **options)
    except TypeError as exc:
        raise OptionError(f"compile: {exc}") from None
    say = progress or (lambda message: None)
    start = time.perf_counter()
    tgt = get_target(opts.target)
    passes = parse_pipeline(tgt.default_pipeline if opts.pipeline is None else opts.pipeline)
    say(f"loading {model}")
    original = load(model, opts.input_shapes)
    manager = PassManager(passes, verify_each=opts.verify_each, print_after=set(opts.print_ir_after),
                          dump=(lambda name, g: dump(f"// IR after {name}\n{print_ir(g, elide_constants=True)}"))
                          if dump else None)
    say(f"running pipeline {format_pipeline(passes)}")
    graph = manager.run(original.copy())
    report = _report(opts, model, graph, passes, manager)
    if opts.verify:
        say("verifying against the reference interpreter and onnxruntime")
        report["verification"] = _verify(model, original, graph, opts, say)
    report["compile_seconds"] = round(time.perf_counter() - start, 3)
    result = CompileResult(graph, report)
    if output_dir is not None:
        result.output_dir = Path(output_dir)
        result.artifacts = _write_outputs(Path(output_dir), tgt, graph, report)
    return result


def _report(opts: CompileOptions, model, graph: Graph, passes, manager: PassManager) -> dict:
    summary = summarize(graph)
    totals = summary.totals
    return {
        "nnc_version": __version__,
        "target": opts.target,
        "model": {"file": Path(model).name, "sha256": _sha256(Path(model)), "name": graph.name},
        "pipeline": format_pipeline(passes),
        "compile_seconds": None,
        "passes": [vars(r) | {"seconds": round(r.seconds, 6)} for r in manager.records],
        "weights": {
            "params": totals["params"],
            "fp32_bytes": 4 * totals["params"],
            "stored_bytes": totals["param_bytes"],
            "sparsity": totals["zero_params"] / totals["params"] if totals["params"] else 0.0,
        },
        "layers": [_layer_row(layer) for layer in summary.layers],
        "totals": {"params": totals["params"], "macs": totals["macs"], "layers": totals["layers"]},
    }


def _layer_row(layer) -> dict:
    bits = {"f32": 32, "f64": 64, "i8": 8, "u8": 8, "i16": 16, "i32": 32, "i64": 64}
    return {
        "name": layer.name,
        "op": layer.op,
        "weight_bits": bits.get(layer.weight_dtype) if layer.weight_dtype else None,
        "sparsity": layer.zero_params / layer.params if layer.params else 0.0,
        "format": "dense" if layer.params else None,
        "stored_bytes": layer.param_bytes,
        "params": layer.params,
        "macs": layer.macs,
        "output_shapes": layer.output_shapes,
    }


def _verify(model, original: Graph, graph: Graph, opts: CompileOptions, say: Progress) -> dict:
    if opts.inputs is not None:
        samples = load_samples(opts.inputs, original)
        source = str(opts.inputs)
    else:
        samples = synthetic_samples(original, opts.synthetic_samples)
        source = "synthetic"
        say(f"warning: no --inputs given; verifying on {len(samples)} synthetic random samples")
    truth = onnxruntime_outputs(model, samples, original.outputs)
    reference = [run(original, s) for s in samples]
    compiled = [run(graph, s) for s in samples]
    vs_reference = compare(reference, compiled)
    vs_float = compare(truth, compiled)
    if opts.target != "ir" and not vs_reference["bit_exact"]:
        raise VerificationError(f"target output differs from the reference interpreter "
                                f"(max abs diff {vs_reference['max_abs_diff']})")
    return {"samples": len(samples), "source": source, "vs_reference": vs_reference, "vs_float": vs_float}


def _write_outputs(out: Path, tgt, graph: Graph, report: dict) -> list[str]:
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / "report.json").is_file())):
        raise OptionError(f"output folder {out} exists and is not an earlier nnc output; "
                          "choose another -o or remove it")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        artifacts = tgt.emit(graph, staging, _stem(graph.name))
        (staging / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return [*artifacts, "report.json"]


def _stem(name: str) -> str:
    stem = "".join(c if c.isalnum() or c in "_-" else "_" for c in name).strip("_")
    return stem or "model"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
