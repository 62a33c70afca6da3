"""The fuzz campaign (docs/fuzzing.md): a fixed-seed subset that must show no
failure of any class, and checks that the harness itself sees what it must
(reproducible cases, every mutator applicable, touched files, timeouts, crashes)."""

from __future__ import annotations

import faulthandler
import os
import random
import time

import pytest

from fuzzing import runner
from fuzzing.case import base_case, materialize
from fuzzing.execute import run_nnc
from fuzzing.mutators import MUTATORS, build_case
from fuzzing.outcome import classify
from fuzzing.sandbox import file_findings, snapshot
from fuzzing.seeds import build_corpus
from fuzzing.tables import failure_list, failures, outcome_table

SEED = 2026
CASES = 300          # about 35 s on 2 idle cores


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return build_corpus(tmp_path_factory.mktemp("fuzz-corpus"))


def test_fixed_seed_campaign(corpus, tmp_path):
    results = runner.run_campaign(CASES, seed=SEED, jobs=2, determinism=0.1, work=tmp_path, corpus=corpus)
    assert [r["index"] for r in results] == list(range(CASES))
    if failures(results):
        pytest.fail(f"fuzz cases failed (rerun one with: python benchmarks/fuzz.py --seed {SEED} --case I --show)\n"
                    + failure_list(results, first=10) + "\n\n" + outcome_table(results), pytrace=False)


def test_cases_are_reproducible(corpus):
    for index in range(60):
        first, second = build_case(corpus, SEED, index), build_case(corpus, SEED, index)
        assert (first.argv(), first.files, first.symlinks, first.notes) == \
               (second.argv(), second.files, second.symlinks, second.notes)
    assert len({tuple(build_case(corpus, SEED, i).argv()) for i in range(60)}) > 30


@pytest.mark.parametrize("name", sorted(MUTATORS))
def test_every_mutator_changes_its_case(corpus, name):
    for attempt in range(3):
        rng = random.Random(f"{name}/{attempt}")
        base = base_case(corpus, SEED, attempt, rng)
        before = (base.argv(), dict(base.files), dict(base.symlinks))
        case = MUTATORS[name].apply(rng, base)
        assert case.notes, f"{name} left no note of what it did"
        if name != "no-mutation":
            assert (case.argv(), case.files, case.symlinks) != before, f"{name} changed nothing"


@pytest.mark.parametrize("argv, code, stream, text", [
    (["--version"], 0, "stdout", "nnc "),
    (["compile", "missing.onnx", "-o", "out"], 2, "stderr", "nnc: error: "),
])
def test_run_nnc_captures_exit_code_and_output(tmp_path, argv, code, stream, text):
    (tmp_path / "tmp").mkdir()
    assert run_nnc(argv, tmp_path, tmp_path / "tmp", tmp_path / "stdout", tmp_path / "stderr") == code
    assert (tmp_path / stream).read_text().startswith(text)


def test_sandbox_sees_touched_and_leftover_files(corpus, tmp_path):
    case = base_case(corpus, SEED, 0, random.Random(0))
    case.out = "out"
    sandbox = materialize(case, tmp_path / "case")
    before = snapshot(tmp_path / "case" / "home")
    (sandbox / "notes.txt").unlink()
    (sandbox / "data.bin").write_bytes(b"changed")
    (sandbox.parent / "stray.txt").write_text("written outside the sandbox")
    (sandbox / ".out.abc.staging").mkdir()
    (sandbox / "out").mkdir()
    (tmp_path / "case" / "tmp" / "build").mkdir()
    after = snapshot(tmp_path / "case" / "home")
    found = file_findings(case, before, after, os.listdir(tmp_path / "case" / "tmp"), succeeded=False)
    assert ("touched", "removed work/notes.txt") in found
    assert ("touched", "changed work/data.bin") in found
    assert ("touched", "created stray.txt outside the sandbox") in found
    assert ("leftover", "left work/.out.abc.staging") in found
    assert ("leftover", "failed run wrote work/out inside -o") in found
    assert ("leftover", "left tmp/build") in found


@pytest.mark.parametrize("exit_code, stderr, must_reject, expected", [
    (2, "nnc: warning: synthetic samples\nnnc: error: bad model\n", False, "rejected"),
    (2, "Usage: nnc compile [OPTIONS]\n╭─ Error ─╮\n│ Invalid value │\n", False, "messy-error"),
    (2, "nnc: error: one\nnnc: error: two\n", False, "messy-error"),
    (3, "nnc: internal error: KeyError: 99\n", False, "internal"),
    (3, "nnc: internal error: MemoryError: \n", False, "memory"),
    (1, "Traceback (most recent call last):\n  ...\nValueError: x\n", False, "traceback"),
    (0, "", True, "should-reject"),
    (0, "/x.py:1: RuntimeWarning: overflow\n", False, "noisy"),
    (0, "nnc: warning: calibrated on synthetic inputs\n", False, "accepted"),
    (139, "", False, "crash"),
])
def test_classify(exit_code, stderr, must_reject, expected):
    assert classify(exit_code, None, "", stderr, False, [], must_reject)[0] == expected


def _fake_execute(corpus, seed, index, folder, determinism):
    """Index 0 hangs, 1 aborts, 2 fails in the harness, anything else is a normal result."""
    if index == 0:
        time.sleep(60)
    if index == 1:
        faulthandler.disable()  # keep the test's output free of the dump
        os.abort()
    if index == 2:
        raise ValueError("a bug in the fuzz code")
    return {"index": index, "class": "accepted"}


def test_pool_survives_hangs_crashes_and_harness_bugs(corpus, tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "execute", _fake_execute)   # the forked workers inherit the patch
    results = []
    runner.Pool(corpus, tmp_path, jobs=2, timeout=2).run([(SEED, i, False, False) for i in range(5)],
                                                          results.append)
    by_index = {r["index"]: r for r in results}
    assert by_index[0]["class"] == "timeout"
    assert by_index[1]["class"] == "crash" and "signal 6" in by_index[1]["reason"]
    assert by_index[2]["class"] == "harness" and "a bug in the fuzz code" in by_index[2]["reason"]
    assert by_index[3]["class"] == by_index[4]["class"] == "accepted"
