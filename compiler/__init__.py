"""nnc: a compiler-style model compression toolchain.

Public API (a contract; see README.md):
    load(path, input_shapes=None) -> Graph      ONNX (or .nnir) front end, no optimization
    print_ir(graph) -> str, parse_ir(text) -> Graph
    run(graph, inputs) -> dict[str, ndarray]    reference interpreter
    compile(model, target=..., output_dir=..., **options) -> CompileResult
        (options: CompileOptions; calib/inputs/labels as paths or arrays;
        CompileResult.run(samples) runs the compiled artifact)
    simulate(blob, inputs, hw=None) -> (outputs, stats)   az-sim simulator
    Simulator(blob, hw=None).run(inputs)        the same, the blob decoded once
    validate(model, data, labels=None, target=..., **options) -> CompileResult
                                                accuracy through a target
Every error caused by bad input derives from NncError.
"""

__version__ = "0.1.0"

import importlib as _importlib

# Public names -> the module defining them, imported on first use so that
# `import nnc` (and `nnc --version`) does not load onnx, numpy or the passes.
_EXPORTS = {
    "CompileResult": "driver", "CompileOptions": "compile_options", "compile": "driver",
    "BlobError": "errors", "IRError": "errors", "ModelError": "errors", "NncError": "errors",
    "NncWarning": "errors", "OptionError": "errors", "QualityGateError": "errors", "ShapeError": "errors",
    "TrainingError": "errors", "UnsupportedError": "errors", "VerificationError": "errors",
    "Graph": "ir", "Node": "ir", "QuantParams": "ir", "Tensor": "ir",
    "parse_ir": "textir", "print_ir": "textir", "validate": "validation", "verify": "verifier",
}


def __getattr__(name: str):
    """A public name (imported from its module on first use), or a submodule
    (`nnc.driver` after a bare `import nnc`)."""
    module = _EXPORTS.get(name)
    if module is not None:
        value = getattr(_importlib.import_module(f".{module}", __name__), name)
        globals()[name] = value
        return value
    try:
        return _importlib.import_module(f".{name}", __name__)
    except ModuleNotFoundError as exc:
        if exc.name != f"{__name__}.{name}":
            raise
        raise AttributeError(f"module 'nnc' has no attribute {name!r}") from None


def __dir__() -> list[str]:
    """The public names, also those not imported yet (for help() and completion)."""
    return sorted({"__version__", "load", "run", "simulate", "Simulator", *_EXPORTS})


def load(path, input_shapes=None):
    """The graph of an ONNX model, or of a text IR file (.nnir, as `nnc compile
    --target ir` and `nnc finetune` write), through the front end without
    optimization; `input_shapes` binds an ONNX model's symbolic dims."""
    from .frontend.model_file import load_model_file

    return load_model_file(path, input_shapes)


def run(graph, inputs):
    """The reference interpreter: `graph` (a Graph, e.g. from `load`) run on
    `inputs` ({input name: array}); returns {output name: array}. Inputs are
    checked as every entry point checks samples (nnc.verification.conform: a
    dtype cast only where no value changes, float values finite)."""
    from collections.abc import Mapping

    from .errors import OptionError, ShapeError
    from .interpreter import run as interpret
    from .ir import Graph
    from .verification import conform

    if not isinstance(graph, Graph):
        raise OptionError(f"nnc.run takes a Graph (nnc.load(path) makes one), not {type(graph).__name__}")
    if not isinstance(inputs, Mapping):
        raise ShapeError(f"nnc.run takes inputs as {{input name: array}}, not {type(inputs).__name__}")
    checked = {name: conform(value, graph.tensors[name].dtype, name, f"input {name!r}")
               if name in graph.inputs else value for name, value in inputs.items()}
    return interpret(graph, checked)


def Simulator(blob, hw=None):
    """An az-sim blob (path or bytes) decoded once: `.run(inputs)` returns
    (outputs, stats) as `simulate` does, without decoding the blob again."""
    from nnc.backends.azsim.api import BlobRunner

    return BlobRunner(blob, hw)


def simulate(blob, inputs, hw=None):
    """Run an az-sim blob (path or bytes) on inputs (arrays by name, or an .npz
    path); returns (outputs, stats). See nnc.backends.azsim.api.simulate."""
    from nnc.backends.azsim.api import simulate as simulate_blob

    return simulate_blob(blob, inputs, hw)


__all__ = sorted([*_EXPORTS, "Simulator", "run", "simulate", "__version__"])
