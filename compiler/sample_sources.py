"""Samples given in memory instead of as files: `calib=`, `inputs=` and
`labels=` of nnc.compile / nnc.validate take a path, a dict of arrays, one
array, or an iterable of dicts (one sample each) or of arrays.

Everything in nnc reads samples through verification.read_arrays, by path; a
compile given arrays registers them, for the current thread and for as long as
the compile runs, under a fixed token ("<calib arrays>"), which then stands in
for the path — also in the pipeline string the report records, so a report
never names a temporary file and two compiles of the same arrays write the same
bytes. An iterable is read once into one batch per input name, held in
memory up to a size and in a memory-mapped temporary file past it
(sample_spool.py).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Mapping
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .errors import ShapeError
from .limits import check_sample_elements

_REGISTERED = threading.local()
WHAT_TO_GIVE = "give a path, a dict of arrays, an array or an iterable of dicts"
# What the arrays of each kind must be, as errors state it.
DTYPE_RULES = {"samples": "samples are bool, integer or float arrays",
               "labels": "labels are class ids or one-hot rows: bool, integer or float arrays"}


def registered(token: str) -> dict[str, np.ndarray] | None:
    """The arrays registered under `token` in this thread, or None."""
    return getattr(_REGISTERED, "arrays", {}).get(token)


def as_arrays(source, what: str) -> dict[str, np.ndarray]:
    """{name: array} of an in-memory `source` ("" for a lone array: an ndarray,
    anything with __array__ such as a CPU tensor, or an iterable of arrays or
    numbers stacked); ShapeError naming `what` for anything else."""
    if isinstance(source, np.ndarray) or hasattr(source, "__array__"):
        return {"": _array(source, what)}
    if isinstance(source, Mapping):
        return {str(name): _array(value, f"{what}: array {name!r}") for name, value in source.items()}
    if isinstance(source, Iterable) and not isinstance(source, (str, bytes)):
        from .sample_spool import spool  # an iterable of samples only

        return spool(source, what, _array)
    raise ShapeError(f"{what}: {WHAT_TO_GIVE}, not {type(source).__name__}")


def _array(value, what: str) -> np.ndarray:
    try:
        return np.asarray(value)
    except (ValueError, TypeError, RuntimeError) as exc:
        raise ShapeError(f"{what}: not an array ({exc})") from None


def _checked(arrays: dict[str, np.ndarray], what: str) -> dict[str, np.ndarray]:
    """The arrays, or ShapeError unless each is bool, integer or float within limits."""
    rule = DTYPE_RULES["labels" if what == "labels" else "samples"]
    for name, array in arrays.items():
        if array.dtype.kind not in "biuf" or array.dtype.fields is not None:
            raise ShapeError(f"{what}: array {name!r} has dtype {array.dtype}; {rule}")
        check_sample_elements(array.shape, f"{what}: array {name!r}")
    return arrays


@contextmanager
def in_memory(**sources):
    """Yield {option: path or token} for the given options (None stays None):
    paths unchanged, in-memory data registered under "<option arrays>"."""
    previous = dict(getattr(_REGISTERED, "arrays", {}))
    found, registry = {}, dict(previous)
    for option, source in sources.items():
        if source is None or isinstance(source, (str, os.PathLike)):
            found[option] = source if source is None or isinstance(source, (str, Path)) else Path(os.fspath(source))
            continue
        token = f"<{option} arrays>"
        registry[token] = _checked(as_arrays(source, option), option)
        found[option] = token
    _REGISTERED.arrays = registry
    try:
        yield found
    finally:
        _REGISTERED.arrays = previous
