"""Codebook (weight-sharing) quantization: a weight tensor snapped to k int8 centroids.

Following the weight-sharing step of Deep Compression (Han et al., 2016): the
weights of one tensor are clustered with k-means and every weight is replaced by
its cluster's centroid, so the tensor stores k centroids plus a log2(k)-bit index
per weight. nnc keeps the per-output-channel scales of its int8 quantization:

1. q = w / s_w[c] in [−127, 127] (real numbers; s_w[c] = max|w[c]| / 127);
2. 1-D k-means (Lloyd's algorithm) over all nonzero q of the tensor, centroids
   seeded at evenly spaced quantiles of the sorted values (no randomness, so the
   result is deterministic), `ITERATIONS` rounds or until nothing moves;
3. centroids rounded to integers in [−127, 127] (duplicates merge); each nonzero
   weight takes its nearest integer centroid (a tie takes the smaller one).

Exact zeros (pruned weights) stay zero and do not take a centroid: the tensor
holds at most k distinct nonzero values, and 0 when it was pruned, which the
packing formats (nnc.packing) store as a table plus indices. Invariant: the
result is int8 with values in [−127, 127], zero exactly where w is zero.
"""

from __future__ import annotations

import numpy as np

ITERATIONS = 30
LIMIT = 127


def cluster(values: np.ndarray, k: int) -> np.ndarray:
    """Sorted centroids (float64, at most k) of 1-D k-means over `values` (any order)."""
    data = np.sort(np.asarray(values, np.float64).ravel())
    if data.size == 0:
        return np.zeros(0)
    centroids = np.unique(data[np.round(np.linspace(0, data.size - 1, min(k, data.size))).astype(np.int64)])
    cumulative = np.concatenate([[0.0], np.cumsum(data)])
    for _ in range(ITERATIONS):
        edges = np.searchsorted(data, (centroids[:-1] + centroids[1:]) / 2)
        starts = np.concatenate([[0], edges])
        stops = np.concatenate([edges, [data.size]])
        filled = stops > starts
        moved = (cumulative[stops[filled]] - cumulative[starts[filled]]) / (stops[filled] - starts[filled])
        if moved.size == centroids.size and np.array_equal(moved, centroids):
            break
        centroids = moved
    return centroids


def snap(q: np.ndarray, k: int) -> np.ndarray:
    """int8 tensor of `q` (real values in [−127, 127]) holding at most k distinct
    values, zero included when q has zeros (see the module docstring)."""
    q = np.asarray(q, np.float64)
    nonzero = q != 0
    out = np.zeros(q.shape, np.int8)
    if not nonzero.any():
        return out
    values = q[nonzero]
    centroids = k - 1 if (~nonzero).any() and k > 1 else k
    table = np.unique(np.clip(np.rint(cluster(values, centroids)), -LIMIT, LIMIT))
    above = np.clip(np.searchsorted(table, values), 0, table.size - 1)
    below = np.maximum(above - 1, 0)
    take_below = np.abs(values - table[below]) <= np.abs(values - table[above])
    out[nonzero] = np.where(take_below, table[below], table[above]).astype(np.int8)
    return out
