"""az-sim benchmark: per MLPerf Tiny model, blob bytes, simulated cycles,
latency, energy, MAC utilization, skipped MACs, and the simulator's own speed
(inferences per second on this machine, accounting included).

Run from the repo root: `python benchmarks/azsim.py` (prints a markdown table).
Each model is compiled as `nnc compile M --target az-sim --calib M.io.npz`; the
simulator speed is the median wall time of 200 runs of the blob (read back from
its bytes) after 10 warm-up runs. MAC utilization = executed MACs /
(compute-bound cycles available: total cycles × MAC lanes).
"""

from __future__ import annotations

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


def measure(name: str, hw) -> list:
    sample = MODELS_DIR / f"{name}.io.npz"
    with tempfile.TemporaryDirectory() as tmp:
        result = nnc.compile(MODELS_DIR / f"{name}.onnx", target="az-sim", output_dir=Path(tmp) / "out",
                             calib=sample)
        blob = (Path(tmp) / "out" / f"{name}.azb").read_bytes()
    sim = result.report["sim"]
    simulator = Simulator(read_blob(blob), hw)
    feeds = {result.graph.inputs[0]: np.load(sample)["input"]}
    for _ in range(WARMUP):
        simulator.run(feeds)
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        simulator.run(feeds)
        times.append(time.perf_counter() - start)
    ms = statistics.median(times) * 1e3
    executed = sim["macs_total"] - sim["macs_skipped"]
    utilization = executed / (sim["cycles"] * hw.mac_lanes)
    return [name, f"{len(blob):,}", f"{sim['cycles']:,}", f"{sim['latency_ms']:.3f}", f"{sim['energy_uj']:.2f}",
            f"{utilization:.1%}", f"{sim['macs_skipped'] / sim['macs_total']:.1%}", f"{ms:.2f}", f"{1000 / ms:,.0f}"]


def main() -> None:
    hw = load_hardware()
    print(f"az-sim benchmark — {machine()}; machine `{hw.name}` ({hw.mac_lanes} lanes at {hw.clock_mhz:g} MHz)\n")
    headers = ["model", "blob bytes", "cycles", "latency ms", "energy µJ", "MAC util.", "MACs skipped",
               "sim ms/inf", "sim inf/s"]
    print(markdown_table(headers, [measure(name, hw) for name in model_names()]))


if __name__ == "__main__":
    main()
