"""The command line as a user meets it: exit codes, one-line errors, outputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

import nnc
from nnc.console import BLAS_THREAD_VARIABLES

from mlperf import MODELS_DIR, requires_models

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "01-tiny-cnn"
DIGITS_MODEL = Path(__file__).resolve().parents[1] / "examples" / "digits" / "digits.onnx"
DIGITS_CALIB = DIGITS_MODEL.parent / "calib.npz"


def nnc_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "nnc.cli", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd)


def _assert_one_line_error(proc):
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nnc: error: "), proc.stderr
    assert "Traceback" not in proc.stderr


def test_version():
    proc = nnc_cli("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"nnc {nnc.__version__}"


def test_missing_model(tmp_path):
    proc = nnc_cli("inspect", tmp_path / "nope.onnx")
    _assert_one_line_error(proc)
    assert "no such model file" in proc.stderr


def test_truncated_model(tmp_path):
    data = (EXAMPLE / "tiny_cnn.onnx").read_bytes()
    bad = tmp_path / "truncated.onnx"
    bad.write_bytes(data[: len(data) // 2])
    proc = nnc_cli("compile", bad, "-o", tmp_path / "out")
    _assert_one_line_error(proc)
    assert not (tmp_path / "out").exists()


def _model_with_unsupported_ops(path: Path) -> None:
    nodes = [helper.make_node("Relu", ["x"], ["a"], name="ok"),
             helper.make_node("Hardmax", ["a"], ["b"], name="hardmax_1"),
             helper.make_node("Hardmax", ["b"], ["c"], name="hardmax_2"),
             helper.make_node("Det", ["c"], ["y"], name="det")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


@pytest.mark.parametrize("target", ["ir", "c", "az-sim"])
def test_unsupported_ops_listed_once(tmp_path, target):
    """One line naming every unsupported op, its nodes and the target."""
    _model_with_unsupported_ops(tmp_path / "m.onnx")
    proc = nnc_cli("compile", tmp_path / "m.onnx", "--target", target, "-o", tmp_path / "out")
    _assert_one_line_error(proc)
    for fragment in (f"target {target}:", "Hardmax (nodes 'hardmax_1', 'hardmax_2')", "Det (node 'det')",
                     "opset-17"):
        assert fragment in proc.stderr
    assert not (tmp_path / "out").exists()


def test_hundreds_of_one_unsupported_op_are_counted_not_listed(tmp_path):
    """An unrolled graph can hold hundreds of one op: the line names five."""
    nodes = [helper.make_node("Hardmax", [f"t{i}"], [f"t{i + 1}"], name=f"h{i}") for i in range(300)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("t0", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("t300", TensorProto.FLOAT, [1, 4])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "m.onnx")
    proc = nnc_cli("compile", tmp_path / "m.onnx", "-o", tmp_path / "out")
    _assert_one_line_error(proc)
    assert "Hardmax (300 nodes: 'h0', 'h1', 'h2', 'h3', 'h4' and 295 more)" in proc.stderr and "'h5'" not in proc.stderr


def test_a_target_s_list_of_problems_stays_a_list_on_one_line(tmp_path):
    """az-sim refuses a float graph node by node: one line, the problems
    separated by '; ' (the lines of the message ran together)."""
    proc = nnc_cli("compile", EXAMPLE / "tiny_cnn.onnx", "--target", "az-sim", "--no-quantize", "-o", tmp_path / "o")
    _assert_one_line_error(proc)
    assert "node(s): Conv node 'conv1': the chip does not run Conv; Conv node 'dwconv':" in proc.stderr


@pytest.mark.parametrize("args", [
    ["--pipeline", "no-such-pass"],
    ["--pipeline", "canonicalize{bogus=1}"],
    ["--target", "fpga"],
    ["--input-shape", "input=1,x"],
    ["--inputs", "missing.npz"],
])
def test_bad_options(tmp_path, args):
    proc = nnc_cli("compile", EXAMPLE / "tiny_cnn.onnx", "-o", tmp_path / "out", *args, cwd=tmp_path)
    _assert_one_line_error(proc)
    assert not (tmp_path / "out").exists()


def test_wrong_shaped_samples(tmp_path):
    import numpy as np

    np.savez(tmp_path / "bad.npz", input=np.zeros((1, 3, 3), np.float32))
    proc = nnc_cli("compile", EXAMPLE / "tiny_cnn.onnx", "-o", tmp_path / "out", "--inputs", tmp_path / "bad.npz")
    _assert_one_line_error(proc)
    assert "shape" in proc.stderr


def test_refuses_to_replace_a_foreign_folder(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    proc = nnc_cli("compile", EXAMPLE / "tiny_cnn.onnx", "-o", tmp_path / "mine", "--no-verify")
    _assert_one_line_error(proc)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_compile_ir_example(tmp_path):
    out = tmp_path / "out"
    proc = nnc_cli("compile", EXAMPLE / "tiny_cnn.onnx", "--target", "ir", "-o", out,
                   "--inputs", EXAMPLE / "sample.npz")
    assert proc.returncode == 0, proc.stderr
    report = json.loads((out / "report.json").read_text())
    for key in ("target", "pipeline", "compile_seconds", "weights", "layers", "verification"):
        assert key in report
    assert report["verification"]["samples"] == 4
    assert report["verification"]["vs_float"]["cosine"] > 0.9999
    graph = nnc.parse_ir((out / "tiny_cnn.nnir").read_text())
    assert [n.op for n in graph.nodes()].count("BatchNormalization") == 0
    # compiling again replaces the earlier output and gives the identical IR
    first = (out / "tiny_cnn.nnir").read_bytes()
    assert nnc_cli("compile", EXAMPLE / "tiny_cnn.onnx", "-o", out, "--no-verify").returncode == 0
    assert (out / "tiny_cnn.nnir").read_bytes() == first


def test_print_ir_after(tmp_path):
    proc = nnc_cli("compile", EXAMPLE / "tiny_cnn.onnx", "-o", tmp_path / "o", "--no-verify", "-q",
                   "--pipeline", "remove-identity,fold-batchnorm", "--print-ir-after", "fold-batchnorm")
    assert proc.returncode == 0, proc.stderr
    assert "// IR after fold-batchnorm" in proc.stderr and "graph" in proc.stderr


def test_inspect_json_example():
    proc = nnc_cli("inspect", EXAMPLE / "tiny_cnn.onnx", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    # conv1 16*9+16, bn 4*16, dw 16*9+16, pw 32*16+32, fc 10*32+10
    assert data["totals"]["params"] == 160 + 64 + 160 + 544 + 330
    conv1 = next(l for l in data["layers"] if l["name"] == "conv1")
    assert conv1["macs"] == 16 * 8 * 6 * 9 and conv1["output_shapes"] == [[1, 16, 8, 6]]
    table = nnc_cli("inspect", EXAMPLE / "tiny_cnn.onnx").stdout
    assert conv1["id"] == "#1" and "#1" in table


@requires_models
def test_inspect_mlperf_table():
    proc = nnc_cli("inspect", MODELS_DIR / "kws_dscnn_f32.onnx")
    assert proc.returncode == 0, proc.stderr
    assert "22,604 parameters, 2,656,768 MACs" in proc.stdout


def test_example_readme_commands(tmp_path):
    """The commands in examples/01-tiny-cnn/README.md run as written (from the repo root)."""
    root = EXAMPLE.parents[1]
    lines = [l for l in (EXAMPLE / "README.md").read_text().splitlines() if l.startswith("nnc ")]
    assert len(lines) == 2
    for line in lines:
        args = line.split()[1:]
        args = [str(tmp_path / a) if a.startswith("out/") else str(root / a) if a.startswith("examples/") else a
                for a in args]
        proc = nnc_cli(*args, cwd=root)
        assert proc.returncode == 0, proc.stderr
    text = (tmp_path / "out" / "tiny_cnn" / "tiny_cnn.nnir").read_text()
    ops = [l.split(" = ")[1].split()[0] for l in text.splitlines() if l.startswith("  %")]
    assert len(ops) == 7 and "Transpose" not in ops and "BatchNormalization" not in ops


@pytest.mark.parametrize("out", [".", "", "..", "models", "link"])
def test_output_folder_that_is_not_nnc_s_own_is_refused(tmp_path, out):
    """-o naming the current folder, an ancestor, the model's folder or a symlink
    exits 2 with one line and leaves every user file as it was, even beside a
    report.json (which once made nnc take the folder for an earlier output)."""
    work = tmp_path / "work"
    (work / "models").mkdir(parents=True)
    model = work / "models" / "tiny_cnn.onnx"
    model.write_bytes((EXAMPLE / "tiny_cnn.onnx").read_bytes())
    (work / "models" / "report.json").write_text("{}")
    (work / "report.json").write_text("{}")
    (work / "notes.txt").write_text("user data")
    (work / "link").symlink_to(work / "models")
    before = {p: p.read_bytes() for p in work.rglob("*") if p.is_file()}
    cwd = work / "models" if out == ".." else work
    proc = nnc_cli("compile", model, "--target", "ir", "-o", out, cwd=cwd)
    _assert_one_line_error(proc)
    assert {p: p.read_bytes() for p in work.rglob("*") if p.is_file()} == before


def test_version_and_help_load_no_heavy_module():
    """`nnc --version` and `nnc --help` import neither onnx nor numpy (issue 14: under 0.3 s)."""
    code = ("import sys\nfrom nnc.cli import run_cli\n"
            "for args in (['--version'], ['--help']):\n    run_cli(args)\n"
            "sys.exit(1 if {'onnx', 'numpy', 'onnxruntime'} & set(sys.modules) else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "nnc 0.1.0" in done.stdout


def test_an_az_sim_compile_loads_no_template_engine(tmp_path):
    """jinja2 only compiles the C target's templates (on a cold user cache);
    report.html is built without it, so `--target az-sim` never pays its
    import (0.015 s)."""
    code = ("import sys\nfrom nnc.cli import run_cli\n"
            f"code = run_cli(['compile', {str(EXAMPLE / 'tiny_cnn.onnx')!r}, '--target', 'az-sim', '--no-verify', "
            f"'-o', {str(tmp_path / 'out')!r}])\n"
            "sys.exit(code or 3 * ('jinja2' in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out" / "report.html").is_file()


def test_only_the_named_command_s_arguments_are_defined():
    """run_cli defines the arguments of the command it runs alone; `nnc --help`
    and a mistyped command list every command."""
    from nnc import cli

    assert {"compile", "inspect", "run", "explore", "validate", "finetune", "report"} <= set(cli.COMMANDS)
    for name in cli.COMMANDS:
        parser, named = cli._parsers(name)
        assert named is not None and named.prog == f"nnc {name}"
        assert any(action.dest == "debug" for action in named._actions)
    for args in ([], ["--help"], ["compil"], ["--version"]):
        assert cli._parsers(args[0] if args else None)[1] is None


@pytest.mark.parametrize("name", ["inspect", "compile", "validate", "finetune", "explore", "run", "report"])
def test_every_command_s_help_prints(name):
    proc = nnc_cli(name, "--help")
    assert proc.returncode == 0 and proc.stdout.startswith(f"usage: nnc {name}") and not proc.stderr


def test_usage_mistakes_name_the_closest_flag_and_command(capsys):
    from nnc.cli import run_cli

    assert run_cli(["compile", "m.onnx", "-o", "out", "--weigth-bits", "3"]) == 2
    assert capsys.readouterr().err == ("nnc: error: no such option: --weigth-bits; did you mean --weight-bits? "
                                       "(see nnc compile --help)\n")
    for flag, hint in (("--calibration", "; did you mean --calib?"), ("--prune", "; did you mean --prune-channels?"),
                       ("--version", "")):
        assert run_cli(["compile", "m.onnx", "-o", "out", flag]) == 2
        assert capsys.readouterr().err == f"nnc: error: no such option: {flag}{hint} (see nnc compile --help)\n"
    assert run_cli(["compil", "m.onnx"]) == 2
    assert capsys.readouterr().err == "nnc: error: no such command 'compil'; did you mean 'compile'? (see nnc --help)\n"
    assert run_cli(["compile", "m.onnx", "-o", ""]) == 2
    assert "the folder name is empty" in capsys.readouterr().err
    assert run_cli(["compile", ""]) == 2
    assert "the model file name is empty" in capsys.readouterr().err


@pytest.mark.parametrize("args, line", [
    # an unknown flag is named before a required option it hides is missed
    (["compile", "m.onnx", "--ouput", "out"], "no such option: --ouput; did you mean --output?"),
    (["run", "b.azb", "--input", "x.npz"], "no such option: --input; did you mean --inputs?"),
    # arguments after -- are arguments, not flags
    (["compile", "m.onnx", "-o", "out", "--", "extra"], "unexpected argument: extra"),
    (["inspect", "m.onnx", "--", "--json"], "unexpected argument: --json"),
    # a value that starts with '-' is the flag's value, checked as such
    (["compile", "m.onnx", "-o", "out", "--sparsity", "-1e-3"], "--sparsity must be in [0, 1), got -0.001"),
    (["compile", "m.onnx", "-o", "out", "--flash-budget", "-4K"], "--flash-budget: expected bytes"),
])
def test_usage_mistakes_are_read_as_meant(capsys, tmp_path, monkeypatch, args, line):
    from nnc.cli import run_cli

    monkeypatch.chdir(tmp_path)
    assert run_cli(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("nnc: error: ") and line in err, err
    assert list(tmp_path.iterdir()) == []


def test_help_anywhere_on_the_line_prints_the_help(capsys):
    from nnc.cli import run_cli

    assert run_cli(["compile", "m.onnx", "--weight-bits", "x", "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: nnc compile") and "[--quantize | --no-quantize]" in out


def test_calibration_named_in_the_pipeline_is_used_for_verification(tmp_path):
    pipeline = ("remove-identity,canonicalize,fold-constants,fold-batchnorm,fuse-bias,fuse-activation,layout,"
                'canonicalize,quantize{calib="examples/digits/calib.npz"}')
    proc = nnc_cli("compile", "examples/digits/digits.onnx", "--target", "ir", "-o", str(tmp_path / "o"),
                   "--pipeline", pipeline)
    assert proc.returncode == 0, proc.stderr
    assert "verification on 64 sample(s) (examples/digits/calib.npz)" in proc.stdout
    assert "synthetic" not in proc.stderr


def test_the_script_collects_garbage_again_once_a_command_starts(monkeypatch):
    """main() pauses the cyclic collector for the imports only: a command's work
    (which may run for hours in explore or finetune) runs with it enabled."""
    import atexit
    import gc

    from nnc import cli, driver

    seen = []

    def fake_compile(*args, **kwargs):
        seen.append(gc.isenabled())
        raise nnc.NncError("stop here")

    monkeypatch.setattr(driver, "compile", fake_compile)
    try:
        cli._pause_gc_for_start_up()
        assert not gc.isenabled()
        assert cli.run_cli(["compile", "m.onnx", "-o", "out"]) == 2
    finally:
        atexit.unregister(gc.freeze)
        gc.unfreeze()
        gc.enable()
    assert seen == [True]


@pytest.mark.parametrize("name", ["math", "String", "stdint"])
def test_a_c_model_named_like_a_c_header_is_refused(tmp_path, name):
    """<name>.h would hide the C library's header in every build including the folder."""
    proc = nnc_cli("compile", EXAMPLE / "tiny_cnn.onnx", "--target", "c", "--name", name, "-o", tmp_path / "o")
    assert proc.returncode == 2 and proc.stderr.count("nnc: error:") == 1, proc.stderr
    assert f"<{name.lower()}.h>" in proc.stderr and "staging" not in proc.stderr
    assert proc.stderr.endswith("; give another --name\n")
    assert not (tmp_path / "o").exists()
    with pytest.raises(nnc.OptionError, match="; give another name$") as caught:
        nnc.compile(EXAMPLE / "tiny_cnn.onnx", "c", tmp_path / "o", name=name)
    assert "--" not in str(caught.value)


