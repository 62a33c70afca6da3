"""What a simulated inference reports: per-layer accounting (LayerStats) and
the totals over the layers (SimStats); docs/azsim.md §3 defines every field."""

from __future__ import annotations

from dataclasses import asdict

from .hardware import Hardware
from nnc.records import record

TOTAL_KEYS = ("macs_total", "macs_executed", "macs_skipped", "bytes_loaded", "sram_bytes",
              "load_cycles", "decoder_cycles", "compute_cycles", "post_cycles", "cycles", "energy_uj",
              "dma_in_bytes", "dma_out_bytes", "stall_cycles")


@record
class LayerStats:
    """One layer's accounting for one inference (cycles in core clock cycles;
    docs/azsim.md §3 defines every field)."""

    name: str
    op: str
    macs_total: int
    macs_executed: int
    macs_skipped: int
    bytes_loaded: int
    weight_stream_bytes: int
    sram_bytes: int
    load_cycles: int
    decoder_cycles: int
    compute_cycles: int
    post_cycles: int
    cycles: int
    energy_uj: float
    dma_in_bytes: int = 0      # off-chip -> chip: weights, constants, activation tiles (= bytes_loaded)
    dma_out_bytes: int = 0     # chip -> off-chip: activation tiles
    stall_cycles: int = 0      # cycles the MAC array waits for DMA and the decoder
    utilization: float = 0.0   # macs_executed / (mac_lanes · cycles)
    tiles: int = 1             # pieces the layer ran in (weight chunks × row tiles)


def view_stats(name: str, op: str) -> LayerStats:
    """The accounting of a layer the chip runs nothing for (a view): every figure 0."""
    return LayerStats(name, op, macs_total=0, macs_executed=0, macs_skipped=0, bytes_loaded=0,
                      weight_stream_bytes=0, sram_bytes=0, load_cycles=0, decoder_cycles=0, compute_cycles=0,
                      post_cycles=0, cycles=0, energy_uj=0.0)


@record
class SimStats:
    """Per-layer rows and their totals for one inference."""

    hardware: str
    clock_mhz: float
    layers: tuple[LayerStats, ...]
    macs_total: int
    macs_executed: int
    macs_skipped: int
    bytes_loaded: int
    sram_bytes: int
    load_cycles: int
    decoder_cycles: int
    compute_cycles: int
    post_cycles: int
    cycles: int
    energy_uj: float
    dma_in_bytes: int
    dma_out_bytes: int
    stall_cycles: int
    latency_ms: float
    utilization: float  # macs_executed / (mac_lanes · cycles) over the inference

    @classmethod
    def of(cls, hw: Hardware, rows: tuple[LayerStats, ...]) -> SimStats:
        totals = {key: sum(getattr(row, key) for row in rows) for key in TOTAL_KEYS}
        return cls(hw.name, hw.clock_mhz, rows, **totals, latency_ms=totals["cycles"] / (hw.clock_mhz * 1000.0),
                   utilization=utilization(totals["macs_executed"], hw.mac_lanes, totals["cycles"]))

    @property
    def totals(self) -> dict:
        return {key: getattr(self, key) for key in (*TOTAL_KEYS, "latency_ms", "utilization")}

    def to_json(self) -> dict:
        return {"hardware": self.hardware, "clock_mhz": self.clock_mhz, **self.totals,
                "layers": [asdict(row) for row in self.layers]}


def utilization(macs: int, lanes: int, cycles: int) -> float:
    """macs / (lanes · cycles): the MAC array's busy fraction; 0 without cycles."""
    return macs / (lanes * cycles) if cycles else 0.0
