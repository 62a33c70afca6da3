"""The `nnc` command line (typer).

Every command turns an NncError into one line on stderr and exit code 2; any
other exception is a bug in nnc and exits 3 with a one-line notice (the traceback
only with --debug).
"""

from __future__ import annotations

import atexit
import copy
import gc
import json
import os
import signal
import sys
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import typer

from . import __version__
from . import cli_options as flags
from .errors import NncError, OptionError, QualityGateError
from .cli_render import render_sim, render_summary
from .tables import format_table, shorten_apart, thousands

# The module of the exceptions typer raises for usage mistakes: click.exceptions,
# or the copy of it that newer typer versions carry.
_USAGE = sys.modules[typer.BadParameter.__module__]

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, rich_markup_mode=None,
                  help="nnc: compile ONNX models for microcontrollers and AZ-class edge processors.")

DEBUG = typer.Option(False, "--debug", help="Show a traceback on internal errors.")
INPUT_SHAPE = typer.Option([], "--input-shape", metavar="NAME=D0,D1,...",
                           help="Bind an input's shape (symbolic dims default to 1). Repeatable.")


@contextmanager
def _errors_to_exit(debug: bool):
    _start_up_done()
    try:
        yield
    except NncError as exc:
        typer.echo("nnc: error: " + _one_line(getattr(exc, "cli", None) or str(exc)), err=True)
        raise typer.Exit(2) from None
    except KeyboardInterrupt as exc:
        raise typer.Exit(_report_interrupt(getattr(exc, "signum", signal.SIGINT))) from None
    except (typer.Exit, typer.Abort):
        raise
    except BrokenPipeError:  # `nnc inspect M | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise typer.Exit(1) from None
    except Exception as exc:
        if debug:
            raise
        typer.echo(f"nnc: internal error: {type(exc).__name__}: {exc} "
                   "(this is a bug in nnc; rerun with --debug for the traceback)", err=True)
        raise typer.Exit(3) from None


