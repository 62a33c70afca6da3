"""Plain-text tables for the terminal (no colour codes, safe to pipe)."""

from __future__ import annotations


def format_table(headers: list[str], rows: list[list], numeric: set[int] = frozenset()) -> str:
    """Columns padded to their widest cell; columns in `numeric` align right."""
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in row] for row in rows]
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
