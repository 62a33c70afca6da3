"""Accuracy benchmark: what each compression setting costs, per method, through
the compiled az-sim blob.

Run from the repo root: `python benchmarks/accuracy.py [--skip digits,kws,rules,times]
[--model M.onnx --calib C.npz --data X.npz --labels y.npy]` (prints markdown
tables; needs scikit-learn for digits and ../shared/models/mlperf-tiny for kws
and the compile times).

- Labelled sets (examples/digits: its 450-image test split, dataset.py; or the
  model and labelled data given on the command line): every setting × method
  is compiled for az-sim with the calibration samples (verified bit-exact on
  them), then the whole set runs through the blob in nnc's simulator. Rows give
  the accuracy, its drop in points against the float model in onnxruntime,
  the stored weight bytes (report `weights.stored_bytes`) and the compile's
  wall seconds (verification included).
- KWS DS-CNN (MLPerf Tiny, float) at 4-bit + 50 %: its one sample has no
  label, so it is augmented: 64 copies plus Gaussian noise of NOISE times the
  sample's standard deviation calibrate (seed 1), and 64 other copies (seed 2)
  run through the blob; the table gives the output's cosine to onnxruntime's
  float outputs over them and the top-1 agreement. The output is a Softmax
  that the sample drives to about 0.99 for one class, so the output cosine is
  close to 1 or to 0 depending on whether that class survives; the cosine of
  the logits (the Softmax's input, from the reference interpreter on the
  compiled graph, which the compile proved bit-exact with the blob, against the
  float graph) shows the error behind it.
- Every float MLPerf Tiny model (KWS, IC, VWW, AD) × setting × method, calibrated
  on 64 augmented copies of its sample and measured on 64 others through the
  blob: output cosine to float, top-1 agreement for the classifiers (mlperf_rows).
- Layer rules (digits and KWS, method × rule): the prune pass's rule for
  small-kernel convolutions (`small_layers`: kept dense, pruned per kernel, or
  ranked with the layer), first and last layer kept dense (`first_last=0`),
  and obs's damping, at 4-bit + 50 % and + 75 %, as explicit pipelines.
- Compile seconds of every float MLPerf Tiny model at 4-bit + 50 % per method,
  calibrated on its own sample and on 64 augmented copies (wall and process
  CPU time; the machine is shared, so wall time is indicative).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import nnc
from nnc.verification import cosine_rmse, onnxruntime_outputs

from common import MODELS_DIR, machine, markdown_table

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "examples" / "digits"
METHODS = ("magnitude", "obs")
SETTINGS = {
    "int8": {},
    "4-bit": {"weight_bits": 4},
    "3-bit": {"weight_bits": 3},
    "2-bit": {"weight_bits": 2},
    "4-bit + 50%": {"weight_bits": 4, "sparsity": 0.5},
    "4-bit + 75%": {"weight_bits": 4, "sparsity": 0.75},
    "2:4": {"sparsity_pattern": "2:4"},
    "channels 25%": {"prune_channels": 0.25},
    "budget 8x": {"ratio": 8},
    "budget 12x": {"ratio": 12},
    "budget 16x": {"ratio": 16},
}
KWS = "kws_dscnn_f32"
NOISE = 0.1
COPIES = 64


def compile_blob(model: Path, calib: Path, out: Path, **options) -> tuple[nnc.CompileResult, Path, float]:
    """The az-sim compile, its blob and its wall seconds."""
    start = time.perf_counter()
    result = nnc.compile(model, "az-sim", out, calib=calib, **options)
    (blob,) = [a for a in result.artifacts if a.endswith(".azb")]
    return result, out / blob, time.perf_counter() - start


def simulate_batch(blob: Path, name: str, x: np.ndarray) -> np.ndarray:
    """The blob's first output on every sample of x [N, *input shape], as [N, -1]."""
    outputs, _ = nnc.simulate(blob, {name: x})
    return next(iter(outputs.values())).reshape(len(x), -1)


