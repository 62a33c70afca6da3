"""Reports people look at (docs/reports.md): report.html and layers.csv beside
report.json, `nnc report` rendering them again, layer ids and full names,
the bits asked for apart from the storage code width, and per-layer errors
measured on what each layer was given."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import shutil
import subprocess
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

import nnc
from nnc.cli import run_cli
from nnc.memory_plan import Buffer, check
from nnc.output_folder import MANIFEST
from nnc.report import RENDERINGS, grid_bits, render_files
from nnc.report_csv import COLUMNS
from nnc.tables import shorten

from mlperf import MODELS_DIR, requires_models

DIGITS = Path(__file__).resolve().parents[1] / "examples" / "digits"
TINY = Path(__file__).resolve().parents[1] / "examples" / "01-tiny-cnn"
SECTIONS = {"c": {"summary", "layers", "charts", "memory", "passes"},
            "az-sim": {"summary", "layers", "charts", "sim", "passes"}}
EXTERNAL = ("http:", "https:", "//", "<script", "<link", "<img", "<iframe", "@import", "url(", "src=")


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """{target: output folder} of digits compiled at 4 bits, 50 % sparse (az-sim
    Huffman-packed, so that code widths differ from the bits asked for)."""
    folders = {}
    for target, extra in (("c", {}), ("az-sim", {"pack": "huffman"})):
        out = tmp_path_factory.mktemp("digits") / target
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            nnc.compile(DIGITS / "digits.onnx", target=target, output_dir=out, calib=DIGITS / "calib.npz",
                        weight_bits=4, sparsity=0.5, method="magnitude", **extra)
        folders[target] = out
    return folders


def _report(out: Path) -> dict:
    return json.loads((out / "report.json").read_text(encoding="utf-8"))


def _csv_rows(out: Path) -> list[dict]:
    return list(csv.DictReader(io.StringIO((out / "layers.csv").read_text(encoding="utf-8"))))


def _page(out: Path) -> ET.Element:
    """report.html parsed as XML: fails unless every element is closed."""
    text = (out / "report.html").read_text(encoding="utf-8")
    doctype, body = text.split("\n", 1)
    assert doctype == "<!DOCTYPE html>"
    return ET.fromstring(body)


@pytest.mark.parametrize("target", ["c", "az-sim"])
def test_compile_writes_one_csv_row_per_layer(digits, target):
    out, report = digits[target], _report(digits[target])
    rows = _csv_rows(out)
    assert list(rows[0]) == [c.key for c in COLUMNS]
    assert [r["name"] for r in rows] == [l["name"] for l in report["layers"]]  # full names, in order
    weighted = [r for r in rows if r["id"]]
    assert [r["id"] for r in weighted] == ["#1", "#2", "#3", "#4"]
    for row in weighted:
        assert row["bits"] == "4" and int(row["code_bits"]) >= 2 and 0 < float(row["sparsity"]) < 1
        assert int(row["stored_bytes"]) > 0 and int(row["macs"]) > 0
        assert 0.9 < float(row["cosine"]) <= 1 and float(row["rmse"]) >= 0
        assert (row["cycles"] != "" and float(row["energy_uj"]) > 0) == (target == "az-sim")
    manifest = json.loads((out / MANIFEST).read_text())["files"]
    for name in RENDERINGS:
        assert manifest[name] == hashlib.sha256((out / name).read_bytes()).hexdigest()


def test_bits_asked_and_code_width_are_separate_fields(digits):
    report = _report(digits["az-sim"])
    weighted = [l for l in report["layers"] if l["id"]]
    streams = report["sim"]["streams"]
    assert all(l["bits"] == 4 and l["code_bits"] == streams[l["name"]]["bits"] for l in weighted)
    assert any(l["code_bits"] != 4 for l in weighted)  # Huffman codes are not 4 bits wide
    assert "weight_bits" not in weighted[0]


@pytest.mark.parametrize("target", ["c", "az-sim"])
def test_html_is_self_contained_and_has_its_sections(digits, target):
    page = _page(digits[target])
    text = (digits[target] / "report.html").read_text(encoding="utf-8")
    assert not [marker for marker in EXTERNAL if marker in text]
    assert {s.get("id") for s in page.iter("section")} == SECTIONS[target]
    assert len(list(page.iter("svg"))) >= 5
    report = _report(digits[target])
    cells = {td.get("title") for td in page.iter("td") if td.get("title")}
    assert cells == {l["name"] for l in report["layers"]}  # every full name, as a tooltip
    assert {"#1", "#2", "#3", "#4"} <= {td.text for td in page.iter("td")}
    assert str(DIGITS) not in text  # the pipeline's calib path is cut to its file name


def test_a_model_of_recurrent_layers_alone_gets_its_charts(tmp_path):
    """An LSTM's weights are charted with its MACs (the section was left out
    while recurrent layers had no weight columns)."""
    import onnx
    from rnn_models import Spec, model

    onnx.save(model(Spec("LSTM", steps=3, batch=1, inputs=4, hidden=5)), tmp_path / "lstm.onnx")
    nnc.compile(tmp_path / "lstm.onnx", "az-sim", tmp_path / "out", verify=False)
    (charts,) = [s for s in _page(tmp_path / "out").iter("section") if s.get("id") == "charts"]
    assert [h.text for h in charts.iter("h3")] == [
        "Stored bytes per layer (fp32 behind)", "Weight bits asked (code width of the storage format behind)",
        "Weight sparsity (share of zero weights)", "Multiply-accumulates per layer"]


def test_recurrent_weights_count_in_the_headline_with_their_own_rows(tmp_path):
    """An LSTM with a Gemm head at 4 bits: the headline said 8x from the head
    alone while the LSTM's int8 weights, nearly all of them, sat in other_bytes."""
    import onnx
    from rnn_models import keyword_spotter, samples

    m = keyword_spotter("LSTM", hidden=16, frames=6, features=4, classes=3)
    onnx.save(m, tmp_path / "kws.onnx")
    result = nnc.compile(tmp_path / "kws.onnx", "az-sim", tmp_path / "out", calib=samples(m, 16), weight_bits=4,
                         method="magnitude")
    report = result.report
    weights, rows = report["weights"], {l["op"]: l for l in report["layers"]}
    lstm, head = rows["QLSTM"], rows["QGemm"]
    recurrent = 4 * 16 * 4 + 4 * 16 * 16  # W [1, 64, 4] and R [1, 64, 16], int8
    assert weights["weights"] == recurrent + 16 * 3 and weights["fp32_bytes"] == 4 * weights["weights"]
    assert weights["kept_weights"] == weights["kept_bytes"] == recurrent == lstm["weight_bytes"]
    assert weights["stored_bytes"] == recurrent + head["weight_bytes"] and weights["compression"] < 4.1
    assert weights["other_bytes"] == sum(l["stored_bytes"] - l["weight_bytes"] for l in report["layers"])
    assert (lstm["id"], lstm["format"], lstm["bits"], lstm["code_bits"]) == (None, "dense", 8, 8)
    assert lstm["stored_bytes"] == recurrent + 4 * 4 * 16  # and its int32 bias
    assert lstm["error"]["cosine"] > 0.99 and head["id"] == "#1"
    page = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    assert f"{recurrent:,} of them ({recurrent:,} bytes) in recurrent layers and embedding tables" in page
    old = json.loads(json.dumps(report))
    for key in ("kept_weights", "kept_bytes"):
        del old["weights"][key]  # a report of an earlier nnc renders as it did
    assert "recurrent layers and embedding tables" not in render_files(old)["report.html"]


