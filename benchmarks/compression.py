"""Compression benchmark: per model and setting, the stored weight bytes, the
ratio to fp32, simulated az-sim cycles and energy, and agreement with the float
model.

Run from the repo root: `python benchmarks/compression.py [--models kws,ic,...]`
(prints markdown tables; needs ../shared/models/mlperf-tiny and scikit-learn for
the digits example).

- Each MLPerf Tiny model is compiled with `nnc compile M --target az-sim --calib
  M.io.npz` plus the setting's flags; "agreement" is the cosine similarity and
  top-1 agreement of the compiled model's outputs with onnxruntime's float outputs
  of the original model on the model's one sample (report `verification.vs_float`).
  Settings that re-quantize weights run only on the float (f32) models, except
  `int8` which also runs on the QDQ models (lossless packing of their own int8
  weights, compared with Arm Vela's encoded weight sizes quoted in issue 5).
- The digits model (examples/digits) runs every setting; its agreement is the
  test-set accuracy through the compiled blob on the simulator, and a grid of
  extra settings looks for the smallest model within 1 point of float accuracy.
Stored bytes = the az-sim weight streams of the multiply-accumulate layers;
"vs fp32" divides 4 bytes per weight of the ORIGINAL model by them (so structured
pruning's removed weights count as saved; docs/compression.md).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

import nnc
from nnc.report import layer_weights

from common import MODELS_DIR, machine, markdown_table, model_names

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "examples" / "digits"
SETTINGS = {
    "int8": {},
    "4-bit": {"weight_bits": 4},
    "4-bit + 50%": {"weight_bits": 4, "sparsity": 0.5},
    "2:4": {"sparsity_pattern": "2:4"},
    "codebook 3-bit": {"weight_bits": 3, "codebook": True},
    "structured 25%": {"prune_channels": 0.25},
}
DIGITS_SEARCH = {f"{b}-bit + {s:.0%}" + (" codebook" if cb else ""):
                 {"weight_bits": b, "sparsity": s, "codebook": cb}
                 for b in (2, 3, 4) for s in (0.5, 0.6, 0.7, 0.8) for cb in (False, True)}
VELA_BYTES = {"kws_dscnn_int8_qdq": 24032, "ic_resnet8_int8_qdq": 74592, "vww_mobilenet_int8_qdq": 47456,
              "ad_autoencoder_int8_qdq": 184464, "sww_int8_qdq": 47424}


def compile_az(model: Path, calib: Path, tmp: Path, **options):
    out = tmp / "out"
    return nnc.compile(model, target="az-sim", output_dir=out, calib=calib, **options), out


def fp32_bytes(model: Path) -> int:
    """4 bytes per weight of the model as given (weights shared by layers once)."""
    tensors = {t.name: t for t in layer_weights(nnc.load(model)).values()}
    return 4 * sum(t.size for t in tensors.values())


def mlperf_rows(name: str, tmp: Path) -> list[list]:
    rows = []
    settings = SETTINGS if name.endswith("_f32") else {"int8": {}}
    model = MODELS_DIR / f"{name}.onnx"
    original = fp32_bytes(model)
    for label, options in settings.items():
        result, _ = compile_az(model, MODELS_DIR / f"{name}.io.npz", tmp, **options)
        rep = result.report
        agree = rep["verification"]["vs_float"]
        vela = VELA_BYTES.get(name)
        rows.append([name, label, *_size_cells(rep, original), f"{rep['sim']['cycles']:,}",
                     f"{rep['sim']['energy_uj']:.2f}",
                     f"cos {agree['cosine']:.4f}, top-1 {agree['top1_agreement'] if agree['top1_agreement'] is not None else '-'}",
                     f"{vela:,} ({'≤' if rep['weights']['stored_bytes'] <= vela else '>'})" if vela else ""])
    return rows


def _size_cells(report: dict, original: int) -> list[str]:
    stored = report["weights"]["stored_bytes"]
    return [f"{stored:,}", f"{original / stored:.1f}×"]


def digits_accuracy(blob: Path, x: np.ndarray, y: np.ndarray) -> float:
    outputs, _ = nnc.simulate(blob, {"image": x[:, None]})
    return float(np.mean(outputs["logits"].reshape(len(y), -1).argmax(axis=1) == y))


def digits_rows(tmp: Path) -> tuple[list[list], str]:
    sys.path.insert(0, str(DIGITS))
    from dataset import split

    data = split()
    model, calib = DIGITS / "digits.onnx", DIGITS / "calib.npz"
    float_graph = nnc.load(model)
    float_acc = float(np.mean([nnc.run(float_graph, {"image": x[None]})["logits"].argmax() == y
                               for x, y in zip(data.x_test, data.y_test)]))
    rows, found = [], []
    original = fp32_bytes(model)
    for label, options in {**SETTINGS, **DIGITS_SEARCH}.items():
        result, out = compile_az(model, calib, tmp, **options)
        acc = digits_accuracy(out / "digits.azb", data.x_test, data.y_test)
        rep = result.report
        ratio = original / rep["weights"]["stored_bytes"]
        if label in SETTINGS:
            rows.append(["digits", label, *_size_cells(rep, original), f"{rep['sim']['cycles']:,}",
                         f"{rep['sim']['energy_uj']:.3f}", f"accuracy {acc:.2%} (float {float_acc:.2%})", ""])
        if float_acc - acc <= 0.01:
            found.append((ratio, label, acc))
    ratio, label, acc = max(found)
    best = (f"digits: best setting within 1 point of float accuracy ({float_acc:.2%}): {label}, "
            f"{ratio:.1f}× smaller than fp32, accuracy {acc:.2%}")
    return rows, best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="", help="comma-separated name prefixes (default: all, and digits)")
    args = parser.parse_args()
    wanted = [m for m in args.models.split(",") if m]
    names = [n for n in model_names() if not wanted or any(n.startswith(w) for w in wanted)]
    print(f"compression benchmark — {machine()}\n")
    rows, best = [], None
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            print(f"… {name}", file=sys.stderr)
            rows += mlperf_rows(name, Path(tmp))
        if not wanted or "digits" in wanted:
            print("… digits", file=sys.stderr)
            digit_rows, best = digits_rows(Path(tmp))
            rows += digit_rows
    print(markdown_table(["model", "setting", "stored weight bytes", "vs fp32", "cycles", "energy µJ",
                          "agreement with float", "Vela int8 bytes"], rows))
    if best:
        print(f"\n{best}")


if __name__ == "__main__":
    main()
