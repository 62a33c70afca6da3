"""Model zoo benchmark: per zoo model (family x exporter, examples/zoo), its
params and MACs, the C arena against its lower bound, C instructions per
inference, az-sim cycles, the int8 output's cosine to the float model, and the
compile seconds per target; then every compile that failed, with its error.

Run from the repo root: `python benchmarks/zoo.py [--family NAME] [--exporter E] [--light]`
(prints markdown tables; torch exports need `pip install -e '.[zoo]'`).

How each figure is measured (every model is built by examples/zoo/zoo.py into a
temporary folder with its calibration samples, then compiled for each target
as `nnc compile M --target T --calib M.npz --input-shape ...`, az-sim with the
large-SRAM machine of tests/e2e.py, verification on):
- params, MACs: report.json `totals` of the c compile;
- arena / lower bound: report.json `memory.arena_bytes` / `memory.arena_lower_bound_bytes`;
- instructions: `valgrind --tool=callgrind --toggle-collect=<prefix>_invoke` on the
  emitted host harness built with `gcc -std=c99 -O2`, one inference of the first
  calibration sample (as benchmarks/c_backend.py does);
- cycles: report.json `sim.cycles` of the az-sim compile;
- cosine: report.json `verification.vs_float.cosine` of the c compile (az-sim
  is bit-exact to it, else its compile fails);
- ir s / c s / az-sim s: wall time of the whole `nnc.compile` call,
  verification included (the C build and run, the simulator run).
Tools that are missing, and figures of failed compiles, print "n/a".
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import nnc

from c_backend import prefix_of
from common import machine, markdown_table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples" / "zoo"))
sys.path.insert(0, str(ROOT / "tests"))

import zoo  # noqa: E402
from e2e import LARGE_HW  # noqa: E402

TARGETS = ("ir", "c", "az-sim")


def compile_all(family: zoo.Family, model: Path, calib: Path, work: Path) -> tuple[dict, dict, dict]:
    """(reports, seconds, errors) by target."""
    hw = work / "large_hw.toml"
    hw.write_text(LARGE_HW, encoding="utf-8")
    shapes = {spec.name: spec.shape for spec in family.inputs}
    reports, seconds, errors = {}, {}, {}
    for target in TARGETS:
        extra = {"hw": hw} if target == "az-sim" else {}
        start = time.perf_counter()
        try:
            result = nnc.compile(model, target=target, output_dir=work / target, calib=calib, input_shapes=shapes,
                                 **extra)
            reports[target] = result.report
        except nnc.NncError as exc:
            errors[target] = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
        seconds[target] = time.perf_counter() - start
    return reports, seconds, errors


def instructions(out: Path, calib: Path) -> int | None:
    """Callgrind's instruction count of one inference of the first sample."""
    if not shutil.which("valgrind"):
        return None
    stem, prefix = prefix_of(out)
    exe = out / "bench_harness"
    subprocess.run(["gcc", "-std=c99", "-O2", "-o", str(exe), f"{stem}_test.c", f"{stem}.c", "-lm"],
                   check=True, cwd=out)
    with np.load(calib) as arrays:
        (out / "in.bin").write_bytes(b"".join(np.ascontiguousarray(arrays[name][0]).tobytes()
                                              for name in arrays.files))
    proc = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out / 'cg.out'}",
                           f"--toggle-collect={prefix}_invoke", str(exe), "--run", "1", "in.bin", "out.bin"],
                          capture_output=True, text=True, cwd=out)
    found = re.search(r"Collected : (\d+)", proc.stderr)
    return int(found.group(1)) if found else None


def row(family: zoo.Family, exporter: str, reports: dict, seconds: dict, calib: Path, work: Path) -> list[str]:
    c, sim = reports.get("c"), reports.get("az-sim")
    totals = (c or reports.get("ir") or {}).get("totals", {})
    count = instructions(work / "c", calib) if c else None
    cosine = c["verification"]["vs_float"]["cosine"] if c else None
    memory = c["memory"] if c else None
    return [family.name, exporter, f"{totals['params']:,}" if totals else "n/a",
            f"{totals['macs']:,}" if totals else "n/a",
            f"{memory['arena_bytes']:,}" if memory else "n/a",
            f"{memory['arena_lower_bound_bytes']:,}" if memory else "n/a",
            f"{count:,}" if count else "n/a",
            f"{sim['sim']['cycles']:,}" if sim else "n/a",
            f"{cosine:.5f}" if cosine is not None else "n/a",
            *(f"{seconds[t]:.2f}" for t in TARGETS)]


def measure(family: zoo.Family, exporter: str) -> tuple[list[str], list[list[str]]]:
    with tempfile.TemporaryDirectory(prefix="nnc-zoo-") as tmp:
        work = Path(tmp)
        model, calib = zoo.build(family, exporter, work / "model")
        reports, seconds, errors = compile_all(family, model, calib, work)
        failures = [[family.name, exporter, target, error] for target, error in errors.items()]
        return row(family, exporter, reports, seconds, calib, work), failures


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", action="append", choices=sorted(zoo.FAMILIES), help="only these families")
    parser.add_argument("--exporter", action="append", choices=zoo.EXPORTERS, help="only these exporters")
    parser.add_argument("--light", action="store_true", help="leave out ResNet-18 and MobileNetV2")
    args = parser.parse_args(argv)
    exporters = [e for e in args.exporter or zoo.EXPORTERS if e == "helper" or zoo.torch_available()]
    families = [zoo.FAMILIES[n] for n in args.family or zoo.FAMILIES if not (args.light and zoo.FAMILIES[n].heavy)]
    print(f"Model zoo benchmark — {machine()}\n", flush=True)
    rows, failures = [], []
    for family in families:
        for exporter in (e for e in family.exporters if e in exporters):
            measured, failed = measure(family, exporter)
            rows.append(measured)
            failures += failed
            print(" | ".join(measured), file=sys.stderr, flush=True)
    print(markdown_table(["model", "exporter", "params", "MACs", "C arena", "lower bound", "C instructions",
                          "az-sim cycles", "int8 cosine", "ir s", "c s", "az-sim s"], rows))
    if failures:
        print(f"\n{len(failures)} compiles failed:\n")
        print(markdown_table(["model", "exporter", "target", "error"], failures))


if __name__ == "__main__":
    main()
