"""az-sim blob mutators (family blob, run as `nnc run model.azb`) and text IR
mutators (family nnir, run as `nnc inspect model.nnir`).

Every byte of a blob is under a CRC32 (docs/blob-format.md), so plain flips
only test the CRC check; the `*-recrc` mutators fix the CRCs after editing, so
the damage reaches the section parsers.
"""

from __future__ import annotations

import random
import re
import struct
import zlib

from .case import Case
from .registry import mutator

HEADER, ENTRY, TABLE = 32, 16, 32
U32_EDGES = [0, 1, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0xFFFF, 1 << 24]


def _blob(rng: random.Random, case: Case) -> bytearray:
    case.as_run(rng)
    return bytearray(case.get("model.azb"))


def fix_crcs(blob: bytearray) -> bytearray:
    """Recompute every section CRC whose range lies in the blob, then the header CRC."""
    count = min(struct.unpack_from("<I", blob, 20)[0], (len(blob) - TABLE) // ENTRY) if len(blob) >= 32 else 0
    for i in range(count):
        at = TABLE + ENTRY * i
        _, offset, length, _ = struct.unpack_from("<4I", blob, at)
        if offset + length <= len(blob):
            struct.pack_into("<I", blob, at + 12, zlib.crc32(bytes(blob[offset:offset + length])))
    if len(blob) >= TABLE + ENTRY * count:
        struct.pack_into("<I", blob, 28, zlib.crc32(bytes(blob[:28] + blob[TABLE:TABLE + ENTRY * count])))
    return blob


def _sections(blob: bytes) -> list[tuple[int, int]]:
    """(offset, length) of each section the header counts (5, or 6 with TILING)."""
    count = struct.unpack_from("<I", blob, 20)[0]
    return [struct.unpack_from("<4I", blob, TABLE + ENTRY * i)[1:3] for i in range(count)]


@mutator("blob")
def blob_flip(rng: random.Random, case: Case) -> Case:
    blob = _blob(rng, case)
    spots = sorted(rng.randrange(len(blob)) for _ in range(rng.randint(1, 4)))
    for spot in spots:
        blob[spot] ^= 1 << rng.randrange(8)
    case.put("model.azb", bytes(blob))
    case.note(f"flipped one bit at blob bytes {spots}")
    return case


@mutator("blob")
def blob_truncate(rng: random.Random, case: Case) -> Case:
    blob = _blob(rng, case)
    size = rng.choice([0, 8, 31, 32, 111, rng.randrange(len(blob))])
    case.put("model.azb", bytes(blob[:size]))
    case.note(f"truncated the blob to {size} of {len(blob)} bytes")
    return case


@mutator("blob")
def blob_replace(rng: random.Random, case: Case) -> Case:
    """Not a blob: an ONNX model, random bytes, text, or a blob with bytes appended."""
    blob = _blob(rng, case)
    kind, data = rng.choice([("onnx", case.seed_model.files["cnn.onnx"]), ("random", rng.randbytes(200)),
                             ("text", b"hello\n"), ("appended", bytes(blob) + rng.randbytes(17)),
                             ("magic only", bytes(blob[:8]))])
    case.put("model.azb", data)
    case.note(f"blob replaced by {kind} bytes")
    return case


@mutator("blob")
def blob_section_recrc(rng: random.Random, case: Case) -> Case:
    """Random bytes changed inside one section, CRCs fixed."""
    blob = _blob(rng, case)
    sections = _sections(blob)
    kind = rng.randrange(len(sections))
    offset, length = sections[kind]
    spots = sorted(offset + rng.randrange(length) for _ in range(rng.randint(1, 6))) if length else []
    for spot in spots:
        blob[spot] = rng.randrange(256)
    case.put("model.azb", bytes(fix_crcs(blob)))
    case.note(f"section {kind + 1}: bytes at {spots} randomized, CRCs fixed")
    return case


@mutator("blob")
def blob_u32_recrc(rng: random.Random, case: Case) -> Case:
    """One little-endian u32 anywhere past the magic set to an edge value, CRCs fixed."""
    blob = _blob(rng, case)
    at = rng.choice([8, 12, 16, 20, 24, *range(TABLE, TABLE + 80, 4), rng.randrange(112, len(blob) - 4)])
    value = rng.choice(U32_EDGES)
    struct.pack_into("<I", blob, at, value)
    case.put("model.azb", bytes(fix_crcs(blob)))
    case.note(f"u32 at blob offset {at} = {value:#x}, CRCs fixed")
    return case


# -- text IR -------------------------------------------------------------------

def _nnir(rng: random.Random, case: Case) -> list[str]:
    case.put("model.nnir", case.corpus.nnir)
    case.as_inspect("model.nnir", rng)
    return case.corpus.nnir.decode().splitlines(keepends=True)


@mutator("nnir")
def nnir_lines(rng: random.Random, case: Case) -> Case:
    lines = _nnir(rng, case)
    how = rng.choice(["delete", "duplicate", "swap", "truncate"])
    i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
    if how == "delete":
        del lines[i]
    elif how == "duplicate":
        lines.insert(i, lines[i])
    elif how == "swap":
        lines[i], lines[j] = lines[j], lines[i]
    else:
        lines[i] = lines[i][:rng.randrange(len(lines[i]) + 1)]
        del lines[i + 1:]
    case.put("model.nnir", "".join(lines))
    case.note(f"text IR line {i}: {how}")
    return case


@mutator("nnir")
def nnir_chars(rng: random.Random, case: Case) -> Case:
    text = bytearray("".join(_nnir(rng, case)).encode())
    spots = sorted(rng.randrange(len(text)) for _ in range(rng.randint(1, 5)))
    for spot in spots:
        text[spot] = rng.choice(b"{}[](),=%\"#:;0123456789xyz \n\xff\x00")
    case.put("model.nnir", bytes(text))
    case.note(f"text IR characters replaced at {spots}")
    return case


@mutator("nnir")
def nnir_numbers(rng: random.Random, case: Case) -> Case:
    """A dim, attribute or constant number replaced by an edge value."""
    text = "".join(_nnir(rng, case))
    numbers = list(re.finditer(r"(?<![\w.])\d+(?![\w.])", text))
    hit = rng.choice(numbers)
    value = rng.choice(["0", "-1", "2147483648", "99999999999999999999", "1e400", "nan", "100000000"])
    case.put("model.nnir", text[:hit.start()] + value + text[hit.end():])
    case.note(f"text IR number {hit.group()!r} at {hit.start()} -> {value}")
    return case


@mutator("nnir")
def nnir_garbage(rng: random.Random, case: Case) -> Case:
    _nnir(rng, case)
    kind, data = rng.choice([("empty", b""), ("binary", rng.randbytes(300)), ("onnx", case.seed_model.files[
        case.seed_model.model]), ("not utf-8", b"graph \"\xff\xfe\" {\n}\n"), ("blob", case.corpus.blob)])
    case.put("model.nnir", data)
    case.note(f"text IR replaced by {kind} bytes")
    return case
