"""The `nnc` console script: signal handling first, then the command line.

Importing the command line (numpy, nnc's modules) takes about 0.05 s; a
Ctrl-C or SIGTERM in that time would otherwise print a traceback, or kill nnc
without a word. Until cli.main installs its own handlers (which clean up
staging folders), a signal prints the interruption's one line and exits
128 + its number at once: nothing has been written yet.

Commands other than `nnc finetune` (whose training threads are PyTorch's) run
numpy's OpenBLAS on one thread unless the environment chooses a count
(OPENBLAS_NUM_THREADS, GOTO_NUM_THREADS or OMP_NUM_THREADS): nnc's products
are small and many, where a pool gains nothing (a verified ResNet-18 compile
takes the same wall time, with a third less CPU), and the pool's threads spin
for about 0.1 s after numpy starts them, taking a core from the compile on a
small machine (0.01 s of a 0.2 s compile on two cores). The count must be set
before numpy is imported; subprocesses (explore's workers) inherit it.

When the command is done, the script exits without the interpreter's teardown
(freeing numpy's, jinja2's and nnc's modules one object at a time: about
0.01 s of a 0.2 s compile). What an exit must still do is done first: the
standard streams are flushed and the atexit handlers run (temporary folders'
finalizers among them). Every file nnc writes is closed before its command
returns, so no buffered data waits for the teardown.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _interrupted_while_starting(signum, frame):
    sys.stderr.write(f"nnc: error: interrupted by {signal.Signals(signum).name}; no output was written\n")
    sys.stderr.flush()
    os._exit(128 + signum)


def handle(signals, handler) -> None:
    """Install `handler` for each of `signals` that is not ignored (a signal
    ignored when nnc started, as nohup ignores SIGHUP, stays ignored)."""
    for signum in signals:
        if signal.getsignal(signum) is not signal.SIG_IGN:
            signal.signal(signum, handler)


BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS")
POOLED_COMMANDS = ("finetune",)  # commands that keep BLAS's default thread count


def main() -> int:
    handle(SIGNALS, _interrupted_while_starting)
    blas_on_one_thread(sys.argv[1:])
    from nnc.cli import main as run

    return exit_without_teardown(run())


def blas_on_one_thread(args: list[str]) -> None:
    """Set OPENBLAS_NUM_THREADS=1 for the command in `args` (see the module
    docstring), unless it trains or the environment gives a count; when BLAS
    will start on one thread, tell blas_threads, which then needs no controller."""
    command = next((arg for arg in args if not arg.startswith("-")), None)
    if command not in POOLED_COMMANDS and not any(os.environ.get(name) for name in BLAS_THREAD_VARIABLES):
        os.environ["OPENBLAS_NUM_THREADS"] = "1"
    if os.environ.get("OPENBLAS_NUM_THREADS") == "1" and "numpy" not in sys.modules:
        from nnc.blas_threads import started_on_one_thread  # imports nothing of its own

        started_on_one_thread()


def exit_without_teardown(code: int) -> int:
    """End the process with exit code `code` as sys.exit would, less the
    interpreter's teardown. Returns `code` (for sys.exit) instead when another
    thread still runs, which a normal exit would wait for; when a profiler or
    tracer watches (`python -m cProfile`, which writes its results after the
    script returns); or when a stream cannot be flushed (a reader that left:
    the normal exit reports it)."""
    if _watched() or threading.active_count() > 1 or not _flushed():
        return code
    atexit._run_exitfuncs()  # what Py_Finalize runs first; CPython's (and PyPy's) hook for it
    _flushed()  # what the handlers printed; the exit code is already decided
    os._exit(code)


def _watched() -> bool:
    """Whether a profiler, tracer, debugger or coverage tool is attached:
    through sys.setprofile or sys.settrace, or (Python 3.12+, where cProfile
    uses it) sys.monitoring."""
    if sys.getprofile() is not None or sys.gettrace() is not None:
        return True
    monitoring = getattr(sys, "monitoring", None)
    return monitoring is not None and any(monitoring.get_tool(tool) is not None for tool in range(6))


def _flushed() -> bool:
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        return False
    return True
