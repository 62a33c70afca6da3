"""The compile driver: model file -> front end -> pipeline -> target -> verify -> report.

`compile` is the one entry point behind both `nnc compile` and the Python API.
Outputs are written into a staging folder beside `output_dir` and moved into
place only when everything, verification included, succeeded; output_folder.py
states what nnc may write and replace there. Modules that only verification,
streaming or IR dumps use are imported where those run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import time
import warnings
from contextlib import ExitStack
from dataclasses import field
from pathlib import Path
from typing import Callable

import numpy as np

from .errors import NncWarning, OptionError, QualityGateError, ShapeError, UnsupportedError
from .frontend.model_file import load_model_file
from .ir import Graph
from .layer_select import left_out_text
from .limits import MAX_NAME_LENGTH
from .passmanager import PassManager, format_pipeline, parse_pipeline
from .pipelines import COMPRESSION
from . import budget, output_folder, quality, sample_sources
from .budget import BudgetChoice
from .compile_options import SAMPLE_OPTIONS, CompileOptions, default_pipeline
from .records import record
from .report import REPORT_FILES, add_layer_errors, arena_layout, render_files
from .report import storage as weight_storage
from .report import build as build_report
from .verification import load_samples, synthetic_samples

Progress = Callable[[str], None]

# Per-layer output errors (report layers[].error) are measured on this many of
# the verification samples: each costs a float and an integer run per layer.
LAYER_ERROR_SAMPLES = 16
# Re-allocations of a budget whose second-order compile stored more than the
# search measured, before falling back to magnitude (see _fit_budget).
BUDGET_ATTEMPTS = 3


@record(frozen=False)
class CompileResult:
    """What `compile` produced: the compiled graph, the report (also written as
    report.json) and the files written, relative to `output_dir`."""

    graph: Graph
    report: dict = field(repr=False)  # printed whole it ran to pages; result.report has it
    output_dir: Path | None = None
    artifacts: list[str] = field(default_factory=list)
    target: object = field(default=None, repr=False)  # the target that compiled it (runs it)

    def run(self, samples) -> dict[str, np.ndarray]:
        """The compiled artifact run on `samples` (a path, {input: array}, one array,
        or an iterable of {input: array}; one leading axis of samples): the C
        binary for c, the simulator for az-sim, the reference interpreter for ir.
        Returns {output: array [N, *output shape]}; inputs are checked as
        verification checks them (names, shapes, dtypes)."""
        if samples is None:
            raise ShapeError(f"samples: {sample_sources.WHAT_TO_GIVE}, not None")
        with sample_sources.in_memory(samples=samples) as found:
            batch = load_samples(found["samples"], self.graph)
        from nnc.backends import run_batched

        with self.target.runner(self.graph, self.output_dir, _stem(self.graph.name)) as run_on:
            outputs = run_batched(run_on, batch)
        return {name: np.stack([np.asarray(o[name]) for o in outputs]) for name in self.graph.outputs}


def compile(model: str | Path, target: str = "ir", output_dir: str | Path | None = None, *,
            progress: Progress | None = None, dump: Callable[[str], None] | None = None,
            **options) -> CompileResult:
    """Compile the ONNX model at `model` for `target`; see CompileOptions for the
    options. Raises an NncError subclass on bad input or failed verification.
    Warnings (e.g. synthetic calibration) are listed in report["warnings"].
    An UnsupportedError names the target: "target c: no integer lowering for ..."."""
    for what, value in (("model", model), ("output_dir", output_dir)):
        if not isinstance(value, (str, os.PathLike)) and (value is not None or what == "model"):
            raise OptionError(f"compile: {what} must be a path (str or Path), got {type(value).__name__}")
    given = {key: options[key] for key in SAMPLE_OPTIONS if key in options}
    with sample_sources.in_memory(**given) as paths:
        _check_option_names(options)
        try:
            opts = CompileOptions(target=target, **{**options, **paths})
        except TypeError as exc:
            raise OptionError(f"compile: {exc}") from None
        try:
            return _compile(model, opts, output_dir, progress, dump)
        except UnsupportedError as exc:
            raise _of_target(opts.target, exc) from None
        except ShapeError as exc:
            hint = _bound_dims_hint(model, exc.input, opts.input_shapes) if exc.input else None
            if hint is None:
                raise
            raise ShapeError(f"{exc}; {hint[0]}", cli=f"{exc.cli or exc}; {hint[1]}") from None


def _bound_dims_hint(model, name: str, input_shapes) -> tuple[str, str] | None:
    """(API, CLI) wordings of a hint when samples for input `name` do not fit
    and the model leaves some of its dims symbolic, bound to 1 because no shape
    was given; else None."""
    from .frontend.model_file import is_text_ir
    from .frontend.onnx_loader import symbolic_axes

    if is_text_ir(model) or name in (input_shapes or {}):
        return None
    axes = symbolic_axes(model).get(name)
    if not axes:
        return None
    dims = ", ".join(f"{a} ({label or 'unnamed'})" for a, label in axes.items())
    said = f"input {name!r} has symbolic dim{'s' * (len(axes) > 1)} {dims}, bound to 1 when no shape is given"
    return (f"{said}; give its shape with input_shapes={{{name!r}: (...)}}",
            f"{said}; give its shape with --input-shape {name}=D0,D1,...")


def _check_option_names(options: dict) -> None:
    """OptionError naming the first keyword that is not an option, with the
    closest option name (a misspelt keyword)."""
    known = [f.name for f in dataclasses.fields(CompileOptions) if f.name != "target"]
    for name in options:
        if name not in known:
            from difflib import get_close_matches

            close = get_close_matches(name, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else "; see help(nnc.CompileOptions)"
            raise OptionError(f"compile: unknown option {name!r}{hint}")


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
                          weight_storage(graph, tgt), _sha256(Path(model)), budget.fp32_bytes(original))
    # each once, in order: the budget search meets the same condition in every candidate it compiles
    report["warnings"] = list(dict.fromkeys(str(w.message) for w in caught if issubclass(w.category, NncWarning)))
    report["budget"] = report_budget
    with output_folder.staged(output_dir, Path(model)) as staging:
        if staging:
            say(f"writing the {opts.target} output")
        artifacts = tgt.emit(exported, staging, _stem(graph.name)) if staging else []
        if opts.verify:
            from . import streaming
            from .layer_error import layer_errors
            from .verify_step import is_integer_graph, verification_warnings, verify, verify_streaming

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


@record(frozen=False)
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
        raise _of_target(options.target, exc) from None


def _of_target(target: str, exc: UnsupportedError) -> UnsupportedError:
    """`exc` naming `target`, in its API and CLI wordings."""
    return UnsupportedError(f"target {target}: {exc}", cli=exc.cli and f"target {target}: {exc.cli}")


def _load_chunk(model: str | Path, opts: CompileOptions) -> Graph:
    """The model at its --stream chunk shapes; a shape computation that fails
    there (a layer sized for the whole sequence) is said to be the chunk's."""
    from .frontend.onnx_loader import load

    try:
        return load(model, {**(opts.input_shapes or {}), **opts.stream}, frozenset(opts.stream))
    except ShapeError as exc:
        chunks = ", ".join(f"{name}={','.join(map(str, dims))}" for name, dims in opts.stream.items())
        said = (f"the model does not run on a chunk ({{}} {chunks}): {exc} (a shape fixed to the whole "
                "sequence, such as a Reshape to its length, attention over every time step or a table of "
                "positions, cannot run chunk by chunk)")
        raise ShapeError(said.format("stream"), cli=said.format("--stream")) from None


