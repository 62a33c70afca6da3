"""report.html: a compile report people look at, one self-contained file.

Plain HTML, a little CSS and inline SVG drawn by report_svg.py: no script, no
font, image or style sheet from anywhere, so it opens offline and from an
archived build. The page is put together here, every text through
report_svg.escape, without a template engine: an az-sim compile, whose only
template this was, would import jinja2 for it (0.015 s of a 0.2 s compile).
Sections (element ids): `summary` (weights fp32 → stored, MACs, the target's
memory or simulation totals, verification, quality gate),
`layers` (report_csv's per-layer table: layer ids, names shortened in the
middle with the full name as tooltip), `charts` (per layer: stored bytes
against fp32, bits asked and code width, sparsity, MACs, output error),
`sim` (az-sim: cycles and energy per step), `memory` (c: the arena's buffers,
offset × step), `passes` and `warnings`.

The page is a function of the report alone and names no folder of the
machine that made it (absolute paths in the pipeline, the samples' source and
the warnings are cut to their file names, as in the C target's sources;
report.json keeps them as given). Every text of the report is shown
`printable` (control characters escaped). Wall-clock timings are left out, so two compiles of the same
input write the same bytes. The page is well-formed XML as well as HTML.
"""

from __future__ import annotations

import re

from .cli_render import kept_clause
from .passmanager import file_name_only, without_folders
from .report_csv import COLUMNS, layer_table
from .report_svg import Bar, Block, Segment, bar_chart, escape, memory_chart
from .tables import printable, shorten, shorten_apart

NAME_WIDTH = 56  # layer names in the table, shortened in the middle
LABEL_WIDTH = 14  # chart row labels (ids, else op names)

