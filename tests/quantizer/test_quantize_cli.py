"""`nnc compile M --target ir --quantize --calib M.io.npz -o OUT` as a user runs
it: exit code 0, the quantize pass in the report's pipeline, a bit-exact
verification of an integer graph, and the synthetic-calibration warning only
when it applies."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from mlperf import MODELS_DIR, requires_models

import nnc

pytestmark = requires_models


def nnc_compile(model: str, out, *args):
    proc = subprocess.run([sys.executable, "-m", "nnc.cli", "compile", str(MODELS_DIR / f"{model}.onnx"),
                           "--target", "ir", "--quantize", "-o", str(out), "--quiet", *map(str, args)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return json.loads((out / "report.json").read_text()), proc


@pytest.mark.parametrize("model, min_cosine", [("kws_dscnn_f32", 0.99), ("sww_int8_qdq", 0.99)])
def test_compile_with_calibration(tmp_path, model, min_cosine):
    npz = MODELS_DIR / f"{model}.io.npz"
    report, _ = nnc_compile(model, tmp_path / "out", "--calib", npz)
    assert report["pipeline"].endswith(f'quantize{{calib="{npz}"}}')
    assert report["warnings"] == ([] if "qdq" in model else  # a QDQ model's activations need no calibration
                                  ["calibrated on 1 sample(s); activation ranges from fewer than 16 real samples "
                                   "may not cover the data the model will see"])
    verification = report["verification"]
    assert verification["vs_reference"]["bit_exact"] and verification["vs_reference"]["max_abs_diff_lsb"] == 0
    assert verification["vs_float"]["cosine"] >= min_cosine
    assert {layer["op"] for layer in report["layers"]} >= {"QConv", "QGemm", "QSoftmax"}
    graph = nnc.parse_ir((tmp_path / "out" / f"{model}.nnir").read_text())
    assert nnc.verify_step.is_integer_graph(graph)


def test_compile_with_synthetic_calibration_warns(tmp_path):
    report, proc = nnc_compile("kws_dscnn_f32", tmp_path / "out")
    assert any("calibrated on 8 synthetic" in w for w in report["warnings"])
    assert "synthetic" in proc.stderr
