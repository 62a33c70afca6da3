"""Compile time of nnc without verification vs Arm's Vela, per MLPerf Tiny int8 model.

Run from the repo root: `python benchmarks/vela_compare.py [--runs 5]` (needs
`pip install -e '.[bench]'`; prints markdown tables). Measured side by side in
one run, each command a fresh process with a fresh output folder:

- `nnc compile M.onnx --target c --no-verify -o OUT` and the same with
  `--target az-sim`;
- `vela M.tflite --output-dir OUT` (default accelerator and system config:
  Ethos-U55-256, Ethos_U55_High_End_Embedded), where M.tflite is written
  beforehand, outside the timing, by benchmarks/tflite_writer.py from the same
  integer graph nnc compiles; and the same with OPENBLAS_NUM_THREADS=1, the
  setting nnc's script makes for itself (compiler/console.py: numpy's BLAS
  pool spins for about 0.1 s after it starts, which costs either tool time on
  a small machine), so that the two also meet at the same setting;
- `nnc.compile(M, target="c", verify=False)` from Python, in this process
  after one warm-up call (the compile without interpreter start and imports);
- start-up: `nnc --version`, `nnc --help`, `vela --version`, and as floors
  the interpreter alone, its import of numpy, and its import of the
  dependencies every nnc compile imports (numpy, protobuf and nnc's ONNX
  reader; jinja2 too before 2026-12-07), which nnc pays before its own work.

With `--instructions`, a second table gives the instructions each command
executes (valgrind's cachegrind without cache simulation; BLAS and OpenMP on
one thread, so that no idle pool thread's spinning is counted): stable from
run to run where wall times are not. Beside the commands it counts two
floors: the imports every nnc compile makes before its own code runs (numpy,
protobuf and nnc's ONNX reader), and a warm compile (the
instructions of two `nnc.compile` calls in one process less those of one).
The floor plus the warm compile is what an `nnc compile` would cost if nnc's
own modules imported for free.

`nnc` and `vela` are the console scripts beside the running interpreter (not
whatever PATH finds first: a version manager's shim in front of one of them
adds 0.07 s per command here), and the children run with bytecode caching
allowed (PYTHONDONTWRITEBYTECODE removed) after one untimed warm-up run of every
command, so that both tools start from compiled caches as installed tools do.

Each command runs `--runs` times, the commands taking turns within a round so
that all see the same machine load. A cell gives the median wall time
(time.perf_counter around the child process), then in parentheses the median
CPU time (user + system of the child, from resource.getrusage) and the minimum
wall time: on a busy machine these two are the steadier. "met" means nnc's
figure is no larger than Vela's on that measure.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

import nnc
from common import MODELS_DIR, machine, markdown_table, model_names
from tflite_writer import write_tflite

CHILD_ENV = {key: value for key, value in os.environ.items()
             if key not in ("PYTHONDONTWRITEBYTECODE", "OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS")}
ONE_BLAS_THREAD = CHILD_ENV | {"OPENBLAS_NUM_THREADS": "1"}
COUNT_ENV = CHILD_ENV | {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
IMPORT_FLOOR = "import numpy, nnc.frontend.onnx_proto"  # numpy, protobuf, onnx's messages and C++ library


def script(name: str) -> str:
    """The console script `name` installed beside this interpreter."""
    path = Path(sys.executable).parent / name
    if not path.is_file():
        raise SystemExit(f"{name} is not installed beside {sys.executable}: pip install -e '.[bench]'")
    return str(path)


STARTUP = {"nnc --version": [script("nnc"), "--version"], "nnc --help": [script("nnc"), "--help"],
           "vela --version": [script("vela"), "--version"],
           "python -c pass (floor)": [sys.executable, "-c", "pass"],
           "python -c 'import numpy' (floor)": [sys.executable, "-c", "import numpy"],
           "python -c 'import numpy, nnc.frontend.onnx_proto' (nnc's floor)": [sys.executable, "-c", IMPORT_FLOOR]}


def int8_models() -> list[str]:
    return [name for name in model_names() if name.endswith("_int8_qdq")]


def run_timed(command: list[str], env: dict = CHILD_ENV) -> tuple[float, float, str]:
    """(wall s, child CPU s, stdout) of one command, which must succeed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, check=False, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), done.stdout


