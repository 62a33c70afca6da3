"""Spelling values and names in C: literals that read back bit-exactly, array
bodies, identifiers made from ONNX names, and text safe inside comments.

An array of 8-bit integers of STRING_MIN_BYTES or more (a layer's weights) is
initialized by a string literal of \\xHH escapes, not a brace list: gcc parses it
about 14 times faster (4 MB of int8: 0.36 s against 5.2 s at -O2) and the text
is a third smaller. The literal has no room for a terminating NUL (C99 6.7.8p14
allows that) and is longer than the 4095 characters C99 compilers must accept;
weights.h tells GCC and Clang not to warn about either.

ONNX names can hold `/ ; :` and run to 300 characters: identifiers keep a short,
sanitised tail and get a numeric prefix or suffix for uniqueness; the full name
goes into a comment, where `comment` breaks `*/`, `/*` and `??` (a trigraph in
strict C99) and escapes anything outside printable ASCII.
"""

from __future__ import annotations

import functools
import re

import numpy as np

C_KEYWORDS = frozenset("""auto break case char const continue default do double else enum extern float
for goto if inline int long register restrict return short signed sizeof static struct switch typedef
union unsigned void volatile while _Bool _Complex _Imaginary""".split())


def float_literal(value) -> str:
    """A float32 C literal that reads back to exactly `value` as float32 (see
    float_literals)."""
    return float_literals(np.array([value]))[0]


def float_literals(values: np.ndarray) -> list[str]:
    """Float32 C literals of `values`, each reading back to exactly its value as
    float32: numpy's str of the float32 (the shortest round-tripping decimal,
    Steele & White / dragon4, positional or with an exponent as numpy chooses:
    0.1, 1e-05, 1.2345679e+08) with an `f` suffix; INFINITY, -INFINITY and NAN
    (math.h) otherwise. The digits come from numpy's array conversion, not one
    Python call per value."""
    flat = np.asarray(values, np.float32).reshape(-1)
    spelled = [f"{digits}f" for digits in flat.astype(str).tolist()]
    for i in np.flatnonzero(~np.isfinite(flat)).tolist():
        spelled[i] = "NAN" if np.isnan(flat[i]) else "INFINITY" if flat[i] > 0 else "-INFINITY"
    return spelled


def int_literal(value: int) -> str:
    """An integer literal valid for int32 and int64 (INT64_MIN cannot be written directly)."""
    value = int(value)
    if value == -(1 << 63):
        return "INT64_MIN"
    if value == -(1 << 31):
        return "(-2147483647 - 1)"
    if value > 0x7FFFFFFF or value < -0x7FFFFFFF:
        return f"INT64_C({value})"
    return str(value)


def literal(value, dtype: str) -> str:
    return float_literal(value) if dtype in ("f32", "f64") else int_literal(value)


def array_body(values: np.ndarray, dtype: str, per_line: int | None = None) -> list[str]:
    """Lines of a brace initializer's contents (without the braces), each
    indented by four spaces and ending with a comma."""
    flat = np.asarray(values).reshape(-1)
    floats = dtype in ("f32", "f64")
    if per_line is None:
        per_line = 8 if floats else 16
    low, high = (int(flat.min()), int(flat.max())) if flat.size and not floats else (0, 0)
    int32 = -0x7FFFFFFF <= low and high <= 0x7FFFFFFF
    if not floats and flat.size and high - low < TABLED_RANGE and int32:
        return _tabled_body(flat.astype(np.int64), per_line, low, high)
    if floats:
        items = float_literals(flat)
    elif int32:
        items = list(map(str, flat.tolist()))  # int_literal's spelling of every value in this range, at C speed
    else:
        items = [int_literal(v) for v in flat.tolist()]
    return ["    " + ", ".join(items[i:i + per_line]) + "," for i in range(0, len(items), per_line)]


STRING_MIN_BYTES = 4096  # 8-bit arrays this long are string literals (module docstring)
_ESCAPES = np.array([f"\\x{b:02x}".encode() for b in range(256)], dtype="S4")


def is_string_array(values: np.ndarray, dtype: str) -> bool:
    return dtype in ("i8", "u8") and values.size >= STRING_MIN_BYTES


