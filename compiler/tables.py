"""Plain-text tables for the terminal (no colour codes, safe to pipe)."""

from __future__ import annotations

import os
import re

# control characters, surrogates and the two non-characters XML forbids: shown escaped
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")


def printable(text: str) -> str:
    """`text` with each control character (and each code point XML cannot hold)
    written as a Python escape, so that a name holding one keeps its table row
    and its page well-formed."""
    if text.isascii() and text.isprintable():  # no ASCII control character: nothing to escape
        return text
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


def shorten_apart(names: list[str], width: int) -> list[str]:
    """Each of `names` shortened as `shorten` does, except where that would make
    different names look alike (KWS's depthwise layers differ only in a digit in
    the middle): those keep the place where they first differ, their head up to
    a little past it (or, past a long common head, a window around it between
    two ellipses). Equal names stay equal."""
    short = [shorten(name, width) for name in names]
    clashing: dict[str, set[str]] = {}
    for name, cut in zip(names, short):
        clashing.setdefault(cut, set()).add(name)
    for cut, group in clashing.items():
        if len(group) < 2:
            continue
        at = len(os.path.commonprefix(sorted(group)))  # every name of the group differs at or after `at`
        for i, name in enumerate(names):
            if short[i] == cut and name in group:
                short[i] = _cut_around(name, width, at)
    return short


def _cut_around(text: str, width: int, at: int) -> str:
    """`text` in `width` characters keeping text[at] and a few after it."""
    head = at + 6
    if head <= width - 8:
        return text[:head] + "…" + text[len(text) - (width - 1 - head):]
    start = max(0, at - (width - 2) // 2)
    return "…" + text[start:start + width - 2] + "…"


def thousands(value: int | None) -> str:
    return "" if value is None else f"{value:,}"
