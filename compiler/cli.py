"""The `nnc` command line (argparse).

Each command is a function registered with `command`, which names the function
that defines its arguments; only the command a line names is built (the whole
list is for `nnc --help`). Every command turns an NncError into one line on
stderr and exit code 2; a usage mistake (an unknown flag, a missing value,
`--weight-bits x`) is one such line too; any other exception is a bug in nnc
and exits 3 with a one-line notice (the traceback only with --debug).

argparse, not typer: typer and its copy of click take about 0.1 s of every
start (103 M instructions beside numpy's 335 M, 0.28 with pydantic), which the
issue's start-up and compile-time targets cannot carry; argparse takes 8 M.
"""

from __future__ import annotations

import argparse
import atexit
import gc
import json
import os
import signal
import sys
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, NamedTuple, Optional

from . import __version__
from . import cli_options as flags
from .cli_options import FILE, FOLDER, MACHINE, add, flag, switch, text_of
from .errors import NncError, NncWarning, OptionError, QualityGateError
from .cli_render import render_sim, render_summary
from .tables import format_table, shorten_apart, thousands

SUMMARY = "nnc: compile ONNX models for microcontrollers and AZ-class edge processors."
DEBUG = switch("--debug", "Show a traceback on internal errors.")
INPUT_SHAPE = flag("--input-shape", action="append", default=[], metavar="NAME=D0,D1,...",
                   help="Bind an input's shape (symbolic dims default to 1). Repeatable.")
MODEL = flag("model", metavar="MODEL", type=text_of("model file name"), help="ONNX model file, or text IR (.nnir).")


def quiet(help: str = "No progress lines (they go to stderr when it is a terminal).") -> flags.Flag:
    return flag("-q", "--quiet", action="store_true", help=help)


class Command(NamedTuple):
    """A subcommand: `define(parser)` adds its arguments, `run(**parsed)` runs it."""

    run: Callable
    define: Callable[[argparse.ArgumentParser], None]

    @property
    def description(self) -> str:
        return " ".join(self.run.__doc__.split())

    @property
    def summary(self) -> str:
        """The description's first sentence or clause."""
        return self.description.split(". ")[0].split("; ")[0].rstrip(".") + "."


COMMANDS: dict[str, Command] = {}


def command(name: str, define: Callable[[argparse.ArgumentParser], None]):
    """Register the decorated function as `nnc NAME`, its arguments added by `define`."""
    def register(run):
        COMMANDS[name] = Command(run, define)
        return run
    return register


def echo(text: str = "", err: bool = False, end: str = "\n") -> None:
    """Print `text` to stdout (stderr with `err`), flushed at once."""
    print(text, end=end, file=sys.stderr if err else sys.stdout, flush=True)


class _Exit(Exception):
    """Leave the command line with `code` (run_cli's return value)."""

    def __init__(self, code: int):
        super().__init__(code)
        self.code = code


