"""`nnc finetune`: compress a float model during a short training run and write
a model that `nnc compile` takes as it is.

The steps: build the twin (nnc.train.prepare; calibrated on `calib`, by
default the training data), score the one-shot model (masks at their final
sparsity, no training) on the holdout in exact mode, fine-tune (nnc.train.loop),
export. The output folder (the rules of docs/output-folders.md) receives
`<stem>.nnir`, the fine-tuned model in text IR (QDQ form: its integers and
scales are kept by `nnc compile`), the same model as QDQ ONNX `<stem>.onnx`
(the onnx target's writer; onnxruntime and Netron read it, `nnc compile` reads
it back to the same integers), and `finetune.json`: the options, each
epoch's record, the epoch kept (0: the one-shot model, when no epoch beat it),
and the one-shot and fine-tuned holdout scores.
PyTorch is imported only here, so the rest of nnc works without it; without it
this raises MissingExtraError.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Callable

from . import output_folder
from .frontend.model_file import load_model_file
from .records import record


@record(frozen=False)
class FinetuneResult:
    report: dict
    artifacts: list[str]
    graph: object  # nnc.ir.Graph of the fine-tuned model (QDQ form)


def finetune(model: str | Path, data, labels=None, output_dir: str | Path | None = None, *, calib=None,
             compression: dict | None = None, fit: dict | None = None, distillation: dict | None = None,
             input_shapes: dict | None = None, say: Callable[[str], None] | None = None,
             on_step=None, on_epoch=None) -> FinetuneResult:
    """Fine-tune `model` on `data` (path, array or dict of arrays) with `labels`
    (optional); see the module docstring. `compression`, `fit` and
    `distillation` are keyword arguments of nnc.train.Compression,
    nnc.train.loop.FitOptions and nnc.train.distill.Distillation."""
    from .train import Compression, export, prepare
    from .train.data import batch_count, load_batch, load_labels
    from .train.distill import Distillation
    from .train.loop import FitOptions, fit as fit_twin

    say = say or (lambda message: None)
    options = FitOptions(**(fit or {}), distillation=Distillation(**(distillation or {})))
    settings = Compression(**(compression or {}))
    if output_dir is not None:
        output_folder.check(Path(output_dir), Path(model))
    start = time.perf_counter()
    graph = load_model_file(model, input_shapes)
    batch = load_batch(data, graph, "data")  # every input checked before any progress line
    targets = None if labels is None else load_labels(labels, batch_count(batch))
    calib_batch = batch if calib is None else load_batch(calib, graph, "calib")
    say(f"preparing the twin of {model}")
    twin = prepare(graph, settings, calib=calib_batch)
    say(f"fine-tuning for up to {options.epochs} epochs")
    result = fit_twin(twin, batch, targets, options, on_step, on_epoch)
    one_shot = {key: getattr(result.start, key) for key in ("score", "agreement", "accuracy")}
    graph = export(twin)
    report = {"model": str(model), "samples": batch_count(batch), "labelled": targets is not None,
              "compression": dataclasses.asdict(settings), "options": dataclasses.asdict(options),
              "one_shot": one_shot, "kept_epoch": dataclasses.asdict(result.best),
              "stopped_early": result.stopped_early, "epochs": [dataclasses.asdict(e) for e in result.history],
              "seconds": round(time.perf_counter() - start, 3)}
    stem = Path(model).name.rsplit(".", 1)[0]
    onnx_model = _as_onnx(graph, report)
    with output_folder.staged(output_dir, Path(model)) as staging:
        artifacts = []
        if staging is not None:
            from .textir import print_ir

            (staging / f"{stem}.nnir").write_text(print_ir(graph))
            artifacts = [f"{stem}.nnir"]
            if onnx_model is not None:
                (staging / f"{stem}.onnx").write_bytes(onnx_model.SerializeToString())
                artifacts.append(f"{stem}.onnx")
            (staging / "finetune.json").write_text(json.dumps(report, indent=2) + "\n")
            artifacts.append("finetune.json")
    return FinetuneResult(report, artifacts, graph)


def _as_onnx(graph, report: dict):
    """The fine-tuned graph as QDQ ONNX (the onnx target's writer), or None with
    the reason in report["onnx"] when an op has no ONNX form."""
    from .errors import UnsupportedError
    from nnc.backends.onnx_qdq.writer import to_onnx

    try:
        model = to_onnx(graph)
    except UnsupportedError as exc:
        report["onnx"] = f"not written: {str(exc).split(' (written ops:')[0]}"  # the reason, not the op list
        return None
    report["onnx"] = "written"
    return model
