"""`nnc explore`: a sweep of az-sim hardware values × compression settings, each
point compiled and simulated, and the Pareto front of energy, latency, stored
bytes and output error.

Steps:
- the sweep (explore_spec.py), the output folder, the model and the sample
  files are checked before any work (a bad one is one NncError);
- the model and sample files become one workload (explore_worker.py) that each
  worker receives once; the points run in this process, a local process pool
  or Ray (explore_runners.py), each compression setting compiled once per
  worker and simulated per machine;
- the results are ordered by point, the front taken over the successful ones
  (explore_pareto.py), and points.csv, front.csv, front.svg and explore.json are
  written through the output folder's staging and manifest (output_folder.py);
  when no point succeeded, nothing is written and ExploreError is raised.

Invariant: the CSVs and the SVG are functions of the model, the samples and
the sweep only (no times, no runner), byte-identical for any --jobs and with or
without Ray; explore.json adds the runner and the wall time.
"""

from __future__ import annotations

import hashlib
import json
import time
import warnings
from dataclasses import field
from pathlib import Path
from typing import Callable

from . import __version__, output_folder
from .errors import ModelError, NncError, NncWarning, OptionError, ShapeError, not_a_file
from .explore_pareto import pareto_front
from .explore_plot import front_svg
from .explore_runners import run_points
from .explore_spec import Point, Sweep, axis_name, build_sweep
from .explore_worker import read_workload
from .records import record

# minimized, in this order (the front's objectives and the CSVs' first metric columns)
OBJECTIVES = ("energy_uj", "latency_ms", "blob_bytes", "error")
METRICS = (*OBJECTIVES, "cosine", "top1_agreement", "cycles", "macs_executed", "bytes_loaded", "weight_bytes")
FILES = ("points.csv", "front.csv", "front.svg", "explore.json")
# most samples the output error is measured on by default (each is one simulation per point)
DEFAULT_SAMPLES = 16
MAX_JOBS = 256


class ExploreError(NncError):
    """Every point of the sweep failed (the message gives the first reason)."""


@record(frozen=False)
class ExploreResult:
    """The points in order (dicts: index, status, reason, settings, metrics),
    the front's point indices, and the files written into `output_dir`."""

    points: list[dict]
    front: list[int]
    sweep: Sweep
    output_dir: Path | None = None
    artifacts: list[str] = field(default_factory=list)
    report: dict = field(default_factory=dict)


def explore(model: str | Path, output_dir: str | Path | None, axes: dict[str, str | list] | None = None, *,
            sweep_file: str | Path | None = None, hw: str | Path | None = None, calib: str | Path | None = None,
            inputs: str | Path | None = None, input_shapes: dict[str, tuple[int, ...]] | None = None,
            samples: int = DEFAULT_SAMPLES, jobs: int = 1, ray: str | None = None,
            progress: Callable[[dict, int, int], None] | None = None) -> ExploreResult:
    """Sweep `axes` ({flag or field: "v1,v2" or [values]}, e.g. {"bits": "8,4",
    "lanes": [32, 64]}) and/or `sweep_file` over the machine `hw` (default: the
    shipped one), compile and simulate every point, write the files into
    `output_dir` (None: nothing written). `samples`: the first N of `inputs`
    (default: `calib`) measure the output error; `jobs`: worker processes (or
    Ray CPUs with ray="local"); `ray`: a Ray address, "auto" or "local".
    `progress(result, done, total)` is called as each point finishes."""
    model = Path(model)
    _check_arguments(model, output_dir, samples, jobs)
    fixed = {"input_shapes": input_shapes} if input_shapes else {}
    sweep = build_sweep(axes or {}, Path(sweep_file) if sweep_file else None, hw,
                        {**fixed, "calib": calib})
    points = sweep.points()
    if calib is None and inputs is None:
        warnings.warn("no calib or inputs (--calib, --inputs): points are calibrated and measured on synthetic "
                      "random samples", NncWarning)
    _check_files(model, _path(calib), _path(inputs), input_shapes)
    workload = read_workload(model, _path(calib), _path(inputs), fixed, samples, sweep.base)
    start = time.perf_counter()
    done = []

    def finished(result: dict) -> None:
        done.append(result)
        if progress is not None:
            progress(result, len(done), len(points))

    results = run_points(workload, points, jobs, ray, finished)
    rows = _rows(points, results)
    ok = [row for row in rows if row["status"] == "ok"]
    front = [ok[i]["index"] for i in pareto_front([[row[k] for k in OBJECTIVES] for row in ok])]
    result = ExploreResult(rows, front, sweep)
    if not ok:
        first = rows[0]
        raise ExploreError(f"all {len(rows)} points failed, nothing written; point {first['index']} "
                           f"({first['label']}): {first['reason']}")
    result.report = _report(model, sweep, rows, front, jobs, ray, time.perf_counter() - start, samples)
    if output_dir is not None:
        result.output_dir, result.artifacts = Path(output_dir), _write(Path(output_dir), model, result, points)
    return result


