"""nnc: a compiler-style model compression toolchain.

Public API (a contract; see README.md):
    load(path, input_shapes=None) -> Graph      ONNX front end, no optimization
    print_ir(graph) -> str, parse_ir(text) -> Graph
    run(graph, inputs) -> dict[str, ndarray]    reference interpreter
    compile(model, target=..., output_dir=..., **options) -> CompileResult
    simulate(blob, inputs, hw=None) -> (outputs, stats)   az-sim simulator
    validate(model, data, labels=None, target=..., **options) -> CompileResult
                                                accuracy through a target
Every error caused by bad input derives from NncError.
"""

__version__ = "0.1.0"

from .driver import CompileResult, compile  # noqa: E402
from .errors import (  # noqa: E402
    BlobError,
    IRError,
    ModelError,
    NncError,
    OptionError,
    QualityGateError,
    ShapeError,
    UnsupportedError,
    VerificationError,
)
from .frontend.onnx_loader import load  # noqa: E402
from .interpreter import run  # noqa: E402
from .ir import Graph, Node, QuantParams, Tensor  # noqa: E402
from .textir import parse_ir, print_ir  # noqa: E402
from .validate import validate  # noqa: E402
from .verifier import verify  # noqa: E402


def simulate(blob, inputs, hw=None):
    """Run an az-sim blob (path or bytes) on inputs (arrays by name, or an .npz
    path); returns (outputs, stats). See nnc.backends.azsim.api.simulate."""
    from nnc.backends.azsim.api import simulate as simulate_blob

    return simulate_blob(blob, inputs, hw)

__all__ = [
    "BlobError", "CompileResult", "Graph", "IRError", "ModelError", "NncError", "Node", "OptionError",
    "QualityGateError", "QuantParams", "ShapeError", "Tensor", "UnsupportedError", "VerificationError", "compile", "load",
    "parse_ir", "print_ir", "run", "simulate", "validate", "verify", "__version__",
]
