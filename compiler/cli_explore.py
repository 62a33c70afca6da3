"""`nnc explore` on the command line: the command (registered on cli.app) and
its progress lines. The sweep itself is compiler/explore.py; heavy modules are
imported inside the command, so that `nnc --version` stays fast."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from .cli import DEBUG, INPUT_SHAPE, _errors_to_exit, _parse_shapes, app
from .cli_options import CALIB


@app.command("explore")
def explore_(model: str = typer.Argument(..., help="ONNX model file, or text IR (.nnir)."),
             output: Path = typer.Option(..., "--output", "-o", help="Output folder (created or replaced)."),
             sweep: Optional[Path] = typer.Option(None, "--sweep", help="TOML sweep file: [compression] and "
                                                                      "[hardware] tables of value lists."),
             bits: Optional[str] = typer.Option(None, "--bits", metavar="B,...", help="Weight bits, e.g. 8,4."),
             first_last_bits: Optional[str] = typer.Option(None, "--first-last-bits", metavar="B,..."),
             sparsity: Optional[str] = typer.Option(None, "--sparsity", metavar="S,...", help="e.g. 0,0.5."),
             pattern: Optional[str] = typer.Option(None, "--pattern", metavar="N:M|none,...", help="e.g. none,2:4."),
             prune_channels: Optional[str] = typer.Option(None, "--prune-channels", metavar="R,..."),
             codebook: Optional[str] = typer.Option(None, "--codebook", metavar="false,true"),
             method: Optional[str] = typer.Option(None, "--method", metavar="magnitude,obs"),
             pack: Optional[str] = typer.Option(None, "--pack", metavar="auto,dense,..."),
             lanes: Optional[str] = typer.Option(None, "--lanes", metavar="N,...", help="MAC lanes, e.g. 32,64,128."),
             weight_sram: Optional[str] = typer.Option(None, "--weight-sram", metavar="BYTES,...",
                                                       help="Weight SRAM, e.g. 64K,128K (K = 1024)."),
             activation_sram: Optional[str] = typer.Option(None, "--activation-sram", metavar="BYTES,..."),
             clock: Optional[str] = typer.Option(None, "--clock", metavar="MHZ,..."),
             decoder_width: Optional[str] = typer.Option(None, "--decoder-width", metavar="BYTES,...",
                                                         help="Compressed bytes the decoder takes per cycle."),
             bus_width: Optional[str] = typer.Option(None, "--bus-width", metavar="BYTES,..."),
             hw: Optional[str] = typer.Option(None, "--hw", help="Base machine of the unswept keys: a TOML "
                                                                  "file or a preset, as compile's --hw."),
             calib: Optional[Path] = CALIB,
             inputs: Optional[Path] = typer.Option(None, "--inputs", help="Samples the output error is "
                                                                          "measured on (default: --calib)."),
             samples: int = typer.Option(16, "--samples", help="Use the first N samples for the error."),
             input_shape: list[str] = INPUT_SHAPE,
             jobs: int = typer.Option(1, "--jobs", "-j", help="Worker processes (Ray CPUs with --ray local)."),
             ray: Optional[str] = typer.Option(None, "--ray", metavar="ADDRESS|auto|local",
                                               help="Run the points on Ray (pip install 'nnc[ray]')."),
             quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress lines."),
             debug: bool = DEBUG):
    """Sweep az-sim hardware x compression settings; write points.csv, the
    Pareto front of energy, latency, stored bytes and error (front.csv,
    front.svg) and explore.json into OUTPUT. See docs/explore.md."""
    from .explore import explore
    from .explore_spec import COMPRESSION_FLAGS, HARDWARE_FLAGS

    given = locals()
    axes = {flag: given[flag.replace("-", "_")] for flag in (*COMPRESSION_FLAGS, *HARDWARE_FLAGS)}
    with _errors_to_exit(debug):
        result = explore(model, output, axes, sweep_file=sweep, hw=hw, calib=calib, inputs=inputs,
                         input_shapes=_parse_shapes(input_shape), samples=samples, jobs=jobs, ray=ray,
                         progress=None if quiet else _explore_progress())
        failed = result.report["failed"]
        typer.echo(f"{len(result.points)} points ({failed} failed), {len(result.front)} on the Pareto front of "
                   f"energy, latency, stored bytes and error; {result.report['seconds']:.1f} s")
        typer.echo(f"wrote {', '.join(result.artifacts)} to {output}")


def _explore_progress():
    """One stderr line per finished point; on a terminal, one line rewritten."""
    terminal = sys.stderr.isatty()

    def show(result: dict, done: int, total: int) -> None:
        if result["status"] == "ok":
            what = (f"{result['latency_ms']:.4g} ms, {result['energy_uj']:.4g} µJ, "
                    f"{result['blob_bytes']:,} B, error {result['error']:.3g}")
        else:
            what = f"failed: {result['reason']}"
        line = f"nnc: explore {done}/{total}: point {result['index']}: {what}"
        typer.echo(("\r\033[K" + line[:200]) if terminal else line, err=True, nl=not terminal or done == total)
    return show
