"""One point of `nnc explore`, evaluated where a worker runs it: compile the
compression setting for az-sim, lower it for the point's machine, simulate the
blob on the samples and measure its outputs against the float model.

Invariants:
- A `Workload` carries the model and sample files as bytes, so a worker on
  another machine (a Ray cluster) needs nothing but nnc; each worker process
  writes them once into its own temporary folder.
- Each worker compiles a compression setting once (the last COMPILED_CACHE
  settings are kept) and reuses the compiled integer graph for every machine;
  the blob is lowered again per machine, exactly as the az-sim target lowers
  it for `--hw` (to_program, write_blob), then run by `BlobRunner`, as
  `nnc run` would. Compiling runs the pipeline only (driver.compile_graph):
  nothing is lowered or simulated on any other machine.
- BLAS runs on one thread inside a point, so a result depends on the point
  alone, never on which worker ran it or how many run at once.
- A point that nnc refuses (an NncError: a layer too big for the weight SRAM,
  say) comes back as failed with the one-line reason; it is not raised.
- Results are plain JSON values.
"""

from __future__ import annotations

import hashlib
import multiprocessing.util
import tempfile
import warnings
from collections import OrderedDict
from contextlib import nullcontext
from pathlib import Path

import numpy as np

from .errors import ModelError, NncError
from .records import record

# compiled compression settings a worker keeps (graphs of MLPerf Tiny size: a few MB each)
COMPILED_CACHE = 4


@record
class Workload:
    """What every point shares. `files`: (role, file name, bytes) for the roles
    model, calib and inputs (the last two optional); `options`: fixed compile
    options (input_shapes, ...); `samples`: how many of the samples (inputs,
    else calib) the error is measured on; `base`: the base machine's fields."""

    files: tuple[tuple[str, str, bytes], ...]
    options: dict
    samples: int
    base: dict
    digest: str  # of all the above: a worker's cache key


def read_workload(model: Path, calib: Path | None, inputs: Path | None, options: dict, samples: int,
                  base: dict) -> Workload:
    """The workload of files on this machine (the caller checked that they exist)."""
    files = [("model", model.name, model.read_bytes())]
    files += [(role, path.name, path.read_bytes()) for role, path in (("calib", calib), ("inputs", inputs)) if path]
    content = hashlib.sha256(repr((sorted(options.items()), samples, sorted(base.items()))).encode())
    for role, name, data in files:
        content.update(f"{role}\0{name}\0{len(data)}\0".encode())
        content.update(data)
    return Workload(tuple(files), dict(options), samples, dict(base), content.hexdigest()[:16])


class _Context:
    """A workload in one worker process: its files on disk, the samples, the float truth."""

    def __init__(self, workload: Workload):
        from .frontend.model_file import load_model_file
        from .verification import load_samples, synthetic_samples

        self.folder = tempfile.TemporaryDirectory(prefix="nnc-explore-")
        # a pool worker leaves through multiprocessing, which skips the finalizer
        # of TemporaryDirectory (an atexit hook) but runs its own
        multiprocessing.util.Finalize(self, self.folder.cleanup, exitpriority=0)
        self.paths = {}
        for role, name, data in workload.files:
            (Path(self.folder.name) / role).mkdir()
            self.paths[role] = Path(self.folder.name) / role / name
            self.paths[role].write_bytes(data)
        self.workload = workload
        self.graph = load_model_file(self.paths["model"], workload.options.get("input_shapes"))
        source = self.paths.get("inputs") or self.paths.get("calib")
        samples = load_samples(source, self.graph) if source else synthetic_samples(self.graph, workload.samples)
        self.samples = samples[:workload.samples]
        self.truth = _float_truth(self.paths["model"], self.graph, self.samples)
        self.compiled: OrderedDict = OrderedDict()

    def compiled_graph(self, setting: tuple) -> tuple:
        """(graph, "") of a compression setting, or (None, reason)."""
        if setting not in self.compiled:
            self.compiled[setting] = self._compile(dict(setting))
            while len(self.compiled) > COMPILED_CACHE:
                self.compiled.popitem(last=False)
        self.compiled.move_to_end(setting)
        return self.compiled[setting]

    def _compile(self, setting: dict) -> tuple:
        from .compile_options import CompileOptions
        from .driver import compile_graph

        files = {role: str(self.paths[role]) for role in ("calib",) if role in self.paths}
        try:
            options = CompileOptions(target="az-sim", **self.workload.options, **files, **setting)
            return compile_graph(self.paths["model"], options), ""
        except NncError as exc:
            return None, _one_line(exc)


_CONTEXTS: dict[str, _Context] = {}


