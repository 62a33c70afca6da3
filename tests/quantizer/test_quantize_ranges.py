"""quantize{save_ranges=...} then quantize{ranges=...}: a second compile that
reuses the first one's activation ranges quantizes identically, without
calibration data; bad ranges files are one-line OptionErrors."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

from nnc.errors import NncWarning, OptionError
from nnc.frontend.onnx_loader import load
from nnc.passmanager import PassManager, parse_pipeline
from nnc.pipelines import CANONICAL
from nnc.textir import print_ir

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "01-tiny-cnn"


def _quantized(quantize_step: str):
    graph = load(EXAMPLE / "tiny_cnn.onnx")
    return PassManager(parse_pipeline(f"{CANONICAL},{quantize_step}")).run(graph)


def test_reused_ranges_quantize_identically(tmp_path):
    saved = tmp_path / "ranges.json"
    first = _quantized(f'quantize{{calib="{EXAMPLE / "sample.npz"}",save_ranges="{saved}",bias_correction=false}}')
    ranges = json.loads(saved.read_text())["ranges"]
    assert ranges and all(lo <= 0.0 <= hi for lo, hi in ranges.values())
    with warnings.catch_warnings():
        warnings.simplefilter("error", NncWarning)  # no synthetic calibration happens
        second = _quantized(f'quantize{{ranges="{saved}",bias_correction=false}}')
    assert print_ir(second) == print_ir(first)


@pytest.mark.parametrize("content, why", [
    ("not json", "not a ranges file"),
    ('{"ranges": {"x": [0.5, 1.0]}}', "does not contain 0"),
    ('{"other": 1}', "not a ranges file"),
])
def test_bad_ranges_file(tmp_path, content, why):
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    with pytest.raises(OptionError, match=why):
        _quantized(f'quantize{{ranges="{bad}"}}')


def test_saved_ranges_replace_an_earlier_ranges_file(tmp_path):
    saved = tmp_path / "ranges.json"
    saved.write_text('{"ranges": {"old": [0.0, 1.0]}}')
    _quantized(f'quantize{{save_ranges="{saved}"}}')
    assert "old" not in json.loads(saved.read_text())["ranges"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ranges.json"]  # no partial file left


@pytest.mark.parametrize("kind", ["user file", "folder", "symbolic link"])
def test_save_ranges_never_replaces_what_is_not_a_ranges_file(tmp_path, kind):
    """Refused before any work, the path untouched: a user's file (their model,
    say), a folder, or a symbolic link."""
    target = tmp_path / "target"
    if kind == "user file":
        target.write_text("my notes")
    elif kind == "folder":
        target.mkdir()
    else:
        (tmp_path / "elsewhere.json").write_text('{"ranges": {}}')
        target.symlink_to(tmp_path / "elsewhere.json")
    with pytest.raises(OptionError, match=f"ranges file {target}"):
        parse_pipeline(f'quantize{{save_ranges="{target}"}}')
    assert kind != "user file" or target.read_text() == "my notes"
    assert kind != "symbolic link" or (tmp_path / "elsewhere.json").read_text() == '{"ranges": {}}'


def test_save_ranges_into_a_missing_folder_is_an_option_error(tmp_path):
    with pytest.raises(OptionError, match="cannot write ranges file"):
        _quantized(f'quantize{{save_ranges="{tmp_path / "missing" / "ranges.json"}"}}')
