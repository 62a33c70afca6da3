"""The `nnc` console script: signal handling first, then the command line.

Importing the command line (numpy, nnc's modules) takes about 0.05 s; a
Ctrl-C or SIGTERM in that time would otherwise print a traceback, or kill nnc
without a word. Until cli.main installs its own handlers (which clean up
staging folders), a signal prints the interruption's one line and exits
128 + its number at once: nothing has been written yet.

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


def main() -> int:
    handle(SIGNALS, _interrupted_while_starting)
    from nnc.cli import main as run

    return exit_without_teardown(run())


def exit_without_teardown(code: int) -> int:
    """End the process with exit code `code` as sys.exit would, less the
    interpreter's teardown. Returns `code` (for sys.exit) instead when another
    thread still runs, which a normal exit would wait for; when a profiler or
    tracer watches (`python -m cProfile`, which writes its results after the
    script returns); or when a stream cannot be flushed (a reader that left:
    the normal exit reports it)."""
    watched = sys.getprofile() is not None or sys.gettrace() is not None
    if watched or threading.active_count() > 1 or not _flushed():
        return code
    atexit._run_exitfuncs()  # what Py_Finalize runs first; CPython's (and PyPy's) hook for it
    _flushed()  # what the handlers printed; the exit code is already decided
    os._exit(code)


def _flushed() -> bool:
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        return False
    return True