class _UsageError(Exception):
    """A usage mistake argparse found; `prog` is the command line it was made on."""

    def __init__(self, message: str, prog: str):
        super().__init__(message)
        self.prog = prog


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose mistakes and exits raise instead of leaving Python."""

    def error(self, message: str):
        raise _UsageError(message, self.prog)

    def exit(self, status: int = 0, message: str | None = None):
        if message:
            echo(message.rstrip("\n"), err=True)
        raise _Exit(status)


def _checked(args: list[str], parser: argparse.ArgumentParser) -> list[str]:
    """`args` as argparse should read them, checked before it does (it reports a
    missing required option first, and takes `-1e-3` or `-4K` for a flag):
    help asked for anywhere prints it (exit 0); an unknown flag is an error
    naming the closest known one; a flag's value that starts with '-' is
    attached to its flag (`--lr=-1e-3`). Arguments after `--` are left as they are."""
    actions = parser._option_string_actions
    if any(arg in ("-h", "--help") for arg in args[:args.index("--") if "--" in args else len(args)]):
        parser.print_help()
        raise _Exit(0)
    out, index = [], 0
    while index < len(args):
        arg = args[index]
        if arg == "--":
            return out + args[index:]
        name = arg.split("=", 1)[0]
        if arg.startswith("-") and len(arg) > 1 and name not in actions and not _is_number(arg) \
                and not (arg[1] != "-" and arg[:2] in actions):  # -tc, -oout: a short flag with its value
            raise _UsageError(_no_such_option(name, parser), parser.prog)
        action = actions.get(arg)
        if action is not None and action.nargs is None and index + 1 < len(args) \
                and args[index + 1].startswith("-") and args[index + 1].split("=", 1)[0] not in actions:
            out.append(f"{arg}={args[index + 1]}")
            index += 2
            continue
        out.append(arg)
        index += 1
    return out


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _no_such_option(name: str, parser: argparse.ArgumentParser) -> str:
    """'no such option: --x', with the closest flag when one is close: one that
    the name starts with or that starts with it (--calibration, --prune), else
    the most similar (--ouput; --version is not close to --ratio)."""
    from difflib import get_close_matches

    known = [o for o in parser._option_string_actions if o.startswith("--")]
    close = sorted((o for o in known if len(min(o, name, key=len)) > 4 and (o.startswith(name) or name.startswith(o))),
                   key=len) or get_close_matches(name, known, n=1, cutoff=0.7)
    return f"no such option: {name}" + (f"; did you mean {close[0]}?" if close and name.startswith("--") else "")


def _unexpected(extra: list[str]) -> str:
    """The message for arguments argparse left over (all flags are known by now)."""
    return f"unexpected argument: {next(arg for arg in extra if arg != '--')}"


@contextmanager
def _errors_to_exit(debug: bool):
    _start_up_done()
    try:
        yield
    except NncError as exc:
        echo("nnc: error: " + _one_line(getattr(exc, "cli", None) or str(exc)), err=True)
        raise _Exit(2) from None
    except KeyboardInterrupt as exc:
        raise _Exit(_report_interrupt(getattr(exc, "signum", signal.SIGINT))) from None
    except _Exit:
        raise
    except BrokenPipeError:  # `nnc inspect M | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise _Exit(1) from None
    except Exception as exc:
        if debug:
            raise
        echo(f"nnc: internal error: {type(exc).__name__}: {exc} "
             "(this is a bug in nnc; rerun with --debug for the traceback)", err=True)
        raise _Exit(3) from None


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


def _inspect_args(p: argparse.ArgumentParser) -> None:
    add(p, flag("model", metavar="MODEL", type=text_of("model file name"),
             help="ONNX model file, or a text IR file (.nnir) nnc compiled."),
        flag("--json", dest="as_json", action="store_true", help="Print the table as JSON."), INPUT_SHAPE,
        switch("--sensitivity", "Per layer: the output error when that layer alone is quantized to --bits or "
                                "pruned to --sparsity."),
        flag("--calib", type=FILE, help="Samples (.npz/.npy) for --sensitivity (default: synthetic)."),
        flag("--bits", type=int, default=4, help="Weight bits tried per layer (--sensitivity; default: 4)."),
        flag("--sparsity", type=float, default=0.5, help="Sparsity tried per layer (--sensitivity; default: 0.5)."),
        flags.METHOD, DEBUG)


@command("inspect", _inspect_args)
def inspect(model: str, as_json: bool, input_shape: list[str], sensitivity: bool, calib: Optional[Path], bits: int,
            sparsity: float, method: Optional[str], debug: bool):
    """Per-layer table of a model: op, shapes, parameters, MACs, and totals;
    with --sensitivity, how much each layer tolerates compression."""
    from .summary import summarize

    with _errors_to_exit(debug):
        if sensitivity and not (2 <= bits <= 8 and 0.0 <= sparsity < 1.0):
            raise OptionError(f"--bits must be in 2..8 and --sparsity in [0, 1), got {bits} and {sparsity}")
        if sensitivity and method is not None:
            from .obs_options import check_method

            check_method("--method", method)
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
            echo(json.dumps(data, indent=2))
            return
        names = shorten_apart([l.name for l in summary.layers], 48)
        rows = [[ids.get(l.name, ""), name, l.op, " ".join(map(str, l.input_shapes)),
                 " ".join(map(str, l.output_shapes)), thousands(l.params), thousands(l.macs)]
                for l, name in zip(summary.layers, names)]
        echo(format_table(["id", "layer", "op", "inputs", "outputs", "params", "MACs"], rows, numeric={5, 6}))
        t = summary.totals
        echo(f"\n{t['layers']} layers ({t['qdq_nodes']} quantize/dequantize nodes not listed), "
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
        echo("nnc: warning: sensitivity measured on 4 synthetic random samples; give --calib with real "
             "inputs", err=True)
    say = (lambda m: echo(f"nnc: {m}", err=True)) if sys.stderr.isatty() else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        baseline, rows = analyze(graph, samples, str(calib or ""), bits, sparsity, say, method)
    if as_json:
        echo(json.dumps({"bits": bits, "sparsity": sparsity, "baseline_int8": baseline,
                         "layers": [vars(r) for r in rows]}, indent=2))
        return
    from .layer_select import layer_ids

    ids = layer_ids(graph)
    table = [[ids.get(r.name, ""), name, r.op, thousands(r.params), f"{r.bits['cosine']:.4f}", f"{r.bits['rmse']:.3g}",
              f"{r.pruned['cosine']:.4f}", f"{r.pruned['rmse']:.3g}"]
             for r, name in zip(rows, shorten_apart([r.name for r in rows], 48))]
    echo(format_table(["id", "layer", "op", "weights", f"{bits}-bit cosine", "rmse",
                       f"{sparsity:.0%} pruned cosine", "rmse"], table, numeric={3, 4, 5, 6, 7}))
    echo(f"\nmodel output vs float on {len(samples)} sample(s), one layer changed at a time, all others "
         f"int8; all-int8 baseline: cosine {baseline['cosine']:.4f}, rmse {baseline['rmse']:.3g}")


def _compile_args(p: argparse.ArgumentParser) -> None:
    add(p, MODEL,
        flag("-t", "--target", default="ir", metavar="ir|c|az-sim|onnx",
             help="Output kind: ir (the default), c, az-sim or onnx."),
        flags.ONNX_FORM,
        flag("-o", "--output", type=FOLDER, required=True, help="Output folder (created or replaced)."),
        flag("--pipeline", help="Pass pipeline, e.g. 'canonicalize,fold-constants'. Default: the target's pipeline."),
        flag("--inputs", type=FILE, help="Samples (.npz/.npy) for verification (default: --calib)."),
        flag("--labels", type=FILE, help="Class ids of the --inputs samples (.npy): report accuracy."),
        INPUT_SHAPE,
        flag("--stream", action="append", default=[], metavar="NAME=D0,D1,...",
             help="Compile for streaming: the input's chunk shape (a part of its time axis); recurrent states "
                  "become inputs/outputs. Repeatable."),
        flag("--name", help="Name of the compiled model: file stem and C symbol prefix (default: the model "
                            "file's stem)."),
        switch("--no-verify", "Skip verification."),
        switch("--verify-each", "Verify the IR after every pass."),
        flag("--print-ir-after", action="append", default=[], metavar="PASS|all",
             help="Print the IR (constants elided) to stderr after a pass."),
        *flags.SHARED, quiet(), DEBUG)


@command("compile", _compile_args)
def compile_(model: str, target: str, output: Path, pipeline: Optional[str], inputs: Optional[Path],
             labels: Optional[Path], input_shape: list[str], stream: list[str], name: Optional[str], no_verify: bool,
             verify_each: bool, print_ir_after: list[str], quiet: bool, debug: bool, **shared):
    """Compile MODEL for a target; write the artifacts and report.json into OUTPUT.
    Exit codes: 0 done, 2 bad input, 3 a bug in nnc, 4 a quality gate missed."""
    from .driver import compile as compile_model

    rendered = lambda r: render_summary(r.report) + f"\n\nwrote {', '.join(r.artifacts)} to {output}"  # noqa: E731
    with _errors_to_exit(debug), _quality_gate(rendered) as finish:
        options = flags.compression(shared)
        result = compile_model(
            model, target, output, pipeline=pipeline, inputs=inputs, labels=labels,
            input_shapes=_parse_shapes(input_shape), stream=_parse_shapes(stream, "--stream") or None, name=name,
            verify=not no_verify, verify_each=verify_each, print_ir_after=tuple(print_ir_after),
            progress=_progress(quiet), dump=lambda text: echo(text, err=True), **options)
        finish(result)


def _validate_args(p: argparse.ArgumentParser) -> None:
    add(p, MODEL,
        flag("--data", type=FILE, required=True, help="Samples (.npz/.npy, one leading axis of samples)."),
        flag("--labels", type=FILE, help="Class ids of the samples (.npy)."),
        flag("-t", "--target", default="az-sim", metavar="c|az-sim|onnx|ir",
             help="Target run on the data: c, az-sim (the default), onnx or ir."),
        flags.ONNX_FORM,
        flag("-o", "--output", type=FOLDER, help="Keep the compiled artifacts and report.json here."),
        INPUT_SHAPE, flag("--json", dest="as_json", action="store_true", help="Print the metrics as JSON."),
        *flags.SHARED, quiet(), DEBUG)


@command("validate", _validate_args)
def validate_(model: str, data: Path, labels: Optional[Path], target: str, output: Optional[Path],
              input_shape: list[str], as_json: bool, quiet: bool, debug: bool, **shared):
    """Compile MODEL and run the compiled target on a data set: accuracy (with
    --labels), cosine, RMSE and relative L2 error against the float model."""
    from .validation import render, validate

    rendered = lambda r: json.dumps(r.report["verification"], indent=2) if as_json else render(r.report)  # noqa: E731
    with _errors_to_exit(debug), _quality_gate(rendered) as finish:
        options = flags.compression(shared)
        result = validate(model, data, labels, target, output, input_shapes=_parse_shapes(input_shape),
                          progress=_progress(quiet), **options)
        finish(result)


def _finetune_args(p: argparse.ArgumentParser) -> None:
    add(p, flag("model", metavar="MODEL", type=text_of("model file name"),
                help="Float ONNX model (or text IR) to compress while training."),
        flag("--data", type=FILE, required=True, help="Training samples (.npz/.npy, one leading axis of samples)."),
        flag("--labels", type=FILE, help="Class ids of the samples (.npy)."),
        flag("-o", "--output", type=FOLDER, required=True, help="Write MODEL.nnir, MODEL.onnx and finetune.json here."),
        flag("--calib", type=FILE, help="Calibration samples (default: --data)."),
        flags.WEIGHT_BITS, flags.FIRST_LAST_BITS, flags.CODEBOOK, flags.SPARSITY, flags.SPARSITY_PATTERN,
        flags.PRUNE_CHANNELS, flags.LAYER_BITS, flags.LAYER_SPARSITY,
        flag("--epochs", type=int, default=15, help="Most epochs to train (default: 15)."),
        flag("--lr", type=float, default=3e-3, help="Adam learning rate (cosine decay to 0; default: 0.003)."),
        flag("--batch-size", type=int, default=64, help="Samples per step (default: 64)."),
        flag("--seed", type=int, default=0, help="Seed of the holdout split, the order and torch (default: 0)."),
        flag("--patience", type=int, default=3,
             help="Stop after this many epochs at full sparsity without improvement (default: 3)."),
        flag("--holdout", type=float, default=0.1, help="Share of --data kept to choose the epoch (default: 0.1)."),
        flag("--temperature", type=float, default=4.0, help="Distillation temperature (default: 4)."),
        flag("--label-weight", type=float, default=0.5,
             help="Weight of the labels' cross-entropy (with --labels; default: 0.5)."),
        flag("--feature-weight", type=float, default=0.0,
             help="Weight of per-layer feature distillation (default: 0)."),
        flag("--grid-weight", type=float, default=0.0, help="Weight pulling weights onto their grid (default: 0)."),
        flag("--exact-epochs", type=int, default=0,
             help="Train the last epochs on the targets' integer outputs (default: 0)."),
        flag("--threads", type=int, default=1, help="Torch threads (1, the default: same result on any machine)."),
        INPUT_SHAPE, quiet("No progress (epoch lines and the bar go to stderr)."), DEBUG)


@command("finetune", _finetune_args)
def finetune_(model: str, data: Path, labels: Optional[Path], output: Path, calib: Optional[Path], weight_bits: int,
              first_last_bits: Optional[int], codebook: bool, sparsity: float, sparsity_pattern: Optional[str],
              prune_channels: float, layer_bits: Optional[str], layer_sparsity: Optional[str], epochs: int, lr: float,
              batch_size: int, seed: int, patience: int, holdout: float, temperature: float, label_weight: float,
              feature_weight: float, grid_weight: float, exact_epochs: int, threads: int, input_shape: list[str],
              quiet: bool, debug: bool):
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
        outcome = (f"kept the one-shot model: none of the {final} epoch{'s' * (final != 1)} at final sparsity beat it"
                   if kept["epoch"] == 0 else f"fine-tuned {_score(kept)} (epoch {kept['epoch']} of {trained})")
        echo(f"one-shot {_score(report['one_shot'])} -> {outcome} on the holdout (exact integer "
             f"arithmetic), {report['seconds']:.1f} s")
        if report["onnx"] != "written":
            echo(f"note: the ONNX form was {report['onnx']}; the .nnir is the model to compile")
        echo(f"wrote {', '.join(result.artifacts)} to {output}")


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
            echo(f"nnc: warning: {message}", err=True)
        echo(render(result))

    try:
        yield finish
    except QualityGateError as exc:
        finish(exc.result)
        echo(f"nnc: error: {exc}", err=True)
        raise _Exit(4) from None


def _progress(quiet: bool):
    return None if quiet or not sys.stderr.isatty() else (lambda m: echo(f"nnc: {m}", err=True))


from . import cli_explore  # noqa: E402,F401  (registers `nnc explore` here, keeping --help's order)


def _run_args(p: argparse.ArgumentParser) -> None:
    add(p, flag("blob", metavar="BLOB", type=text_of("blob file name"),
                help="az-sim blob (.azb) written by `nnc compile --target az-sim`."),
        flag("--inputs", type=FILE, required=True, help="Inputs (.npz/.npy); one extra leading axis = a batch."),
        flag("-o", "--output", type=FILE, help="Write the outputs here (.npz)."),
        flag("--hw", type=text_of("machine"), metavar=MACHINE,
             help="Machine: a TOML file, or a preset: small, default, large."),
        flag("--json", dest="as_json", action="store_true", help="Print the statistics as JSON."), DEBUG)


@command("run", _run_args)
def run_blob(blob: str, inputs: Path, output: Optional[Path], hw: Optional[str], as_json: bool, debug: bool):
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
            echo(json.dumps({"samples": len(runs), "runs": [s.to_json() for s in runs]}, indent=2))
            return
        echo(render_sim(runs[0].to_json()))
        if len(runs) > 1:
            echo(f"{len(runs)} samples: {thousands(sum(s.cycles for s in runs))} cycles, "
                 f"{sum(s.energy_uj for s in runs):.3f} µJ in all")
        if output is not None:
            echo(f"wrote {', '.join(outputs)} to {output}")


def _report_args(p: argparse.ArgumentParser) -> None:
    add(p, flag("report_file", metavar="OUT/report.json", type=FILE, help="The report.json a compile wrote."),
        flag("-o", "--output", type=FOLDER, help="Write the files here (default: beside report.json)."), DEBUG)


@command("report", _report_args)
def report_(report_file: Path, output: Optional[Path], debug: bool):
    """Render report.html and layers.csv again from a compile's report.json
    (the same bytes the compile wrote, for the same report)."""
    from .report import render_again

    with _errors_to_exit(debug):
        folder, written = render_again(report_file, output)
        echo(f"wrote {', '.join(written)} to {folder}")


def _show_warning(message, category, filename, lineno, file=None, line=None):
    """One `nnc: warning:` line; another library's warning names its category."""
    kind = "" if issubclass(category, NncWarning) else f"{category.__name__}: "
    echo(f"nnc: warning: {kind}{' '.join(str(message).split())}", err=True)


