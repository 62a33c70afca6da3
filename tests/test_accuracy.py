"""Accuracy on labelled data through the compiled targets (nnc validate), the
metrics behind it, quality gates and the warnings about lost accuracy."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import onnx
import onnx.numpy_helper
import pytest
from onnx import TensorProto, helper

import nnc
from nnc.accuracy import class_axes, output_metrics
from nnc.cli import run_cli
from nnc.errors import OptionError, QualityGateError
from nnc.ops.softmax import SoftmaxAttrs
from nnc.validation import render, validate
from nnc.verification import compare

DIGITS = Path(__file__).resolve().parents[1] / "examples" / "digits"
CALIB = DIGITS / "calib.npz"


@pytest.fixture(scope="module")
def digits_test_set(tmp_path_factory):
    """The digits test set (450 images) as nnc sample and label files."""
    pytest.importorskip("sklearn", reason="the digits data comes with scikit-learn")
    sys.path.insert(0, str(DIGITS))
    import dataset

    split = dataset.split()
    folder = tmp_path_factory.mktemp("digits")
    np.savez(folder / "test.npz", image=split.x_test[:, None])
    np.save(folder / "labels.npy", split.y_test)
    return folder / "test.npz", folder / "labels.npy", split.y_test


def test_metrics_count_hits_and_pair_the_drop():
    truth = [{"y": np.array([[3.0, 1.0, 0.0]])}, {"y": np.array([[0.0, 2.0, 1.0]])},
             {"y": np.array([[0.0, 0.0, 5.0]])}, {"y": np.array([[1.0, 0.0, 0.0]])}]
    got = [{"y": np.array([[3.0, 1.0, 0.0]])}, {"y": np.array([[0.0, 1.0, 2.0]])},
           {"y": np.array([[0.0, 0.0, 5.0]])}, {"y": np.array([[0.0, 1.0, 0.0]])}]
    labels = np.array([0, 1, 2, 1])
    m = output_metrics(truth, got, "y", "classification", labels, top_k=2)
    assert m["top1_float"] == 0.75 and m["top1"] == 0.75 and m["top1_agreement"] == 0.5
    assert m["top1_drop_points"] == 0.0 and m["top1_drop_ci95_points"] > 0  # one lost, one won
    assert m["topk_float"] == 1.0 and m["topk"] == 1.0 and m["top_k"] == 2
    one_hot = output_metrics(truth, got, "y", "classification", np.eye(3)[labels])
    assert one_hot["top1"] == m["top1"]
    with pytest.raises(nnc.ShapeError, match="class ids must lie in 0..2"):
        output_metrics(truth, got, "y", "classification", np.array([0, 1, 2, 3]))
    with pytest.raises(nnc.ShapeError, match="4 given"):
        output_metrics(truth[:3], got[:3], "y", "classification", labels)
    with pytest.raises(nnc.ShapeError, match="one 1 and zeros elsewhere"):
        output_metrics(truth, got, "y", "classification", np.zeros((4, 3)))
    with pytest.raises(nnc.ShapeError, match="one-hot rows of 5 for an output of 3 classes"):
        output_metrics(truth, got, "y", "classification", np.eye(5)[labels])


def test_labels_of_a_per_position_output_are_one_per_position(tmp_path):
    """An output [1, 5, 3] (a class per frame) takes labels [samples, 5]; one
    label per sample is refused with that rule and the samples counted as
    samples (it said '6 given, the data has 30 samples')."""
    weights = helper.make_tensor("w", TensorProto.FLOAT, [4, 3], np.linspace(-1, 1, 12).tolist())
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "frames",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 5, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5, 3])], [weights])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "frames.onnx")
    data = np.random.default_rng(0).standard_normal((6, 1, 5, 4)).astype(np.float32)
    with pytest.raises(nnc.ShapeError) as caught:
        validate(tmp_path / "frames.onnx", data, np.zeros(6, np.int64))
    assert str(caught.value) == ("labels: 6 given, the data has 6 samples, and output 'y' ([1, 5, 3] per sample) "
                                 "scores 5 positions in each: the labels need one class id per position, an array "
                                 "of shape [6, 5]")
    with pytest.raises(nnc.ShapeError, match=r"^labels: 18 given \(shape \[6, 3\]\), the data has 6 samples, and"):
        validate(tmp_path / "frames.onnx", data, np.eye(3)[np.zeros(6, np.int64)])
    frames = np.zeros((6, 5), np.int64)
    metrics = validate(tmp_path / "frames.onnx", data, frames).report["verification"]["outputs"]["y"]
    assert metrics["top1_float"] == np.mean(np.einsum("spf,fc->spc", data[:, 0], np.linspace(-1, 1, 12).reshape(4, 3))
                                            .argmax(-1) == 0)


def test_one_labelled_sample_has_no_interval_and_stays_json(tmp_path):
    from nnc.accuracy import accuracy_text

    truth, got = [{"y": np.array([[3.0, 1.0, 0.0]])}], [{"y": np.array([[0.0, 1.0, 0.0]])}]
    m = output_metrics(truth, got, "y", "classification", np.array([0]))
    assert m["top1_drop_ci95_points"] is None and "NaN" not in json.dumps(m)
    assert accuracy_text(m) == "top-1 0.00% (float 100.00%), drop +100.00 points (one sample: no interval)"
    image = np.load(CALIB)["image"][:1]
    label = nnc.run(nnc.load(DIGITS / "digits.onnx"), {"image": image[0]})["logits"].argmax(-1)
    result = validate(DIGITS / "digits.onnx", image, label, target="ir", output_dir=tmp_path / "out")
    json.loads((tmp_path / "out" / "report.json").read_text(), parse_constant=lambda c: pytest.fail(c))
    assert "one sample: no interval" in render(result.report)


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
def test_a_softmax_over_channels_ranks_classes_on_its_axis(op, tmp_path):
    """A Conv1d head [1, classes, T] ending in a (Log)Softmax over axis 1: top-1
    agreement compares the class per frame, not the frame per class."""
    graph = nnc.Graph("head")
    graph.add_tensor(nnc.Tensor("x", "f32", (1, 3, 4)))
    graph.add_tensor(nnc.Tensor("y", "f32", (1, 3, 4)))
    graph.add_node(nnc.Node("p", op, ["x"], ["y"], SoftmaxAttrs(1)))
    graph.inputs, graph.outputs = ["x"], ["y"]
    assert class_axes(graph) == {"y": 1}
    # frame 3's class differs; ranked along the last axis every row's best frame stays the same
    reference = np.array([[[9.0, 0, 0, 1], [0, 9, 0, 0], [0, 0, 9, 0]]])
    candidate = reference.copy()
    candidate[0, :, 3] = [0.0, 0.5, 0.9]
    truth, got = [{"y": reference}], [{"y": candidate}]
    assert compare(truth, got)["top1_agreement"] == 1.0
    assert compare(truth, got, class_axes(graph))["top1_agreement"] == 0.75
    assert output_metrics(truth, got, "y", "classification", class_axis=1)["top1_agreement"] == 0.75


def test_regression_outputs_get_mae_not_top1():
    truth = [{"y": np.array([[1.0, 2.0, 3.0]])}, {"y": np.array([[2.0, 2.0, 2.0]])}]
    got = [{"y": np.array([[1.0, 2.5, 3.0]])}, {"y": np.array([[2.0, 2.0, 1.0]])}]
    m = output_metrics(truth, got, "y", "regression")
    assert "top1_agreement" not in m and m["mae"] == pytest.approx(1.5 / 6)
    assert m["l2_relative"] == pytest.approx(np.sqrt(1.25) / np.sqrt(26))


@pytest.mark.parametrize("target", ["c", "az-sim"])
def test_validate_measures_the_target_on_labelled_data(digits_test_set, target):
    data, labels, y = digits_test_set
    result = validate(DIGITS / "digits.onnx", data, labels, target, calib=CALIB, weight_bits=4)
    v = result.report["verification"]
    m = v["outputs"]["logits"]
    assert v["executed"] and v["samples"] == len(y) and v["vs_reference"]["bit_exact"]
    assert m["kind"] == "classification" and 0.9 < m["top1"] <= 1.0 and 0.9 < m["top1_float"] <= 1.0
    assert m["top1_drop_points"] == pytest.approx(100 * (m["top1_float"] - m["top1"]))
    assert "top-1" in render(result.report)
    test_validate_measures_the_target_on_labelled_data.seen[target] = m


test_validate_measures_the_target_on_labelled_data.seen = {}


def test_c_and_az_sim_report_the_same_accuracy(digits_test_set):
    seen = test_validate_measures_the_target_on_labelled_data.seen
    if len(seen) < 2:
        data, labels, _ = digits_test_set
        for target in ("c", "az-sim"):
            result = validate(DIGITS / "digits.onnx", data, labels, target, calib=CALIB, weight_bits=4)
            seen[target] = result.report["verification"]["outputs"]["logits"]
    assert seen["c"] == seen["az-sim"]


def test_a_missed_cosine_gate_fails_after_writing_the_artifacts(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(QualityGateError, match="quality gate failed: output cosine") as caught:
        nnc.compile(DIGITS / "digits.onnx", "az-sim", out, calib=CALIB, weight_bits=2, min_cosine=0.9999)
    report = json.loads((out / "report.json").read_text())
    assert report["quality_gate"]["passed"] is False and (out / "digits.azb").is_file()
    assert caught.value.result.report["quality_gate"] == report["quality_gate"]
    passed = nnc.compile(DIGITS / "digits.onnx", "az-sim", tmp_path / "ok", calib=CALIB, min_cosine=0.9)
    assert passed.report["quality_gate"]["passed"] is True


def test_accuracy_gate_needs_labels():
    with pytest.raises(OptionError, match="^max_accuracy_drop needs labels: "):
        nnc.compile(DIGITS / "digits.onnx", "az-sim", calib=CALIB, max_accuracy_drop=1.0)


@pytest.mark.parametrize("call, message", [
    (lambda: validate(DIGITS / "digits.onnx", None), "validate needs data: the samples to measure"),
    (lambda: validate(DIGITS / "digits.onnx", CALIB, inputs=CALIB), "validate takes its samples as data, not inputs"),
    (lambda: nnc.compile(DIGITS / "digits.onnx", labels=CALIB), "labels needs inputs (the samples they label)"),
    (lambda: nnc.compile(DIGITS / "digits.onnx", inputs=CALIB, labels=CALIB, stream={"image": (1, 1, 8, 8)}),
     "labels cannot be combined with stream: a streaming compile measures no accuracy"),
    (lambda: nnc.compile(DIGITS / "digits.onnx", min_cosine=0.9, verify=False), "drop verify=False"),
])
def test_api_errors_name_keyword_arguments(call, message):
    """nnc.validate needs data (it ran on synthetic samples given None), and the
    API's errors name its keyword arguments, not the CLI's flags."""
    with pytest.raises(OptionError) as caught:
        call()
    assert message in str(caught.value) and "--" not in str(caught.value)


@pytest.mark.parametrize("args, message", [
    (["compile", DIGITS / "digits.onnx", "-o", "OUT", "--labels", CALIB], "--labels needs --inputs"),
    (["compile", DIGITS / "digits.onnx", "-o", "OUT", "--inputs", CALIB, "--max-accuracy-drop", "1"],
     "--max-accuracy-drop needs --labels: "),
    (["validate", DIGITS / "digits.onnx", "--data", CALIB, "--max-accuracy-drop", "1"],
     "--max-accuracy-drop needs --labels: "),
    (["compile", DIGITS / "digits.onnx", "-o", "OUT", "--min-cosine", "0.9", "--no-verify"], "drop --no-verify"),
])
def test_cli_errors_name_flags(tmp_path, args, message):
    proc = nnc_cli(*[tmp_path / "out" if a == "OUT" else a for a in args])
    assert proc.returncode == 2 and proc.stderr.startswith("nnc: error: ") and message in proc.stderr, proc.stderr


def test_accuracy_gate(digits_test_set, tmp_path):
    data, labels, _ = digits_test_set
    with pytest.raises(QualityGateError, match="top-1 accuracy drop"):
        nnc.compile(DIGITS / "digits.onnx", "az-sim", calib=CALIB, inputs=data, labels=labels, weight_bits=2,
                    sparsity=0.75, max_accuracy_drop=0.0)


def test_few_calibration_samples_and_lossy_layers_are_warned_about(tmp_path):
    one = tmp_path / "one.npz"
    np.savez(one, image=np.load(CALIB)["image"][:1])
    report = nnc.compile(DIGITS / "digits.onnx", "az-sim", calib=one, weight_bits=2, sparsity=0.95,
                         method="magnitude").report
    assert any("calibrated on 1 sample(s)" in w for w in report["warnings"])
    assert any("lost much against the float model" in w for w in report["warnings"])


def test_outputs_far_from_float_are_warned_about_naming_steep_ops(tmp_path):
    """A log front end fed power spectra (range 1e-4..1e3) loses its small
    values to the int8 input grid before the Log: the output cosine drops and
    no weighted layer shows it, so the compile says so (it was silent)."""
    rng = np.random.default_rng(1)
    nodes = [helper.make_node("Add", ["power", "eps"], ["m"]), helper.make_node("Log", ["m"], ["l"]),
             helper.make_node("Sub", ["l", "mean"], ["y"])]
    constants = [onnx.numpy_helper.from_array(np.array(v, np.float32), n) for n, v in (("eps", 1e-6), ("mean", -1.0))]
    graph = helper.make_graph(nodes, "logmel", [helper.make_tensor_value_info("power", TensorProto.FLOAT, [1, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16])], constants)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "m.onnx")
    power = np.exp(rng.uniform(-9, 7, (32, 1, 16))).astype(np.float32)
    report = nnc.compile(tmp_path / "m.onnx", "ir", calib=power, quantize=True).report
    (warning,) = [w for w in report["warnings"] if "agree with the float model" in w]
    assert report["verification"]["vs_float"]["cosine"] < 0.99 and "the model has Log" in warning
    clean = nnc.compile(DIGITS / "digits.onnx", "ir", calib=CALIB, quantize=True).report
    assert not any("agree with the float model" in w for w in clean["warnings"])


def test_warnings_name_the_keyword_and_the_flag(tmp_path, capsys):
    """A compile's warnings are one text, for report.json and the command line
    alike, so they name both the keyword argument and the flag."""
    synthetic = ("verified on 4 synthetic random samples; give inputs or calib (--inputs, --calib) for real ones",
                 "quantization calibrated on 8 synthetic random samples; give calib (--calib) with real inputs "
                 "for accurate activation ranges")
    report = nnc.compile(DIGITS / "digits.onnx", "az-sim").report
    assert set(synthetic) <= set(report["warnings"]), report["warnings"]
    budget = nnc.compile(DIGITS / "digits.onnx", "az-sim", ratio=2.0, verify=False).report
    assert "budget search on synthetic random samples; give calib (--calib) with real inputs" in budget["warnings"]
    assert run_cli(["compile", str(DIGITS / "digits.onnx"), "-t", "az-sim", "-o", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().err.splitlines()
    assert all(f"nnc: warning: {warning}" in printed for warning in synthetic), printed


def test_a_float_model_computing_nan_is_warned_about(tmp_path):
    """Sqrt of a Gemm's negative outputs: onnxruntime's truth holds NaN. The
    figures count the finite values (report.json stays JSON: no NaN) and a
    warning says why."""
    w = np.random.default_rng(1).normal(size=(8, 6)).astype(np.float32)
    graph = helper.make_graph([helper.make_node("Gemm", ["x", "w"], ["g"]), helper.make_node("Sqrt", ["g"], ["y"])],
                              "sqrt", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 6])],
                              [helper.make_tensor("w", TensorProto.FLOAT, [8, 6], w.ravel())])
    path = tmp_path / "sqrt.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    result = nnc.compile(path, "c", output_dir=tmp_path / "out")
    bad = result.report["verification"]["float_non_finite"]
    assert 0 < bad <= 4 and -1 <= result.report["verification"]["vs_float"]["cosine"] <= 1
    assert any(w.startswith(f"the float model's outputs (onnxruntime) hold NaN or infinity on {bad} of 4")
               for w in result.report["warnings"])
    written = (tmp_path / "out" / "report.json").read_text()
    json.loads(written, parse_constant=lambda name: pytest.fail(f"report.json holds {name}"))
    clean = nnc.compile(DIGITS / "digits.onnx", "ir", calib=CALIB).report
    assert clean["verification"]["float_non_finite"] == 0 and not any("NaN" in w for w in clean["warnings"])


def test_a_candidate_nan_is_a_difference_never_hidden():
    """Where the reference is finite, a candidate's NaN or infinity counts as
    non_finite (cosine -1; verification fails on it); where the reference
    itself is NaN there is nothing to measure, and NaN equals NaN."""
    from nnc.verification import compare

    broken = compare([{"y": np.array([1.0, 2.0, 3.0])}], [{"y": np.array([1.0, np.nan, np.inf])}])
    assert broken["non_finite"] == 2 and broken["cosine"] == -1.0 and not broken["bit_exact"]
    same = compare([{"y": np.array([1.0, np.nan, 3.0])}], [{"y": np.array([1.0, np.nan, 3.0])}])
    assert same["non_finite"] == 0 and same["bit_exact"] and same["max_abs_diff"] == 0.0


def test_an_autoencoder_output_is_not_scored_by_top1(tmp_path):
    w = np.random.default_rng(0).normal(size=(16, 16)).astype(np.float32)
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "ae",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16])],
                              [helper.make_tensor("w", TensorProto.FLOAT, [16, 16], w.ravel())])
    path = tmp_path / "ae.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    report = nnc.compile(path, "az-sim").report
    assert report["verification"]["vs_float"]["top1_agreement"] is None
    assert report["verification"]["outputs"]["y"]["kind"] == "regression"


def _head_graph(tmp_path, nodes, out_shape, constants):
    graph = helper.make_graph(nodes, "head", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 6, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)],
                              [onnx.numpy_helper.from_array(a, n) for n, a in constants.items()])
    path = tmp_path / "head.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return nnc.load(path)


@pytest.mark.parametrize("case, kind", [
    ("linear", "classification"), ("linear-reshaped", "classification"), ("softmax", "classification"),
    ("layernorm", "regression"), ("relu", "regression"), ("sigmoid", "regression"), ("conv-map", "regression")])
def test_only_logits_heads_are_classification_outputs(case, kind, tmp_path):
    """An encoder's features (LayerNorm, an activation) are not logits: they
    were taken for classification when their last axis had 2..1000 values."""
    from nnc.accuracy import output_kind

    w, b = np.ones((8, 5), np.float32), np.zeros(5, np.float32)
    g, beta = np.ones(5, np.float32), np.zeros(5, np.float32)
    linear = [helper.make_node("MatMul", ["x", "w"], ["m"]), helper.make_node("Add", ["m", "b"], ["y"])]
    cases = {
        "linear": (linear, [1, 6, 5]),
        "linear-reshaped": ([*linear[:1], helper.make_node("Add", ["b", "m"], ["a"]),
                             helper.make_node("Reshape", ["a", "shape"], ["y"])], [6, 5]),
        "softmax": ([helper.make_node("Softmax", ["x"], ["y"])], [1, 6, 8]),
        "layernorm": ([*linear[:1], helper.make_node("LayerNormalization", ["m", "g", "beta"], ["y"], axis=-1)],
                      [1, 6, 5]),
        "relu": ([*linear[:1], helper.make_node("Relu", ["m"], ["y"])], [1, 6, 5]),
        "sigmoid": ([*linear, helper.make_node("Sigmoid", ["y"], ["s"])], [1, 6, 5]),
        "conv-map": ([helper.make_node("Conv", ["x", "k"], ["y"])], [1, 4, 8])}
    nodes, shape = cases[case]
    if case == "sigmoid":
        nodes[1].output[0], nodes[2].input[0], nodes[2].output[0] = "z", "z", "y"
    constants = {"w": w, "b": b, "g": g, "beta": beta, "k": np.ones((4, 6, 1), np.float32),
                 "shape": np.array([6, 5], np.int64)}
    graph = _head_graph(tmp_path, nodes, shape,
                        {n: a for n, a in constants.items() if any(n in node.input for node in nodes)})
    assert output_kind(graph, "y", False) == kind
    assert output_kind(graph, "y", True) == "classification"


def nnc_cli(*args):
    import subprocess

    return subprocess.run([sys.executable, "-m", "nnc.cli", *map(str, args)], capture_output=True, text=True)


def test_nnc_validate_prints_the_same_accuracy_for_c_and_az_sim(digits_test_set):
    data, labels, y = digits_test_set
    printed = {}
    for target in ("c", "az-sim"):
        proc = nnc_cli("validate", DIGITS / "digits.onnx", "--data", data, "--labels", labels, "--target", target,
                       "--calib", CALIB, "--weight-bits", "4", "--sparsity", "0.5")
        assert proc.returncode == 0, proc.stderr
        lines = proc.stdout.splitlines()
        assert lines[0].startswith(f"{target}: {len(y)} sample(s)") and "run through the target" in lines[0]
        printed[target] = [line for line in lines if line.startswith("logits")]
    assert len(printed["c"]) == 2 and "top-1" in printed["c"][1] and printed["c"] == printed["az-sim"]


def test_a_missed_gate_exits_4_with_one_error_line(tmp_path):
    proc = nnc_cli("compile", DIGITS / "digits.onnx", "-t", "az-sim", "-o", tmp_path / "out", "--calib", CALIB,
                   "--weight-bits", "2", "--method", "magnitude", "--min-cosine", "0.9999")
    assert proc.returncode == 4, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("nnc: error:")]
    assert errors == [line for line in proc.stderr.splitlines() if not line.startswith("nnc: warning:")]
    assert len(errors) == 1 and "quality gate failed: output cosine" in errors[0]
    assert "quality gate: FAILED" in proc.stdout and (tmp_path / "out" / "digits.azb").is_file()


def test_validate_json_stays_json_when_a_gate_fails(tmp_path):
    """A script reading `nnc validate --json` gets JSON on exit 4 too (it got
    the compile's text table)."""
    images = np.load(CALIB)["image"][:16]
    np.savez(tmp_path / "data.npz", image=images)
    np.save(tmp_path / "labels.npy", np.zeros(16, np.int64))
    proc = nnc_cli("validate", DIGITS / "digits.onnx", "--data", tmp_path / "data.npz", "--labels",
                   tmp_path / "labels.npy", "--calib", CALIB, "--weight-bits", "2", "--min-cosine", "0.9999", "-q",
                   "--json")
    assert proc.returncode == 4 and "quality gate failed" in proc.stderr
    assert json.loads(proc.stdout)["vs_float"]["cosine"] < 0.9999
