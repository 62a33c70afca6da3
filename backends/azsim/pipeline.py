"""The cost of a tiled az-sim layer (docs/azsim.md §3.2): its pieces run through
a double-buffered pipeline. For piece i,

    fetch_i   = max(⌈in_bytes_i / bus_bytes_per_cycle⌉, ⌈weight_bytes_i / decoder_bytes_per_cycle⌉)
                (in_bytes_i: the weight chunk when the piece starts one, the constant
                 operands for piece 0, the external input tiles, halo included)
    compute_i = ⌈macs_executed_i / mac_lanes⌉
    write_i   = ⌈out_bytes_i / bus_bytes_per_cycle⌉  (the external output tile)

While piece i computes, the bus fetches piece i+1 and writes piece i−1 back:

    pipeline  = fetch_0 + Σ_i max(compute_i, fetch_{i+1} + write_{i−1}) + write_{n−1}
                (fetch_n = write_{−1} = 0)
    stall     = pipeline − Σ_i compute_i

A layer that fits runs whole and keeps the streaming formula of simulator.py.
"""

from __future__ import annotations

from nnc.records import record



@record
class PieceCost:
    """One piece's static traffic and work (MACs executed: weight skipping only)."""

    weight_bytes: int
    in_bytes: int        # all bytes DMA-ed in: weight chunk, constants, activation tiles
    out_bytes: int       # activation bytes DMA-ed out
    macs_total: int
    macs_executed: int
    ppu_elements: int
    sram_bytes: int      # activation SRAM bytes read and written, decoded weights twice


def pipeline_cycles(fetch: list[int], compute: list[int], write: list[int]) -> int:
    """The pipeline formula of the module docstring (lists of equal length ≥ 1)."""
    n = len(compute)
    total = fetch[0] + write[n - 1]
    for i in range(n):
        total += max(compute[i], (fetch[i + 1] if i + 1 < n else 0) + (write[i - 1] if i else 0))
    return total