def float_outputs(model: Path, name: str, x: np.ndarray) -> np.ndarray:
    graph = nnc.load(model)
    outputs = onnxruntime_outputs(model, [{name: sample} for sample in x], graph.outputs[:1])
    return np.stack([next(iter(o.values())).reshape(-1) for o in outputs])


def labelled_rows(label: str, model: Path, calib: Path, x: np.ndarray, y: np.ndarray, work: Path) -> list[list]:
    """One row per setting × method: accuracy through az-sim, drop, bytes, seconds."""
    name = nnc.load(model).inputs[0]
    float_accuracy = float(np.mean(float_outputs(model, name, x).argmax(axis=1) == y))
    rows = [[label, "float", "onnxruntime", f"{float_accuracy:.2%}", "0.00", "", ""]]
    for setting, options in SETTINGS.items():
        for method in METHODS:
            print(f"… {label} {setting} {method}", file=sys.stderr)
            result, blob, seconds = compile_blob(model, calib, work / f"{label}-{method}", method=method, **options)
            accuracy = float(np.mean(simulate_batch(blob, name, x).argmax(axis=1) == y))
            rows.append([label, setting, method, f"{accuracy:.2%}", f"{100 * (float_accuracy - accuracy):.2f}",
                         f"{result.report['weights']['stored_bytes']:,}", f"{seconds:.2f}"])
    return rows


def digits_rows(work: Path) -> list[list]:
    sys.path.insert(0, str(DIGITS))
    from dataset import split

    data = split()
    return labelled_rows("digits", DIGITS / "digits.onnx", DIGITS / "calib.npz", data.x_test[:, None], data.y_test,
                         work)


def augmented(sample: np.ndarray, seed: int, copies: int = COPIES) -> np.ndarray:
    """`copies` of `sample` plus Gaussian noise of NOISE × its standard deviation."""
    noise = np.random.default_rng(seed).standard_normal((copies, *sample.shape))
    return (sample[None] + NOISE * float(np.std(sample)) * noise).astype(sample.dtype)


def augmented_calib(model_name: str, work: Path) -> tuple[Path, str, np.ndarray]:
    """(calibration file of augmented copies, input name, the sample)."""
    model = MODELS_DIR / f"{model_name}.onnx"
    name = nnc.load(model).inputs[0]
    sample = np.load(MODELS_DIR / f"{model_name}.io.npz")["input"]
    path = work / f"{model_name}-calib.npz"
    np.savez(path, **{name: augmented(sample, seed=1)})
    return path, name, sample


def logits(graph, name: str, x: np.ndarray) -> np.ndarray:
    """The input of the graph's (Q)Softmax on every sample, dequantized, [N, -1]."""
    (tensor,) = [n.inputs[0] for n in graph.nodes() if n.op in ("Softmax", "QSoftmax")]
    quant = graph.tensor(tensor).quant
    found = []
    for sample in x:
        nnc.run(graph, {name: sample}, observe=lambda t, v: found.append(v) if t == tensor else None)
    values = np.stack(found).reshape(len(x), -1).astype(np.float64)
    return values if quant is None else (values - quant.zero_point[0]) * quant.scale[0]


class Kws:
    """KWS DS-CNN, its augmented calibration file and held-out copies, and the
    float model's outputs and logits on them."""

    def __init__(self, work: Path):
        self.model = MODELS_DIR / f"{KWS}.onnx"
        self.calib, self.name, sample = augmented_calib(KWS, work)
        self.x = augmented(sample, seed=2)
        self.truth = float_outputs(self.model, self.name, self.x)
        self.truth_logits = logits(nnc.load(self.model), self.name, self.x)

    def measure(self, result: nnc.CompileResult, blob: Path) -> tuple[float, float, float]:
        """(output cosine, logit cosine, top-1 agreement) of a compiled blob."""
        got = simulate_batch(blob, self.name, self.x)
        output = cosine_rmse(self.truth.ravel(), got.ravel())["cosine"]
        logit = cosine_rmse(self.truth_logits.ravel(), logits(result.graph, self.name, self.x).ravel())["cosine"]
        return output, logit, float(np.mean(got.argmax(axis=1) == self.truth.argmax(axis=1)))


