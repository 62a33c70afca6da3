"""Test-set accuracy of digits.onnx through nnc's compiled targets, per
compression setting.

For every setting (float, int8, 4-bit, 4-bit + 50 % sparsity, 3-bit codebook)
and target, `nnc.compile` builds the model with calib.npz, and the whole test
set (dataset.split(), 450 images) runs through the compiled artifact:

- c, c packed: the emitted C with its test harness, built by the host C compiler
  and run once on all images (`--run N`), through the C target's `execute`, the
  path the driver's verification takes;
- az-sim: the emitted blob in nnc's simulator (`nnc.simulate`, one batch);
- onnxruntime: the original float model, the accuracy every drop refers to.

Run `python evaluate.py` from this folder (`--out DIR` keeps the compiled
outputs). It prints one row per setting and target: accuracy, drop against the
float model in points, stored weight bytes (report `weights`), their ratio to
fp32 and the artifact's constant bytes (C: flash; az-sim: the blob). A setting
nnc refuses gets its error in the row instead.
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import nnc
from nnc.backends import get_target
from nnc.tables import format_table, thousands
from nnc.verification import onnxruntime_outputs

HERE = Path(__file__).resolve().parent
MODEL = HERE / "digits.onnx"
CALIB = HERE / "calib.npz"
REFERENCE = "onnxruntime"
# target label -> (nnc target, extra compile options)
TARGETS = {"c": ("c", {}), "c packed": ("c", {"c_weights": "packed"}), "az-sim": ("az-sim", {})}
QUANTIZED_TARGETS = ("c", "c packed", "az-sim")


@dataclass(frozen=True)
class Setting:
    name: str
    options: dict = field(default_factory=dict)
    targets: tuple[str, ...] = QUANTIZED_TARGETS


SETTINGS = (
    Setting("float", {"quantize": False}, (REFERENCE, "c")),
    Setting("int8"),
    Setting("4-bit", {"weight_bits": 4}),
    Setting("4-bit + 50% sparse", {"weight_bits": 4, "sparsity": 0.5}),
    Setting("3-bit codebook", {"weight_bits": 3, "codebook": True}),
)


@dataclass
class Row:
    """One setting on one target: its predictions on the test set, or the error."""

    setting: str
    target: str
    predictions: np.ndarray | None = None
    report: dict | None = None
    error: str | None = None

    def accuracy(self, labels: np.ndarray) -> float | None:
        return None if self.predictions is None else float(np.mean(self.predictions == labels))


def samples_of(images: np.ndarray) -> list[dict[str, np.ndarray]]:
    """Images [N,1,8,8] as N samples of the model's input [1,1,8,8]."""
    return [{"image": image[None]} for image in images]


def compile_setting(setting: Setting, target: str, out_dir: Path) -> nnc.CompileResult:
    """digits.onnx compiled for `target` (a TARGETS label) with the setting's options."""
    kind, extra = TARGETS[target]
    return nnc.compile(MODEL, kind, out_dir, calib=CALIB, **setting.options, **extra)


def artifact(result: nnc.CompileResult, suffix: str) -> Path:
    """The compiled output file whose name ends with `suffix`."""
    (name,) = [a for a in result.artifacts if a.endswith(suffix)]
    return result.output_dir / name


def run_compiled(result: nnc.CompileResult, images: np.ndarray) -> np.ndarray:
    """Logits [N,10] of the compiled artifact on `images`."""
    if result.report["target"] == "az-sim":
        outputs, _ = nnc.simulate(artifact(result, ".azb"), {"image": images[:, None]})
        return outputs["logits"].reshape(len(images), -1)
    stem = artifact(result, "_test.c").name.removesuffix("_test.c")
    outputs = get_target("c").execute(result.graph, result.output_dir, stem, samples_of(images))
    return np.stack([out["logits"] for out in outputs]).reshape(len(images), -1)


def run_reference(images: np.ndarray) -> np.ndarray:
    """Logits [N,10] of the original float model in onnxruntime."""
    outputs = onnxruntime_outputs(MODEL, samples_of(images), ["logits"])
    return np.stack([out["logits"] for out in outputs]).reshape(len(images), -1)


def measure(setting: Setting, target: str, images: np.ndarray, work: Path) -> Row:
    """Compile (into work/<setting>/<target>) and predict the test set."""
    row = Row(setting.name, target)
    if target == REFERENCE:
        row.predictions = run_reference(images).argmax(1)
        return row
    out_dir = work / _slug(setting.name) / _slug(target)
    try:
        result = compile_setting(setting, target, out_dir)
        row.report = result.report
        row.predictions = run_compiled(result, images).argmax(1)
    except nnc.NncError as exc:
        row.error = f"{type(exc).__name__}: {exc}"
    return row


def evaluate(images: np.ndarray, work: Path, settings=SETTINGS) -> list[Row]:
    return [measure(setting, target, images, work) for setting in settings for target in setting.targets]


def table(rows: list[Row], labels: np.ndarray) -> str:
    """The results as a text table; drops refer to the onnxruntime row."""
    reference = next(r.accuracy(labels) for r in rows if r.target == REFERENCE)
    fp32 = fp32_weight_bytes()
    cells = []
    for row in rows:
        accuracy = row.accuracy(labels)
        if accuracy is None:
            cells.append([row.setting, row.target, "error", "", "", "", "", row.error])
            continue
        stored = row.report["weights"]["stored_bytes"] if row.report else fp32
        cells.append([row.setting, row.target, f"{accuracy:.2%}", f"{100 * (reference - accuracy):.2f}",
                      thousands(stored), f"{fp32 / stored:.1f}x", thousands(artifact_bytes(row.report)), ""])
    return format_table(["setting", "target", "accuracy", "drop (points)", "weight bytes", "vs fp32",
                         "artifact bytes", "error"], cells, numeric={2, 3, 4, 5, 6})


def artifact_bytes(report: dict | None) -> int:
    """The constants the artifact carries: C flash bytes, the az-sim blob's size,
    or (no report: the reference) the ONNX file's size."""
    if report is None:
        return MODEL.stat().st_size
    if "memory" in report:
        return report["memory"]["flash_bytes"]
    return report["sim"]["blob_bytes"]


def fp32_weight_bytes() -> int:
    """4 bytes per weight of the weighted layers (biases excluded), as the report counts."""
    import onnx

    model = onnx.load(MODEL)
    return sum(4 * int(np.prod(t.dims)) for t in model.graph.initializer if len(t.dims) >= 2)


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text).strip("_")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="keep the compiled outputs in this folder")
    args = parser.parse_args()
    from dataset import split

    data = split()
    with tempfile.TemporaryDirectory(prefix="digits-") as tmp:
        rows = evaluate(data.x_test, args.out or Path(tmp))
    print(f"digits test set: {len(data.y_test)} images\n")
    print(table(rows, data.y_test))


if __name__ == "__main__":
    main()
