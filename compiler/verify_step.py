"""The verification step of a compile: the compiled graph's reference outputs
against the target's artifact (bit-exact on integer graphs, within a bound
where the target states one) and against the float truth (onnxruntime on the
model file), with the accuracy metrics of compiler/accuracy.py.

`verify` and `verify_streaming` return the report's `verification` entry and
the samples they ran; a parity failure is a VerificationError.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import numpy as np

from . import quality, streaming
from .accuracy import class_axes, output_kind, output_metrics
from .errors import ModelError, ShapeError, VerificationError
from .frontend.model_file import is_text_ir
from .interpreter import run
from .ir import Graph
from .passmanager import parse_pipeline
from .quality import FLOAT_PARITY
from .verification import compare, load_samples, onnxruntime_outputs, read_arrays, synthetic_samples

if TYPE_CHECKING:
    from .compile_options import CompileOptions

Progress = Callable[[str], None]


def verification_warnings(report: dict, original: Graph, opts: CompileOptions) -> list[str]:
    verification, found = report["verification"], []
    steep = sorted({node.op for node in original.nodes() if node.op in quality.STEEP_OPS})
    found += filter(None, [quality.layer_error_warning(report["layers"]),
                           quality.output_cosine_warning(verification, steep),
                           quality.top1_agreement_warning(verification)])
    if opts.labels is not None and output_kind(original, original.outputs[0], False) == "regression":
        found.append(f"labels given for output {original.outputs[0]!r}, which looks like a regression output "
                     "(its shape is an input's); top-1 may mean nothing")
    if verification["float_truth"] != "onnxruntime" and not is_text_ir(report["model"]["file"]):
        found.append(f"vs_float compares with {verification['float_truth']}")
    if verification.get("float_non_finite"):
        found.append(f"the float model's outputs ({verification['float_truth']}) hold NaN or infinity on "
                     f"{verification['float_non_finite']} of {verification['samples']} verification samples "
                     "(a Sqrt or Log of a negative value, a division by 0?): the comparison with float counts only "
                     "the finite values")
    if verification["source"] == "synthetic":
        found.append(f"verified on {verification['samples']} synthetic random samples; give inputs or calib "
                     "(--inputs, --calib) for real ones")
    return found


def verify(model, original: Graph, graph: Graph, opts: CompileOptions, execute, parity_lsb: int | None = 0,
            say: Progress = lambda message: None) -> dict:
    """Reference (compiled IR) vs target artifact: on integer graphs bit-exact, or
    within `parity_lsb` steps of each output's grid (None: the target bounds each
    layer itself), within FLOAT_PARITY of the output range on float ones, or
    VerificationError.
    Reference vs onnxruntime on the original model: reported, overall and per
    output (compiler/accuracy.py, with accuracy when labels are given).
    Returns the verification report and the samples."""
    samples, source = _verification_samples(original, opts)
    say(f"float truth on {len(samples)} sample(s)")
    truth, truth_source = _float_truth(model, original, samples)
    say(f"reference interpreter on {len(samples)} sample(s)")
    reference = [run(graph, s) for s in samples]
    if opts.target != "ir":
        say(f"running the {opts.target} output on {len(samples)} sample(s)")
    produced = execute(samples) if opts.target != "ir" else None
    vs_reference = compare(reference, produced if produced is not None else reference)
    compiled = produced if produced is not None else reference
    vs_reference["max_abs_diff_lsb"] = _max_lsb(graph, reference, compiled) if is_integer_graph(graph) else None
    _check_parity(graph, vs_reference, reference, parity_lsb=parity_lsb)
    axes = class_axes(original)
    outputs = _output_metrics(original, truth, compiled, opts, axes)
    vs_float = compare(truth, compiled, axes)
    if all(m["kind"] == "regression" for m in outputs.values()):
        vs_float["top1_agreement"] = None
    return {"samples": len(samples), "source": source, "executed": produced is not None,
            "vs_reference": vs_reference, "vs_float": vs_float, "float_truth": truth_source,
            "float_non_finite": _non_finite(truth), "outputs": outputs}, samples


def _non_finite(samples: list[dict[str, np.ndarray]]) -> int:
    """How many samples have an output holding NaN or infinity."""
    return sum(not all(np.isfinite(v).all() for v in s.values()) for s in samples)


def _output_metrics(original: Graph, truth, compiled, opts: CompileOptions, axes: dict[str, int]) -> dict:
    """Per output: compiler/accuracy.py's metrics, classes on `axes` (class_axes);
    the labels (if any) belong to the first output."""
    labels = None
    if opts.labels is not None:
        arrays = read_arrays(opts.labels, "labels")
        if len(arrays) != 1:
            raise ShapeError(f"{opts.labels}: expected one array of class ids, found {len(arrays)}")
        labels = next(iter(arrays.values()))
    metrics = {}
    for i, name in enumerate(original.outputs):
        labelled = labels is not None and i == 0
        kind = output_kind(original, name, labelled)
        metrics[name] = output_metrics(truth, compiled, name, kind, labels if labelled else None, opts.top_k,
                                       axes.get(name))
    return metrics


def verify_streaming(model, whole_original: Graph, whole: Graph, chunk: Graph, opts: CompileOptions, execute):
    """A streaming compile's verification: the chunk graph run chunk by chunk
    (reference interpreter) must equal the whole-sequence graph bit for bit, and
    the target must equal the reference on every chunk (states included)."""
    samples, source = _verification_samples(whole_original, opts)
    truth, truth_source = _float_truth(model, whole_original, samples)
    axes = streaming.time_axes(whole_original, chunk, list(opts.stream))
    chunk_inputs, chunk_reference, joined = [], [], []
    for sample in samples:
        inputs, outputs = streaming.run_chunks(chunk, streaming.split(sample, axes, chunk), run)
        chunk_inputs += inputs
        chunk_reference += outputs
        joined.append(streaming.join(whole, chunk, outputs))
    whole_reference = [run(whole, s) for s in samples]
    vs_whole = compare(whole_reference, joined)
    vs_whole["max_abs_diff_lsb"] = _max_lsb(whole, whole_reference, joined) if is_integer_graph(chunk) else None
    try:
        _check_parity(chunk, vs_whole, whole_reference,
                      "running chunk by chunk differs from one run over the whole sequence")
    except VerificationError as exc:
        cause = _unstreamable_cause(whole, chunk, samples, axes, whole_reference, joined)
        raise VerificationError(f"the model is not streamable as it stands: {exc}; {cause}") from None
    produced = execute(chunk_inputs) if opts.target != "ir" else None
    compiled = produced if produced is not None else chunk_reference
    vs_reference = compare(chunk_reference, compiled)
    vs_reference["max_abs_diff_lsb"] = _max_lsb(chunk, chunk_reference, compiled) if is_integer_graph(chunk) else None
    _check_parity(chunk, vs_reference, chunk_reference)
    return {"samples": len(samples), "chunks": len(chunk_inputs), "source": source,
            "executed": produced is not None, "vs_reference": vs_reference, "vs_whole_sequence": vs_whole,
            "vs_float": compare(truth, joined, class_axes(whole_original)), "float_truth": truth_source,
            "float_non_finite": _non_finite(truth)}, chunk_inputs


def _unstreamable_cause(whole: Graph, chunk: Graph, samples, axes, whole_reference, joined) -> str:
    """What makes chunk by chunk differ from the whole sequence, found on the
    first sample that differs (streaming.first_mixing_node)."""
    index = next((i for i, (w, j) in enumerate(zip(whole_reference, joined))
                  if any(not np.array_equal(w[k], j[k]) for k in w)), 0)
    node = streaming.first_mixing_node(whole, chunk, samples[index], axes)
    if node is None:
        return ("an output is neither the last chunk's nor the chunks' joined (say a mean over time), which "
                "running chunk by chunk cannot give")
    return (f"layer {node.name!r} ({node.op}) is the first whose output differs: over a chunk it reads frames "
            "outside the chunk (a convolution, pooling or mean over time mixes frames), and only recurrent layers "
            "carry the frames before a chunk in their states")


def _float_truth(model, original: Graph, samples) -> tuple[list, str]:
    """The float model's outputs and where they come from: onnxruntime on the
    model file, or, where onnxruntime cannot run it (LSTM with layout 1, say),
    nnc's reference interpreter on the graph as loaded, before any pass (also for
    a text IR file, which onnxruntime cannot read)."""
    if is_text_ir(model):
        return [run(original, s) for s in samples], "nnc's reference interpreter on the text IR as loaded"
    try:
        return onnxruntime_outputs(model, samples, original.outputs), "onnxruntime"
    except ModelError as exc:
        return [run(original, s) for s in samples], f"nnc's float reference interpreter ({exc})"


def _verification_samples(graph: Graph, opts: CompileOptions):
    """The samples verification runs: --inputs, else --calib, else the calibration
    file a --pipeline names (a pass's `calib` option), else synthetic ones."""
    for path in (opts.inputs, opts.calib, _pipeline_calib(opts.pipeline)):
        if path:
            return load_samples(path, graph), str(path)
    return synthetic_samples(graph, opts.synthetic_samples), "synthetic"


def _pipeline_calib(pipeline: str | None) -> str | None:
    """The first `calib` file a user's pipeline gives one of its passes."""
    for step in parse_pipeline(pipeline) if pipeline else []:
        if getattr(step, "calib", ""):
            return step.calib
    return None


def _check_parity(graph: Graph, metrics: dict, reference,
                  what: str = "the target's outputs differ from the reference interpreter",
                  parity_lsb: int | None = 0) -> None:
    """Bit-exact (or within `parity_lsb` LSB; None: unbounded) on integer graphs,
    within FLOAT_PARITY of the output range on float ones."""
    if metrics.get("non_finite"):
        raise VerificationError(f"{what}: NaN or infinity at {metrics['non_finite']} output value(s) where the "
                                "reference's are finite")
    if is_integer_graph(graph):
        lsb = metrics.get("max_abs_diff_lsb", metrics["max_abs_diff"])
        if not metrics["bit_exact"] and parity_lsb is not None and lsb > parity_lsb:
            allowed = "they must be bit-exact" if parity_lsb == 0 else f"at most {parity_lsb} allowed"
            raise VerificationError(f"{what} by up to {lsb:g} LSB ({allowed})")
        return
    scale = max(1.0, max(float(np.max(np.abs(v), initial=0.0)) for s in reference for v in s.values()))
    if metrics["max_abs_diff"] > FLOAT_PARITY * scale:
        raise VerificationError(f"{what} by {metrics['max_abs_diff']:g} (float outputs; allowed "
                                f"{FLOAT_PARITY:g} x {scale:g})")


def _max_lsb(graph: Graph, reference, compiled) -> float:
    """The largest output difference in steps of each output's grid: 1 for an
    integer output, the scale of the DequantizeLinear that produces a float one."""
    worst = 0.0
    for name in graph.outputs:
        producer = graph.producer(name)
        step = 1.0
        if producer is not None and producer.op == "DequantizeLinear" and graph.constant(producer.inputs[1]).size == 1:
            step = float(graph.constant(producer.inputs[1]).reshape(-1)[0])
        for ref, got in zip(reference, compiled):
            diff = np.abs(np.asarray(ref[name], np.float64) - np.asarray(got[name], np.float64)) / step
            worst = max(worst, float(np.rint(np.max(diff, initial=0.0))))
    return worst


def is_integer_graph(graph: Graph) -> bool:
    """True when every op that computes (not DequantizeLinear at an output) works on integers."""
    return not any(graph.tensor(out).dtype in ("f32", "f64") for node in graph.nodes()
                   if node.op != "DequantizeLinear" for out in node.outputs if out)
