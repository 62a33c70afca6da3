"""`nnc explore`: sweep values checked up front, the Pareto front, and the same
files whichever runner evaluated the points (one process, a pool, Ray)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from nnc.cli import run_cli
from nnc.errors import NncWarning, OptionError
from nnc.explore import explore
from nnc.explore_pareto import pareto_front
from nnc.explore_spec import build_sweep

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "01-tiny-cnn"
MODEL, SAMPLES = EXAMPLE / "tiny_cnn.onnx", EXAMPLE / "sample.npz"
SWEEP = {"bits": "8,4", "lanes": "32,64"}
COMPARED = ("points.csv", "front.csv", "front.svg")


@pytest.fixture(scope="module")
def one_job(tmp_path_factory):
    """The 2 x 2 sweep run in this process: the files every runner must reproduce."""
    out = tmp_path_factory.mktemp("explore") / "one"
    result = explore(MODEL, out, SWEEP, calib=SAMPLES, jobs=1)
    return result, {name: (out / name).read_bytes() for name in COMPARED}


# -- the Pareto front ------------------------------------------------------------------

def test_front_keeps_only_undominated_rows():
    rows = [[1, 5], [2, 2], [5, 1], [3, 3], [2, 2.5]]
    assert pareto_front(rows) == [0, 1, 2]
    assert pareto_front([[3, 3], [2, 2]]) == [1] and pareto_front([[1, 5], [5, 1]]) == [0, 1]


def test_front_keeps_equal_rows_and_handles_edges():
    assert pareto_front([[1, 1], [1, 1], [2, 2]]) == [0, 1]
    assert pareto_front([]) == []
    assert pareto_front([[7, 7, 7, 7]]) == [0]
    with pytest.raises(ValueError):
        pareto_front([[1, float("nan")]])


# -- the sweep -------------------------------------------------------------------------

def test_sweep_parses_sizes_and_orders_axes_canonically():
    sweep = build_sweep({"weight-sram": "64K,128K", "lanes": "32,64", "sparsity": "0,0.5", "bits": "8,4"})
    assert list(sweep.compression) == ["weight_bits", "sparsity"]
    assert list(sweep.hardware) == ["mac_lanes", "weight_sram_bytes"]
    assert sweep.hardware["weight_sram_bytes"] == (65536, 131072)
    points = sweep.points()
    assert len(points) == 16 and [p.index for p in points] == list(range(16))
    assert points[1].label() == "bits=8 sparsity=0 lanes=32 weight-sram=131072"


def test_sweep_file_equals_flags(tmp_path):
    spec = tmp_path / "sweep.toml"
    spec.write_text('[compression]\nweight_bits = [8, 4]\nsparsity_pattern = ["none", "2:4"]\n'
                    '[hardware]\nmac_lanes = [32, 64]\nweight_sram_bytes = "64K"\n')
    from_file = build_sweep({}, spec)
    from_flags = build_sweep({"bits": "8,4", "pattern": "none,2:4", "lanes": "32,64", "weight-sram": "64K"})
    assert from_file.points() == from_flags.points()
    assert build_sweep({"lanes": "128"}, spec).hardware["mac_lanes"] == (128,)  # a flag replaces the file's axis


@pytest.mark.parametrize("flag, value, expected", [
    ("--bits", "8,9", "weight_bits must be in 2..8, got 9"),
    ("--lanes", "0,64", "'mac_lanes' must be an integer in [1, 65,536]"),
    ("--weight-sram", "64Q", "expected an integer"),
    ("--sparsity", "0,1.5", "sparsity must be in [0, 1)"),
    ("--pattern", "3:2", "sparsity-pattern"),
    ("--method", "magnitude,best", "method"),
    ("--lanes", "32,32", "listed twice"),
    ("--bits", "8,", "--bits '8,': expected comma-separated values, e.g. --bits 8,4"),
    ("--lanes", ",".join(map(str, range(1, 1100))), "past nnc's limit of 1,024"),
    ("--jobs", "0", "--jobs must be in 1..256"),
])
def test_bad_sweep_value_is_one_line_exit_2(tmp_path, capsys, flag, value, expected):
    code = run_cli(["explore", str(MODEL), "-o", str(tmp_path / "out"), "--calib", str(SAMPLES), flag, value])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("nnc: error: ") and expected in lines[0], lines
    assert not (tmp_path / "out").exists()


def test_bad_sweep_value_in_the_api_names_no_flag():
    with pytest.raises(OptionError, match=r"^sweep bits '8,': expected comma-separated values, e.g. '8,4'$"):
        build_sweep({"bits": "8,"})


def test_bad_sweep_file_key(tmp_path):
    spec = tmp_path / "sweep.toml"
    spec.write_text("[hardware]\nmac_lanez = [32]\n")
    with pytest.raises(OptionError, match="'mac_lanez' is not a hardware key"):
        build_sweep({}, spec)


# -- running the points ----------------------------------------------------------------

def test_points_front_and_files(one_job, tmp_path):
    result, files = one_job
    assert [row["index"] for row in result.points] == [0, 1, 2, 3]
    assert all(row["status"] == "ok" for row in result.points)
    # energy does not depend on the lanes, latency does: 64 lanes dominate 32 at equal bits
    assert result.points[1]["energy_uj"] == result.points[0]["energy_uj"]
    assert result.points[1]["latency_ms"] < result.points[0]["latency_ms"]
    assert result.front == [1, 3]
    assert result.points[2]["blob_bytes"] < result.points[0]["blob_bytes"]  # 4-bit weights store less
    lines = files["points.csv"].decode().splitlines()
    assert lines[0].startswith("point,status,bits,lanes,energy_uj,latency_ms,blob_bytes,error")
    assert len(lines) == 5 and len(files["front.csv"].decode().splitlines()) == 3
    assert files["front.svg"].startswith(b'<svg xmlns="http://www.w3.org/2000/svg"')
    assert files["front.svg"].count(b'class="front"') == 2 * 2  # two panels


def test_pool_of_two_writes_the_same_files(one_job, tmp_path):
    out = tmp_path / "pool"
    explore(MODEL, out, SWEEP, calib=SAMPLES, jobs=2)
    assert {name: (out / name).read_bytes() for name in COMPARED} == one_job[1]
    manifest = json.loads((out / "nnc-manifest.json").read_text())
    assert sorted(manifest["files"]) == sorted([*COMPARED, "explore.json"])
    assert json.loads((out / "explore.json").read_text())["runner"] == {"kind": "local", "jobs": 2,
                                                                         "ray_address": None}


@pytest.mark.parametrize("tmpdir", ["short", "long"])
def test_workers_leave_no_temporary_folder(tmpdir, tmp_path):
    """Each worker copies the model and data into a temporary folder; pool
    workers leave through multiprocessing, which skips TemporaryDirectory's own
    clean-up, so the folders must go with the worker's own finalizers. A TMPDIR
    too long for the fork server's socket path makes the pool spawn its workers."""
    scratch = Path(tempfile.mkdtemp(prefix="nnc-t")) if tmpdir == "short" else tmp_path / ("d" * 100)
    scratch.mkdir(exist_ok=True)
    script = ("import sys; from pathlib import Path; from nnc.explore import explore; "
              "explore(Path(sys.argv[1]), Path(sys.argv[2]), {'bits': '8,4'}, calib=Path(sys.argv[3]), jobs=2)")
    try:
        subprocess.run([sys.executable, "-c", script, str(MODEL), str(tmp_path / "out"), str(SAMPLES)], check=True,
                       env={**os.environ, "TMPDIR": str(scratch)}, capture_output=True)
        left = [p.name for p in scratch.iterdir() if p.name.startswith("nnc-explore-")]
    finally:
        if tmpdir == "short":
            shutil.rmtree(scratch)
    assert (tmp_path / "out" / "explore.json").exists() and not left


