"""The folder where nnc keeps what it can rebuild, to start faster: compiled
jinja2 templates, and values parsed from files (`cached_json`: the az-sim
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


def cached_json(kind: str, source: bytes, build: Callable[[], object]):
    """build(), a value read from `source`: kept as JSON in the cache folder
    `kind` under the hash of `source` and read from there when present. A
    failed read or write is a miss; a value JSON does not give back equal
    (a date, a tuple, NaN) is not kept."""
    folder = cache_folder(kind)
    entry = folder / f"{hashlib.sha256(source).hexdigest()}.json" if folder is not None else None
    if entry is not None:
        try:
            return json.loads(entry.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            pass
    value = build()
    if entry is not None:
        staged = entry.with_name(f".{entry.name}.{os.getpid()}")
        try:
            text = json.dumps(value)
            if json.loads(text) == value:
                staged.write_text(text, encoding="utf-8")
                os.replace(staged, entry)
        except (OSError, TypeError, ValueError):
            staged.unlink(missing_ok=True)
    return value
