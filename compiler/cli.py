"""The `nnc` command line (typer).

Every command turns an NncError into one line on stderr and exit code 2; any
other exception is a bug in nnc and exits 3 with a one-line notice (the traceback
only with --debug).
"""

from __future__ import annotations

import json
import signal
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import typer

from . import __version__
from .errors import IRError, NncError, OptionError
from .limits import check_dims
from .tables import format_table, shorten, thousands

# The module of the exceptions typer raises for usage mistakes: click.exceptions,
# or the copy of it that newer typer versions carry.
_USAGE = sys.modules[typer.BadParameter.__module__]

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="nnc: compile ONNX models for microcontrollers and AZ-class edge processors.")

DEBUG = typer.Option(False, "--debug", help="Show a traceback on internal errors.")
INPUT_SHAPE = typer.Option([], "--input-shape", metavar="NAME=D0,D1,...",
                           help="Bind an input's shape (symbolic dims default to 1). Repeatable.")


@contextmanager
def _errors_to_exit(debug: bool):
    try:
        yield
    except NncError as exc:
        typer.echo("nnc: error: " + " ".join(part.strip() for part in str(exc).splitlines()), err=True)
        raise typer.Exit(2) from None
    except KeyboardInterrupt as exc:
        signum = getattr(exc, "signum", signal.SIGINT)
        typer.echo(f"nnc: error: interrupted by {signal.Signals(signum).name}; no output was written", err=True)
        raise typer.Exit(128 + signum) from None
    except (typer.Exit, typer.Abort):
        raise
    except Exception as exc:
        if debug:
            raise
        typer.echo(f"nnc: internal error: {type(exc).__name__}: {exc} "
                   "(this is a bug in nnc; rerun with --debug for the traceback)", err=True)
        raise typer.Exit(3) from None


def _parse_shapes(specs: list[str], flag: str = "--input-shape") -> dict[str, tuple[int, ...]]:
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
            debug: bool = DEBUG):
    """Per-layer table of a model: op, shapes, parameters, MACs, and totals;
    with --sensitivity, how much each layer tolerates compression."""
    from .summary import summarize

    with _errors_to_exit(debug):
        if sensitivity and not (2 <= bits <= 8 and 0.0 <= sparsity < 1.0):
            raise OptionError(f"--bits must be in 2..8 and --sparsity in [0, 1), got {bits} and {sparsity}")
        graph = _load_model_or_ir(model, input_shape)
        if sensitivity:
            _print_sensitivity(graph, calib, bits, sparsity, as_json)
            return
        summary = summarize(graph)
        if as_json:
            typer.echo(json.dumps(summary.to_json(), indent=2))
            return
        rows = [[shorten(l.name, 48), l.op, " ".join(map(str, l.input_shapes)),
                 " ".join(map(str, l.output_shapes)), thousands(l.params), thousands(l.macs)]
                for l in summary.layers]
        typer.echo(format_table(["layer", "op", "inputs", "outputs", "params", "MACs"], rows, numeric={4, 5}))
        t = summary.totals
        typer.echo(f"\n{t['layers']} layers ({t['qdq_nodes']} quantize/dequantize nodes not listed), "
                   f"{thousands(t['params'])} parameters, {thousands(t['macs'])} MACs")