def test_ray_writes_the_same_files(one_job, tmp_path, monkeypatch):
    """...and leaves no copy of the files behind: Ray ends its workers without
    running their finalizers (each run left two nnc-explore-* folders)."""
    pytest.importorskip("ray", reason="Ray is an optional extra (pip install 'nnc[ray]')")
    out = tmp_path / "ray"
    scratch = Path(tempfile.mkdtemp(prefix="nnc-t"))  # short: Ray's socket paths live in TMPDIR
    monkeypatch.setenv("TMPDIR", str(scratch))  # the private Ray's workers inherit it
    try:
        # Ray 2.60 removed local_mode: "local" starts a private local Ray with --jobs CPUs
        explore(MODEL, out, SWEEP, calib=SAMPLES, jobs=2, ray="local")
        left = [p.name for p in scratch.iterdir() if p.name.startswith("nnc-explore-")]
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    assert {name: (out / name).read_bytes() for name in COMPARED} == one_job[1]
    assert not left


def test_ray_missing_is_one_option_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    with pytest.raises(OptionError, match=r"^ray='local' needs Ray; install it with pip install 'nnc\[ray\]'$"):
        explore(MODEL, tmp_path / "out", {"bits": "8"}, calib=SAMPLES, ray="local")
    assert not (tmp_path / "out").exists()
    code = run_cli(["explore", str(MODEL), "-o", str(tmp_path / "out"), "--calib", str(SAMPLES), "--bits", "8",
                    "--ray", "local"])
    assert code == 2 and capsys.readouterr().err.splitlines() == [
        "nnc: error: --ray needs Ray; install it with pip install 'nnc[ray]'"]


