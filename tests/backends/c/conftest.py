"""Fixtures shared by the C target's tests."""

from __future__ import annotations

from pathlib import Path

import pytest

import nnc

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "01-tiny-cnn"


@pytest.fixture(scope="module")
def tiny_cnn(tmp_path_factory) -> Path:
    """examples/01-tiny-cnn compiled for c, quantized (a float interface: both entry points)."""
    out = tmp_path_factory.mktemp("c") / "tiny_cnn"
    nnc.compile(EXAMPLE / "tiny_cnn.onnx", target="c", output_dir=out, calib=EXAMPLE / "sample.npz",
                inputs=EXAMPLE / "sample.npz")
    return out