def evaluate(workload: Workload, point) -> dict:
    """The point's metrics, or {"status": "failed", "reason": ...}."""
    with _one_thread(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            context = _context(workload)
        except NncError as exc:  # the caller loaded the files first, so a user's mistake rarely gets here
            return {"index": point.index, "status": "failed", "reason": f"workload: {_one_line(exc)}"}
        graph, reason = context.compiled_graph(point.compression)
        if graph is None:
            return {"index": point.index, "status": "failed", "reason": f"compile: {reason}"}
        try:
            return {"index": point.index, "status": "ok", "reason": "", **_simulate(context, graph, point)}
        except NncError as exc:
            return {"index": point.index, "status": "failed", "reason": _one_line(exc)}


def release_contexts() -> None:
    """Drop this process's context and remove its folder of files now (waiting
    for the garbage collector left it behind when the process ended without
    collecting, as a test runner's workers do)."""
    for context in _CONTEXTS.values():
        context.folder.cleanup()
    _CONTEXTS.clear()


def _context(workload: Workload) -> _Context:
    """This process's context of `workload` (built on first use; one kept)."""
    if workload.digest not in _CONTEXTS:
        _CONTEXTS.clear()
        _CONTEXTS[workload.digest] = _Context(workload)
    return _CONTEXTS[workload.digest]


def _simulate(context: _Context, graph, point) -> dict:
    """Lower `graph` for the point's machine, run the blob on every sample."""
    from nnc.backends.azsim.api import BlobRunner
    from nnc.backends.azsim.hardware import MAX_NAME_LENGTH, Hardware

    from .accuracy import class_axes
    from .verification import compare, flatten

    base = context.workload.base
    machine_name = f"{base['name']} point {point.index}"[-MAX_NAME_LENGTH:]  # errors name the point's machine
    machine = Hardware(**{**base, **dict(point.hardware), "name": machine_name})
    program, blob = lower(graph, machine, dict(point.compression).get("pack", "auto"))
    runner = BlobRunner(blob, machine)
    runs = [runner.run(sample) for sample in context.samples]
    outputs = [{name: value for name, value in out.items() if name in context.truth[0]} for out, _ in runs]
    stats = [s for _, s in runs]
    truth, got = flatten(context.truth), flatten(outputs)
    metrics = compare(context.truth, outputs, class_axes(context.graph))
    cycles = float(np.mean([s.cycles for s in stats]))
    return {"energy_uj": float(np.mean([s.energy_uj for s in stats])),
            "latency_ms": cycles / (machine.clock_mhz * 1000.0),
            "blob_bytes": len(blob),
            "error": _relative_l2(truth, got), "cosine": metrics["cosine"],
            "top1_agreement": metrics["top1_agreement"], "cycles": cycles,
            "macs_executed": float(np.mean([s.macs_executed for s in stats])),
            "bytes_loaded": float(np.mean([s.bytes_loaded for s in stats])),
            "weight_bytes": _stored_bytes(graph, program)}


def lower(graph, machine, pack: str) -> tuple:
    """(program, blob) of `graph` for `machine`: what the az-sim target built
    with `--hw` for that machine and `--pack pack` emits, byte for byte."""
    from nnc.backends.azsim.blob import write_blob
    from nnc.backends.azsim.lowering import to_program

    program = to_program(graph, pack, machine)
    return program, write_blob(program)


def _stored_bytes(graph, program) -> int:
    """The weight bytes `program` stores, a tensor that layers share counted once
    (as report["weights"]["stored_bytes"] of `nnc compile` for that machine)."""
    from nnc.backends.azsim.program import weight_encodings

    from .report import kept_weights, layer_weights

    encodings = weight_encodings(program)
    first_reader = {tensor.name: layer for layer, tensor in reversed(layer_weights(graph).items())}
    kept = {t.name: t.nbytes for tensors in kept_weights(graph).values() for t in tensors}  # stored as they are
    return sum(encodings[layer][2] for layer in first_reader.values() if layer in encodings) + sum(kept.values())


def _relative_l2(truth: np.ndarray, got: np.ndarray) -> float:
    """||got - truth|| / ||truth||; the absolute norm when the truth is all zero."""
    norm = float(np.linalg.norm(truth))
    diff = float(np.linalg.norm(got - truth))
    return diff / norm if norm else diff


def _float_truth(model: Path, graph, samples) -> list:
    """onnxruntime's outputs on the model file, or nnc's float reference where
    onnxruntime cannot run it (as compile's vs_float does)."""
    from .frontend.model_file import is_text_ir
    from .interpreter import run
    from .verification import onnxruntime_outputs

    if not is_text_ir(model):
        try:
            return onnxruntime_outputs(model, samples, graph.outputs)
        except ModelError:
            pass
    return [run(graph, s) for s in samples]


def _one_thread():
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - a dependency of nnc
        return nullcontext()
    return threadpool_limits(1)


def _one_line(exc: BaseException) -> str:
    return " ".join(part.strip() for part in str(exc).splitlines())