def test_no_samples_is_warned_of_naming_the_keywords_and_the_flags():
    with pytest.warns(NncWarning, match=r"^no calib or inputs \(--calib, --inputs\): points are calibrated and "
                                        "measured on synthetic random samples$"):
        explore(MODEL, None, {"bits": "8"}, samples=1)


def test_failed_point_is_recorded_not_fatal(tmp_path, capsys):
    out = tmp_path / "small"
    code = run_cli(["explore", str(MODEL), "-o", str(out), "--calib", str(SAMPLES), "--weight-sram", "1,128K"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    rows = (out / "points.csv").read_text().splitlines()
    assert rows[1].startswith("0,failed,1,") and "az-default point 0" in rows[1]
    assert rows[2].startswith("1,ok,131072,")
    assert "1 failed" in captured.out and "point 0: failed:" in captured.err


def test_refuses_a_folder_it_does_not_own(tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    code = run_cli(["explore", str(MODEL), "-o", str(out), "--calib", str(SAMPLES), "--bits", "8"])
    assert code == 2 and "holds no nnc-manifest.json" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_tasks_keep_a_compression_setting_together():
    from nnc.explore_runners import split_tasks

    points = build_sweep({"bits": "8,4", "lanes": "32,64,128"}).points()
    tasks = lambda jobs: [[p.index for p in task] for task in split_tasks(points, jobs)]  # noqa: E731
    assert tasks(1) == tasks(2) == [[0, 1, 2], [3, 4, 5]]
    assert tasks(4) == [[0, 1], [2], [3, 4], [5]]
    assert sorted(i for task in tasks(8) for i in task) == list(range(6))


# -- review fixes: compile once per setting, lower per machine, fail early -------------

def test_worker_blob_equals_compile_for_that_machine(tmp_path):
    import dataclasses

    from nnc.backends.azsim.hardware import load_hardware
    from nnc.driver import CompileOptions, compile, compile_graph
    from nnc.explore_worker import _stored_bytes, lower

    compiled = compile(MODEL, "az-sim", tmp_path / "out", hw="large", calib=SAMPLES, weight_bits=4, verify=False)
    graph = compile_graph(MODEL, CompileOptions(target="az-sim", calib=SAMPLES, weight_bits=4))
    machine = dataclasses.replace(load_hardware("large"), name="az-large point 7")  # as a worker names it
    program, blob = lower(graph, machine, "auto")
    assert blob == (tmp_path / "out" / "tiny_cnn.azb").read_bytes()
    assert _stored_bytes(graph, program) == compiled.report["weights"]["stored_bytes"]


def test_weight_bytes_count_recurrent_weights_as_compile_does(tmp_path):
    import numpy as np
    import onnx
    from rnn_models import keyword_spotter, samples

    from nnc.backends.azsim.hardware import load_hardware
    from nnc.driver import CompileOptions, compile, compile_graph
    from nnc.explore_worker import _stored_bytes, lower

    m = keyword_spotter("GRU", hidden=8, frames=4, features=3, classes=4)
    model, calib = tmp_path / "kws.onnx", tmp_path / "calib.npz"
    onnx.save(m, model)
    np.savez(calib, **samples(m))
    compiled = compile(model, "az-sim", calib=calib, weight_bits=4, verify=False)
    graph = compile_graph(model, CompileOptions(target="az-sim", calib=calib, weight_bits=4))
    program, _ = lower(graph, load_hardware("default"), "auto")
    assert _stored_bytes(graph, program) == compiled.report["weights"]["stored_bytes"]
    assert compiled.report["weights"]["kept_bytes"] == 3 * 8 * (3 + 8)


def test_model_that_fits_only_the_larger_base_machine(tmp_path):
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper, save

    width = 140_000  # one output channel of int8 weights: past the default machine's weight SRAM, not large's
    weights = numpy_helper.from_array(np.random.default_rng(0).standard_normal((1, width)).astype(np.float32), "w")
    graph = helper.make_graph([helper.make_node("Gemm", ["x", "w"], ["y"], transB=1)], "big",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, width])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1])], [weights])
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "big.onnx")
    with pytest.warns(Warning):
        result = explore(tmp_path / "big.onnx", None, {"bits": "8"}, hw="large", samples=1)
    assert [row["status"] for row in result.points] == ["ok"], result.points[0]["reason"]
    assert 0 < result.points[0]["weight_bytes"] <= width


