"""`nnc finetune`: writes a model `nnc compile` takes as it is, reports the
one-shot and fine-tuned scores, refuses bad input in one line (exit 2), and
without PyTorch says which extra to install."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch", reason="nnc finetune needs PyTorch (pip install 'nnc[train]')")

from nnc.cli import run_cli  # noqa: E402

DIGITS = "examples/digits/digits.onnx"
CALIB = "examples/digits/calib.npz"


def _labels(tmp_path: Path) -> Path:
    """Labels of the 64 calibration images: the float model's own top-1."""
    import nnc

    x = np.load(CALIB)["image"]
    graph = nnc.load(DIGITS)
    labels = np.array([nnc.run(graph, {"image": x[i]})["logits"].argmax() for i in range(len(x))], np.int64)
    path = tmp_path / "labels.npy"
    np.save(path, labels)
    return path


def test_finetune_writes_a_model_nnc_compiles(tmp_path, capsys):
    out = tmp_path / "tuned"
    code = run_cli(["finetune", DIGITS, "--data", CALIB, "--labels", str(_labels(tmp_path)), "--weight-bits", "4",
                    "--sparsity", "0.5", "--epochs", "3", "--holdout", "0.25", "-o", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "one-shot accuracy" in captured.out and "fine-tuned accuracy" in captured.out
    assert "epoch 3:" in captured.err  # one progress line per epoch (stderr is not a terminal here)
    report = json.loads((out / "finetune.json").read_text())
    assert len(report["epochs"]) == 3 and report["kept_epoch"]["final"] and report["labelled"]
    blobs = []
    for model in ("digits.nnir", "digits.onnx"):  # both forms compile to the same integers
        folder = tmp_path / f"blob_{model}"
        code = run_cli(["compile", str(out / model), "--target", "az-sim", "-o", str(folder), "--inputs", CALIB])
        captured = capsys.readouterr()
        assert code == 0, captured.err
        assert "bit-exact=True" in captured.out
        blobs.append((folder / "digits.azb").read_bytes())
    assert blobs[0] == blobs[1]


def test_finetune_trains_a_keyword_spotting_lstm(tmp_path, capsys):
    """A keyword spotter as PyTorch exports one (Transpose to time-major, LSTM,
    Y_h, Gemm) fine-tunes with half its hidden units pruned; the .nnir and the
    .onnx (its cell scale in the metadata) compile to the same blob, verified
    against onnxruntime too."""
    import onnx
    from rnn_models import keyword_spotter

    onnx.save(keyword_spotter("LSTM", hidden=8, frames=6), tmp_path / "kws.onnx")
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "mfcc.npz", mfcc=rng.standard_normal((32, 6, 10)).astype(np.float32))
    np.save(tmp_path / "labels.npy", rng.integers(0, 12, 32))
    out = tmp_path / "tuned"
    code = run_cli(["finetune", str(tmp_path / "kws.onnx"), "--data", str(tmp_path / "mfcc.npz"), "--labels",
                    str(tmp_path / "labels.npy"), "--weight-bits", "4", "--prune-channels", "0.5", "--epochs", "2",
                    "-o", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "note:" not in captured.out
    written = onnx.load(out / "kws.onnx")
    ((key, value),) = [(p.key, float(p.value)) for p in written.metadata_props]
    assert key == "nnc.cell_scale.rnn" and np.log2(value) == round(np.log2(value))
    (lstm,) = [n for n in written.graph.node if n.op_type == "LSTM"]
    assert next(a.i for a in lstm.attribute if a.name == "hidden_size") == 4
    blobs = []
    for model in ("kws.nnir", "kws.onnx"):
        code = run_cli(["compile", str(out / model), "--target", "az-sim", "-o", str(tmp_path / f"blob_{model}"),
                        "--inputs", str(tmp_path / "mfcc.npz")])
        captured = capsys.readouterr()
        assert code == 0, captured.err
        assert "bit-exact=True" in captured.out
        blobs.append((tmp_path / f"blob_{model}" / "kws.azb").read_bytes())
    assert blobs[0] == blobs[1]
    assert "vs onnxruntime" in captured.out  # the .onnx runs there too


def test_finetune_is_deterministic(tmp_path, capsys):
    digests = []
    for run in ("a", "b"):
        code = run_cli(["finetune", DIGITS, "--data", CALIB, "--weight-bits", "3", "--epochs", "2", "-q",
                        "-o", str(tmp_path / run)])
        assert code == 0, capsys.readouterr().err
        digests.append(hashlib.sha256((tmp_path / run / "digits.nnir").read_bytes()).hexdigest())
    assert digests[0] == digests[1]


@pytest.mark.parametrize("args, message", [
    (["--epochs", "0"], "--epochs must be 1..10000, got 0"),
    (["--weight-bits", "1"], "weight-bits must be in 2..8"),
    (["--sparsity-pattern", "2:1"], "sparsity-pattern"),
    (["--holdout", "1.5"], "--holdout must be [0, 1), got 1.5"),
    (["--seed", "-1"], "--seed must be 0.."),
    (["--seed", "4294967295"], "--seed must be 0.."),
    (["--sparsity", "0.75", "--sparsity-pattern", "2:4"], "sparsity 0.75 contradicts it"),
])
def test_bad_options_are_one_line(tmp_path, capsys, args, message):
    code = run_cli(["finetune", DIGITS, "--data", CALIB, "-o", str(tmp_path / "out"), *args])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("nnc: error:") and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_bad_data_and_output_folder_are_refused(tmp_path, capsys):
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, image=np.zeros((4, 3, 3), np.float32))
    assert run_cli(["finetune", DIGITS, "--data", str(wrong), "-o", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.startswith("nnc: error: ")
    assert run_cli(["finetune", DIGITS, "--data", CALIB, "-o", "examples/digits"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nnc: error: output folder") and len(err.strip().splitlines()) == 1


def test_a_model_without_a_batch_axis_of_one_is_one_line(tmp_path, capsys):
    """An input [4, 6, 8] (batch 4 fixed in the model): the twin batches axis 0,
    so it is refused by name before the data is read (it was an internal error)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 6, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 6, 5])],
                              [numpy_helper.from_array(np.ones((8, 5), np.float32), "w")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "b4.onnx")
    np.savez(tmp_path / "d.npz", x=np.zeros((16, 4, 6, 8), np.float32))
    assert run_cli(["finetune", str(tmp_path / "b4.onnx"), "--data", str(tmp_path / "d.npz"),
                    "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "nnc: error: input 'x' has shape [4, 6, 8]; the training twin batches axis 0, which must be 1"


def test_without_torch_finetune_names_the_extra(tmp_path):
    code = ("import sys; sys.modules['torch'] = None\n"
            "from nnc.cli import run_cli\n"
            f"sys.exit(run_cli(['finetune', {DIGITS!r}, '--data', {CALIB!r}, '-o', {str(tmp_path / 'o')!r}]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip() == "nnc: error: training needs PyTorch: pip install 'nnc[train]'"
    assert not (tmp_path / "o").exists()


def test_core_nnc_does_not_import_torch():
    code = ("import sys, nnc, nnc.cli, nnc.driver, nnc.finetune\n"
            "sys.exit(1 if 'torch' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0
