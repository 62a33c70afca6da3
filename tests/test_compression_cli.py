"""Compression from the command line and the report: flags reach the passes, the
report accounts every weight byte and each layer's error, sensitivity analysis
ranks layers, and bad compression options are one-line errors (exit 2)."""

from __future__ import annotations

import json

import pytest

import nnc
from test_cli import EXAMPLE, _assert_one_line_error, nnc_cli

MODEL, SAMPLE = EXAMPLE / "tiny_cnn.onnx", EXAMPLE / "sample.npz"


def test_report_accounts_weights_and_layer_errors(tmp_path):
    int8 = nnc.compile(MODEL, "ir", tmp_path / "a", quantize=True, calib=SAMPLE).report
    small = nnc.compile(MODEL, "ir", tmp_path / "b", quantize=True, calib=SAMPLE, weight_bits=4,
                        sparsity=0.5).report
    for report in (int8, small):
        w = report["weights"]
        assert w["fp32_bytes"] == 4 * w["weights"]
        assert w["stored_bytes"] == sum(l["weight_bytes"] for l in report["layers"])
        weighted = [l for l in report["layers"] if l["format"]]
        assert weighted and all(l["error"] is not None and -1 <= l["error"]["cosine"] <= 1 for l in weighted)
    assert all(l["code_bits"] == 8 for l in small["layers"] if l["format"])  # ir stores int8 arrays
    # conv1 and the depthwise dwconv (fan-in 9) are not pruned (the prune pass's small-layer
    # rule); only the 4-bit grid rounds some of their weights to 0
    sparsity = {l["name"]: l["sparsity"] for l in small["layers"] if l["format"]}
    assert sparsity["pwconv"] >= 0.5 and sparsity["fc"] >= 0.5 and sparsity["dwconv"] < 0.25
    assert small["weights"]["sparsity"] > int8["weights"]["sparsity"]
    assert ",prune{method=obs," in small["pipeline"] and "weight_bits=4,method=obs" in small["pipeline"]
    errors = {l["name"]: l["error"]["rmse"] for l in int8["layers"] if l["error"]}
    assert sum(l["error"]["rmse"] for l in small["layers"] if l["error"]) > sum(errors.values())


def test_sensitivity_lists_every_weighted_layer(tmp_path):
    proc = nnc_cli("inspect", MODEL, "--sensitivity", "--calib", SAMPLE, "--bits", "2", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["bits"] == 2 and data["baseline_int8"]["cosine"] > 0.99
    assert len(data["layers"]) >= 2
    for row in data["layers"]:
        assert row["bits"]["rmse"] >= 0 and row["pruned"]["rmse"] >= 0
    assert max(r["bits"]["rmse"] for r in data["layers"]) > data["baseline_int8"]["rmse"]


@pytest.mark.parametrize("flags, message", [
    (["--weight-bits", "9"], "--weight-bits must be in 2..8"),
    (["--sparsity", "1.5"], "--sparsity must be in"),
    (["--pack", "zip"], "--pack must be"),
    (["--c-weights", "sparse"], "--c-weights must be"),
    (["--c-arrays", "lists"], "--c-arrays must be"),
    (["--sparsity-pattern", "4:2"], "pattern"),
    (["--weight-bits", "4", "--no-quantize"], "need quantization"),
])
def test_bad_compression_options(tmp_path, flags, message):
    proc = nnc_cli("compile", MODEL, "-t", "ir", "-o", tmp_path / "out", *flags)
    _assert_one_line_error(proc)
    assert message in proc.stderr
    assert not (tmp_path / "out").exists()


def test_sparsity_that_only_small_layers_could_take_says_so(tmp_path):
    """A model whose only weighted layer is a 3×3 depthwise conv (9 weights per
    output channel): small layers stay dense, so --sparsity prunes nothing, and
    the compile says why; with small_layers=layer it prunes and says nothing."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = np.random.default_rng(0).standard_normal((4, 1, 3, 3)).astype(np.float32)
    graph = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"], group=4, pads=[1, 1, 1, 1])], "dw",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 6, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 6, 6])],
                              [numpy_helper.from_array(w, "w")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), tmp_path / "dw.onnx")
    report = nnc.compile(tmp_path / "dw.onnx", "ir", sparsity=0.5, verify=False).report
    assert any(w.startswith("pass 'prune' (sparsity 0.5) prunes no layer: every layer it would prune is small")
               for w in report["warnings"]), report["warnings"]
    pruned = nnc.compile(tmp_path / "dw.onnx", "ir", verify=False,
                         pipeline="canonicalize,prune{sparsity=0.5,small_layers=layer},quantize").report
    assert not any("prunes no layer" in w for w in pruned["warnings"]) and pruned["weights"]["sparsity"] > 0.4


def test_compression_flags_next_to_a_pipeline_are_refused(tmp_path):
    """A pipeline sets its passes' options; --weight-bits beside it was ignored
    without a word (the pipeline's own quantize ran at 8 bits)."""
    from nnc.cli import run_cli
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = run_cli(["compile", "examples/digits/digits.onnx", "-t", "c", "--pipeline",
                        "remove-identity,canonicalize,quantize", "--weight-bits", "3", "-o", str(tmp_path / "o")])
    assert code == 2 and "drop --weight-bits" in err.getvalue() and not (tmp_path / "o").exists()


def test_a_prune_after_quantize_says_the_layers_are_integer_already():
    """It said the model has no Conv, Gemm or MatMul (workflow sweep)."""
    import warnings as warnings_module

    pipeline = ("remove-identity,canonicalize,fold-constants,fold-batchnorm,fuse-bias,fuse-activation,layout,"
                "canonicalize,quantize,prune{sparsity=0.5}")
    with warnings_module.catch_warnings():
        warnings_module.simplefilter("ignore")
        report = nnc.compile("examples/digits/digits.onnx", "c", calib="examples/digits/calib.npz",
                             pipeline=pipeline, verify=False).report
    (said,) = [w for w in report["warnings"] if "pass 'prune'" in w]
    assert "4 such layer(s) are integer ops already (put the pass before quantize)" in said


def test_compression_counts_the_channels_pruning_removed():
    """The summary's fp32 and ratio are the model as given: channel pruning at
    0.5 printed 'fp32 14,624, 4.0x smaller' for digits, whose weights are
    47,680 bytes in fp32 (13.0x)."""
    report = nnc.compile("examples/digits/digits.onnx", "az-sim", calib="examples/digits/calib.npz",
                         prune_channels=0.5, verify=False).report
    weights = report["weights"]
    assert weights["model_fp32_bytes"] == 47_680 > weights["fp32_bytes"]
    assert weights["compression"] == round(47_680 / weights["stored_bytes"], 3)


def test_an_integer_op_name_as_override_key_names_the_float_op():
    """The tables show QConv; an override by op type takes Conv, and says so."""
    with pytest.raises(nnc.OptionError, match=r"the tables' QConv is the compiled Conv: give Conv"):
        nnc.compile("examples/digits/digits.onnx", "c", calib="examples/digits/calib.npz", layer_bits="QConv:4",
                    verify=False)