def test_an_embedding_table_is_a_weight_with_its_row_and_error(tmp_path):
    import onnx
    from rnn_models import predictor, token_samples

    m = predictor(vocabulary=12, width=6, hidden=8)
    onnx.save(m, tmp_path / "predictor.onnx")
    result = nnc.compile(tmp_path / "predictor.onnx", "ir", quantize=True, calib=token_samples(m, 16))
    (table,) = [l for l in result.report["layers"] if l["op"] == "Gather"]
    graph_table = result.graph.tensor(result.graph.node("embed").inputs[0])
    zero_point = graph_table.quant.zero_point[0]
    assert (table["format"], table["bits"], table["weight_bytes"]) == ("dense", 8, 12 * 6)
    assert table["sparsity"] == np.count_nonzero(graph_table.data == zero_point) / 72  # zeros stand at the zero point
    assert table["error"]["cosine"] > 0.999
    (lstm,) = [l for l in result.report["layers"] if l["op"] == "QLSTM"]
    assert lstm["error"]["cosine"] > 0.99  # on its output Y
    weights = result.report["weights"]
    assert weights["weights"] == weights["kept_weights"] == 72 + 4 * 8 * 6 + 4 * 8 * 8
    assert weights["stored_bytes"] == weights["kept_bytes"] and weights["compression"] == 4.0