def _load_model_or_ir(model: str, input_shape: list[str]):
    """The graph of an ONNX model, or of a text IR file (`nnc compile -t ir`
    output), which must parse and pass the IR verifier (IRError naming the file)."""
    from .frontend.onnx_loader import load
    from .textir import parse_ir
    from .verifier import verify

    if not model.endswith(".nnir"):
        return load(model, _parse_shapes(input_shape))
    if input_shape:
        raise OptionError("--input-shape applies to ONNX models; a .nnir file has static shapes")
    try:
        data = Path(model).read_bytes()
    except OSError as exc:
        raise OptionError(f"cannot read {model}: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise IRError(f"{model}: not UTF-8 text (byte {exc.start} is {data[exc.start]:#04x}); a .nnir file is "
                      "the text IR that `nnc compile --target ir` writes") from None
    try:
        graph = parse_ir(text)
        verify(graph)
    except IRError as exc:
        raise IRError(f"{model}: {exc}") from None
    return graph


def _print_sensitivity(graph, calib: Optional[Path], bits: int, sparsity: float, as_json: bool) -> None:
    import warnings

    from .sensitivity import analyze
    from .verification import load_samples, synthetic_samples

    samples = load_samples(calib, graph) if calib else synthetic_samples(graph, 4)
    if not calib:
        typer.echo("nnc: warning: sensitivity measured on 4 synthetic random samples; give --calib with real "
                   "inputs", err=True)
    say = (lambda m: typer.echo(f"nnc: {m}", err=True)) if sys.stderr.isatty() else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        baseline, rows = analyze(graph, samples, str(calib or ""), bits, sparsity, say)
    if as_json:
        typer.echo(json.dumps({"bits": bits, "sparsity": sparsity, "baseline_int8": baseline,
                               "layers": [vars(r) for r in rows]}, indent=2))
        return
    table = [[shorten(r.name, 48), r.op, thousands(r.params), f"{r.bits['cosine']:.4f}", f"{r.bits['rmse']:.3g}",
              f"{r.pruned['cosine']:.4f}", f"{r.pruned['rmse']:.3g}"] for r in rows]
    typer.echo(format_table(["layer", "op", "weights", f"{bits}-bit cosine", "rmse",
                             f"{sparsity:.0%} pruned cosine", "rmse"], table, numeric={2, 3, 4, 5, 6}))
    typer.echo(f"\nmodel output vs float on {len(samples)} sample(s), one layer changed at a time, all others "
               f"int8; all-int8 baseline: cosine {baseline['cosine']:.4f}, rmse {baseline['rmse']:.3g}")


@app.command("compile")
def compile_(model: str = typer.Argument(..., help="ONNX model file."),
             target: str = typer.Option("ir", "--target", "-t", help="Output kind: ir, c or az-sim."),
             output: Path = typer.Option(..., "--output", "-o", help="Output folder (created or replaced)."),
             pipeline: Optional[str] = typer.Option(None, "--pipeline",
                                                    help="Pass pipeline, e.g. 'canonicalize,fold-constants'. "
                                                         "Default: the target's pipeline."),
             calib: Optional[Path] = typer.Option(None, "--calib",
                                                  help="Calibration samples (.npz/.npy) for quantization."),
             quantize: Optional[bool] = typer.Option(None, "--quantize/--no-quantize",
                                                     help="Quantize to int8 (default: c and az-sim do, ir does not)."),
             inputs: Optional[Path] = typer.Option(None, "--inputs",
                                                   help="Samples (.npz/.npy) for verification (default: --calib)."),
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
             hw: Optional[Path] = typer.Option(None, "--hw", help="az-sim hardware description (TOML)."),
             weight_bits: int = typer.Option(8, "--weight-bits",
                                             help="Weight bit width 2..8 (per layer: quantize{overrides=...})."),
             first_last_bits: Optional[int] = typer.Option(None, "--first-last-bits",
                                                           help="Bit width of the first and last weighted layer "
                                                                "(default: --weight-bits)."),
             codebook: bool = typer.Option(False, "--codebook",
                                           help="Snap each weight tensor to 2^weight-bits k-means centroids."),
             bias_correction: bool = typer.Option(True, "--bias-correction/--no-bias-correction",
                                                  help="Correct biases for the mean weight error (needs --calib)."),
             sparsity: float = typer.Option(0.0, "--sparsity",
                                            help="Fraction of each layer's weights pruned by magnitude."),
             sparsity_pattern: Optional[str] = typer.Option(None, "--sparsity-pattern", metavar="N:M",
                                                            help="Keep the N largest of every M weights, e.g. 2:4."),
             prune_channels: float = typer.Option(0.0, "--prune-channels",
                                                  help="Fraction of output channels removed per layer (structured)."),
             pack: str = typer.Option("auto", "--pack",
                                      help="Weight encoding: auto (smallest exact), dense, bitmask, rle, codebook, huffman."),
             c_weights: str = typer.Option("dense", "--c-weights",
                                           help="C target: dense int8 arrays, or packed (decoded by the kernels)."),
             quiet: bool = typer.Option(False, "--quiet", "-q",
                                        help="No progress lines (they go to stderr when it is a terminal)."),
             debug: bool = DEBUG):
    """Compile MODEL for a target; write the artifacts and report.json into OUTPUT."""
    from .driver import compile as compile_model

    with _errors_to_exit(debug):
        result = compile_model(
            model, target, output,
            pipeline=pipeline, inputs=inputs, calib=calib, quantize=quantize, hw=hw,
            weight_bits=weight_bits, first_last_bits=first_last_bits, codebook=codebook,
            bias_correction=bias_correction, sparsity=sparsity, sparsity_pattern=sparsity_pattern,
            prune_channels=prune_channels, pack=pack, c_weights=c_weights,
            input_shapes=_parse_shapes(input_shape), stream=_parse_shapes(stream, "--stream") or None, name=name,
            verify=not no_verify, verify_each=verify_each, print_ir_after=tuple(print_ir_after),
            progress=None if quiet or not sys.stderr.isatty() else (lambda m: typer.echo(f"nnc: {m}", err=True)),
            dump=lambda text: typer.echo(text, err=True))
        for message in result.report["warnings"]:
            typer.echo(f"nnc: warning: {message}", err=True)
        typer.echo(render_summary(result.report))
        typer.echo(f"\nwrote {', '.join(result.artifacts)} to {output}")


@app.command("run")
def run_blob(blob: str = typer.Argument(..., help="az-sim blob (.azb) written by `nnc compile --target az-sim`."),
             inputs: Path = typer.Option(..., "--inputs", help="Inputs (.npz/.npy); one extra leading axis = a batch."),
             output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write the outputs here (.npz)."),
             hw: Optional[Path] = typer.Option(None, "--hw", help="Hardware description (TOML)."),
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


def render_sim(sim: dict) -> str:
    """Per-layer and total simulator statistics as a table."""
    rows = [[shorten(l["name"], 36), l["op"], thousands(l["macs_total"]), thousands(l["macs_skipped"]),
             thousands(l["bytes_loaded"]), thousands(l["cycles"]), f"{l['energy_uj']:.3f}"] for l in sim["layers"]]
    table = format_table(["layer", "op", "MACs", "skipped", "bytes in", "cycles", "µJ"], rows,
                         numeric={2, 3, 4, 5, 6})
    skipped = sim["macs_skipped"] / sim["macs_total"] if sim["macs_total"] else 0.0
    return (f"{table}\nsimulated on {sim['hardware']} at {sim['clock_mhz']:g} MHz: "
            f"{thousands(sim['cycles'])} cycles = {sim['latency_ms']:.3f} ms, {sim['energy_uj']:.3f} µJ; "
            f"{thousands(sim['macs_total'])} MACs, {skipped:.1%} skipped; "
            f"{thousands(sim['bytes_loaded'])} bytes loaded off-chip")


def render_summary(report: dict) -> str:
    """The terminal summary of a compile report: layers, passes, verification."""
    rows = [[shorten(l["name"], 40), l["op"], l["format"] or "", l["weight_bits"],
             f"{l['sparsity']:.0%}" if l["format"] else "", thousands(l["params"]), thousands(l["macs"]),
             thousands(l["stored_bytes"]), _error(l["error"])] for l in report["layers"]]
    parts = [format_table(["layer", "op", "format", "bits", "zeros", "params", "MACs", "bytes", "cosine / rmse"],
                          rows, numeric={3, 4, 5, 6, 7})]
    passes = ", ".join(f"{p['name']} {p['seconds'] * 1000:.1f} ms ({p['nodes_before']}→{p['nodes_after']})"
                       for p in report["passes"])
    w = report["weights"]
    parts.append(f"\npipeline: {report['pipeline']}\npasses: {passes}\n"
                 f"weights: {thousands(w['weights'])} stored in {thousands(w['stored_bytes'])} bytes "
                 f"(fp32 {thousands(w['fp32_bytes'])}, {w['compression'] or 0:.1f}x smaller), "
                 f"sparsity {w['sparsity']:.1%}; other parameters {thousands(w['other_bytes'])} bytes; "
                 f"{thousands(report['totals']['macs'])} MACs; compiled in {report['compile_seconds']:.2f} s")
    if "memory" in report:
        m = report["memory"]
        parts.append(f"memory: arena {thousands(m['arena_bytes'])} bytes (naive {thousands(m['arena_naive_bytes'])}, "
                     f"lower bound {thousands(m['arena_lower_bound_bytes'])}), "
                     f"constants in flash {thousands(m['flash_bytes'])} bytes")
    if "sim" in report:
        parts.append(render_sim(report["sim"]))
    v = report.get("verification")
    if v:
        ref, flt = v["vs_reference"], v["vs_float"]
        parts.append(f"verification on {v['samples']} sample(s) ({v['source']}): "
                     f"vs reference bit-exact={ref['bit_exact']} max|d|={ref['max_abs_diff']:.3g}; "
                     f"vs onnxruntime max|d|={flt['max_abs_diff']:.3g} cosine={flt['cosine']:.6f}"
                     + (f" top-1={flt['top1_agreement']:.0%}" if flt["top1_agreement"] is not None else ""))
    return "\n".join(parts)


def _error(error: dict | None) -> str:
    return f"{error['cosine']:.4f} / {error['rmse']:.3g}" if error else ""


def run_cli(args: list[str] | None = None) -> int:
    """Run the command line on `args` (default: sys.argv[1:]) and return the exit
    code. Mistakes typer finds before a command runs (an unknown flag, a missing
    value, `--weight-bits x`) print one line `nnc: error: ...` and exit 2, as
    NncErrors do; `nnc` alone prints the help (exit 2)."""
    try:
        code = app(args=args, prog_name="nnc", standalone_mode=False)
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
    return code if isinstance(code, int) else 0


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised where Python is so that cleanup runs as for Ctrl-C."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _interrupt(signum, frame):
    raise Interrupted(signum)


def main() -> int:
    """The `nnc` script. SIGTERM and SIGHUP stop nnc as Ctrl-C does: staging and
    build folders are removed, and the exit code is 128 + the signal number."""
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _interrupt)
    return run_cli()


if __name__ == "__main__":
    sys.exit(main())