def run_cli(args: list[str] | None = None) -> int:
    """Run the command line on `args` (default: sys.argv[1:]) and return the exit
    code. Usage mistakes (an unknown command or flag, a missing value,
    `--weight-bits x`) print one line `nnc: error: ...` and exit 2, as NncErrors
    do; `nnc` alone prints the help (exit 2). Python warnings that escape
    (numpy's overflow on extreme values) print as one `nnc: warning:` line."""
    warnings.showwarning = _show_warning
    if args is None:
        args = sys.argv[1:]
    try:
        args = args[1:] if args[:1] == ["--"] else list(args)
        parser, named = _parsers(args[0] if args else None)
        if not args:
            echo(parser.format_help().rstrip("\n"))
            return 2
        if not args[0].startswith("-") and named is None:
            raise _UsageError(_no_such_command(args[0]), "nnc")
        args = _checked(args, named or parser)
        parsed, extra = parser.parse_known_args(args)
        if extra:
            raise _UsageError(_unexpected(extra), (named or parser).prog)
        parsed = vars(parsed)
        run = COMMANDS[parsed.pop("command")].run
        run(**parsed)
    except BrokenPipeError:  # `nnc | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except _UsageError as exc:
        echo(f"nnc: error: {_one_line(str(exc))} (see {exc.prog} --help)", err=True)
        return 2
    except _Exit as exc:
        return exc.code
    except KeyboardInterrupt as exc:  # while the arguments were parsed, before a command could catch it
        return _report_interrupt(getattr(exc, "signum", signal.SIGINT))
    return 0


