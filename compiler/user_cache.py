"""The folder where nnc keeps what it can rebuild, to start faster: compiled
jinja2 templates.

$NNC_CACHE_DIR, else $XDG_CACHE_HOME/nnc, else ~/.cache/nnc; an empty
NNC_CACHE_DIR turns caching off. Every entry is checked against what it was
built from (a hash of the source, the library's version) before use, and a
folder that cannot be created or written means no cache: the cache changes how
fast nnc starts, never what it writes.
"""

from __future__ import annotations

import os
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
