"""Weight packing (nnc.packing): decode(encode(w)) == w for every format, width and
sparsity; the encoders against plain-loop readings of the documented layouts;
`pack` choosing the smallest; the docstring's byte examples; and one clear
ValueError for each way a payload can be malformed. Huffman also: optimal and
complete codes, limited lengths, a plain-loop decoder that agrees with the
vectorized one on every payload, bounded validation memory and a speed guard."""

from __future__ import annotations

import heapq
import struct
import time
import tracemalloc
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nnc import huffman, packing
from nnc.packing import FORMAT_BITMASK, FORMAT_CODEBOOK, FORMAT_DENSE, FORMAT_HUFFMAN, FORMAT_RLE, FORMATS

VALUE_FORMATS = (FORMAT_DENSE, FORMAT_BITMASK, FORMAT_RLE)


@st.composite
def weights(draw):
    """(values, bits): b-bit integers, a drawn fraction 0..99% of them zero."""
    bits = draw(st.integers(2, 8))
    count = draw(st.integers(0, 300) | st.integers(300, 3000))
    sparsity = draw(st.integers(0, 99)) / 100
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    lo, hi = packing.value_range(bits)
    values = rng.integers(lo, hi + 1, count)
    values[rng.random(count) < sparsity] = 0
    return values.astype(np.int8), bits


@st.composite
def codebook_weights(draw):
    """(values, bits): any int8 values, at most 2^bits distinct, some zeroed."""
    bits = draw(st.integers(1, 8))
    count = draw(st.integers(0, 600))
    distinct = draw(st.lists(st.integers(-128, 127), min_size=1, max_size=1 << bits, unique=True))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    values = rng.choice(distinct, count)
    if 0 in distinct:
        values[rng.random(count) < draw(st.integers(0, 99)) / 100] = 0
    return values.astype(np.int8), bits


@st.composite
def int8_weights(draw):
    """(values, 8): any int8 values, uniform, two-sided geometric-like (skewed,
    scale 0.05..60) or a few distinct values with random weights, then a drawn
    fraction 0..99% of them zeroed; 0..5000 values."""
    count = draw(st.integers(0, 300) | st.integers(300, 5000))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kind = draw(st.sampled_from(["uniform", "skewed", "few"]))
    if kind == "uniform":
        values = rng.integers(-128, 128, count)
    elif kind == "skewed":
        values = np.clip(np.round(rng.laplace(0, draw(st.floats(0.05, 60)), count)), -128, 127)
    else:
        distinct = draw(st.lists(st.integers(-128, 127), min_size=1, max_size=8, unique=True))
        values = rng.choice(distinct, count, p=rng.dirichlet(np.ones(len(distinct))))
    values = values.astype(np.int64)
    values[rng.random(count) < draw(st.integers(0, 99)) / 100] = 0
    return values.astype(np.int8), 8


# -- plain-loop readings of the module docstring, to check the vectorized code ----------
def reference_fields(fields, width: int) -> bytes:
    stream = [(int(f) >> i) & 1 for f in fields for i in range(width)]
    stream += [0] * (-len(stream) % 8)
    return bytes(sum(bit << i for i, bit in enumerate(stream[j:j + 8])) for j in range(0, len(stream), 8))


def reference_rle(values, bits: int, run_bits: int) -> bytes:
    entries, gap = [], 0
    for v in map(int, values):
        if v == 0:
            gap += 1
            continue
        while gap >= 1 << run_bits:
            entries.append((1 << run_bits) - 1)  # filler: run 2^r - 1, value 0
            gap -= 1 << run_bits
        entries.append(gap | (v % (1 << bits)) << run_bits)
        gap = 0
    return bytes([run_bits]) + struct.pack("<I", len(entries)) + reference_fields(entries, run_bits + bits)


def reference_codebook(values, bits: int) -> bytes:
    table = sorted(set(map(int, values))) or [0]
    return (bytes([len(table) - 1]) + bytes(t % 256 for t in table)
            + reference_fields([table.index(int(v)) for v in values], bits))


def huffman_records(payload: bytes) -> list[tuple[int, int]]:
    """The (symbol, length) records of a huffman payload."""
    n = payload[0] + 1
    return [(payload[1 + 2 * i] - 256 * (payload[1 + 2 * i] > 127), payload[2 + 2 * i]) for i in range(n)]


