"""Weight packing: the exact encodings of integer weight tensors that the az-sim
decoder and the C target's packed kernels reverse.

A weight tensor is encoded as the flat sequence of its int8 values in row-major
order (`values.reshape(-1)`); `count` is the number of values. What `bits` means
depends on the format:
- value formats (dense, bitmask, rle): the value width b ∈ {2..8}; every value
  fits b-bit two's complement, −2^(b−1) ≤ v ≤ 2^(b−1) − 1;
- codebook: the index width b ∈ {1..8}; values are any int8;
- huffman: the code-length limit L ∈ {1..15}; values are any int8.

Bit packing (shared by every format). A sequence of fields is packed LSB-first
into one bit stream: bit j of the stream is bit (j mod 8) of byte ⌊j / 8⌋, and
field i of width w occupies stream bits [i·w, (i+1)·w), its least significant bit
first. The stream is padded with 0 bits to a whole byte. A b-bit value field holds
v mod 2^b (two's complement); the decoder sign-extends it from bit b−1. Index and
run fields are unsigned.

FORMAT_DENSE (0)
    bytes [0, ⌈count·b / 8⌉): the `count` values as b-bit fields.

FORMAT_BITMASK (1)
    bytes [0, ⌈count / 8⌉): the mask, `count` 1-bit fields, field i = 1 iff value i ≠ 0;
    then ⌈nnz·b / 8⌉ bytes: the nnz nonzero values, in order, as b-bit fields
    (nnz = number of 1 bits in the mask). The zeros are where the mask bits are 0.

FORMAT_RLE (2) — relative indices, after EIE (Han et al., "EIE: Efficient
Inference Engine on Compressed Deep Neural Network", ISCA 2016), which stores
each nonzero weight with the number of zeros before it in a 4-bit field and
inserts a zero "filler" weight when a gap does not fit.
    byte 0: r, the run-field width, 1..8;
    bytes 1..4: E, the entry count (u32 little-endian);
    bytes [5, 5 + ⌈E·(r+b) / 8⌉): E entries as one bit stream, each entry a run field
    (r bits, unsigned) followed by a value field (b bits): one (r+b)-bit field whose
    low r bits are the run and high b bits the value.
    Decoding: p = 0; per entry p += run, value i_p = value, p += 1; every position
    not written is 0. A filler entry has run = 2^r − 1 and value 0 and so stands for
    2^r zeros; every other entry has a nonzero value. The last entry is not a
    filler, and it writes a position < count.
    Encoding: a gap of g zeros before a nonzero value is ⌊g / 2^r⌋ fillers and then
    an entry with run g mod 2^r; zeros after the last nonzero value take no entry.
    `encode` picks the r giving the shortest payload, the smaller r on ties.

FORMAT_CODEBOOK (3)
    byte 0: k − 1, k the table size, 1 ≤ k ≤ min(256, 2^b);
    bytes [1, 1 + k): the table, k int8 values strictly ascending;
    then ⌈count·b / 8⌉ bytes: `count` b-bit index fields, each < k; value i is
    table[index i]. `encode`'s table is the sorted distinct values, so every entry
    is used; an empty tensor (count 0) has the table [0] and no indices.

FORMAT_HUFFMAN (4) — a canonical Huffman code per tensor: Huffman's minimum-
redundancy code (D. A. Huffman, "A Method for the Construction of Minimum-Redundancy
Codes", Proc. IRE 40(9), 1952) over the tensor's values, its codes assigned from
the code lengths alone as DEFLATE assigns them (RFC 1951 §3.2.2).
    byte 0: n − 1, n the number of distinct symbols (values), 1 ≤ n ≤ min(256, 2^L);
    bytes [1, 1 + 2n): n records (symbol: int8, length l: u8, 1 ≤ l ≤ L), in
    canonical order: by length, then by symbol value; every symbol once;
    then one bit stream: the codes of the `count` values in order, zero padding to
    a byte. A code of length l takes l consecutive stream bits, its most significant
    bit first (at the lowest stream position), as DEFLATE packs Huffman codes.
    Codes: record 0 has code 0; record i has (code(i−1) + 1) << (l_i − l_(i−1)).
    With n ≥ 2 the lengths satisfy Kraft's equality Σ 2^−l = 1 (a complete prefix
    code: every bit string starts with exactly one code); a single symbol has the
    code "0" (l = 1), so its values are 0 bits. Every symbol occurs among the values;
    an empty tensor (count 0) has the one record (0, 1) and no stream.
    Encoding: the lengths are the leaf depths of Huffman's tree over the value
    counts, merging the two smallest (count, subtree height, node number): leaves
    are numbered in symbol order, merged nodes after them in creation order.
    While the longest code exceeds L, counts below f are raised to f, for f = 2, 4,
    8, …, and the tree rebuilt (the length limiting of brotli's encoder,
    BrotliCreateHuffmanTree; with f at the largest count, n ≤ 2^L symbols fit).
    `natural_bits` is the longest code of the code built with L = 15.

Examples (bytes in hex, "|" between parts):
    b = 4, values [1, 0, 0, −2]:
      dense    = 01 E0                (fields 0001, 0000, 0000, 1110)
      bitmask  = 09 | E1              (mask 1001, then fields 0001, 1110)
    b = 3, values [0, 0, 0, 0, 0, 2, 0, −1] (r = 1, 7 bytes; r = 2 and 3 also take 7):
      rle      = 01 | 04 00 00 00 | 11 F5
                 entries (run, value) = (1, 0) filler: zeros at 0-1; (1, 0) filler: 2-3;
                 (1, 2): zero at 4, 2 at 5; (1, −1): zero at 6, −1 at 7.
                 4-bit entries 0001, 0001, 0101 (1 | 2 << 1), 1111 (1 | 7 << 1)
    b = 2, values [5, −3, 5, 5, 0, −3]:
      codebook = 02 | FD 00 05 | A2 01  (k = 3, table [−3, 0, 5], indices 2 0 2 2 1 0)
    L = 3, values [0, 0, 1, 0, −1, 0, 2, 0] (counts: 0 ×4, −1, 1, 2 ×1 each):
      huffman  = 03 | 00 01  02 02  FF 03  01 03 | DC 04
                 records (0, 1) (2, 2) (−1, 3) (1, 3): codes 0 → "0", 2 → "10",
                 −1 → "110", 1 → "111"; the stream 0 0 111 0 110 0 10 0 is bits
                 0..12 = 0,0,1,1,1,0,1,1 | 0,0,1,0,0 (+ 3 padding zeros), so byte 0 =
                 0b11011100 and byte 1 = 0b00000100.

Choosing an encoding. `natural_bits(values, format)` is the narrowest `bits` that
format needs; `pack(values, choice)` encodes at it: in the named format, or with
"auto" in whichever format gives the shortest payload (the lower code on ties),
among all formats or the ones a target decodes (`formats`).

`decode` validates everything and raises ValueError on a payload that no
`encode` produces: wrong length, nonzero padding bits, a zero where a bitmask says
nonzero, a bad run width, a zero-valued entry that is not a filler, a trailing
filler, a position ≥ count, a table not strictly ascending or with an unused
entry, an index ≥ k; for huffman, a code length outside 1..L, records out of
canonical order or repeating a symbol, lengths that are not a complete prefix code
(or a single symbol's length other than 1), a symbol that never occurs, a stream
that ends inside a code or before `count` codes, a bit string that starts no code.
`validate` makes the same checks (for rle without building the values): its memory
follows the payload's length, and so does its time, times log2(count) for huffman.
The blob reader turns a ValueError into its BlobError.
"""

