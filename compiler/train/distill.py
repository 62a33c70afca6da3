"""Distillation: the float model teaches its compressed twin.

For a classification output (nnc.accuracy.output_kind), the loss is the
Kullback-Leibler divergence between the teacher's and the student's softmax at
temperature T, times T² (Hinton et al., "Distilling the Knowledge in a Neural
Network", 2015); with labels, (1 − w) · that + w · cross-entropy with the labels
(w = `label_weight`). An output that is already a Softmax's is read as
probabilities (its log is the logits up to a constant, which softmax ignores),
a LogSoftmax's (a CTC head's) as logits as it is, for the same reason.
A regression output takes the mean squared error to the teacher's output.
Feature losses (`feature_weight` > 0) add the mean squared error between the
student's and the teacher's output of every weighted layer whose shape both
share, normalized by the teacher's mean square (FitNets: Romero et al., ICLR 2015).
"""

from __future__ import annotations


import torch
import torch.nn.functional as F

from ..records import record
from nnc.accuracy import output_kind
from nnc.ir import Graph


@record
class Distillation:
    temperature: float = 4.0
    label_weight: float = 0.5
    feature_weight: float = 0.0


def kinds(graph: Graph, labelled: bool) -> dict[str, str]:
    """{output: "classification" | "regression"} of the float graph."""
    return {name: output_kind(graph, name, labelled) for name in graph.outputs}


def logits(graph: Graph, name: str, value: torch.Tensor) -> torch.Tensor:
    """The output as logits: log of a Softmax's probabilities, else as it is."""
    producer = graph.producer(name)
    if producer is not None and producer.op in ("Softmax", "QSoftmax"):
        return torch.log(torch.clamp(value, min=1e-12))
    return value


def output_loss(student: torch.Tensor, teacher: torch.Tensor, kind: str, config: Distillation,
                labels: torch.Tensor | None = None) -> torch.Tensor:
    """The loss of one output (see the module docstring); classes on the last axis."""
    if kind == "regression":
        return F.mse_loss(student, teacher)
    t = config.temperature
    s_log = F.log_softmax(student.reshape(-1, student.shape[-1]) / t, dim=-1)
    t_log = F.log_softmax(teacher.reshape(-1, teacher.shape[-1]) / t, dim=-1)
    kd = F.kl_div(s_log, t_log, log_target=True, reduction="batchmean") * t * t
    if labels is None or config.label_weight == 0:
        return kd
    ce = F.cross_entropy(student.reshape(len(labels), -1), labels)
    return (1 - config.label_weight) * kd + config.label_weight * ce


def feature_loss(student: dict[str, torch.Tensor], teacher: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean over the shared, same-shaped features of MSE / teacher's mean square."""
    terms = [F.mse_loss(student[n], teacher[n]) / torch.clamp(torch.mean(teacher[n] ** 2), min=1e-12)
             for n in student if n in teacher and student[n].shape == teacher[n].shape]
    return torch.stack(terms).mean() if terms else torch.zeros(())