def rfc1951_codes(lengths: list[int]) -> list[int]:
    """Codes of lengths given in canonical order, by RFC 1951 §3.2.2's steps 1-3
    (bl_count, next_code, then consecutive values per length)."""
    bl_count = [0] * 17
    for length in lengths:
        bl_count[length] += 1
    bl_count[0] = 0
    code, next_code = 0, [0] * 17
    for length in range(1, 17):
        code = (code + bl_count[length - 1]) << 1
        next_code[length] = code
    codes = []
    for length in lengths:
        codes.append(next_code[length])
        next_code[length] += 1
    return codes


def stream_bytes(bits: list[int]) -> bytes:
    bits = bits + [0] * (-len(bits) % 8)
    return bytes(sum(bit << i for i, bit in enumerate(bits[j:j + 8])) for j in range(0, len(bits), 8))


def reference_huffman(values, records: list[tuple[int, int]]) -> bytes:
    """The payload of `values` with the code of these (symbol, length) records."""
    code_of = {s: (c, n) for (s, n), c in zip(records, rfc1951_codes([n for _, n in records]))}
    bits = [(code_of[int(v)][0] >> k) & 1 for v in values for k in reversed(range(code_of[int(v)][1]))]
    return bytes([len(records) - 1]) + bytes(b for s, n in records for b in (s % 256, n)) + stream_bytes(bits)


def reference_huffman_decode(payload: bytes, code_bits: int, count: int) -> list[int] | None:
    """The values of a huffman payload, or None if the module docstring refuses it:
    a bit-by-bit reading, independent of the vectorized decoder."""
    if not payload or len(payload) < 1 + 2 * (payload[0] + 1) or payload[0] + 1 > 1 << code_bits:
        return None
    records = huffman_records(payload)
    symbols, lengths = [s for s, _ in records], [n for _, n in records]
    if (records != sorted(records, key=lambda r: (r[1], r[0])) or len(set(symbols)) < len(records)
            or not all(1 <= n <= code_bits for n in lengths)):
        return None
    if (lengths != [1]) if len(records) == 1 else sum(Fraction(1, 1 << n) for n in lengths) != 1:
        return None
    table = {(n, c): s for (s, n), c in zip(records, rfc1951_codes(lengths))}
    stream = [(byte >> i) & 1 for byte in payload[1 + 2 * len(records):] for i in range(8)]
    out, pos = [], 0
    while len(out) < count:
        code, length = 0, 0
        while (length, code) not in table:
            if pos == len(stream) or length == code_bits:
                return None  # the stream ends inside a code, or these bits start none
            code, length, pos = code << 1 | stream[pos], length + 1, pos + 1
        out.append(table[length, code])
    if any(stream[pos:]) or len(stream) - pos >= 8:
        return None
    if (set(out) != set(symbols)) if count else records != [(0, 1)]:
        return None
    return out


def optimal_cost(counts) -> int:
    """Σ count · length of a Huffman code over ≥ 2 counts: the sum of its merged weights."""
    heap, cost = [int(c) for c in counts if c], 0
    heapq.heapify(heap)
    while len(heap) > 1:
        merged = heapq.heappop(heap) + heapq.heappop(heap)
        cost += merged
        heapq.heappush(heap, merged)
    return cost


# -- round trips ---------------------------------------------------------------------
@settings(max_examples=300, deadline=None)
@given(weights(), st.sampled_from(VALUE_FORMATS))
def test_value_formats_round_trip(case, format):
    values, bits = case
    payload = packing.encode(values, bits, format)
    decoded = packing.decode(payload, bits, format, values.size)
    assert decoded.dtype == np.int8
    np.testing.assert_array_equal(decoded, values)


@settings(max_examples=200, deadline=None)
@given(codebook_weights())
def test_codebook_round_trips(case):
    values, bits = case
    payload = packing.encode(values, bits, FORMAT_CODEBOOK)
    assert payload == reference_codebook(values, bits)
    np.testing.assert_array_equal(packing.decode(payload, bits, FORMAT_CODEBOOK, values.size), values)


@settings(max_examples=200, deadline=None)
@given(weights(), st.sampled_from(packing.FORMATS), st.integers(0, 7))
def test_encoded_size_is_the_length_of_the_payload(case, format, wider):
    """pack chooses by encoded_size and encodes only its choice."""
    values, _ = case
    low, high = packing.BITS_RANGE[format]
    bits = min(high, max(low, packing.natural_bits(values, format)) + wider)
    assert packing.encoded_size(values, bits, format) == len(packing.encode(values, bits, format))


@settings(max_examples=100, deadline=None)
@given(weights())
def test_rle_picks_the_shortest_run_width_and_decodes_every_width(case):
    values, bits = case
    by_width = [reference_rle(values, bits, r) for r in range(1, 9)]
    assert packing.encode(values, bits, FORMAT_RLE) == min(by_width, key=len)  # first minimum: smaller r
    for payload in by_width:
        np.testing.assert_array_equal(packing.decode(payload, bits, FORMAT_RLE, values.size), values)


