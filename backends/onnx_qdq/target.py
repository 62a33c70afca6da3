"""Target `onnx`: the compiled model as standard QDQ ONNX (`<name>.onnx`).

The pipeline is the canonical one without the layout pass (ONNX's spatial ops
are channels first), then the compression passes, then the quantize pass
stopped before lowering (`lower=false`): the graph is in QDQ form, every
activation between QuantizeLinear and DequantizeLinear at nnc's scales and
zero points, every weight and bias an integer initializer behind a
DequantizeLinear (writer.py, docs/onnx-export.md). Recurrent layers, which
have no QDQ form, are written as the integer form's ops between the
QuantizeLinear and DequantizeLinear around them
(integer_writer.recurrent_islands).

The integer graph that `c` and `az-sim` compile is this graph lowered
(`reference_graph`); it is what the reference interpreter runs and the report
describes. Verification runs the written file in onnxruntime with graph
optimizations off (plain DequantizeLinear -> float op -> QuantizeLinear
semantics) and requires every layer, given onnxruntime's own inputs, within
PARITY_LSB of nnc's integer op (layer_parity.py); the outputs' difference is
reported (`verification.vs_reference.max_abs_diff_lsb`), not bounded, since
a one-step rounding difference can grow through later layers. The report gets
`onnx.*`: the form, the opset and the per-layer check's result.

`--onnx-form integer` (options.onnx_form) writes the integer graph instead,
as ONNX integer arithmetic (integer_writer.py); its outputs must equal nnc's
reference bit for bit (`parity_lsb` 0: the driver raises VerificationError
otherwise). A float graph (--no-quantize) is written the same in both forms.
"""

from __future__ import annotations

import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import ClassVar

import onnx

from nnc.errors import OptionError, VerificationError
from nnc.ir import Graph
from nnc.quantizer import lower

from .. import register_target, run_batched
from .integer_writer import recurrent_islands, to_integer_onnx
from .layer_parity import LayerParity, compare_layers, probed_model
from .writer import OPSET, qdq_model

# The canonical pipeline (nnc.pipelines.CANONICAL) without its layout pass.
QDQ_PIPELINE = "remove-identity,canonicalize,fold-constants,fold-batchnorm,fuse-bias,fuse-activation,canonicalize"
PARITY_LSB = 1
QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")


