"""Target `ir`: writes the optimized graph as text IR (`<name>.nnir`), which
`nnc.parse_ir` reads back into an executable graph. It has no executable
artifact of its own: verification compares the reference interpreter on the
compiled graph with onnxruntime on the original model."""

from __future__ import annotations

from pathlib import Path

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

    def execute(self, graph: Graph, out_dir: Path | None, stem: str, samples):
        return None

    def extras(self, graph: Graph) -> dict:
        return {}