def _run_pipeline(model: str | Path, opts: CompileOptions, tgt, dump, say: Progress) -> _Piped:
    """Load `model` and run the pipeline `opts` asks for (streaming, budget search included)."""
    say(f"loading {model}")
    original, whole = _named(load_model_file(model, opts.input_shapes), opts.name), None
    report_budget = choice = whole_original = None
    with ExitStack() as scratch_folder:
        if opts.stream:
            import tempfile

            from . import streaming

            streaming.check_stream(model, original, opts.stream, opts.input_shapes)
            scratch = scratch_folder.enter_context(tempfile.TemporaryDirectory())
            ranges = str(Path(scratch) / "ranges.json")
            say("compiling the whole-sequence graph (streaming reference)")
            whole = PassManager(parse_pipeline(default_pipeline(tgt, opts, "whole", ranges))).run(original.copy())
            whole_original = original
            original = _named(_load_chunk(model, opts), opts.name)
            passes = parse_pipeline(default_pipeline(tgt, opts, "chunk", ranges))
        else:
            choice = _budget_search(original, opts, say)
            passes = (parse_pipeline(default_pipeline(tgt, opts, budget=choice)) if opts.pipeline is None
                      else _with_calib(parse_pipeline(opts.pipeline), opts.calib))
        say(f"running pipeline {format_pipeline(passes)}")
        if choice is None:
            manager, graph = _run_passes(passes, original, opts, dump, say)
        else:
            passes, manager, graph, report_budget = _fit_budget(tgt, opts, original, choice, passes, dump, say)
    return _Piped(original, graph, passes, manager, whole, whole_original, report_budget)


def _with_calib(passes: list, calib) -> list:
    """A user's pipeline with `calib` (--calib) given to each pass that takes a
    calibration file and names none."""
    if calib is None:
        return passes
    return [dataclasses.replace(p, calib=str(calib)) if getattr(p, "calib", None) == "" else p for p in passes]


