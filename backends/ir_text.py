"""Target `ir`: writes the optimized graph as text IR (`<name>.nnir`), which
`nnc.parse_ir` reads back into an executable graph. It has no executable
artifact of its own: verification compares the reference interpreter on the
compiled graph with onnxruntime on the original model."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

from nnc.interpreter import run
from nnc.ir import Graph
from nnc.pipelines import CANONICAL
from nnc.textir import print_ir

from . import register_target


@register_target
class IrTarget:
    name = "ir"
    base_pipeline = CANONICAL
    quantizes = False

    def __init__(self, options=None):
        pass

    def emit(self, graph: Graph, out_dir: Path, stem: str) -> list[str]:
        path = out_dir / f"{stem}.nnir"
        path.write_text(print_ir(graph), encoding="utf-8")
        return [path.name]

    def execute(self, graph: Graph, out_dir: Path | None, stem: str, samples, progress=None):
        return None

    @contextmanager
    def runner(self, graph: Graph, out_dir: Path | None, stem: str):
        """The reference interpreter on the compiled graph: `samples -> outputs`."""
        yield lambda samples: [run(graph, s) for s in samples]

    def extras(self, graph: Graph) -> dict:
        return {}
