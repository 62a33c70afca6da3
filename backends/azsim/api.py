"""`nnc.simulate` and `nnc run`: execute a blob on inputs, one sample or a batch.

Inputs are matched to the blob's inputs as compile's samples are
(`nnc.verification.prepare_samples`): arrays named after the inputs, or
"input"/the only array for a single-input model, converted to the input's dtype
only where no value changes (an int8 array for a float input is refused), finite;
an array with one extra leading dimension is a batch of samples, run one by one,
outputs stacked the same way.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nnc.errors import BlobError
from nnc.verification import InputSpec, InputSpecs, prepare_samples, read_arrays

from .blob import read_blob
from .hardware import Hardware, load_hardware
from .program import DTYPE_CODES, Program
from .simulator import SimStats, Simulator


def read_blob_file(blob: str | Path | bytes) -> bytes:
    if isinstance(blob, (bytes, bytearray, memoryview)):
        return bytes(blob)
    path = Path(blob)
    if not path.is_file():
        raise BlobError(f"{path}: no such blob file")
    return path.read_bytes()


class BlobRunner:
    """A blob decoded once for a machine, run on many inputs: `run(inputs)` is
    `simulate` without reading, checking and decoding the blob again."""

    def __init__(self, blob: str | Path | bytes, hw: Hardware | str | Path | None = None):
        self.program = read_blob(read_blob_file(blob))
        machine = hw if isinstance(hw, Hardware) else load_hardware(hw)
        self.simulator = Simulator(self.program, machine)  # checks the program's inputs and outputs
        self.specs = _input_specs(self.program)

    def run(self, inputs: dict[str, np.ndarray] | str | Path) -> tuple[dict[str, np.ndarray], SimStats | list[SimStats]]:
        """See `simulate`."""
        source = str(inputs) if isinstance(inputs, (str, Path)) else "inputs"
        arrays = read_arrays(inputs) if isinstance(inputs, (str, Path)) else dict(inputs)
        samples, batched = prepare_samples(arrays, self.specs, source)
        results = [self.simulator.run(sample) for sample in samples]
        if not batched:
            return results[0]
        outputs = {name: np.stack([out[name] for out, _ in results]) for name in results[0][0]}
        return outputs, [stats for _, stats in results]


def simulate(blob: str | Path | bytes, inputs: dict[str, np.ndarray] | str | Path,
             hw: Hardware | str | Path | None = None) -> tuple[dict[str, np.ndarray], SimStats | list[SimStats]]:
    """Run `blob` (a path or its bytes) on `inputs` (arrays by input name, or an
    .npz/.npy path). Returns (outputs by name, stats): one SimStats for a single
    sample; for a batch, outputs stacked along a new first axis and a list of
    SimStats, one per sample. To run one blob many times, use BlobRunner."""
    return BlobRunner(blob, hw).run(inputs)


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
