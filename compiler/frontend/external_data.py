"""External tensor data: bytes that a model keeps in files beside it.

An initializer whose data_location is EXTERNAL names its bytes with key/value
entries: `location` (a path relative to the model's folder), `offset` and
`length` (decimal byte counts, both optional) and `checksum` (not used). nnc
reads these bytes itself, after validating every entry, and refuses the model
with one ModelError naming the tensor when
- a key is unknown or repeated, a key or value is not UTF-8 text;
- the location is missing, empty, holds a NUL byte, is absolute, resolves
  (symbolic links followed) outside the model's folder, or is not a regular
  file (a folder, a device, a symbolic-link loop);
- offset or length is not a plain decimal number, the offset lies past the end
  of the file, the length differs from what the tensor's dims and data type need,
  or the file ends before those bytes do;
- the tensor's dims pass compiler/limits.py's limits.

Invariant: nnc reads no byte outside the model's folder and, per tensor, only
the bytes its dims and data type need. The tensor leaves with its data in
raw_data and no external entries, as onnx's own loader leaves it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..errors import ModelError
from .model_check import tensor_bytes
from .onnx_proto import TensorProto

KEYS = ("location", "offset", "length", "checksum")
_DECIMAL = re.compile(r"[0-9]{1,30}")


def load_external_data(model, folder: Path) -> None:
    """Read the external data of every initializer of `model` from files in
    `folder` into its raw_data (see the module docstring)."""
    for tensor in model.graph.initializer:
        if tensor.data_location == TensorProto.EXTERNAL:
            _load_tensor(tensor, folder)


def _load_tensor(tensor, folder: Path) -> None:
    where = f"initializer {tensor.name!r}"
    entries = _entries(tensor, where)
    need = tensor_bytes(tensor, where)
    location = entries.get("location", "")
    path = _data_file(location, folder, where)
    offset, length = _number(entries, "offset", where) or 0, _number(entries, "length", where)
    if length is not None and length != need:
        raise ModelError(f"{where}: external data length {length} differs from the {need} bytes that dims "
                         f"{list(tensor.dims)} of {TensorProto.DataType.Name(tensor.data_type)} need")
    data = _read(path, offset, need, f"{where}: external data {location!r}")
    del tensor.external_data[:]
    tensor.data_location = TensorProto.DEFAULT
    tensor.raw_data = data


def _read(path: Path, offset: int, count: int, what: str) -> bytes:
    """Bytes offset .. offset + count of the file; ModelError if it ends before."""
    try:
        size = path.stat().st_size
        if offset + count > size:
            raise ModelError(f"{what}: offset {offset} + {count} bytes reaches past the end of the "
                             f"file ({size} bytes)")
        with open(path, "rb") as file:
            file.seek(offset)
            return file.read(count)
    except OSError as exc:
        raise ModelError(f"{what}: cannot read the file: {exc.strerror}") from None


def _entries(tensor, where: str) -> dict[str, str]:
    entries: dict[str, str] = {}
    for entry in tensor.external_data:
        key, value = entry.key, entry.value
        if isinstance(key, bytes) or isinstance(value, bytes):
            raise ModelError(f"{where}: an external data entry is not valid UTF-8 text")
        if key not in KEYS:
            raise ModelError(f"{where}: unknown external data key {key!r} (expected {', '.join(KEYS)})")
        if key in entries:
            raise ModelError(f"{where}: external data key {key!r} appears twice")
        entries[key] = value
    return entries


def _data_file(location: str, folder: Path, where: str) -> Path:
    """The regular file `location` names inside `folder`; ModelError otherwise."""
    if not location or "\0" in location:
        raise ModelError(f"{where}: external data location {location!r} names no file")
    if os.path.isabs(location):
        raise ModelError(f"{where}: external data location {location!r} is absolute; it must be a "
                         "path inside the model's folder")
    try:
        base = folder.resolve(strict=True)
        target = (folder / location).resolve()
        regular = target.is_file()
    except RuntimeError:  # a symbolic-link loop (Python < 3.13 raises RuntimeError)
        raise ModelError(f"{where}: external data location {location!r} is a symbolic-link loop") from None
    except OSError as exc:
        raise ModelError(f"{where}: external data location {location!r} cannot be resolved: "
                         f"{exc.strerror}") from None
    if base not in target.parents:
        raise ModelError(f"{where}: external data {location!r} is outside the model's folder")
    if not regular:
        raise ModelError(f"{where}: external data {location!r} is missing or not a regular file")
    return target


def _number(entries: dict[str, str], key: str, where: str) -> int | None:
    if key not in entries:
        return None
    value = entries[key]
    if not _DECIMAL.fullmatch(value):
        raise ModelError(f"{where}: external data {key} {value!r} is not a decimal byte count")
    return int(value)
