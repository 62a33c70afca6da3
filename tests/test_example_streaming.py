"""examples/02-streaming-kws: the LSTM keyword spotter run frame by frame in C
equals the whole-utterance run bit for bit (the example's own check), and its
README's commands are the ones run.py runs."""

from __future__ import annotations

import importlib.util
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