@settings(max_examples=100, deadline=None)
@given(weights())
def test_dense_and_bitmask_match_their_layouts(case):
    values, bits = case
    wide = values.astype(np.int64)
    assert packing.encode(values, bits, FORMAT_DENSE) == reference_fields(wide % (1 << bits), bits)
    mask = reference_fields(values != 0, 1)
    assert packing.encode(values, bits, FORMAT_BITMASK) == mask + reference_fields(
        wide[wide != 0] % (1 << bits), bits)


@settings(max_examples=200, deadline=None)
@given(weights() | codebook_weights() | int8_weights())
def test_auto_is_never_larger_than_any_format_and_exact(case):
    values, _ = case
    best = packing.pack(values)
    singles = [packing.pack(values, name) for name in packing.FORMAT_NAMES]
    assert len(best.payload) == min(len(p.payload) for p in singles)
    assert best == min(singles, key=lambda p: (len(p.payload), p.format))
    assert best.bits == packing.natural_bits(values, best.format)
    np.testing.assert_array_equal(packing.decode(best.payload, best.bits, best.format, values.size), values)


# -- the documented bytes and sizes ------------------------------------------------------
def test_documented_layouts():
    """The module docstring's examples, to the bit."""
    values = np.array([1, 0, 0, -2])
    assert packing.encode(values, 4, FORMAT_DENSE) == bytes.fromhex("01 E0")
    assert packing.encode(values, 4, FORMAT_BITMASK) == bytes.fromhex("09 E1")
    rle = np.array([0, 0, 0, 0, 0, 2, 0, -1])
    assert packing.encode(rle, 3, FORMAT_RLE) == bytes.fromhex("01 04000000 11 F5")
    codebook = np.array([5, -3, 5, 5, 0, -3])
    assert packing.encode(codebook, 2, FORMAT_CODEBOOK) == bytes.fromhex("02 FD0005 A2 01")
    assert packing.encode(np.zeros(0, np.int8), 3, FORMAT_CODEBOOK) == bytes.fromhex("00 00")
    # a field straddles bytes: 3-bit fields 1, -1, 2 are stream bits 0-2 = 1,0,0;
    # 3-5 = 1,1,1; 6-8 = 0,1,0 -> byte 0 = 0b10111001, byte 1 = 0b0
    assert packing.encode(np.array([1, -1, 2]), 3, FORMAT_DENSE) == bytes([0b10111001, 0b0])
    assert packing.encode(np.array([-128, 127]), 8, FORMAT_DENSE) == bytes([0x80, 0x7F])


def test_hand_computed_sizes():
    values = np.array([0, 3, 0, 0, -4, 0, 0, 0, 1, 0], np.int8)
    assert len(packing.encode(values, 3, FORMAT_DENSE)) == 4      # ceil(10·3 / 8)
    assert len(packing.encode(values, 3, FORMAT_BITMASK)) == 2 + 2  # ceil(10 / 8) + ceil(3·3 / 8)
    # gaps 1, 2, 3: r = 2 fits them in 3 entries of 5 bits (2 bytes); r = 1 needs 2 fillers
    assert packing.encode(values, 3, FORMAT_RLE)[:5] == bytes.fromhex("02 03000000")
    assert len(packing.encode(values, 3, FORMAT_RLE)) == 5 + 2
    assert len(packing.encode(values, 2, FORMAT_CODEBOOK)) == 1 + 4 + 3  # k = 4, ceil(10·2 / 8)
    # 1000 zeros then a 1 at 2 bits: r = 8 needs 3 fillers + 1 entry of 10 bits
    sparse = np.zeros(1001, np.int8)
    sparse[-1] = 1
    assert packing.encode(sparse, 2, FORMAT_RLE) == reference_rle(sparse, 2, 8)
    assert len(packing.encode(sparse, 2, FORMAT_RLE)) == 5 + 5
    assert packing.encode(np.zeros(50, np.int8), 8, FORMAT_RLE) == bytes.fromhex("01 00000000")


@pytest.mark.parametrize("values, bits", [([0], 2), ([1, -1], 2), ([3], 3), ([-7, 7], 4), ([8], 5),
                                          ([127, -127], 8), ([-128], 8), ([], 2)])
def test_natural_value_bits_are_symmetric(values, bits):
    for format in VALUE_FORMATS:
        assert packing.natural_bits(np.array(values, np.int8), format) == bits


