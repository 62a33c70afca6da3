"""The canonical Huffman codec of packing's FORMAT_HUFFMAN (its layout and
construction are in packing.py's docstring): code lengths by Huffman's
construction with brotli's length limiting, canonical codes as DEFLATE assigns
them, the encoder, and a vectorized decoder that checks every rule."""

from __future__ import annotations

import functools

import numpy as np

from .bitfields import expect_length, packed_size

MAX_CODE_BITS = 15  # the code-length limit L: 1..MAX_CODE_BITS


def code_lengths(counts: np.ndarray, limit: int) -> np.ndarray:
    """The code length of each symbol (0 where its count is 0) of the Huffman code
    over `counts` whose codes are at most `limit` bits (the construction in
    packing.py's docstring); ValueError if more than 2^limit symbols occur."""
    counts = np.asarray(counts, np.int64)
    present = np.flatnonzero(counts)
    if present.size > 1 << limit:
        raise ValueError(f"{present.size} distinct values need codes longer than {limit} bits")
    lengths = np.zeros(counts.size, np.int64)
    lengths[present] = 1  # a single symbol: the code "0"
    floor = 1
    while present.size > 1:
        depths = _tree_depths(np.maximum(counts[present], floor).tolist())
        if max(depths) <= limit:
            lengths[present] = depths
            break
        floor *= 2
    return lengths


def _tree_depths(weights: list[int]) -> list[int]:
    """Leaf depths of Huffman's tree over ≥ 2 positive `weights`: merge the two
    least (weight, height, node number); leaves are nodes 0..n−1 (height 0),
    merged nodes n, n+1, … Without a heap: the least entries come out in
    increasing order and a merge outweighs both of its parts, so each merged
    node is at least every node merged before it (greater weight, or equal
    weight at a height as great). Hence the leaves sorted by (weight, number)
    and the merged nodes in the order made are two sorted queues, and the
    least of their heads is the least entry: the leaf on equal weights (its
    height 0 is below any merged node's)."""
    n = len(weights)
    leaves = sorted(range(n), key=weights.__getitem__)  # stable: equal weights by leaf number
    weight = [*weights, *[0] * (n - 1)]
    parent = list(range(2 * n - 1))
    next_leaf, next_merged = 0, n
    for node in range(n, 2 * n - 1):
        for _ in range(2):
            if next_leaf < n and (next_merged == node or weights[leaves[next_leaf]] <= weight[next_merged]):
                child, next_leaf = leaves[next_leaf], next_leaf + 1
            else:
                child, next_merged = next_merged, next_merged + 1
            parent[child] = node
            weight[node] += weight[child]
    depth = [0] * (2 * n - 1)
    for node in range(2 * n - 3, -1, -1):  # parents are numbered after children; the root 2n−2 has depth 0
        depth[node] = depth[parent[node]] + 1
    return depth[:n]


def canonical_codes(lengths: np.ndarray) -> np.ndarray:
    """The codes of lengths listed in canonical order (RFC 1951 §3.2.2): the first
    is 0, each next (previous + 1) << (its length − the previous length)."""
    codes = [0]
    for before, length in zip(lengths[:-1].tolist(), lengths[1:].tolist()):
        codes.append((codes[-1] + 1) << (length - before))
    return np.array(codes[:len(lengths)], np.int64)


def symbol_counts(flat: np.ndarray) -> np.ndarray:
    """Occurrences of each int8 value v at v + 128; an empty tensor counts one 0."""
    counts = np.bincount(flat + 128, minlength=256)
    if not flat.size:
        counts[128] = 1
    return counts


def encode(flat: np.ndarray, lengths: np.ndarray) -> bytes:
    """The payload of `flat` under the code lengths `lengths` (by value + 128:
    code_lengths of its symbol_counts)."""
    present = np.flatnonzero(lengths)
    order = present[np.argsort(lengths[present], kind="stable")]  # by length, then by value
    codes = np.zeros(lengths.size, np.int64)
    codes[order] = canonical_codes(lengths[order])
    reversed_codes = _reversed_bits(MAX_CODE_BITS)[codes] >> (MAX_CODE_BITS - lengths)  # first bit lowest
    records = np.stack([order - 128, lengths[order]], axis=1) & 0xFF  # (symbol, length) rows
    return bytes([order.size - 1]) + records.astype(np.uint8).tobytes() + _pack_codes(
        reversed_codes[flat + 128], lengths[flat + 128])