def _parsers(name: str | None) -> tuple[argparse.ArgumentParser, argparse.ArgumentParser | None]:
    """(the parser of the command line, that of the command `name` or None):
    every command is listed, the arguments of `name` alone are defined (all of
    them cost about 1 ms more)."""
    parser = _Parser(prog="nnc", description=SUMMARY, allow_abbrev=False)
    parser.add_argument("--version", action="version", version=f"nnc {__version__}", help="Print the version and exit.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    named = None
    for each, spec in COMMANDS.items():
        sub = commands.add_parser(each, help=spec.summary, description=spec.description, allow_abbrev=False)
        if each == name:
            spec.define(sub)
            named = sub
    return parser, named


def _no_such_command(name: str) -> str:
    from difflib import get_close_matches

    close = get_close_matches(name, list(COMMANDS), n=1)
    return f"no such command {name!r}" + (f"; did you mean {close[0]!r}?" if close else "")


class Interrupted(KeyboardInterrupt):
    """SIGINT, SIGTERM or SIGHUP, raised where Python is so that cleanup runs as for Ctrl-C."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _interrupt(signum, frame):
    raise Interrupted(signum)


def _report_interrupt(signum: int) -> int:
    """Print the one error line of an interruption; its exit code, 128 + signum."""
    echo(f"nnc: error: interrupted by {signal.Signals(signum).name}; no output was written", err=True)
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


if __name__ == "__main__":  # python -m nnc.cli: run nnc.cli, in which `nnc explore` registered itself
    from nnc.cli import main as registered

    sys.exit(registered())