def kws_rows(work: Path) -> list[list]:
    kws, rows = Kws(work), []
    for method in METHODS:
        print(f"… {KWS} {method}", file=sys.stderr)
        result, blob, seconds = compile_blob(kws.model, kws.calib, work / f"kws-{method}", method=method,
                                             weight_bits=4, sparsity=0.5)
        output, logit, agreement = kws.measure(result, blob)
        rows.append([KWS, "4-bit + 50%", method, f"{output:.4f}", f"{logit:.4f}", f"{agreement:.2%}",
                     f"{result.report['weights']['stored_bytes']:,}", f"{seconds:.2f}"])
    return rows


MLPERF = ("kws_dscnn_f32", "ic_resnet8_f32", "vww_mobilenet_f32", "ad_autoencoder_f32")
BUDGETS = {"budget 8x", "budget 12x", "budget 16x"}


def mlperf_rows(work: Path) -> list[list]:
    """Every setting × method on each float MLPerf model, calibrated on 64
    augmented copies of its sample and measured on 64 others: output cosine to
    the float model, top-1 agreement (classifiers), stored bytes, seconds. The
    budget settings run with magnitude only here (obs's search compiles 18
    candidates per layer with second-order statistics: minutes on VWW)."""
    rows = []
    for model_name in MLPERF:
        model = MODELS_DIR / f"{model_name}.onnx"
        calib, name, sample = augmented_calib(model_name, work)
        x = augmented(sample, seed=2)
        truth = float_outputs(model, name, x)
        for setting, options in SETTINGS.items():
            for method in ("magnitude",) if setting in BUDGETS else METHODS:
                print(f"… {model_name} {setting} {method}", file=sys.stderr)
                try:
                    result, blob, seconds = compile_blob(model, calib, work / f"{model_name}-{method}",
                                                         method=method, **options)
                except nnc.NncError as exc:
                    rows.append([model_name, setting, method, f"refused: {exc}", "", "", ""])
                    continue
                got = simulate_batch(blob, name, x)
                agreement = (f"{np.mean(got.argmax(axis=1) == truth.argmax(axis=1)):.2%}"
                             if truth.shape[1] <= 1000 and truth.shape[1] != sample.size else "")
                rows.append([model_name, setting, method, f"{cosine_rmse(truth.ravel(), got.ravel())['cosine']:.4f}",
                             agreement, f"{result.report['weights']['stored_bytes']:,}", f"{seconds:.2f}"])
    return rows


RULES = {
    "small dense (default)": "",
    "small per kernel": ",small_layers=kernel",
    "small ranked with layer": ",small_layers=layer",
    "small dense, first/last dense": ",first_last=0",
}
DAMPINGS = (0.001, 0.1)


def rule_pipelines() -> list[tuple[str, str, str, str]]:
    """(sparsity label, rule, method, the prune and quantize steps with CALIB in them)."""
    found = []
    for sparsity in (0.5, 0.75):
        for rule, extra in RULES.items():
            for method in METHODS:
                obs = ',method=obs,calib="CALIB"' if method == "obs" else ""
                found.append((f"4-bit + {sparsity:.0%}", rule, method,
                              f"prune{{sparsity={sparsity}{extra}{obs}}},quantize{{calib=\"CALIB\",weight_bits=4"
                              f"{',method=obs' if method == 'obs' else ''}}}"))
        for damping in DAMPINGS:
            found.append((f"4-bit + {sparsity:.0%}", f"damping {damping}", "obs",
                          f'prune{{sparsity={sparsity},method=obs,calib="CALIB",damping={damping}}},'
                          f'quantize{{calib="CALIB",weight_bits=4,method=obs,damping={damping}}}'))
    return found


