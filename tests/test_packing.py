"""Weight packing (nnc.packing): decode(encode(w)) == w for every format, width and
sparsity; the encoders against plain-loop readings of the documented layouts;
`pack` choosing the smallest; the docstring's byte examples; and one clear
ValueError for each way a payload can be malformed."""

from __future__ import annotations

import struct
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nnc import packing
from nnc.packing import FORMAT_BITMASK, FORMAT_CODEBOOK, FORMAT_DENSE, FORMAT_RLE, FORMATS

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
@given(weights() | codebook_weights())
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
    assert packing.pack(np.tile(np.array([-100, 90, 3], np.int8), 40)).name == "codebook"
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
        packing.natural_bits(np.array([1]), 4)


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
    format, count = int(rng.integers(0, 4)), int(rng.integers(0, 20))
    bits = int(rng.integers(1 if format == FORMAT_CODEBOOK else 2, 9))
    try:
        values = packing.decode(payload, bits, format, count)
    except ValueError:
        return
    lo, hi = (-128, 127) if format == FORMAT_CODEBOOK else packing.value_range(bits)
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
