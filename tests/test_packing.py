"""Weight stream codecs: decode(encode(w)) == w for every bit width and sparsity,
the documented bit layouts, and clear ValueErrors on malformed payloads."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nnc import packing as codecs
from nnc.packing import FORMAT_BITMASK, FORMAT_DENSE

FORMATS = (FORMAT_DENSE, FORMAT_BITMASK)


@st.composite
def weights(draw):
    """(values, bits): b-bit integers, a drawn fraction 0..99% of them zero."""
    bits = draw(st.integers(2, 8))
    count = draw(st.integers(0, 300))
    sparsity = draw(st.integers(0, 99)) / 100
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    lo, hi = codecs.value_range(bits)
    values = rng.integers(lo, hi + 1, count)
    values[rng.random(count) < sparsity] = 0
    return values.astype(np.int8), bits


@settings(max_examples=300, deadline=None)
@given(weights(), st.sampled_from(FORMATS))
def test_round_trip(case, format):
    values, bits = case
    payload = codecs.encode(values, bits, format)
    decoded = codecs.decode(payload, bits, format, values.size)
    assert decoded.dtype == np.int8
    np.testing.assert_array_equal(decoded, values)


@settings(max_examples=200, deadline=None)
@given(weights())
def test_best_is_smallest_and_exact(case):
    values, bits = case
    format, payload = codecs.encode_best(values, bits)
    assert len(payload) == min(len(codecs.encode(values, bits, f)) for f in FORMATS)
    np.testing.assert_array_equal(codecs.decode(payload, bits, format, values.size), values)


def test_sizes():
    values = np.array([0, 3, 0, 0, -4, 0, 0, 0, 1, 0], np.int8)
    assert len(codecs.encode(values, 3, FORMAT_DENSE)) == 4  # ceil(10·3 / 8)
    assert len(codecs.encode(values, 3, FORMAT_BITMASK)) == 2 + 2  # ceil(10 / 8) + ceil(3·3 / 8)


def test_documented_layout():
    """The module docstring's example, to the bit."""
    values = np.array([1, 0, 0, -2])
    assert codecs.encode(values, 4, FORMAT_DENSE) == bytes([0x01, 0xE0])
    assert codecs.encode(values, 4, FORMAT_BITMASK) == bytes([0x09, 0xE1])
    # a field straddles bytes: 3-bit fields 1, -1, 2 are stream bits 0-2 = 1,0,0;
    # 3-5 = 1,1,1; 6-8 = 0,1,0 -> byte 0 = 0b10111001, byte 1 = 0b0
    assert codecs.encode(np.array([1, -1, 2]), 3, FORMAT_DENSE) == bytes([0b10111001, 0b0])
    assert codecs.encode(np.array([-128, 127]), 8, FORMAT_DENSE) == bytes([0x80, 0x7F])


def test_best_picks_bitmask_when_sparse_and_dense_on_ties():
    assert codecs.encode_best(np.zeros(64, np.int8), 8)[0] == FORMAT_BITMASK
    assert codecs.encode_best(np.ones(64, np.int8), 8)[0] == FORMAT_DENSE
    assert codecs.encode_best(np.zeros(0, np.int8), 8) == (FORMAT_DENSE, b"")


@pytest.mark.parametrize("bits, bad", [(2, 2), (2, -3), (4, 8), (8, 128), (8, -129)])
def test_values_must_fit(bits, bad):
    with pytest.raises(ValueError, match="do not fit"):
        codecs.encode(np.array([0, bad]), bits, FORMAT_DENSE)


@pytest.mark.parametrize("bits", [1, 9, 0])
def test_bits_range(bits):
    with pytest.raises(ValueError, match="bits"):
        codecs.encode(np.array([0]), bits, FORMAT_DENSE)
    with pytest.raises(ValueError, match="bits"):
        codecs.decode(b"\x00", bits, FORMAT_DENSE, 1)


def test_rejects_non_integers_and_unknown_formats():
    with pytest.raises(ValueError, match="integers"):
        codecs.encode(np.array([0.5]), 4, FORMAT_DENSE)
    with pytest.raises(ValueError, match="format"):
        codecs.encode(np.array([1]), 4, 7)
    with pytest.raises(ValueError, match="format"):
        codecs.decode(b"\x01", 4, 7, 1)


@pytest.mark.parametrize("payload, bits, format, count, match", [
    (b"\x01", 4, FORMAT_DENSE, 4, "expected 2"),                 # truncated
    (b"\x01\x00\x00", 4, FORMAT_DENSE, 4, "expected 2"),         # trailing byte
    (b"\x01\xF0", 4, FORMAT_DENSE, 3, "padding"),                # junk in the padding
    (b"", 4, FORMAT_BITMASK, 4, "shorter"),                      # no mask
    (b"\x09", 4, FORMAT_BITMASK, 4, "expected 2"),               # mask but no values
    (b"\x19\xE1", 4, FORMAT_BITMASK, 4, "padding"),              # mask bit beyond count
    (b"\x09\x01", 4, FORMAT_BITMASK, 4, "zero value"),           # a "nonzero" value is 0
    (b"\x00", 4, FORMAT_DENSE, -1, "count"),
])
def test_malformed_payloads(payload, bits, format, count, match):
    with pytest.raises(ValueError, match=match):
        codecs.decode(payload, bits, format, count)


@pytest.mark.parametrize("seed", range(20))
def test_random_payloads_never_crash(seed):
    """Arbitrary bytes either decode to in-range int8 values or raise ValueError."""
    rng = np.random.default_rng(seed)
    payload = rng.integers(0, 256, rng.integers(0, 12)).astype(np.uint8).tobytes()
    bits, format, count = int(rng.integers(2, 9)), int(rng.integers(0, 2)), int(rng.integers(0, 20))
    try:
        values = codecs.decode(payload, bits, format, count)
    except ValueError:
        return
    lo, hi = codecs.value_range(bits)
    assert values.shape == (count,) and lo <= values.min(initial=0) and values.max(initial=0) <= hi
