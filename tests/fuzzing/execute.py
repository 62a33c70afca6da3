"""One case, run inside this (worker) process.

`run_nnc` calls `nnc.cli.main()` as the `nnc` script does (sys.exit(main()))
with sys.argv set, fds 1 and 2 redirected to files (os.dup2, so output from C
code and child processes is captured too) and sys.stdout/sys.stderr writing to
them, cwd = the sandbox, and TMPDIR and tempfile.tempdir = the case's temp
folder; everything is restored afterwards.
`execute` builds, materializes and runs case (seed, index), compares the
case folder before and after, optionally reruns an accepted case to compare
its outputs byte for byte, and returns the classified result.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback
import warnings
import zipfile
from pathlib import Path

from .case import Case, materialize
from .mutators import build_case
from .outcome import classify
from .sandbox import file_findings, output_area, snapshot
from .seeds import Corpus

WARNING_FILTERS = list(warnings.filters)
TIMING_KEYS = ("seconds", "compile_seconds")


def run_nnc(argv: list[str], cwd: Path, tmp: Path, stdout: Path, stderr: Path) -> int:
    """Exit code of `nnc ARGV` run in this process (module docstring)."""
    import nnc.cli

    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    state = (os.getcwd(), os.environ.get("TMPDIR"), tempfile.tempdir, sys.argv, _handlers(), sys.stdout,
             sys.stderr)
    with open(stdout, "wb") as out, open(stderr, "wb") as err:
        os.dup2(out.fileno(), 1)
        os.dup2(err.fileno(), 2)
        try:
            # Python's streams on fds 1 and 2, encoded as on a UTF-8 terminal
            sys.stdout = open(1, "w", encoding="utf-8", closefd=False)
            sys.stderr = open(2, "w", encoding="utf-8", errors="backslashreplace", closefd=False)
            os.chdir(cwd)
            os.environ["TMPDIR"] = tempfile.tempdir = str(tmp)
            sys.argv = ["nnc", *argv]
            _reset_warnings()
            os.umask(0o022)
            return _exit_code(nnc.cli.main)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            _restore(state)


def _exit_code(main) -> int:
    """The exit code of `main` run as the console script runs it: sys.exit(main())."""
    try:
        sys.exit(main())
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        print(exc.code, file=sys.stderr)
        return 1
    except BaseException:  # noqa: BLE001 - an exception escaping nnc is what we look for
        traceback.print_exc()
        return 1


def _handlers() -> dict:
    return {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)}


def _restore(state) -> None:
    cwd, tmpdir, tempdir, argv, handlers, sys.stdout, sys.stderr = state
    os.chdir(cwd)
    if tmpdir is None:
        os.environ.pop("TMPDIR", None)
    else:
        os.environ["TMPDIR"] = tmpdir
    tempfile.tempdir, sys.argv = tempdir, argv
    for signum, handler in handlers.items():
        signal.signal(signum, handler)


def _reset_warnings() -> None:
    """Each case sees the warning filters the worker started with, and no
    'already shown once' memory from earlier cases (so a case run alone prints the same)."""
    warnings.filters[:] = WARNING_FILTERS
    getattr(warnings, "_filters_mutated", lambda: None)()


def execute(corpus: Corpus, seed: int, index: int, folder: Path, determinism: bool) -> dict:
    """Run case (seed, index) in `folder` and return its result record."""
    case = build_case(corpus, seed, index)
    first = _run(case, folder)
    nondeterminism = None
    if determinism and first["exit"] == 0 and not first["findings"]:
        nondeterminism = _rerun_differs(case, folder)
    cls, reason = classify(first["exit"], None, first["stdout"], first["stderr"], False, first["findings"],
                           case.must_reject, nondeterminism, "--print-ir-after" in case.options)
    return record(case, cls, reason, first["exit"], first["seconds"], first["stdout"], first["stderr"],
                  determinism)


def _run(case: Case, folder: Path) -> dict:
    shutil.rmtree(folder, ignore_errors=True)
    sandbox = materialize(case, folder)
    before = snapshot(folder / "home")
    start = time.perf_counter()
    code = run_nnc(case.argv(), sandbox, folder / "tmp", folder / "stdout", folder / "stderr")
    seconds = time.perf_counter() - start
    after = snapshot(folder / "home")
    findings = file_findings(case, before, after, sorted(os.listdir(folder / "tmp")), code == 0)
    return {"exit": code, "seconds": seconds, "findings": findings, "stdout": read_text(folder / "stdout"),
            "stderr": read_text(folder / "stderr")}


def read_text(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8", errors="replace")
    except OSError:
        return ""


def record(case: Case, cls: str, reason: str, exit_code: int | None, seconds: float, stdout: str, stderr: str,
           determinism: bool = False) -> dict:
    """The result of one case as the campaign keeps it (JSON-ready)."""
    return {"id": case.case_id, "seed": case.seed, "index": case.index, "family": case.family,
            "mutators": case.mutators, "notes": case.notes, "argv": case.argv(), "command": case.command,
            "target": case.target, "must_reject": case.must_reject, "class": cls, "reason": reason,
            "exit": exit_code, "seconds": round(seconds, 3), "determinism_checked": determinism,
            "stdout_tail": stdout[-2000:], "stderr_tail": stderr[-2000:]}


# -- determinism -----------------------------------------------------------------

def _outputs(case: Case, folder: Path) -> dict[str, object]:
    """What an accepted run produced, with timings removed: -o's files (report.json
    without *seconds keys, the manifest without report.json's hash), or stdout for inspect and run."""
    home = folder / "home"
    area = output_area(case)
    result: dict[str, object] = {}
    if case.command != "compile":
        result["stdout"] = read_text(folder / "stdout")
    target = home / area if area else None
    if target is not None and target.is_file():
        result[area] = _normalized(target)
    elif target is not None and target.is_dir():
        for path in sorted(target.rglob("*")):
            if path.is_file():
                result[path.relative_to(home).as_posix()] = _normalized(path)
    return result


def _normalized(path: Path):
    data = path.read_bytes()
    if path.name == "report.json":
        return _drop_timings(json.loads(data))
    if path.name == "nnc-manifest.json":
        manifest = json.loads(data)
        manifest.get("files", {}).pop("report.json", None)
        return manifest
    if path.suffix == ".npz":
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return {name: archive.read(name) for name in sorted(archive.namelist())}
    return data


def _drop_timings(value):
    if isinstance(value, dict):
        return {k: _drop_timings(v) for k, v in value.items() if k not in TIMING_KEYS}
    if isinstance(value, list):
        return [_drop_timings(v) for v in value]
    return value


def _rerun_differs(case: Case, folder: Path) -> str | None:
    """Run the accepted case again in a fresh copy of its folder; what differs, or None."""
    first = _outputs(case, folder)
    second = _run(case, folder)
    if second["exit"] != 0:
        return f"rerun exited {second['exit']}"
    return _differs(first, _outputs(case, folder))


def _differs(first: dict, second: dict) -> str | None:
    for name in sorted(set(first) | set(second)):
        if first.get(name) != second.get(name):
            return f"rerun wrote different {name}"
    return None
