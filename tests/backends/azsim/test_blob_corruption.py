"""Corrupted blobs, seeded: every bit of the header and section table flipped,
single-byte flips anywhere, truncations at every length class, overwrites of
1-16 random bytes and appended bytes, on real blobs (kws, ad, sww) and a
hand-built one. Each case must raise BlobError (the CLI's exit 2) and nothing
else. Structural mutations of one section with its CRCs recomputed get past the
CRCs into the record parser and the cross-reference checks: each must raise
BlobError or yield a program whose blob is the mutated blob itself (the reader
only accepts canonical blobs). A read that takes over HANG_SECONDS counts as a
hang (a guard, not a speed requirement)."""

from __future__ import annotations

import random
import signal
import struct
from contextlib import contextmanager

import pytest
from mlperf import MODEL_NAMES
from test_blob import HEADER, assemble, integer_program, sections, tiny_program

import nnc
from nnc.backends.azsim.blob import ENTRY, SECTIONS, read_blob, write_blob

SEED = 20240611
REAL = [name for name in ("kws_dscnn_int8_qdq", "ad_autoencoder_int8_qdq", "sww_int8_qdq") if name in MODEL_NAMES]
FLIPS, OVERWRITES, RANDOM_CUTS, RESEALED = 1500, 1000, 200, 300
HANG_SECONDS = 20
UNTILED_SECTIONS = 5  # a blob without tiling (the models here) has no TILING section
TABLE_END = HEADER.size + ENTRY.size * UNTILED_SECTIONS


class Hang(Exception):
    pass


@contextmanager
def hang_guard():
    def alarm(signum, frame):
        raise Hang(f"read_blob ran for more than {HANG_SECONDS} s")

    if not hasattr(signal, "setitimer"):
        yield
        return
    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, HANG_SECONDS)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def outcome(data: bytes) -> str | None:
    """None if reading `data` raises BlobError, else what happened instead."""
    try:
        with hang_guard():
            read_blob(data)
    except nnc.BlobError:
        return None
    except Exception as exc:  # noqa: BLE001 - anything else is the bug this test looks for
        return f"{type(exc).__name__}: {exc}"
    return "accepted"


@pytest.fixture(scope="module", params=["tiny", *REAL])
def blob(request) -> bytes:
    return write_blob(tiny_program() if request.param == "tiny" else integer_program(request.param))


def flips(blob: bytes, rng: random.Random):
    """Every bit of header and table, then FLIPS random bytes XORed with 1..255."""
    for pos in range(TABLE_END):
        for bit in range(8):
            yield f"flip bit {bit} at {pos}", pos, bytes([blob[pos] ^ 1 << bit])
    for _ in range(FLIPS):
        pos = rng.randrange(len(blob))
        yield f"xor at {pos}", pos, bytes([blob[pos] ^ rng.randrange(1, 256)])


def overwrites(blob: bytes, rng: random.Random):
    for _ in range(OVERWRITES):
        n = rng.randint(1, 16)
        pos = rng.randrange(len(blob) - n + 1)
        new = bytes(rng.randrange(256) for _ in range(n))
        if new != blob[pos:pos + n]:
            yield f"overwrite {n} at {pos}", pos, new


def cut_lengths(blob: bytes, rng: random.Random) -> list[int]:
    """Every length through the table, each section boundary ±1, random lengths."""
    lengths = set(range(TABLE_END + 2))
    for i in range(UNTILED_SECTIONS):
        _, offset, length, _ = ENTRY.unpack_from(blob, HEADER.size + ENTRY.size * i)
        lengths |= {offset - 1, offset + 1, offset + length - 1, offset + length // 2}
    lengths |= {rng.randrange(len(blob)) for _ in range(RANDOM_CUTS)}
    return sorted(n for n in lengths if 0 <= n < len(blob))


def check_all(cases) -> int:
    failures, count = [], 0
    for what, data in cases:
        count += 1
        result = outcome(data)
        if result is not None:
            failures.append(f"{what}: {result}")
    assert not failures, f"{len(failures)} of {count} cases did not raise BlobError: {failures[:5]}"
    return count


def test_byte_flips_and_overwrites(blob):
    rng = random.Random(SEED)
    mutations = [*flips(blob, rng), *overwrites(blob, rng)]
    cases = ((what, blob[:pos] + new + blob[pos + len(new):]) for what, pos, new in mutations)
    assert check_all(cases) >= FLIPS


def test_truncations_and_extensions(blob):
    rng = random.Random(SEED + 1)
    cases = [(f"cut to {n}", blob[:n]) for n in cut_lengths(blob, rng)]
    cases += [(f"append {n}", blob + bytes(rng.randrange(256) for _ in range(n))) for n in (1, 4, 16, 1000)]
    assert check_all(cases) > TABLE_END


def mutate(body: bytes, rng: random.Random) -> bytes:
    """One structural change: a bit flip, an overwrite, a cut, an insertion or a deletion."""
    if not body:
        return bytes([rng.randrange(256)])
    pos, n, kind = rng.randrange(len(body)), rng.randint(1, 8), rng.randrange(5)
    junk = bytes(rng.randrange(256) for _ in range(n))
    return [body[:pos] + bytes([body[pos] ^ 1 << rng.randrange(8)]) + body[pos + 1:],
            body[:pos] + junk + body[pos + n:], body[:pos], body[:pos] + junk + body[pos:],
            body[:pos] + body[pos + n:]][kind]


def test_resealed_structural_mutations(blob):
    rng = random.Random(SEED + 2)
    bodies, failures, version = sections(blob), [], struct.unpack_from("<I", blob, 8)[0]
    for case in range(RESEALED):
        kind = rng.randrange(len(bodies))
        mutated = list(bodies)
        mutated[kind] = mutate(bodies[kind], rng)
        data = assemble(mutated, version)
        result = outcome(data)
        if result == "accepted" and write_blob(read_blob(data)) != data:
            result = "accepted a blob that is not canonical"
        if result not in (None, "accepted"):
            failures.append(f"case {case} ({SECTIONS[kind + 1]}): {result}")
    assert not failures, failures[:5]