@pytest.mark.parametrize("distinct, bits", [(0, 1), (1, 1), (2, 1), (3, 2), (4, 2), (5, 3), (16, 4), (17, 5),
                                            (256, 8)])
def test_natural_codebook_bits(distinct, bits):
    values = np.arange(-128, 128)[:distinct].repeat(3).astype(np.int8)
    assert packing.natural_bits(values, FORMAT_CODEBOOK) == bits


def test_pack_choices():
    sparse = np.zeros(256, np.int8)
    sparse[[3, 200]] = [5, -7]
    assert packing.pack(sparse).name == "rle"
    assert packing.pack(np.tile(np.array([-100, 90, 3, 50], np.int8), 30)).name == "codebook"  # 35 B, huffman 39
    assert packing.pack(np.tile(np.array([-100, 90, 3], np.int8), 40)).name == "huffman"  # 32 B, codebook 34
    assert packing.pack(np.arange(-7, 8, dtype=np.int8)).name == "dense"
    rng = np.random.default_rng(1)
    half = rng.integers(-127, 128, 400).astype(np.int8)
    half[rng.random(400) < 0.5] = 0  # random gaps: a 1-bit mask beats run fields
    assert packing.pack(half).name == "bitmask"
    assert packing.pack(np.zeros(0, np.int8)) == packing.Packed(FORMAT_DENSE, 2, b"")
    forced = packing.pack(sparse, "codebook")
    assert (forced.format, forced.bits, forced.name) == (FORMAT_CODEBOOK, 2, "codebook")
    with pytest.raises(ValueError, match="unknown packing 'zip'"):
        packing.pack(sparse, "zip")


# -- validation ---------------------------------------------------------------------
@pytest.mark.parametrize("bits, bad", [(2, 2), (2, -3), (4, 8), (8, 128), (8, -129)])
def test_values_must_fit(bits, bad):
    for format in VALUE_FORMATS:
        with pytest.raises(ValueError, match="do not fit"):
            packing.encode(np.array([0, bad]), bits, format)


def test_codebook_values_must_fit_the_index_width():
    with pytest.raises(ValueError, match="3 distinct values need more than 1-bit"):
        packing.encode(np.array([1, 2, 3]), 1, FORMAT_CODEBOOK)
    with pytest.raises(ValueError, match="do not fit int8"):
        packing.encode(np.array([300]), 8, FORMAT_CODEBOOK)


@pytest.mark.parametrize("bits, format", [(1, FORMAT_DENSE), (1, FORMAT_RLE), (9, FORMAT_BITMASK),
                                          (0, FORMAT_CODEBOOK), (9, FORMAT_CODEBOOK), (2.0, FORMAT_DENSE)])
def test_bits_range(bits, format):
    with pytest.raises(ValueError, match="bits"):
        packing.encode(np.array([0]), bits, format)
    with pytest.raises(ValueError, match="bits"):
        packing.decode(b"\x00", bits, format, 1)


def test_rejects_non_integers_and_unknown_formats():
    with pytest.raises(ValueError, match="integers"):
        packing.encode(np.array([0.5]), 4, FORMAT_DENSE)
    with pytest.raises(ValueError, match="integers"):
        packing.pack(np.array([0.5]))
    with pytest.raises(ValueError, match="format"):
        packing.encode(np.array([1]), 4, 7)
    with pytest.raises(ValueError, match="format"):
        packing.decode(b"\x01", 4, 7, 1)
    with pytest.raises(ValueError, match="format"):
        packing.natural_bits(np.array([1]), 7)


RLE_DOC = bytes.fromhex("01 04000000 11 F5")  # b = 3, count 8
CODEBOOK_DOC = bytes.fromhex("02 FD0005 A2 01")  # b = 2, count 6


