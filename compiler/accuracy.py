"""Accuracy of a compiled model against its float original on a data set.

Per model output, `output_metrics` gives what makes sense for its kind:
- always: cosine similarity, RMSE, relative L2 error ‖got − float‖ / ‖float‖
  and max |difference| over all samples (the figures ST Edge AI's validate
  prints);
- classification outputs: top-1 agreement with the float model; with labels,
  top-1 and top-k accuracy of both models and the drop in points with a 95 %
  confidence interval (paired: the per-sample differences of correctness,
  normal approximation, ±1.96 standard errors);
- regression outputs: MAE (and no top-1, which means nothing there).

`output_kind` decides classification vs regression: labels make it
classification; else an output ending in Softmax/LogSoftmax, or in a linear
head (Gemm, MatMul, or a Conv flattened to [N, classes]; looked at through
reshapes, quantization and a bias Add) whose last axis holds 2..MAX_CLASSES values while no model input has its
shape, is classification; anything else (an autoencoder's reconstruction, an
encoder's LayerNorm or activation features) is regression.
"""

from __future__ import annotations

import math

import numpy as np

from .errors import ShapeError
from .ir import Graph
from .verification import Sample, cosine, finite_pairs

MAX_CLASSES = 1000
Z95 = 1.959963984540054
SOFTMAX_OPS = ("Softmax", "LogSoftmax", "QSoftmax")
# The ops whose output can be a classifier's logits: a linear head (a Conv only
# as a flattened [N, classes] output: a feature map's last axis is its width).
LOGIT_OPS = ("Gemm", "MatMul", "Conv")
# Ops an output's values pass through unchanged in meaning (output_kind looks past them).
PASS_THROUGH = ("Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Identity", "QuantizeLinear",
                "DequantizeLinear", "Cast")


def output_kind(original: Graph, name: str, labelled: bool) -> str:
    """"classification" or "regression" for output `name` of the float graph."""
    if labelled:
        return "classification"
    head = _head(original, name)
    if head is not None and head.op in SOFTMAX_OPS:
        return "classification"
    shape = original.tensor(name).shape
    if 0 in shape or head is None or head.op not in LOGIT_OPS or head.op == "Conv" and len(shape) > 2:
        return "regression"  # an empty output has no classes to rank; features are not logits
    same_as_input = any(original.tensor(i).shape == shape for i in original.inputs)
    return "classification" if shape and 2 <= shape[-1] <= MAX_CLASSES and not same_as_input else "regression"


def _head(graph: Graph, name: str):
    """The node that computes output `name`'s values: its producer, looked
    through ops that only move or requantize them and through a constant bias
    Add (a Linear on [N, T, K] exports MatMul then Add)."""
    node = graph.producer(name)
    while node is not None and (node.op in PASS_THROUGH or node.op == "Add" and _bias_add(graph, node)):
        moved = [i for i in node.inputs[:1 if node.op != "Add" else 2] if i and not graph.tensor(i).is_constant]
        node = graph.producer(moved[0]) if moved else None
    return node


def _bias_add(graph: Graph, node) -> bool:
    return sum(graph.tensor(i).is_constant for i in node.inputs) == 1


def class_axes(original: Graph) -> dict[str, int]:
    """{output: its class axis} for the outputs of the float graph made by a
    Softmax or LogSoftmax over one axis other than the last (a Conv1d head's
    [1, classes, T]); every other output ranks classes on its last axis."""
    axes = {}
    for name in original.outputs:
        producer = original.producer(name)
        if (producer is not None and producer.op in ("Softmax", "LogSoftmax") and not producer.attrs.coerce_2d
                and producer.attrs.axis != len(original.tensor(name).shape) - 1):
            axes[name] = producer.attrs.axis
    return axes


def classes_last(value: np.ndarray, axis: int | None) -> np.ndarray:
    """`value` with its class axis (None: the last) moved last."""
    return value if axis is None else np.moveaxis(value, axis, -1)


