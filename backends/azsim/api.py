"""`nnc.simulate` and `nnc run`: execute a blob on inputs, one sample or a batch.

Inputs are matched to the blob's inputs as compile's samples are
(`nnc.verification.prepare_samples`): arrays named after the inputs, or
"input"/the only array for a single-input model, converted to the input's dtype
only where no value changes (an int8 array for a float input is refused), finite;
an array with one extra leading dimension is a batch of samples, run one by one,
outputs stacked the same way.

`simulate` decodes a blob once per machine: it keeps the last RUNNERS_KEPT
(blob, machine) pairs prepared, keyed by the blob's bytes (compared whole, so
equal bytes are the same blob whatever object holds them) and the Hardware. A
blob or hardware file is read again only when its size, modification time or
inode changes, so calling `simulate` on the same blob path costs one `stat`.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path

import numpy as np

from nnc.errors import BlobError, OptionError, ShapeError, not_a_file
from nnc.sample_sources import as_arrays
from nnc.verification import InputSpec, InputSpecs, match_inputs, prepare_samples, read_arrays

from .blob import read_blob
from .hardware import Hardware, load_hardware
from .program import DTYPE_CODES, Program
from .sim_stats import SimStats
from .simulator import NUMPY_TYPES, Simulator


RUNNERS_KEPT = 8


def read_blob_file(blob: str | Path | bytes) -> bytes:
    if isinstance(blob, (bytes, bytearray, memoryview)):
        return bytes(blob)
    if not isinstance(blob, (str, os.PathLike)):
        raise BlobError(f"blob must be a path or bytes, got {type(blob).__name__}")
    path = Path(blob)
    problem = not_a_file(path, "blob file")
    if problem:
        raise BlobError(f"{path}: {problem}")
    return path.read_bytes()


class BlobRunner:
    """A blob decoded once for a machine, run on many inputs: `run(inputs)` is
    `simulate` without reading, checking and decoding the blob again."""

    def __init__(self, blob: str | Path | bytes, hw: Hardware | str | Path | None = None):
        self.program = read_blob(read_blob_file(blob))
        machine = hw if isinstance(hw, Hardware) else _machine(hw)
        self.simulator = Simulator(self.program, machine)  # checks the program's inputs and outputs
        self.specs = _input_specs(self.program)
        self._types = {name: np.dtype(NUMPY_TYPES[DTYPE_CODES[spec.dtype]]) for name, spec in self.specs.items()}
        # (name, dtype, shape) of each input when all are integer: what a sample keyed by the inputs' own names
        # must match to run as it is
        self._exact = tuple((name, kind, tuple(self.specs[name].shape)) for name, kind in self._types.items()) \
            if all(kind.kind in "iu" for kind in self._types.values()) else ()

    def run(self, inputs: dict[str, np.ndarray] | str | Path) -> tuple[dict[str, np.ndarray], SimStats | list[SimStats]]:
        """See `simulate`."""
        sample = self._as_is(inputs)
        if sample is not None:
            return self.simulator.run(sample)
        is_path = isinstance(inputs, (str, os.PathLike))
        source = os.fspath(inputs) if is_path else "inputs"
        arrays = read_arrays(source) if is_path else as_arrays(inputs, "inputs")
        samples, batched = prepare_samples(arrays, self.specs, source)
        results = [self.simulator.run(sample) for sample in samples]
        if not batched:
            return results[0]
        outputs = {name: np.stack([out[name] for out, _ in results]) for name in results[0][0]}
        return outputs, [stats for _, stats in results]

    def _as_is(self, inputs) -> dict[str, np.ndarray] | None:
        """One sample that needs no conversion or check: arrays matched as
        `prepare_samples` matches them, each of its integer input's exact dtype and
        shape (every value then fits, so conforming them is the identity). None
        otherwise: float inputs are always checked (finite, within limits)."""
        if not isinstance(inputs, dict):
            return None
        if self._exact and len(inputs) == len(self._exact):  # the usual case, checked first
            for name, kind, shape in self._exact:
                array = inputs.get(name)
                if type(array) is not np.ndarray or array.dtype != kind or array.shape != shape:
                    break
            else:
                return inputs
        try:
            keys = match_inputs(inputs, self.specs, "inputs")
        except ShapeError:
            return None
        sample = {name: inputs[key] for name, key in keys.items()}
        for name, array in sample.items():
            kind = self._types[name]
            if type(array) is not np.ndarray or array.dtype != kind or kind.kind not in "iu" \
                    or array.shape != tuple(self.specs[name].shape):
                return None
        return sample


def simulate(blob: str | Path | bytes, inputs: dict[str, np.ndarray] | str | Path,
             hw: Hardware | str | Path | None = None) -> tuple[dict[str, np.ndarray], SimStats | list[SimStats]]:
    """Run `blob` (a path or its bytes) on `inputs` (arrays by input name, an
    .npz/.npy path, one array, or an iterable of samples as compile's
    `inputs=`). Returns (outputs by name, stats): one SimStats for a single
    sample; for a batch, outputs stacked along a new first axis and a list of
    SimStats, one per sample. The decoded blob is kept for the next call (see
    the module docstring); BlobRunner holds one explicitly."""
    return _runner(blob, hw).run(inputs)


# -- the prepared blobs ------------------------------------------------------------------
_RUNNERS: OrderedDict = OrderedDict()  # (blob bytes, Hardware) -> BlobRunner, least recently used first
_FILES: OrderedDict = OrderedDict()    # (path, size, mtime_ns, inode) -> the file's bytes or Hardware


def _runner(blob: str | Path | bytes, hw: Hardware | str | Path | None) -> BlobRunner:
    """The BlobRunner of these blob bytes on this machine, prepared on first use."""
    if isinstance(blob, (bytes, bytearray, memoryview)):
        data = bytes(blob)
    else:
        data = _cached_file(blob, "blob", read_blob_file)
    key = (data, hw if isinstance(hw, Hardware) else _machine(hw))
    runner = _RUNNERS.get(key)
    if runner is None:
        runner = _RUNNERS[key] = BlobRunner(data, key[1])
        while len(_RUNNERS) > RUNNERS_KEPT:
            _RUNNERS.popitem(last=False)
    _RUNNERS.move_to_end(key)
    return runner


def _machine(hw: str | Path | None) -> Hardware:
    """load_hardware(hw), read again only when its file changes (a preset or the
    default is read once)."""
    if hw is not None and not isinstance(hw, (str, os.PathLike)):
        raise OptionError(f"hw must be a TOML file, a preset name or a Hardware, got {type(hw).__name__}")
    return _cached_file(hw, "hardware", load_hardware)


def _cached_file(path: str | Path | None, kind: str, load):
    """load(path), kept while the file at `path` keeps its size, modification time
    and inode (None, or a name that is no file such as a preset, is kept for good;
    `load` reports a missing file)."""
    try:
        status = os.stat(path) if path is not None else None
    except (OSError, ValueError):
        status = None
    key = (kind, None if path is None else str(path),
           *((status.st_size, status.st_mtime_ns, status.st_ino) if status else ()))
    value = _FILES.get(key)
    if value is None:
        value = load(path)
        _FILES[key] = value
        while len(_FILES) > 2 * RUNNERS_KEPT:
            _FILES.popitem(last=False)
    _FILES.move_to_end(key)
    return value


def _input_specs(program: Program) -> InputSpecs:
    """Shape and dtype of each program input, as the samples must give them."""
    names = {code: name for name, code in DTYPE_CODES.items()}
    specs = {}
    for index in program.inputs:
        tensor = program.tensors[index]
        if tensor.dtype not in names:
            raise BlobError(f"input {tensor.name!r} has unknown dtype code {tensor.dtype}")
        specs[tensor.name] = InputSpec(tensor.shape, names[tensor.dtype])
    return specs