def rule_rows(work: Path) -> list[list]:
    """digits accuracy and KWS output cosine through az-sim per rule (see RULES)."""
    sys.path.insert(0, str(DIGITS))
    from dataset import split

    from nnc.pipelines import CANONICAL

    data = split()
    kws = Kws(work)
    digits_model, digits_calib = DIGITS / "digits.onnx", DIGITS / "calib.npz"
    digits_float = float(np.mean(float_outputs(digits_model, "image", data.x_test[:, None]).argmax(axis=1)
                                 == data.y_test))
    rows = []
    for sparsity, rule, method, steps in rule_pipelines():
        print(f"… rules {sparsity} {rule} {method}", file=sys.stderr)
        _, blob, _ = compile_blob(digits_model, digits_calib, work / "rules-digits",
                                  pipeline=f"{CANONICAL},{steps.replace('CALIB', str(digits_calib))}")
        accuracy = float(np.mean(simulate_batch(blob, "image", data.x_test[:, None]).argmax(axis=1) == data.y_test))
        result, blob, _ = compile_blob(kws.model, kws.calib, work / "rules-kws",
                                       pipeline=f"{CANONICAL},{steps.replace('CALIB', str(kws.calib))}")
        output, logit, _ = kws.measure(result, blob)
        rows.append([sparsity, rule, method, f"{100 * (digits_float - accuracy):.2f}", f"{output:.4f}",
                     f"{logit:.4f}"])
    return rows


def time_rows(work: Path) -> list[list]:
    """Compile seconds at 4-bit + 50 % of every float MLPerf Tiny model."""
    rows = []
    for model in sorted(MODELS_DIR.glob("*_f32.onnx")):
        many, _, _ = augmented_calib(model.stem, work)
        for calib, label in ((MODELS_DIR / f"{model.stem}.io.npz", "1 sample"), (many, f"{COPIES} copies")):
            for method in METHODS:
                print(f"… {model.stem} {label} {method}", file=sys.stderr)
                cpu = time.process_time()
                result, _, seconds = compile_blob(model, calib, work / f"t-{model.stem}", method=method,
                                                  weight_bits=4, sparsity=0.5)
                passes = sum(p["seconds"] for p in result.report["passes"] if p["name"].split("{")[0] in
                             ("prune", "quantize"))
                rows.append([model.stem, label, method, f"{seconds:.2f}", f"{time.process_time() - cpu:.2f}",
                             f"{passes:.2f}", f"{result.report['verification']['vs_float']['cosine']:.4f}"])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip", default="", help="comma-separated parts to skip: digits, kws, mlperf, rules, times")
    parser.add_argument("--model", type=Path, help="a labelled model to add (with --calib, --data, --labels)")
    parser.add_argument("--calib", type=Path)
    parser.add_argument("--data", type=Path, help=".npy or .npz (one array) of inputs, batch first")
    parser.add_argument("--labels", type=Path, help=".npy of class ids")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    print(f"accuracy benchmark — {machine()}\n")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        rows = [] if "digits" in skip else digits_rows(work)
        if args.model:
            data = np.load(args.data)
            x = data if isinstance(data, np.ndarray) else data[data.files[0]]
            rows += labelled_rows(args.model.stem, args.model, args.calib, x, np.load(args.labels), work)
        if rows:
            print(markdown_table(["model", "setting", "method", "accuracy (az-sim)", "drop (points)",
                                  "stored weight bytes", "compile s"], rows) + "\n")
        if "kws" not in skip:
            print(markdown_table(["model", "setting", "method", "output cosine to float", "logit cosine",
                                  "top-1 agreement", "stored weight bytes", "compile s"], kws_rows(work)) + "\n")
        if "mlperf" not in skip:
            print(markdown_table(["model", "setting", "method", "output cosine to float", "top-1 agreement",
                                  "stored weight bytes", "compile s"], mlperf_rows(work)) + "\n")
        if "rules" not in skip:
            print(markdown_table(["setting", "rule", "method", "digits drop (points)", "KWS output cosine",
                                  "KWS logit cosine"], rule_rows(work)) + "\n")
        if "times" not in skip:
            print(markdown_table(["model", "calibration", "method", "compile s (wall)", "CPU s",
                                  "prune + quantize s", "cosine to float"], time_rows(work)))


if __name__ == "__main__":
    main()
