"""Training benchmark: what fine-tuning with nnc.train wins back over one-shot
compression, measured through the compiled targets.

Run from the repo root: `python benchmarks/training.py [--quick] [--out DIR]
[--epochs N] [--lr LR]` (prints markdown tables; needs PyTorch, onnxruntime and
scikit-learn; about 3 minutes on 2 cores). `--quick` is a smoke test (one
setting, 2 epochs, the first 100 test images, the MLP only). The script exits
with status 1 when a target's accuracy differs from the twin's.

- Models: examples/digits/digits.onnx, and two digit classifiers nnc has never
  seen, trained here with torch on the same training split (fixed seeds, one
  thread) and exported to ONNX (opset 17): an MLP 64-128-64-10, a
  depthwise-separable CNN with batch norm, a residual Add and a
  GlobalAveragePool, and an LSTM that reads the image row by row (8 frames of
  8 pixels, 32 units, its last hidden state into a Linear: PyTorch's export,
  time-major, so the twin trains it sample by sample; its recurrent weights
  stay int8, only the head is quantized below 8 bits, and "channels 50%"
  removes hidden units). The unseen models run the first two settings and
  "channels 50%".
- Per setting: `nnc.train.prepare` builds the twin (calibrated on 64 training
  images); the one-shot model is the untrained twin with its masks at their
  final sparsity; the fine-tuned one is the twin after `fit` on the training
  split (FitOptions: 15 epochs, seed 0, one thread, otherwise the defaults,
  which `nnc finetune` also uses; FIT_OPTIONS lists per-setting changes, if
  any). Each is exported, saved as .nnir and compiled for az-sim and for c with
  packed weights by `nnc.validate`, which runs all 450 test images through the
  target (the built C program, the blob in the simulator) and checks it bit for
  bit against the reference interpreter; the accuracy is the target's top-1.
  "twin = target" says whether both targets' accuracies equal the twin's own
  ("exact" mode, test images) for the one-shot and the fine-tuned model.
- "nnc one-shot" is `nnc compile` of the ONNX model with the same compression
  options and nnc's default method (obs with the calibration samples), for
  az-sim: the best nnc does without training.
- Drops are in points against the float ONNX model in onnxruntime; stored
  bytes are the report's `weights.stored_bytes`; "× smaller" divides the
  original model's fp32 weight bytes by the az-sim bytes; training seconds are
  fit's wall time; "epoch kept" is the epoch fit kept (best holdout score in
  exact mode) over the epochs it ran.
- Issue 12's targets are checked on digits. For "20× smaller than fp32" the
  setting is TWENTY_X, 3-bit + 80 %: of the settings tried (az-sim bytes of
  the fine-tuned model), the least compressed that stays at ≥ 20×. 2-bit
  codebook is 20.0× one-shot but 19.5× fine-tuned (its trained weights pack
  less well); 2-bit is 23.4×, 4-bit + 85 % 23.1×; codebooks with sparsity
  (2-bit + 70 %/75 %, 3-bit + 80 %) fine-tune to 3.5-5.8 points below float.
  The last line lists every digits setting ≥ 20× within 1 point.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

import nnc
from nnc.report import kept_weights, layer_weights
from nnc.train import Compression, export, prepare, save
from nnc.train.loop import FitOptions, fit
from nnc.verification import onnxruntime_outputs

from common import machine, markdown_table

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "examples" / "digits"
EPOCHS = 15
QUICK_EPOCHS = 2
QUICK_TEST = 100
QUICK_UNSEEN_EPOCHS = 3
CALIB_SAMPLES = 64
SETTINGS = {
    "4-bit + 75%": {"weight_bits": 4, "sparsity": 0.75},
    "2-bit": {"weight_bits": 2},
    "2-bit codebook": {"weight_bits": 2, "codebook": True},
    "2:4 at 4-bit": {"weight_bits": 4, "sparsity_pattern": "2:4"},
    "channels 50%": {"prune_channels": 0.5},
    "3-bit + 80%": {"weight_bits": 3, "sparsity": 0.8},
    "2-bit codebook + 75%": {"weight_bits": 2, "codebook": True, "sparsity": 0.75},
}
TWENTY_X = "3-bit + 80%"  # the setting of the 20× target (module docstring)
FIT_OPTIONS: dict[str, dict] = {}  # setting -> FitOptions fields changed from the defaults above
UNSEEN_SETTINGS = ("4-bit + 75%", "2-bit", "channels 50%")
# (issue 12's target, its setting, most points the fine-tuned model may lose, least × smaller than fp32)
ISSUE_TARGETS = (("4-bit + 75% within 1 point", "4-bit + 75%", 1.0, 0.0),
                 ("2-bit within 1.5 points", "2-bit", 1.5, 0.0),
                 ("2-bit codebook within 2 points", "2-bit codebook", 2.0, 0.0),
                 ("20× smaller than fp32 within 1 point", TWENTY_X, 1.0, 20.0))
TARGETS = {"c": ("c", {"c_weights": "packed"}), "az-sim": ("az-sim", {})}


@dataclass(frozen=True)
class Subject:
    """A labelled classifier under test: its ONNX file, calibration samples and
    test files ([N, 1, 1, 8, 8] images under its input name, labels .npy)."""

    name: str
    model: Path
    calib: Path
    x_test: Path
    y_test: Path
    float_accuracy: float


@dataclass
class Stage:
    """One model (one-shot or fine-tuned) through the targets: the twin's exact
    accuracy, each target's accuracy and stored weight bytes."""

    twin: float
    accuracy: dict[str, float] = field(default_factory=dict)
    stored: dict[str, int] = field(default_factory=dict)

    @property
    def agrees(self) -> bool:
        return all(a == self.twin for a in self.accuracy.values())

    @property
    def worst(self) -> float:
        return min(self.accuracy.values())


