"""Packed weight rows for the C target (`--c-weights packed`, docs/c-target.md).

A QConv/QGemm weight tensor is a matrix of R rows (one per output channel) of L
int8 values each, in the order the kernels consume the reduction axis (QConv
[k_h][k_w][in_c / groups], QGemm [k]). Each row is encoded on its own, starting
on a byte boundary, in one of nnc.packing's formats at the tensor's natural bits
(`packing.natural_bits`, one b for all rows); fields are packed LSB-first with
`packing.pack_fields`:

- dense: row r = `packing.encode(row, b, FORMAT_DENSE)`, ⌈L·b / 8⌉ bytes, rows
  of equal size (no offset table);
- bitmask: row r = `packing.encode(row, b, FORMAT_BITMASK)` (⌈L / 8⌉ mask bytes,
  then the nonzero values);
- rle: row r = the entries of FORMAT_RLE for that row with the tensor's run
  width r_w (chosen over 1..8 for the smallest total), without the 5-byte header:
  each entry one (r_w + b)-bit field, run in the low r_w bits. A row ends at the
  next row's offset; its padding bits are 0 and no entry is all zero bits (a zero
  value only in fillers, whose run is 2^r_w − 1 ≥ 1), so a zero field ends it;
- codebook: one table per tensor, the distinct values ascending (k ≤ 2^b);
  row r = its L b-bit indices, rows of equal size.

Rows of varying size (bitmask, rle) get an offset table of R + 1 entries, uint16
while the data stays below 64 KiB and uint32 beyond: row r is bytes
[offset[r], offset[r + 1]). `stored_bytes` counts data, offsets and table.
`choose` picks the format: a named one, or "auto" = the fewest stored bytes
among FORMATS (the lower nnc.packing code on ties); nnc.packing's other
formats (huffman) have no C decoder. `decode_rows` is the reference decoder of
these layouts (tests: decode_rows(encode_rows(w, f)) == w).
"""

from __future__ import annotations


import numpy as np

from nnc import packing
from nnc.records import record

FORMATS = ("dense", "bitmask", "rle", "codebook")  # the nnc.packing formats the C kernels decode
SIZED_ROWS = ("bitmask", "rle")  # formats whose rows vary in size
OFFSET16_LIMIT = 1 << 16


@record
class PackedRows:
    format: str
    bits: int  # value width b (codebook: index width)
    rows: int
    length: int  # values per row
    data: bytes
    offsets: np.ndarray | None = None  # R + 1 byte offsets (uint16 or uint32), or None: equal rows
    table: np.ndarray | None = None  # codebook values, int8 ascending
    run_bits: int = 0  # rle run-field width
    nnz_max: int = 0  # the most nonzero values in one row

    @property
    def row_bytes(self) -> int:
        """Bytes per row when rows have equal size (0 with an offset table)."""
        return 0 if self.offsets is not None else packing.packed_size(self.length, self.bits)

    @property
    def stored_bytes(self) -> int:
        extra = 0 if self.offsets is None else self.offsets.nbytes
        return len(self.data) + extra + (0 if self.table is None else self.table.size)


def encode_rows(rows: np.ndarray, format: str) -> PackedRows:
    """`rows` (R × L int8) in `format`, at the tensor's natural bits."""
    rows = np.asarray(rows)
    assert rows.ndim == 2 and rows.dtype.kind in "iu", rows.shape
    code = packing.FORMAT_NAMES[format]
    bits = packing.natural_bits(rows, code)
    nnz_max = int(np.count_nonzero(rows, axis=1).max()) if rows.size else 0
    common = dict(format=format, bits=bits, rows=rows.shape[0], length=rows.shape[1], nnz_max=nnz_max)
    if format == "dense":
        return PackedRows(data=b"".join(packing.encode(r, bits, code) for r in rows), **common)
    if format == "codebook":
        table = np.unique(rows).astype(np.int8) if rows.size else np.zeros(1, np.int8)
        indices = np.searchsorted(table, rows)
        return PackedRows(data=b"".join(packing.pack_fields(i, bits) for i in indices), table=table, **common)
    if format == "bitmask":
        return _sized(common, [packing.encode(r, bits, code) for r in rows])
    run_bits = min(packing.RLE_RUN_BITS, key=lambda r: sum(_rle_bytes(row, r, bits) for row in rows))
    fields = [packing.pack_fields(rle_entries(r, run_bits, bits), run_bits + bits) for r in rows]
    return _sized(dict(common, run_bits=run_bits), fields)


