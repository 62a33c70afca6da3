"""The per-layer table of a compile report: layers.csv, and the columns
report.html shows.

One row per row of report["layers"] (every layer in schedule order;
QuantizeLinear/DequantizeLinear are not layers, see summary.py), with the full
layer name. `COLUMNS` are the same for every target, so tables of several
compiles line up; a cell is empty where the value does not apply or was not
measured: `cycles`, `energy_uj`, `macs_skipped`, `dma_in_bytes`,
`dma_out_bytes`, `stall_cycles`, `utilization` and `tiles` come from the az-sim
simulation (report["sim"]["layers"], joined by layer name; docs/azsim.md §3), `cosine` and `rmse`
from verification (report.py: layers[].error).

Values are written as report.json holds them (integers, floats in Python's
shortest round-trip form), so the CSV is a function of the report alone.
"""

from __future__ import annotations

import csv
import io

from .records import record


@record
class Column:
    """`key`: the CSV header and the row field; `title`: report.html's header;
    `kind`: how report.html formats the value (text, count, percent, cosine,
    number)."""

    key: str
    title: str
    kind: str


COLUMNS = (
    Column("id", "id", "text"),
    Column("name", "layer", "name"),
    Column("op", "op", "text"),
    Column("format", "format", "text"),
    Column("bits", "bits", "count"),
    Column("code_bits", "code bits", "count"),
    Column("sparsity", "sparsity", "percent"),
    Column("params", "params", "count"),
    Column("macs", "MACs", "count"),
    Column("weight_bytes", "weight bytes", "count"),
    Column("stored_bytes", "stored bytes", "count"),
    Column("fp32_bytes", "fp32 bytes", "count"),
    Column("cosine", "cosine", "cosine"),
    Column("rmse", "rmse", "number"),
    Column("cycles", "cycles", "count"),
    Column("energy_uj", "energy µJ", "number"),
    Column("macs_skipped", "MACs skipped", "count"),
    Column("dma_in_bytes", "DMA in bytes", "count"),
    Column("dma_out_bytes", "DMA out bytes", "count"),
    Column("stall_cycles", "stall cycles", "count"),
    Column("utilization", "MAC utilization", "percent"),
    Column("tiles", "tiles", "count"),
)
SIM_KEYS = ("cycles", "energy_uj", "macs_skipped", "dma_in_bytes", "dma_out_bytes", "stall_cycles", "utilization",
            "tiles")


def layer_table(report: dict) -> list[dict]:
    """One dict per layer with every column's key (None: empty)."""
    sim = {row["name"]: row for row in (report.get("sim") or {}).get("layers", [])}
    table = []
    for layer in report["layers"]:
        row = {column.key: layer.get(column.key) for column in COLUMNS}
        if layer["format"] is None:
            row["sparsity"] = None  # a layer without weights has no weight sparsity
        row.update(layer.get("error") or {})
        row.update({key: sim[layer["name"]].get(key) for key in SIM_KEYS if layer["name"] in sim})
        table.append(row)
    return table


def render_csv(report: dict) -> str:
    """layers.csv: a header of COLUMNS' keys, then layer_table's rows."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([column.key for column in COLUMNS])
    for row in layer_table(report):
        writer.writerow(["" if row[column.key] is None else row[column.key] for column in COLUMNS])
    return out.getvalue()
