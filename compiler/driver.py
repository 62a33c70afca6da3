"""The compile driver: model file -> front end -> pipeline -> target -> verify -> report.

`compile` is the one entry point behind both `nnc compile` and the Python API.
Outputs are written into a staging folder beside `output_dir` and moved into
place only when everything, verification included, succeeded; output_folder.py
states what nnc may write and replace there.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .errors import NncWarning, OptionError, QualityGateError, UnsupportedError
from .frontend.model_file import load_model_file
from .frontend.onnx_loader import load
from .compression_options import check_compression
from .limits import MAX_NAME_LENGTH
from .layer_error import layer_errors
from .obs_layers import check_method
from .packing import FORMAT_NAMES
from .ir import Graph
from .passmanager import PassManager, format_pipeline, parse_pipeline
from .pipelines import COMPRESSION
from . import budget, output_folder, quality, sample_sources, streaming
from .budget import BudgetChoice
from .report import REPORT_FILES, add_layer_errors, arena_layout, render_files
from .report import storage as weight_storage
from .report import build as build_report
from .textir.printer import print_ir
from .verification import load_samples, synthetic_samples
from .verify_step import is_integer_graph, verification_warnings, verify, verify_streaming

Progress = Callable[[str], None]

# Per-layer output errors (report layers[].error) are measured on this many of
# the verification samples: each costs a float and an integer run per layer.
LAYER_ERROR_SAMPLES = 16
# Re-allocations of a budget whose second-order compile stored more than the
# search measured, before falling back to magnitude (see _fit_budget).
BUDGET_ATTEMPTS = 3


@dataclass
class CompileResult:
    """What `compile` produced: the compiled graph, the report (also written as
    report.json) and the files written, relative to `output_dir`."""

    graph: Graph
    report: dict
    output_dir: Path | None = None
    artifacts: list[str] = field(default_factory=list)
    target: object = field(default=None, repr=False)  # the target that compiled it (runs it)

    def run(self, samples) -> dict[str, np.ndarray]:
        """The compiled artifact run on `samples` (a path, {input: array}, one array,
        or an iterable of {input: array}; one leading axis of samples): the C
        binary for c, the simulator for az-sim, the reference interpreter for ir.
        Returns {output: array [N, *output shape]}; inputs are checked as
        verification checks them (names, shapes, dtypes)."""
        with sample_sources.in_memory(samples=samples) as found:
            batch = load_samples(found["samples"], self.graph)
        from nnc.backends import run_batched

        with self.target.runner(self.graph, self.output_dir, _stem(self.graph.name)) as run_on:
            outputs = run_batched(run_on, batch)
        return {name: np.concatenate([np.asarray(o[name]) for o in outputs]) for name in self.graph.outputs}


@dataclass
class CompileOptions:
    """Options of `compile` (and of `nnc compile`'s flags).

    pipeline: replaces the target's default pipeline when given.
    calib: calibration samples (.npz/.npy) for post-training quantization.
        calib, inputs and labels also take data in memory: {input: array},
        one array, or an iterable of {input: array} (compiler/sample_sources.py).
    quantize: run the quantize pass; None lets the target decide (c and az-sim
        quantize, ir does not).
    inputs: verification samples; default: the calibration samples, else synthetic.
    hw: hardware description (TOML) for az-sim; default: the shipped machine.
    Compression (docs/compression.md), each adding a pass to the default pipeline:
    weight_bits (2..8), first_last_bits (bits of the first and last weighted
        layer; None: weight_bits), codebook (k-means, 2^weight_bits centroids),
        bias_correction: options of the quantize pass;
    sparsity (fraction of weights zeroed by magnitude, per layer),
        sparsity_pattern ("N:M"): the prune pass;
    prune_channels (fraction of output channels removed): the prune-channels pass.
    method: "magnitude" or "obs" (second-order: SparseGPT, GPTQ below 8 bits,
        least-squares refit after channel pruning; needs calib) for those three
        passes; None: obs when calib is given, else magnitude. A streaming
        compile always uses magnitude (the chunk graph has no samples).
    pack: weight encoding, "auto" (smallest exact) or one of PACK_FORMATS;
    c_weights: "dense" (int8 arrays) or "packed" (the C target keeps the
        encoded weights and decodes them in its kernels).
    onnx_form: target onnx's file: "qdq" (standard QDQ ONNX) or "integer"
        (nnc's integer graph as ONNX integer arithmetic, bit-exact with the
        reference; docs/onnx-export.md).
    name: the compiled model's name: its artifacts' file stem and the C symbol
        prefix (default: the model file's stem).
    layer_bits, layer_sparsity: per-layer settings "KEY:VALUE,..." (KEY a
        layer id #i, a layer name or an op type) over weight_bits / sparsity.
    flash_budget (bytes) or ratio (× smaller than fp32): budget search
        (compiler/budget.py) picks each layer's bits and sparsity; it replaces
        weight_bits, sparsity and their per-layer settings.
    labels: class ids (.npy, or .npz with one array) of the `inputs` samples:
        verification then reports top-1/top-k accuracy of the float model and
        of the compiled one, and the drop (compiler/accuracy.py).
    min_cosine, max_accuracy_drop (points; needs labels): quality gates
        (compiler/quality.py); a compile that misses one writes its artifacts,
        then raises QualityGateError.
    stream: chunk shapes of the streamed inputs ({name: shape}); the artifact
        then runs a sequence chunk by chunk with its recurrent states as
        inputs and outputs (compiler/streaming.py, docs/streaming.md).
    """

    target: str = "ir"
    pipeline: str | None = None
    input_shapes: dict[str, tuple[int, ...]] | None = None
    calib: str | Path | None = None
    quantize: bool | None = None
    inputs: str | Path | None = None
    verify: bool = True
    verify_each: bool = False
    print_ir_after: tuple[str, ...] = ()
    synthetic_samples: int = 4
    hw: str | Path | None = None
    weight_bits: int = 8
    first_last_bits: int | None = None
    codebook: bool = False
    bias_correction: bool = True
    sparsity: float = 0.0
    sparsity_pattern: str | None = None
    prune_channels: float = 0.0
    method: str | None = None
    pack: str = "auto"
    c_weights: str = "dense"
    onnx_form: str = "qdq"
    stream: dict[str, tuple[int, ...]] | None = None
    name: str | None = None
    layer_bits: str | None = None
    layer_sparsity: str | None = None
    flash_budget: int | None = None
    ratio: float | None = None
    labels: str | Path | None = None
    min_cosine: float | None = None
    max_accuracy_drop: float | None = None
    top_k: int = 5

    def __post_init__(self):
        check_compression(self.weight_bits, self.first_last_bits, self.sparsity, self.prune_channels)
        if self.pack not in ("auto", *PACK_FORMATS):
            raise OptionError(f"pack must be auto or one of {', '.join(PACK_FORMATS)}, got {self.pack!r}")
        if self.c_weights not in ("dense", "packed"):
            raise OptionError(f"c-weights must be dense or packed, got {self.c_weights!r}")
        if self.onnx_form not in ("qdq", "integer"):
            raise OptionError(f"onnx-form must be qdq or integer, got {self.onnx_form!r}")
        if self.onnx_form != "qdq" and self.target != "onnx":
            raise OptionError(f"--onnx-form {self.onnx_form} applies to --target onnx, not {self.target}")
        if self.name is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", self.name):
            raise OptionError(f"name must be a C identifier (letters, digits, _), got {self.name!r}")
        if self.name is not None and len(self.name) > MAX_NAME_LENGTH:
            raise OptionError(f"name must be at most {MAX_NAME_LENGTH} characters, got {len(self.name)}")
        if self.stream and self.pipeline is not None:
            raise OptionError("--stream builds its own pipelines; it cannot be combined with --pipeline")
        from nnc.passes.prune import parse_pattern

        from .limits import check_dims
        from .passmanager import available_passes

        for flag, shapes in (("input-shape", self.input_shapes), ("stream", self.stream)):
            for input_name, dims in (shapes or {}).items():
                check_dims(dims, f"{flag} {input_name}")
        if self.sparsity_pattern is not None:
            parse_pattern(self.sparsity_pattern, "sparsity-pattern")
        unknown = sorted(set(self.print_ir_after) - {"all", *available_passes()})
        if unknown:
            raise OptionError(f"print-ir-after {unknown[0]!r} is not a pass; give a pass of the pipeline or all "
                              f"(passes: {', '.join(sorted(available_passes()))})")
        if self.method is not None:
            check_method("method", self.method)
        if self.method == "obs" and self.stream:
            raise OptionError("--method obs cannot be combined with --stream (the chunk graph has no calibration "
                              "samples); use --method magnitude")
        self._check_quality_options()
        self._check_budget_options()

    def _check_budget_options(self):
        if self.flash_budget is None and self.ratio is None:
            return
        if self.flash_budget is not None and self.ratio is not None:
            raise OptionError("give --flash-budget or --ratio, not both")
        if self.flash_budget is not None and self.flash_budget < 1:
            raise OptionError(f"flash-budget must be a positive number of bytes, got {self.flash_budget}")
        if self.ratio is not None and not 1.0 <= self.ratio <= 1e6:
            raise OptionError(f"ratio must be in [1, 1e6] (× smaller than fp32), got {self.ratio}")
        clashing = [flag for flag, given in (("--weight-bits", self.weight_bits != 8),
                                             ("--first-last-bits", self.first_last_bits is not None),
                                             ("--sparsity", bool(self.sparsity)),
                                             ("--sparsity-pattern", bool(self.sparsity_pattern)),
                                             ("--layer-bits", bool(self.layer_bits)),
                                             ("--layer-sparsity", bool(self.layer_sparsity)),
                                             ("--pipeline", self.pipeline is not None),
                                             ("--stream", bool(self.stream))) if given]
        if clashing:
            raise OptionError(f"the budget search chooses bits and sparsity itself; drop {', '.join(clashing)}")

    def _check_quality_options(self):
        if self.labels is not None and (self.inputs is None or self.stream):
            raise OptionError("--labels needs --inputs (the samples they label), and no --stream")
        if self.max_accuracy_drop is not None and self.labels is None:
            raise OptionError("--max-accuracy-drop needs --labels (and --inputs): accuracy needs labelled samples")
        if self.min_cosine is not None and not -1.0 <= self.min_cosine <= 1.0:
            raise OptionError(f"min-cosine must be in [-1, 1], got {self.min_cosine}")
        if self.max_accuracy_drop is not None and not 0.0 <= self.max_accuracy_drop <= 100.0:
            raise OptionError(f"max-accuracy-drop must be in [0, 100] points, got {self.max_accuracy_drop}")
        if (self.min_cosine is not None or self.max_accuracy_drop is not None) and not self.verify:
            raise OptionError("quality gates need verification; drop --no-verify")
        if not 1 <= self.top_k <= 1000:
            raise OptionError(f"top-k must be in 1..1000, got {self.top_k}")


PACK_FORMATS = tuple(FORMAT_NAMES)
# options that take samples: a path, or arrays in memory (sample_sources.py)
SAMPLE_OPTIONS = ("calib", "inputs", "labels")


def default_pipeline(target, opts: CompileOptions, stream_role: str | None = None, ranges: str | None = None,
                     budget: BudgetChoice | None = None) -> str:
    """The target's pipeline, then the compression passes the options ask for:
    prune-channels, prune, quantize (see CompileOptions). A streaming compile
    runs it twice: `stream_role` "whole" saves the calibrated ranges to file
    `ranges`, "chunk" exposes the states and quantizes with those ranges; both
    without bias correction (the chunk graph cannot read whole-sequence samples).
    A `budget` choice sets each layer's bits and sparsity by layer id."""
    quantize = target.quantizes if opts.quantize is None else opts.quantize
    steps = [target.base_pipeline] + (["expose-states"] if stream_role == "chunk" else [])
    method = "magnitude" if stream_role else opts.method or ("obs" if opts.calib is not None else "magnitude")
    second_order = {"method": "obs", "calib": str(opts.calib or "")} if method == "obs" else {}
    if opts.prune_channels:
        steps.append(_step("prune-channels", ratio=opts.prune_channels, **second_order))
    bits_by_layer, sparsity_by_layer = budget.overrides() if budget else (opts.layer_bits, opts.layer_sparsity)
    if opts.sparsity or opts.sparsity_pattern or sparsity_by_layer:
        steps.append(_step("prune", sparsity=opts.sparsity or None, pattern=opts.sparsity_pattern,
                           overrides=sparsity_by_layer, **second_order))
    quantizing = {"weight_bits": opts.weight_bits != 8, "first_last_bits": opts.first_last_bits is not None,
                  "codebook": opts.codebook, "bias_correction": not opts.bias_correction,
                  "layer_bits": bool(bits_by_layer)}
    options = {key: getattr(opts, key) for key, asked in quantizing.items() if asked and key != "layer_bits"}
    if bits_by_layer:
        options["overrides"] = bits_by_layer
    if method == "obs" and (any(quantizing[k] for k in ("weight_bits", "first_last_bits", "codebook"))
                            or bits_by_layer):
        options["method"] = "obs"  # GPTQ below 8 bits; 8-bit layers keep rounding to nearest
    if stream_role:
        options.update({"whole": {"save_ranges": ranges}, "chunk": {"ranges": ranges}}[stream_role],
                       bias_correction=False)
    calib = None if opts.calib is None or stream_role == "chunk" else str(opts.calib)
    if quantize:
        steps.append(_step("quantize", calib=calib, **options, **getattr(target, "quantize_options", {})))
    elif any(quantizing.values()):
        asked = ", ".join(key for key, value in quantizing.items() if value)
        raise OptionError(f"{asked} need quantization, which target {opts.target!r} does not do "
                          "(give --quantize)")
    return ",".join(steps)


def _step(name: str, **options) -> str:
    """A pipeline step with the options that are not None."""
    given = [f"{key}={json.dumps(value)}" for key, value in options.items() if value is not None]
    return name + ("{" + ",".join(given) + "}" if given else "")


def compile(model: str | Path, target: str = "ir", output_dir: str | Path | None = None, *,
            progress: Progress | None = None, dump: Callable[[str], None] | None = None,
            **options) -> CompileResult:
    """Compile the ONNX model at `model` for `target`; see CompileOptions for the
    options. Raises an NncError subclass on bad input or failed verification.
    Warnings (e.g. synthetic calibration) are listed in report["warnings"].
    An UnsupportedError names the target: "target c: no integer lowering for ..."."""
    given = {key: options[key] for key in SAMPLE_OPTIONS if key in options}
    with sample_sources.in_memory(**given) as paths:
        try:
            opts = CompileOptions(target=target, **{**options, **paths})
        except TypeError as exc:
            raise OptionError(f"compile: {exc}") from None
        try:
            return _compile(model, opts, output_dir, progress, dump)
        except UnsupportedError as exc:
            raise UnsupportedError(f"target {opts.target}: {exc}") from None


def _compile(model: str | Path, opts: CompileOptions, output_dir, progress: Progress | None,
             dump: Callable[[str], None] | None) -> CompileResult:
    from nnc.backends import get_target

    say = progress or (lambda message: None)
    start = time.perf_counter()
    tgt = get_target(opts.target, opts)
    if output_dir is not None:
        output_folder.check(Path(output_dir), Path(model))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", NncWarning)
        piped = _run_pipeline(model, opts, tgt, dump, say)
    original, whole, whole_original, graph = piped.original, piped.whole, piped.whole_original, piped.graph
    passes, manager, report_budget = piped.passes, piped.manager, piped.budget
    exported, graph = graph, _reference_graph(tgt, graph)
    report = build_report(Path(model), opts.target, graph, format_pipeline(passes),
                          [vars(r) | {"seconds": round(r.seconds, 6)} for r in manager.records],
                          weight_storage(graph, tgt), _sha256(Path(model)))
    report["warnings"] = [str(w.message) for w in caught if issubclass(w.category, NncWarning)]
    report["budget"] = report_budget
    with output_folder.staged(output_dir, Path(model)) as staging:
        if staging:
            say(f"writing the {opts.target} output")
        artifacts = tgt.emit(exported, staging, _stem(graph.name)) if staging else []
        if opts.verify:
            say("verifying against the reference interpreter and onnxruntime")
            execute = lambda s: tgt.execute(exported, staging, _stem(graph.name), s, say)  # noqa: E731
            if whole is None:
                report["verification"], samples = verify(model, original, graph, opts, execute,
                                                          getattr(tgt, "parity_lsb", 0), say)
            else:
                report["verification"], samples = verify_streaming(model, whole_original, whole, graph, opts,
                                                                    execute)
                report["streaming"] = streaming.describe(whole, graph, list(opts.stream))
            if manager.snapshot is not None and is_integer_graph(graph):
                say("measuring each layer's output error against the float model")
                add_layer_errors(report, layer_errors(manager.snapshot, graph, samples[:LAYER_ERROR_SAMPLES]))
            report["warnings"] += verification_warnings(report, original, opts)
        report.update(tgt.extras(graph))
        if "memory" in report:  # the C target's arena plan, buffer by buffer (report.html's memory chart)
            report["memory"].update(arena_layout(tgt.program(graph, graph.name)))
        report["quality_gate"] = quality.gate(report, opts.min_cosine, opts.max_accuracy_drop)
        report["compile_seconds"] = round(time.perf_counter() - start, 3)
        if staging:
            for name, text in render_files(report).items():
                (staging / name).write_text(text, encoding="utf-8")
    result = CompileResult(exported, report, target=tgt)
    if output_dir is not None:
        result.output_dir, result.artifacts = Path(output_dir), [*artifacts, *REPORT_FILES, output_folder.MANIFEST]
    if report["quality_gate"] and not report["quality_gate"]["passed"]:
        raise QualityGateError(report["quality_gate"]["reason"], result)
    return result


@dataclass
class _Piped:
    """What the pipeline made of a model: the graph as loaded (`original`), the
    compiled `graph`, the passes and their manager; for a streaming compile the
    whole-sequence graph and its original; the budget search's report entry."""

    original: Graph
    graph: Graph
    passes: list
    manager: PassManager
    whole: Graph | None
    whole_original: Graph | None
    budget: dict | None


def compile_graph(model: str | Path, options: CompileOptions) -> Graph:
    """The compiled graph of `model` under `options` (target, compression,
    calib, ...): the pipeline only. Nothing is written, verified, lowered or
    run, so an az-sim machine plays no part. Raises an NncError subclass on bad
    input; warnings are issued, not recorded."""
    from nnc.backends import get_target

    try:
        return _run_pipeline(model, options, get_target(options.target, options), None, lambda message: None).graph
    except UnsupportedError as exc:
        raise UnsupportedError(f"target {options.target}: {exc}") from None


def _run_pipeline(model: str | Path, opts: CompileOptions, tgt, dump, say: Progress) -> _Piped:
    """Load `model` and run the pipeline `opts` asks for (streaming, budget search included)."""
    say(f"loading {model}")
    original, whole = _named(load_model_file(model, opts.input_shapes), opts.name), None
    report_budget = choice = whole_original = None
    with tempfile.TemporaryDirectory() as scratch:
        if opts.stream:
            ranges = str(Path(scratch) / "ranges.json")
            say("compiling the whole-sequence graph (streaming reference)")
            whole = PassManager(parse_pipeline(default_pipeline(tgt, opts, "whole", ranges))).run(original.copy())
            whole_original = original
            original = _named(load(model, {**(opts.input_shapes or {}), **opts.stream}, frozenset(opts.stream)),
                              opts.name)
            passes = parse_pipeline(default_pipeline(tgt, opts, "chunk", ranges))
        else:
            choice = _budget_search(original, opts, say)
            passes = parse_pipeline(default_pipeline(tgt, opts, budget=choice) if opts.pipeline is None
                                    else opts.pipeline)
        say(f"running pipeline {format_pipeline(passes)}")
        manager, graph = _run_passes(passes, original, opts, dump, say)
        if choice is not None:
            passes, manager, graph, report_budget = _fit_budget(tgt, opts, original, choice, manager, graph, dump,
                                                                say)
    return _Piped(original, graph, passes, manager, whole, whole_original, report_budget)


def _run_passes(passes, original: Graph, opts: CompileOptions, dump,
                say: Progress | None = None) -> tuple[PassManager, Graph]:
    manager = PassManager(passes, verify_each=opts.verify_each, print_after=set(opts.print_ir_after),
                          snapshot_before=COMPRESSION, progress=say,
                          dump=(lambda name, g: dump(f"// IR after {name}\n{print_ir(g, elide_constants=True)}"))
                          if dump else None)
    return manager, manager.run(original.copy())


def _fit_budget(tgt, opts: CompileOptions, original: Graph, choice: BudgetChoice, manager, graph, dump, say):
    """Second-order methods move the weights and so their encoded size: while the
    compiled weights pass the budget, re-allocate with each layer's sizes
    corrected by what it really took (BUDGET_ATTEMPTS times), then fall back to
    magnitude, whose sizes are the measured ones. Returns the passes, manager
    and graph that fit, and report["budget"]."""
    method = opts.method or ("obs" if opts.calib is not None else "magnitude")
    for attempt in range(1, BUDGET_ATTEMPTS + 2):
        stored = budget.stored_bytes(graph)
        taken = sum(stored[name] for name, _ in choice.layers.values())
        if taken <= choice.budget_bytes:
            return manager.passes, manager, graph, choice.to_json() | {"method": method, "attempts": attempt,
                                                                        "stored_bytes": taken}
        if attempt <= BUDGET_ATTEMPTS:
            choice = choice.corrected(stored)
        else:  # magnitude stores exactly what the search measured
            method, opts = "magnitude", dataclasses.replace(opts, method="magnitude")
        say(f"budget: {taken:,} bytes stored, over {choice.budget_bytes:,}; allocating again ({method})")
        passes = parse_pipeline(default_pipeline(tgt, opts, budget=choice))
        manager, graph = _run_passes(passes, original, opts, dump, say)
    raise AssertionError("unreachable: magnitude stores what the budget search measured")


def _budget_search(original: Graph, opts: CompileOptions, say: Progress) -> BudgetChoice | None:
    """The budget search's choice when --flash-budget or --ratio asks for one."""
    if opts.flash_budget is None and opts.ratio is None:
        return None
    budget_bytes = opts.flash_budget or int(budget.fp32_bytes(original) / opts.ratio)
    if opts.calib is None:
        warnings.warn("budget search on synthetic random samples; give --calib with real inputs", NncWarning)
    samples = load_samples(opts.calib, original) if opts.calib else synthetic_samples(original, budget.SEARCH_SAMPLES)
    method = opts.method or ("obs" if opts.calib is not None else "magnitude")
    return budget.search(original, samples, str(opts.calib or ""), budget_bytes, say, method)


def _named(graph: Graph, name: str | None) -> Graph:
    if name is not None:
        graph.name = name
    return graph


def _reference_graph(target, graph: Graph) -> Graph:
    """The graph the reference interpreter runs and the report describes: the
    compiled graph, or the integer graph that a target writing an earlier form
    of it names (target onnx writes QDQ form: `reference_graph`)."""
    return target.reference_graph(graph) if hasattr(target, "reference_graph") else graph


def _stem(name: str) -> str:
    """The artifacts' file stem: `name` in letters, digits, - and _, at most
    MAX_NAME_LENGTH characters (a long model file name is cut)."""
    stem = "".join(c if c.isalnum() or c in "_-" else "_" for c in name).strip("_")[:MAX_NAME_LENGTH].strip("_")
    return stem or "model"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