def output_metrics(truth: list[Sample], got: list[Sample], name: str, kind: str,
                   labels: np.ndarray | None = None, top_k: int = 5, class_axis: int | None = None) -> dict:
    """Metrics of output `name` over all samples (module docstring); classes
    on `class_axis` of the output (None: its last axis)."""
    ref = np.stack([classes_last(np.asarray(s[name], np.float64), class_axis) for s in truth])
    out = np.stack([classes_last(np.asarray(s[name], np.float64), class_axis) for s in got])
    measured, computed, _ = finite_pairs(ref.ravel(), out.ravel())  # cosine is -1 where out alone is not finite
    diff = computed - measured
    norm = float(np.linalg.norm(measured))
    metrics = {"kind": kind, "samples": len(truth), "cosine": cosine(ref.ravel(), out.ravel()),
               "rmse": float(np.sqrt(np.mean(diff ** 2))) if diff.size else 0.0,
               "l2_relative": float(np.linalg.norm(diff) / norm) if norm else float(np.linalg.norm(diff) != 0),
               "max_abs_diff": float(np.max(np.abs(diff), initial=0.0))}
    if kind == "regression":
        metrics["mae"] = float(np.mean(np.abs(diff))) if diff.size else 0.0
        return metrics
    ref_scores, out_scores = _scores(ref), _scores(out)
    metrics["top1_agreement"] = float(np.mean(ref_scores.argmax(-1) == out_scores.argmax(-1)))
    if labels is not None:
        ids = _class_ids(labels, ref_scores, _label_rule(name, ref.shape, ref_scores.shape[0]))
        metrics.update(_labelled(ref_scores, out_scores, ids, top_k))
    return metrics


def accuracy_text(m: dict) -> str:
    """"top-1 A (float F), drop D ± W points (95%)" of an output's labelled metrics
    (no interval from a single sample)."""
    interval = (f" ± {m['top1_drop_ci95_points']:.2f} points (95%)" if m["top1_drop_ci95_points"] is not None
                else " points (one sample: no interval)")
    return f"top-1 {m['top1']:.2%} (float {m['top1_float']:.2%}), drop {m['top1_drop_points']:+.2f}{interval}"


def _scores(values: np.ndarray) -> np.ndarray:
    """[samples, classes]: one row of class scores per sample (positions of a
    sequence output count as separate rows only when labels match them)."""
    return values.reshape(values.shape[0], -1) if values.ndim <= 2 else values.reshape(-1, values.shape[-1])


def _label_rule(name: str, stacked: tuple[int, ...], rows: int) -> str:
    """What the labels of output `name` must be, for a label count that does not
    fit: one class id per sample, or, when the output scores several positions
    per sample (a class per frame of [1, T, classes]), one per position."""
    samples = stacked[0]
    per_sample = rows // samples if samples else 0
    if per_sample <= 1:
        return f"the data has {samples} samples"
    return (f"the data has {samples} samples, and output {name!r} ({list(stacked[1:])} per sample) scores "
            f"{per_sample} positions in each: the labels need one class id per position, an array of shape "
            f"[{samples}, {per_sample}]")


def _class_ids(labels: np.ndarray, scores: np.ndarray, rule: str) -> np.ndarray:
    """Labels as class ids, one per row of `scores`; ShapeError, with the `rule`
    of the label count, otherwise."""
    labels = given = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[0] == scores.shape[0] and labels.shape[1] > 1:  # one-hot rows
        if labels.shape[1] != scores.shape[1]:
            raise ShapeError(f"labels: one-hot rows of {labels.shape[1]} for an output of {scores.shape[1]} classes")
        if not np.all(np.sort(labels, axis=-1) == np.eye(1, labels.shape[1], labels.shape[1] - 1)):
            raise ShapeError("labels: one-hot rows must hold one 1 and zeros elsewhere")
        labels = labels.argmax(-1)
    labels = labels.reshape(-1)
    if labels.size != scores.shape[0]:
        shape = f" (shape {list(given.shape)})" if given.ndim > 1 else ""
        raise ShapeError(f"labels: {labels.size} given{shape}, {rule}")
    if labels.dtype.kind == "f" and not np.all(np.isfinite(labels) & (labels == np.rint(labels))):
        raise ShapeError("labels: class ids must be integers")
    ids = labels.astype(np.int64)
    if ids.size and (ids.min() < 0 or ids.max() >= scores.shape[1]):
        raise ShapeError(f"labels: class ids must lie in 0..{scores.shape[1] - 1}, got {ids.min()}..{ids.max()}")
    return ids


def _labelled(ref: np.ndarray, out: np.ndarray, ids: np.ndarray, top_k: int) -> dict:
    k = min(top_k, ref.shape[1])
    ref_hit, out_hit = ref.argmax(-1) == ids, out.argmax(-1) == ids
    drop = ref_hit.astype(np.float64) - out_hit.astype(np.float64)
    half_width = 100.0 * Z95 * float(np.std(drop, ddof=1)) / math.sqrt(drop.size) if drop.size > 1 else None
    return {"top1_float": float(ref_hit.mean()), "top1": float(out_hit.mean()),
            "top1_drop_points": 100.0 * float(drop.mean()), "top1_drop_ci95_points": half_width,
            "top_k": k, "topk_float": _top_k(ref, ids, k), "topk": _top_k(out, ids, k)}


def _top_k(scores: np.ndarray, ids: np.ndarray, k: int) -> float:
    best = np.argsort(-scores, axis=-1, kind="stable")[:, :k]
    return float(np.mean(np.any(best == ids[:, None], axis=-1)))