def string_body(values: np.ndarray, per_line: int = 64) -> list[str]:
    """Lines of a string-literal initializer of 8-bit `values`: each byte as
    \\xHH (never followed by a hex digit, so never misread), `per_line` bytes
    per line, the lines' literals concatenated by the compiler."""
    text = _ESCAPES[np.ascontiguousarray(values).reshape(-1).view(np.uint8)].tobytes().decode("ascii")
    step = 4 * per_line  # every escape is 4 characters
    return [f'    "{text[i:i + step]}"' for i in range(0, len(text), step)]


TABLED_RANGE = 1024  # integer arrays spanning fewer values are printed through a table of their spellings


def _tabled_body(flat: np.ndarray, per_line: int, low: int, high: int) -> list[str]:
    """array_body of integers spanning few values (weights, int8 data; `low` and
    `high` their least and greatest), in right-aligned columns: each value's
    field " <value>," is looked up in a table of the range's spellings, and the
    lines are cut from one byte string."""
    fields = _spellings(low, high)
    width = fields.itemsize
    lines = -(-flat.size // per_line)
    grid = np.full(lines * per_line, b" " * width, dtype=f"S{width}")
    grid[:flat.size] = fields[flat - low]
    rows = np.empty((lines, 3 + per_line * width + 1), np.uint8)
    rows[:, :3] = ord(" ")
    rows[:, 3:-1] = grid.view(np.uint8).reshape(lines, -1)
    rows[:, -1] = ord("\n")
    text = rows.tobytes().decode("ascii").splitlines()
    if flat.size % per_line:
        text[-1] = text[-1].rstrip()
    return text


@functools.lru_cache(maxsize=64)
def _spellings(low: int, high: int) -> np.ndarray:
    """The fields " <value>," of low..high, right-aligned to one width (shared: read-only)."""
    width = max(len(str(low)), len(str(high))) + 2
    fields = np.array([f" {v:>{width - 2}},".encode() for v in range(low, high + 1)], dtype=f"S{width}")
    fields.flags.writeable = False
    return fields


def identifier(name: str, limit: int = 24) -> str:
    """A short valid C identifier hinting at `name` (not unique by itself): the
    part before the first ';' (TF names list fused ops there), its last two path
    components, non-alphanumerics collapsed to '_', the tail kept."""
    head = name.split(";")[0]
    parts = [p for p in re.split(r"[/:]", head) if p]
    text = "_".join(parts[-2:]) if parts else head
    text = re.sub(r"[^A-Za-z0-9_]+", "_", text).strip("_")
    if len(text) > limit:
        text = text[-limit:]
        text = text.split("_", 1)[1] if "_" in text[:-1] else text
    text = text.strip("_") or "t"
    if text[0].isdigit():
        text = "n" + text
    return text


class Names:
    """Hands out unique identifiers: `take("conv")` gives conv, conv_2, ...;
    C keywords and reserved names are avoided."""

    def __init__(self, reserved=()):
        self.used = set(C_KEYWORDS) | set(reserved)

    def take(self, base: str) -> str:
        candidate, i = base, 1
        while candidate in self.used or candidate.startswith("__"):
            i += 1
            candidate = f"{base}_{i}"
        self.used.add(candidate)
        return candidate


def comment(text: str, limit: int = 400) -> str:
    """`text` made safe inside a /* */ comment on one line."""
    head = text[:limit]
    safe = head if head.isascii() and head.isprintable() else "".join(
        ch if 32 <= ord(ch) < 127 else ch.encode("unicode_escape").decode("ascii") for ch in head)
    if len(text) > limit:
        safe += "..."
    while "*/" in safe or "/*" in safe or "??" in safe:
        safe = safe.replace("*/", "* /").replace("/*", "/ *").replace("??", "? ?")
    return safe


def string_literal(text: str) -> str:
    """A C string literal of `text` (ASCII, escapes for anything else, no trigraphs)."""
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "?":
            out.append("\\?")
        elif 32 <= ord(ch) < 127:
            out.append(ch)
        else:
            out.append("".join(f"\\{b:03o}" for b in ch.encode("utf-8")))
    return '"' + "".join(out) + '"'
