"""Output folders: nnc writes a whole output or nothing, replaces only files its
manifest proves it wrote (and only unchanged ones), survives concurrent
compiles and signals without leftovers (compiler/output_folder.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlperf import MODELS_DIR, requires_models

import nnc
from nnc.errors import OptionError
from nnc import output_folder
from nnc.output_folder import MANIFEST

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "01-tiny-cnn"


def nnc_cli(*args, cwd=None, env=None):
    return subprocess.Popen([sys.executable, "-m", "nnc.cli", *map(str, args)], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def model(tmp_path) -> Path:
    (tmp_path / "models").mkdir()
    path = tmp_path / "models" / "tiny_cnn.onnx"
    path.write_bytes((EXAMPLE / "tiny_cnn.onnx").read_bytes())
    return path


def compile_ir(model: Path, out: Path):
    return nnc.compile(model, "ir", out, verify=False)


def assert_manifest_matches(out: Path) -> None:
    files = json.loads((out / MANIFEST).read_text())["files"]
    import hashlib
    for name, digest in files.items():
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == digest, name
    assert "report.json" in files and "tiny_cnn.nnir" in files


def test_output_carries_a_manifest_of_every_file(model, tmp_path):
    result = compile_ir(model, tmp_path / "out")
    assert MANIFEST in result.artifacts
    assert_manifest_matches(tmp_path / "out")
    assert sorted(json.loads((tmp_path / "out" / MANIFEST).read_text())["files"]) == \
        sorted(a for a in result.artifacts if a != MANIFEST)


def test_replacing_an_output_keeps_the_user_s_own_files(model, tmp_path):
    out = tmp_path / "out"
    compile_ir(model, out)
    (out / "notes.txt").write_text("mine")
    (out / "sub").mkdir()
    (out / "sub" / "data.bin").write_bytes(b"\x00\x01")
    compile_ir(model, out)
    assert (out / "notes.txt").read_text() == "mine" and (out / "sub" / "data.bin").read_bytes() == b"\x00\x01"
    assert_manifest_matches(out)


def test_a_file_of_nnc_s_that_the_user_changed_is_never_overwritten(model, tmp_path):
    out = tmp_path / "out"
    compile_ir(model, out)
    (out / "tiny_cnn.nnir").write_text("my edits")
    before = snapshot(out)
    with pytest.raises(OptionError, match="tiny_cnn.nnir changed since nnc wrote it"):
        compile_ir(model, out)
    assert snapshot(out) == before


@pytest.mark.parametrize("manifest", [None, "not json", '{"files": {"../model.onnx": "00"}}',
                                      '{"files": {"/etc/passwd": "00"}}', '{"files": ["a"]}'])
def test_a_folder_without_a_valid_manifest_is_refused_untouched(model, tmp_path, manifest):
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.json").write_text("{}")
    (out / "tiny_cnn.nnir").write_text("user file with an nnc name")
    if manifest is not None:
        (out / MANIFEST).write_text(manifest)
    before = snapshot(tmp_path)
    with pytest.raises(OptionError, match="holds no nnc-manifest.json"):
        compile_ir(model, out)
    assert snapshot(tmp_path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["models", "out"]


def test_a_file_named_as_output_folder_is_refused(model, tmp_path):
    (tmp_path / "out").write_text("a file")
    with pytest.raises(OptionError, match="is not a folder"):
        compile_ir(model, tmp_path / "out")
    assert (tmp_path / "out").read_text() == "a file"


def test_a_user_file_in_the_way_of_another_target_s_output_is_never_replaced(model, tmp_path):
    """The first compile's manifest does not list the blob; the user's file of
    that name stays, and the folder is untouched, whether a file or a folder."""
    out = tmp_path / "out"
    nnc.compile(model, "c", out, verify=False)
    (out / "tiny_cnn.azb").write_text("mine")
    (out / "tiny_cnn.azb.d").mkdir()
    before = snapshot(out)
    with pytest.raises(OptionError, match="tiny_cnn.azb is in the way of nnc's output"):
        nnc.compile(model, "az-sim", out, verify=False)
    assert snapshot(out) == before
    (out / "tiny_cnn.azb").unlink()
    (out / "tiny_cnn.azb").mkdir()
    with pytest.raises(OptionError, match="tiny_cnn.azb is in the way"):
        nnc.compile(model, "az-sim", out, verify=False)
    assert (out / MANIFEST).is_file() and (out / "tiny_cnn.azb").is_dir()


def test_a_user_file_where_nnc_needs_a_folder_is_refused_untouched(model, tmp_path):
    out = tmp_path / "out"
    compile_ir(model, out)
    (out / "firmware").write_text("mine")
    before = snapshot(out)
    with pytest.raises(OptionError, match="firmware is in the way"):
        nnc.compile(model, "c", out, verify=False)
    assert snapshot(out) == before


def test_a_file_nnc_wrote_and_the_user_deleted_is_no_obstacle(model, tmp_path):
    out = tmp_path / "out"
    compile_ir(model, out)
    (out / "tiny_cnn.nnir").unlink()
    compile_ir(model, out)
    assert_manifest_matches(out)


@pytest.mark.parametrize("below", ["a_file/out", "/proc/nnc-test-out"])
def test_an_output_folder_that_cannot_be_created_is_an_option_error(model, tmp_path, below):
    (tmp_path / "a_file").write_text("mine")
    with pytest.raises(OptionError, match="cannot create output folder"):
        compile_ir(model, tmp_path / below)
    assert (tmp_path / "a_file").read_text() == "mine"


def test_parent_steps_in_the_output_folder_are_taken_as_the_system_takes_them(model, tmp_path, monkeypatch):
    """`a/b/../out` is `a/out` and `a/b/..` is `a` (refused: not empty); `-o`
    through a missing folder is refused with nothing made: it left an empty
    `yy/` behind, and `o8/sub/..` was refused as `not empty (sub)`."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a" / "b").mkdir(parents=True)
    compile_ir(model, Path("a/b/../out"))
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["b", "out"]
    assert_manifest_matches(tmp_path / "a" / "out")
    # the API names no -o: "output folder" stands for output_dir and -o alike
    with pytest.raises(OptionError, match=r"is not empty .*; choose another output folder, or empty it yourself "
                                          r"\(a/b/\.\. names a\)$"):
        compile_ir(model, Path("a/b/.."))
    for missing in ("yy/../o6", "o8/sub/.."):
        with pytest.raises(OptionError, match=f"{missing.split('/')[0]} does not exist, so .* names no folder; give "
                                              "an output folder without '..', or one that steps out"):
            compile_ir(model, Path(missing))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "models"]


