"""Bit fields: how every weight format packs fixed-width fields into bytes
(LSB-first, padded with zero bits to a whole byte; packing.py's docstring
defines the layout), and the checks its decoders share."""

from __future__ import annotations

import numpy as np


def packed_size(count: int, bits: int) -> int:
    """Bytes of `count` packed b-bit fields: ⌈count·b / 8⌉."""
    return (count * bits + 7) // 8


def pack_fields(fields: np.ndarray, width: int) -> bytes:
    """Fields (integers, each taken mod 2^width) packed LSB-first, padded to a byte."""
    unsigned = np.asarray(fields).astype(np.int64) & ((1 << width) - 1)
    if width == 8:
        return unsigned.astype(np.uint8).tobytes()
    bit_planes = (unsigned[:, None] >> np.arange(width, dtype=np.int64)) & 1
    return np.packbits(bit_planes.astype(np.uint8).reshape(-1), bitorder="little").tobytes()


def unpack_fields(data: np.ndarray, width: int, count: int) -> np.ndarray:
    """`count` unsigned `width`-bit fields from the packed bytes (int64), ValueError
    if the padding bits after them are not zero. The caller checked the length."""
    if width == 8:
        return data[:count].astype(np.int64)
    stream = np.unpackbits(data, bitorder="little")
    if stream[count * width:].any():
        raise ValueError("nonzero padding bits after the last field")
    planes = stream[:count * width].reshape(count, width)
    unsigned = np.zeros(count, np.int64)
    for bit in range(width):
        unsigned |= planes[:, bit].astype(np.int64) << bit
    return unsigned


def signed(unsigned: np.ndarray, bits: int) -> np.ndarray:
    """b-bit fields sign-extended from bit b−1."""
    return unsigned - ((unsigned >> (bits - 1)) << bits)


def expect_length(actual: int, expected: int, what: str) -> None:
    if actual != expected:
        raise ValueError(f"{what} payload has {actual} bytes, expected {expected}")
