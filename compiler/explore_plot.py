"""front.svg of `nnc explore`: two scatter plots of the sweep's points, energy
against latency and stored bytes against output error, the Pareto front
highlighted (front points are optimal over all four objectives, so in one
panel's two dimensions a front point may sit behind another).

Invariants: one self-contained SVG file (its own stylesheet, no external
resource, every text escaped), a function of its arguments only, coordinates
rounded to 0.1 px through report_svg's formatting, so the same points draw the
same bytes. Every point carries a <title> tooltip with its number, settings and
metrics.
"""

from __future__ import annotations

from .report_svg import escape, svg_number, svg_text

PANEL = 380  # width of one panel
HEIGHT = 340
MARGIN = {"left": 76, "right": 26, "top": 44, "bottom": 40}
STYLE = ("text{font:11px sans-serif;fill:#333}.plot{fill:#fafafa;stroke:#999}"
         ".other{fill:#bbb;fill-opacity:.7}.front{fill:#e15759;stroke:#7a1f20}"
         ".title{font-weight:bold}")
# (x metric, y metric, panel title) of each panel
PANELS = (("latency_ms", "energy_uj", "energy vs latency"),
          ("error", "blob_bytes", "stored bytes vs output error"))
AXIS_NAMES = {"latency_ms": "latency (ms)", "energy_uj": "energy (µJ)", "error": "output error (relative L2)",
              "blob_bytes": "stored bytes (blob)"}


def front_svg(rows: list[dict], front: set[int], label: dict[int, str]) -> str:
    """The figure of the successful `rows` (dicts with the metrics and "index");
    `front`: the indices on the Pareto front; `label`: index -> settings text."""
    width = PANEL * len(PANELS)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{HEIGHT}" '
             f'viewBox="0 0 {width} {HEIGHT}" role="img">', f"<style>{STYLE}</style>"]
    for number, (x_key, y_key, title) in enumerate(PANELS):
        parts += _panel(number * PANEL, rows, front, label, x_key, y_key, title)
    parts.append(svg_text(width - 8, 14, f"{len(front)} of {len(rows)} points on the Pareto front (red)", "end"))
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _panel(left: float, rows: list[dict], front: set[int], label: dict[int, str], x_key: str, y_key: str,
           title: str) -> list[str]:
    x0, y0 = left + MARGIN["left"], MARGIN["top"]
    width = PANEL - MARGIN["left"] - MARGIN["right"]
    height = HEIGHT - MARGIN["top"] - MARGIN["bottom"]
    x_scale, y_scale = _scale([r[x_key] for r in rows]), _scale([r[y_key] for r in rows])
    parts = [f'<rect class="plot" x="{svg_number(x0)}" y="{svg_number(y0)}" width="{svg_number(width)}" height="{svg_number(height)}"/>',
             f'<text class="title" x="{svg_number(x0)}" y="{svg_number(y0 - 10)}">{escape(title)}</text>']
    for value, fraction in x_scale.ticks():
        parts.append(svg_text(x0 + fraction * width, y0 + height + 14, _number(value), "middle"))
    for value, fraction in y_scale.ticks():
        parts.append(svg_text(x0 - 4, y0 + height - fraction * height + 4, _number(value), "end"))
    parts.append(svg_text(x0 + width / 2, y0 + height + 32, AXIS_NAMES[x_key], "middle"))
    parts.append(f'<text transform="translate({svg_number(left + 12)},{svg_number(y0 + height / 2)}) rotate(-90)" '
                 f'text-anchor="middle">{escape(AXIS_NAMES[y_key])}</text>')
    for row in sorted(rows, key=lambda r: (r["index"] in front, r["index"])):  # front drawn on top
        x = x0 + x_scale.at(row[x_key]) * width
        y = y0 + height - y_scale.at(row[y_key]) * height
        kind, radius = ("front", 4.5) if row["index"] in front else ("other", 3)
        tip = (f"point {row['index']}: {label[row['index']]}; {x_key} {_number(row[x_key])}, "
               f"{y_key} {_number(row[y_key])}")
        parts.append(f'<g><title>{escape(tip)}</title><circle class="{kind}" cx="{svg_number(x)}" cy="{svg_number(y)}" '
                     f'r="{radius}"/></g>')
    return parts


class _scale:
    """A linear axis over the values, 5% padding each side; `at` maps a value
    to [0, 1], `ticks` gives (value, position) at the smallest, middle and
    largest value."""

    def __init__(self, values: list[float]):
        self.values = (min(values), max(values)) if values else (0.0, 1.0)
        low, high = self.values
        pad = (high - low) * 0.05 or max(abs(high) * 0.05, 1e-9)
        self.low, self.high = low - pad, high + pad

    def at(self, value: float) -> float:
        return (value - self.low) / (self.high - self.low)

    def ticks(self) -> list[tuple[float, float]]:
        low, high = self.values
        shown = [low, (low + high) / 2, high] if high > low else [low]
        return [(value, self.at(value)) for value in shown]


def _number(value: float) -> str:
    """Up to 4 significant digits; thousands separators from 1,000 on."""
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"
