"""The jinja2 environment the C target's templates render in, with compiled
templates cached between runs.

Compiling a template is most of what a small compile costs once the model is
read (about 0.1 s for the twenty of a C target); jinja2's bytecode cache keeps
each template's compiled code in the user cache (user_cache.py), keyed by the
template's name and checked against a hash of its source, so an edited
template is compiled again. A failed read or write of an entry counts as a
miss.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable

import jinja2
from jinja2.bccache import Bucket

from .user_cache import cache_folder


class _BestEffortCache(jinja2.FileSystemBytecodeCache):
    """A file cache whose failed reads and writes count as misses."""

    def load_bytecode(self, bucket: Bucket) -> None:
        try:
            super().load_bytecode(bucket)
        except (OSError, EOFError, ValueError):
            bucket.reset()

    def dump_bytecode(self, bucket: Bucket) -> None:
        try:
            super().dump_bytecode(bucket)
        except OSError:
            pass


# Block tags leave no blank lines, files keep their final newline.
_SETTINGS = {"trim_blocks": True, "lstrip_blocks": True, "keep_trailing_newline": True}


def _bytecode_cache(settings: dict) -> jinja2.BytecodeCache | None:
    """A cache per jinja2 version, Python version and environment settings
    (compiled code depends on all three; jinja2 checks only the source and
    refuses, then overwrites, another Python's entries)."""
    digest = hashlib.sha256(repr(sorted(settings.items())).encode()).hexdigest()[:12]
    folder = cache_folder(f"jinja2-{jinja2.__version__}-py{sys.version_info[0]}{sys.version_info[1]}-{digest}")
    return _BestEffortCache(str(folder)) if folder else None


def environment(source: Callable[[str], str]) -> jinja2.Environment:
    """An environment loading templates by name through `source`, in which
    undefined names are errors (C text: nothing is escaped)."""
    settings = {**_SETTINGS, "autoescape": False}
    return jinja2.Environment(loader=jinja2.FunctionLoader(source), undefined=jinja2.StrictUndefined,
                              bytecode_cache=_bytecode_cache(settings), **settings)
