"""`nnc.simulate` and `nnc run`: execute a blob on inputs, one sample or a batch.

Inputs are matched to the blob's inputs as compile's samples are
(`nnc.verification`): arrays named after the inputs, or "input"/the only array
for a single-input model; an array with one extra leading dimension is a batch of
samples, run one by one, outputs stacked the same way.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nnc.errors import BlobError
from nnc.verification import match_inputs, read_arrays, split_batch

from .blob import read_blob
from .hardware import Hardware, load_hardware
from .simulator import SimStats, Simulator


def read_blob_file(blob: str | Path | bytes) -> bytes:
    if isinstance(blob, (bytes, bytearray, memoryview)):
        return bytes(blob)
    path = Path(blob)
    if not path.is_file():
        raise BlobError(f"{path}: no such blob file")
    return path.read_bytes()


def simulate(blob: str | Path | bytes, inputs: dict[str, np.ndarray] | str | Path,
             hw: Hardware | str | Path | None = None) -> tuple[dict[str, np.ndarray], SimStats | list[SimStats]]:
    """Run `blob` (a path or its bytes) on `inputs` (arrays by input name, or an
    .npz/.npy path). Returns (outputs by name, stats): one SimStats for a single
    sample; for a batch, outputs stacked along a new first axis and a list of
    SimStats, one per sample."""
    program = read_blob(read_blob_file(blob))
    machine = hw if isinstance(hw, Hardware) else load_hardware(hw)
    shapes = {program.tensors[i].name: program.tensors[i].shape for i in program.inputs}
    source = str(inputs) if isinstance(inputs, (str, Path)) else "inputs"
    arrays = read_arrays(inputs) if isinstance(inputs, (str, Path)) else {k: np.asarray(v) for k, v in inputs.items()}
    samples, batched = split_batch(match_inputs(arrays, shapes, source), shapes, source)
    simulator = Simulator(program, machine)
    results = [simulator.run(sample) for sample in samples]
    if not batched:
        return results[0]
    outputs = {name: np.stack([out[name] for out, _ in results]) for name in results[0][0]}
    return outputs, [stats for _, stats in results]
