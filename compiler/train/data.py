"""Training data: samples and labels as batched arrays.

Samples come as nnc's sample files do (.npz with one array per model input, or
.npy; docs in the README) or in memory as nnc.compile takes them
(sample_sources.as_arrays: {input name: array}, one array for a single-input
model, or an iterable of sample dicts). Each input's array holds N samples of the
input's shape, with or without its leading batch dimension of 1
([N, 1, 1, 8, 8] or [N, 1, 8, 8] for an input [1, 1, 8, 8]); the twin sees
[N, *shape[1:]]. Labels are N class indices (int, .npy or an array).
Invariant: every batch returned has the same N for every input, N ≥ 1.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from nnc.errors import ShapeError, UnsupportedError
from nnc.ir import Graph
from nnc.sample_sources import as_arrays
from nnc.verification import input_specs, prepare_samples, read_arrays

from .float_ops import sample_problem

Source = str | Path | dict | np.ndarray | Iterable


def load_batch(source: Source, graph: Graph, what: str = "samples") -> dict[str, np.ndarray]:
    """{input: array [N, *shape[1:]]} of `source` (see the module docstring)."""
    if isinstance(source, (str, Path)):
        arrays, where = read_arrays(source), str(source)
    else:
        arrays, where = as_arrays(source, what), what
    specs = input_specs(graph)
    if reason := sample_problem(graph):  # before the arrays, whose shapes would be checked
        raise UnsupportedError(reason)                   # against a batch axis that is not there
    samples, _ = prepare_samples(arrays, specs, where)
    return {name: np.stack([s[name] for s in samples]).reshape(len(samples), *specs[name].shape[1:])
            for name in specs}


def load_labels(source: str | Path | np.ndarray, count: int) -> np.ndarray:
    """int64 labels [count] from an .npy file or an array; ShapeError unless they
    are `count` non-negative integers."""
    if isinstance(source, (str, Path)):
        arrays = read_arrays(source, "labels")
        if len(arrays) != 1:
            raise ShapeError(f"{source}: expected one array of labels, found {len(arrays)}")
        source_array = next(iter(arrays.values()))
    else:
        source_array = source
    labels = np.asarray(source_array)
    where = str(source) if isinstance(source, (str, Path)) else "labels"
    if labels.dtype.kind not in "iu" or labels.ndim != 1 or labels.size != count or (labels.size and labels.min() < 0):
        raise ShapeError(f"{where}: labels must be {count} non-negative integers (one per sample), "
                         f"got {labels.dtype}{list(labels.shape)}")
    return labels.astype(np.int64)


def batch_count(batch: dict[str, np.ndarray]) -> int:
    return len(next(iter(batch.values())))
