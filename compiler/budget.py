"""Budget search: per-layer weight bits and sparsity that fit a weight budget
with the least output error (`--flash-budget BYTES`, `--ratio R`).

1. The float graph after the CANONICAL pipeline gives the truth: its outputs on
   the search samples (the first SEARCH_SAMPLES calibration samples).
2. Baseline: every layer int8, activation ranges calibrated once and reused by
   every candidate (quantize{ranges=}), so candidates differ only in weights.
3. For each weighted layer L (ids #1.. in schedule order) and candidate
   c = (bits, sparsity) of CANDIDATES: the model with only L at c, all others
   int8, compressed by the compile's method (obs: GPTQ/SparseGPT with the
   search samples' statistics, so the sizes and errors are close to those the
   compile gets). Its cost Δerr_L(c) = MSE(outputs, truth) − MSE(baseline, truth)
   (clipped at 0), its size bytes_L(c) = L's weights in their smallest exact
   encoding (packing.pack). Layers are assumed to add their errors, the usual
   first-order model of mixed-precision search (e.g. HAWQ-V3, Yao et al. 2021).
4. Lagrangian relaxation (Shoham & Gersho, "Efficient bit allocation for an
   arbitrary set of quantizers", 1988): for λ ≥ 0 each layer takes
   argmin Δerr + λ·bytes; bytes fall as λ grows; bisection finds the smallest
   λ whose choice fits the budget; a greedy pass then spends the bytes left
   (the best error decrease per added byte first). The (bytes, predicted error)
   points of the sweep are the front the search explored.
The compile then runs the chosen settings (pipeline overrides by layer id) and
its verification measures the real error next to the predicted one; the driver
re-allocates if the weights stored pass the budget (driver._fit_budget). Costs
layers × len(CANDIDATES) quantizations and runs of the search samples.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from pathlib import Path

import numpy as np

from .errors import NncWarning, OptionError
from .interpreter import run
from .ir import Graph
from .layer_select import weighted_layers
from .packing import pack
from .passmanager import PassManager, available_passes, parse_pipeline
from .pipelines import CANONICAL
from .records import record
from .report import layer_weights

SEARCH_SAMPLES = 8
CANDIDATES = tuple((bits, sparsity) for sparsity in (0.0, 0.5, 0.75) for bits in (8, 6, 5, 4, 3, 2))
BISECTION_STEPS = 60


@record
class Option:
    bits: int
    sparsity: float
    nbytes: int
    error: float  # Δ output MSE against the all-int8 baseline


@record(frozen=False)
class BudgetChoice:
    """The search's outcome: per layer id the chosen Option, and the front."""

    budget_bytes: int
    layers: dict[str, tuple[str, Option]]  # "#i" -> (layer name, option)
    front: list[tuple[int, float]]  # (bytes, predicted output MSE), fewest bytes first
    baseline_mse: float
    candidates: dict[str, tuple[str, list[Option]]]  # "#i" -> (layer name, every measured option)

    @property
    def nbytes(self) -> int:
        return sum(option.nbytes for _, option in self.layers.values())

    @property
    def predicted_mse(self) -> float:
        return self.baseline_mse + sum(option.error for _, option in self.layers.values())

    def overrides(self) -> tuple[str, str]:
        """(quantize bits overrides, prune sparsity overrides) by layer id."""
        bits = ",".join(f"{i}:{o.bits}" for i, (_, o) in self.layers.items())
        sparsity = ",".join(f"{i}:{o.sparsity:g}" for i, (_, o) in self.layers.items())
        return bits, sparsity

    def corrected(self, stored: dict[str, int]) -> BudgetChoice:
        """The allocation again, each layer's candidate sizes scaled by how far
        the bytes `stored` for its chosen option (by layer name) were from the
        measured ones (GPTQ and SparseGPT move weights, and so their encoded size)."""
        scaled = {}
        for i, (name, options) in self.candidates.items():
            factor = stored[name] / max(self.layers[i][1].nbytes, 1)
            scaled[i] = (name, [dataclasses.replace(o, nbytes=math.ceil(o.nbytes * factor)) for o in options])
        return _allocate(scaled, self.budget_bytes, self.baseline_mse)

    def to_json(self) -> dict:
        return {"budget_bytes": self.budget_bytes, "chosen_bytes": self.nbytes,
                "predicted_mse": self.predicted_mse, "baseline_mse": self.baseline_mse,
                "front": [{"bytes": b, "predicted_mse": e} for b, e in self.front],
                "layers": {i: {"name": name, "bits": o.bits, "sparsity": o.sparsity, "bytes": o.nbytes,
                               "predicted_delta_mse": o.error} for i, (name, o) in self.layers.items()}}


def stored_bytes(graph: Graph) -> dict[str, int]:
    """{layer name: bytes} of each weighted layer's weights in a compiled graph,
    in their smallest exact encoding (what the search measured)."""
    return {name: len(pack(tensor.data).payload) for name, tensor in layer_weights(graph).items()}


def fp32_bytes(graph: Graph) -> int:
    """4 bytes per weight of the weighted layers (what `--ratio` divides)."""
    return 4 * sum(graph.tensor(n.inputs[1]).size for n in weighted_layers(graph))


