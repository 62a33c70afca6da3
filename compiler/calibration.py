"""Calibration: the real range of each activation, observed on sample inputs.

`calibrate` runs the reference interpreter on every sample and feeds the values
of the requested tensors to one observer each. An observer turns everything it
saw into a range [lo, hi] with lo <= 0 <= hi (zero must stay exactly
representable, docs/numerics.md §1):

- `minmax`: the smallest and largest value seen. Never clips; one outlier
  stretches the scale for all other values.
- `percentile`: the (100 − p)-th and p-th percentiles of the values (p = 99.99
  by default): ignores the rarest extremes.
- `mse`: the range [α·min, β·max], α and β on a grid in (0, 1] (two rounds of
  coordinate descent: β, then α), whose int8 asymmetric quantization of the
  observed values has the smallest mean squared error (evaluated on a 2048-bin
  histogram of the values).

Percentile and MSE keep the observed values; above `KEEP_PER_UPDATE` values per
update they keep an evenly strided subset (deterministic, so compiles stay
reproducible).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Callable

import numpy as np

from .blas_threads import one_blas_thread
from .errors import OptionError
from .interpreter import run
from .ir import Graph

KEEP_PER_UPDATE = 1 << 18
HISTOGRAM_BINS = 2048
MSE_GRID = np.linspace(1.0, 0.05, 96)  # largest first: ties keep the wider range


class Observer:
    """Collects a tensor's values (`update`) and proposes its range (`range`)."""

    def update(self, values: np.ndarray) -> None:
        raise NotImplementedError

    def range(self) -> tuple[float, float]:
        raise NotImplementedError


class MinMaxObserver(Observer):
    def __init__(self):
        self.lo, self.hi = 0.0, 0.0

    def update(self, values):
        if values.size:
            self.lo = min(self.lo, float(np.min(values)))
            self.hi = max(self.hi, float(np.max(values)))

    def range(self):
        return self.lo, self.hi