from __future__ import annotations

import math
import struct

import numpy as np

from . import huffman
from .bitfields import expect_length, pack_fields, packed_size, signed, unpack_fields
from .records import record

FORMAT_DENSE = 0      # b-bit two's complement values
FORMAT_BITMASK = 1    # nonzero mask, then the nonzero values
FORMAT_RLE = 2        # (zeros before, nonzero value) entries
FORMAT_CODEBOOK = 3   # table of distinct values, then b-bit indices
FORMAT_HUFFMAN = 4    # canonical Huffman code table, then the codes
FORMATS = (FORMAT_DENSE, FORMAT_BITMASK, FORMAT_RLE, FORMAT_CODEBOOK, FORMAT_HUFFMAN)
FORMAT_NAMES = {"dense": FORMAT_DENSE, "bitmask": FORMAT_BITMASK, "rle": FORMAT_RLE,
                "codebook": FORMAT_CODEBOOK, "huffman": FORMAT_HUFFMAN}
PACK_CHOICES = ("auto", *FORMAT_NAMES)  # what `pack` accepts
MIN_BITS, MAX_BITS = 2, 8          # value width of dense, bitmask, rle
MIN_INDEX_BITS = 1                 # codebook index width: 1..MAX_BITS
MAX_CODE_BITS = huffman.MAX_CODE_BITS  # huffman code-length limit L: 1..MAX_CODE_BITS
BITS_RANGE = {FORMAT_DENSE: (MIN_BITS, MAX_BITS), FORMAT_BITMASK: (MIN_BITS, MAX_BITS),
              FORMAT_RLE: (MIN_BITS, MAX_BITS), FORMAT_CODEBOOK: (MIN_INDEX_BITS, MAX_BITS),
              FORMAT_HUFFMAN: (1, MAX_CODE_BITS)}
