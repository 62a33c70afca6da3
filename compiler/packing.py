"""Weight packing: the exact encodings of integer weight tensors that the az-sim
decoder and the C target's packed kernels reverse.

A weight tensor is encoded as the flat sequence of its int8 values in row-major
order (`values.reshape(-1)`); `count` is the number of values. Every value must
fit `bits` = b ∈ {2..8} in two's complement: −2^(b−1) ≤ v ≤ 2^(b−1) − 1.

Bit packing (shared by both formats). A sequence of fields is packed LSB-first
into one bit stream: bit j of the stream is bit (j mod 8) of byte ⌊j / 8⌋, and
field i of width b occupies stream bits [i·b, (i+1)·b), its least significant bit
first. The stream is padded with 0 bits to a whole byte. A b-bit value field holds
v mod 2^b (two's complement); the decoder sign-extends it from bit b−1.

FORMAT_DENSE (0)
    bytes [0, ⌈count·b / 8⌉): the `count` values as b-bit fields.
    Payload length: exactly ⌈count·b / 8⌉ bytes.

FORMAT_BITMASK (1)
    bytes [0, ⌈count / 8⌉): the mask, `count` 1-bit fields, field i = 1 iff value i ≠ 0;
    then bytes [⌈count / 8⌉, ⌈count / 8⌉ + ⌈nnz·b / 8⌉): the nnz nonzero values, in
    order, as b-bit fields (nnz = number of 1 bits in the mask).
    The decoder puts the values at the mask's 1 bits and fills the rest with zeros.

Example, b = 4, values [1, 0, 0, −2]:
    dense   = 0x01 0xE0                  (fields 0001, 0000, 0000, 1110)
    bitmask = 0x09 | 0xE1                (mask 1001, then fields 0001, 1110)

`decode` validates everything and raises ValueError on a payload that no
`encode` produces: wrong length, nonzero padding bits, a zero value field in a
bitmask payload (its mask bit says nonzero). The blob reader turns that into its
BlobError.
"""

from __future__ import annotations

import numpy as np

FORMAT_DENSE = 0      # b-bit two's complement values
FORMAT_BITMASK = 1    # nonzero mask, then the nonzero values
MIN_BITS, MAX_BITS = 2, 8
FORMATS = (FORMAT_DENSE, FORMAT_BITMASK)


def value_range(bits: int) -> tuple[int, int]:
    """Inclusive range of b-bit two's complement values."""
    _check_bits(bits)
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def encode(values: np.ndarray, bits: int, format: int) -> bytes:
    """The payload of `values` (any shape, flattened row-major) in `format`."""
    flat = _checked_values(values, bits)
    if format == FORMAT_DENSE:
        return pack_fields(flat, bits)
    if format == FORMAT_BITMASK:
        nonzero = flat != 0
        return pack_fields(nonzero.astype(np.int64), 1) + pack_fields(flat[nonzero], bits)
    raise ValueError(f"unknown weight stream format {format!r} (known: {FORMATS})")


def decode(payload: bytes, bits: int, format: int, count: int) -> np.ndarray:
    """The `count` int8 values (flat) that `payload` encodes; ValueError if it is malformed."""
    _check_bits(bits)
    if not isinstance(count, (int, np.integer)) or count < 0:
        raise ValueError(f"value count must be a non-negative integer, got {count!r}")
    data = np.frombuffer(bytes(payload), np.uint8)
    if format == FORMAT_DENSE:
        _expect_length(data.size, packed_size(count, bits), "dense")
        return _unpack(data, bits, count).astype(np.int8)
    if format == FORMAT_BITMASK:
        return _decode_bitmask(data, bits, count)
    raise ValueError(f"unknown weight stream format {format!r} (known: {FORMATS})")


def encode_best(values: np.ndarray, bits: int) -> tuple[int, bytes]:
    """(format, payload) of the smallest exact encoding; dense wins ties."""
    candidates = [(f, encode(values, bits, f)) for f in FORMATS]
    return min(candidates, key=lambda c: (len(c[1]), c[0]))


def packed_size(count: int, bits: int) -> int:
    """Bytes of `count` packed b-bit fields: ⌈count·b / 8⌉."""
    return (count * bits + 7) // 8


# -- internals ---------------------------------------------------------------------
def _check_bits(bits: int) -> None:
    if not isinstance(bits, (int, np.integer)) or not MIN_BITS <= bits <= MAX_BITS:
        raise ValueError(f"bits must be an integer in [{MIN_BITS}, {MAX_BITS}], got {bits!r}")


def _checked_values(values: np.ndarray, bits: int) -> np.ndarray:
    """values flattened to int64; ValueError unless integers that fit b bits."""
    lo, hi = value_range(bits)
    array = np.asarray(values)
    if array.dtype.kind not in "iu":
        raise ValueError(f"weights must be integers, got {array.dtype}")
    flat = array.reshape(-1).astype(np.int64)
    if flat.size and (flat.min() < lo or flat.max() > hi):
        raise ValueError(f"weights in [{flat.min()}, {flat.max()}] do not fit {bits} bits [{lo}, {hi}]")
    return flat


def pack_fields(fields: np.ndarray, width: int) -> bytes:
    """Fields (int64, each taken mod 2^width) packed LSB-first, padded to a byte."""
    unsigned = fields.astype(np.int64) & ((1 << width) - 1)
    bit_planes = (unsigned[:, None] >> np.arange(width)) & 1
    return np.packbits(bit_planes.astype(np.uint8).reshape(-1), bitorder="little").tobytes()


def _unpack(data: np.ndarray, bits: int, count: int) -> np.ndarray:
    """`count` b-bit two's complement fields from the packed bytes (int64),
    ValueError if the padding bits after them are not zero."""
    stream = np.unpackbits(data, bitorder="little")
    if stream[count * bits:].any():
        raise ValueError("nonzero padding bits after the last field")
    planes = stream[:count * bits].reshape(count, bits).astype(np.int64)
    unsigned = planes @ (np.int64(1) << np.arange(bits, dtype=np.int64))
    return unsigned - (planes[:, -1] << bits)


def _decode_bitmask(data: np.ndarray, bits: int, count: int) -> np.ndarray:
    mask_bytes = packed_size(count, 1)
    if data.size < mask_bytes:
        raise ValueError(f"bitmask payload of {data.size} bytes is shorter than its {mask_bytes}-byte mask")
    stream = np.unpackbits(data[:mask_bytes], bitorder="little")
    if stream[count:].any():
        raise ValueError("nonzero padding bits after the mask")
    nonzero = stream[:count].astype(bool)
    nnz = int(nonzero.sum())
    _expect_length(data.size, mask_bytes + packed_size(nnz, bits), "bitmask")
    nonzero_values = _unpack(data[mask_bytes:], bits, nnz)
    if nnz and not nonzero_values.all():
        raise ValueError("a bitmask payload holds a zero value where its mask says nonzero")
    out = np.zeros(count, np.int8)
    out[nonzero] = nonzero_values
    return out


def _expect_length(actual: int, expected: int, what: str) -> None:
    if actual != expected:
        raise ValueError(f"{what} payload has {actual} bytes, expected {expected}")
