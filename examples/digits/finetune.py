"""Train the compressed variants of digits.onnx with `nnc finetune` and measure
each on the test set through the compiled az-sim target.

    python examples/digits/finetune.py [--settings "4-bit + 75%" "2-bit"] [--epochs 15]

Writes only under examples/digits/out/: the training and test sets as nnc
sample files (train.npz, train_labels.npy, test.npz, test_labels.npy), one
folder per setting with the fine-tuned model (model.nnir, finetune.json) and
its compiled blob. Needs PyTorch (pip install 'nnc[train]') and scikit-learn.
About half a minute per setting on one core.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
SETTINGS = {
    "4-bit + 75%": ["--weight-bits", "4", "--sparsity", "0.75"],
    "2-bit": ["--weight-bits", "2"],
    "2-bit codebook": ["--weight-bits", "2", "--codebook"],
    "2:4 at 4-bit": ["--weight-bits", "4", "--sparsity-pattern", "2:4"],
    "channels 50%": ["--prune-channels", "0.5"],
}


def write_data() -> None:
    """The fixed split (dataset.py) as nnc sample files: one leading axis of samples."""
    sys.path.insert(0, str(HERE))
    from dataset import split

    data = split()
    OUT.mkdir(exist_ok=True)
    np.savez(OUT / "train.npz", image=data.x_train[:, None])
    np.save(OUT / "train_labels.npy", data.y_train)
    np.savez(OUT / "test.npz", image=data.x_test[:, None])
    np.save(OUT / "test_labels.npy", data.y_test)


def nnc(*args: str) -> None:
    subprocess.run(["nnc", *args], check=True)


def run(setting: str, flags: list[str], epochs: int) -> dict:
    """Fine-tune, compile for az-sim, and validate on the test set."""
    import nnc as api

    folder = OUT / setting.replace(" ", "_").replace("%", "").replace(":", "of").replace("+", "")
    nnc("finetune", str(HERE / "digits.onnx"), "--data", str(OUT / "train.npz"), "--labels",
        str(OUT / "train_labels.npy"), "--epochs", str(epochs), "-q", "-o", str(folder / "tuned"), *flags)
    result = api.validate(folder / "tuned" / "digits.nnir", OUT / "test.npz", OUT / "test_labels.npy", "az-sim",
                          folder / "az-sim")
    logits = result.report["verification"]["outputs"]["logits"]
    return {"accuracy": logits["top1"], "bytes": result.report["weights"]["stored_bytes"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", nargs="+", choices=sorted(SETTINGS), default=list(SETTINGS))
    parser.add_argument("--epochs", type=int, default=15)
    args = parser.parse_args()
    write_data()
    print("| setting | test accuracy (az-sim) | stored weight bytes | vs fp32 (47,680) |")
    print("| --- | ---: | ---: | ---: |")
    for setting in args.settings:
        found = run(setting, SETTINGS[setting], args.epochs)
        print(f"| {setting} | {found['accuracy']:.2%} | {found['bytes']:,} | {47_680 / found['bytes']:.1f}x |",
              flush=True)


if __name__ == "__main__":
    main()