_ANY_INT8 = (FORMAT_CODEBOOK, FORMAT_HUFFMAN)  # formats whose values are any int8
RLE_RUN_BITS = range(1, 9)         # run-field widths r
RLE_HEADER = struct.Struct("<BI")  # r, entry count E


@record
class Packed:
    """An encoded weight tensor: `payload` in `format` at `bits`."""

    format: int
    bits: int
    payload: bytes

    @property
    def name(self) -> str:
        return _FORMAT_OF_CODE[self.format]


def value_range(bits: int) -> tuple[int, int]:
    """Inclusive range of b-bit two's complement values."""
    _check_bits(bits, FORMAT_DENSE)
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def natural_bits(values: np.ndarray, format: int) -> int:
    """The narrowest `bits` of `format` for `values` (int8 integers). Value formats:
    the narrowest b in 2..8 whose symmetric range ±(2^(b−1) − 1) holds max|v|, and 8
    for −128 (no symmetric range holds it; 8-bit two's complement does). Codebook:
    ⌈log2(distinct values)⌉, at least 1. Huffman: the longest code of the code
    `encode` builds with L = 15."""
    tensor = _Tensor(values)
    _check_format(format)
    return tensor.natural_bits(format)


def pack(values: np.ndarray, choice: str = "auto", formats: tuple[int, ...] = FORMATS) -> Packed:
    """`values` encoded at their natural bits: in format `choice` (a FORMAT_NAMES key)
    or, with "auto", in the format of `formats` (codes; default all, a target passes
    the ones it decodes) giving the shortest payload (lower code on ties)."""
    check_choice(choice)
    if not formats or any(f not in FORMATS for f in formats):
        raise ValueError(f"pack formats must be some of {FORMATS}, got {formats!r}")
    if choice != "auto" and FORMAT_NAMES[choice] not in formats:
        raise ValueError(f"packing {choice!r} is not among the formats {formats!r}")
    formats = formats if choice == "auto" else (FORMAT_NAMES[choice],)
    tensor = _Tensor(values)
    sized = []
    for format in sorted(formats, key=lambda f: f == FORMAT_HUFFMAN):  # Huffman, the highest code, last:
        if format == FORMAT_HUFFMAN and sized and tensor.huffman_bound() >= min(sized)[0]:
            continue  # not even its bound is shorter, and a tie goes to the lower code
        bits = tensor.natural_bits(format)
        sized.append((tensor.encoded_size(bits, format), format, bits))
    _, format, bits = min(sized)  # sizes computed, only the shortest encoded
    return Packed(format, bits, tensor.encode(bits, format))


def check_choice(choice: str) -> None:
    """ValueError unless `choice` is one of PACK_CHOICES."""
    if choice not in PACK_CHOICES:
        raise ValueError(f"unknown packing {choice!r} (known: {', '.join(PACK_CHOICES)})")


def encode(values: np.ndarray, bits: int, format: int) -> bytes:
    """The payload of `values` (any shape, flattened row-major) in `format`."""
    _check_format(format)
    _check_bits(bits, format)
    return _Tensor(values).encode(bits, format)


