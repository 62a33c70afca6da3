"""Building the twin of a model: `prepare(model, compression, calib=...)`.

The model (an ONNX or .nnir path, or a float Graph) is loaded and cleaned up
as `nnc compile` does up to the layout pass (PRE_LAYOUT); the twin's weight quantizers and
activation ranges start where nnc's one-shot quantization would put them,
measured on the calibration samples. The float model before any compression
is kept as `twin.teacher` (mode "float", frozen, not a submodule).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from nnc.errors import UnsupportedError
from nnc.frontend.onnx_loader import load
from nnc.ir import Graph
from nnc.layer_select import weighted_layers
from nnc.passmanager import PassManager, parse_pipeline
from nnc.textir import parse_ir, print_ir

from .compression import Compression, plans
from .data import Source, load_batch
from .twin import Twin

PRE_LAYOUT = "remove-identity,canonicalize,fold-constants,fold-batchnorm,fuse-bias,fuse-activation,canonicalize"


def prepare(model: str | Path | Graph, compression: Compression | None = None, *, calib: Source,
            input_shapes: dict[str, tuple[int, ...]] | None = None, mode: str = "train") -> Twin:
    """The calibrated twin of `model` under `compression` (default: int8)."""
    compression = compression or Compression()
    graph = _fold_gemm_scalars(PassManager(parse_pipeline(PRE_LAYOUT)).run(_float_graph(model, input_shapes)))
    teacher = Twin(graph.copy())
    twin = Twin(graph, *plans(graph, compression))
    batch = {name: torch.from_numpy(x).float() for name, x in load_batch(calib, graph, "calib").items()}
    twin.calibrate(batch)
    object.__setattr__(twin, "teacher", teacher.eval().requires_grad_(False))  # not a submodule
    return twin.set_mode(mode)


def save(graph: Graph, path: str | Path) -> Path:
    """Write `graph` as text IR (the form `nnc compile` reads back exactly)."""
    path = Path(path)
    path.write_text(print_ir(graph))
    return path


def _fold_gemm_scalars(graph: Graph) -> Graph:
    """Gemm's alpha into its weights and beta into its bias (both then 1), as the
    quantizer does before quantizing them, so the twin trains what is stored."""
    for node in weighted_layers(graph):
        attrs = node.attrs
        if node.op != "Gemm" or (attrs.alpha == 1.0 and attrs.beta == 1.0):
            continue
        inputs = list(node.inputs)
        for position, factor in ((1, attrs.alpha), (2, attrs.beta)):
            if position < len(inputs) and inputs[position]:
                value = graph.constant(inputs[position]) * np.float32(factor)
                inputs[position] = graph.add_constant(graph.unique_tensor_name(f"{inputs[position]}.folded"),
                                                      value.astype(np.float32)).name
        graph.set_inputs(node, inputs)
        node.attrs = dataclasses.replace(attrs, alpha=1.0, beta=1.0)
    return graph


def _float_graph(model: str | Path | Graph, input_shapes) -> Graph:
    if isinstance(model, Graph):
        graph = model.copy()
    elif str(model).endswith(".nnir"):
        graph = parse_ir(Path(model).read_text())
    else:
        graph = load(model, input_shapes)
    quantized = [n.name for n in graph.nodes() if n.op in ("QuantizeLinear", "DequantizeLinear")]
    if quantized:
        raise UnsupportedError(f"training starts from a float model; node {quantized[0]!r} is already quantized")
    return graph
