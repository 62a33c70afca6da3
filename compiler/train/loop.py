"""The fine-tuning loop `nnc finetune` runs (and `nnc.train.fit` offers).

- Data: N samples (and optionally N labels); a fixed share (`holdout`, chosen
  by the seed) is set aside to select the epoch to keep; the rest trains.
- Each step: the twin in mode "train" (in the last `exact_epochs` epochs,
  "exact": the loss sees the integer outputs the targets compute, gradients
  flow straight through — training that emulates the accelerator) on a shuffled batch, the float teacher on
  the same batch, the distillation loss (distill.py) plus `grid_weight` times
  the weights' distance to their grid; Adam with a cosine learning-rate decay.
  Masks follow the sparsity schedule at every step (sparsity.py).
- After each epoch: the holdout through the twin's "exact" mode — the integers
  the compiled targets run — scored by accuracy (with labels) or else by top-1
  agreement with the teacher (classification) or the negative mean squared
  error (regression). Only epochs whose masks reached their final sparsity
  count; the best of them is kept, and training stops after `patience` of them
  without improvement. The one-shot start (epoch 0: no training, masks at
  their final sparsity) is scored the same way first and kept instead when
  the best epoch at final sparsity scores below it (a tie keeps the epoch), so
  fine-tuning never returns a model that scores worse on the holdout than the
  one-shot compression it started from; patience counts from the best epoch,
  as without it.
- Deterministic: the seed fixes the split, the order and torch's generator;
  torch runs on `threads` threads (1 by default: results then do not depend on
  the machine's core count).
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import field
from typing import Callable

import numpy as np
import torch

from ..records import record
from nnc.errors import OptionError, TrainingError

from .distill import Distillation, feature_loss, kinds, logits, output_loss
from .sparsity import RAMP
from .twin import Twin


MAX_SEED = 2**32 - 2  # numpy's RandomState takes up to 2^32 - 1, and the order uses seed + 1


@record
class FitOptions:
    epochs: int = 15
    lr: float = 3e-3
    batch_size: int = 64
    seed: int = 0
    patience: int = 3
    holdout: float = 0.1
    grid_weight: float = 0.0
    exact_epochs: int = 0
    threads: int = 1
    distillation: Distillation = field(default_factory=Distillation)

    def __post_init__(self):
        checks = [("epochs", 1 <= self.epochs <= 10_000, "1..10000"), ("lr", 0 < self.lr <= 1.0, "(0, 1]"),
                  ("batch-size", 1 <= self.batch_size <= 65_536, "1..65536"), ("patience", self.patience >= 1, ">= 1"),
                  ("holdout", 0.0 <= self.holdout < 1.0, "[0, 1)"), ("grid-weight", self.grid_weight >= 0, ">= 0"),
                  ("exact-epochs", 0 <= self.exact_epochs <= self.epochs, "0..epochs"),
                  ("threads", 1 <= self.threads <= 256, "1..256"),
                  ("seed", 0 <= self.seed <= MAX_SEED, f"0..{MAX_SEED}"),
                  ("temperature", 0 < self.distillation.temperature <= 100, "(0, 100]"),
                  ("label-weight", 0 <= self.distillation.label_weight <= 1, "[0, 1]"),
                  ("feature-weight", self.distillation.feature_weight >= 0, ">= 0")]
        for flag, ok, allowed in checks:
            value = _value(self, flag)
            if not ok or (isinstance(value, float) and not math.isfinite(value)):
                name = flag.replace("-", "_")
                raise OptionError(f"{name} must be {allowed}, got {value}", cli=f"--{flag} must be {allowed}, got {value}")


def _value(options: FitOptions, flag: str):
    name = flag.replace("-", "_")
    return getattr(options, name) if hasattr(options, name) else getattr(options.distillation, name)


@record(frozen=False)
class Epoch:
    """One epoch's record: training loss (None for epoch 0, the one-shot start),
    and on the holdout in exact mode the score (see the module docstring),
    top-1 agreement with the teacher and accuracy (None without labels);
    `final` when its masks had their final sparsity."""

    epoch: int
    loss: float | None
    score: float
    agreement: float | None
    accuracy: float | None
    final: bool
    seconds: float


@record(frozen=False)
class FitResult:
    """The trained epochs, the one kept (`start`, epoch 0, when none beat it)
    and the one-shot start's record."""

    history: list[Epoch]
    best: Epoch
    stopped_early: bool
    start: Epoch


