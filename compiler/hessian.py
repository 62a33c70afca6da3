"""Second-order statistics of the weighted layers' inputs on calibration samples.

For a layer with input rows X [G, n, K] (compiler/layer_rows.py), the squared
output error of a weight change ΔW_g is ΔW_g H_g ΔW_gᵀ with H_g = 2 X_gᵀ X_g / n:
the Hessian that OBS-family compression (compiler/obs.py) uses. `collect`
accumulates, per layer, Σ [x, 1]ᵀ[x, 1] over every row of every sample: the
input's Gram matrix augmented with a constant 1 (its last row and column hold
Σ x and n), so that a layer's bias can be treated as a weight on an input that
is always 1 (`Statistics.hessian(with_bias=True)`).

Memory stays bounded: one sample's rows are turned into sums at once and
dropped (rows are never kept across samples), and the reference interpreter
runs over the samples once per batch of layers whose sums fit in
`limits.MAX_HESSIAN_BYTES` (one run for every MLPerf Tiny model). A layer whose
own sums pass that, or whose fan-in passes `limits.MAX_OBS_FAN_IN`, is not
collected; `too_large` names it and callers keep its magnitude method.
Everything is float64, summed in sample order with BLAS on one thread
(`one_blas_thread`, for the interpreter's runs too: its small products are
faster so on a busy 2-core machine, 2.5× for ResNet-8): deterministic.
"""

from __future__ import annotations


import numpy as np

from .blas_threads import one_blas_thread
from .interpreter import run
from .ir import Graph, Node
from .layer_rows import fan_in, groups, input_rows
from .limits import MAX_HESSIAN_BYTES, MAX_OBS_FAN_IN
from .records import record

Samples = list[dict[str, np.ndarray]]


@record(frozen=False)
class Statistics:
    """Σ [x, 1]ᵀ[x, 1] per group (`sums` [G, K+1, K+1]) over `rows` input rows."""

    sums: np.ndarray
    rows: int = 0

    def add(self, x: np.ndarray) -> None:
        """Accumulate rows X [G, n, K]."""
        augmented = np.concatenate([x, np.ones(x.shape[:2] + (1,))], axis=2)
        if len(augmented) == 1:  # a 2-D product runs in BLAS, a batched one may not
            self.sums[0] += augmented[0].T @ augmented[0]
        else:
            self.sums += np.matmul(augmented.transpose(0, 2, 1), augmented)
        self.rows += x.shape[1]

    def hessian(self, with_bias: bool) -> np.ndarray:
        """H = 2 XᵀX / n per group, [G, K, K]; with the constant input appended
        as column K when `with_bias` ([G, K+1, K+1])."""
        h = 2.0 * self.sums / max(1, self.rows)
        return h if with_bias else h[:, :-1, :-1]

    def mean(self) -> np.ndarray:
        """The mean input row per group, [G, K]."""
        return self.sums[:, -1, :-1] / max(1, self.rows)

    def merged(self, other: "Statistics") -> "Statistics":
        return Statistics(self.sums + other.sums, self.rows + other.rows)


def footprint(graph: Graph, node: Node) -> int:
    """Bytes of `node`'s sums."""
    return 8 * groups(node) * (fan_in(graph, node) + 1) ** 2


def too_large(graph: Graph, node: Node) -> bool:
    """True when `node`'s statistics pass MAX_OBS_FAN_IN or MAX_HESSIAN_BYTES."""
    return fan_in(graph, node) > MAX_OBS_FAN_IN or footprint(graph, node) > MAX_HESSIAN_BYTES


def collect(graph: Graph, samples: Samples, layers: list[Node]) -> dict[str, Statistics]:
    """{layer name: Statistics} of every layer in `layers` that is not `too_large`,
    over all samples (graph inputs by name, as the interpreter takes them)."""
    wanted = [node for node in layers if not too_large(graph, node)]
    result: dict[str, Statistics] = {}
    for batch in _batches(graph, wanted):
        result.update(_collect_batch(graph, samples, batch))
    return result


def _batches(graph: Graph, layers: list[Node]) -> list[list[Node]]:
    """Consecutive runs of layers whose sums fit MAX_HESSIAN_BYTES together."""
    batches: list[list[Node]] = []
    used = MAX_HESSIAN_BYTES + 1
    for node in layers:
        size = footprint(graph, node)
        if used + size > MAX_HESSIAN_BYTES:
            batches.append([])
            used = 0
        batches[-1].append(node)
        used += size
    return batches


def _collect_batch(graph: Graph, samples: Samples, layers: list[Node]) -> dict[str, Statistics]:
    stats = {node.name: Statistics(np.zeros((groups(node), fan_in(graph, node) + 1, fan_in(graph, node) + 1)))
             for node in layers}
    readers: dict[str, list[Node]] = {}
    for node in layers:
        readers.setdefault(node.inputs[0], []).append(node)

    def observe(name: str, value: np.ndarray) -> None:
        for node in readers.get(name, ()):
            stats[node.name].add(input_rows(node, value))

    with one_blas_thread():
        for sample in samples:
            run(graph, sample, observe=observe)
    return stats
