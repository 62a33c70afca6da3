"""Plain-text tables for the terminal (no colour codes, safe to pipe)."""

from __future__ import annotations

import re

# control characters, surrogates and the two non-characters XML forbids: shown escaped
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")


def printable(text: str) -> str:
    """`text` with each control character (and each code point XML cannot hold)
    written as a Python escape, so that a name holding one keeps its table row
    and its page well-formed."""
    return _UNPRINTABLE.sub(lambda m: repr(m.group())[1:-1] if ord(m.group()) < 0x10000 else m.group(), text)


def format_table(headers: list[str], rows: list[list], numeric: set[int] = frozenset()) -> str:
    """Columns padded to their widest cell, each cell `printable`; columns in
    `numeric` align right."""
    cells = [[str(h) for h in headers]] + [["" if c is None else printable(str(c)) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row):
        return "  ".join(c.rjust(w) if i in numeric else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule, *(line(r) for r in cells[1:])])


def shorten(text: str, width: int) -> str:
    """`text` cut to `width` characters in the middle, keeping both ends: long
    exported names (MLPerf's run to ~250 characters) differ at their start (the
    layer's scope) as well as at their end."""
    if len(text) <= width:
        return text
    head = (width - 1) // 2
    return text[:head] + "…" + text[len(text) - (width - 1 - head):]


def thousands(value: int | None) -> str:
    return "" if value is None else f"{value:,}"
