"""Prints the zoo matrix after a run that included tests/zoo: per family,
exporter and target, the outcome, compile seconds and int8-vs-float cosine,
or the first line of the error (recorded by test_zoo.py as the "zoo" user
property of each case)."""

from __future__ import annotations

OUTCOMES = ("passed", "failed", "xfailed", "xpassed")


def _rows(stats: dict) -> list[tuple[str, dict]]:
    rows = []
    for outcome in OUTCOMES:
        for report in stats.get(outcome, []):
            if getattr(report, "when", "call") != "call":
                continue
            for name, value in getattr(report, "user_properties", ()):
                if name == "zoo":
                    rows.append((outcome, value))
    return sorted(rows, key=lambda r: (r[1]["family"], r[1]["exporter"], r[1]["target"]))


def pytest_terminal_summary(terminalreporter):
    rows = _rows(terminalreporter.stats)
    if not rows:
        return
    terminalreporter.section("nnc model zoo")
    for outcome, row in rows:
        if "error" in row:
            detail = row["error"]
        else:
            cosine = "" if row["cosine"] is None else f"  cosine {row['cosine']:.5f}"
            detail = f"{row['seconds']:6.2f} s{cosine}"
        terminalreporter.write_line(f"{row['family']:<20} {row['exporter']:<12} {row['target']:<7} "
                                    f"{outcome:<8} {detail}")
