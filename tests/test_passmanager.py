"""Pipeline strings: parse, print back, clear errors; the pass manager's records."""

from __future__ import annotations

import pytest

from nnc.errors import OptionError
from nnc.passmanager import PassManager, format_pipeline, parse_pipeline
from nnc.pipelines import CANONICAL


def test_canonical_pipeline_round_trips():
    assert format_pipeline(parse_pipeline(CANONICAL)) == CANONICAL


def test_options_print_back_when_not_default():
    text = "fold-constants{fold_dequantize=true},remove-identity"
    assert format_pipeline(parse_pipeline(text)) == text
    assert format_pipeline(parse_pipeline("fold-constants{fold_dequantize=false}")) == "fold-constants"


def test_empty_pipeline():
    assert parse_pipeline("") == [] and parse_pipeline("  ") == []


@pytest.mark.parametrize("text,message", [
    ("nope", "unknown pass 'nope'"),
    ("fold-constants{nope=1}", "has no option 'nope'"),
    ("fold-constants{fold_dequantize=3}", "wrong type"),
    ("fold-constants{", "bad pipeline"),
    ("a,,b", "bad pipeline"),
])
def test_errors(text, message):
    with pytest.raises(OptionError, match=message):
        parse_pipeline(text)


def test_records_and_dump(tmp_path):
    from nnc.frontend.onnx_loader import load
    from pathlib import Path

    graph = load(Path(__file__).resolve().parents[1] / "examples/01-tiny-cnn/tiny_cnn.onnx")
    dumped = []
    manager = PassManager(parse_pipeline(CANONICAL), verify_each=True, print_after={"all"},
                          dump=lambda name, g: dumped.append(name))
    out = manager.run(graph)
    assert [r.name for r in manager.records] == [p.strip() for p in CANONICAL.split(",")]
    assert dumped == [r.name for r in manager.records]
    assert len(out) < manager.records[0].nodes_before


@pytest.mark.parametrize("text,steps", [
    ("a", [("a", {})]),
    (" a { } , b-2 ", [("a", {}), ("b-2", {})]),
    ('a{x=1,y=-2.5e3,z=.5,w=5.,v=+3}', [("a", {"x": 1, "y": -2500.0, "z": 0.5, "w": 5.0, "v": 3})]),
    ('a{s="q\\"s,}",t=true,f=false,w=foo.bar:baz/q-1}',
     [("a", {"s": 'q"s,}', "t": True, "f": False, "w": "foo.bar:baz/q-1"})]),
    ("a{l=[1,[2, x]],e=[]}", [("a", {"l": [1, [2, "x"]], "e": []})]),
])
def test_pipeline_syntax(text, steps):
    from nnc.passmanager import _steps

    assert _steps(text) == steps


@pytest.mark.parametrize("text,message", [
    ("a,,b", r"expected a pass name at column 3, found ','"),
    ("a{x=1", r"expected ',' or '}' at column 6, found the end"),
    ("a b", r"expected ',' or the end at column 3, found 'b'"),
    ("a{X=1}", r"expected an option name at column 3, found 'X'"),
    ("a{x=[1,]}", r"expected a value at column 8, found '\]'"),
    ("a{x=3abc}", r"unexpected character '3' at column 5"),
    ('a{x="\\q"}', r"bad string"),
    ("a;b", r"unexpected character ';' at column 2"),
])
def test_pipeline_syntax_errors_name_the_column(text, message):
    with pytest.raises(OptionError, match=r"^bad pipeline .*: " + message):
        parse_pipeline(text)


@pytest.mark.parametrize("text,message", [
    ("quantize{weight_bits=\u0664}", r"unexpected character"),  # a digit, but not an ASCII one
    ("a{x=" + "[" * 40 + "]" * 40 + "}", r"lists nested deeper than 32"),
])
def test_pipeline_syntax_refuses_what_it_does_not_define(text, message):
    with pytest.raises(OptionError, match=message):
        parse_pipeline(text)


def test_a_pipeline_imports_only_its_own_passes():
    """Pass a-b lives in nnc/passes/a_b.py and is imported on first use; the
    registry of every pass (for errors and listings) is complete all the same."""
    import subprocess
    import sys

    code = ("import sys; from nnc.passmanager import parse_pipeline, available_passes; "
            "parse_pipeline('canonicalize,fold-constants'); "
            "print(sorted(m for m in sys.modules if m.startswith('nnc.passes.'))); "
            "print(sorted(available_passes()))")
    lines = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.splitlines()
    imported = eval(lines[0])  # noqa: S307 - our own printed list
    assert "nnc.passes.canonicalize" in imported and "nnc.passes.fold_constants" in imported
    assert "nnc.passes.prune" not in imported and "nnc.passes.quantize" not in imported
    assert {"canonicalize", "prune", "prune-channels", "quantize", "expose-states"} <= set(eval(lines[1]))  # noqa: S307


@pytest.mark.parametrize("pipeline, shown", [
    ('quantize{calib="/home/me/data/calib.npz"}', "quantize{calib=calib.npz}"),
    ('quantize{calib="../data/calib.npz",save_ranges="C:\\\\work\\\\r.json"}', "quantize{calib=calib.npz,save_ranges=r.json}"),
    ("quantize{calib=data/calib.npz,ranges=r.json}", "quantize{calib=calib.npz,ranges=r.json}"),
    ('canonicalize,quantize{calib="<calib arrays>",overrides="/conv1/Conv:4"}',
     'canonicalize,quantize{calib="<calib arrays>",overrides="/conv1/Conv:4"}'),
    ('prune{overrides="/a/b:0.5",calib="/x/y.npz"}', 'prune{overrides="/a/b:0.5",calib=y.npz}'),
])
def test_what_nnc_writes_keeps_only_the_file_names_of_path_options(pipeline, shown):
    """Artifacts name no folder and do not change with how a path was spelled;
    layer names with slashes (PyTorch's "/conv1/Conv") are not paths and stay
    whole (they were cut to "Conv:4")."""
    from nnc.passmanager import without_folders

    assert without_folders(pipeline) == shown
    assert without_folders(format_pipeline(parse_pipeline(pipeline))) == shown
