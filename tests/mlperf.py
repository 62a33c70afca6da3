"""Where the MLPerf Tiny reference models are, and a mark that skips a test with
a clear reason when they are absent. Import as `from mlperf import ...` (pytest puts
tests/ on sys.path through tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

MODELS_DIR = Path(__file__).resolve().parents[2] / "shared" / "models" / "mlperf-tiny"
MODEL_NAMES = sorted(p.stem for p in MODELS_DIR.glob("*.onnx")) if MODELS_DIR.is_dir() else []
requires_models = pytest.mark.skipif(not MODEL_NAMES, reason=f"MLPerf Tiny models not found in {MODELS_DIR}")
