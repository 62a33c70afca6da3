"""examples/02-streaming-kws: the LSTM keyword spotter run frame by frame in C
equals the whole-utterance run bit for bit (the example's own check), and its
README's commands are the ones run.py runs."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "02-streaming-kws"


def _example_runner():
    spec = importlib.util.spec_from_file_location("streaming_example_run", EXAMPLE / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None, reason="no C compiler")
def test_streaming_equals_whole_utterance_in_c(tmp_path, capfd):
    status = _example_runner().main(tmp_path)
    printed = capfd.readouterr().out
    assert status == 0, printed
    assert "8 of 8 utterances bit-exact" in printed
    header = (tmp_path / "kws_stream" / "kws_stream.h").read_text()
    assert "may be one buffer" in header and "kws_stream_reset_states" in header
    report = (tmp_path / "kws_stream" / "report.json").read_text()
    assert '"chunks_per_sequence": 49' in report


@pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None, reason="no C compiler")
def test_the_first_command_of_docs_streaming_runs_on_the_example(tmp_path, monkeypatch, capsys):
    """docs/streaming.md's command compiles the shipped example as written (it
    lacked --input-shape: the symbolic time axis was bound to 1)."""
    from nnc.cli import run_cli

    doc = (EXAMPLE.parents[1] / "docs" / "streaming.md").read_text()
    command = next(line for line in doc.splitlines() if line.startswith("nnc compile "))
    args = [str(tmp_path / "kws") if a == "build/kws" else a for a in command.split()[1:]]
    monkeypatch.chdir(EXAMPLE)
    assert run_cli(args) == 0, capsys.readouterr().err
    report = json.loads((tmp_path / "kws" / "report.json").read_text())
    assert report["streaming"]["chunks_per_sequence"] == 49


def test_a_time_axis_bound_to_1_is_named_with_the_option_that_binds_it(tmp_path, capsys):
    """--stream without --input-shape on a symbolic time axis: the whole input is
    one frame, and the error says to give its length (it said only that the
    calibration samples do not fit [1, 1, 10])."""
    import nnc
    from nnc.cli import run_cli

    with pytest.raises(nnc.OptionError) as caught:
        nnc.compile(EXAMPLE / "kws_lstm.onnx", "c", calib=EXAMPLE / "utterances.npz", stream={"x": (1, 1, 10)})
    assert "symbolic dim 1 (T), bound to 1" in str(caught.value)
    assert str(caught.value).endswith("input_shapes={'x': (1, T, 10)} (T: its length)")
    code = run_cli(["compile", str(EXAMPLE / "kws_lstm.onnx"), "-t", "c", "-o", str(tmp_path / "out"),
                    "--calib", str(EXAMPLE / "utterances.npz"), "--stream", "x=1,1,10"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("nnc: error: --stream x=1,1,10: a chunk must split the whole input [1, 1, 10]")
    assert err.strip().endswith("--input-shape x=1,T,10 (T: its length)") and not (tmp_path / "out").exists()
    # a symbolic batch bound to 1 is not to blame when the chunk does not divide a fixed time axis
    from onnx import TensorProto, helper
    relu = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "r",
                             [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 12, 10])],
                             [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 12, 10])])
    helper_model = helper.make_model(relu, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    (tmp_path / "relu.onnx").write_bytes(helper_model.SerializeToString())
    with pytest.raises(nnc.OptionError) as caught:
        nnc.compile(tmp_path / "relu.onnx", "c", stream={"x": (1, 5, 10)}, output_dir=tmp_path / "r")
    assert "equal parts" in str(caught.value) and "symbolic" not in str(caught.value)
    with pytest.raises(nnc.OptionError, match=r"^stream names unknown input\(s\) \['y'\]; the model's inputs are"):
        nnc.compile(EXAMPLE / "kws_lstm.onnx", "c", input_shapes={"x": (1, 49, 10)}, stream={"y": (1, 1, 10)})