def fit(twin: Twin, data: dict[str, np.ndarray], labels: np.ndarray | None = None,
        options: FitOptions = FitOptions(), on_step: Callable[[int, int, float], None] | None = None,
        on_epoch: Callable[[Epoch], None] | None = None) -> FitResult:
    """Fine-tune `twin` on `data` (see the module docstring); leaves it at the best
    epoch's state (or the one-shot start's), in mode "exact"."""
    threads = torch.get_num_threads()
    torch.set_num_threads(options.threads)
    try:
        return _fit(twin, data, labels, options, on_step or (lambda *a: None), on_epoch or (lambda e: None))
    finally:
        torch.set_num_threads(threads)


def _fit(twin, data, labels, options, on_step, on_epoch) -> FitResult:
    torch.manual_seed(options.seed)
    train, holdout = split(len(next(iter(data.values()))), options)
    tensors, targets = _tensors(data, labels)
    output_kinds = kinds(twin.teacher.graph, labels is not None)
    optimizer = torch.optim.Adam(twin.parameters(), lr=options.lr)
    steps_per_epoch = math.ceil(len(train) / options.batch_size)
    total = options.epochs * steps_per_epoch
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
    held = _holdout(twin, tensors, targets, holdout, output_kinds)
    one_shot = _one_shot(twin, held)
    one_shot_state = copy.deepcopy(twin.state_dict())
    history, best, best_state, waited = [], None, None, 0
    twin.set_progress(0.0)
    shuffle = np.random.RandomState(options.seed + 1)
    for epoch in range(options.epochs):
        start, losses = time.perf_counter(), []
        twin.train().set_mode("exact" if epoch >= options.epochs - options.exact_epochs else "train")
        epoch_order = train[shuffle.permutation(len(train))]
        for step, begin in enumerate(range(0, len(train), options.batch_size)):
            twin.set_progress((epoch * steps_per_epoch + step) / total)
            index = torch.from_numpy(epoch_order[begin:begin + options.batch_size])
            loss = _step(twin, {n: t[index] for n, t in tensors.items()},
                         None if targets is None else targets[index], output_kinds, options)
            optimizer.zero_grad()
            loss.backward()
            _check_finite(loss, twin, epoch * steps_per_epoch + step + 1, total, options)
            optimizer.step()
            scheduler.step()
            losses.append(float(loss.detach()))
            on_step(epoch * steps_per_epoch + step + 1, total, losses[-1])
        progress = (epoch + 1) / options.epochs
        twin.set_progress(progress)
        record = _evaluate(twin, held, epoch, float(np.mean(losses)), progress >= RAMP or epoch == options.epochs - 1,
                           time.perf_counter() - start)
        history.append(record)
        on_epoch(record)
        if record.final and (best is None or record.score > best.score):
            best, best_state, waited = record, copy.deepcopy(twin.state_dict()), 0
        elif record.final:
            waited += 1
            if waited >= options.patience:
                break
    if best is None or best.score < one_shot.score:
        best, best_state = one_shot, one_shot_state
    twin.load_state_dict(best_state)  # its masks included
    twin.eval().set_mode("exact")
    return FitResult(history, best, stopped_early=len(history) < options.epochs, start=one_shot)


def _check_finite(loss: torch.Tensor, twin: Twin, step: int, total: int, options: FitOptions) -> None:
    """TrainingError when the loss or a gradient of this step is NaN or infinite."""
    bad = "loss" if not torch.isfinite(loss) else next(
        (f"gradient of {name}" for name, p in twin.named_parameters()
         if p.grad is not None and not torch.isfinite(p.grad).all()), None)
    if bad and step == 1:
        raise TrainingError(f"fine-tuning cannot start: the {bad} is NaN or infinite on the first batch, before "
                            f"any update (does the model compute NaN or infinity on this data?)")
    if bad:
        said = (f"fine-tuning diverged: the {bad} became NaN or infinite at step {step} of {total}; "
                "lower the learning rate")
        raise TrainingError(f"{said} (lr, now {options.lr:g})", cli=f"{said} (--lr, now {options.lr:g})")


