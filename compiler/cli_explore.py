"""`nnc explore` on the command line: the command (registered in cli.COMMANDS) and
its progress lines. The sweep itself is compiler/explore.py; heavy modules are
imported inside the command, so that `nnc --version` stays fast."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

from .cli import DEBUG, INPUT_SHAPE, MODEL, _errors_to_exit, _parse_shapes, command, echo, quiet
from .cli_options import CALIB, FOLDER, FILE, MACHINE, add, flag, text_of


def _explore_args(p) -> None:
    axis = lambda name, metavar, help=None: flag(name, metavar=metavar, help=help)  # noqa: E731
    add(p, MODEL,
        flag("-o", "--output", type=FOLDER, required=True, help="Output folder (created or replaced)."),
        flag("--sweep", type=FILE, help="TOML sweep file: [compression] and [hardware] tables of value lists."),
        axis("--bits", "B,...", "Weight bits, e.g. 8,4."), axis("--first-last-bits", "B,..."),
        axis("--sparsity", "S,...", "e.g. 0,0.5."), axis("--pattern", "N:M|none,...", "e.g. none,2:4."),
        axis("--prune-channels", "R,..."), axis("--codebook", "false,true"), axis("--method", "magnitude,obs"),
        axis("--pack", "auto,dense,..."), axis("--lanes", "N,...", "MAC lanes, e.g. 32,64,128."),
        axis("--weight-sram", "BYTES,...", "Weight SRAM, e.g. 64K,128K (K = 1024)."),
        axis("--activation-sram", "BYTES,..."), axis("--clock", "MHZ,..."),
        axis("--decoder-width", "BYTES,...", "Compressed bytes the decoder takes per cycle."),
        axis("--bus-width", "BYTES,..."),
        flag("--hw", type=text_of("machine"), metavar=MACHINE,
             help="Base machine of the unswept keys: a TOML file or a preset, as compile's --hw."),
        CALIB, flag("--inputs", type=FILE, help="Samples the output error is measured on (default: --calib)."),
        flag("--samples", type=int, default=16, help="Use the first N samples for the error (default: 16)."),
        INPUT_SHAPE,
        flag("-j", "--jobs", type=int, default=1, help="Worker processes (Ray CPUs with --ray local; default: 1)."),
        flag("--ray", metavar="ADDRESS|auto|local", help="Run the points on Ray (pip install 'nnc[ray]')."),
        quiet("No progress lines (one per point on stderr)."), DEBUG)


@command("explore", _explore_args)
def explore_(model: str, output: Path, sweep: Optional[Path], bits: Optional[str], first_last_bits: Optional[str],
             sparsity: Optional[str], pattern: Optional[str], prune_channels: Optional[str], codebook: Optional[str],
             method: Optional[str], pack: Optional[str], lanes: Optional[str], weight_sram: Optional[str],
             activation_sram: Optional[str], clock: Optional[str], decoder_width: Optional[str],
             bus_width: Optional[str], hw: Optional[str], calib: Optional[Path], inputs: Optional[Path], samples: int,
             input_shape: list[str], jobs: int, ray: Optional[str], quiet: bool, debug: bool):
    """Sweep az-sim hardware x compression settings; write points.csv, the
    Pareto front of energy, latency, stored bytes and error (front.csv,
    front.svg) and explore.json into OUTPUT. See docs/explore.md."""
    from .explore import explore
    from .explore_spec import COMPRESSION_FLAGS, HARDWARE_FLAGS

    given = locals()
    axes = {name: given[name.replace("-", "_")] for name in (*COMPRESSION_FLAGS, *HARDWARE_FLAGS)}
    with _errors_to_exit(debug):
        result = explore(model, output, axes, sweep_file=sweep, hw=hw, calib=calib, inputs=inputs,
                         input_shapes=_parse_shapes(input_shape), samples=samples, jobs=jobs, ray=ray,
                         progress=None if quiet else _explore_progress())
        failed = result.report["failed"]
        echo(f"{len(result.points)} points ({failed} failed), {len(result.front)} on the Pareto front of "
             f"energy, latency, stored bytes and error; {result.report['seconds']:.1f} s")
        echo(f"wrote {', '.join(result.artifacts)} to {output}")


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
        last = not terminal or done == total
        echo(("\r\033[K" + line[:200]) if terminal else line, err=True, end="\n" if last else "")
    return show
