"""The folder where nnc keeps what it can rebuild, to start faster: compiled
templates (template_env.py), and values parsed from files (`cached_json`: the az-sim
hardware descriptions' TOML, whose parser's import alone costs 3 ms).

$NNC_CACHE_DIR, else $XDG_CACHE_HOME/nnc, else ~/.cache/nnc; an empty
NNC_CACHE_DIR turns caching off. Every entry is checked against what it was
built from (a hash of the source, the library's version) before use, and a
folder that cannot be created or written means no cache: the cache changes how
fast nnc starts, never what it writes.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path


def cache_folder(kind: str) -> Path | None:
    """The writable folder for cache entries of `kind` (created), or None."""
    configured = os.environ.get("NNC_CACHE_DIR")
    if configured is not None:
        if not configured:
            return None
        base = Path(configured)
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        try:
            base = Path(xdg) / "nnc" if xdg else Path.home() / ".cache" / "nnc"
        except (RuntimeError, KeyError):  # no HOME and no passwd entry: no home folder to cache in
            return None
    folder = base / kind
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return folder if os.access(folder, os.W_OK | os.X_OK) else None


def read_entry(kind: str, name: str) -> bytes | None:
    """The bytes of cache entry `name` of `kind`, or None (no cache, no entry, unreadable)."""
    folder = cache_folder(kind)
    if folder is None:
        return None
    try:
        return (folder / name).read_bytes()
    except OSError:
        return None


def write_entry(kind: str, name: str, data: bytes) -> None:
    """Keep `data` as cache entry `name` of `kind`, whole or not at all (written
    beside it, then renamed over it); a failed write is ignored."""
    folder = cache_folder(kind)
    if folder is None:
        return
    staged = folder / f".{name}.{os.getpid()}"
    try:
        staged.write_bytes(data)
        os.replace(staged, folder / name)
    except OSError:
        staged.unlink(missing_ok=True)


def cached_json(kind: str, source: bytes, build: Callable[[], object]):
    """build(), a value read from `source`: kept as JSON in the cache folder
    `kind` under the hash of `source` and read from there when present. A
    failed read or write is a miss; a value JSON does not give back equal
    (a date, a tuple, NaN) is not kept."""
    name = f"{hashlib.sha256(source).hexdigest()}.json"
    data = read_entry(kind, name)
    if data is not None:
        try:
            return json.loads(data.decode("utf-8"))
        except ValueError:  # UnicodeDecodeError among them
            pass
    value = build()
    try:
        text = json.dumps(value)
        kept = json.loads(text) == value
    except (TypeError, ValueError):
        kept = False
    if kept:
        write_entry(kind, name, text.encode("utf-8"))
    return value