def split(count: int, options: FitOptions) -> tuple[np.ndarray, np.ndarray]:
    """(training, holdout) sample indices: round(holdout · count) samples (at least
    one, fewer than all) chosen by the seed; without a holdout both are all samples."""
    order = np.random.RandomState(options.seed).permutation(count)
    held = min(max(int(round(options.holdout * count)), 1), count - 1) if options.holdout and count > 1 else 0
    return (order[held:], order[:held]) if held else (order, order)


def _one_shot(twin: Twin, held: _Holdout) -> Epoch:
    """Epoch 0: the untrained twin scored on the holdout with its masks at their
    final sparsity (left there)."""
    twin.set_progress(1.0)
    return _evaluate(twin, held, -1, None, True, 0.0)


def _tensors(data: dict[str, np.ndarray], labels: np.ndarray | None):
    tensors = {name: torch.from_numpy(np.ascontiguousarray(x)).float() for name, x in data.items()}
    return tensors, None if labels is None else torch.from_numpy(labels)


def _step(twin: Twin, batch: dict[str, torch.Tensor], labels: torch.Tensor | None, output_kinds: dict[str, str],
          options: FitOptions) -> torch.Tensor:
    """The loss of one training batch (mode "train")."""
    config = options.distillation
    features = twin.layer_outputs() if config.feature_weight else []
    with torch.no_grad():
        teacher = twin.teacher.run(batch, features)
    student = twin.run(batch, features)
    if twin.mode == "exact":  # the integers' outputs, with the train path's gradients
        exact = twin(batch)
        student.update(exact if isinstance(exact, dict) else {twin.graph.outputs[0]: exact})
    loss = sum(output_loss(logits(twin.graph, name, student[name]), logits(twin.teacher.graph, name, teacher[name]),
                           kind, config, labels if name == twin.graph.outputs[0] else None)
               for name, kind in output_kinds.items())
    if config.feature_weight:
        loss = loss + config.feature_weight * feature_loss({n: student[n] for n in features if n in student},
                                                           {n: teacher[n] for n in features if n in teacher})
    if options.grid_weight:
        loss = loss + options.grid_weight * twin.grid_penalty()
    return loss


@record(frozen=False)
class _Holdout:
    """What every epoch is scored on: the holdout's inputs, the frozen teacher's
    first output on them, their labels (or None) and that output's kind."""

    batch: dict[str, torch.Tensor]
    truth: torch.Tensor
    labels: torch.Tensor | None
    kind: str


def _holdout(twin: Twin, tensors: dict[str, torch.Tensor], labels: torch.Tensor | None, holdout: np.ndarray,
             output_kinds: dict[str, str]) -> _Holdout:
    index = torch.from_numpy(holdout)
    batch = {name: t[index] for name, t in tensors.items()}
    name = twin.graph.outputs[0]
    with torch.no_grad():
        truth = _first(twin.teacher(batch), name)
    return _Holdout(batch, truth, None if labels is None else labels[index], output_kinds[name])


def _evaluate(twin: Twin, held: _Holdout, epoch: int, loss: float | None, final: bool, seconds: float) -> Epoch:
    """The epoch's record, measured on the holdout in mode "exact"."""
    twin.eval().set_mode("exact")
    with torch.no_grad():
        got = _first(twin(held.batch), twin.graph.outputs[0])
    agreement = accuracy = None
    if held.kind == "classification":
        count = len(held.truth)
        top = got.reshape(count, -1).argmax(dim=1)
        agreement = float((top == held.truth.reshape(count, -1).argmax(dim=1)).float().mean())
        if held.labels is not None:
            accuracy = float((top == held.labels).float().mean())
        score = accuracy if accuracy is not None else agreement
    else:
        score = -float(torch.mean((got.double() - held.truth.double()) ** 2))
    return Epoch(epoch + 1, loss, score, agreement, accuracy, final, seconds)


def _first(outputs, name: str) -> torch.Tensor:
    return outputs[name] if isinstance(outputs, dict) else outputs