def test_a_failed_compile_leaves_nothing_behind(model, tmp_path, monkeypatch):
    """Even the parent folders it created for -o go again."""
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", None)
    with pytest.raises(nnc.errors.NncError):
        nnc.compile(model, "ir", tmp_path / "a" / "b" / "out", calib=tmp_path / "missing.npz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["models", "tmp"]
    assert not any((tmp_path / "tmp").iterdir())


def test_a_failed_compile_removes_no_folder_another_compile_made_under_the_parent_it_created(model, tmp_path):
    """Two compiles into sibling folders under a new parent both see it missing;
    the one that fails must not remove the other's staging folder or its empty
    subfolders (it removed them, and the other compile then failed, exit 3)."""
    parent = tmp_path / "new"
    with pytest.raises(RuntimeError):
        with output_folder.staged(parent / "a", model):
            other = parent / ".b.0123456789ab.staging" / "firmware"
            other.mkdir(parents=True)
            raise RuntimeError("the compile failed")
    assert other.is_dir()
    assert sorted(p.name for p in parent.iterdir()) == [".b.0123456789ab.staging"]


def test_staging_survives_its_parent_removed_by_another_compile(model, tmp_path, monkeypatch):
    """The parent, made and found empty by a failing compile into a sibling, may
    vanish between its mkdir and the staging folder's: it is made again."""
    parent = tmp_path / "new"
    free_name = output_folder._free_staging_name
    removed = []

    def remove_parent_once(out):
        if not removed:
            parent.rmdir()
            removed.append(parent)
        return free_name(out)

    monkeypatch.setattr(output_folder, "_free_staging_name", remove_parent_once)
    with output_folder.staged(parent / "a", model) as staging:
        (staging / "x.txt").write_text("x")
    assert removed and (parent / "a" / "x.txt").read_text() == "x"


def test_the_first_check_waits_for_a_commit_in_progress(model, tmp_path):
    """A compile checks -o under the lock commits hold: it saw another compile's
    commit half done (manifest removed, files moving) and refused the folder as
    not nnc's, so concurrent compiles into one folder failed now and then."""
    import threading

    out = tmp_path / "out"
    compile_ir(model, out)
    manifest = (out / MANIFEST).read_bytes()
    errors, done = [], threading.Event()

    def check():
        try:
            output_folder.check(out, model)
        except Exception as exc:  # noqa: BLE001 - the test reports it
            errors.append(exc)
        done.set()

    with output_folder._locked(tmp_path):
        (out / MANIFEST).unlink()  # a commit in progress: the old manifest goes first
        worker = threading.Thread(target=check)
        worker.start()
        assert not done.wait(0.3), "the check did not wait for the commit"
        (out / MANIFEST).write_bytes(manifest)  # ... and the new one comes last
    worker.join(10)
    assert done.is_set() and not errors, errors


def test_output_folders_follow_the_umask(model, tmp_path):
    previous = os.umask(0o027)
    try:
        compile_ir(model, tmp_path / "out")
    finally:
        os.umask(previous)
    assert (tmp_path / "out").stat().st_mode & 0o777 == 0o750


def test_concurrent_compiles_into_one_folder_all_succeed(model, tmp_path):
    out = tmp_path / "out"
    procs = [nnc_cli("compile", model, "--target", "ir", "-o", out, "--no-verify") for _ in range(4)]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    assert_manifest_matches(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["models", "out"]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_during_a_compile_removes_staging_and_build_folders(model, tmp_path, signum):
    """The C target builds in a temporary folder; the signal arrives once the
    staging folder exists, i.e. mid-emit or mid-verification."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {**os.environ, "TMPDIR": str(temp)}
    proc = nnc_cli("compile", model, "--target", "c", "-o", tmp_path / "out", env=env)
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".out.*")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    assert proc.poll() is None, "the compile ended before the signal could be sent"
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signum, err
    assert err.strip().splitlines() == [f"nnc: error: interrupted by {signal.Signals(signum).name}; "
                                        "no output was written"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["models", "tmp"]
    assert not any(temp.iterdir())


@requires_models
def test_a_signal_while_the_c_compiler_runs_leaves_none_of_its_temporary_files(tmp_path):
    """subprocess kills the compiler with SIGKILL when nnc is interrupted, so the
    compiler cannot remove its cc*.s / cc*.o: they now go to a folder of nnc's,
    removed with it (they were left in $TMPDIR). VWW's C takes the compiler long
    enough to be caught at it."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    proc = nnc_cli("compile", MODELS_DIR / "vww_mobilenet_int8_qdq.onnx", "--target", "c", "-o", tmp_path / "out",
                   env={**os.environ, "TMPDIR": str(temp)})
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline and \
            not (list(temp.glob("cc*")) or list(temp.glob("nnc-cc-*/*"))):
        time.sleep(0.001)
    assert proc.poll() is None, "the compile ended before the compiler's files appeared"
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM
    time.sleep(0.5)  # the killed compiler's children may still be finishing
    assert [p.name for p in temp.rglob("*") if p.name.startswith(("cc", "nnc-"))] == []  # (.ses is onnxruntime's)
