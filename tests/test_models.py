"""Acceptance on the nine MLPerf Tiny models: the front end and the reference
interpreter match onnxruntime, the canonical pipeline keeps that, and `inspect`
agrees with MANIFEST.md's parameter and MAC counts."""

from __future__ import annotations

import re

import numpy as np
import pytest

import nnc
from nnc.passmanager import PassManager, parse_pipeline
from nnc.pipelines import CANONICAL
from nnc.summary import summarize

from mlperf import MODEL_NAMES, MODELS_DIR, requires_models

pytestmark = requires_models


def _manifest_counts() -> dict[str, tuple[int, int]]:
    """file stem -> (params, MACs) from MANIFEST.md's summary table."""
    counts = {}
    for line in (MODELS_DIR / "MANIFEST.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 7 and cells[0].endswith(".onnx") and re.fullmatch(r"[\d,]+", cells[4]):
            counts[cells[0][:-5]] = (int(cells[4].replace(",", "")), int(cells[6].replace(",", "")))
    return counts


def _sample(name: str):
    data = np.load(MODELS_DIR / f"{name}.io.npz")
    return data


def _check_against_onnxruntime(name: str, graph: nnc.Graph) -> None:
    data = _sample(name)
    (out,) = nnc.run(graph, {graph.inputs[0]: data["input"]}).values()
    if "qdq" in name:
        diff = np.abs(out.astype(np.int32) - data["output_ort_noopt"].astype(np.int32)).max()
        assert diff <= 1, f"{diff} LSB from onnxruntime (no optimizations)"
    else:
        expected = data["output"]
        rel = np.abs(out - expected).max() / np.abs(expected).max()
        assert rel <= 1e-4, f"relative error {rel}"


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_reference_matches_onnxruntime(name):
    _check_against_onnxruntime(name, nnc.load(MODELS_DIR / f"{name}.onnx"))


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_canonical_pipeline_keeps_outputs(name):
    graph = nnc.load(MODELS_DIR / f"{name}.onnx")
    optimized = PassManager(parse_pipeline(CANONICAL), verify_each=True).run(graph.copy())
    _check_against_onnxruntime(name, optimized)
    assert not any(n.op in ("Identity", "Dropout", "BatchNormalization") for n in optimized.nodes())


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_inspect_totals_match_manifest(name):
    params, macs = _manifest_counts()[name]
    totals = summarize(nnc.load(MODELS_DIR / f"{name}.onnx")).totals
    assert (totals["params"], totals["macs"]) == (params, macs)


def test_manifest_table_was_read():
    assert set(_manifest_counts()) == set(MODEL_NAMES)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_compile_ir_target(name, tmp_path):
    sample = MODELS_DIR / f"{name}.io.npz"
    result = nnc.compile(MODELS_DIR / f"{name}.onnx", target="ir", output_dir=tmp_path / "out", inputs=sample)
    assert sorted(result.artifacts) == sorted([f"{name}.nnir", "report.json", "report.html", "layers.csv",
                                               "nnc-manifest.json"])
    report = result.report
    assert report["verification"]["vs_float"]["cosine"] > 0.9999
    assert report["totals"]["macs"] == summarize(nnc.load(MODELS_DIR / f"{name}.onnx")).totals["macs"]
    reparsed = nnc.parse_ir((tmp_path / "out" / f"{name}.nnir").read_text())
    _check_against_onnxruntime(name, reparsed)