def _check_arguments(model: Path, output_dir, samples: int, jobs: int) -> None:
    problem = not_a_file(model, "model file")
    if problem:
        raise ModelError(f"{model}: {problem}")
    for option, value, top in (("jobs", jobs, MAX_JOBS), ("samples", samples, 100000)):
        if not 1 <= value <= top:
            said = f"must be in 1..{top}, got {value}"
            raise OptionError(f"{option} {said}", cli=f"--{option} {said}")
    if output_dir is not None:
        output_folder.check(Path(output_dir), model)


def _check_files(model: Path, calib: Path | None, inputs: Path | None, input_shapes) -> None:
    """Load the model and the samples here, once, so that a bad file is one
    error naming it, not a failure of every point in a worker's temporary copy."""
    from .frontend.model_file import load_model_file
    from .verification import load_samples

    graph = load_model_file(model, input_shapes)
    for path in (calib, inputs):
        if path is not None:
            load_samples(path, graph)


def _path(value) -> Path | None:
    if value is None:
        return None
    path = Path(value)
    problem = not_a_file(path, "data file")
    if problem:
        raise ShapeError(f"{path}: {problem}")
    return path


def _rows(points: list[Point], results: list[dict]) -> list[dict]:
    """One row per point in point order: settings, status, reason, metrics."""
    by_index = {r["index"]: r for r in results}
    rows = []
    for point in points:
        found = by_index[point.index]
        rows.append({"index": point.index, "status": found["status"], "reason": found.get("reason", ""),
                     "compression": dict(point.compression), "hardware": dict(point.hardware),
                     "label": point.label(), **{k: found.get(k) for k in METRICS}})
    return rows


def _report(model: Path, sweep: Sweep, rows: list[dict], front: list[int], jobs: int, ray: str | None,
            seconds: float, samples: int) -> dict:
    return {"nnc_version": __version__,
            "model": {"file": str(model), "sha256": hashlib.sha256(model.read_bytes()).hexdigest()},
            "sweep": sweep.to_json(), "objectives": list(OBJECTIVES), "samples": samples,
            "points": [{k: v for k, v in row.items() if k != "label"} for row in rows],
            "front": front, "failed": sum(row["status"] != "ok" for row in rows),
            "runner": {"kind": "ray" if ray else "local", "jobs": jobs, "ray_address": ray},
            "seconds": round(seconds, 3)}


def _write(out: Path, model: Path, result: ExploreResult, points: list[Point]) -> list[str]:
    ok = [row for row in result.points if row["status"] == "ok"]
    on_front = set(result.front)
    files = {"points.csv": points_csv(result.points, result.sweep, on_front),
             "front.csv": points_csv([r for r in result.points if r["index"] in on_front], result.sweep, on_front),
             "front.svg": front_svg(ok, on_front, {p.index: p.label() for p in points}),
             "explore.json": json.dumps(result.report, indent=2) + "\n"}
    with output_folder.staged(out, model) as staging:
        for name, text in files.items():
            (staging / name).write_text(text, encoding="utf-8")
    return [*FILES, output_folder.MANIFEST]


def points_csv(rows: list[dict], sweep: Sweep, front: set[int]) -> str:
    """One line per row: point, status, the swept settings (flag names), the
    metrics, on_front (1/0), reason. Floats with 10 significant digits."""
    settings = [*sweep.compression, *sweep.hardware]
    header = ["point", "status", *map(axis_name, settings), *METRICS, "on_front", "reason"]
    lines = [",".join(header)]
    for row in rows:
        values = {**row["compression"], **row["hardware"]}
        cells = [row["index"], row["status"], *(values[s] for s in settings), *(row[k] for k in METRICS),
                 int(row["index"] in front), row["reason"]]
        lines.append(",".join(_cell(c) for c in cells))
    return "\n".join(lines) + "\n"


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else f"{value:.10g}"
    text = str(value)
    return '"' + text.replace('"', '""') + '"' if any(c in text for c in ',"\n') else text