def _run_passes(passes, original: Graph, opts: CompileOptions, dump,
                say: Progress | None = None) -> tuple[PassManager, Graph]:
    # the float snapshot serves verification's per-layer errors only (_compile)
    manager = PassManager(passes, verify_each=opts.verify_each, print_after=set(opts.print_ir_after),
                          snapshot_before=COMPRESSION if opts.verify else frozenset(), progress=say,
                          dump=(lambda name, g: dump(f"// IR after {name}\n{print_ir(g, elide_constants=True)}"))
                          if dump else None)
    return manager, manager.run(original.copy())


def print_ir(graph: Graph, **options) -> str:
    """textir's print_ir, imported when an IR dump (--print-ir-after) asks for it."""
    from .textir.printer import print_ir as printed

    return printed(graph, **options)


def _fit_budget(tgt, opts: CompileOptions, original: Graph, choice: BudgetChoice, passes: list, dump, say):
    """Compile with `passes` (the budget's allocation). Second-order methods move
    the weights and so their encoded size: while the compiled weights pass the
    budget, re-allocate with each layer's sizes corrected by what it really took
    (BUDGET_ATTEMPTS times, or until the corrected sizes no longer fit), then
    compile once more with magnitude. Returns the passes, manager and graph that
    fit, and report["budget"]; only that compile's warnings are issued (an
    attempt that was discarded may meet conditions the final one does not).
    OptionError, with the bytes each attempt stored, when none fits."""
    method = opts.method or ("obs" if opts.calib is not None else "magnitude")
    attempts: list[int] = []
    while True:
        with warnings.catch_warnings(record=True) as heard:
            warnings.simplefilter("always", NncWarning)
            manager, graph = _run_passes(passes, original, opts, dump, say)
        stored = _stored_by(tgt, graph)
        taken = sum(stored[name] for name, _ in choice.layers.values())
        attempts.append(taken)
        if taken <= choice.budget_bytes:
            for heard_warning in heard:
                warnings.warn(heard_warning.message)
            return manager.passes, manager, graph, choice.to_json() | {"method": method, "attempts": len(attempts),
                                                                        "stored_bytes": taken}
        if method == "magnitude":
            tried = ", ".join(f"{b:,}" for b in attempts)
            raise OptionError(f"weight budget {choice.budget_bytes:,} bytes not met: the compiled weights took "
                              f"{tried} bytes in {len(attempts)} allocation(s), the last by magnitude; "
                              "give a larger budget")
        corrected = _corrected(choice, stored) if len(attempts) <= BUDGET_ATTEMPTS else None
        if corrected is None:  # out of attempts, or the corrected sizes fit no allocation
            method, opts = "magnitude", dataclasses.replace(opts, method="magnitude")
        else:
            choice = corrected
        say(f"budget: {taken:,} bytes stored, over {choice.budget_bytes:,}; allocating again ({method})")
        passes = parse_pipeline(default_pipeline(tgt, opts, budget=choice))


def _stored_by(tgt, graph: Graph) -> dict[str, int]:
    """{layer: weight bytes} as the target stores them when it says
    (`stored_weight_bytes`: C's packed rows are laid out for its kernels), else
    in their smallest exact encoding (what the search measured, and what the
    az-sim blob stores)."""
    measure = getattr(tgt, "stored_weight_bytes", None)
    return budget.stored_bytes(graph) if measure is None else measure(graph)


def _corrected(choice: BudgetChoice, stored: dict[str, int]) -> BudgetChoice | None:
    """choice.corrected(stored), or None when no allocation fits the corrected sizes."""
    try:
        return choice.corrected(stored)
    except OptionError:
        return None


def _budget_search(original: Graph, opts: CompileOptions, say: Progress) -> BudgetChoice | None:
    """The budget search's choice when --flash-budget or --ratio asks for one."""
    if opts.flash_budget is None and opts.ratio is None:
        return None
    budget_bytes = opts.flash_budget or int(budget.fp32_bytes(original) / opts.ratio)
    if opts.calib is None:
        warnings.warn("budget search on synthetic random samples; give calib (--calib) with real inputs", NncWarning)
    samples = load_samples(opts.calib, original) if opts.calib else synthetic_samples(original, budget.SEARCH_SAMPLES)
    method = opts.method or ("obs" if opts.calib is not None else "magnitude")
    choice = budget.search(original, samples, str(opts.calib or ""), budget_bytes, say, method)
    asked = (f"flash_budget {opts.flash_budget} (--flash-budget)" if opts.flash_budget
             else f"ratio {opts.ratio:g} (--ratio)")
    others = left_out_text(original, "at int8")
    if not choice.candidates:  # met or missed by weights it cannot change: say so, apply none
        warnings.warn(f"{asked}: no budget applied: the search chooses the weights of Conv, Gemm and MatMul "
                      "layers only, and the model has none" + (f"; {others}, outside any budget" if others else ""),
                      NncWarning)
        return None
    if others:
        warnings.warn(f"{asked}: the search chooses the weights of Conv, Gemm and MatMul layers only; {others}, "
                      "outside the budget", NncWarning)
    return choice


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
