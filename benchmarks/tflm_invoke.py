"""TensorFlow Lite Micro's host invoke time vs az-sim's simulator, per MLPerf Tiny int8 model.

Run from the repo root: `python benchmarks/tflm_invoke.py [--runs 200]` (needs
`pip install -e '.[bench]'`; prints a markdown table). For each *_int8_qdq model:

- TFLM: the model's .tflite is written by benchmarks/tflite_writer.py from nnc's
  integer graph; one `tflite_micro` Python interpreter (the wheel's host build,
  reference kernels) is built from it once; before each run the model's
  sample (`M.io.npz` `input`) is set as its input (TFLM's arena reuses the
  input's bytes during invoke), then `invoke()` alone is timed.
- az-sim: `nnc.compile(M, target="az-sim", calib=M.io.npz)` (as
  benchmarks/azsim.py), the blob decoded once by `nnc.Simulator(blob)`, then
  `Simulator.run({input: sample})` is timed (accounting included, as a user
  calls it).

Both are warmed up WARMUP times, then timed alternately, one TFLM invoke then
one simulator run, `--runs` times, so that both see the same machine load; each
cell gives the median wall time (time.perf_counter), then the median CPU time
of the process (time.process_time, all threads: numpy's included) and the
minimum wall time, the two that other processes on a busy machine disturb
less. The issue's target is sim ≤ 0.5 × TFLM; the "sim ≤" column judges it on
each of the three. The last column is the largest difference between the two
runtimes' outputs on the sample, in output LSBs (az-sim equals nnc's reference
bit for bit; TFLM rounds each requantization twice where nnc rounds once).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np

import nnc
from common import MODELS_DIR, machine, markdown_table, model_names
from tflite_writer import to_tflite

WARMUP = 10
TARGET = 0.5  # sim time / TFLM time the issue asks for at most


def int8_models() -> list[str]:
    return [name for name in model_names() if name.endswith("_int8_qdq")]


def prepare(name: str, scratch: Path):
    """(TFLM interpreter, az-sim runner, the sample by input name, the output's
    name) for one model."""
    from tflite_micro.python.tflite_micro import runtime

    model, sample_path = MODELS_DIR / f"{name}.onnx", MODELS_DIR / f"{name}.io.npz"
    result = nnc.compile(model, target="az-sim", output_dir=scratch / name, calib=sample_path)
    simulator = nnc.Simulator(scratch / name / f"{name}.azb")
    interpreter = runtime.Interpreter.from_bytes(to_tflite(result.graph))
    feeds = {result.graph.inputs[0]: np.load(sample_path)["input"]}
    return interpreter, simulator, feeds, result.graph.outputs[0]


def timed(fn) -> tuple[float, float]:
    """(wall, process CPU) seconds of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def summary_ms(times: list[tuple[float, float]]) -> tuple[float, float, float]:
    """(median wall, median CPU, minimum wall) in milliseconds."""
    walls, cpus = zip(*times)
    return statistics.median(walls) * 1e3, statistics.median(cpus) * 1e3, min(walls) * 1e3


def triple(values, digits: int = 3, unit: str = "") -> str:
    first, second, third = (f"{v:.{digits}f}{unit}" for v in values)
    return f"{first} ({second}; {third})"


def measure(name: str, runs: int, scratch: Path) -> list:
    interpreter, simulator, feeds, output = prepare(name, scratch)
    (sample,) = feeds.values()
    simulate = lambda: simulator.run(feeds)  # noqa: E731
    tflm, sim = [], []
    for run in range(WARMUP + runs):
        interpreter.set_input(sample, 0)  # every time: TFLM's arena reuses the input's bytes during invoke
        tflm_time, sim_time = timed(interpreter.invoke), timed(simulate)
        if run >= WARMUP:
            tflm.append(tflm_time)
            sim.append(sim_time)
    tflm_ms, sim_ms = summary_ms(tflm), summary_ms(sim)
    lsb = np.abs(interpreter.get_output(0).astype(np.int64) - simulate()[0][output].astype(np.int64)).max()
    ratios = [s / t for s, t in zip(sim_ms, tflm_ms)]
    verdicts = ", ".join(f"{label} {'met' if r <= TARGET else 'missed'}"
                         for label, r in zip(("wall", "CPU", "min"), ratios))
    return [name, triple(tflm_ms), triple(sim_ms), triple(ratios, 2, "×"), verdicts, str(lsb)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200, help="timed runs of each (default 200)")
    args = parser.parse_args()
    print(f"TFLM invoke vs az-sim — {machine()}; tflite-micro {version('tflite-micro')}, nnc {nnc.__version__}; "
          f"{args.runs} alternating runs after {WARMUP} warm-up; median wall (median CPU; minimum wall)\n")
    headers = ["model", "TFLM invoke ms", "az-sim run ms", "sim / TFLM", f"sim ≤ {TARGET}× TFLM",
               "outputs differ by (LSB)"]
    with tempfile.TemporaryDirectory() as scratch:
        rows = [measure(name, args.runs, Path(scratch)) for name in int8_models()]
    print(markdown_table(headers, rows))


if __name__ == "__main__":
    main()