@dataclass
class Outcome:
    subject: Subject
    setting: str
    one_shot: Stage
    nnc_one_shot: float
    tuned: Stage
    seconds: float
    kept: str

    def drop(self, accuracy: float) -> float:
        return 100 * (self.subject.float_accuracy - accuracy)


def fp32_bytes(model: Path) -> int:
    """4 bytes per weight of the model as given, the report's weights: the
    weighted layers', recurrent W and R, embedding tables (shared ones once)."""
    graph = nnc.load(model)
    tensors = {t.name: t for t in layer_weights(graph).values()}
    tensors |= {t.name: t for kept in kept_weights(graph).values() for t in kept}
    return 4 * sum(t.size for t in tensors.values())


def float_accuracy(model: Path, x: np.ndarray, y: np.ndarray) -> float:
    """Top-1 accuracy of the ONNX model in onnxruntime on images x [N, 1, 8, 8]."""
    graph = nnc.load(model)
    outputs = onnxruntime_outputs(model, [{graph.inputs[0]: image[None]} for image in x], graph.outputs[:1])
    return float(np.mean(np.stack([next(iter(o.values())).reshape(-1) for o in outputs]).argmax(axis=1) == y))


def prepare_subject(name: str, model: Path, calib: Path, x_test: np.ndarray, y_test: np.ndarray,
                    work: Path) -> Subject:
    """The model with its test set written as validate's input files in `work`."""
    folder = work / name
    folder.mkdir(parents=True, exist_ok=True)
    input_name = nnc.load(model).inputs[0]
    np.savez(folder / "x_test.npz", **{input_name: x_test[:, None]})
    np.save(folder / "y_test.npy", y_test)
    return Subject(name, model, calib, folder / "x_test.npz", folder / "y_test.npy",
                   float_accuracy(model, x_test, y_test))


