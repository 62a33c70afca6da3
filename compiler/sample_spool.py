"""An iterable of samples read once, held by the page cache past a size.

`spool(items, what, as_array)` reads an iterable of samples (each a {name:
array} dict, or each one array under the name "") one at a time and returns
{name: array [count, *sample shape]}. While the samples read so far total at
most SPILL_BYTES they are copied as they come (a generator may reuse one
buffer for every sample) and stacked at the end (np.stack's result, dtypes
promoted as it promotes them). Past that, each name's samples
go to an unnamed temporary file (removed by the system when the last reference
goes, also when nnc is killed) that is then memory-mapped copy-on-write: an
iterable larger than memory is read once, and its samples are paged in from
disk as a compile reads them. A spilled name keeps the dtype its samples had
when it spilled; a later sample must cast to it safely.

Invariants: the result is the same (values, shapes, dtypes) whether or not it
spilled, for samples of one dtype; every item names the same inputs with the
same shapes, or ShapeError names the first item that does not.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from .errors import OptionError, ShapeError
from .limits import check_elements

# Samples held in memory before they go to temporary files (docs/limits.md).
SPILL_BYTES = 256 * 2**20


def spill_file(what: str):
    """An unnamed temporary file for samples (gone when closed, also when nnc is
    killed); OptionError naming `what` and TMPDIR if none can be made."""
    import tempfile  # 1 ms of imports, for compiles given this many samples only

    try:
        return tempfile.TemporaryFile(prefix="nnc-samples-")
    except OSError as exc:
        raise OptionError(f"{what}: cannot create a temporary file for the samples "
                          f"({exc.strerror or exc}); set TMPDIR to a writable folder") from None


def write_spilled(file, data, what: str) -> None:
    """Append `data` (bytes-like) to a spill file; OptionError if the disk refuses."""
    try:
        file.write(data)
    except OSError as exc:
        import tempfile

        raise OptionError(f"{what}: cannot write the samples to a temporary file in {tempfile.gettempdir()} "
                          f"({exc.strerror or exc}); set TMPDIR to a folder with room for them") from None


def mapped_spill(file, dtype, shape, order: str = "C") -> np.memmap:
    """The samples written to spill `file`, mapped copy-on-write; the file is
    closed (the mapping holds its own reference to it)."""
    file.flush()
    mapped = np.memmap(file, dtype, mode="c", shape=shape, order=order)
    file.close()
    return mapped


class _Column:
    """One name's samples: kept in memory, or appended to a temporary file."""

    def __init__(self, what: str):
        self.what = what
        self.kept: list[np.ndarray] = []
        self.file = None  # the temporary file, once spilled
        self.shape: tuple[int, ...] | None = None  # sample 0's
        self.dtype: np.dtype | None = None  # the file's
        self.count = 0

    def add(self, array: np.ndarray, index: int) -> None:
        if self.shape is None:
            check_elements(array.shape, self.what)
            self.shape = array.shape
        elif array.shape != self.shape:
            raise ShapeError(f"{self.what}: sample {index} has shape {list(array.shape)}, sample 0 "
                             f"{list(self.shape)}; every sample must have the same shape")
        self.count += 1
        if self.file is None:
            self.kept.append(np.array(array, copy=True))
        else:
            self._write(array, index)

    def spill(self) -> None:
        """Move the kept samples to a temporary file; later ones are appended to it."""
        self.dtype = np.result_type(*{a.dtype for a in self.kept})
        self.file = spill_file(self.what)
        kept, self.kept = self.kept, []
        for index, array in enumerate(kept):
            self._write(array, index)

    def _write(self, array: np.ndarray, index: int) -> None:
        if not np.can_cast(array.dtype, self.dtype, "safe"):
            raise ShapeError(f"{self.what}: sample {index} is {array.dtype}, earlier samples {self.dtype}; "
                             "give every sample the same dtype")
        data = np.ascontiguousarray(array, dtype=self.dtype)
        write_spilled(self.file, memoryview(data.reshape(-1)).cast("B"), self.what)

    def array(self) -> np.ndarray:
        if self.file is None:
            return np.stack(self.kept)
        return mapped_spill(self.file, self.dtype, (self.count, *self.shape))


def spool(items: Iterable, what: str, as_array) -> dict[str, np.ndarray]:
    """{name: array [count, *shape]} of the samples in `items` (see the module
    docstring); `as_array(value, where)` turns one item's value into an array.
    ShapeError naming `what` for an empty iterable or mismatched items."""
    columns: dict[str, _Column] = {}
    names, dicts, held = None, None, 0
    for index, item in enumerate(items):
        is_dict = isinstance(item, Mapping)
        if dicts is None:
            dicts = is_dict
            names = [str(n) for n in item] if is_dict else [""]
            columns = {name: _Column(what if name == "" else f"{what}: array {name!r}") for name in names}
        if is_dict != dicts:
            raise ShapeError(f"{what}: the iterable of samples mixes dicts with other items (item {index} is a "
                             f"{type(item).__name__}); give every sample as a dict of arrays, or every one as an "
                             "array")
        if is_dict and [str(n) for n in item] != names:
            raise ShapeError(f"{what}: every sample must name the same inputs ({names}); item {index} names "
                             f"{[str(n) for n in item]}")
        values = item.values() if is_dict else [item]
        for name, value in zip(names, values):
            column = columns[name]
            array = as_array(value, column.what)
            column.add(array, index)
            held += array.nbytes if column.file is None else 0
        if held > SPILL_BYTES:
            for column in columns.values():
                if column.file is None:
                    column.spill()
            held = 0
    if dicts is None:
        raise ShapeError(f"{what}: the iterable of samples holds no sample")
    return {name: column.array() for name, column in columns.items()}