def _pack_codes(reversed_codes: np.ndarray, lengths: np.ndarray) -> bytes:
    """Codes packed into one LSB-first stream, each most significant bit first,
    zero padding to a byte. A code's bits reversed are the stream's bits from its
    start s upward: ≤ 15 + 7 bits of the bytes ⌊s/8⌋ .. ⌊s/8⌋ + 2, disjoint from
    the other codes', so sums OR them: the codes starting in byte b sum to
    V[b] < 2^22 (exact in float64), and byte b of the stream is the sum of bits
    0..7 of V[b], 8..15 of V[b − 1] and 16..23 of V[b − 2]."""
    starts = np.cumsum(lengths) - lengths
    size = packed_size(int(lengths.sum()), 1)
    by_first_byte = np.bincount(starts >> 3, reversed_codes << (starts & 7), size).astype(np.int64)
    stream = by_first_byte & 0xFF
    stream[1:] += (by_first_byte[:-1] >> 8) & 0xFF
    stream[2:] += (by_first_byte[:-2] >> 16) & 0xFF
    return stream.astype(np.uint8).tobytes()


def decode(data: np.ndarray, code_bits: int, count: int) -> np.ndarray:
    symbols, lengths = _huffman_table(data, code_bits)
    stream = data[1 + 2 * symbols.size:]
    low, high = packed_size(count, int(lengths.min())), packed_size(count, int(lengths.max()))
    if not low <= stream.size <= high:  # also bounds the work below: O(count) and O(payload)
        raise ValueError(f"huffman stream has {stream.size} bytes; {count} codes of {lengths.min()}.."
                         f"{lengths.max()} bits take {low}..{high}")
    record = _code_records(stream, lengths, code_bits, count)
    used = np.bincount(record, minlength=symbols.size).all() if count else (
        symbols.tolist(), lengths.tolist()) == ([0], [1])
    if not used:
        raise ValueError("a huffman symbol never occurs (an empty tensor's table is the one record (0, 1))")
    return symbols[record]