def through_targets(twin, subject: Subject, x_test: np.ndarray, y_test: np.ndarray, out: Path) -> Stage:
    """The twin (mode "exact") on the test images, then its export compiled and
    run on them by every target (see the module docstring)."""
    with torch.no_grad():
        predicted = twin(torch.from_numpy(x_test)).argmax(dim=1).numpy()
    stage = Stage(float(np.mean(predicted == y_test)))
    (out / "model").mkdir(parents=True, exist_ok=True)
    model = save(export(twin), out / "model" / f"{subject.name}.nnir")
    for label, (target, extra) in TARGETS.items():
        result = nnc.validate(model, subject.x_test, subject.y_test, target, out / label, **extra)
        stage.accuracy[label] = top1(result.report)
        stage.stored[label] = result.report["weights"]["stored_bytes"]
    return stage


def top1(report: dict) -> float:
    return next(iter(report["verification"]["outputs"].values()))["top1"]


def nnc_one_shot(subject: Subject, compression: dict, out: Path) -> float:
    """az-sim accuracy of `nnc compile` of the ONNX model (default method: obs)."""
    result = nnc.validate(subject.model, subject.x_test, subject.y_test, "az-sim", out, calib=subject.calib,
                          **compression)
    return top1(result.report)


def measure(subject: Subject, setting: str, split, options: FitOptions, work: Path) -> Outcome:
    """One-shot, nnc one-shot and fine-tuned results of `setting` on `subject`."""
    out = work / subject.name / _slug(setting)
    compression = SETTINGS[setting]
    twin = prepare(subject.model, Compression(**compression), calib=subject.calib)
    twin.set_progress(1.0)
    twin.eval().set_mode("exact")
    one_shot = through_targets(twin, subject, split.x_test, split.y_test, out / "one-shot")
    input_name = twin.graph.inputs[0]
    start = time.perf_counter()
    result = fit(twin, {input_name: split.x_train}, split.y_train, options)
    seconds = time.perf_counter() - start
    tuned = through_targets(twin, subject, split.x_test, split.y_test, out / "fine-tuned")
    return Outcome(subject, setting, one_shot, nnc_one_shot(subject, compression, out / "nnc-one-shot"), tuned,
                   seconds, f"{result.best.epoch} / {len(result.history)}")


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text).strip("-")


def fit_options(setting: str, changes: dict) -> FitOptions:
    """Seed 0, one thread, `changes` (epochs, lr from the command line), then
    the setting's FIT_OPTIONS."""
    return FitOptions(**{"seed": 0, "threads": 1, **changes, **FIT_OPTIONS.get(setting, {})})


# -- digit classifiers nnc has never seen ----------------------------------------------------------
class Mlp(torch.nn.Sequential):
    """64-128-64-10, ReLU."""

    def __init__(self):
        super().__init__(torch.nn.Flatten(), torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 64),
                         torch.nn.ReLU(), torch.nn.Linear(64, 10))


class SeparableNet(torch.nn.Module):
    """Conv 3×3 1→16 + BN + ReLU; a depthwise-separable block (3×3 depthwise,
    1×1 pointwise, BN, ReLU) added to its input; Conv 3×3 stride 2 16→32 + ReLU;
    GlobalAveragePool; Linear 32→10."""

    def __init__(self):
        super().__init__()
        nn = torch.nn
        self.stem = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU())
        self.block = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1, groups=16), nn.ReLU(), nn.Conv2d(16, 16, 1),
                                   nn.BatchNorm2d(16), nn.ReLU())
        self.down = nn.Sequential(nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU())
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))

    def forward(self, x):
        x = self.stem(x)
        x = x + self.block(x)
        return self.head(self.down(x))


class RowLstm(torch.nn.Module):
    """The image as 8 frames of 8 pixels (its rows) through an LSTM with 32
    units; the last hidden state through Linear 32→10."""

    def __init__(self):
        super().__init__()
        self.lstm = torch.nn.LSTM(8, 32, batch_first=True)
        self.head = torch.nn.Linear(32, 10)

    def forward(self, x):
        _, (h, _) = self.lstm(x.reshape(x.shape[0], 8, 8))
        return self.head(h[-1])


UNSEEN = {"mlp": Mlp, "separable_cnn": SeparableNet, "row_lstm": RowLstm}
UNSEEN_EPOCHS = 30


