"""Target `az-sim`: the compiled integer graph becomes a packed blob
(`<name>.azb`), which nnc's simulator of the AZ-class edge processor executes.

Verification reads the blob back from the file (never the IR) and runs the
simulator on each sample; the driver requires its outputs to equal the
reference interpreter's bit for bit. Weights are packed as `options.pack` says
("auto": the shortest encoding per tensor; or dense, bitmask, rle, codebook).
The report gets `sim.*`: the simulator's statistics for the first verification
sample (per layer and totals), and `sim.streams`: per weighted layer its
stream's format, bits and payload bytes (`weight_encodings`)."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

from nnc.errors import BlobError
from nnc.ir import Graph
from nnc.pipelines import CANONICAL
from nnc.verification import synthetic_samples

from .. import register_target, run_batched
from .blob import read_blob, write_blob
from .hardware import load_hardware
from .lowering import to_program
from .program import Program, weight_encodings
from .simulator import Simulator


@register_target
class AzSimTarget:
    name = "az-sim"
    base_pipeline = CANONICAL
    quantizes = True

    def __init__(self, options=None):
        self.hw = load_hardware(getattr(options, "hw", None))
        self.pack = getattr(options, "pack", "auto")
        self.program: Program | None = None
        self.blob: bytes | None = None
        self.read_back: Program | None = None
        self.stats = None

    def emit(self, graph: Graph, out_dir: Path, stem: str) -> list[str]:
        path = out_dir / f"{stem}.azb"
        path.write_bytes(self._blob(graph))
        return [path.name]

    def execute(self, graph: Graph, out_dir: Path | None, stem: str, samples, progress=None):
        with self.runner(graph, out_dir, stem) as run_on:
            return run_batched(run_on, samples, progress)

    @contextmanager
    def runner(self, graph: Graph, out_dir: Path | None, stem: str):
        """A simulator of the blob in `out_dir` (or of the graph's blob), decoded
        once; yield `samples -> outputs`. The first run's statistics are kept."""
        data = (out_dir / f"{stem}.azb").read_bytes() if out_dir else self._blob(graph)
        # the bytes this target wrote are read back once, checked by the reader
        program = self._read_back() if self.blob is not None and data == self.blob else read_blob(data)
        simulator = Simulator(program, self.hw)

        def run_on(samples):
            outputs = []
            for sample in samples:
                result, stats = simulator.run(sample)
                outputs.append(result)
                self.stats = self.stats or stats
            return outputs
        yield run_on

    def extras(self, graph: Graph) -> dict:
        """report["sim"]; when nothing ran yet (a compile without verification),
        the static stats of the program as written (whose streams carry the
        values they encode, so the blob is not decoded; verification's runs
        decode it, `runner`), or on a machine whose stats depend on the data,
        those of one synthetic sample."""
        if self.stats is None:
            self._blob(graph)
            simulator = Simulator(self.program, self.hw)
            self.stats = simulator.run(synthetic_samples(graph, 1)[0])[1] if simulator.data_dependent \
                else simulator.static_totals
        sim = self.stats.to_json()
        sim["blob_bytes"] = len(self._blob(graph))
        sim["streams"] = {layer: dict(zip(("format", "bits", "bytes"), encoding))
                          for layer, encoding in self.weight_encodings(graph).items()}
        return {"sim": sim}

    def weight_encodings(self, graph: Graph) -> dict[str, tuple[str, int, int]]:
        """Per weighted layer name: (format name, bits, payload bytes) of its stream."""
        self._blob(graph)
        return weight_encodings(self.program)

    def _blob(self, graph: Graph) -> bytes:
        """The graph's blob, written once (its payloads unchecked: `_read_back`
        decodes them all)."""
        if self.blob is None:
            self.program = to_program(graph, self.pack, self.hw)
            self.blob = write_blob(self.program, check_payloads=False)
        return self.blob

    def _read_back(self) -> Program:
        """The blob this target wrote, read back once: the reader's checks (every
        payload decoded) are the writer's, and its decoded program is what
        verification and `CompileResult.run` simulate."""
        if self.read_back is None:
            try:
                self.read_back = read_blob(self.blob)
            except BlobError as exc:
                raise RuntimeError(f"the blob writer wrote a blob its reader refuses: {exc}") from None
        return self.read_back