@pytest.mark.parametrize("name", ["Makefile", "GNUmakefile"])
def test_a_c_model_named_like_the_makefile_is_refused(tmp_path, name):
    """make would rebuild the Makefile from <name>.c and `make test` would fail."""
    proc = nnc_cli("compile", EXAMPLE / "tiny_cnn.onnx", "--target", "c", "--name", name, "-o", tmp_path / "o")
    assert proc.returncode == 2 and "rebuild the Makefile" in proc.stderr and not (tmp_path / "o").exists()


def test_hw_dot_slash_names_the_file_not_the_preset(tmp_path):
    """docs/azsim.md: a preset name wins over a file of that name; ./small is the file."""
    (tmp_path / "small").write_text('name = "my-small"\n', encoding="utf-8")
    proc = nnc_cli("compile", EXAMPLE / "tiny_cnn.onnx", "--target", "az-sim", "--hw", "./small", "-o", "o",
                   cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "my-small" in proc.stdout and "az-small" not in proc.stdout


def test_a_signal_while_the_arguments_are_parsed_is_one_error_line(tmp_path):
    """A SIGTERM before the command runs is the interruption's one line and
    128 + 15, with nothing written."""
    code = f"""
import argparse, os, signal, sys
original = argparse.ArgumentParser.parse_known_args
def signalled(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGTERM)
    return original(*args, **kwargs)
argparse.ArgumentParser.parse_known_args = signalled
from nnc import cli
sys.argv = ["nnc", "compile", {str(EXAMPLE / "tiny_cnn.onnx")!r}, "-o", {str(tmp_path / "out")!r}]
sys.exit(cli.main())
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 128 + 15, proc.stderr
    assert proc.stderr.strip().splitlines() == ["nnc: error: interrupted by SIGTERM; no output was written"]
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_signal_while_the_command_line_is_imported_is_one_error_line(tmp_path):
    """The console script handles signals before it imports the command line
    (0.1 s): a Ctrl-C then printed a KeyboardInterrupt traceback."""
    code = f"""
import os, signal, sys
class SignalOnImport:
    def find_spec(self, name, path=None, target=None):
        if name == "nnc.cli":
            os.kill(os.getpid(), signal.SIGINT)
        return None
sys.meta_path.insert(0, SignalOnImport())
sys.argv = ["nnc", "compile", {str(EXAMPLE / "tiny_cnn.onnx")!r}, "-o", {str(tmp_path / "out")!r}]
from nnc.console import main
sys.exit(main())
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 128 + 2, proc.stderr
    assert proc.stderr.strip().splitlines() == ["nnc: error: interrupted by SIGINT; no output was written"]
    assert list(tmp_path.iterdir()) == []


def test_the_script_exits_without_teardown_yet_runs_exit_handlers(tmp_path):
    """The console script skips the interpreter's teardown (0.01 s), but keeps
    the exit's duties: the exit code, flushed output, and atexit handlers
    (registered before and during the command) all run."""
    code = f"""
import atexit, sys
atexit.register(lambda: print("handler ran"))
sys.argv = ["nnc", "compile", {str(EXAMPLE / "tiny_cnn.onnx")!r}, "-o", {str(tmp_path / "out")!r}, "--no-verify"]
from nnc.console import main
print("starting", end="")
code = main()
print("teardown kept")
sys.exit(code)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("starting") and proc.stdout.rstrip().endswith("handler ran")
    assert "teardown kept" not in proc.stdout
    assert (tmp_path / "out" / "report.json").is_file()
    failed = subprocess.run([sys.executable, "-c", code.replace("tiny_cnn.onnx", "missing.onnx")],
                            capture_output=True, text=True, cwd=tmp_path)
    assert failed.returncode == 2 and failed.stderr.startswith("nnc: error:")
    assert failed.stdout == "startinghandler ran\n"


def test_the_script_under_a_profiler_exits_normally(tmp_path):
    """`python -m cProfile -o F nnc ...` writes F after the script returns,
    so the script leaves the exit to Python while a profiler watches."""
    script = tmp_path / "nnc_script.py"
    script.write_text("import sys\nfrom nnc.console import main\nsys.exit(main())\n")
    proc = subprocess.run([sys.executable, "-m", "cProfile", "-o", str(tmp_path / "prof"), str(script), "--version"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0 and "nnc 0.1.0" in proc.stdout, proc.stderr
    assert (tmp_path / "prof").stat().st_size > 0


@pytest.mark.parametrize("command, environment, threads", [
    ("compile", {}, "1"), ("finetune", {}, "default"), ("compile", {"OPENBLAS_NUM_THREADS": "2"}, "2"),
    ("compile", {"OMP_NUM_THREADS": "2"}, "default")])
def test_the_script_runs_blas_on_one_thread_unless_told_otherwise(command, environment, threads):
    """Before numpy is imported, the console script sets OPENBLAS_NUM_THREADS=1
    for commands that do not train, unless the environment names a count."""
    code = (f"import sys\nfrom nnc.console import blas_on_one_thread\nblas_on_one_thread(['--quiet', {command!r}])\n"
            "import json, numpy, os\nfrom threadpoolctl import threadpool_info\n"
            "print(os.environ.get('OPENBLAS_NUM_THREADS', 'default'), "
            "json.dumps([i['num_threads'] for i in threadpool_info() if i['user_api'] == 'blas']))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=_no_blas_thread_count() | environment)
    variable, counts = proc.stdout.split(" ", 1)
    assert proc.returncode == 0 and variable == threads, proc.stderr
    if threads == "1":
        assert set(json.loads(counts)) == {1}


def test_blas_started_on_one_thread_needs_no_controller():
    """With OPENBLAS_NUM_THREADS=1 set before numpy loads OpenBLAS, one_blas_thread
    changes nothing and imports no threadpoolctl (5 ms of an az-sim compile)."""
    code = ("import sys\nfrom nnc.console import blas_on_one_thread\nblas_on_one_thread(['compile'])\n"
            "import numpy\nfrom nnc.blas_threads import blas_single_thread\n"
            "print(blas_single_thread(), 'threadpoolctl' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_no_blas_thread_count())
    assert proc.returncode == 0 and proc.stdout.split() == ["[]", "False"], proc.stderr


def _no_blas_thread_count() -> dict:
    """This environment without the variables that set a BLAS thread count."""
    return {k: v for k, v in os.environ.items() if k not in BLAS_THREAD_VARIABLES}


def test_a_signal_ignored_when_nnc_starts_stays_ignored():
    """As under nohup (SIGHUP) or a shell's background job (SIGINT)."""
    code = """
import signal
from nnc.console import SIGNALS, handle
signal.signal(signal.SIGHUP, signal.SIG_IGN)
handle(SIGNALS, lambda signum, frame: None)
print(signal.getsignal(signal.SIGHUP) is signal.SIG_IGN, signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.stdout.split() == ["True", "True"], proc.stderr


def test_run_writes_only_an_npz_and_inspect_refuses_sensitivity_flags_alone(tmp_path, capsys):
    from nnc.cli import run_cli

    """`nnc run -o out/` wrote a file named out; `-o out.txt` an archive under that
    name; `nnc inspect --bits 3` without --sensitivity did nothing with it."""
    blob = tmp_path / "az" / "digits.azb"
    nnc.compile(DIGITS_MODEL, "az-sim", tmp_path / "az", calib=DIGITS_CALIB, verify=False)
    for target in ("out/", "out.txt"):
        assert run_cli(["run", str(blob), "--inputs", str(DIGITS_CALIB), "-o", str(tmp_path / target)]) == 2
        assert "give a file name ending in .npz" in capsys.readouterr().err
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.txt").exists()
    assert run_cli(["inspect", str(DIGITS_MODEL), "--bits", "3"]) == 2
    assert "--bits applies to --sensitivity" in capsys.readouterr().err


def test_option_errors_name_the_flag_and_warnings_need_no_class(capsys, tmp_path):
    """`--name 1x` said 'name must be ...'; explore's warnings read
    'nnc: warning: NncWarning: ...' where compile's read 'nnc: warning: ...'."""
    from nnc import cli

    assert cli.run_cli(["compile", str(EXAMPLE / "tiny_cnn.onnx"), "-o", str(tmp_path / "o"), "-t", "c",
                        "--name", "1x"]) == 2
    assert "nnc: error: --name must be a C identifier" in capsys.readouterr().err
    from nnc.errors import NncWarning

    cli._show_warning(NncWarning("no calib given"), NncWarning, "f.py", 1)
    cli._show_warning(RuntimeWarning("overflow"), RuntimeWarning, "f.py", 1)
    assert capsys.readouterr().err.splitlines() == ["nnc: warning: no calib given",
                                                     "nnc: warning: RuntimeWarning: overflow"]


@pytest.mark.parametrize("args, message", [
    (["--target", "az-sim", "--c-weights", "dense"], "--c-weights dense applies to --target c, not az-sim"),
    (["--target", "onnx", "--c-arrays", "strings"], "--c-arrays strings applies to --target c, not onnx"),
    (["--target", "c", "--onnx-form", "qdq"], "--onnx-form qdq applies to --target onnx, not c"),
    (["--target", "c", "--pack", "auto"], "not to --target c with dense weights"),
])
def test_a_flag_of_another_target_is_refused_at_its_default_value_too(args, message, tmp_path, capsys):
    """`--c-weights packed` on az-sim was refused but `--c-weights dense` went
    unnoticed: the target ignored it either way."""
    from nnc.cli import run_cli

    out = tmp_path / "out"
    assert run_cli(["compile", str(DIGITS_MODEL), *args, "--no-verify", "-o", str(out)]) == 2
    assert message in capsys.readouterr().err and not out.exists()


@pytest.mark.parametrize("args", [["--target", "az-sim", "--pack", "auto"], ["--target", "onnx", "--onnx-form", "qdq"],
                                  ["--target", "c", "--c-weights", "packed", "--pack", "auto", "--c-arrays", "braces"]])
def test_flags_of_the_target_are_taken_at_any_value(args, tmp_path):
    from nnc.cli import run_cli

    assert run_cli(["compile", str(DIGITS_MODEL), *args, "--no-verify", "-q", "-o", str(tmp_path / "out")]) == 0
