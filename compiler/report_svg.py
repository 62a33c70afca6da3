"""Inline SVG charts for report.html, drawn from numbers alone (no library, no
network): horizontal bar charts, one row per layer, and the C arena's memory
timeline.

Invariants: the output is well-formed XML (every text escaped, every element
closed), names no external resource, and is a function of its arguments only
(coordinates rounded to 0.1 px), so the same report draws the same bytes.
Every row and every buffer carries a <title> tooltip with the full layer or
tensor name and its numbers.
"""

from __future__ import annotations

from .records import record

WIDTH = 760
LABEL_WIDTH = 120  # the row label: a layer id "#12" or a short op name
VALUE_WIDTH = 150  # the value text right of the bars
ROW_HEIGHT = 18
BAR_HEIGHT = 12
PLOT_HEIGHT = 300  # the memory chart's plot area
PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7", "#9c755f",
           "#bab0ac")


def escape(text: str) -> str:
    """`html.escape(text)`: & < > " ' as character references (importing the
    html module loads its table of 2,000 entities, 7 M instructions)."""
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;").replace("'", "&#x27;"))


@record
class Segment:
    """A piece of a bar: `value` in the chart's unit, drawn in css class `kind`."""

    value: float
    kind: str


@record
class Bar:
    """One chart row: `label` left of the bar, `tooltip` on hover, the segments
    stacked left to right, `back` (optional) a lighter bar behind them (say the
    fp32 bytes behind the stored ones), `text` right of the bar."""

    label: str
    tooltip: str
    segments: tuple[Segment, ...]
    text: str
    back: float | None = None


def bar_chart(bars: list[Bar], legend: tuple[tuple[str, str], ...] = ()) -> str:
    """Horizontal bars on one linear scale from 0 to the largest row total;
    `legend`: (css class, meaning) pairs shown above the rows."""
    top = ROW_HEIGHT if legend else 0
    height = top + ROW_HEIGHT * len(bars) + 4
    span = max([sum(s.value for s in b.segments) for b in bars] + [b.back or 0.0 for b in bars] + [0.0])
    scale = (WIDTH - LABEL_WIDTH - VALUE_WIDTH) / span if span > 0 else 0.0
    parts = [_open(WIDTH, height), *_legend(legend)]
    for row, bar in enumerate(bars):
        y = top + row * ROW_HEIGHT
        parts.append(f'<g><title>{escape(bar.tooltip)}</title>')
        parts.append(svg_text(LABEL_WIDTH - 6, y + 13, bar.label, "end"))
        if bar.back:
            parts.append(_rect(LABEL_WIDTH, y + 3, bar.back * scale, BAR_HEIGHT, "back"))
        x = float(LABEL_WIDTH)
        for segment in bar.segments:
            parts.append(_rect(x, y + 3, segment.value * scale, BAR_HEIGHT, segment.kind))
            x += segment.value * scale
        end = LABEL_WIDTH + max(x - LABEL_WIDTH, (bar.back or 0.0) * scale)
        parts.append(svg_text(end + 6, y + 13, bar.text))
        parts.append("</g>")
    parts.append("</svg>")
    return "\n".join(parts)


def _legend(legend: tuple[tuple[str, str], ...]) -> list[str]:
    parts, x = [], float(LABEL_WIDTH)
    for kind, meaning in legend:
        parts += [_rect(x, 3, 12, 12, kind), svg_text(x + 16, 13, meaning)]
        x += 28 + 7 * len(meaning)
    return parts


@record
class Block:
    """A buffer in the memory chart: bytes [offset, offset + size) live from
    step `first` to step `last` (inclusive)."""

    offset: int
    size: int
    first: int
    last: int
    tooltip: str


def memory_chart(blocks: list[Block], steps: list[str], arena_bytes: int, lower_bound: int | None = None) -> str:
    """The arena over time: x = step (one column per step, labelled by
    `steps`), y = byte offset (0 at the bottom); each buffer a rectangle, the
    arena size and (when given) the lower bound as horizontal lines."""
    left, bottom, right = 84, 84, 16
    plot_width = WIDTH - left - right
    height = PLOT_HEIGHT + bottom + 12
    column = plot_width / max(len(steps), 1)
    scale = PLOT_HEIGHT / max(arena_bytes, 1)
    base = 12 + PLOT_HEIGHT

    def y_of(offset: float) -> float:
        return base - offset * scale

    parts = [_open(WIDTH, height), _rect(left, 12, plot_width, PLOT_HEIGHT, "plot")]
    for index, block in enumerate(blocks):
        parts.append(f'<g><title>{escape(block.tooltip)}</title>')
        parts.append(_rect(left + block.first * column, y_of(block.offset + block.size),
                           (block.last - block.first + 1) * column, block.size * scale, "buffer",
                           PALETTE[index % len(PALETTE)]))
        parts.append("</g>")
    if lower_bound:
        parts.append(_line(left, plot_width, y_of(lower_bound), "bound"))
        parts.append(svg_text(left + plot_width - 4, y_of(lower_bound) - 4, f"lower bound {lower_bound:,}", "end"))
    parts.append(_line(left, plot_width, y_of(arena_bytes), "arena"))
    parts.append(svg_text(left - 4, y_of(arena_bytes) + 4, f"{arena_bytes:,}", "end"))
    parts.append(svg_text(left - 4, base + 4, "0", "end"))
    parts.append(f'<text transform="translate(14,{svg_number(12 + PLOT_HEIGHT / 2)}) rotate(-90)" '
                 f'text-anchor="middle">offset (bytes)</text>')
    every = max(1, -(-len(steps) * 14 // plot_width))  # labels at least 14 px apart
    for step in range(0, len(steps), every):
        x = left + (step + 0.5) * column
        parts.append(f'<text class="tick" transform="translate({svg_number(x)},{svg_number(base + 6)}) rotate(60)">'
                     f'{escape(steps[step])}</text>')
    parts.append(svg_text(left - 4, base + bottom - 2, "step", "end"))
    parts.append("</svg>")
    return "\n".join(parts)


def _line(left: float, width: float, y: float, kind: str) -> str:
    return f'<line class="{kind}" x1="{svg_number(left)}" y1="{svg_number(y)}" x2="{svg_number(left + width)}" y2="{svg_number(y)}"/>'


def _open(width: float, height: float) -> str:
    return f'<svg class="chart" width="{width}" height="{svg_number(height)}" viewBox="0 0 {width} {svg_number(height)}" role="img">'


def _rect(x: float, y: float, width: float, height: float, kind: str, fill: str | None = None) -> str:
    colour = f' fill="{fill}"' if fill else ""
    return (f'<rect class="{kind}" x="{svg_number(x)}" y="{svg_number(y)}" width="{svg_number(max(width, 0.0))}" '
            f'height="{svg_number(max(height, 0.0))}"{colour}/>')


def svg_text(x: float, y: float, text: str, anchor: str = "start") -> str:
    return f'<text x="{svg_number(x)}" y="{svg_number(y)}" text-anchor="{anchor}">{escape(text)}</text>'


def svg_number(value: float) -> str:
    """A coordinate rounded to 0.1 px, without a trailing ".0" (format rounds
    as round(value, 1) does: the exact binary value, half to even), never "-0"."""
    text = f"{value:.1f}".removesuffix(".0")
    return "0" if text == "-0" else text