@pytest.mark.parametrize("payload, bits, format, count, match", [
    (b"\x01", 4, FORMAT_DENSE, 4, "expected 2"),                        # truncated
    (b"\x01\x00\x00", 4, FORMAT_DENSE, 4, "expected 2"),                # too long
    (b"\x01\xF0", 4, FORMAT_DENSE, 3, "padding"),                       # junk in the padding
    (b"", 4, FORMAT_BITMASK, 4, "shorter"),                             # no mask
    (b"\x09", 4, FORMAT_BITMASK, 4, "expected 2"),                      # mask but no values
    (b"\x19\xE1", 4, FORMAT_BITMASK, 4, "padding"),                     # mask bit beyond count
    (b"\x09\x01", 4, FORMAT_BITMASK, 4, "zero value"),                  # a "nonzero" value is 0
    (b"\x00", 4, FORMAT_DENSE, -1, "count"),
    (RLE_DOC[:-1], 3, FORMAT_RLE, 8, "expected 7"),                     # truncated
    (RLE_DOC + b"\x00", 3, FORMAT_RLE, 8, "expected 7"),                # too long
    (RLE_DOC[:3], 3, FORMAT_RLE, 8, "shorter than its 5-byte header"),
    (b"\x01\xff\xff\xff\xff", 3, FORMAT_RLE, 8, "expected"),             # 4 G entries, 5 bytes
    (b"\x00" + RLE_DOC[1:], 3, FORMAT_RLE, 8, "run width 0"),
    (b"\x09" + RLE_DOC[1:], 3, FORMAT_RLE, 8, "run width 9"),
    (bytes.fromhex("01 01000000 12"), 3, FORMAT_RLE, 4, "padding"),      # entry (0, 1), padding 0001
    (bytes.fromhex("01 01000000 00"), 3, FORMAT_RLE, 4, "not a filler"), # entry (0, 0)
    (bytes.fromhex("02 01000000 01"), 3, FORMAT_RLE, 4, "not a filler"), # entry (1, 0) at r = 2
    (bytes.fromhex("01 01000000 01"), 3, FORMAT_RLE, 4, "ends with a filler"),
    (RLE_DOC, 3, FORMAT_RLE, 7, "position 7, beyond the 7 values"),
    (bytes.fromhex("01 01000000 02"), 3, FORMAT_RLE, 0, "position 0"),
    (b"", 2, FORMAT_CODEBOOK, 6, "empty"),
    (CODEBOOK_DOC[:-1], 2, FORMAT_CODEBOOK, 6, "expected 6"),           # truncated
    (CODEBOOK_DOC + b"\x00", 2, FORMAT_CODEBOOK, 6, "expected 6"),      # too long
    (CODEBOOK_DOC[:4] + b"\xA2\x11", 2, FORMAT_CODEBOOK, 6, "padding"),
    (bytes.fromhex("02 00FD05 A2 01"), 2, FORMAT_CODEBOOK, 6, "ascending"),  # unsorted table
    (bytes.fromhex("02 FDFD05 A2 01"), 2, FORMAT_CODEBOOK, 6, "ascending"),  # repeated entry
    (bytes.fromhex("02 FD0005 A3 01"), 2, FORMAT_CODEBOOK, 6, "index 3 is not below the table size 3"),
    (bytes.fromhex("02 FD0005 00 00"), 2, FORMAT_CODEBOOK, 6, "never used"),
    (bytes.fromhex("00 05"), 2, FORMAT_CODEBOOK, 0, "never used"),      # empty tensor: table [0]
    (bytes.fromhex("02 FD0005 A2"), 1, FORMAT_CODEBOOK, 6, "3 entries does not fit 1-bit"),
])
def test_malformed_payloads(payload, bits, format, count, match):
    with pytest.raises(ValueError, match=match):
        packing.decode(payload, bits, format, count)


@pytest.mark.parametrize("seed", range(40))
def test_random_payloads_never_crash(seed):
    """Arbitrary bytes either decode to int8 values in the format's range or raise ValueError."""
    rng = np.random.default_rng(seed)
    payload = rng.integers(0, 256, rng.integers(0, 12)).astype(np.uint8).tobytes()
    format, count = int(rng.integers(0, 5)), int(rng.integers(0, 20))
    low, high = packing.BITS_RANGE[format]
    bits = int(rng.integers(low, high + 1))
    try:
        values = packing.decode(payload, bits, format, count)
    except ValueError:
        return
    lo, hi = (-128, 127) if format in (FORMAT_CODEBOOK, FORMAT_HUFFMAN) else packing.value_range(bits)
    assert values.shape == (count,) and lo <= values.min(initial=0) and values.max(initial=0) <= hi


def test_large_tensors_are_fast():
    """300k values, every format both ways: well under the test suite's patience
    (about 0.1 s on the project's 2-core machine; the bound is 20× that)."""
    rng = np.random.default_rng(0)
    values = rng.integers(-7, 8, 300_000).astype(np.int8)
    values[rng.random(values.size) < 0.7] = 0
    start = time.perf_counter()
    for format in FORMATS:
        bits = packing.natural_bits(values, format)
        decoded = packing.decode(packing.encode(values, bits, format), bits, format, values.size)
        np.testing.assert_array_equal(decoded, values)
    assert time.perf_counter() - start < 2.0


# -- huffman ---------------------------------------------------------------------------
HUFFMAN_DOC = bytes.fromhex("03 0001 0202 FF03 0103 DC04")  # L = 3, count 8


