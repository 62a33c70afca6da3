"""benchmarks/tflite_writer.py writes a .tflite that TFLite's runtimes read and
run as the original TFLite model does (needs the bench extra, which CI does not
install, and the MLPerf Tiny models)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from mlperf import MODELS_DIR, requires_models

for package in ("tflite", "tflite_micro", "ai_edge_litert"):
    pytest.importorskip(package, reason=f"needs {package} (pip install -e '.[bench]'; benchmark-only)")

WRITER = Path(__file__).resolve().parents[1] / "benchmarks" / "tflite_writer.py"


def _writer():
    spec = importlib.util.spec_from_file_location("tflite_writer", WRITER)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@requires_models
def test_kws_tflite_runs_as_the_original_tflite_model():
    import tflite

    writer = _writer()
    model = MODELS_DIR / "kws_dscnn_int8_qdq.onnx"
    graph = writer.integer_graph(model)
    data = writer.to_tflite(graph)
    parsed = tflite.Model.GetRootAsModel(data, 0)
    codes = sorted(parsed.OperatorCodes(i).BuiltinCode() for i in range(parsed.OperatorCodesLength()))
    assert codes == sorted([tflite.BuiltinOperator.CONV_2D, tflite.BuiltinOperator.DEPTHWISE_CONV_2D,
                            tflite.BuiltinOperator.AVERAGE_POOL_2D, tflite.BuiltinOperator.RESHAPE,
                            tflite.BuiltinOperator.FULLY_CONNECTED, tflite.BuiltinOperator.SOFTMAX])
    found = writer.check(model, graph, data)
    # LiteRT's default kernels round as the original TFLite model did: the same bytes out
    assert found["litert_vs_original"] == 0
    # TFLM's reference kernels round twice per requantization; the softmax output moves by a few LSB
    assert found["tflm_vs_nnc"] <= 8


def test_a_clamp_with_no_fused_activation_is_refused():
    from types import SimpleNamespace

    from nnc.errors import UnsupportedError
    from nnc.ir import Graph, QuantParams, Tensor

    writer = _writer()
    graph = Graph("clamp")
    graph.add_tensor(Tensor("y", "i8", (1, 4), quant=QuantParams((0.1,), (0,))))
    node = SimpleNamespace(name="odd", outputs=["y"], attrs=SimpleNamespace(out_min=-5, out_max=127))
    with pytest.raises(UnsupportedError, match="no TFLite fused activation"):
        writer.fused_activation(writer.FlatModel(graph), node)
    relu = SimpleNamespace(name="relu", outputs=["y"], attrs=SimpleNamespace(out_min=0, out_max=127))
    assert writer.fused_activation(writer.FlatModel(graph), relu) == writer.Act.RELU
    relu6 = SimpleNamespace(name="relu6", outputs=["y"], attrs=SimpleNamespace(out_min=0, out_max=60))
    assert writer.fused_activation(writer.FlatModel(graph), relu6) == writer.Act.RELU6
