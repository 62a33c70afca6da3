"""`--target onnx` on seeded random inputs: how far onnxruntime's outputs of the
written file are from nnc's integer graph, per model, setting and seed.

Run from the repo root: `python benchmarks/onnx_random_inputs.py [--seeds 0,1,2]
[--samples 64] [--form qdq|integer] [--models resnet8,kws,...]` (prints a
markdown table; needs ../shared/models/mlperf-tiny).

Each MLPerf Tiny model is compiled with `nnc compile M --target onnx --inputs
R.npz` plus the setting's flags, R.npz holding `--samples` inputs of
`nnc.verification.synthetic_samples(graph, samples, seed)` (int8 inputs uniform
over [-128, 127], float inputs uniform in [-1, 1)); the float models are
calibrated on nnc's synthetic calibration samples, the same for every seed.
Columns:
- "layers": the per-layer check's worst step over the seeds (report
  `onnx.max_layer_diff_lsb`): each integer op evaluated on onnxruntime's values
  of its inputs; the compile fails above 1 LSB. The integer form has no
  per-layer check (–).
- per seed, "outputs (inputs)": the largest output difference (report
  `verification.vs_reference.max_abs_diff_lsb`), in steps of the output's grid,
  and on how many of the samples some output is over 1 LSB apart. Not bounded
  in the QDQ form, where one layer's step is the next one's input; 0 in the
  integer form, or the compile fails.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

import nnc
from nnc.backends.onnx_qdq.target import OnnxTarget, _session
from nnc.interpreter import run
from nnc.verification import synthetic_samples
from nnc.verify_step import _max_lsb

from common import MODELS_DIR, machine, markdown_table, model_names

SETTINGS = {"int8": {}, "4-bit": {"weight_bits": 4}, "4-bit 2:4": {"weight_bits": 4, "sparsity_pattern": "2:4"}}


def random_inputs(model: Path, count: int, seed: int, path: Path) -> list[dict]:
    """`count` seeded random samples of the model's inputs, saved stacked at `path`."""
    graph = nnc.compile(model, target="ir", quantize=False, verify=False).graph
    samples = synthetic_samples(graph, count, seed)
    np.savez(path, **{name: np.stack([sample[name] for sample in samples]) for name in graph.inputs})
    return samples


def measure(model: Path, setting: dict, form: str, count: int, seed: int, tmp: Path) -> tuple[float | None, str]:
    """(the per-layer check's worst step, "outputs (inputs)") on one seed (module docstring)."""
    samples = random_inputs(model, count, seed, tmp / "inputs.npz")
    result = nnc.compile(model, target="onnx", onnx_form=form, output_dir=tmp / "out", inputs=tmp / "inputs.npz",
                         **setting)
    reference = OnnxTarget().reference_graph(result.graph)
    session = _session(tmp / "out" / f"{model.stem}.onnx")
    over = 0
    for sample in samples:
        ours = run(reference, sample)
        theirs = dict(zip(reference.outputs, session.run(reference.outputs, sample)))
        over += _max_lsb(reference, [ours], [theirs]) > 1
    outputs = result.report["verification"]["vs_reference"]["max_abs_diff_lsb"]
    return result.report["onnx"].get("max_layer_diff_lsb"), f"{outputs:g} ({over})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds of the random inputs")
    parser.add_argument("--samples", type=int, default=64, help="random inputs per seed")
    parser.add_argument("--form", default="qdq", choices=["qdq", "integer"])
    parser.add_argument("--models", default="", help="comma-separated parts of model names (default: all)")
    args = parser.parse_args()
    seeds = [int(seed) for seed in args.seeds.split(",")]
    wanted = [part for part in args.models.split(",") if part]
    rows = []
    for name in model_names():
        if wanted and not any(part in name for part in wanted):
            continue
        for label, setting in SETTINGS.items():
            layers, cells = [], []
            for seed in seeds:
                with tempfile.TemporaryDirectory() as tmp:
                    worst, cell = measure(MODELS_DIR / f"{name}.onnx", setting, args.form, args.samples, seed,
                                          Path(tmp))
                layers.append(worst)
                cells.append(cell)
                print(f"{name} {label} seed {seed}: layers {worst}, outputs {cell}", file=sys.stderr)
            rows.append([f"{name}.onnx", label, "–" if None in layers else f"{max(layers):g}", *cells])
    print(f"Measured {machine()}; form {args.form}, {args.samples} random inputs per seed.\n")
    print(markdown_table(["model", "setting", "layers (LSB)", *(f"seed {seed}" for seed in seeds)], rows))


if __name__ == "__main__":
    main()