def test_memory_section_places_every_buffer(digits):
    memory = _report(digits["c"])["memory"]
    buffers = memory["buffers"]
    assert buffers and all(set(b) == {"tensor", "offset", "bytes", "first", "last", "in_place_of"} for b in buffers)
    index = {b["tensor"]: i for i, b in enumerate(buffers)}
    planned = [Buffer(b["bytes"], b["first"], b["last"], b["tensor"], index.get(b["in_place_of"])) for b in buffers]
    check(planned, [b["offset"] for b in buffers])  # no two live buffers overlap
    assert max(b["offset"] + b["bytes"] for b in buffers) <= memory["arena_bytes"]
    assert max(b["last"] for b in buffers) < len(memory["steps"])
    svg = next(s for s in _page(digits["c"]).iter("section") if s.get("id") == "memory").find(".//svg")
    assert len([r for r in svg.iter("rect") if r.get("class") == "buffer"]) == sum(1 for b in buffers if b["bytes"])


def test_nnc_report_renders_the_same_bytes_again(digits, tmp_path):
    out = digits["az-sim"]
    compiled = {name: (out / name).read_bytes() for name in RENDERINGS}
    assert run_cli(["report", str(out / "report.json"), "-o", str(tmp_path / "again")]) == 0
    assert run_cli(["report", str(out / "report.json")]) == 0  # in place: the manifest stays valid
    for name, data in compiled.items():
        assert (tmp_path / "again" / name).read_bytes() == data == (out / name).read_bytes()