# The page's head: metadata and its style sheet ({title}: the escaped title).
_HEAD = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8"/>
<meta name="viewport" content="width=device-width, initial-scale=1"/>
<title>nnc report: {title}</title>
<style>
body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #222; margin: 24px auto; max-width: 1400px; padding: 0 16px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 28px 0 8px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
h3 { font-size: 14px; margin: 18px 0 4px; }
code { font: 12px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; word-break: break-all; }
.meta { color: #555; margin: 2px 0; }
table { border-collapse: collapse; font-size: 13px; }
th, td { padding: 3px 8px; border-bottom: 1px solid #eee; text-align: left; white-space: nowrap; }
th { background: #f5f5f5; position: sticky; top: 0; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td[title] { cursor: help; }
tbody tr:hover { background: #f0f6ff; }
dl.figures { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 0; }
dl.figures dt { color: #555; }
dl.figures dd { margin: 0; }
.scroll { overflow-x: auto; }
svg.chart { display: block; font: 11px system-ui, sans-serif; }
svg.chart text { fill: #333; }
svg.chart text.tick { font-size: 10px; }
svg.chart .main { fill: #4e79a7; }
svg.chart .back { fill: #c9d6e8; }
svg.chart .skip { fill: #f28e2b; }
svg.chart .post { fill: #59a14f; }
svg.chart .over { fill: #bab0ac; }
svg.chart .error { fill: #e15759; }
svg.chart .plot { fill: #fafafa; stroke: #ccc; }
svg.chart .buffer { fill-opacity: 0.8; stroke: #fff; stroke-width: 0.5; }
svg.chart line.arena { stroke: #222; stroke-width: 1; }
svg.chart line.bound { stroke: #e15759; stroke-dasharray: 4 3; }
ul.warnings li { color: #8a4b00; }
</style>
</head>"""

_LAYERS_NOTE = ('<p class="meta">Ids <code>#i</code> number the layers with weights (what <code>--layer-bits</code> '
                'and <code>--layer-sparsity</code> take); hover a name for all of it. <em>bits</em>: the weight grid '
                "asked for; <em>code bits</em>: the storage format's code width; <em>cosine</em>, <em>rmse</em>: the "
                "layer's output, run alone on what it was given, against the float model's.</p>")


def render_html(report: dict) -> str:
    """The page of `report` (see the module docstring)."""
    report = _printable(report)
    rows = layer_table(report)
    model = report["model"]
    lines = [_HEAD.replace("{title}", escape(f"{model['name']} ({report['target']})")), "<body>",
             f'<h1>{escape(model["name"])} <span class="meta">→ {escape(report["target"])}</span></h1>',
             f'<p class="meta">model file {escape(model["file"])}, sha256 <code>{escape(model["sha256"])}</code>; '
             f'nnc {escape(report["nnc_version"])}</p>',
             f'<p class="meta">pipeline <code>{escape(without_folders(report["pipeline"]))}</code></p>']
    lines += _section("summary", "Summary", ['<dl class="figures">',
                                             *(f"<dt>{escape(label)}</dt><dd>{escape(value)}</dd>"
                                               for label, value in _figures(report)), "</dl>"])
    lines += _section("layers", "Layers", [_LAYERS_NOTE, '<div class="scroll">', *_table_html(_table(rows)), "</div>"])
    lines += _charts("charts", "Per layer", _layer_charts(report, rows))
    lines += _charts("sim", "Simulation (az-sim)", _sim_charts(report))
    memory = _memory(report)
    if memory:
        lines += _section("memory", "Arena memory over time", [
            f'<p class="meta">{escape(memory[0])}. Each rectangle is a buffer: its byte range (up) while it is live '
            "(across); hover for its tensor.</p>", f'<div class="scroll">{memory[1]}</div>'])
    passes = [f"<tr><td><code>{escape(without_folders(p['name']))}</code></td><td class=\"num\">{p['nodes_before']}"
              f"</td><td class=\"num\">{p['nodes_after']}</td></tr>" for p in report["passes"]]
    lines += _section("passes", "Passes", ["<table>", '<thead><tr><th>pass</th><th class="num">nodes before</th>'
                                           '<th class="num">after</th></tr></thead>', "<tbody>", *passes, "</tbody>",
                                           "</table>"])
    warnings = [_ABSOLUTE_PATH.sub(lambda m: file_name_only(m.group()), w) for w in report.get("warnings") or []]
    if warnings:
        lines += _section("warnings", "Warnings", ['<ul class="warnings">',
                                                   *(f"<li>{escape(w)}</li>" for w in warnings), "</ul>"])
    return "\n".join(lines + ["</body>", "</html>", ""])


def _section(element_id: str, title: str, body: list[str]) -> list[str]:
    """The section's lines, after a blank line."""
    return ["", f'<section id="{element_id}">', f"<h2>{title}</h2>", *body, "</section>"]


def _charts(element_id: str, title: str, charts: list[tuple[str, str]]) -> list[str]:
    """A section of (title, svg) charts; none when there are no charts."""
    if not charts:
        return []
    return _section(element_id, title, [line for chart_title, svg in charts
                                        for line in (f"<h3>{escape(chart_title)}</h3>",
                                                     f'<div class="scroll">{svg}</div>')])


def _table_html(table: dict) -> list[str]:
    def cell(tag: str, text, numeric: bool, tip: str = "") -> str:
        attributes = ' class="num"' * numeric + (f' title="{escape(tip)}"' if tip else "")
        return f"<{tag}{attributes}>{escape(str(text))}</{tag}>"

    head = "".join(cell("th", title, numeric) for title, numeric in table["headers"])
    rows = ["<tr>" + "".join(cell("td", text, numeric, tip) for text, tip, numeric in row) + "</tr>"
            for row in table["rows"]]
    return ["<table>", f"<thead><tr>{head}</tr></thead>", "<tbody>", *rows, "</tbody>", "</table>"]


# an absolute POSIX path in free text (not inside a word or a relative path)
_ABSOLUTE_PATH = re.compile(r"(?<![\w.~/-])/[^\s'\"`:,;()\[\]]+")


def _printable(value):
    """`value` (the report's JSON data) with every string `printable`."""
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, dict):
        return {key: _printable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_printable(item) for item in value]
    return value


# -- summary ---------------------------------------------------------------------
def _figures(report: dict) -> list[tuple[str, str]]:
    """(label, value) lines of the summary."""
    w, totals = report["weights"], report["totals"]
    found = [("weights", f"{w['weights']:,} weights in {w['stored_bytes']:,} bytes (fp32 {w['fp32_bytes']:,}, "
                         f"{w['compression'] or 0:.2f}× smaller), sparsity {w['sparsity']:.1%}{kept_clause(w)}"),
             ("other parameters", f"{w['other_bytes']:,} bytes"),
             ("layers", f"{totals['layers']:,}, {totals['macs']:,} MACs")]
    if report.get("memory"):
        m = report["memory"]
        found += [("arena", f"{m['arena_bytes']:,} bytes (naive {m['arena_naive_bytes']:,}, lower bound "
                            f"{m['arena_lower_bound_bytes']:,})"),
                  ("constants in flash", f"{m['flash_bytes']:,} bytes")]
    if report.get("sim"):
        s = report["sim"]
        skipped = s["macs_skipped"] / s["macs_total"] if s["macs_total"] else 0.0
        found += [("simulated", f"{s['cycles']:,} cycles = {s['latency_ms']:.4f} ms at {s['clock_mhz']:g} MHz "
                                f"on {s['hardware']}, {s['energy_uj']:.4f} µJ"),
                  ("MACs", f"{s['macs_executed']:,} executed, {s['macs_skipped']:,} skipped ({skipped:.1%}); "
                           f"{s['bytes_loaded']:,} bytes loaded; blob {s['blob_bytes']:,} bytes")]
    return found + _verification(report) + _gates(report)


def _verification(report: dict) -> list[tuple[str, str]]:
    v = report.get("verification")
    if not v:
        return [("verification", "not run")]
    from .accuracy import accuracy_text  # verified compiles only

    ref, flt = v["vs_reference"], v["vs_float"]
    truth = "onnxruntime" if v["float_truth"] == "onnxruntime" else "the float reference"
    agreement = f", top-1 agreement {flt['top1_agreement']:.1%}" if flt.get("top1_agreement") is not None else ""
    found = [("verification", f"{v['samples']} sample(s) from {file_name_only(v['source'])}"),
             ("vs reference", f"bit-exact {ref['bit_exact']}, max |d| {ref['max_abs_diff']:.4g}"),
             (f"vs {truth}", f"cosine {flt['cosine']:.6f}, max |d| {flt['max_abs_diff']:.4g}{agreement}")]
    for name, m in (v.get("outputs") or {}).items():
        if "top1" in m:
            found.append((f"accuracy of {name}", accuracy_text(m)))
    return found


def _gates(report: dict) -> list[tuple[str, str]]:
    found = []
    if report.get("budget"):
        b = report["budget"]
        found.append(("budget", f"{b['budget_bytes']:,} bytes asked, {b['chosen_bytes']:,} chosen"))
    if report.get("quality_gate"):
        gate = report["quality_gate"]
        found.append(("quality gate", ("passed: " if gate["passed"] else "FAILED: ")
                      + "; ".join(c["what"] for c in gate["checks"])))
    return found


# -- the per-layer table -----------------------------------------------------------
def _table(rows: list[dict]) -> dict:
    """Headers and cells (text, tooltip, numeric) of the columns that hold a value."""
    columns = [c for c in COLUMNS if any(row[c.key] is not None for row in rows)]
    cells = [[_cell(c.kind, row[c.key]) for c in columns] for row in rows]
    for k, column in enumerate(columns):  # names shortened so that different ones stay apart
        if column.kind == "name":
            shown = shorten_apart([row[column.key] or "" for row in rows], NAME_WIDTH)
            for row_cells, text, row in zip(cells, shown, rows):
                if row[column.key] is not None:
                    row_cells[k] = (text, row[column.key], False)
    return {"headers": [(c.title, c.kind not in ("text", "name")) for c in columns], "rows": cells}


def _cell(kind: str, value) -> tuple[str, str, bool]:
    if value is None:
        return "", "", kind not in ("text", "name")
    if kind == "name":
        return shorten(value, NAME_WIDTH), value, False
    if kind == "text":
        return str(value), "", False
    return _number(kind, value), "", True


def _number(kind: str, value) -> str:
    if kind == "percent":
        return f"{value:.1%}"
    if kind == "cosine":
        return f"{value:.6f}"
    if kind == "number":
        return f"{value:.4g}"
    return f"{value:,}"


# -- charts ------------------------------------------------------------------------
def _label(row: dict) -> str:
    return row.get("id") or shorten(row["op"], LABEL_WIDTH)


def _layer_charts(report: dict, rows: list[dict]) -> list[tuple[str, str]]:
    """(title, svg) of the per-layer charts, in schedule order: the weight charts
    over layers with weights (recurrent layers and embeddings too), MACs over layers that multiply
    (recurrent layers too), output error over layers whose error was measured."""
    weighted = [r for r in rows if r["format"] is not None]
    charts = [] if not weighted else [
        ("Stored bytes per layer (fp32 behind)", bar_chart(
            [Bar(_label(r), f"{r['name']}: {r['stored_bytes']:,} bytes stored, {r['fp32_bytes']:,} as fp32",
                 (Segment(r["stored_bytes"], "main"),), f"{r['stored_bytes']:,} of {r['fp32_bytes']:,} B",
                 r["fp32_bytes"]) for r in weighted], (("main", "stored"), ("back", "fp32")))),
        ("Weight bits asked (code width of the storage format behind)", bar_chart(
            [Bar(_label(r), f"{r['name']}: {_or_dash(r['bits'])} bits asked, {r['format']} codes of "
                            f"{r['code_bits']} bits", (Segment(r["bits"] or 0, "main"),),
                 f"{_or_dash(r['bits'])} bits, {r['format']} {r['code_bits']}", r["code_bits"]) for r in weighted],
            (("main", "bits asked"), ("back", "code width")))),
        ("Weight sparsity (share of zero weights)", bar_chart(
            [Bar(_label(r), f"{r['name']}: {r['sparsity']:.1%} of its weights are zero",
                 (Segment(r["sparsity"], "main"),), f"{r['sparsity']:.1%}", 1.0) for r in weighted])),
    ]
    multiplying = [r for r in rows if r["macs"]]
    if multiplying:
        charts.append(("Multiply-accumulates per layer", _macs_chart(multiplying, bool(report.get("sim")))))
    measured = [r for r in rows if r["cosine"] is not None]
    if measured:
        charts.append(("Output error per layer, measured alone (1 − cosine)", bar_chart(
            [Bar(_label(r), f"{r['name']}: cosine {r['cosine']:.6f}, rmse {r['rmse']:.4g} against what it was given",
                 (Segment(max(1.0 - r["cosine"], 0.0), "error"),), f"cosine {r['cosine']:.6f}") for r in measured])))
    return charts


def _macs_chart(rows: list[dict], simulated: bool) -> str:
    if not simulated:
        return bar_chart([Bar(_label(r), f"{r['name']}: {r['macs']:,} MACs", (Segment(r["macs"], "main"),),
                              f"{r['macs']:,}") for r in rows])
    return bar_chart([Bar(_label(r), f"{r['name']}: {r['macs']:,} MACs, {r['macs_skipped'] or 0:,} skipped",
                          (Segment(r["macs"] - (r["macs_skipped"] or 0), "main"),
                           Segment(r["macs_skipped"] or 0, "skip")), f"{r['macs']:,}") for r in rows],
                     (("main", "executed"), ("skip", "skipped (zero weights)")))


def _or_dash(value) -> str:
    return "–" if value is None else str(value)


def _sim_charts(report: dict) -> list[tuple[str, str]]:
    """(title, svg) of az-sim's cycles and energy per step (every step the simulator ran)."""
    if not report.get("sim"):
        return []
    ids = {r["name"]: r["id"] for r in report["layers"] if r.get("id")}
    steps = report["sim"]["layers"]
    label = {s["name"]: ids.get(s["name"]) or shorten(s["op"], LABEL_WIDTH) for s in steps}
    cycles = [Bar(label[s["name"]], _cycles_tooltip(s), _cycle_segments(s), f"{s['cycles']:,}") for s in steps]
    energy = [Bar(label[s["name"]], f"{s['name']} ({s['op']}): {s['energy_uj']:.6g} µJ",
                  (Segment(s["energy_uj"], "main"),), f"{s['energy_uj']:.4g} µJ") for s in steps]
    return [("Cycles per step", bar_chart(cycles, (("main", "max(load, decode, compute)"), ("post", "post-processing"),
                                                   ("over", "overhead")))),
            ("Energy per step", bar_chart(energy))]


def _cycle_segments(step: dict) -> tuple[Segment, ...]:
    """cycles = max(load, decoder, compute) + post + overhead (docs/azsim.md)."""
    bound = max(step["load_cycles"], step["decoder_cycles"], step["compute_cycles"])
    overhead = step["cycles"] - bound - step["post_cycles"]
    return Segment(bound, "main"), Segment(step["post_cycles"], "post"), Segment(max(overhead, 0), "over")


def _cycles_tooltip(step: dict) -> str:
    return (f"{step['name']} ({step['op']}): {step['cycles']:,} cycles; load {step['load_cycles']:,}, decode "
            f"{step['decoder_cycles']:,}, compute {step['compute_cycles']:,}, post {step['post_cycles']:,}; "
            f"{step['macs_total']:,} MACs, {step['macs_skipped']:,} skipped; {step['bytes_loaded']:,} bytes loaded")


# -- memory --------------------------------------------------------------------------
def _memory(report: dict) -> tuple[str, str] | None:
    """(caption, svg) of the C arena's timeline, when the report has its buffers."""
    m = report.get("memory") or {}
    if "buffers" not in m:
        return None
    ops = {r["name"]: (r.get("id") or shorten(r["op"], LABEL_WIDTH)) for r in report["layers"]}
    steps = [ops.get(name) or shorten(name, LABEL_WIDTH) for name in m["steps"]]

    def at(step: int) -> str:
        return f"{m['steps'][step]}" if 0 <= step < len(m["steps"]) else f"step {step}"

    blocks = [Block(b["offset"], b["bytes"], b["first"], b["last"],
                    f"{b['tensor']}: {b['bytes']:,} bytes at offset {b['offset']:,}, live at steps "
                    f"{b['first']}..{b['last']} (from {at(b['first'])} to {at(b['last'])})"
                    + (f", in place of {b['in_place_of']}" if b.get("in_place_of") else ""))
              for b in m["buffers"] if b["bytes"]]
    caption = (f"{len(blocks)} buffers in an arena of {m['arena_bytes']:,} bytes (lower bound "
               f"{m['arena_lower_bound_bytes']:,}, one region each: {m['arena_naive_bytes']:,}) over "
               f"{len(steps)} steps")
    return caption, memory_chart(blocks, steps, m["arena_bytes"], m["arena_lower_bound_bytes"])
