"""The file `nnc run -o FILE` writes: checked before the run, written atomically.

- `check` runs before the simulation: FILE must end in .npz, must not be a
  folder, nor the blob or the inputs file being read, and its parent must be a
  folder or not exist yet.
- An existing FILE is replaced only when it is an earlier result: an .npz
  archive holding exactly the arrays the run writes (same names). Any other
  file is the user's, and nnc refuses (OptionError) rather than overwrite it.
- `write_npz` creates missing parent folders (with the umask's mode), writes the
  arrays into a temporary file beside FILE (`.NAME.<pid>.<random>.partial`,
  mode 0666 minus the umask) and renames it over FILE. On any failure, Ctrl-C
  and SIGTERM included, the temporary file and the folders it created are
  removed: FILE is either the old file or the complete new one.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

from .errors import OptionError


def check(path: Path, *reads: str | Path) -> None:
    """OptionError, before anything runs, unless `path` can receive the outputs."""
    if str(path) in ("", "."):
        raise OptionError("-o names no file; give the .npz file to write")
    if path.is_dir():
        raise OptionError(f"-o {path}: is a folder; give the .npz file to write")
    for read in reads:
        if _same_file(path, Path(read)):
            raise OptionError(f"-o {path}: is the file nnc reads ({read}); give another file")
    parent = _existing_ancestor(path.parent)
    if not parent.is_dir():
        raise OptionError(f"-o {path}: {parent} is not a folder")
    if (path.exists() or path.is_symlink()) and _npz_names(path) is None:
        raise _not_ours(path)
    if path.suffix != ".npz":  # also `-o out/`, which the command line hands over as "out"
        raise OptionError(f"-o {path}: the outputs are an .npz archive; give a file name ending in .npz")


def _not_ours(path: Path) -> OptionError:
    return OptionError(f"-o {path}: exists and is not an earlier `nnc run` result of this model; "
                       "nnc will not overwrite it, so move it away or give another file")


def _npz_names(path: Path) -> set[str] | None:
    """The array names of the .npz archive at `path` (a regular file); None when
    it is anything else."""
    if path.is_symlink() or not path.is_file():
        return None
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.namelist()
    except (OSError, zipfile.BadZipFile):
        return None
    if not all(member.endswith(".npy") for member in members):
        return None
    return {member[:-len(".npy")] for member in members}


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """`arrays` as an .npz file at `path`, atomically (see the module docstring)."""
    if (path.exists() or path.is_symlink()) and _npz_names(path) != set(arrays):
        raise _not_ours(path)
    created = _make_parents(path.parent)
    partial = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.partial")
    try:
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as exc:
        _remove_folders(created)
        raise OptionError(f"-o {path}: cannot write there ({exc.strerror or exc})") from None
    try:
        with os.fdopen(descriptor, "wb") as handle:
            np.savez(handle, **arrays)
        os.replace(partial, path)
    except BaseException as exc:
        partial.unlink(missing_ok=True)
        _remove_folders(created)
        if isinstance(exc, OSError):
            raise OptionError(f"-o {path}: cannot write there ({exc.strerror or exc})") from None
        raise


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and a.samefile(b)
    except OSError:
        return False


def _existing_ancestor(folder: Path) -> Path:
    """`folder`, or its nearest ancestor that exists."""
    folder = folder.absolute()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def _make_parents(folder: Path) -> list[Path]:
    """Create `folder` and its missing parents; the ones created, outermost first."""
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    created = []
    try:
        for folder in reversed(missing):
            try:
                folder.mkdir()  # mode 0777 minus the umask
            except FileExistsError:  # made meanwhile by someone else: not ours to remove
                continue
            created.append(folder)
    except OSError as exc:
        _remove_folders(created)
        raise OptionError(f"-o: cannot create folder {folder} ({exc.strerror or exc})") from None
    return created


def _remove_folders(created: list[Path]) -> None:
    for folder in reversed(created):
        try:
            folder.rmdir()
        except OSError:
            return