def test_nnc_report_replaces_its_own_files_and_records_them(digits, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(digits["c"], out)
    old = b"<p>an older nnc's page</p>\n"
    (out / "report.html").write_bytes(old)
    manifest = json.loads((out / MANIFEST).read_text())
    manifest["files"]["report.html"] = hashlib.sha256(old).hexdigest()
    (out / MANIFEST).write_text(json.dumps(manifest))
    assert run_cli(["report", str(out / "report.json")]) == 0
    recorded = json.loads((out / MANIFEST).read_text())["files"]["report.html"]
    written = hashlib.sha256((out / "report.html").read_bytes()).hexdigest()
    assert recorded == written != manifest["files"]["report.html"]


def test_nnc_report_into_a_new_folder_starts_its_manifest(digits, tmp_path):
    """The files `nnc report -o NEW` writes are nnc's: a later rendering of
    another report and a compile into the folder replace them (both refused
    them as a user's, the folder having no manifest)."""
    new = tmp_path / "new"
    assert run_cli(["report", str(digits["c"] / "report.json"), "-o", str(new)]) == 0
    assert sorted(json.loads((new / MANIFEST).read_text())["files"]) == sorted(RENDERINGS)
    assert run_cli(["report", str(digits["az-sim"] / "report.json"), "-o", str(new)]) == 0
    result = nnc.compile(DIGITS / "digits.onnx", "ir", new, verify=False)
    assert sorted(json.loads((new / MANIFEST).read_text())["files"]) == sorted(
        a for a in result.artifacts if a != MANIFEST)


def test_a_folder_nnc_cannot_write_is_an_option_error(digits, tmp_path, monkeypatch, capsys):
    """A read-only or immutable folder (here: every rename refused) is one error
    line, exit 2, for nnc report and for a compile's commit (both exit 3 before)."""
    import os

    out = tmp_path / "out"
    shutil.copytree(digits["c"], out)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}

    def refused(*args, **kwargs):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "replace", refused)
    assert run_cli(["report", str(out / "report.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot write into output folder" in err[0]
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before  # no partial file left
    with pytest.raises(nnc.errors.OptionError, match=f"cannot write output folder {out}: Operation not permitted"):
        nnc.compile(DIGITS / "digits.onnx", "ir", out, verify=False)


def test_nnc_report_keeps_a_users_file(digits, tmp_path, capsys):
    (tmp_path / "layers.csv").write_text("mine\n")
    assert run_cli(["report", str(digits["c"] / "report.json"), "-o", str(tmp_path)]) == 2
    assert (tmp_path / "layers.csv").read_text() == "mine\n" and not (tmp_path / "report.html").exists()
    assert "layers.csv exists and nnc did not write it" in capsys.readouterr().err


@pytest.mark.parametrize("content", ["not json", "[]", '{"layers": []}'])
def test_nnc_report_refuses_what_is_no_report(tmp_path, capsys, content):
    (tmp_path / "report.json").write_text(content)
    assert run_cli(["report", str(tmp_path / "report.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("nnc: error: report ")


@pytest.mark.parametrize("spoil", ["model is a string", "cycles overflow a float"])
def test_nnc_report_refuses_a_report_with_malformed_fields(digits, tmp_path, capsys, spoil):
    """Well-formed JSON with fields of the wrong kind (a hand-edited report) is one
    error line, exit 2, and nothing written; it was an internal error, exit 3."""
    report = _report(digits["az-sim"])
    if spoil == "model is a string":
        report["model"] = "kws"
    else:
        report["sim"]["layers"][0]["cycles"] = 10**400
    (tmp_path / "report.json").write_text(json.dumps(report))
    assert run_cli(["report", str(tmp_path / "report.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("nnc: error: report ") and "cannot render it" in err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]


def test_two_compiles_write_the_same_renderings(tmp_path):
    for name in ("a", "b"):
        nnc.compile(TINY / "tiny_cnn.onnx", target="ir", output_dir=tmp_path / name, quantize=True,
                    calib=TINY / "sample.npz")
    for name in RENDERINGS:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    report = _report(tmp_path / "a")
    assert render_files(report)["report.html"] == (tmp_path / "a" / "report.html").read_text(encoding="utf-8")


def test_layer_errors_do_not_accumulate():
    """Each layer is measured alone on the float graph's values: a 2-bit first
    layer leaves the other layers' errors exactly as they are at 8 bits."""
    def errors(**options):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = nnc.compile(DIGITS / "digits.onnx", target="ir", quantize=True, calib=DIGITS / "calib.npz",
                                 method="magnitude", **options)
        return {l["id"]: l["error"] for l in result.report["layers"] if l["id"]}

    int8, first_at_2 = errors(), errors(layer_bits="#1:2")
    assert first_at_2["#1"]["cosine"] < int8["#1"]["cosine"] - 0.01
    assert {k: v for k, v in first_at_2.items() if k != "#1"} == {k: v for k, v in int8.items() if k != "#1"}


def test_every_linear_layer_of_a_sequence_model_gets_its_error(tmp_path):
    """A MatMul on the rows of a [1, T, D] activation becomes Reshape, QGemm,
    Reshape: its error is measured through the Reshapes, so each such layer has
    one, and a 3-bit layer pays more than its 8-bit neighbours."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(3)
    widths = [(8, 16), (16, 16), (16, 4)]
    nodes = [helper.make_node("MatMul", ["x", "w0"], ["h0"]), helper.make_node("Relu", ["h0"], ["r0"]),
             helper.make_node("MatMul", ["r0", "w1"], ["h1"]), helper.make_node("Relu", ["h1"], ["r1"]),
             helper.make_node("MatMul", ["r1", "w2"], ["y"])]
    inits = [numpy_helper.from_array(rng.normal(0, 0.4, shape).astype(np.float32), f"w{i}")
             for i, shape in enumerate(widths)]
    graph = helper.make_graph(nodes, "rows", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 6, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 6, 4])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "rows.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = nnc.compile(tmp_path / "rows.onnx", target="ir", quantize=True, layer_bits="#2:3")
    weighted = {l["id"]: l for l in result.report["layers"] if l["id"]}
    assert [l["op"] for l in weighted.values()] == ["QGemm"] * 3 and all(l["error"] for l in weighted.values())
    assert weighted["#2"]["error"]["cosine"] < min(weighted[i]["error"]["cosine"] for i in ("#1", "#3")) - 0.001


def test_a_batched_constant_matmul_operand_is_not_a_weighted_layer(tmp_path):
    """Attention's position scores multiply a rank-4 constant: an int8 QMatMul
    operand (docs/numerics.md §12), neither pruned nor narrowed as a layer's
    weights, and listed without a layer id."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    constant = np.random.default_rng(4).normal(0, 1, (1, 2, 8, 7)).astype(np.float32)
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "p"], ["y"])], "scores",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 4, 7])],
                              [numpy_helper.from_array(constant, "p")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "scores.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = nnc.compile(tmp_path / "scores.onnx", target="ir", quantize=True, sparsity=0.5, weight_bits=4)
    (matmul,) = [n for n in result.graph.nodes() if n.op == "QMatMul"]
    operand = result.graph.constant(matmul.inputs[1])
    assert np.count_nonzero(operand == 0) < operand.size // 10 and len(np.unique(operand)) > 16
    assert not [l for l in result.report["layers"] if l["id"]]


@requires_models
def test_untouched_int8_model_shows_per_layer_cosine_one(tmp_path):
    name = "kws_dscnn_int8_qdq"
    with np.load(MODELS_DIR / f"{name}.io.npz") as data:
        np.savez(tmp_path / "input.npz", input=data["input"])
    result = nnc.compile(MODELS_DIR / f"{name}.onnx", target="ir", quantize=True, inputs=tmp_path / "input.npz")
    weighted = [l for l in result.report["layers"] if l["id"]]
    assert len(weighted) == 10 and result.report["verification"]["vs_float"]["max_abs_diff"] == 0
    assert all(l["error"] == {"cosine": 1.0, "rmse": 0.0} and l["bits"] == 8 for l in weighted)


def test_control_characters_in_names_keep_pages_and_tables_whole(tmp_path, capsys):
    import onnx

    model = onnx.load(TINY / "tiny_cnn.onnx")
    for i, node in enumerate(model.graph.node):
        node.name = f"layer\x01{i}\nnext"
    onnx.save(model, tmp_path / "odd.onnx")
    out = tmp_path / "out"
    result = nnc.compile(tmp_path / "odd.onnx", target="c", output_dir=out, calib=TINY / "sample.npz")
    page = _page(out)  # well-formed: the control characters are shown escaped
    assert re.search(r"layer\\x01\d+\\nnext", ET.tostring(page, encoding="unicode"))
    assert run_cli(["inspect", str(tmp_path / "odd.onnx")]) == 0
    table = capsys.readouterr().out.split("\n\n")[0].splitlines()
    assert len(table) == 2 + len([l for l in nnc.load(tmp_path / "odd.onnx").nodes()])
    assert any(l["name"].startswith("layer\x01") for l in result.report["layers"])  # report.json keeps them


def test_warnings_on_the_page_name_no_folder(digits):
    from nnc.report_html import render_html

    report = _report(digits["c"])
    report["warnings"] = ["onnxruntime cannot run /home/someone/models/m.onnx: index 5 out of 1/2"]
    page = render_html(report)
    assert "/home/someone" not in page and "cannot run m.onnx: index 5 out of 1/2" in page


def test_names_that_would_look_alike_keep_where_they_differ():
    """KWS's depthwise layers differ in one digit in the middle of ~200
    characters: cut in the middle, rows #2, #4, #6 and #8 printed alike."""
    from nnc.tables import shorten_apart

    names = [f"functional_1/activation_{i}/Relu;functional_1/batch_normalization_{i}/FusedBatchNormV3;"
             f"functional_1/depthwise_conv2d/BiasAdd/ReadVariableOp/resource1_prequant" for i in (1, 3, 5, 7)]
    long_head = ["p" * 100 + tail + "q" * 100 for tail in ("A", "B")]
    shown = shorten_apart([*names, "conv", "conv", *long_head], 48)
    assert len(set(shown[:4])) == 4 and all(len(s) == 48 for s in shown[:4])
    assert shown[4:6] == ["conv", "conv"] and shown[6] != shown[7] and len(shown[6]) == 48
    assert shorten_apart(["a" * 60, "b" * 60], 48) == [shorten("a" * 60, 48), shorten("b" * 60, 48)]


def test_names_are_shortened_in_the_middle():
    stem = "functional_1/activation_{}/Relu;" + "functional_1/batch_normalization/FusedBatchNormV3;" * 3
    names = [stem.format(i) + f"depthwise_conv2d_{i}/resource{i}_prequant" for i in range(4)]
    short = [shorten(name, 56) for name in names]
    assert all(len(s) == 56 and "…" in s for s in short)
    assert len(set(short)) == 4  # they differ at both ends, and both ends are kept
    assert short[0].startswith("functional_1/activation_0/") and short[0].endswith("resource0_prequant")
    assert shorten("conv1", 56) == "conv1"


@pytest.mark.parametrize("values, codebook, bits", [
    ([-7, 0, 7], False, 4), ([-127, 3, 127], False, 8), ([-128, 5], False, 8), ([-1, 1], False, 2),
    ([0, 0], False, 2), (list(range(-60, 60, 8)), True, 4), ([-90, 0, 17, 90], True, 2)])
def test_grid_bits(values, codebook, bits):
    assert grid_bits(np.array(values, np.int8), codebook) == bits


def test_grid_bits_of_float_weights_is_none():
    assert grid_bits(np.ones(3, np.float32), False) is None


@pytest.mark.skipif(shutil.which("chromium") is None, reason="no headless Chromium (apt-get install chromium)")
@pytest.mark.parametrize("target", ["c", "az-sim"])
def test_report_opens_in_a_headless_browser(digits, target, tmp_path):
    shot = tmp_path / "report.png"
    proc = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1400,3000",
                           f"--screenshot={shot}", (digits[target] / "report.html").as_uri()],
                          check=False, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert shot.stat().st_size > 20_000  # a page with tables and charts, not a blank one
    assert "Failed to load" not in proc.stderr and "ERR_" not in proc.stderr


def test_svg_text_is_escaped_as_html_escape_does():
    import html

    from nnc.report_svg import escape

    text = "a<b>&c\"d'e &amp; \x00é"
    assert escape(text) == html.escape(text)