def encoded_size(values: np.ndarray, bits: int, format: int) -> int:
    """len(encode(values, bits, format)), computed without encoding."""
    _check_format(format)
    _check_bits(bits, format)
    return _Tensor(values).encoded_size(bits, format)


class _Tensor:
    """One weight tensor's values flattened to int64 (ValueError unless int8
    integers), and what the measures and encoders derive from them, each
    computed once: the symbol counts and the Huffman code lengths per limit.
    The format and bits each method takes were checked by its caller."""

    def __init__(self, values: np.ndarray):
        self.flat = _int8_values(values)
        self._counts: np.ndarray | None = None
        self._code_lengths: dict[int, np.ndarray] = {}

    def counts(self) -> np.ndarray:
        if self._counts is None:
            self._counts = huffman.symbol_counts(self.flat)
        return self._counts

    def code_lengths(self, limit: int) -> np.ndarray:
        if limit not in self._code_lengths:
            self._code_lengths[limit] = huffman.code_lengths(self.counts(), limit)
        return self._code_lengths[limit]

    def huffman_bound(self) -> int:
        """At most the Huffman payload's bytes: its table and the codes' entropy
        (no prefix code is shorter; less 1e-9 of it against rounding), which
        costs no code construction."""
        counts = self.counts()
        present = counts[counts > 0].astype(np.float64)
        entropy_bits = float(present @ np.log2(present.sum() / present))
        return 1 + 2 * present.size + packed_size(max(0, math.floor(entropy_bits * (1 - 1e-9))), 1)

    def natural_bits(self, format: int) -> int:
        if format == FORMAT_CODEBOOK:
            return max(MIN_INDEX_BITS, (int(np.count_nonzero(self.counts())) - 1).bit_length())
        if format == FORMAT_HUFFMAN:
            lengths = self.code_lengths(MAX_CODE_BITS)
            longest = int(lengths.max())
            # code_lengths raises its floor until the longest code fits the limit: for
            # every limit from `longest` to MAX_CODE_BITS it stops at the same floor
            self._code_lengths.setdefault(longest, lengths)
            return longest
        peak = int(np.abs(self.flat).max()) if self.flat.size else 0
        return min(MAX_BITS, max(MIN_BITS, peak.bit_length() + 1))

    def encoded_size(self, bits: int, format: int) -> int:
        flat, count = self._values(bits, format), self.flat.size
        if format == FORMAT_DENSE:
            return packed_size(count, bits)
        if format == FORMAT_BITMASK:
            return packed_size(count, 1) + packed_size(int(np.count_nonzero(flat)), bits)
        if format == FORMAT_RLE:
            gaps = _rle_gaps(flat)
            return min(_rle_size(gaps, run_bits, bits) for run_bits in RLE_RUN_BITS)
        counts = self.counts()
        if format == FORMAT_CODEBOOK:
            distinct = int(np.count_nonzero(counts))
            if distinct > 1 << bits:
                raise ValueError(f"{distinct} distinct values need more than {bits}-bit codebook indices")
            return 1 + distinct + packed_size(count, bits)
        lengths = self.code_lengths(bits)
        return 1 + 2 * int(np.count_nonzero(lengths)) + packed_size(int(lengths @ counts) if count else 0, 1)

    def encode(self, bits: int, format: int) -> bytes:
        flat = self._values(bits, format)
        if format == FORMAT_HUFFMAN:
            return huffman.encode(flat, self.code_lengths(bits))
        return _ENCODERS[format](flat, bits)

    def _values(self, bits: int, format: int) -> np.ndarray:
        """The flat values; ValueError if a value format's `bits` cannot hold them."""
        if format not in _ANY_INT8:
            lo, hi = value_range(bits)
            if self.flat.size and (self.flat.min() < lo or self.flat.max() > hi):
                raise ValueError(f"weights in [{self.flat.min()}, {self.flat.max()}] do not fit {bits} bits "
                                 f"[{lo}, {hi}]")
        return self.flat


def decode(payload: bytes, bits: int, format: int, count: int) -> np.ndarray:
    """The `count` int8 values (flat) that `payload` encodes; ValueError if it is malformed."""
    data = _checked_arguments(payload, bits, format, count)
    return _DECODERS[format](data, bits, int(count)).astype(np.int8)