def test_documented_huffman_layout():
    """The module docstring's example, to the bit, and the edge cases it names."""
    values = np.array([0, 0, 1, 0, -1, 0, 2, 0])
    assert packing.encode(values, 3, FORMAT_HUFFMAN) == HUFFMAN_DOC
    assert packing.pack(values, "huffman") == packing.Packed(FORMAT_HUFFMAN, 3, HUFFMAN_DOC)
    assert huffman_records(HUFFMAN_DOC) == [(0, 1), (2, 2), (-1, 3), (1, 3)]
    assert huffman.canonical_codes(np.array([1, 2, 3, 3])).tolist() == [0b0, 0b10, 0b110, 0b111]
    # RFC 1951 §3.2.2's example: lengths (3, 3, 3, 3, 3, 2, 4, 4) of A..H give F 00,
    # A 010 .. E 110, G 1110, H 1111; here listed in canonical order F, A..E, G, H
    assert huffman.canonical_codes(np.array([2, 3, 3, 3, 3, 3, 4, 4])).tolist() == [
        0b00, 0b010, 0b011, 0b100, 0b101, 0b110, 0b1110, 0b1111]
    assert packing.encode(np.zeros(0, np.int8), 1, FORMAT_HUFFMAN) == bytes.fromhex("00 0001")
    assert packing.encode(np.full(10, 5), 1, FORMAT_HUFFMAN) == bytes.fromhex("00 0501 0000")  # ten "0"s
    assert packing.natural_bits(np.full(10, 5), FORMAT_HUFFMAN) == 1
    assert packing.natural_bits(np.zeros(0, np.int8), FORMAT_HUFFMAN) == 1


@settings(max_examples=300, deadline=None)
@given(int8_weights() | weights() | codebook_weights())
def test_huffman_round_trips_with_optimal_complete_codes(case):
    values, _ = case
    bits = packing.natural_bits(values, FORMAT_HUFFMAN)
    payload = packing.encode(values, bits, FORMAT_HUFFMAN)
    records = huffman_records(payload)
    assert payload == reference_huffman(values, records)
    decoded = packing.decode(payload, bits, FORMAT_HUFFMAN, values.size)
    assert decoded.dtype == np.int8
    np.testing.assert_array_equal(decoded, values)
    lengths = [n for _, n in records]
    assert max(lengths) == bits
    if len(records) > 1:
        assert sum(Fraction(1, 1 << n) for n in lengths) == 1  # Kraft: complete
        counts = np.bincount(values.astype(np.int64) + 128, minlength=256)
        cost = sum(int(counts[s + 128]) * n for s, n in records)
        assert cost == optimal_cost(counts) or bits == packing.MAX_CODE_BITS  # optimal unless limited
    # `bits` is a limit: the same payload decodes under a looser one
    np.testing.assert_array_equal(packing.decode(payload, 15, FORMAT_HUFFMAN, values.size), values)


@settings(max_examples=100, deadline=None)
@given(int8_weights(), st.integers(0, 2**32 - 1))
def test_huffman_is_deterministic_and_depends_on_counts_only(case, seed):
    values, _ = case
    bits = packing.natural_bits(values, FORMAT_HUFFMAN)
    payload = packing.encode(values, bits, FORMAT_HUFFMAN)
    assert payload == packing.encode(values.copy(), bits, FORMAT_HUFFMAN)
    assert payload == packing.encode(values, packing.MAX_CODE_BITS, FORMAT_HUFFMAN)  # limit not reached
    shuffled = np.random.default_rng(seed).permutation(values)
    assert packing.encode(shuffled, bits, FORMAT_HUFFMAN)[:1 + 2 * (payload[0] + 1)] == payload[:1 + 2 * (
        payload[0] + 1)]


@settings(max_examples=100, deadline=None)
@given(int8_weights(), st.data())
def test_huffman_at_a_tighter_limit(case, data):
    """Below the natural length the flattened code still round-trips, its codes fit
    the limit, and it is never shorter than the natural code."""
    values, _ = case
    natural = packing.natural_bits(values, FORMAT_HUFFMAN)
    distinct = len(np.unique(values)) if values.size else 1
    limit = data.draw(st.integers(max(1, (distinct - 1).bit_length()), natural))
    payload = packing.encode(values, limit, FORMAT_HUFFMAN)
    assert max(n for _, n in huffman_records(payload)) <= limit
    assert len(payload) >= len(packing.encode(values, natural, FORMAT_HUFFMAN))
    np.testing.assert_array_equal(packing.decode(payload, limit, FORMAT_HUFFMAN, values.size), values)
    if distinct > 2:  # fewer than ⌈log2 distinct⌉ bits cannot hold them
        with pytest.raises(ValueError, match=f"{distinct} distinct values need codes longer than"):
            packing.encode(values, (distinct - 1).bit_length() - 1, FORMAT_HUFFMAN)