def _one_line(message: str) -> str:
    """A multi-line error message on one line: a line ending in ':' runs on into
    the next, other lines are separated by '; ' (a list of problems stays a list)."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    return "".join(line + ("" if i == len(lines) - 1 else " " if line.endswith(":") else "; ")
                   for i, line in enumerate(lines))


def _parse_shapes(specs: list[str], flag: str = "--input-shape") -> dict[str, tuple[int, ...]]:
    from .limits import check_dims

    shapes = {}
    for spec in specs:
        name, sep, dims = spec.rpartition("=")
        try:
            shape = tuple(int(d) for d in dims.split(","))
        except ValueError:
            shape = ()
        if not sep or not name or not shape:
            raise OptionError(f"{flag} {spec!r}: expected NAME=D0,D1,... with integer dims")
        shapes[name] = check_dims(shape, f"{flag} {name}")
    return shapes


def _version(value: bool):
    if value:
        typer.echo(f"nnc {__version__}")
        raise typer.Exit()


@app.callback()
def _main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")):
    """nnc: compile ONNX models for microcontrollers and AZ-class edge processors."""


@app.command()
def inspect(model: str = typer.Argument(..., help="ONNX model file, or a text IR file (.nnir) nnc compiled."),
            as_json: bool = typer.Option(False, "--json", help="Print the table as JSON."),
            input_shape: list[str] = INPUT_SHAPE,
            sensitivity: bool = typer.Option(False, "--sensitivity",
                                             help="Per layer: the output error when that layer alone is "
                                                  "quantized to --bits or pruned to --sparsity."),
            calib: Optional[Path] = typer.Option(None, "--calib",
                                                 help="Samples (.npz/.npy) for --sensitivity (default: synthetic)."),
            bits: int = typer.Option(4, "--bits", help="Weight bits tried per layer (--sensitivity)."),
            sparsity: float = typer.Option(0.5, "--sparsity",
                                           help="Sparsity tried per layer (--sensitivity)."),
            method: Optional[str] = flags.METHOD,
            debug: bool = DEBUG):
    """Per-layer table of a model: op, shapes, parameters, MACs, and totals;
    with --sensitivity, how much each layer tolerates compression."""
    from .summary import summarize

    with _errors_to_exit(debug):
        if sensitivity and not (2 <= bits <= 8 and 0.0 <= sparsity < 1.0):
            raise OptionError(f"--bits must be in 2..8 and --sparsity in [0, 1), got {bits} and {sparsity}")
        given = [flag for flag, asked in (("--bits", bits != 4), ("--sparsity", sparsity != 0.5),
                                          ("--calib", calib is not None), ("--method", method is not None)) if asked]
        if given and not sensitivity:
            raise OptionError(f"{', '.join(given)} appl{'ies' if len(given) == 1 else 'y'} to --sensitivity, "
                              "which was not given")
        graph = _load_model_or_ir(model, input_shape)
        if sensitivity:
            _print_sensitivity(graph, calib, bits, sparsity, method, as_json)
            return
        from .layer_select import layer_ids

        summary, ids = summarize(graph), layer_ids(graph)
        if as_json:
            data = summary.to_json()
            data["layers"] = [{"id": ids.get(layer["name"]), **layer} for layer in data["layers"]]
            typer.echo(json.dumps(data, indent=2))
            return
        names = shorten_apart([l.name for l in summary.layers], 48)
        rows = [[ids.get(l.name, ""), name, l.op, " ".join(map(str, l.input_shapes)),
                 " ".join(map(str, l.output_shapes)), thousands(l.params), thousands(l.macs)]
                for l, name in zip(summary.layers, names)]
        typer.echo(format_table(["id", "layer", "op", "inputs", "outputs", "params", "MACs"], rows, numeric={5, 6}))
        t = summary.totals
        typer.echo(f"\n{t['layers']} layers ({t['qdq_nodes']} quantize/dequantize nodes not listed), "
                   f"{thousands(t['params'])} parameters, {thousands(t['macs'])} MACs")


def _load_model_or_ir(model: str, input_shape: list[str]):
    from .frontend.model_file import load_model_file

    return load_model_file(model, _parse_shapes(input_shape))


def _print_sensitivity(graph, calib: Optional[Path], bits: int, sparsity: float, method: Optional[str],
                       as_json: bool) -> None:
    from .sensitivity import analyze
    from .verification import load_samples, synthetic_samples

    samples = load_samples(calib, graph) if calib else synthetic_samples(graph, 4)
    if not calib:
        typer.echo("nnc: warning: sensitivity measured on 4 synthetic random samples; give --calib with real "
                   "inputs", err=True)
    say = (lambda m: typer.echo(f"nnc: {m}", err=True)) if sys.stderr.isatty() else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        baseline, rows = analyze(graph, samples, str(calib or ""), bits, sparsity, say, method)
    if as_json:
        typer.echo(json.dumps({"bits": bits, "sparsity": sparsity, "baseline_int8": baseline,
                               "layers": [vars(r) for r in rows]}, indent=2))
        return
    from .layer_select import layer_ids

    ids = layer_ids(graph)
    table = [[ids.get(r.name, ""), name, r.op, thousands(r.params), f"{r.bits['cosine']:.4f}", f"{r.bits['rmse']:.3g}",
              f"{r.pruned['cosine']:.4f}", f"{r.pruned['rmse']:.3g}"]
             for r, name in zip(rows, shorten_apart([r.name for r in rows], 48))]
    typer.echo(format_table(["id", "layer", "op", "weights", f"{bits}-bit cosine", "rmse",
                             f"{sparsity:.0%} pruned cosine", "rmse"], table, numeric={3, 4, 5, 6, 7}))
    typer.echo(f"\nmodel output vs float on {len(samples)} sample(s), one layer changed at a time, all others "
               f"int8; all-int8 baseline: cosine {baseline['cosine']:.4f}, rmse {baseline['rmse']:.3g}")


@app.command("compile")
def compile_(model: str = typer.Argument(..., help="ONNX model file, or text IR (.nnir)."),
             target: str = typer.Option("ir", "--target", "-t", help="Output kind: ir, c, az-sim or onnx."),
             onnx_form: str = flags.ONNX_FORM,
             output: Path = typer.Option(..., "--output", "-o", help="Output folder (created or replaced)."),
             pipeline: Optional[str] = typer.Option(None, "--pipeline",
                                                    help="Pass pipeline, e.g. 'canonicalize,fold-constants'. "
                                                         "Default: the target's pipeline."),
             inputs: Optional[Path] = typer.Option(None, "--inputs",
                                                   help="Samples (.npz/.npy) for verification (default: --calib)."),
             labels: Optional[Path] = typer.Option(None, "--labels",
                                                   help="Class ids of the --inputs samples (.npy): report accuracy."),
             input_shape: list[str] = INPUT_SHAPE,
             stream: list[str] = typer.Option([], "--stream", metavar="NAME=D0,D1,...",
                                              help="Compile for streaming: the input's chunk shape (a part of its "
                                                   "time axis); recurrent states become inputs/outputs. Repeatable."),
             name: Optional[str] = typer.Option(None, "--name",
                                                help="Name of the compiled model: file stem and C symbol prefix "
                                                     "(default: the model file's stem)."),
             no_verify: bool = typer.Option(False, "--no-verify", help="Skip verification."),
             verify_each: bool = typer.Option(False, "--verify-each", help="Verify the IR after every pass."),
             print_ir_after: list[str] = typer.Option([], "--print-ir-after", metavar="PASS|all",
                                                      help="Print the IR (constants elided) to stderr after a pass."),
             calib: Optional[Path] = flags.CALIB, quantize: Optional[bool] = flags.QUANTIZE,
             hw: Optional[str] = flags.HW, weight_bits: int = flags.WEIGHT_BITS,
             first_last_bits: Optional[int] = flags.FIRST_LAST_BITS, codebook: bool = flags.CODEBOOK,
             bias_correction: bool = flags.BIAS_CORRECTION, sparsity: float = flags.SPARSITY,
             sparsity_pattern: Optional[str] = flags.SPARSITY_PATTERN, prune_channels: float = flags.PRUNE_CHANNELS,
             method: Optional[str] = flags.METHOD, layer_bits: Optional[str] = flags.LAYER_BITS,
             layer_sparsity: Optional[str] = flags.LAYER_SPARSITY, flash_budget: Optional[str] = flags.FLASH_BUDGET,
             ratio: Optional[float] = flags.RATIO, pack: str = flags.PACK, c_weights: str = flags.C_WEIGHTS,
             c_arrays: str = flags.C_ARRAYS,
             min_cosine: Optional[float] = flags.MIN_COSINE,
             max_accuracy_drop: Optional[float] = flags.MAX_ACCURACY_DROP,
             quiet: bool = typer.Option(False, "--quiet", "-q",
                                        help="No progress lines (they go to stderr when it is a terminal)."),
             debug: bool = DEBUG):
    """Compile MODEL for a target; write the artifacts and report.json into OUTPUT.
    Exit codes: 0 done, 2 bad input, 3 a bug in nnc, 4 a quality gate missed."""
    from .driver import compile as compile_model

    parameters = dict(locals())
    rendered = lambda r: render_summary(r.report) + f"\n\nwrote {', '.join(r.artifacts)} to {output}"  # noqa: E731
    with _errors_to_exit(debug), _quality_gate(rendered) as finish:
        options = flags.compression(parameters)
        result = compile_model(
            model, target, output, pipeline=pipeline, inputs=inputs, labels=labels,
            input_shapes=_parse_shapes(input_shape), stream=_parse_shapes(stream, "--stream") or None, name=name,
            verify=not no_verify, verify_each=verify_each, print_ir_after=tuple(print_ir_after),
            progress=_progress(quiet), dump=lambda text: typer.echo(text, err=True), **options)
        finish(result)


@app.command("validate")
def validate_(model: str = typer.Argument(..., help="ONNX model file, or text IR (.nnir)."),
              data: Path = typer.Option(..., "--data", help="Samples (.npz/.npy, one leading axis of samples)."),
              labels: Optional[Path] = typer.Option(None, "--labels", help="Class ids of the samples (.npy)."),
              target: str = typer.Option("az-sim", "--target", "-t", help="Target run on the data: c, az-sim, onnx or ir."),
              onnx_form: str = flags.ONNX_FORM,
              output: Optional[Path] = typer.Option(None, "--output", "-o",
                                                    help="Keep the compiled artifacts and report.json here."),
              input_shape: list[str] = INPUT_SHAPE,
              as_json: bool = typer.Option(False, "--json", help="Print the metrics as JSON."),
              calib: Optional[Path] = flags.CALIB, quantize: Optional[bool] = flags.QUANTIZE,
              hw: Optional[str] = flags.HW, weight_bits: int = flags.WEIGHT_BITS,
              first_last_bits: Optional[int] = flags.FIRST_LAST_BITS, codebook: bool = flags.CODEBOOK,
              bias_correction: bool = flags.BIAS_CORRECTION, sparsity: float = flags.SPARSITY,
              sparsity_pattern: Optional[str] = flags.SPARSITY_PATTERN, prune_channels: float = flags.PRUNE_CHANNELS,
              method: Optional[str] = flags.METHOD, layer_bits: Optional[str] = flags.LAYER_BITS,
              layer_sparsity: Optional[str] = flags.LAYER_SPARSITY, flash_budget: Optional[str] = flags.FLASH_BUDGET,
              ratio: Optional[float] = flags.RATIO, pack: str = flags.PACK, c_weights: str = flags.C_WEIGHTS,
              c_arrays: str = flags.C_ARRAYS,
              min_cosine: Optional[float] = flags.MIN_COSINE,
              max_accuracy_drop: Optional[float] = flags.MAX_ACCURACY_DROP,
              quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress lines."),
              debug: bool = DEBUG):
    """Compile MODEL and run the compiled target on a data set: accuracy (with
    --labels), cosine, RMSE and relative L2 error against the float model."""
    from .validation import render, validate

    parameters = dict(locals())
    rendered = lambda r: json.dumps(r.report["verification"], indent=2) if as_json else render(r.report)  # noqa: E731
    with _errors_to_exit(debug), _quality_gate(rendered) as finish:
        options = flags.compression(parameters)
        result = validate(model, data, labels, target, output, input_shapes=_parse_shapes(input_shape),
                          progress=_progress(quiet), **options)
        finish(result)


@app.command("finetune")
def finetune_(model: str = typer.Argument(..., help="Float ONNX model (or text IR) to compress while training."),
              data: Path = typer.Option(..., "--data", help="Training samples (.npz/.npy, one leading axis of samples)."),
              labels: Optional[Path] = typer.Option(None, "--labels", help="Class ids of the samples (.npy)."),
              output: Path = typer.Option(..., "--output", "-o", help="Write MODEL.nnir, MODEL.onnx and finetune.json here."),
              calib: Optional[Path] = typer.Option(None, "--calib", help="Calibration samples (default: --data)."),
              weight_bits: int = flags.WEIGHT_BITS, first_last_bits: Optional[int] = flags.FIRST_LAST_BITS,
              codebook: bool = flags.CODEBOOK, sparsity: float = flags.SPARSITY,
              sparsity_pattern: Optional[str] = flags.SPARSITY_PATTERN, prune_channels: float = flags.PRUNE_CHANNELS,
              layer_bits: Optional[str] = flags.LAYER_BITS, layer_sparsity: Optional[str] = flags.LAYER_SPARSITY,
              epochs: int = typer.Option(15, "--epochs", help="Most epochs to train."),
              lr: float = typer.Option(3e-3, "--lr", help="Adam learning rate (cosine decay to 0)."),
              batch_size: int = typer.Option(64, "--batch-size", help="Samples per step."),
              seed: int = typer.Option(0, "--seed", help="Seed of the holdout split, the order and torch."),
              patience: int = typer.Option(3, "--patience",
                                           help="Stop after this many epochs at full sparsity without improvement."),
              holdout: float = typer.Option(0.1, "--holdout", help="Share of --data kept to choose the epoch."),
              temperature: float = typer.Option(4.0, "--temperature", help="Distillation temperature."),
              label_weight: float = typer.Option(0.5, "--label-weight",
                                                 help="Weight of the labels' cross-entropy (with --labels)."),
              feature_weight: float = typer.Option(0.0, "--feature-weight",
                                                   help="Weight of per-layer feature distillation."),
              grid_weight: float = typer.Option(0.0, "--grid-weight", help="Weight pulling weights onto their grid."),
              exact_epochs: int = typer.Option(0, "--exact-epochs",
                                               help="Train the last epochs on the targets' integer outputs."),
              threads: int = typer.Option(1, "--threads", help="Torch threads (1: same result on any machine)."),
              input_shape: list[str] = INPUT_SHAPE,
              quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress."),
              debug: bool = DEBUG):
    """Compress MODEL while fine-tuning it on --data (needs PyTorch: pip install 'nnc[train]').
    Writes a model that `nnc compile` takes as it is; see docs/training.md."""
    with _errors_to_exit(debug):
        import nnc.train  # noqa: F401  (one line naming the extra when PyTorch is missing)

        from .finetune import finetune
        from .finetune_progress import epoch_line, progress_bar

        compression = {"weight_bits": weight_bits, "first_last_bits": first_last_bits, "codebook": codebook,
                       "sparsity": sparsity, "sparsity_pattern": sparsity_pattern, "prune_channels": prune_channels,
                       "layer_bits": layer_bits or "", "layer_sparsity": layer_sparsity or ""}
        fit = {"epochs": epochs, "lr": lr, "batch_size": batch_size, "seed": seed, "patience": patience,
               "holdout": holdout, "grid_weight": grid_weight, "exact_epochs": exact_epochs,
               "threads": threads}
        distillation = {"temperature": temperature, "label_weight": label_weight, "feature_weight": feature_weight}
        with progress_bar(quiet) as (on_step, say):
            result = finetune(model, data, labels, output, calib=calib, compression=compression, fit=fit,
                              distillation=distillation, input_shapes=_parse_shapes(input_shape), say=say,
                              on_step=on_step, on_epoch=lambda e: say(epoch_line(e)))
        report = result.report
        kept, trained = report["kept_epoch"], len(report["epochs"])
        final = sum(epoch["final"] for epoch in report["epochs"])
        outcome = (f"kept the one-shot model: none of the {final} epochs at final sparsity beat it"
                   if kept["epoch"] == 0 else f"fine-tuned {_score(kept)} (epoch {kept['epoch']} of {trained})")
        typer.echo(f"one-shot {_score(report['one_shot'])} -> {outcome} on the holdout (exact integer "
                   f"arithmetic), {report['seconds']:.1f} s")
        typer.echo(f"wrote {', '.join(result.artifacts)} to {output}")


def _score(record: dict) -> str:
    if record.get("accuracy") is not None:
        return f"accuracy {record['accuracy']:.2%}"
    if record.get("agreement") is not None:
        return f"top-1 agreement {record['agreement']:.2%}"
    return f"mse {-record['score']:.4g}"


@contextmanager
def _quality_gate(render):
    """Yield `finish(result)`, which prints the warnings and `render(result)`; a
    QualityGateError prints them the same way (validate's table or JSON stays
    what it is), then its line, and exits 4."""
    def finish(result):
        for message in result.report["warnings"]:
            typer.echo(f"nnc: warning: {message}", err=True)
        typer.echo(render(result))

    try:
        yield finish
    except QualityGateError as exc:
        finish(exc.result)
        typer.echo(f"nnc: error: {exc}", err=True)
        raise typer.Exit(4) from None


def _progress(quiet: bool):
    return None if quiet or not sys.stderr.isatty() else (lambda m: typer.echo(f"nnc: {m}", err=True))


from . import cli_explore  # noqa: E402,F401  (registers `nnc explore` here, keeping --help's order)


@app.command("run")
def run_blob(blob: str = typer.Argument(..., help="az-sim blob (.azb) written by `nnc compile --target az-sim`."),
             inputs: Path = typer.Option(..., "--inputs", help="Inputs (.npz/.npy); one extra leading axis = a batch."),
             output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write the outputs here (.npz)."),
             hw: Optional[str] = typer.Option(None, "--hw", help="Machine: a TOML file, or a preset: small, default, large."),
             as_json: bool = typer.Option(False, "--json", help="Print the statistics as JSON."),
             debug: bool = DEBUG):
    """Execute an az-sim blob in the simulator and print its statistics."""
    from nnc.backends.azsim.api import simulate

    from . import run_output

    with _errors_to_exit(debug):
        if output is not None:
            run_output.check(output, blob, inputs)
        outputs, stats = simulate(blob, inputs, hw)
        runs = stats if isinstance(stats, list) else [stats]
        if output is not None:
            run_output.write_npz(output, outputs)
        if as_json:
            typer.echo(json.dumps({"samples": len(runs), "runs": [s.to_json() for s in runs]}, indent=2))
            return
        typer.echo(render_sim(runs[0].to_json()))
        if len(runs) > 1:
            typer.echo(f"{len(runs)} samples: {thousands(sum(s.cycles for s in runs))} cycles, "
                       f"{sum(s.energy_uj for s in runs):.3f} µJ in all")
        if output is not None:
            typer.echo(f"wrote {', '.join(outputs)} to {output}")


@app.command("report")
def report_(report_file: Path = typer.Argument(..., metavar="OUT/report.json",
                                               help="The report.json a compile wrote."),
            output: Optional[Path] = typer.Option(None, "--output", "-o",
                                                  help="Write the files here (default: beside report.json)."),
            debug: bool = DEBUG):
    """Render report.html and layers.csv again from a compile's report.json
    (the same bytes the compile wrote, for the same report)."""
    from .report import render_again

    with _errors_to_exit(debug):
        folder, written = render_again(report_file, output)
        typer.echo(f"wrote {', '.join(written)} to {folder}")


def _show_warning(message, category, filename, lineno, file=None, line=None):
    typer.echo(f"nnc: warning: {category.__name__}: {' '.join(str(message).split())}", err=True)


def run_cli(args: list[str] | None = None) -> int:
    """Run the command line on `args` (default: sys.argv[1:]) and return the exit
    code. Mistakes typer finds before a command runs (an unknown flag, a missing
    value, `--weight-bits x`) print one line `nnc: error: ...` and exit 2, as
    NncErrors do; `nnc` alone prints the help (exit 2). Python warnings that
    escape (numpy's overflow on extreme values) print as one `nnc: warning:` line."""
    warnings.showwarning = _show_warning
    if args is None:
        args = sys.argv[1:]
    try:
        code = _app_for(args)(args=args, prog_name="nnc", standalone_mode=False)
    except KeyboardInterrupt as exc:  # while typer built the command, before it could catch it
        return _report_interrupt(getattr(exc, "signum", signal.SIGINT))
    except getattr(_USAGE, "NoArgsIsHelpError", ()) as exc:  # `nnc` alone
        typer.echo(exc.ctx.get_help())
        return 2
    except _USAGE.ClickException as exc:
        context = getattr(exc, "ctx", None)
        command = context.command_path if context is not None else "nnc"
        message = " ".join(part.strip() for part in exc.format_message().splitlines() if part.strip())
        typer.echo(f"nnc: error: {message} (see {command} --help)", err=True)
        return 2
    except typer.Abort:
        typer.echo("nnc: error: aborted", err=True)
        return 1
    if _SignalLog.received and not _SignalLog.reported:  # typer turned it into a silent exit 130 while parsing
        return _report_interrupt(_SignalLog.received[-1])
    return code if isinstance(code, int) else 0


def _app_for(args: list[str]) -> typer.Typer:
    """The app holding only the command `args` name, when they start with one
    (typer builds each command's options from its signature, about 6 ms for all
    of them on every start); the whole app otherwise (`nnc --help`, a mistyped
    command). Both parse a command's arguments alike."""
    named = [info for info in app.registered_commands
             if args and (info.name or typer.main.get_command_name(info.callback.__name__)) == args[0]]
    if len(named) != 1:
        return app
    one = copy.copy(app)  # the same settings and callback
    one.registered_commands = named
    return one


class Interrupted(KeyboardInterrupt):
    """SIGINT, SIGTERM or SIGHUP, raised where Python is so that cleanup runs as for Ctrl-C."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class _SignalLog:
    """The signals main's handlers received, and whether the interruption was
    reported: one arriving while typer parses the arguments becomes its silent
    exit 130, which run_cli then reports as one that reaches a command."""

    received: list[int] = []
    reported = False


def _interrupt(signum, frame):
    _SignalLog.received.append(signum)
    raise Interrupted(signum)


def _report_interrupt(signum: int) -> int:
    """Print the one error line of an interruption; its exit code, 128 + signum."""
    _SignalLog.reported = True
    typer.echo(f"nnc: error: interrupted by {signal.Signals(signum).name}; no output was written", err=True)
    return 128 + signum


_gc_paused = False


def _pause_gc_for_start_up() -> None:
    """Start-up (imports) creates only long-lived objects, which the cyclic
    garbage collector would traverse again and again, and once more at exit:
    about 60 ms of a 0.3 s compile. So the script pauses collection until a
    command starts its work (`_start_up_done`), and freezes what is left at
    exit, where every output is already written and closed."""
    global _gc_paused
    _gc_paused = True
    gc.disable()
    atexit.register(gc.freeze)


def _start_up_done() -> None:
    """Move the start-up's objects out of collection's way and collect again."""
    global _gc_paused
    if _gc_paused:
        _gc_paused = False
        gc.freeze()
        gc.enable()


def main() -> int:
    """The `nnc` script. SIGTERM and SIGHUP stop nnc as Ctrl-C does: staging and
    build folders are removed, one error line is printed (also when the signal
    arrives while the arguments are parsed), and the exit code is 128 + the
    signal number."""
    _pause_gc_for_start_up()
    from .console import SIGNALS, handle

    handle(SIGNALS, _interrupt)
    return run_cli()


if __name__ == "__main__":
    sys.exit(main())