def validate(payload: bytes, bits: int, format: int, count: int) -> np.ndarray | None:
    """ValueError unless `decode` accepts `payload`; the values decode gives
    (read-only) where checking them meant building them, None for rle. Its time
    and memory follow the payload's length, not `count`: an rle payload of 5
    bytes may stand for 2^32 zeros, which this does not build. (Every other
    format has at least one bit per value: there the values are built.)"""
    if format == FORMAT_RLE:
        _rle_entries(_checked_arguments(payload, bits, format, count), bits, int(count))
        return None
    values = decode(payload, bits, format, count)
    values.flags.writeable = False
    return values


# -- encoders (flat int64 values, already checked) ---------------------------------------
def _encode_dense(flat: np.ndarray, bits: int) -> bytes:
    return pack_fields(flat, bits)


def _encode_bitmask(flat: np.ndarray, bits: int) -> bytes:
    nonzero = flat != 0
    return pack_fields(nonzero, 1) + pack_fields(flat[nonzero], bits)


def _rle_gaps(flat: np.ndarray) -> np.ndarray:
    """The number of zeros before each nonzero value."""
    return np.diff(np.flatnonzero(flat), prepend=-1) - 1


def _encode_rle(flat: np.ndarray, bits: int) -> bytes:
    where = np.flatnonzero(flat)
    gaps = _rle_gaps(flat)
    run_bits = min(RLE_RUN_BITS, key=lambda r: _rle_size(gaps, r, bits))  # first minimum: smaller r
    fillers = gaps >> run_bits
    entry_of_value = np.cumsum(fillers + 1) - 1
    entries = np.full(len(where) + int(fillers.sum()), (1 << run_bits) - 1, np.int64)  # all fillers
    runs = gaps & ((1 << run_bits) - 1)
    entries[entry_of_value] = runs | ((flat[where] & ((1 << bits) - 1)) << run_bits)
    return RLE_HEADER.pack(run_bits, entries.size) + pack_fields(entries, run_bits + bits)


def _rle_size(gaps: np.ndarray, run_bits: int, bits: int) -> int:
    entries = gaps.size + int((gaps >> run_bits).sum())
    return RLE_HEADER.size + packed_size(entries, run_bits + bits)


def _encode_codebook(flat: np.ndarray, bits: int) -> bytes:
    present = np.bincount(flat + 128, minlength=256) > 0
    table = np.flatnonzero(present) - 128 if flat.size else np.zeros(1, np.int64)
    if table.size > 1 << bits:
        raise ValueError(f"{table.size} distinct values need more than {bits}-bit codebook indices")
    index_of = np.cumsum(present) - 1
    return bytes([table.size - 1]) + table.astype(np.int8).tobytes() + pack_fields(index_of[flat + 128], bits)


# -- decoders (payload bytes as uint8; the caller checked bits and count) -------------------
def _decode_dense(data: np.ndarray, bits: int, count: int) -> np.ndarray:
    expect_length(data.size, packed_size(count, bits), "dense")
    return signed(unpack_fields(data, bits, count), bits)


def _decode_bitmask(data: np.ndarray, bits: int, count: int) -> np.ndarray:
    mask_bytes = packed_size(count, 1)
    if data.size < mask_bytes:
        raise ValueError(f"bitmask payload of {data.size} bytes is shorter than its {mask_bytes}-byte mask")
    nonzero = unpack_fields(data[:mask_bytes], 1, count).astype(bool)
    nnz = int(nonzero.sum())
    expect_length(data.size, mask_bytes + packed_size(nnz, bits), "bitmask")
    nonzero_values = signed(unpack_fields(data[mask_bytes:], bits, nnz), bits)
    if not nonzero_values.all():
        raise ValueError("a bitmask payload holds a zero value where its mask says nonzero")
    out = np.zeros(count, np.int64)
    out[nonzero] = nonzero_values
    return out


def _decode_rle(data: np.ndarray, bits: int, count: int) -> np.ndarray:
    positions, values = _rle_entries(data, bits, count)
    out = np.zeros(count, np.int64)
    out[positions] = values
    return out