@pytest.mark.parametrize("bad", ["model", "calib"])
def test_bad_model_or_samples_is_one_error_before_any_point(tmp_path, capsys, bad):
    import numpy as np

    model, calib = MODEL, SAMPLES
    if bad == "model":
        model = tmp_path / "garbage.onnx"
        model.write_bytes(b"not an onnx model")
    else:
        calib = tmp_path / "wrong.npy"
        np.save(calib, np.zeros((2, 3), np.float32))
    code = run_cli(["explore", str(model), "-o", str(tmp_path / "out"), "--calib", str(calib), "--bits", "8"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("nnc: error:") and len(err.strip().splitlines()) == 1, err
    assert "point" not in err and "nnc-explore-" not in err and "internal" not in err
    assert not (tmp_path / "out").exists()


def test_every_point_failing_is_an_error_and_writes_nothing(tmp_path, capsys):
    code = run_cli(["explore", str(MODEL), "-o", str(tmp_path / "out"), "--calib", str(SAMPLES), "-q",
                    "--weight-sram", "1,2"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("nnc: error: all 2 points failed") and "point 0" in err, err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_point_limit_is_checked_before_the_combinations(monkeypatch):
    import nnc.explore_spec as spec

    monkeypatch.setattr(spec, "_compression_axes", lambda *a: pytest.fail("combinations checked first"))
    values = ",".join(str(v / 1000) for v in range(40))
    with pytest.raises(OptionError, match=r"sweep has 1,600 points \(40 x 40\)"):
        build_sweep({"sparsity": values, "prune-channels": values})