def train_unseen(name: str, split, epochs: int, work: Path) -> Path:
    """Train UNSEEN[name] on the training split (Adam 3e-3, batch 32, cross-entropy,
    seed 0, one thread) and export it to work/name.onnx (opset 17)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        net = UNSEEN[name]()
        optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
        x, y = torch.from_numpy(split.x_train), torch.from_numpy(split.y_train)
        order = np.random.RandomState(0)
        for _ in range(epochs):
            for batch in np.array_split(order.permutation(len(x)), len(x) // 32):
                index = torch.from_numpy(batch)
                loss = torch.nn.functional.cross_entropy(net(x[index]), y[index])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        return export_onnx(net.eval(), work / f"{name}.onnx")
    finally:
        torch.set_num_threads(threads)


def export_onnx(net: torch.nn.Module, path: Path) -> Path:
    """`net` as ONNX (opset 17): input "image" [1, 1, 8, 8], output "logits"."""
    with warnings.catch_warnings():  # the TorchScript exporter is deprecated, still the one for opset 17 here
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(net, (torch.zeros(1, 1, 8, 8),), str(path), input_names=["image"],
                          output_names=["logits"], opset_version=17, dynamo=False)
    return path


# -- tables ------------------------------------------------------------------------------------
def percent(value: float) -> str:
    return f"{value:.2%}"


def accuracy_cell(stage: Stage) -> str:
    """The targets' accuracy; both when c and az-sim differ."""
    values = sorted(set(stage.accuracy.values()))
    return percent(values[0]) if len(values) == 1 else ", ".join(f"{t} {percent(a)}"
                                                                 for t, a in stage.accuracy.items())


def result_row(o: Outcome, fp32: int) -> list:
    """Drops of the worse target (c and az-sim agree whenever twin = target)."""
    stored = o.tuned.stored
    return [o.subject.name, o.setting, accuracy_cell(o.one_shot), f"{o.drop(o.one_shot.worst):.2f}",
            percent(o.nnc_one_shot), accuracy_cell(o.tuned), f"{o.drop(o.tuned.worst):.2f}", f"{stored['az-sim']:,}",
            f"{stored['c']:,}", f"{fp32 / stored['az-sim']:.1f}×", f"{o.seconds:.1f}", o.kept,
            "yes" if o.one_shot.agrees and o.tuned.agrees else "NO"]


RESULT_HEADERS = ["model", "setting", "one-shot (twin export)", "one-shot drop", "nnc one-shot (obs, az-sim)",
                  "fine-tuned", "fine-tuned drop (points)", "az-sim stored bytes", "c packed stored bytes",
                  "× smaller (az-sim)", "training s", "epoch kept", "twin = target"]


def target_rows(outcomes: list[Outcome], fp32: dict[str, int]) -> list[list]:
    """One row per issue 12 target whose digits setting ran: the fine-tuned drop
    (the worse of the two targets) and, where bounded, the ratio to fp32."""
    digits = {o.setting: o for o in outcomes if o.subject.name == "digits"}
    rows = []
    for target, setting, points, ratio in ISSUE_TARGETS:
        if setting not in digits:
            continue
        o = digits[setting]
        drop, smaller = o.drop(o.tuned.worst), fp32["digits"] / o.tuned.stored["az-sim"]
        bound = f"drop ≤ {points:g}" + (f", ≥ {ratio:g}×" if ratio else "")
        rows.append([target, setting, bound, f"{drop:.2f}" + (f", {smaller:.1f}×" if ratio else ""),
                     "yes" if drop <= points and smaller >= ratio else "NO"])
    return rows


