"""The campaign runner: a pool of forked workers that import nnc once and run
cases in-process (execute.py), so 10,000 cases take minutes, not hours.

- Workers are forked from this process after nnc is imported; each runs in its
  own process group under RLIMIT_AS (a huge allocation fails as a MemoryError
  instead of taking the machine down) with stdin on /dev/null.
- A case past `timeout` seconds has its worker's process group killed; the case
  is classified `timeout` and a fresh worker takes the worker's place. A worker
  that dies by itself (a signal, an abort) gives a `crash` (or `memory`) result
  read from the output files the case left. An exception in the fuzz code
  itself gives a `harness` result, so it is never blamed on nnc.
- A worker is replaced by a fresh fork after RECYCLE_AFTER cases.
- Case (seed, index) is a pure function of the corpus, so any case can be rerun
  alone: `run_one` runs it in a one-worker pool and keeps its folder.
"""

from __future__ import annotations

import faulthandler
import multiprocessing
import os
import random
import resource
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections import deque
from multiprocessing.connection import wait
from pathlib import Path
from typing import Callable, Iterable

from .case import Case
from .execute import execute, read_text, record
from .mutators import build_case
from .outcome import classify
from .seeds import Corpus, build_corpus

MEMORY_LIMIT = 6 << 30          # RLIMIT_AS per worker, bytes
TIMEOUT = 60.0                  # seconds per case
JOBS = 2
RECYCLE_AFTER = 200             # cases a worker runs before a fresh one replaces it
Task = tuple[int, int, bool, bool]   # seed, index, check determinism, keep the case folder


def _worker(conn, corpus: Corpus, base: Path, memory_limit: int) -> None:
    """Run tasks from `conn` until told to stop (None) or the parent goes away."""
    os.setpgrp()
    if memory_limit:
        resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    sys.stdin = open(0, encoding="utf-8", closefd=False)
    faulthandler.enable(2)  # fd 2: a crash during a case lands in the case's stderr file
    while True:
        try:
            task = conn.recv()
        except (EOFError, KeyboardInterrupt):
            return
        if task is None:
            return
        seed, index, determinism, keep = task
        folder = case_folder(base, seed, index)
        try:
            result = execute(corpus, seed, index, folder, determinism)
        except Exception as exc:  # noqa: BLE001 - a bug in the harness, reported as such
            result = _harness_failure(corpus, seed, index, exc)
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)
        conn.send(result)


def _harness_failure(corpus: Corpus, seed: int, index: int, exc: Exception) -> dict:
    """The `harness` result of a case the fuzz code itself failed on (not nnc)."""
    where = traceback.extract_tb(exc.__traceback__)[-1]
    reason = f"{type(exc).__name__}: {exc} at {Path(where.filename).name}:{where.lineno}"
    try:
        case = build_case(corpus, seed, index)
    except Exception:  # noqa: BLE001 - the case could not even be built: report the bare one
        case = Case(seed, index, corpus)
    return record(case, "harness", reason, None, 0.0, "", "")


def case_folder(base: Path, seed: int, index: int) -> Path:
    return base / f"case-{seed}-{index}"


