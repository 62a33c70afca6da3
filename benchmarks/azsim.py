"""az-sim benchmark: per MLPerf Tiny model, blob bytes, simulated cycles,
latency, energy, MAC utilization, skipped MACs, and the simulator's own speed
on this machine, accounting included: `Simulator.run` on a prepared program and
`nnc.simulate` on the blob's bytes (which decodes a blob once and keeps it); the
run against TensorFlow Lite Micro's host invoke time where a figure is quoted
(TFLM_MS).

Run from the repo root: `python benchmarks/azsim.py` (prints a markdown table).
Each model is compiled as `nnc compile M --target az-sim --calib M.io.npz`; each
speed is the median and the minimum wall time of 200 runs after 10 warm-up
runs (the minimum is what other jobs on a busy machine disturb least). MAC
utilization = executed MACs / (compute-bound cycles available: total cycles ×
MAC lanes). The header line gives the load average while measuring: on a busy
machine every wall time grows.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

import nnc
from nnc.backends.azsim.blob import read_blob
from nnc.backends.azsim.hardware import load_hardware
from nnc.backends.azsim.simulator import Simulator

from common import MODELS_DIR, machine, markdown_table, model_names

RUNS, WARMUP = 200, 10
# TFLM host invoke times (ms) on this host, by model stem: quoted, not measured here
# (kws, ic, vww: issue 3; ad: issue 15's "1.21×" for ad's 0.15 ms run, 0.15 / 1.21).
# benchmarks/tflm_invoke.py measures TFLM itself, taking turns with the simulator.
TFLM_MS = {"kws_dscnn": 4.4, "ic_resnet8": 13.7, "vww_mobilenet": 10.9, "ad_autoencoder": 0.124}


def measure(name: str, hw) -> list:
    sample = MODELS_DIR / f"{name}.io.npz"
    with tempfile.TemporaryDirectory() as tmp:
        result = nnc.compile(MODELS_DIR / f"{name}.onnx", target="az-sim", output_dir=Path(tmp) / "out",
                             calib=sample)
        blob = (Path(tmp) / "out" / f"{name}.azb").read_bytes()
    sim = result.report["sim"]
    x = np.load(sample)["input"]
    simulator = Simulator(read_blob(blob), hw)
    run = timings(lambda: simulator.run({result.graph.inputs[0]: x}))
    simulate = timings(lambda: nnc.simulate(blob, {"input": x}))
    executed = sim["macs_total"] - sim["macs_skipped"]
    utilization = executed / (sim["cycles"] * hw.mac_lanes)
    tflm = TFLM_MS.get(name.rsplit("_", 1)[0].removesuffix("_int8"))
    ratio = " / ".join(f"{t / tflm:.2f}" for t in run) if tflm else "no figure"
    return [name, f"{len(blob):,}", f"{sim['cycles']:,}", f"{sim['latency_ms']:.3f}", f"{sim['energy_uj']:.2f}",
            f"{utilization:.1%}", f"{sim['macs_skipped'] / sim['macs_total']:.1%}",
            " / ".join(f"{t:.3f}" for t in run), " / ".join(f"{t:.3f}" for t in simulate),
            f"{tflm:g}" if tflm else "", ratio]


def timings(call) -> tuple[float, float]:
    """(median, minimum) wall time of RUNS calls after WARMUP, in ms."""
    for _ in range(WARMUP):
        call()
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3, min(times) * 1e3


def main() -> None:
    hw = load_hardware()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"az-sim benchmark — {machine()}, load average {load:.1f}; machine `{hw.name}` "
          f"({hw.mac_lanes} lanes at {hw.clock_mhz:g} MHz)\n")
    headers = ["model", "blob bytes", "cycles", "latency ms", "energy µJ", "MAC util.", "MACs skipped",
               "run ms (median / min)", "simulate ms (median / min)", "TFLM ms (quoted)", "run ÷ TFLM (median / min)"]
    print(markdown_table(headers, [measure(name, hw) for name in model_names()]))


if __name__ == "__main__":
    main()
