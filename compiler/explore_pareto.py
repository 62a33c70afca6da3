"""The Pareto front of a set of points, every objective minimized.

A row dominates another when it is no worse in every objective and better in
at least one. The front is the rows no other row dominates; rows with equal
values are both on it (neither dominates the other). The answer depends only on
the values, not on the order of the rows beyond the order of the indices
returned (ascending).
"""

from __future__ import annotations

import numpy as np


def pareto_front(rows) -> list[int]:
    """Indices (ascending) of the non-dominated rows of `rows` (n rows × k
    objectives, finite numbers, all minimized)."""
    values = np.asarray(rows, dtype=np.float64)
    if values.size == 0:
        return []
    if values.ndim != 2 or not np.all(np.isfinite(values)):
        raise ValueError("pareto_front needs a 2-D array of finite objective values")
    front = []
    for i, row in enumerate(values):
        no_worse = np.all(values <= row, axis=1)
        better = np.any(values < row, axis=1)
        if not np.any(no_worse & better):
            front.append(i)
    return front