def search(graph: Graph, samples: list[dict], calib: str, budget_bytes: int, progress=None,
           method: str = "magnitude") -> BudgetChoice:
    """The per-layer settings for `budget_bytes` (module docstring); `graph` is the
    loaded model, `calib` the calibration file ("" for synthetic samples)."""
    samples = samples[:SEARCH_SAMPLES]
    with warnings.catch_warnings():  # the trial compiles' conditions are the final compile's to report, if they hold
        warnings.simplefilter("ignore", NncWarning)
        return _search(graph, samples, calib, budget_bytes, progress, method)


def _search(graph: Graph, samples: list[dict], calib: str, budget_bytes: int, progress, method: str) -> BudgetChoice:
    import tempfile  # a budget search's scratch only: 1 ms of imports for every compile otherwise

    float_graph = PassManager(parse_pipeline(CANONICAL)).run(graph.copy())
    truth = _flat([run(float_graph, s) for s in samples])
    passes = available_passes()
    with tempfile.TemporaryDirectory(prefix="nnc-budget-") as scratch:
        ranges = str(Path(scratch) / "ranges.json")
        base = PassManager([passes["quantize"](calib=calib, save_ranges=ranges, bias_correction=False)]) \
            .run(float_graph.copy())
        baseline = _mse(truth, _flat([run(base, s) for s in samples]))
        if method == "obs":  # the candidates' Hessians come from the search samples alone: 18 per layer
            calib = str(Path(scratch) / "search.npz")
            np.savez(calib, **{name: np.stack([s[name] for s in samples]) for name in samples[0]})
        options = {}
        layers = weighted_layers(float_graph)
        for index, node in enumerate(layers, 1):
            if progress:
                progress(f"budget search: layer {index}/{len(layers)} {node.name}")
            options[f"#{index}"] = (node.name, [_measure(float_graph, samples, truth, baseline, calib, ranges,
                                                         f"#{index}", node.name, bits, sparsity, method)
                                                for bits, sparsity in CANDIDATES])
    return _allocate(options, budget_bytes, baseline)


def _measure(float_graph: Graph, samples, truth, baseline: float, calib: str, ranges: str, layer_id: str,
             name: str, bits: int, sparsity: float, method: str) -> Option:
    passes = available_passes()
    second_order = {"method": method, "calib": calib} if method == "obs" else {}
    steps = [passes["prune"](sparsity=0.0, overrides=f"{layer_id}:{sparsity:g}", **second_order)] if sparsity else []
    steps.append(passes["quantize"](calib=calib, ranges=ranges, overrides=f"{layer_id}:{bits}",
                                    bias_correction=False, method=method))
    compressed = PassManager(steps).run(float_graph.copy())
    nbytes = len(pack(layer_weights(compressed)[name].data).payload)
    error = _mse(truth, _flat([run(compressed, s) for s in samples])) - baseline
    return Option(bits, sparsity, nbytes, max(error, 0.0))


def _allocate(options: dict[str, tuple[str, list[Option]]], budget: int, baseline: float) -> BudgetChoice:
    """Bisect λ for the least predicted error within `budget` bytes."""
    def choose(lam: float) -> dict[str, tuple[str, Option]]:
        return {i: (name, min(opts, key=lambda o: (o.error + lam * o.nbytes, o.nbytes)))
                for i, (name, opts) in options.items()}

    def total(choice) -> int:
        return sum(o.nbytes for _, o in choice.values())

    smallest = {i: (name, min(opts, key=lambda o: (o.nbytes, o.error))) for i, (name, opts) in options.items()}
    if total(smallest) > budget:
        raise OptionError(f"weight budget {budget:,} bytes is below the smallest reachable {total(smallest):,} "
                          "bytes (every layer 2-bit and 75% sparse)")
    front = {}
    lo, hi = 0.0, 1.0
    while total(choose(hi)) > budget:
        hi *= 4.0
    for lam in (0.0, *np.geomspace(1e-12, hi, 40)):
        point = choose(float(lam))
        front.setdefault(total(point), baseline + sum(o.error for _, o in point.values()))
    best = choose(lo) if total(choose(lo)) <= budget else None
    for _ in range(BISECTION_STEPS if best is None else 0):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if total(choose(mid)) > budget else (lo, mid)
    best = _fill(options, best or choose(hi), budget)
    front.setdefault(total(best), baseline + sum(o.error for _, o in best.values()))
    return BudgetChoice(budget, best, sorted(front.items()), baseline, options)


def _fill(options: dict[str, tuple[str, list[Option]]], choice: dict, budget: int) -> dict:
    """Spend what the Lagrangian point leaves of the budget: repeatedly take the
    single-layer change that removes the most error per added byte and still fits."""
    choice = dict(choice)
    while True:
        spare = budget - sum(o.nbytes for _, o in choice.values())
        moves = [((current.error - o.error) / max(o.nbytes - current.nbytes, 1), i, o)
                 for i, (name, current) in choice.items() for o in options[i][1]
                 if o.error < current.error and o.nbytes - current.nbytes <= spare]
        if not moves:
            return choice
        _, i, option = max(moves, key=lambda m: (m[0], m[1]))
        choice[i] = (choice[i][0], option)


def _flat(outputs: list[dict]) -> np.ndarray:
    return np.concatenate([np.asarray(o[k], np.float64).ravel() for o in outputs for k in sorted(o)])


def _mse(truth: np.ndarray, got: np.ndarray) -> float:
    return float(np.mean((truth - got) ** 2))
