"""C backend benchmark: per MLPerf Tiny model, compile time, planned arena vs naive
vs lower bound, flash and RAM on Cortex-M4, stack and heap of the inference call,
host instructions per inference, and onnxruntime's latency for comparison.

Run from the repo root: `python benchmarks/c_backend.py` (prints markdown tables).

How each figure is measured:
- compile s: wall time of `nnc.compile(M, target="c", calib=M.io.npz, verify=False)`
  (front end, passes, calibration, C emission), best of 3;
- arena / naive / bound: report.json `memory.*` (bytes);
- text / data / bss: `arm-none-eabi-size` of `<stem>.c` built with
  `arm-none-eabi-gcc -std=c99 -mcpu=cortex-m4 -mthumb -Os -c`;
- stack: the deepest path from `<prefix>_invoke` through the static call graph of
  that same build (`-fcallgraph-info=su`: every function's frame in bytes); heap:
  0 when the object references no malloc/calloc/realloc/free;
- instructions: `valgrind --tool=callgrind --toggle-collect=<prefix>_invoke` on the
  host harness built with `gcc -std=c99 -O2`, one inference of the model's sample;
- onnxruntime µs: median of 200 runs of the original model (all optimizations,
  one thread) on the same sample.
Tools that are missing print "n/a".
"""

from __future__ import annotations

import re
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

import nnc

from common import MODELS_DIR, machine, markdown_table, model_names

# TensorFlow Lite Micro on this host, as measured for issue #3 (not by this script:
# TFLM's Python package needs .tflite files, which shared/ does not hold).
TFLM_INSTRUCTIONS = {"kws": 51.0e6, "ic": 135.4e6, "vww": 122.0e6, "ad": 2.51e6, "sww": 10.4e6}
TFLM_ARENA = {"kws": 16000, "ic": 49152, "vww": 73728, "ad": 768, "sww": 6656}
ARM = ["arm-none-eabi-gcc", "-std=c99", "-mcpu=cortex-m4", "-mthumb", "-Os"]


def compile_model(name: str, out: Path) -> tuple[nnc.CompileResult, float]:
    sample = MODELS_DIR / f"{name}.io.npz"
    best = float("inf")
    for _ in range(3):
        shutil.rmtree(out, ignore_errors=True)
        start = time.perf_counter()
        result = nnc.compile(MODELS_DIR / f"{name}.onnx", target="c", output_dir=out, calib=sample, verify=False)
        best = min(best, time.perf_counter() - start)
    return result, best


def prefix_of(out: Path) -> tuple[str, str]:
    """(file stem, C symbol prefix) of the emitted sources."""
    header = next(p for p in out.glob("*.h") if not p.stem.endswith(("_kernels", "_weights", "_golden")))
    symbol = re.search(r"int (\w+)_invoke\(", header.read_text()).group(1)
    return header.stem, symbol


def arm_figures(out: Path, stem: str, prefix: str) -> tuple[str, str, str, str, str]:
    """(text, data, bss, stack, heap) of the Cortex-M4 build, or n/a."""
    if not shutil.which(ARM[0]):
        return ("n/a",) * 5
    obj = out / "arm.o"
    subprocess.run([*ARM, "-fcallgraph-info=su", "-c", str(out / f"{stem}.c"), "-o", str(obj)],
                   check=True, cwd=out)
    text, data, bss = subprocess.run(["arm-none-eabi-size", str(obj)], capture_output=True, text=True,
                                     check=True).stdout.splitlines()[1].split()[:3]
    stack = deepest_stack(out / "arm.ci", f"{prefix}_invoke")
    undefined = subprocess.run(["arm-none-eabi-nm", "-u", str(obj)], capture_output=True, text=True).stdout
    heap = "0" if not re.search(r"\b(malloc|calloc|realloc|free)\b", undefined) else "uses heap"
    return f"{int(text):,}", f"{int(data):,}", f"{int(bss):,}", f"{stack:,}", heap


def deepest_stack(callgraph: Path, root: str) -> int:
    """Largest sum of frame sizes along a call path from `root` (gcc's .ci file)."""
    text = callgraph.read_text()
    frames = {m[0]: int(m[1]) for m in re.findall(r'title: "([^"]+)" label: "[^"]*?\\n(\d+) bytes', text)}
    edges: dict[str, set[str]] = {}
    for source, target in re.findall(r'sourcename: "([^"]+)" targetname: "([^"]+)"', text):
        edges.setdefault(source, set()).add(target)

    def depth(node: str, seen: frozenset) -> int:
        below = [depth(t, seen | {t}) for t in edges.get(node, ()) if t not in seen]
        return frames.get(node, 0) + max(below, default=0)

    return depth(root, frozenset({root}))


def instructions(out: Path, stem: str, prefix: str, name: str) -> int | None:
    if not shutil.which("valgrind"):
        return None
    exe = out / "bench_harness"
    subprocess.run(["gcc", "-std=c99", "-O2", "-o", str(exe), f"{stem}_test.c", f"{stem}.c", "-lm"],
                   check=True, cwd=out)
    sample = np.load(MODELS_DIR / f"{name}.io.npz")["input"]
    sample.tofile(out / "in.bin")
    proc = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out / 'cg.out'}",
                           f"--toggle-collect={prefix}_invoke", str(exe), "--run", "1", "in.bin", "out.bin"],
                          capture_output=True, text=True, cwd=out)
    found = re.search(r"Collected : (\d+)", proc.stderr)
    return int(found.group(1)) if found else None


def onnxruntime_us(name: str) -> float:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(MODELS_DIR / f"{name}.onnx"), options, providers=["CPUExecutionProvider"])
    feeds = {session.get_inputs()[0].name: np.load(MODELS_DIR / f"{name}.io.npz")["input"]}
    for _ in range(20):
        session.run(None, feeds)
    times = []
    for _ in range(200):
        start = time.perf_counter()
        session.run(None, feeds)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


def measure(name: str, work: Path) -> tuple[list, list]:
    out = work / name
    result, seconds = compile_model(name, out)
    memory = result.report["memory"]
    stem, prefix = prefix_of(out)
    text, data, bss, stack, heap = arm_figures(out, stem, prefix)
    count = instructions(out, stem, prefix, name)
    key = name.split("_")[0]
    tflm = TFLM_INSTRUCTIONS[key] if "int8" in name else None
    ratio = f"{count / tflm:.2f}×" if count and tflm else ""
    sizes = [name, f"{seconds:.2f}", f"{memory['arena_bytes']:,}", f"{memory['arena_naive_bytes']:,}",
             f"{memory['arena_lower_bound_bytes']:,}",
             f"{TFLM_ARENA[key]:,}" if "int8" in name else "", text, data, bss, stack, heap]
    speed = [name, f"{count / 1e6:.2f} M" if count else "n/a", f"{tflm / 1e6:.2f} M" if tflm else "", ratio,
             f"{onnxruntime_us(name):.0f}"]
    return sizes, speed


def main() -> None:
    print(f"C backend benchmark — {machine()}\n")
    with tempfile.TemporaryDirectory(prefix="nnc-bench-") as tmp:
        results = [measure(name, Path(tmp)) for name in model_names()]
    print(markdown_table(["model", "compile s", "arena", "naive", "lower bound", "TFLM arena", "text", "data",
                          "bss", "stack", "heap"], [r[0] for r in results]))
    print()
    print(markdown_table(["model", "instructions/inference", "TFLM (issue #3)", "ratio", "onnxruntime µs"],
                         [r[1] for r in results]))


if __name__ == "__main__":
    main()