@register_target
class OnnxTarget:
    name = "onnx"
    base_pipeline = QDQ_PIPELINE
    quantizes = True
    quantize_options: ClassVar[dict] = {"lower": False}  # the driver adds them to the default pipeline's quantize pass
    parity_lsb = None  # the driver bounds no output: `execute` bounds each layer

    def __init__(self, options=None):
        if getattr(options, "stream", None):
            why = "is not available for target onnx (it writes the whole-sequence model)"
            raise OptionError(f"stream {why}", cli=f"--stream {why}")
        self.form = getattr(options, "onnx_form", "qdq")
        if self.form == "integer":
            self.parity_lsb = 0  # the integer form is bit-exact at the outputs
        self.parity: LayerParity | None = None
        self.half_way_pools: dict[str, bool] = {}

    def reference_graph(self, graph: Graph) -> Graph:
        """The integer graph a graph in QDQ form stands for (a float graph, from
        --no-quantize, stands for itself)."""
        if not any(node.op in QDQ_OPS for node in graph.nodes()):
            return graph
        lowered = graph.copy()
        lower(lowered)
        return lowered

    def model(self, graph: Graph) -> onnx.ModelProto:
        """The ONNX model of `graph` (in QDQ form) in this target's form; for the
        QDQ form, records which pools with half-way means it wrote exactly."""
        if self.form == "integer":
            reference = self.reference_graph(graph)
            if reference is not graph:
                return to_integer_onnx(reference)
        model, self.half_way_pools = qdq_model(*recurrent_islands(graph))
        return model

    def emit(self, graph: Graph, out_dir: Path, stem: str) -> list[str]:
        path = out_dir / f"{stem}.onnx"
        write_model(self.model(graph), path)
        return [path.name]

    def execute(self, graph: Graph, out_dir: Path | None, stem: str, samples, progress=None):
        """onnxruntime's outputs of the written file on each sample; for a
        quantized graph in QDQ form each layer is checked against nnc's integer
        op too (VerificationError past PARITY_LSB). The integer form is checked
        at the outputs only, by the driver (`parity_lsb` 0)."""
        reference = self.reference_graph(graph)
        if reference is graph or self.form == "integer":
            with self.runner(graph, out_dir, stem) as run_on:
                return run_batched(run_on, samples, progress)
        model = onnx.load(str(out_dir / f"{stem}.onnx")) if out_dir is not None else self.model(graph)
        probed, shared = probed_model(reference, model)
        session, names, parity = _session(probed.SerializeToString()), [*graph.outputs, *shared], LayerParity()

        def run_on(batch):
            held = [dict(zip(names, _run(session, names, sample))) for sample in batch]
            for sample, values in zip(batch, held):
                compare_layers(reference, sample, values, parity)
            return [{name: values[name] for name in graph.outputs} for values in held]

        outputs = run_batched(run_on, samples, progress)
        self.parity = parity
        _check_layers(parity)
        return outputs

    @contextmanager
    def runner(self, graph: Graph, out_dir: Path | None, stem: str):
        """onnxruntime on the written file (written to a temporary folder when
        there is no out_dir): `samples -> outputs`."""
        with tempfile.TemporaryDirectory(prefix="nnc-onnx-") as scratch:
            path = Path(out_dir or scratch) / f"{stem}.onnx"
            if out_dir is None:
                write_model(self.model(graph), path)
            session = _session(path)
            yield lambda samples: [dict(zip(graph.outputs, _run(session, graph.outputs, s))) for s in samples]

    def extras(self, graph: Graph) -> dict:
        """`onnx.form` and `onnx.opset`; `onnx.half_way_pools` when the QDQ form
        has average pools whose means can be half-way (`rewritten` to round them
        as nnc does, or written `as_given`: onnxruntime's rounding there may be a
        step from nnc's); after verification of the QDQ form
        `onnx.layers_checked` and `onnx.max_layer_diff_lsb` (the per-layer
        check's tensors and worst step)."""
        found = {"form": self.form, "opset": OPSET}
        if self.half_way_pools:
            found["half_way_pools"] = {"rewritten": sorted(n for n, done in self.half_way_pools.items() if done),
                                       "as_given": sorted(n for n, done in self.half_way_pools.items() if not done)}
        if self.parity is not None:
            worst = self.parity.worst()
            found |= {"layers_checked": len(self.parity.lsb), "max_layer_diff_lsb": worst[1] if worst else 0.0}
        return {"onnx": found}


def write_model(model: onnx.ModelProto, path: Path) -> None:
    """`model` at `path`, checked by onnx.checker with full shape inference."""
    onnx.checker.check_model(model, full_check=True)
    path.write_bytes(model.SerializeToString())


def _check_layers(parity: LayerParity) -> None:
    worst = parity.worst()
    if worst is not None and worst[1] > PARITY_LSB:
        tensor, lsb = worst
        raise VerificationError(f"onnxruntime's {parity.ops[tensor]} layer producing {tensor!r} differs from nnc's "
                                f"integer op on the same inputs by {lsb:g} LSB (at most {PARITY_LSB} allowed)")


def _session(model: Path | bytes):
    """An onnxruntime session with graph optimizations off: the plain QDQ semantics."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(model if isinstance(model, bytes) else str(model), options,
                                    providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types
        raise VerificationError(f"onnxruntime cannot load the written model: {_first_line(exc)}") from None


def _run(session, names: list[str], sample: dict) -> list:
    try:
        return session.run(names, sample)
    except Exception as exc:  # e.g. a kernel onnxruntime lacks for a type
        raise VerificationError(f"onnxruntime cannot run the written model: {_first_line(exc)}") from None


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