def twenty_x_line(outcomes: list[Outcome], fp32: dict[str, int]) -> str:
    """The digits settings whose fine-tuned model is ≥ 20× smaller within 1 point."""
    found = [f"{o.setting} ({fp32['digits'] / o.tuned.stored['az-sim']:.1f}×, {o.drop(o.tuned.worst):.2f} points)"
             for o in outcomes if o.subject.name == "digits" and fp32["digits"] / o.tuned.stored["az-sim"] >= 20
             and o.drop(o.tuned.worst) <= 1.0]
    return f"digits settings ≥ 20× smaller than fp32 within 1 point after fine-tuning: {', '.join(found) or 'none'}"


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"smoke test: 4-bit + 75% only, {QUICK_EPOCHS} epochs, the first {QUICK_TEST} test "
                             "images, the MLP as the only unseen model")
    parser.add_argument("--out", type=Path, help="keep the models and compiled outputs in this folder")
    parser.add_argument("--epochs", type=int, help=f"fine-tuning epochs of every setting (default {EPOCHS})")
    parser.add_argument("--lr", type=float, help="learning rate of every setting (default: FitOptions')")
    return parser.parse_args()


def subjects(data, quick: bool, work: Path) -> list[tuple[Subject, tuple[str, ...]]]:
    """(model, its settings): digits, then the unseen classifiers trained here."""
    settings = ("4-bit + 75%",) if quick else tuple(SETTINGS)
    digits = prepare_subject("digits", DIGITS / "digits.onnx", DIGITS / "calib.npz", data.x_test, data.y_test, work)
    found = [(digits, settings)]
    np.savez(work / "calib.npz", image=data.x_train[:CALIB_SAMPLES, None])
    for name in ("mlp",) if quick else tuple(UNSEEN):
        print(f"… training {name}", file=sys.stderr)
        model = train_unseen(name, data, QUICK_UNSEEN_EPOCHS if quick else UNSEEN_EPOCHS, work)
        found.append((prepare_subject(name, model, work / "calib.npz", data.x_test, data.y_test, work),
                      tuple(s for s in settings if s in UNSEEN_SETTINGS)))
    return found


def report(models: list[tuple[Subject, tuple[str, ...]]], outcomes: list[Outcome], refused: list[list]) -> None:
    fp32 = {s.name: fp32_bytes(s.model) for s, _ in models}
    print(markdown_table(["model", "float accuracy (onnxruntime)", "fp32 weight bytes"],
                         [[s.name, percent(s.float_accuracy), f"{fp32[s.name]:,}"] for s, _ in models]) + "\n")
    print(markdown_table(RESULT_HEADERS, [result_row(o, fp32[o.subject.name]) for o in outcomes]) + "\n")
    if refused:
        print(markdown_table(["model", "setting", "refused"], refused) + "\n")
    print(markdown_table(["issue 12 target (digits)", "setting", "bound", "fine-tuned drop", "holds"],
                         target_rows(outcomes, fp32)) + "\n")
    print(twenty_x_line(outcomes, fp32))


def main() -> None:
    args = arguments()
    sys.path.insert(0, str(DIGITS))
    from dataset import split as digits_split

    data = digits_split()
    if args.quick:
        data = data._replace(x_test=data.x_test[:QUICK_TEST], y_test=data.y_test[:QUICK_TEST])
    changes = {k: v for k, v in (("epochs", args.epochs or (QUICK_EPOCHS if args.quick else EPOCHS)),
                                 ("lr", args.lr)) if v is not None}
    print(f"training benchmark — {machine()}, torch {torch.__version__}\n")
    print(f"`{' '.join(['python benchmarks/training.py', *sys.argv[1:]])}`; {fit_options('', changes)}; "
          f"per-setting changes: {FIT_OPTIONS or 'none'}\n")
    with tempfile.TemporaryDirectory() as tmp:
        work = args.out or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        models, outcomes, refused = subjects(data, args.quick, work), [], []
        for s, wanted in models:
            for setting in wanted:
                print(f"… {s.name} {setting}", file=sys.stderr)
                try:
                    outcomes.append(measure(s, setting, data, fit_options(setting, changes), work))
                except nnc.NncError as exc:
                    refused.append([s.name, setting, f"{type(exc).__name__}: {exc}"])
        report(models, outcomes, refused)
    if not all(o.one_shot.agrees and o.tuned.agrees for o in outcomes):
        sys.exit("training benchmark: a compiled target's accuracy differs from the twin's exact accuracy")


if __name__ == "__main__":
    main()
