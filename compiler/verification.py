"""Sample inputs, the float truth (onnxruntime) and the comparison metrics that
every compile reports.

- Samples come from a user file (`.npz` with one array per model input, named
  after it, other arrays ignored; for a single-input model an array named
  "input" or a file's only array also serves; `.npy` too). An
  array of exactly the input's shape is one sample; one extra leading dimension
  makes a batch of samples. Without a file, `synthetic_samples` draws seeded
  random inputs (the caller warns the user).
- onnxruntime runs the original model with graph optimizations disabled, i.e. the
  plain ONNX semantics (for QDQ models: dequantize -> float op -> quantize), which
  is what nnc's reference implements.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import dtypes
from .errors import ModelError, ShapeError
from .ir import Graph
from .ops.indexing import index_extent

Sample = dict[str, np.ndarray]


InputShapes = dict[str, tuple[int, ...]]


def input_shapes(graph: Graph) -> InputShapes:
    return {name: graph.tensor(name).shape for name in graph.inputs}


def load_samples(path: str | Path, spec: Graph | InputShapes) -> list[Sample]:
    """Samples from an .npz/.npy file, checked against the inputs (a graph's, or
    name -> shape)."""
    shapes = input_shapes(spec) if isinstance(spec, Graph) else spec
    return split_batch(match_inputs(read_arrays(path), shapes, path), shapes, str(path))[0]


def read_arrays(path: str | Path) -> dict[str, np.ndarray]:
    """The arrays of an .npz file ({"": array} for an .npy); ShapeError if unreadable."""
    path = Path(path)
    if not path.is_file():
        raise ShapeError(f"{path}: no such data file")
    try:
        loaded = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ShapeError(f"{path}: not a readable .npz/.npy file: {exc}") from None
    return {"": loaded} if isinstance(loaded, np.ndarray) else {k: loaded[k] for k in loaded.files}


def match_inputs(arrays: dict[str, np.ndarray], shapes: InputShapes, source) -> dict[str, np.ndarray]:
    """Arrays named after the inputs (others ignored); for a single-input model
    also an array named "input", or the file's only array."""
    names = list(shapes)
    if all(name in arrays for name in names):
        return {name: arrays[name] for name in names}
    if len(names) == 1:
        for candidate in ("input", *([next(iter(arrays))] if len(arrays) == 1 else [])):
            if candidate in arrays:
                return {names[0]: arrays[candidate]}
    raise ShapeError(f"{source}: arrays {sorted(arrays)} do not match the model inputs {names}")


def split_batch(arrays: dict[str, np.ndarray], shapes: InputShapes, source: str) -> tuple[list[Sample], bool]:
    """(samples, batched): one sample per leading index when every array has one
    extra leading dimension (batched), else the arrays as one sample."""
    counts = set()
    for name, array in arrays.items():
        shape = tuple(shapes[name])
        if array.shape == shape:
            counts.add(None)
        elif array.shape[1:] == shape and array.shape[0] > 0:
            counts.add(array.shape[0])
        else:
            raise ShapeError(f"{source}: array {name!r} has shape {list(array.shape)}; input {name!r} "
                             f"needs {list(shape)} or a batch [B, {', '.join(map(str, shape))}]")
    if len(counts) != 1:
        raise ShapeError(f"{source}: the arrays disagree on the number of samples")
    count = counts.pop()
    if count is None:
        return [dict(arrays)], False
    return [{name: array[i] for name, array in arrays.items()} for i in range(count)], True


def synthetic_samples(graph: Graph, count: int = 4, seed: int = 0) -> list[Sample]:
    """Seeded random inputs: floats uniform in [-1, 1], integers over their full
    range, except Gather indices: uniform over [0, extent) of the axis they index."""
    rng = np.random.default_rng(seed)
    samples = []
    for _ in range(count):
        sample = {}
        for name in graph.inputs:
            tensor = graph.tensor(name)
            dtype = dtypes.to_numpy(tensor.dtype)
            if dtype.kind == "f":
                sample[name] = rng.uniform(-1, 1, tensor.shape).astype(dtype)
            else:
                lo, hi = dtypes.integer_range(tensor.dtype)
                extent = index_extent(graph, name)
                lo, hi = (lo, hi) if extent is None else (0, max(extent - 1, 0))
                sample[name] = rng.integers(lo, hi, tensor.shape, endpoint=True).astype(dtype)
        samples.append(sample)
    return samples


def onnxruntime_outputs(model_path: str | Path, samples: list[Sample], output_names: list[str]) -> list[Sample]:
    """Run the original model in onnxruntime (optimizations off) on each sample."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types
        raise ModelError(f"onnxruntime cannot load {model_path}: {str(exc).splitlines()[0]}") from None
    results = []
    for sample in samples:
        try:
            values = session.run(output_names, sample)
        except Exception as exc:  # e.g. an op onnxruntime implements only partly
            raise ModelError(f"onnxruntime cannot run {model_path}: {str(exc).splitlines()[0]}") from None
        results.append(dict(zip(output_names, values)))
    return results


def compare(reference: list[Sample], candidate: list[Sample]) -> dict:
    """Metrics of `candidate` against `reference` over all samples and outputs:
    max abs difference, cosine similarity, SNR in dB, top-1 agreement (for outputs
    whose last axis holds more than one class), bit-exactness."""
    ref, got = flatten(reference), flatten(candidate)
    bit_exact = all(np.array_equal(r[k], c[k]) for r, c in zip(reference, candidate) for k in r)
    noise = float(np.sum((ref - got) ** 2))
    signal = float(np.sum(ref ** 2))
    return {
        "samples": len(reference),
        "bit_exact": bool(bit_exact),
        "max_abs_diff": float(np.max(np.abs(ref - got))) if ref.size else 0.0,
        "cosine": cosine(ref, got),
        "snr_db": _snr_db(signal, noise),
        "top1_agreement": _top1(reference, candidate),
    }


def flatten(samples: list[Sample]) -> np.ndarray:
    """Every output of every sample, float64, one flat array (outputs in name order)."""
    return np.concatenate([np.asarray(s[k], np.float64).ravel() for s in samples for k in sorted(s)])


def cosine(ref: np.ndarray, got: np.ndarray) -> float:
    """Cosine similarity of two flat arrays; 1.0 or 0.0 when a norm is zero (equal or not)."""
    norms = float(np.linalg.norm(ref) * np.linalg.norm(got))
    return float(np.dot(ref, got) / norms) if norms else float(np.array_equal(ref, got))


def cosine_rmse(ref: np.ndarray, got: np.ndarray) -> dict:
    """{"cosine", "rmse"} of flat arrays `got` against `ref`."""
    return {"cosine": cosine(ref, got), "rmse": float(np.sqrt(np.mean((ref - got) ** 2))) if ref.size else 0.0}


def _snr_db(signal: float, noise: float) -> float | None:
    """None where the SNR is infinite or undefined (JSON has no infinity)."""
    if noise == 0.0 or signal == 0.0:
        return None
    return float(10 * np.log10(signal / noise))


def _top1(reference: list[Sample], candidate: list[Sample]) -> float | None:
    agree, total = 0, 0
    for r, c in zip(reference, candidate):
        for key, value in r.items():
            value = np.asarray(value)
            if value.ndim == 0 or value.shape[-1] < 2:
                continue
            a = value.reshape(-1, value.shape[-1]).argmax(-1)
            b = np.asarray(c[key]).reshape(-1, value.shape[-1]).argmax(-1)
            agree += int(np.sum(a == b))
            total += a.size
    return agree / total if total else None