class Pool:
    """`jobs` workers; `run(tasks, on_result)` runs every task and reports each result."""

    def __init__(self, corpus: Corpus, base: Path, jobs: int = JOBS, timeout: float = TIMEOUT,
                 memory_limit: int = MEMORY_LIMIT):
        _import_once(base / "import-tmp")
        self.corpus, self.base, self.jobs, self.timeout, self.memory_limit = corpus, base, jobs, timeout, memory_limit
        self.context = multiprocessing.get_context("fork")
        self.served: dict = {}    # worker -> cases it ran

    def _spawn(self):
        parent, child = self.context.Pipe()
        process = self.context.Process(target=_worker, args=(child, self.corpus, self.base, self.memory_limit),
                                       daemon=True)
        process.start()
        child.close()
        return process, parent

    def run(self, tasks: Iterable[Task], on_result: Callable[[dict], None]) -> None:
        pending = deque(tasks)
        idle = [self._spawn() for _ in range(min(self.jobs, len(pending)))]
        busy: dict = {}       # connection -> (worker, task, started)
        try:
            while pending or busy:
                while idle and pending:
                    worker, task = idle.pop(), pending.popleft()
                    worker[1].send(task)
                    busy[worker[1]] = (worker, task, time.monotonic())
                now = time.monotonic()
                deadline = min(started + self.timeout for _, _, started in busy.values())
                for conn in wait(list(busy), timeout=max(0.0, deadline - now)):
                    worker, task, _ = busy.pop(conn)
                    try:
                        on_result(conn.recv())
                        idle.append(self._recycled(worker))
                    except (EOFError, OSError):
                        on_result(self._lost(worker, task, timed_out=False))
                        idle.append(self._spawn())
                for conn, (worker, task, started) in list(busy.items()):
                    if time.monotonic() - started > self.timeout:
                        del busy[conn]
                        on_result(self._lost(worker, task, timed_out=True))
                        idle.append(self._spawn())
        finally:
            for process, conn in idle + [w for w, _, _ in busy.values()]:
                _stop(process, conn)

    def _recycled(self, worker):
        """`worker`, or a fresh one once it has served RECYCLE_AFTER cases (bounds
        whatever state and memory cases leave in a worker)."""
        self.served[worker] = self.served.get(worker, 0) + 1
        if self.served[worker] < RECYCLE_AFTER:
            return worker
        del self.served[worker]
        _stop(*worker)
        return self._spawn()

    def _lost(self, worker, task: Task, timed_out: bool) -> dict:
        """The result of a task whose worker was killed (timeout) or died."""
        process, conn = worker
        _kill(process)
        conn.close()
        seed, index, _, keep = task
        folder = case_folder(self.base, seed, index)
        stdout, stderr = read_text(folder / "stdout"), read_text(folder / "stderr")
        signum = -process.exitcode if process.exitcode is not None and process.exitcode < 0 else None
        exit_code = None if signum or process.exitcode is None else process.exitcode
        case = build_case(self.corpus, seed, index)
        cls, reason = classify(exit_code, signum, stdout, stderr, timed_out, [], case.must_reject)
        if timed_out:
            reason = f"ran past {self.timeout:g} s"
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)
        return record(case, cls, reason, exit_code, self.timeout if timed_out else 0.0, stdout, stderr)


def _import_once(tmp: Path) -> None:
    """Import nnc and onnxruntime here, once, for every forked worker to share.
    onnxruntime writes a `.ses` file into $TMPDIR when it is imported; importing
    it with TMPDIR pointing at `tmp` keeps that out of every case's temp folder
    (otherwise the first verifying case of each worker would show it as a leftover)."""
    tmp.mkdir(parents=True, exist_ok=True)
    saved = os.environ.get("TMPDIR")
    os.environ["TMPDIR"] = str(tmp)
    try:
        import nnc.cli  # noqa: F401
        import onnxruntime  # noqa: F401
    finally:
        if saved is None:
            os.environ.pop("TMPDIR")
        else:
            os.environ["TMPDIR"] = saved


def _kill(process) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        process.kill()
    process.join()


def _stop(process, conn) -> None:
    try:
        conn.send(None)
    except (OSError, ValueError):
        pass
    process.join(timeout=5)
    if process.is_alive():
        _kill(process)


def checks_determinism(seed: int, index: int, rate: float) -> bool:
    return random.Random(f"nnc-fuzz-determinism/{seed}/{index}").random() < rate


def run_campaign(cases: int | Iterable[int], seed: int = 0, jobs: int = JOBS, timeout: float = TIMEOUT,
                 determinism: float = 0.05, work: Path | None = None,
                 progress: Callable[[dict, int, int], None] | None = None,
                 corpus: Corpus | None = None) -> list[dict]:
    """Run cases 0..cases-1 (or the given indices) of campaign `seed` in `work`
    (built there unless `corpus` is given); the results, by index.
    `progress(result, done, total)` is called after each case."""
    indices = list(range(cases)) if isinstance(cases, int) else list(cases)
    work = Path(work) if work else Path(tempfile.mkdtemp(prefix="nnc-fuzz-"))
    corpus = corpus or build_corpus(work)
    results: list[dict] = []

    def collect(result: dict) -> None:
        results.append(result)
        if progress:
            progress(result, len(results), len(indices))

    tasks = [(seed, i, checks_determinism(seed, i, determinism), False) for i in indices]
    Pool(corpus, work / "cases", jobs, timeout).run(tasks, collect)
    return sorted(results, key=lambda r: r["index"])


def run_one(seed: int, index: int, work: Path, timeout: float = TIMEOUT, determinism: bool = True) -> dict:
    """Run one case alone and keep its folder (work/cases/case-SEED-INDEX)."""
    corpus = build_corpus(work)
    results: list[dict] = []
    Pool(corpus, work / "cases", 1, timeout).run([(seed, index, determinism, True)], results.append)
    return results[0]
