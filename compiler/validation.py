"""`nnc validate`: accuracy of the compiled target itself on a user's data set.

`validate(model, data, labels, target, **options)` compiles the model with the
given compression options, verifying on `data` — so the C binary or the
simulator runs every sample, in batches, and must match the reference bit for
bit — and returns the CompileResult whose report holds, per output,
compiler/accuracy.py's metrics against the float model
(`report["verification"]["outputs"]`): with labels, top-1/top-k accuracy of both
and the drop with its 95 % interval; else cosine, RMSE, relative L2, top-1
agreement (classification) or MAE (regression). `render` prints them as the
CLI's table.
"""

from __future__ import annotations

from pathlib import Path

from .accuracy import accuracy_text
from .driver import CompileResult, compile
from .errors import OptionError
from .tables import format_table, shorten


def validate(model: str | Path, data: str | Path, labels: str | Path | None = None, target: str = "ir",
             output_dir: str | Path | None = None, **options) -> CompileResult:
    """Compile `model` for `target` and measure it on `data` (module docstring).
    `data` is required: accuracy measured on synthetic samples would mean nothing."""
    if data is None:
        raise OptionError("validate needs data: the samples to measure the compiled model on (a sample file, "
                          "arrays or an iterable of samples), not None")
    if "inputs" in options:
        raise OptionError("validate takes its samples as data, not inputs")
    return compile(model, target, output_dir, inputs=data, labels=labels, **options)


def render(report: dict) -> str:
    """One row per output: its kind and metrics; then the accuracy lines."""
    verification = report["verification"]
    rows, lines = [], []
    for name, m in verification["outputs"].items():
        agreement = f"{m['top1_agreement']:.2%}" if "top1_agreement" in m else ""
        rows.append([shorten(name, 32), m["kind"], f"{m['cosine']:.6f}", f"{m['rmse']:.4g}",
                     f"{m['l2_relative']:.4g}", f"{m['mae']:.4g}" if "mae" in m else "", agreement])
        if "top1" in m:
            lines.append(f"{name}: {accuracy_text(m)}; top-{m['top_k']} {m['topk']:.2%} (float {m['topk_float']:.2%})")
    table = format_table(["output", "kind", "cosine", "rmse", "l2 rel", "mae", "top-1 agree"], rows,
                         numeric={2, 3, 4, 5, 6})
    executed = "the target" if verification["executed"] else "the reference interpreter"
    head = (f"{report['target']}: {verification['samples']} sample(s) of {verification['source']} run through "
            f"{executed}, compared with the float model ({verification['float_truth']})")
    return "\n".join([head, table, *lines])
