"""Summaries of campaign results: the family x outcome table and the failures list."""

from __future__ import annotations

from collections import Counter

from .mutators import FAMILY_WEIGHTS
from .outcome import CLASSES, FAILURES


def outcome_table(results: list[dict]) -> str:
    """Markdown table: one row per mutator family, one column per outcome class seen
    (rejected, accepted and every failure class always shown), then the total."""
    counts = Counter((r["family"], r["class"]) for r in results)
    columns = [c for c in CLASSES if c in ("rejected", "accepted") or c in FAILURES]
    rows = [["family", *columns, "total"], ["---"] * (len(columns) + 2)]
    for family in FAMILY_WEIGHTS:
        total = sum(counts[family, c] for c in columns)
        if total:
            rows.append([family, *(_cell(counts[family, c]) for c in columns), str(total)])
    rows.append(["**all**", *(_cell(sum(counts[f, c] for f in FAMILY_WEIGHTS)) for c in columns),
                 str(len(results))])
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)


def _cell(count: int) -> str:
    return str(count) if count else "."


def failures(results: list[dict]) -> dict[str, list[dict]]:
    """Failing results by class, in case order."""
    grouped: dict[str, list[dict]] = {c: [] for c in FAILURES}
    for result in results:
        if result["class"] in grouped:
            grouped[result["class"]].append(result)
    return {c: rs for c, rs in grouped.items() if rs}


def failure_list(results: list[dict], first: int = 5) -> str:
    """For each failure class: its count and the first `first` case ids with their reasons."""
    lines = []
    for cls, items in failures(results).items():
        lines.append(f"{cls}: {len(items)}")
        lines += [f"  {r['id']} [{'+'.join(r['mutators'])}] {r['reason']}" for r in items[:first]]
    return "\n".join(lines) if lines else "no failures"