def choose(rows: np.ndarray, pack: str) -> PackedRows:
    """The encoding `pack` asks for: a format name, or "auto" (fewest stored bytes)."""
    if pack != "auto":
        return encode_rows(rows, pack)
    candidates = [encode_rows(rows, f) for f in FORMATS]
    return min(candidates, key=lambda p: (p.stored_bytes, packing.FORMAT_NAMES[p.format]))


def rle_entries(row: np.ndarray, run_bits: int, bits: int) -> np.ndarray:
    """FORMAT_RLE's entries of `row` for run width `run_bits`: (r+b)-bit fields,
    run in the low bits; a gap of g zeros is ⌊g / 2^r⌋ fillers (run 2^r − 1, value 0)
    and then an entry with run g mod 2^r."""
    flat = np.asarray(row).astype(np.int64).reshape(-1)
    where = np.flatnonzero(flat)
    gaps = np.diff(where, prepend=-1) - 1
    fillers = gaps >> run_bits
    filler = (1 << run_bits) - 1
    entries = np.full(len(where) + int(fillers.sum()), filler, np.int64)
    last = np.cumsum(fillers + 1) - 1  # each nonzero's entry follows its fillers
    entries[last] = (gaps & filler) | ((flat[where] & ((1 << bits) - 1)) << run_bits)
    assert not (entries == 0).any(), "an rle entry of zero bits would read as the row's end"
    return entries


def _rle_bytes(row: np.ndarray, run_bits: int, bits: int) -> int:
    where = np.flatnonzero(row)
    gaps = np.diff(where, prepend=-1) - 1
    return packing.packed_size(len(where) + int((gaps >> run_bits).sum()), run_bits + bits)


def _sized(common: dict, encoded: list[bytes]) -> PackedRows:
    """Rows of varying size, concatenated, with their offset table."""
    offsets = np.concatenate([[0], np.cumsum([len(e) for e in encoded], dtype=np.int64)])
    dtype = np.uint16 if offsets[-1] < OFFSET16_LIMIT else np.uint32
    return PackedRows(data=b"".join(encoded), offsets=offsets.astype(dtype), **common)


# -- the reference decoder ----------------------------------------------------------
def decode_rows(p: PackedRows) -> np.ndarray:
    """The R × L int8 matrix `p` encodes, read as the C kernels read it."""
    out = np.zeros((p.rows, p.length), np.int8)
    for r in range(p.rows):
        out[r] = _decode_row(p, _row_bytes(p, r))
    return out


def _row_bytes(p: PackedRows, r: int) -> bytes:
    if p.offsets is None:
        return p.data[r * p.row_bytes:(r + 1) * p.row_bytes]
    return p.data[int(p.offsets[r]):int(p.offsets[r + 1])]


def _decode_row(p: PackedRows, raw: bytes) -> np.ndarray:
    if p.format in ("dense", "bitmask"):
        return packing.decode(raw, p.bits, packing.FORMAT_NAMES[p.format], p.length)
    if p.format == "codebook":
        data = np.frombuffer(raw, np.uint8)
        indices = _fields(data, p.bits)[:p.length]
        assert indices.max(initial=0) < p.table.size
        return p.table[indices]
    width = p.run_bits + p.bits
    entries = _fields(np.frombuffer(raw, np.uint8), width)
    count = int(np.argmax(entries == 0)) if (entries == 0).any() else entries.size
    assert not entries[count:].any(), "nonzero bits after an rle row's end"
    header = packing.RLE_HEADER.pack(p.run_bits, count)
    return packing.decode(header + raw[:packing.packed_size(count, width)], p.bits, packing.FORMAT_RLE, p.length)


def _fields(data: np.ndarray, width: int) -> np.ndarray:
    """Every whole `width`-bit unsigned field of `data`, LSB-first."""
    stream = np.unpackbits(data, bitorder="little")
    count = stream.size // width
    planes = stream[:count * width].reshape(count, width).astype(np.int64)
    return planes @ (np.int64(1) << np.arange(width, dtype=np.int64))