def api_timed(model: Path, out: Path) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    nnc.compile(model, target="c", output_dir=out, verify=False)
    return time.perf_counter() - wall, time.process_time() - cpu


def compile_commands(name: str, tflite: Path, out: Path) -> dict[str, tuple[list[str], dict]]:
    """Label -> (command, environment) of the timed compiles."""
    model = str(MODELS_DIR / f"{name}.onnx")
    nnc_script = script("nnc")
    return {"nnc c": ([nnc_script, "compile", model, "--target", "c", "--no-verify", "-o", str(out / "c")], CHILD_ENV),
            "nnc az-sim": ([nnc_script, "compile", model, "--target", "az-sim", "--no-verify", "-o", str(out / "az")],
                           CHILD_ENV),
            "vela": ([script("vela"), str(tflite), "--output-dir", str(out / "vela")], CHILD_ENV),
            "vela, 1 BLAS thread": ([script("vela"), str(tflite), "--output-dir", str(out / "vela1")], ONE_BLAS_THREAD)}


def cpu_operators(vela_stdout: str) -> str:
    found = re.search(r"CPU operators = (\d+)", vela_stdout)
    return found.group(1) if found else "?"


def measure_model(name: str, runs: int, scratch: Path) -> tuple[dict[str, list[tuple[float, float]]], str]:
    """(wall, CPU) seconds of every run by command label, and Vela's count of CPU operators."""
    tflite = scratch / f"{name}.tflite"
    write_tflite(MODELS_DIR / f"{name}.onnx", tflite)
    api_timed(MODELS_DIR / f"{name}.onnx", scratch / "warm-up")  # imports and caches, not timed
    for command, env in compile_commands(name, tflite, scratch / "warm-up").values():
        run_timed(command, env)  # bytecode caches, not timed
    times: dict[str, list[tuple[float, float]]] = {}
    for r in range(runs):
        out = scratch / f"{name}-{r}"
        for label, (command, env) in compile_commands(name, tflite, out).items():
            wall, cpu, stdout = run_timed(command, env)
            times.setdefault(label, []).append((wall, cpu))
            if label == "vela":
                vela_cpu_ops = cpu_operators(stdout)
        times.setdefault("nnc.compile c (API)", []).append(api_timed(MODELS_DIR / f"{name}.onnx", out / "api"))
        shutil.rmtree(out)
    return times, vela_cpu_ops


def summary(pairs: list[tuple[float, float]]) -> tuple[float, float, float]:
    """(median wall, median CPU, minimum wall) seconds."""
    return (statistics.median(p[0] for p in pairs), statistics.median(p[1] for p in pairs),
            min(p[0] for p in pairs))


def cell(pairs: list[tuple[float, float]]) -> str:
    wall, cpu, fastest = summary(pairs)
    return f"{wall:.2f} ({cpu:.2f}; {fastest:.2f})"


def verdict(nnc_pairs, vela_pairs) -> str:
    mine, theirs = summary(nnc_pairs), summary(vela_pairs)
    return ", ".join(f"{label} {'met' if a <= b else 'missed'}"
                     for label, a, b in zip(("wall", "CPU", "min"), mine, theirs))


def compile_rows(runs: int) -> list[list[str]]:
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for name in int8_models():
            t, vela_cpu_ops = measure_model(name, runs, Path(scratch))
            rows.append([name, cell(t["nnc c"]), cell(t["nnc az-sim"]), cell(t["nnc.compile c (API)"]),
                         cell(t["vela"]), cell(t["vela, 1 BLAS thread"]), vela_cpu_ops,
                         *(f"c: {verdict(t['nnc c'], t[vela])}; az-sim: {verdict(t['nnc az-sim'], t[vela])}"
                           for vela in ("vela", "vela, 1 BLAS thread"))])
    return rows


