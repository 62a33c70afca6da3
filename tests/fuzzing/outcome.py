"""Outcome classes of a fuzz case, and the rule that picks one per run.

Good outcomes:
    rejected          exit 2 and stderr is exactly one `nnc: error:` line
                      (`nnc: warning:` lines allowed)
    accepted          exit 0
Failures, in the order a run is checked for them (the first that applies wins):
    touched           a user file changed or removed, or a file created outside
                      -o, the sandbox and the case's temp folder (sandbox.py)
    traceback         'Traceback' anywhere in stdout or stderr
    memory            a MemoryError / allocation failure (the worker runs under
                      RLIMIT_AS), whatever the exit code
    timeout           the case ran past the per-case timeout (its worker is killed)
    crash             killed by a signal, or an exit code other than 0, 2 and 3
    internal          exit 3 (`nnc: internal error`)
    leftover          staging folders, .partial files, a half-written -o, or
                      anything left in the case's temp folder (sandbox.py)
    messy-error       exit 2 but stderr is not one clean `nnc: error:` line (with
                      --print-ir-after, the IR dumps aside)
    should-reject     exit 0 on an input a mutator marks must_reject
    noisy             exit 0 with stderr lines that are not nnc's own (a Python
                      warning, a library's log); not checked with --print-ir-after,
                      whose IR dumps go to stderr
    nondeterministic  an accepted case whose rerun wrote different bytes
    harness           the fuzz code itself failed on the case (a bug in tests/fuzzing,
                      not in nnc; set by the runner)
"""

from __future__ import annotations

import re

GOOD = ("rejected", "accepted")
FAILURES = ("touched", "traceback", "memory", "timeout", "crash", "internal", "leftover", "messy-error",
            "should-reject", "noisy", "nondeterministic", "harness")
CLASSES = GOOD + FAILURES

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
MEMORY = re.compile(r"MemoryError|bad_alloc|bad allocation|Cannot allocate memory|Unable to allocate|"
                    r"out of memory|Failed to allocate", re.IGNORECASE)


def classify(exit_code: int | None, signal: int | None, stdout: str, stderr: str, timed_out: bool,
             file_findings: list[tuple[str, str]], must_reject: bool,
             nondeterminism: str | None = None, dumps_ir: bool = False) -> tuple[str, str]:
    """(class, one-line reason) of one run; see the module docstring for the order."""
    found = dict(reversed(file_findings))
    output = stdout + "\n" + stderr
    checks = [
        ("touched", found.get("touched")),
        ("traceback", "Traceback" in output and _traceback_reason(output)),
        ("memory", (m := MEMORY.search(output)) and exit_code != 0 and not (exit_code == 2 and clean_error(stderr))
         and _line_of(output, m.start())),
        ("timeout", timed_out and "ran past the timeout"),
        ("crash", signal is not None and f"killed by signal {signal}"),
        ("crash", exit_code not in (0, 2, 3, None) and f"exit code {exit_code}: {_last_line(stderr)}"),
        ("internal", exit_code == 3 and _last_line(stderr)),
        ("leftover", found.get("leftover")),
        ("messy-error", exit_code == 2 and not clean_error(_without_dumps(stderr, dumps_ir))
         and _messy_reason(stderr)),
        ("should-reject", exit_code == 0 and must_reject and "exit 0 on an input nnc must refuse"),
        ("noisy", exit_code == 0 and not dumps_ir and _foreign_lines(stderr)),
        ("nondeterministic", exit_code == 0 and nondeterminism),
    ]
    for name, reason in checks:
        if reason:
            return name, _one_line(reason)
    if exit_code == 0:
        return "accepted", ""
    return "rejected", _one_line(_error_line(stderr))


def clean_error(stderr: str) -> bool:
    """Exactly one `nnc: error:` line; any other lines are `nnc: warning:` lines."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("nnc: error: ")]
    return len(errors) == 1 and all(line.startswith(("nnc: error: ", "nnc: warning: ")) for line in lines)


def _without_dumps(stderr: str, dumps_ir: bool) -> str:
    """stderr without the IR dumps --print-ir-after asked for (every line not starting with 'nnc: ')."""
    if not dumps_ir:
        return stderr
    return "\n".join(line for line in stderr.splitlines() if line.startswith("nnc: "))


def _foreign_lines(stderr: str) -> str:
    """The stderr lines nnc did not write (not starting with 'nnc: '), as a reason; '' if none."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip() and not line.startswith("nnc: ")]
    return f"exit 0 with {len(lines)} foreign stderr lines: " + " | ".join(lines[:2]) if lines else ""


def _error_line(stderr: str) -> str:
    return next((line for line in stderr.splitlines() if line.startswith("nnc: error: ")), _last_line(stderr))


def _messy_reason(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip(" \u2500\u2502\u256d\u256e\u2570\u256f")]
    return f"{len(stderr.splitlines())} stderr lines: " + " | ".join(lines[:3]) if lines else "exit 2, empty stderr"


def _traceback_reason(output: str) -> str:
    tail = output[output.rindex("Traceback"):].strip().splitlines()
    return "Traceback: " + (tail[-1] if tail else "")


def _line_of(text: str, at: int) -> str:
    start = text.rfind("\n", 0, at) + 1
    end = text.find("\n", at)
    return text[start:end if end >= 0 else len(text)]


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def _one_line(text: str, limit: int = 240) -> str:
    text = " ".join(ANSI.sub("", str(text)).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."
