"""Issue 5's acceptance on the MLPerf Tiny KWS DS-CNN: 4-bit weights at 50 %
sparsity store ≤ 1/10 of the fp32 weight bytes, verify bit-exactly on az-sim and
on C (dense and packed weights), and let az-sim skip ≥ 45 % of the MACs;
structured pruning at 25 % shrinks parameters and MACs and still verifies."""

from __future__ import annotations

import json

import numpy as np
import pytest

import nnc
from nnc.summary import summarize

from mlperf import MODELS_DIR, requires_models
from test_cli import nnc_cli

KWS = MODELS_DIR / "kws_dscnn_f32.onnx"
SAMPLE = MODELS_DIR / "kws_dscnn_f32.io.npz"
SMALL = {"weight_bits": 4, "sparsity": 0.5}


def bit_exact(report: dict) -> bool:
    v = report["verification"]
    return v["executed"] and v["vs_reference"]["bit_exact"]


@requires_models
def test_kws_4bit_half_sparse_on_azsim(tmp_path):
    result = nnc.compile(KWS, "az-sim", tmp_path / "az", calib=SAMPLE, **SMALL)
    weights, sim = result.report["weights"], result.report["sim"]
    assert weights["stored_bytes"] * 10 <= weights["fp32_bytes"]
    assert bit_exact(result.report)
    assert sim["macs_skipped"] / sim["macs_total"] >= 0.45
    layers = [n for n in result.graph.nodes() if n.op in ("QConv", "QGemm")]
    assert len(layers) == 10 and all(np.abs(result.graph.constant(n.inputs[1])).max() <= 7 for n in layers)


@requires_models
@pytest.mark.parametrize("c_weights", ["dense", "packed"])
def test_kws_4bit_half_sparse_on_c(tmp_path, c_weights):
    report = nnc.compile(KWS, "c", tmp_path / "c", calib=SAMPLE, c_weights=c_weights, **SMALL).report
    assert bit_exact(report)
    if c_weights == "packed":
        assert report["weights"]["stored_bytes"] * 8 <= report["weights"]["fp32_bytes"]


@requires_models
def test_kws_structured_quarter(tmp_path):
    before = summarize(nnc.load(KWS)).totals
    result = nnc.compile(KWS, "az-sim", tmp_path / "az", calib=SAMPLE, prune_channels=0.25)
    after = result.report["totals"]
    assert bit_exact(result.report)
    assert after["params"] <= 0.8 * before["params"] and after["macs"] <= 0.8 * before["macs"]
    pruned = [l for l in result.report["layers"] if l["format"]]
    assert len(pruned) == 10 and min(l["params"] for l in pruned) > 0
    nnc.compile(KWS, "ir", tmp_path / "ir", calib=SAMPLE, prune_channels=0.25)
    proc = nnc_cli("inspect", tmp_path / "ir" / "kws_dscnn_f32.nnir", "--json")
    totals = json.loads(proc.stdout)["totals"]
    assert totals["params"] <= 0.8 * before["params"] and totals["macs"] <= 0.8 * before["macs"]