def startup_rows(runs: int) -> list[list[str]]:
    times: dict[str, list[tuple[float, float]]] = {}
    for command in STARTUP.values():
        run_timed(command)  # bytecode caches, not timed
    for _ in range(runs):
        for label, command in STARTUP.items():
            wall, cpu, _ = run_timed(command)
            times.setdefault(label, []).append((wall, cpu))
    return [[label, cell(pairs)] for label, pairs in times.items()]


def instructions(command: list[str]) -> int:
    """Instructions `command` executes (all its threads), counted by cachegrind."""
    counted = subprocess.run(["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
                              *command], check=False, capture_output=True, text=True, env=COUNT_ENV)
    found = re.search(r"I\s+refs:\s+([\d,]+)", counted.stderr)
    if counted.returncode != 0 or found is None:
        raise SystemExit(f"valgrind {' '.join(command)} failed ({counted.returncode}): {counted.stderr.strip()[-500:]}")
    return int(found.group(1).replace(",", ""))


def warm_compile_instructions(model: Path, out: Path) -> int:
    """Instructions of one nnc.compile (c, no verification) after a first one in the same process."""
    call = f"nnc.compile({str(model)!r}, target='c', output_dir={str(out)!r}, verify=False); shutil.rmtree({str(out)!r})"
    once = instructions([sys.executable, "-c", f"import nnc, shutil; {call}"])
    twice = instructions([sys.executable, "-c", f"import nnc, shutil; {call}; {call}"])
    return twice - once


def millions(count: int) -> str:
    return f"{count / 1e6:,.0f}"


def instruction_rows() -> list[list[str]]:
    """Per model: instructions of nnc c, nnc az-sim and vela, nnc/vela, and the floors."""
    floor = instructions([sys.executable, "-c", IMPORT_FLOOR])
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for name in int8_models():
            tflite = Path(scratch) / f"{name}.tflite"
            write_tflite(MODELS_DIR / f"{name}.onnx", tflite)
            for command, env in compile_commands(name, tflite, Path(scratch) / "warm-up").values():
                run_timed(command, env)  # bytecode caches, not counted
            counts = {label: instructions(command) for label, (command, _) in
                      compile_commands(name, tflite, Path(scratch) / name).items() if label != "vela, 1 BLAS thread"}
            warm = warm_compile_instructions(MODELS_DIR / f"{name}.onnx", Path(scratch) / "warm")
            rows.append([name, millions(counts["nnc c"]), millions(counts["nnc az-sim"]), millions(counts["vela"]),
                         f"{counts['nnc c'] / counts['vela']:.2f} / {counts['nnc az-sim'] / counts['vela']:.2f}",
                         millions(floor), millions(warm), millions(floor + warm)])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="runs of each command (default 5; at least 3)")
    parser.add_argument("--instructions", action="store_true",
                        help="also count each command's instructions with valgrind (about a minute per model)")
    args = parser.parse_args()
    if args.runs < 3:
        parser.error("--runs must be at least 3")
    print(f"nnc vs Vela compile time — {machine()}; nnc {nnc.__version__}, ethos-u-vela {version('ethos-u-vela')}, "
          f"{args.runs} runs; seconds: median wall (median CPU; minimum wall)\n")
    print(markdown_table(["command", "seconds"], startup_rows(args.runs)))
    print()
    headers = ["model", "nnc c --no-verify", "nnc az-sim --no-verify", "nnc.compile c (API)", "vela",
               "vela, 1 BLAS thread", "vela CPU ops", "nnc ≤ vela", "nnc ≤ vela, 1 BLAS thread"]
    print(markdown_table(headers, compile_rows(args.runs)))
    if args.instructions:
        print("\nMillions of instructions executed (cachegrind; BLAS on one thread)\n")
        headers = ["model", "nnc c", "nnc az-sim", "vela", "nnc / vela (c / az-sim)",
                   "floor: imports", "floor: warm compile (c)", "floors together"]
        print(markdown_table(headers, instruction_rows()))


if __name__ == "__main__":
    main()
