"""The nine MLPerf Tiny models through CANONICAL + quantize, calibrated on their
sample (NAME.io.npz, array `input`).

QDQ models keep their parameters, so they are held to onnxruntime with graph
optimizations off (`output_ort_noopt`):
- per op, within 1 LSB (docs/numerics.md §10): every integer op, fed the 8-bit
  inputs that the QDQ reference computes, gives the reference's 8-bit output to
  1 LSB. The QDQ reference (nnc's interpreter on the un-quantized graph) equals
  onnxruntime on every model output checked here.
- end to end, on the sample: a 1-LSB tie at one op can move the next ops by a
  LSB or more, and softmax outputs amplify logit differences (MANIFEST.md sees
  32–63 LSB between TFLite's own kernels on ic_resnet8). Measured on the
  sample: 0 LSB for ad, kws, sww and vww, 2 LSB for ic_resnet8 (an
  AveragePool tie, 1 LSB, grows to 3 LSB at the dense layer's logits and 2 LSB
  after the softmax). The bounds below allow that, and 1 LSB for the others.

Float models: the dequantized output's cosine similarity with the float output
is at least 0.99 (acceptance criterion); with synthetic calibration they still
compile to a verified integer graph (with a warning).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from mlperf import MODEL_NAMES, MODELS_DIR, requires_models
from nnc.verify_step import is_integer_graph
from nnc.errors import NncWarning
from nnc.frontend.onnx_loader import load
from nnc.interpreter import run
from nnc.ops import get_op
from nnc.passmanager import PassManager, parse_pipeline
from nnc.pipelines import CANONICAL
from nnc.summary import summarize
from nnc.verification import load_samples, synthetic_samples
from nnc.verifier import verify

pytestmark = requires_models
QDQ = [m for m in MODEL_NAMES if "_qdq" in m]
FLOAT = [m for m in MODEL_NAMES if "_qdq" not in m]
END_TO_END_LSB = {"ic_resnet8_int8_qdq": 2}  # others: 1 (see the module docstring)


def compile_model(name: str, options: str):
    """(float graph after CANONICAL, quantized graph, NncWarnings raised)."""
    graph = PassManager(parse_pipeline(CANONICAL)).run(load(MODELS_DIR / f"{name}.onnx"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", NncWarning)
        result = PassManager(parse_pipeline(f"quantize{{{options}}}"), verify_each=True).run(graph.copy())
    verify(result)
    assert is_integer_graph(result)
    assert result.inputs == graph.inputs and result.outputs == graph.outputs
    _check_recorded_params(result)
    few_samples = "real samples may not cover"  # the MLPerf sample files hold one sample: expected
    return graph, result, [w for w in caught if issubclass(w.category, NncWarning) and few_samples not in str(w.message)]


def _check_recorded_params(graph) -> None:
    for tensor in graph.tensors.values():
        if tensor.dtype in ("i8", "u8") and not tensor.is_constant:
            assert tensor.quant is not None and tensor.quant.axis is None, tensor.name
    for node in graph.nodes():
        if node.op in ("QConv", "QGemm"):
            channels = graph.tensor(node.inputs[1]).shape[0]
            for t in node.inputs[1:3]:
                shared = len(graph.consumers(t)) > 1 if t else False  # see emit.constant
                assert not t or shared or len(graph.tensor(t).quant.scale) == channels


def calib(name: str) -> str:
    return f'calib="{MODELS_DIR / f"{name}.io.npz"}"'


def per_op_lsb(reference, quantized, samples) -> int:
    """Largest difference of any integer op fed the reference's 8-bit inputs."""
    worst = 0
    for sample in samples:
        env = {}
        run(reference, sample, observe=env.__setitem__)
        for node in quantized.nodes():
            args = [None if not t else quantized.tensor(t).data if quantized.tensor(t).is_constant else env.get(t)
                    for t in node.inputs]
            expected = env.get(node.outputs[0])
            if expected is None or expected.dtype.kind not in "iu" or any(
                    a is None and t for a, t in zip(args, node.inputs)):
                continue
            (got,) = get_op(node.op).evaluate(node.attrs, args)
            worst = max(worst, int(np.max(np.abs(got.astype(int) - expected.astype(int)))))
    return worst


@pytest.mark.parametrize("name", QDQ)
def test_qdq_model(name):
    graph, result, caught = compile_model(name, calib(name))
    assert not caught  # fully quantized: nothing to calibrate
    before, after = summarize(graph).totals, summarize(result).totals
    assert (after["params"], after["param_bytes"]) == (before["params"], before["param_bytes"])  # reused
    data = np.load(MODELS_DIR / f"{name}.io.npz")
    samples = load_samples(MODELS_DIR / f"{name}.io.npz", graph)
    assert np.array_equal(run(graph, samples[0])[graph.outputs[0]], data["output_ort_noopt"])
    got = run(result, samples[0])[result.outputs[0]]
    lsb = int(np.max(np.abs(got.astype(int) - data["output_ort_noopt"].astype(int))))
    assert lsb <= END_TO_END_LSB.get(name, 1)
    assert per_op_lsb(graph, result, samples + synthetic_samples(graph, 3, seed=5)) <= 1


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.mark.parametrize("name", FLOAT)
def test_float_model(name):
    graph, result, caught = compile_model(name, calib(name))
    assert not caught
    data = np.load(MODELS_DIR / f"{name}.io.npz")
    (sample,) = load_samples(MODELS_DIR / f"{name}.io.npz", graph)
    out = run(result, sample)[result.outputs[0]]
    assert out.dtype == np.float32 and cosine(out, data["output_ort_noopt"]) >= 0.99


@pytest.mark.parametrize("name", FLOAT)
def test_float_model_with_synthetic_calibration(name):
    graph, result, caught = compile_model(name, "samples=4")
    assert len(caught) == 1 and "synthetic" in str(caught[0].message)
    (sample,) = load_samples(MODELS_DIR / f"{name}.io.npz", graph)
    assert np.all(np.isfinite(run(result, sample)[result.outputs[0]]))
