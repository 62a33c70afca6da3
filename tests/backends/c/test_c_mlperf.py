"""The MLPerf Tiny models through the C target: verified by the driver (float
parity without quantization, bit-exact once quantized), arena within 1.1 x the
lower bound, kws with packed weights, and a Cortex-M4 cross-compile where
arm-none-eabi-gcc is installed."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from mlperf import MODEL_NAMES, MODELS_DIR, requires_models

import nnc

pytestmark = requires_models
FLOAT_MODELS = [m for m in MODEL_NAMES if m.endswith("_f32")]
ARENA_SLACK = 1.1


def compile_c(model: str, out, quantize: bool, calibrate: bool = False):
    """Verified on the model's sample; calibrated on it too, or on synthetic data."""
    sample = MODELS_DIR / f"{model}.io.npz"
    return nnc.compile(MODELS_DIR / f"{model}.onnx", target="c", output_dir=out, quantize=quantize,
                       inputs=sample, calib=sample if calibrate else None)


def check_memory(report: dict, record_property) -> None:
    memory = report["memory"]
    record_property("memory", memory)
    assert memory["arena_lower_bound_bytes"] <= memory["arena_bytes"] <= memory["arena_naive_bytes"]
    assert memory["arena_bytes"] <= ARENA_SLACK * memory["arena_lower_bound_bytes"], memory
    assert memory["flash_bytes"] >= report["weights"]["stored_bytes"] // 4


@pytest.mark.parametrize("model", FLOAT_MODELS)
def test_float_model_in_c_matches_the_reference(model, tmp_path, record_property):
    result = compile_c(model, tmp_path / model, quantize=False)
    verification = result.report["verification"]
    assert verification["executed"] and verification["vs_reference"]["cosine"] > 0.999999
    check_memory(result.report, record_property)


@pytest.mark.parametrize("calibrate", [True, False], ids=["sample-calibration", "synthetic-calibration"])
@pytest.mark.parametrize("model", MODEL_NAMES)
def test_quantized_model_in_c_is_bit_exact(model, calibrate, tmp_path, record_property):
    result = compile_c(model, tmp_path / model, quantize=True, calibrate=calibrate)
    verification = result.report["verification"]
    assert verification["executed"] and verification["vs_reference"]["bit_exact"]
    if calibrate and model in FLOAT_MODELS:
        assert verification["vs_float"]["cosine"] >= 0.99
    check_memory(result.report, record_property)


KWS = "kws_dscnn_f32"


@pytest.mark.skipif(KWS not in MODEL_NAMES, reason=f"{KWS} is not among the MLPerf models")
@pytest.mark.parametrize("compression", [{}, {"weight_bits": 4, "sparsity": 0.5}], ids=["int8", "4bit-sparse"])
def test_packed_weights_are_bit_exact(compression, tmp_path, record_property):
    """--c-weights packed on kws: verified bit-exact by the driver. int8 weights
    (full range, no zeros) stay dense int8; 4-bit half-zero ones pack to under
    half their int8 bytes."""
    sample = MODELS_DIR / f"{KWS}.io.npz"
    result = nnc.compile(MODELS_DIR / f"{KWS}.onnx", target="c", output_dir=tmp_path / KWS, quantize=True,
                         inputs=sample, calib=sample, c_weights="packed", **compression)
    assert result.report["verification"]["vs_reference"]["bit_exact"]
    weights = result.report["memory"]["weights"]
    record_property("packed_weights", weights)
    stored = sum(nbytes for _, _, nbytes in weights.values())
    if compression:
        assert stored < 0.5 * result.report["weights"]["params"]
        assert {fmt for fmt, _, _ in weights.values()} - {"dense"}
    else:
        assert all(fmt == "dense" and bits == 8 for fmt, bits, _ in weights.values())


@pytest.mark.skipif(not shutil.which("arm-none-eabi-gcc"), reason="arm-none-eabi-gcc is not installed")
def test_cortex_m4_cross_compile(tmp_path, record_property):
    model = "kws_dscnn_int8_qdq" if "kws_dscnn_int8_qdq" in MODEL_NAMES else MODEL_NAMES[0]
    out = tmp_path / model
    result = compile_c(model, out, quantize=True)
    obj = tmp_path / f"{model}.o"
    command = ["arm-none-eabi-gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-mcpu=cortex-m4",
               "-mthumb", "-Os", "-c", str(out / f"{model}.c"), "-o", str(obj)]
    built = subprocess.run(command, capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    size = subprocess.run(["arm-none-eabi-size", str(obj)], capture_output=True, text=True, check=True).stdout
    text, data, bss = (int(v) for v in size.splitlines()[1].split()[:3])
    record_property("arm_size", {"text": text, "data": data, "bss": bss})
    print(f"\n{model} Cortex-M4 -Os: text {text}, data {data}, bss {bss}")
    assert bss == result.report["memory"]["arena_bytes"] and data == 0
    assert text >= result.report["memory"]["flash_bytes"]
