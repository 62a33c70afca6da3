"""The `nnc` console script: signal handling first, then the command line.

Importing the command line (numpy, nnc's modules) takes about 0.05 s; a
Ctrl-C or SIGTERM in that time would otherwise print a traceback, or kill nnc
without a word. Until cli.main installs its own handlers (which clean up
staging folders), a signal prints the interruption's one line and exits
128 + its number at once: nothing has been written yet.
"""

from __future__ import annotations

import os
import signal
import sys

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

    return run()