def test_huffman_limits_code_lengths():
    """Fibonacci counts make Huffman's tree a path: 24 symbols would take codes of up
    to 23 bits; the flattening keeps them within the limit, the code complete."""
    fibonacci = [1, 1]
    while len(fibonacci) < 24:
        fibonacci.append(fibonacci[-1] + fibonacci[-2])
    counts = np.zeros(256, np.int64)
    counts[100:124] = fibonacci
    assert optimal_cost(counts) == sum(c * n for c, n in zip(fibonacci, [23, *range(23, 0, -1)]))
    assert huffman.code_lengths(counts, 99).max() == 23  # unlimited
    values = np.repeat(np.arange(-28, -4), fibonacci).astype(np.int8)
    assert packing.natural_bits(values, FORMAT_HUFFMAN) == 12  # counts below 2^k raised: all depths drop
    for limit in (5, 8, 12, 15):
        lengths = huffman.code_lengths(counts, limit)
        assert lengths.max() <= limit and (1 / 2 ** lengths[lengths > 0]).sum() == 1
        payload = packing.encode(values, limit, FORMAT_HUFFMAN)
        assert [n for _, n in huffman_records(payload)] == sorted(lengths[lengths > 0].tolist())
        np.testing.assert_array_equal(packing.decode(payload, limit, FORMAT_HUFFMAN, values.size), values)
    with pytest.raises(ValueError, match="24 distinct values need codes longer than 4 bits"):
        packing.encode(values, 4, FORMAT_HUFFMAN)


@pytest.mark.parametrize("payload, bits, count, match", [
    (b"", 3, 8, "empty"),
    (HUFFMAN_DOC, 1, 8, "4 symbols does not fit 1-bit codes"),
    (HUFFMAN_DOC[:5], 3, 8, "shorter than its 4-record table"),
    (HUFFMAN_DOC, 2, 8, r"code length is outside 1..2: \[1, 2, 3\]"),
    (bytes.fromhex("01 0000 0101 00"), 1, 2, r"outside 1..1: \[0, 1\]"),            # a 0-bit code
    (bytes.fromhex("03 0202 0001 FF03 0103 DC04"), 3, 8, "canonical order"),         # lengths 2, 1, ...
    (bytes.fromhex("03 0001 0202 0103 FF03 DC04"), 3, 8, "canonical order"),         # symbols 1, -1 at 3 bits
    (bytes.fromhex("03 0001 0002 FF03 0103 DC04"), 3, 8, "two records"),             # symbol 0 twice
    (bytes.fromhex("03 0001 0202 FF03 0104 DC04"), 4, 8, r"complete prefix code: .* = 15/2\^4"),  # Kraft < 1
    (bytes.fromhex("02 0001 0201 FF02 00"), 2, 2, r"complete prefix code: .* = 5/2\^2"),           # Kraft > 1
    (bytes.fromhex("00 0502 00"), 2, 1, "single huffman symbol"),
    (HUFFMAN_DOC + bytes(10), 3, 8, "has 12 bytes; 8 codes of 1..3 bits take 1..3"),
    (HUFFMAN_DOC + b"\x00", 3, 8, "huffman stream payload has 3 bytes, expected 2"),  # too long
    (HUFFMAN_DOC[:-1], 3, 8, "ends before its 8 codes do"),                           # truncated
    (HUFFMAN_DOC, 3, 12, "ends before its 12 codes do"),                               # 8 codes + 4 zero bits
    (HUFFMAN_DOC[:-1] + b"\x24", 3, 8, "padding"),                                    # bit 13 set
    (bytes.fromhex("03 0001 0202 FF03 0103 DC00"), 3, 8, "never occurs"),             # no 2: 0 0 1 0 -1 0 0 0
    (bytes.fromhex("00 0501"), 1, 0, "never occurs"),                                  # empty tensor: (0, 1)
    (bytes.fromhex("00 0501 01"), 1, 1, "from huffman stream bit 0 start no code"),    # "1" after a one-symbol table
    (bytes.fromhex("00 0501 00"), 4, 0, "take 0..0"),                                  # a stream without codes
])
def test_malformed_huffman_payloads(payload, bits, count, match):
    with pytest.raises(ValueError, match=match):
        packing.decode(payload, bits, FORMAT_HUFFMAN, count)
    assert reference_huffman_decode(payload, bits, count) is None
    with pytest.raises(ValueError, match=match):
        packing.validate(payload, bits, FORMAT_HUFFMAN, count)


