"""End-to-end parity for small ONNX models: compile for every target and prove
what each one promises. Imported by module name from tests in any folder
(`from e2e import compile_everywhere`); tests/conftest.py puts tests/ on sys.path.

`compile_everywhere(model, tmp_path, samples)` saves `model` and `samples`,
compiles for `ir`, `c` and `az-sim` with the samples as calibration and
verification data, and returns the reports. A compile that is not bit-exact
against the reference interpreter raises (the driver checks it), so returning
at all proves target parity; the int8 output's cosine to the float model is
asserted against `min_cosine`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx

import nnc

TARGETS = ("ir", "c", "az-sim")

# An az-sim machine with room for the larger test models: they run untiled, so their
# parity tests do not depend on the tiling plan (tests/backends/azsim/test_tiling.py does).
LARGE_HW = """\
name = "az-test-large"
weight_sram_bytes = 16777216
activation_sram_bytes = 16777216
"""


def save_samples(path: Path, samples: dict[str, np.ndarray]) -> Path:
    np.savez(path, **samples)
    return path


def compile_everywhere(model: onnx.ModelProto | Path, tmp_path: Path, samples: dict[str, np.ndarray],
                       targets=TARGETS, min_cosine: float = 0.99, **options) -> dict[str, dict]:
    """Reports by target; see the module docstring. `samples` hold a leading batch axis."""
    if isinstance(model, onnx.ModelProto):
        path = tmp_path / "model.onnx"
        onnx.save(model, path)
    else:
        path = Path(model)
    calib = save_samples(tmp_path / "samples.npz", samples)
    hw = tmp_path / "large_hw.toml"
    hw.write_text(LARGE_HW, encoding="utf-8")
    reports = {}
    for target in targets:
        extra = dict(options)
        if target == "az-sim":
            extra.setdefault("hw", hw)
        result = nnc.compile(path, target=target, output_dir=tmp_path / f"out-{target}", calib=calib, **extra)
        verification = result.report["verification"]
        assert verification["vs_reference"]["bit_exact"], (target, verification)
        if target != "ir":
            assert verification["executed"], target
            cosine = verification["vs_float"]["cosine"]
            assert cosine >= min_cosine, f"{target}: int8 vs float cosine {cosine:.5f} < {min_cosine}"
        reports[target] = result.report
    return reports
