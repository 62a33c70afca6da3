"""benchmarks/training.py --quick runs end to end: its tables come out, every
row's compiled targets agree with the twin's exact accuracy, and the unseen
MLP is trained, exported and measured (about 20 s)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="nnc.train needs PyTorch (pip install 'nnc[train]')")
pytest.importorskip("sklearn", reason="the digits data needs scikit-learn")
pytest.importorskip("onnxruntime", reason="the float accuracy needs onnxruntime")

ROOT = Path(__file__).resolve().parents[2]


def test_quick_benchmark_prints_agreeing_rows(tmp_path):
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "training.py"), "--quick", "--out", str(tmp_path)],
                         capture_output=True, text=True, cwd=ROOT, timeout=300, check=False)
    assert run.returncode == 0, run.stderr
    rows = [line.split(" | ") for line in run.stdout.splitlines()
            if line.startswith(("| digits | 4-bit + 75%", "| mlp | 4-bit + 75%"))]
    assert len(rows) == 2, run.stdout
    assert all(row[-1] == "yes |" for row in rows), run.stdout
    assert "refused" not in run.stdout
    assert (tmp_path / "mlp.onnx").is_file()
    assert (tmp_path / "digits" / "4-bit---75" / "fine-tuned" / "az-sim" / "digits.azb").is_file()