@settings(max_examples=300, deadline=None)
@given(int8_weights(), st.data())
def test_huffman_decoder_agrees_with_a_plain_reading_on_damaged_payloads(case, data):
    """Bit flips, overwrites, cuts and insertions in a valid payload, and wrong
    counts: the vectorized decoder refuses exactly what the bit-by-bit reading
    refuses, and otherwise returns the same values."""
    values, _ = case
    values = values[:400]
    bits = packing.natural_bits(values, FORMAT_HUFFMAN)
    payload = bytearray(packing.encode(values, bits, FORMAT_HUFFMAN))
    for _ in range(data.draw(st.integers(1, 3))):
        pos = data.draw(st.integers(0, len(payload)))
        kind = data.draw(st.sampled_from(["flip", "overwrite", "cut", "insert"]))
        if kind in ("flip", "overwrite") and pos < len(payload):
            payload[pos] = payload[pos] ^ 1 << data.draw(st.integers(0, 7)) if kind == "flip" else data.draw(
                st.integers(0, 255))
        elif kind == "cut":
            del payload[pos:pos + data.draw(st.integers(1, 3))]
        elif kind == "insert":
            payload[pos:pos] = bytes([data.draw(st.integers(0, 255))])
    count = values.size + data.draw(st.sampled_from([0, 0, 0, -1, 1, 5]))
    count, bits = max(count, 0), data.draw(st.sampled_from([bits, bits, 15, max(bits - 1, 1)]))
    expected = reference_huffman_decode(bytes(payload), bits, count)
    try:
        decoded = packing.decode(bytes(payload), bits, FORMAT_HUFFMAN, count)
    except ValueError:
        assert expected is None
        return
    assert expected is not None and decoded.tolist() == expected


def test_huffman_validation_memory_follows_the_payload():
    """`validate` holds O(stream bits) (about 50-80 bytes each), never more than the
    count allows: a 4-byte payload claiming 2^32 - 1 values is refused at once."""
    rng = np.random.default_rng(2)
    for values in (np.zeros(100_000, np.int8), np.clip(np.round(rng.normal(0, 20, 100_000)), -127, 127)):
        values = values.astype(np.int8)
        bits = packing.natural_bits(values, FORMAT_HUFFMAN)
        payload = packing.encode(values, bits, FORMAT_HUFFMAN)
        tracemalloc.start()
        try:
            packing.validate(payload, bits, FORMAT_HUFFMAN, values.size)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 128 * 8 * len(payload)
    start = time.perf_counter()
    with pytest.raises(ValueError, match="4294967295 codes of 1..1 bits take 536870912..536870912"):
        packing.validate(bytes.fromhex("00 0501 00"), 1, FORMAT_HUFFMAN, 2**32 - 1)
    assert time.perf_counter() - start < 0.1


def test_huffman_is_fast():
    """300k values with codes up to 15 bits, natural_bits + encode + decode: about
    0.1 s on the project's 2-core machine (best of 3); the bound is 0.5 s."""
    rng = np.random.default_rng(0)
    values = np.clip(np.round(rng.normal(0, 20, 300_000)), -127, 127).astype(np.int8)
    times = []
    for _ in range(3):
        start = time.perf_counter()
        bits = packing.natural_bits(values, FORMAT_HUFFMAN)
        decoded = packing.decode(packing.encode(values, bits, FORMAT_HUFFMAN), bits, FORMAT_HUFFMAN, values.size)
        times.append(time.perf_counter() - start)
    assert bits == 15
    np.testing.assert_array_equal(decoded, values)
    assert min(times) < 0.5


def test_pack_formats_restrict_auto():
    values = np.tile(np.array([-100, 90, 3], np.int8), 40)
    older = (FORMAT_DENSE, FORMAT_BITMASK, FORMAT_RLE, FORMAT_CODEBOOK)
    assert packing.pack(values).name == "huffman"
    assert packing.pack(values, formats=older).name == "codebook"
    assert packing.pack(values, formats=(FORMAT_DENSE,)).name == "dense"
    assert packing.pack(values, "rle", formats=older).name == "rle"
    with pytest.raises(ValueError, match="packing 'huffman' is not among the formats"):
        packing.pack(values, "huffman", formats=older)
    for bad in ((), (9,), (FORMAT_DENSE, -1)):
        with pytest.raises(ValueError, match="pack formats must be some of"):
            packing.pack(values, formats=bad)