def _huffman_table(data: np.ndarray, code_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """(symbols, lengths) of a huffman payload's records, which it checks."""
    if data.size < 1:
        raise ValueError("huffman payload is empty: it needs at least its symbol count")
    n = int(data[0]) + 1
    if n > 1 << code_bits:
        raise ValueError(f"a huffman code of {n} symbols does not fit {code_bits}-bit codes")
    if data.size < 1 + 2 * n:
        raise ValueError(f"huffman payload of {data.size} bytes is shorter than its {n}-record table")
    records = data[1:1 + 2 * n].reshape(n, 2)
    symbols, lengths = records[:, 0].view(np.int8).astype(np.int64), records[:, 1].astype(np.int64)
    if lengths.min() < 1 or lengths.max() > code_bits:
        raise ValueError(f"a huffman code length is outside 1..{code_bits}: {sorted(set(lengths.tolist()))}")
    if (np.diff(lengths * 256 + symbols) <= 0).any():
        raise ValueError("huffman records are not in canonical order (by length, then by symbol)")
    if np.bincount(symbols + 128, minlength=256).max() > 1:  # (not np.unique: it imports numpy.ma, 8 ms)
        raise ValueError("a huffman symbol has two records")
    kraft = int((1 << (code_bits - lengths)).sum())  # Σ 2^−l in units of 2^−L
    if n == 1 and lengths[0] != 1:
        raise ValueError(f"a single huffman symbol has the 1-bit code \"0\", not a {lengths[0]}-bit one")
    if n > 1 and kraft != 1 << code_bits:
        raise ValueError(f"huffman code lengths are not a complete prefix code: Σ 2^-l = {kraft}/2^{code_bits}")
    return symbols, lengths


def _code_records(stream: np.ndarray, lengths: np.ndarray, code_bits: int, count: int) -> np.ndarray:
    """The record of each of the first `count` codes of `stream`; ValueError if the
    stream ends before them or inside one, a bit string there starts no code, or
    more than zero padding follows them. Vectorized: where a code would start at
    every stream position p, then the true starts by pointer jumping."""
    total = 8 * stream.size
    record_at = _window_records(stream, lengths, code_bits)  # −1: no code starts there
    step = np.append(lengths, 0).take(record_at)  # the code's length, 0 if none
    # following[p]: where the next code starts; a position starting no code or one
    # that runs past the stream (only the last code_bits positions can), and the
    # end `total`, lead to themselves
    following = np.arange(total + 1)
    following[:-1] += step
    tail = following[-code_bits:]
    np.putmask(tail, tail > total, np.arange(total + 1 - tail.size, total + 1))
    starts = _chain(following, count)
    end = 0
    if count:
        last = int(starts[-1])
        if last == total or last + step[last] > total:
            raise ValueError(f"the huffman stream ends before its {count} codes do")
        if step[last] == 0:
            raise ValueError(f"the bits from huffman stream bit {last} start no code")
        end = last + int(step[last])
    expect_length(stream.size, packed_size(end, 1), "huffman stream")
    if end % 8 and stream[-1] >> (end % 8):
        raise ValueError("nonzero padding bits after the last huffman code")
    return record_at[starts]


def _chain(following: np.ndarray, count: int) -> np.ndarray:
    """0, following[0], following[following[0]], …: `count` positions. Pointer
    doubling (J. C. Wyllie, "The Complexity of Parallel Computations", 1979)
    makes `jump` = following applied B times, B = 2^j the least power of two
    with count / B ≤ WALKED_BLOCKS; the starts of the blocks of B positions,
    0, jump[0], jump[jump[0]], …, are walked one by one, and the B positions of
    every block follow from its start in B − 1 steps taken by all blocks at
    once. Cost: j passes over `following` (not log2(count)) and count / B
    scalar steps."""
    if count == 0:
        return np.zeros(0, np.intp)
    step = following.astype(np.intp, copy=False)  # intp: np.take's fastest indices
    jump, block = step, 1
    while -(-count // block) > WALKED_BLOCKS:
        jump, block = np.take(jump, jump), block * 2
    blocks = -(-count // block)
    starts = np.empty((blocks, block), np.intp)
    position = 0
    for b in range(blocks):
        starts[b, 0] = position
        position = int(jump[position])
    for k in range(1, block):
        starts[:, k] = np.take(step, starts[:, k - 1])
    return starts.reshape(-1)[:count]


WALKED_BLOCKS = 2048  # block starts _chain walks in Python (about 0.1 µs each)


def _window_records(stream: np.ndarray, lengths: np.ndarray, code_bits: int) -> np.ndarray:
    """For every stream position p: the record whose code the L = code_bits stream
    bits from p begin with (bits past the end read as 0), or −1 if none does."""
    # Canonical codes, extended by zeros to L bits, count up from 0 in record order:
    # record i owns the 2^(L − l_i) L-bit strings after those of records 0..i−1.
    spans = 1 << (code_bits - lengths)
    by_value = np.full(1 << code_bits, -1, np.int32)  # the L bits read first bit most significant
    by_value[:spans.sum()] = np.repeat(np.arange(lengths.size, dtype=np.int32), spans)
    table = by_value[_reversed_bits(code_bits)]  # the L bits read first bit least significant
    padded = np.concatenate([stream, np.zeros(3, np.uint8)]).astype(np.int32)
    words = (padded[:-3] | padded[1:-2] << 8 | padded[2:-1] << 16)  # 24 stream bits from each byte
    windows = (words[:, None] >> np.arange(8, dtype=np.int32)).reshape(-1)  # from each bit, byte-major
    windows &= (1 << code_bits) - 1
    return table.take(windows)


@functools.lru_cache(maxsize=None)
def _reversed_bits(width: int) -> np.ndarray:
    """0..2^width − 1, each with its `width` bits in reverse order (shared:
    read-only)."""
    index, reversed_ = np.arange(1 << width), np.zeros(1 << width, np.int64)
    for bit in range(width):
        reversed_ |= ((index >> bit) & 1) << (width - 1 - bit)
    reversed_.flags.writeable = False
    return reversed_
