"""Target `c`: portable C99 sources for microcontrollers (DESIGN.md, Backends/C).

`emit` lowers the compiled graph (`lowering.lower`) and writes the files listed
in `emitter`; `execute` builds the emitted library with its test harness using
the host C compiler in a temporary folder and runs it on the verification
samples; `extras` gives the report its `memory` section (arena, naive sum,
lower bound, constant bytes, and per QConv/QGemm layer its weights' (format,
bits, stored bytes)). Integer graphs must match the reference interpreter bit
for bit; float graphs within quality.FLOAT_PARITY. With the option
c_weights="packed", QConv/QGemm weights stay packed in the format `pack` asks
for ("auto": the smallest), decoded by the kernels (ops_packed.py).
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

from nnc import packing
from nnc.errors import OptionError
from nnc.interpreter import run
from nnc.ir import Graph
from nnc.pipelines import CANONICAL
from nnc.verification import synthetic_samples

from .. import register_target, run_batched
from . import emitter
from .emitter import Provenance, prefix_of
from .lowering import Program, lower

# Headers of the C library (C99 and C11) and of the Arm intrinsics the kernels include:
# a model's <stem>.h with one of these names would hide it.
C_HEADER_NAMES = frozenset({
    "assert", "complex", "ctype", "errno", "fenv", "float", "inttypes", "iso646", "limits", "locale", "math",
    "setjmp", "signal", "stdalign", "stdarg", "stdatomic", "stdbool", "stddef", "stdint", "stdio", "stdlib",
    "stdnoreturn", "string", "tgmath", "threads", "time", "uchar", "wchar", "wctype", "arm_acle", "arm_mve"})

# Names make reads as its own input: a model named so has make rebuild the
# Makefile from <stem>.c by an implicit rule, and `make test` fails.
MAKEFILE_NAMES = frozenset({"makefile", "gnumakefile"})
GOLDEN_SAMPLES = 2
# The report says what --c-weights packed would store (memory.packing_hint)
# when a dense compile has QConv/QGemm weights below 8 bits and packing would
# store at most this share of their bytes.
PACKED_HINT_SHARE = 0.9
BUILD_FLAGS = ("-O2",)


@register_target
class CTarget:
    name = "c"
    base_pipeline = CANONICAL
    quantizes = True

    def __init__(self, options=None):
        """`options`: the driver's CompileOptions; the generated files' header
        comments record the pipeline they select, c_weights/pack how the
        weights are stored and c_arrays how weights.h spells them."""
        self.provenance = Provenance(_pipeline(self, options)) if options is not None else Provenance()
        self.pack = options.pack if options is not None and options.c_weights == "packed" else None
        self.strings = options is None or options.c_arrays == "strings"
        if self.pack not in (None, "auto"):
            from . import packed  # the weight codec, for packed weights only

            if self.pack not in packed.FORMATS:
                decoded = ", ".join(packed.FORMATS)
                raise OptionError(f"pack={self.pack!r} is not supported with c_weights='packed' (the C kernels "
                                  f"decode {decoded}; or give pack='auto')",
                                  cli=f"--pack {self.pack} is not supported with --c-weights packed (the C "
                                      f"kernels decode {decoded}; or give --pack auto)")
        self._last: tuple[Graph, str, Program] | None = None

    def program(self, graph: Graph, stem: str) -> Program:
        """The lowered program (kept for the graph it was made from)."""
        prefix = prefix_of(stem)
        if self._last is None or self._last[0] is not graph or self._last[1] != prefix:
            self._last = (graph, prefix, lower(graph, prefix, self.pack))
        return self._last[2]

    def extras(self, graph: Graph) -> dict:
        """The report's `memory` section: arena, naive sum, lower bound, constant
        bytes, and `weights`: layer -> (format, bits, stored bytes)."""
        program = self.program(graph, graph.name)
        storage = program.storage
        memory = {"arena_bytes": storage.arena_bytes, "arena_naive_bytes": storage.naive_bytes,
                  "arena_lower_bound_bytes": storage.lower_bound_bytes,
                  "flash_bytes": emitter.flash_bytes(program), "weights": dict(program.weights)}
        hint = self._packing_hint(graph, program) if self.pack is None else None
        if hint is not None:
            memory["packing_hint"] = hint
        return {"memory": memory}

    @staticmethod
    def _packing_hint(graph: Graph, program: Program) -> dict | None:
        """{"dense_bytes", "packed_bytes"}: the QConv/QGemm weights' bytes as
        int8 arrays and with c_weights="packed", pack="auto", when some
        tensor's values fit fewer than 8 bits and packing saves enough
        (PACKED_HINT_SHARE); else None. (Very sparse int8 layers are already
        stored as lists by dense C; full-range int8 weights skip the measure.)"""
        layers = [n for n in graph.nodes() if n.op in ("QConv", "QGemm") and n.name in program.weights]
        compressed = any(packing.natural_bits(graph.tensor(n.inputs[1]).data, packing.FORMAT_DENSE) < 8
                         for n in layers)
        if not compressed:
            return None
        dense = sum(program.weights[n.name][2] for n in layers)
        with_packing = lower(graph, program.prefix, "auto").weights
        packed = sum(with_packing[n.name][2] for n in layers)
        return {"dense_bytes": dense, "packed_bytes": packed} if packed <= PACKED_HINT_SHARE * dense else None

    def stored_weight_bytes(self, graph: Graph) -> dict[str, int]:
        """{layer: bytes its weights take in flash}: what a weight budget
        (ratio, flash_budget) is checked against."""
        return {layer: encoding[2] for layer, encoding in self.weight_encodings(graph).items()}

    def weight_encodings(self, graph: Graph) -> dict[str, tuple[str, int, int]]:
        """Per weighted layer: (format, bits, stored bytes) of its weights in flash;
        layers the C target keeps as they are (float Conv, ...) report their tensor."""
        from nnc.report import layer_weights

        found = {layer: ("dense", 8 * t.data.itemsize, t.nbytes) for layer, t in layer_weights(graph).items()}
        return found | self.program(graph, graph.name).weights

    def emit(self, graph: Graph, out_dir: Path, stem: str) -> list[str]:
        if stem.lower() in C_HEADER_NAMES:
            said = (f"the model's name {stem!r} would make {stem}.h hide the C header <{stem.lower()}.h> in every "
                    "build that includes the output folder; give another")
            raise OptionError(f"{said} name", cli=f"{said} --name")
        if stem.lower() in MAKEFILE_NAMES:
            said = (f"the model's name {stem!r} would make make rebuild the Makefile from {stem}.c (an implicit "
                    "rule) and `make test` fail; give another")
            raise OptionError(f"{said} name", cli=f"{said} --name")
        samples = synthetic_samples(graph, GOLDEN_SAMPLES)
        return self._write(graph, out_dir, stem, samples, "synthetic inputs (seed 0)")

    def _write(self, graph: Graph, out_dir: Path, stem: str, samples, note: str) -> list[str]:
        expected = [run(graph, s) for s in samples]
        return emitter.write(self.program(graph, stem), Path(out_dir), stem, self.provenance, samples,
                             expected, note, self.strings)

    def execute(self, graph: Graph, out_dir: Path | None, stem: str, samples, progress=None):
        """The outputs of the emitted C on `samples`; the golden test of `out_dir`
        takes the first GOLDEN_SAMPLES of them."""
        if out_dir is not None:
            golden = samples[:GOLDEN_SAMPLES]
            (Path(out_dir) / f"{stem}_golden.h").write_text(
                emitter.golden(self.program(graph, stem), stem, golden, [run(graph, s) for s in golden],
                               f"the first {len(golden)} verification sample(s)"), encoding="utf-8")
        with self.runner(graph, out_dir, stem) as run_on:
            return run_batched(run_on, samples, progress)

    @contextmanager
    def runner(self, graph: Graph, out_dir: Path | None, stem: str):
        """Build the emitted library (emitted afresh when `out_dir` is None) and its
        harness once, in a temporary folder; yield `samples -> outputs`."""
        import tempfile

        from . import build  # runs gcc (subprocess): not needed to write the C

        with tempfile.TemporaryDirectory(prefix="nnc-c-") as tmp:
            work = Path(tmp)
            if out_dir is None:
                out_dir = work / "src"
                out_dir.mkdir()
                self.emit(graph, out_dir, stem)
            exe = build.compile_c([Path(out_dir) / f"{stem}.c", Path(out_dir) / f"{stem}_test.c"],
                                  work / f"{stem}_test", BUILD_FLAGS, include=Path(out_dir))
            yield lambda samples: build.run_harness(exe, graph, samples, work)


def _pipeline(target, options) -> str:
    """The pipeline the driver runs for `options` (as report["pipeline"] prints
    it), with each absolute path among the pass options cut to its file name:
    generated files name no folder of the machine that made them."""
    from nnc.compile_options import default_pipeline
    from nnc.passmanager import format_pipeline, parse_pipeline, without_folders

    text = default_pipeline(target, options) if options.pipeline is None else options.pipeline
    return without_folders(format_pipeline(parse_pipeline(text)))