def _rle_entries(data: np.ndarray, bits: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """(positions, values) of the nonzero values of an rle payload, which it checks."""
    if data.size < RLE_HEADER.size:
        raise ValueError(f"rle payload of {data.size} bytes is shorter than its {RLE_HEADER.size}-byte header")
    run_bits, n = RLE_HEADER.unpack(data[:RLE_HEADER.size].tobytes())
    if run_bits not in RLE_RUN_BITS:
        raise ValueError(f"rle run width {run_bits} is outside 1..8")
    expect_length(data.size, RLE_HEADER.size + packed_size(n, run_bits + bits), "rle")
    entries = unpack_fields(data[RLE_HEADER.size:], run_bits + bits, n)
    runs, values = entries & ((1 << run_bits) - 1), signed(entries >> run_bits, bits)
    filler = values == 0
    if (runs[filler] != (1 << run_bits) - 1).any():
        raise ValueError("an rle entry holds the value 0 but is not a filler (run 2^r - 1)")
    if n and filler[-1]:
        raise ValueError("an rle payload ends with a filler entry")
    positions = np.cumsum(runs + 1) - 1
    if n and positions[-1] >= count:
        raise ValueError(f"an rle entry writes position {positions[-1]}, beyond the {count} values")
    return positions[~filler], values[~filler]


def _decode_codebook(data: np.ndarray, bits: int, count: int) -> np.ndarray:
    if data.size < 1:
        raise ValueError("codebook payload is empty: it needs at least its table size")
    k = int(data[0]) + 1
    if k > 1 << bits:
        raise ValueError(f"a codebook of {k} entries does not fit {bits}-bit indices")
    expect_length(data.size, 1 + k + packed_size(count, bits), "codebook")
    table = data[1:1 + k].view(np.int8).astype(np.int64)
    if (np.diff(table) <= 0).any():
        raise ValueError("codebook table is not strictly ascending")
    indices = unpack_fields(data[1 + k:], bits, count)
    if count and indices.max() >= k:
        raise ValueError(f"a codebook index {indices.max()} is not below the table size {k}")
    used = np.bincount(indices, minlength=k).all() if count else table.tolist() == [0]
    if not used:
        raise ValueError("a codebook table entry is never used (an empty tensor's table is [0])")
    return table[indices]


_ENCODERS = {FORMAT_DENSE: _encode_dense, FORMAT_BITMASK: _encode_bitmask, FORMAT_RLE: _encode_rle,
             FORMAT_CODEBOOK: _encode_codebook}  # huffman: _Tensor.encode, with its code lengths
_DECODERS = {FORMAT_DENSE: _decode_dense, FORMAT_BITMASK: _decode_bitmask, FORMAT_RLE: _decode_rle,
             FORMAT_CODEBOOK: _decode_codebook, FORMAT_HUFFMAN: huffman.decode}
_FORMAT_OF_CODE = {code: name for name, code in FORMAT_NAMES.items()}


# -- internals ---------------------------------------------------------------------
def _checked_arguments(payload: bytes, bits: int, format: int, count: int) -> np.ndarray:
    """The payload as uint8 after checking format, bits and count."""
    _check_format(format)
    _check_bits(bits, format)
    if not isinstance(count, (int, np.integer)) or count < 0:
        raise ValueError(f"value count must be a non-negative integer, got {count!r}")
    return np.frombuffer(bytes(payload), np.uint8)


def _check_format(format: int) -> None:
    if format not in FORMATS:
        raise ValueError(f"unknown weight stream format {format!r} (known: {FORMATS})")


def _check_bits(bits: int, format: int) -> None:
    low, high = BITS_RANGE[format]
    if not isinstance(bits, (int, np.integer)) or not low <= bits <= high:
        raise ValueError(f"bits must be an integer in [{low}, {high}] for format {format}, got {bits!r}")


def _int8_values(values: np.ndarray) -> np.ndarray:
    """values flattened to int64; ValueError unless integers in the int8 range."""
    array = np.asarray(values)
    if array.dtype.kind not in "iu":
        raise ValueError(f"weights must be integers, got {array.dtype}")
    flat = array.reshape(-1).astype(np.int64)
    if flat.size and (flat.min() < -128 or flat.max() > 127):
        raise ValueError(f"weights in [{flat.min()}, {flat.max()}] do not fit int8 [-128, 127]")
    return flat