class _KeepingObserver(Observer):
    """Keeps (a strided subset of) every value it sees."""

    def __init__(self):
        self.kept: list[np.ndarray] = []

    def update(self, values):
        flat = np.asarray(values, np.float64).ravel()
        stride = max(1, flat.size // KEEP_PER_UPDATE)
        self.kept.append(flat[::stride])

    def values(self) -> np.ndarray:
        return np.concatenate(self.kept) if self.kept else np.zeros(1)


class PercentileObserver(_KeepingObserver):
    def __init__(self, percentile: float = 99.99):
        super().__init__()
        self.percentile = percentile

    def range(self):
        v = self.values()
        lo, hi = np.percentile(v, [100.0 - self.percentile, self.percentile])
        return min(0.0, float(lo)), max(0.0, float(hi))


class MseObserver(_KeepingObserver):
    def range(self):
        v = self.values()
        lo, hi = min(0.0, float(v.min())), max(0.0, float(v.max()))
        if hi - lo <= 0:
            return lo, hi
        counts, edges = np.histogram(v, bins=HISTOGRAM_BINS, range=(lo, hi))
        centres = (edges[:-1] + edges[1:]) / 2
        best = [lo, hi]
        for _ in range(2):  # coordinate descent: the upper end, then the lower end
            for side in (1, 0):
                best[side] = _best_end(centres, counts, best, side, (lo, hi)[side])
        return best[0], best[1]


def _best_end(centres, counts, current: list[float], side: int, end: float) -> float:
    """α · end, for the α of MSE_GRID whose range (`current` with side `side`
    replaced by α · end) quantizes the histogram with the smallest error."""
    if end == 0:
        return 0.0
    errors = []
    for alpha in MSE_GRID:
        candidate = list(current)
        candidate[side] = alpha * end
        errors.append(quantization_mse(centres, counts, *candidate))
    return float(MSE_GRID[int(np.argmin(errors))] * end)


def quantization_mse(values: np.ndarray, counts: np.ndarray, lo: float, hi: float) -> float:
    """Mean squared error of quantizing `values` (weighted by `counts`) to int8
    with the asymmetric parameters of range [lo, hi] (lo <= 0 <= hi, lo < hi)."""
    scale = (hi - lo) / 255.0
    zero_point = np.clip(np.round(-128 - lo / scale), -128, 127)
    q = np.clip(np.rint(values / scale) + zero_point, -128, 127)
    return float(np.sum(counts * (scale * (q - zero_point) - values) ** 2) / max(1, np.sum(counts)))


OBSERVERS: dict[str, Callable[..., Observer]] = {
    "minmax": lambda percentile: MinMaxObserver(),
    "percentile": lambda percentile: PercentileObserver(percentile),
    "mse": lambda percentile: MseObserver(),
}


def make_observer(kind: str, percentile: float = 99.99) -> Observer:
    """A fresh observer of `kind` (one of OBSERVERS); OptionError otherwise."""
    if kind not in OBSERVERS:
        raise OptionError(f"unknown observer {kind!r}; observers: {', '.join(OBSERVERS)}")
    return OBSERVERS[kind](percentile)


def calibrate(graph: Graph, samples: list[dict[str, np.ndarray]], tensors: list[str],
              kind: str = "minmax", percentile: float = 99.99) -> dict[str, tuple[float, float]]:
    """Range of each tensor in `tensors` over the samples, as observer `kind` sees it."""
    (ranges,) = _observe(graph, samples, _Ranges(tensors, kind, percentile))
    return ranges


def ranges_and_means(graph: Graph, samples: list[dict[str, np.ndarray]], tensors: list[str], kind: str,
                     percentile: float, mean_axes: dict[str, int]) -> tuple[dict, dict[str, np.ndarray]]:
    """`calibrate`, and the per-channel mean (float64) of each tensor in
    `mean_axes` ({name: channel axis}) over every other axis, in one run of the
    interpreter per sample."""
    ranges, means = _observe(graph, samples, _Ranges(tensors, kind, percentile), _Means(mean_axes))
    return ranges, means


class _Ranges:
    """Feeds the values of `tensors` to one observer each; `result`: their ranges."""

    def __init__(self, tensors: list[str], kind: str, percentile: float):
        self.observers = {name: make_observer(kind, percentile) for name in tensors}

    def __call__(self, name: str, value: np.ndarray) -> None:
        if name in self.observers:
            self.observers[name].update(value)

    def result(self) -> dict[str, tuple[float, float]]:
        return {name: obs.range() for name, obs in self.observers.items()}


class _Means:
    """Per-channel sums (float64) of the tensors in `axes` ({name: channel axis});
    `result`: their means over every other axis."""

    def __init__(self, axes: dict[str, int]):
        self.axes, self.sums, self.counts = axes, {}, {}

    def __call__(self, name: str, value: np.ndarray) -> None:
        if name in self.axes:
            moved = np.moveaxis(np.asarray(value, np.float64), self.axes[name], -1)
            flat = moved.reshape(-1, moved.shape[-1])
            self.sums[name] = self.sums.get(name, 0.0) + flat.sum(axis=0)
            self.counts[name] = self.counts.get(name, 0) + flat.shape[0]

    def result(self) -> dict[str, np.ndarray]:
        return {name: self.sums[name] / self.counts[name] for name in self.sums}


def _observe(graph: Graph, samples, *observers) -> list:
    """Run the interpreter on every sample, feeding each observer every value; their results."""
    def observe(name: str, value: np.ndarray) -> None:
        for observer in observers:
            observer(name, value)

    with one_blas_thread():  # the interpreter's small products: faster so on a busy machine, alike everywhere
        for sample in samples:
            run(graph, sample, observe=observe)
    return [observer.result() for observer in observers]


def check_ranges_destination(path: str | Path) -> None:
    """OptionError unless `write_ranges` may write `path`: absent, or a ranges
    file (nnc replaces only its own kind of file, never a folder, a symbolic
    link or a user's other file)."""
    path = Path(path)
    if path.is_symlink() or path.is_dir():
        raise OptionError(f"ranges file {path} is a {'symbolic link' if path.is_symlink() else 'folder'}; "
                          "give the path of a file")
    if path.exists():
        try:
            read_ranges(path)
        except OptionError:
            raise OptionError(f"ranges file {path} exists and is not a ranges file nnc wrote; nnc will not "
                              "overwrite it, so move it away or give another path") from None


def write_ranges(path: str | Path, ranges: dict[str, tuple[float, float]]) -> None:
    """Save ranges as JSON {"ranges": {tensor: [lo, hi]}}; floats round-trip
    exactly. The file is replaced whole (written beside it, then renamed)."""
    path = Path(path)
    text = json.dumps({"ranges": {name: [float(lo), float(hi)] for name, (lo, hi) in ranges.items()}}, indent=1)
    partial = path.with_name(f".{path.name}.partial")
    try:
        partial.write_text(text + "\n", encoding="utf-8")
        os.replace(partial, path)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise OptionError(f"cannot write ranges file {path}: {exc.strerror or exc}") from None


def read_ranges(path: str | Path) -> dict[str, tuple[float, float]]:
    """Ranges saved by `write_ranges`: finite, each containing 0; OptionError
    naming the file otherwise."""
    try:
        table = json.loads(Path(path).read_text(encoding="utf-8"))["ranges"]
        ranges = {str(name): (float(lo), float(hi)) for name, (lo, hi) in table.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        raise OptionError(f"ranges file {path}: not a ranges file written by nnc ({type(exc).__name__})") from None
    bad = [name for name, (lo, hi) in ranges.items() if not (math.isfinite(lo) and math.isfinite(hi))]
    if bad:
        raise OptionError(f"ranges file {path}: range of {bad[0]!r} is not finite: {list(ranges[bad[0]])}")
    bad = [name for name, (lo, hi) in ranges.items() if not lo <= 0.0 <= hi]
    if bad:
        raise OptionError(f"ranges file {path}: range of {bad[0]!r} does not contain 0")
    return ranges
