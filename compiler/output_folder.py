"""The output folder of a compile: written whole or not at all, and nothing in it
that nnc did not write is ever removed or overwritten.

Invariants:
- Every output folder holds MANIFEST (`nnc-manifest.json`): the relative path and
  SHA-256 of each file nnc wrote there. It is the only proof of ownership nnc
  accepts (an older report.json proves nothing).
- `-o` is refused before any work, with OptionError and nothing touched, when it
  is empty, `.`, the current folder or an ancestor of it, the model's folder or
  an ancestor of it, a symbolic link, a file, or a non-empty folder without a
  valid manifest; and when a file the manifest lists was changed or replaced
  since nnc wrote it (one the user deleted protects nothing and is no obstacle).
  A `-o` that cannot be created (below a file, on a read-only or virtual file
  system) is an OptionError too.
- At commit, under the lock and before anything in `-o` changes, every path
  the new output writes (and each folder on the way to it) must be free or one
  of the earlier output's own files: a user's file or folder of the same name
  makes the commit an OptionError with `-o` untouched.
- The artifacts are built in a hidden staging folder beside `-o`; nothing
  reaches `-o` until the whole compile, verification included, succeeded. Any
  failure or interruption (KeyboardInterrupt, and SIGTERM once the CLI turned it
  into one) removes the staging folder.
- Commits into one folder are serialized by an flock on its parent folder, and
  each re-checks the rules under the lock, so concurrent compiles into one `-o`
  all succeed, the last one's files winning.
- Replacing an earlier output deletes only the files its manifest lists, and
  only while they are unchanged; the user's other files in it stay. The old
  manifest goes first and the new one comes last, so an interrupted commit
  leaves a folder nnc no longer claims (refused next time) rather than one whose
  manifest claims a user's file.
- Folders are created with the mode the umask gives, and only on the way to
  `-o`: a `..` in `-o` is resolved first and must step out of existing folders.
- The staging folder's name, and the topmost parent folder a compile creates
  for `-o`, are known before either is made, so that an interrupt landing at
  any point (SIGTERM reaches whichever thread it likes, BLAS's included, so
  blocking signals in one thread cannot fence the creation) still leaves
  their removal to the `finally` that owns them.
- Outside a compile (`write_into`: `nnc report` rendering report.html again)
  nnc replaces a file only while its manifest lists it unchanged, or when it
  would write the same bytes; the files it writes join the folder's manifest,
  which is started when the folder has none (unless a file of that name that
  is not a valid manifest is in the way: nnc never writes over it).
- A folder nnc may not write into (read-only, full) is an OptionError.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

from .errors import OptionError

MANIFEST = "nnc-manifest.json"
MANIFEST_NOTE = "output folder manifest; nnc deletes only these files, and only while unchanged"


def without_parent_steps(out: Path) -> Path:
    """`out` with its `..` steps taken as the system takes them: the part up to the
    last `..` must exist (OptionError otherwise; nnc does not make folders only
    to step out of them) and is replaced by the folder it names, relative to the
    current folder. A path without `..` is returned as it is."""
    parts = out.parts
    if ".." not in parts:
        return out
    last = len(parts) - 1 - parts[::-1].index("..")
    head = Path(*parts[:last + 1])
    if not head.is_dir():
        missing = next(p for p in (*reversed(head.parents), head) if p.name != ".." and not p.is_dir())
        why = "is not a folder" if missing.exists() else "does not exist"
        raise OptionError(f"output folder {out}: {missing} {why}, so {head} names no folder; give an output folder "
                          "without '..', or one that steps out of existing folders")
    return Path(os.path.relpath(os.path.realpath(head))).joinpath(*parts[last + 1:])


def check(out: Path, model: Path) -> None:
    """OptionError unless nnc may write its output into `out` (module docstring).
    Checked under the lock that commits into `out` take, so that a concurrent
    compile's commit is never seen half done (its manifest gone, files moving)."""
    resolved = without_parent_steps(out)
    try:
        if resolved.parent.is_dir():
            with _locked(resolved.parent):
                _check(resolved, model)
        else:
            _check(resolved, model)
    except OptionError as exc:
        if resolved == out:
            raise
        raise OptionError(f"{exc} ({out} names {resolved})") from None


def _check(out: Path, model: Path) -> None:
    where = out.resolve()
    here = Path.cwd().resolve()
    if str(out) in ("", "."):
        raise OptionError(f"output folder {str(out) or '(empty)'} is the current folder; give a folder of its own")
    if out.is_symlink():
        raise OptionError(f"output folder {out} is a symbolic link; give the folder itself")
    if where == here or where in here.parents:
        raise OptionError(f"output folder {out} is the current folder or one of its ancestors; "
                          "give a folder of its own")
    if where == model.resolve().parent or where in model.resolve().parents:
        raise OptionError(f"output folder {out} holds the model {model.name}; give a folder of its own")
    if out.exists() and not out.is_dir():
        raise OptionError(f"output folder {out} exists and is not a folder")
    if out.is_dir():
        _owned_files(out)


def _owned_files(out: Path) -> list[str]:
    """The files of an earlier output in `out` that nnc may delete (all unchanged);
    [] for an empty folder; OptionError for anything else."""
    entries = sorted(p.name for p in out.iterdir())
    if not entries:
        return []
    manifest = _read_manifest(out)
    if manifest is None:
        shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
        raise OptionError(f"output folder {out} is not empty ({shown}) and holds no {MANIFEST} of an earlier "
                          "nnc output; choose another output folder, or empty it yourself")
    present = {name: digest for name, digest in manifest.items() if os.path.lexists(out / name)}
    changed = [name for name, digest in present.items() if not _unchanged(out / name, digest)]
    if changed:
        raise OptionError(f"output folder {out}: {', '.join(changed[:3])} changed since nnc wrote "
                          f"{'it' if len(changed) == 1 else 'them'}; nnc will not overwrite a changed file, "
                          "so move your version away or choose another output folder")
    return list(present)


def _read_manifest(out: Path) -> dict[str, str] | None:
    """{relative path: sha256} from out's manifest; None if absent or malformed
    (including any path that is absolute or leaves the folder)."""
    path = out / MANIFEST
    if path.is_symlink() or not path.is_file():
        return None
    try:
        files = json.loads(path.read_text(encoding="utf-8"))["files"]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(files, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in files.items()):
        return None
    if any(not _is_plain_relative(name) for name in files):
        return None
    return files


def _is_plain_relative(name: str) -> bool:
    parts = PurePosixPath(name).parts
    return bool(parts) and not name.startswith("/") and ".." not in parts and name != MANIFEST and "\0" not in name


def _unchanged(path: Path, digest: str) -> bool:
    return path.is_file() and not path.is_symlink() and _sha256(path) == digest


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@contextmanager
def staged(out: Path | str | None, model: Path):
    """Yield a staging folder for the artifacts (None when `out` is None); when the
    block succeeds, commit its files into `out`. The staging folder is removed
    whatever happens."""
    if out is None:
        yield None
        return
    out = without_parent_steps(Path(out))
    check(out, model)
    created = _topmost_missing(out.parent)  # known before anything is made: an interrupt cannot lose it
    staging = None
    try:
        try:
            while staging is None:
                out.parent.mkdir(parents=True, exist_ok=True)
                staging = _free_staging_name(out)  # held before the folder exists: an interrupt cannot lose it
                try:
                    staging.mkdir()  # mode 0777 less the umask
                except FileExistsError:  # taken since the check: never ours to remove
                    staging = None
                except FileNotFoundError:
                    if out.parent.is_dir():
                        raise
                    staging = None  # the parent, empty a moment ago, was removed by a compile that made it too
        except OSError as exc:
            raise OptionError(f"cannot create output folder {out}: {exc.strerror or exc} (nnc stages the output "
                              f"in a folder beside it, in {out.parent})") from None
        yield staging
        _commit(staging, out, model)
    finally:
        if staging is not None:
            _remove_staging(staging)
        _remove_if_empty(created, out.parent)


def _remove_staging(staging: Path) -> None:
    """Remove the staging folder. After a commit only its emptied folders are
    left, removed deepest first (without shutil, whose import with bz2 and lzma
    is 2 ms of an az-sim compile); what a failure left goes with shutil.rmtree."""
    try:
        for folder in sorted((p for p in staging.rglob("*") if p.is_dir() and not p.is_symlink()),
                             key=lambda p: len(p.parts), reverse=True):
            folder.rmdir()
        staging.rmdir()
    except OSError:
        import shutil

        shutil.rmtree(staging, ignore_errors=True)


def _free_staging_name(out: Path) -> Path:
    """A path `.OUT.<random>.staging` beside `out` that nothing holds yet."""
    while True:
        candidate = out.parent / f".{out.name}.{os.urandom(6).hex()}.staging"
        if not os.path.lexists(candidate):
            return candidate


def _commit(staging: Path, out: Path, model: Path) -> None:
    """Move the staged files into `out` under the parent's lock (module docstring)."""
    written = sorted(p.relative_to(staging).as_posix() for p in staging.rglob("*") if p.is_file())
    manifest = {"nnc": MANIFEST_NOTE, "files": {name: _sha256(staging / name) for name in written}}
    with _locked(out.parent):
        _check(out, model)
        old = _owned_files(out) if out.is_dir() else []
        _check_free(out, written, set(old))
        try:
            if out.is_dir():
                (out / MANIFEST).unlink(missing_ok=True)
            for name in old:
                (out / name).unlink()
                _prune_empty_parents(out / name, out)
            if not out.is_dir():
                out.mkdir()
            for name in written:
                target = out / name
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(staging / name, target)
            _write_manifest(out, manifest)
        except OSError as exc:  # a folder nnc may not write (read-only, immutable, full)
            raise OptionError(f"cannot write output folder {out}: {exc.strerror or exc}") from None


def _check_free(out: Path, written: list[str], old: set[str]) -> None:
    """OptionError unless every path of `written`, and each folder on its way, is
    absent, one of the earlier output's files (`old`), or (for a folder on the
    way) a real folder."""
    taken = set()
    for name in written:
        parts = PurePosixPath(name).parts
        for depth in range(1, len(parts) + 1):
            relative = "/".join(parts[:depth])
            path = out / relative
            if relative in old or not os.path.lexists(path):
                continue
            if depth < len(parts) and path.is_dir() and not path.is_symlink():
                continue
            taken.add(relative)
    if taken:
        names = sorted(taken)
        raise OptionError(f"output folder {out}: {', '.join(names[:3])} {'is' if len(names) == 1 else 'are'} "
                          "in the way of nnc's output and nnc did not write "
                          f"{'it' if len(names) == 1 else 'them'}; move {'it' if len(names) == 1 else 'them'} "
                          "away or choose another output folder")


def _write_manifest(out: Path, manifest: dict) -> None:
    partial = out / f".{MANIFEST}.partial"
    partial.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(partial, out / MANIFEST)


def write_into(out: Path, files: dict[str, str]) -> None:
    """Write text `files` {name: text} into folder `out` (created if missing)
    outside a compile. OptionError, and nothing written, when `out` is not a
    folder or a file to replace is neither listed unchanged in its manifest
    nor equal to the new text. A valid manifest records the new files."""
    out = without_parent_steps(out)
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise OptionError(f"output folder {out} is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OptionError(f"cannot create output folder {out}: {exc.strerror or exc}") from None
    with _locked(out.parent):
        manifest = _read_manifest(out)
        owned = manifest or {}
        for name, text in files.items():
            if not _replaceable(out / name, owned.get(name), text.encode("utf-8")):
                raise OptionError(f"{out / name} exists and nnc did not write it (or it changed since); "
                                  "move it away or give another output folder")
        try:
            for name, text in files.items():
                partial = out / f".{name}.partial"
                partial.write_text(text, encoding="utf-8")
                os.replace(partial, out / name)
            if manifest is not None or not os.path.lexists(out / MANIFEST):  # never over a user's file of that name
                files_now = (manifest or {}) | {name: _sha256(out / name) for name in files}
                _write_manifest(out, {"nnc": MANIFEST_NOTE, "files": files_now})
        except OSError as exc:
            for name in files:
                (out / f".{name}.partial").unlink(missing_ok=True)
            raise OptionError(f"cannot write into output folder {out}: {exc.strerror or exc}") from None


def _replaceable(path: Path, digest: str | None, data: bytes) -> bool:
    """True when `path` is absent, listed unchanged (`digest`), or holds `data`."""
    if path.is_symlink():
        return False
    if not path.exists():
        return True
    return (digest is not None and _unchanged(path, digest)) or (path.is_file() and path.read_bytes() == data)


@contextmanager
def _locked(folder: Path):
    """An exclusive flock on `folder` itself (no lock file is left behind);
    OptionError when the folder cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError as exc:
        raise OptionError(f"cannot open folder {folder}: {exc.strerror or exc}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _topmost_missing(folder: Path) -> Path | None:
    """The topmost of `folder` and its ancestors that does not exist (None if it exists)."""
    missing = [p for p in (folder, *folder.parents) if not p.exists()]
    return missing[-1] if missing else None


def _remove_if_empty(created: Path | None, parent: Path) -> None:
    """Remove the folders this compile created on the way to `-o` (`parent` and
    its ancestors up to `created`) while they are empty, from the deepest up.
    Nothing beside or below them is touched: a concurrent compile's staging
    folder keeps its parent in place."""
    if created is None:
        return
    for folder in (parent, *parent.parents):
        if not _rmdir_quietly(folder) or folder == created:
            return


def _rmdir_quietly(folder: Path) -> bool:
    """Remove `folder` if it is empty; whether it was removed."""
    try:
        folder.rmdir()
    except OSError:
        return False
    return True


def _prune_empty_parents(path: Path, root: Path) -> None:
    for folder in path.parents:
        if folder == root or root not in folder.parents:
            return
        _rmdir_quietly(folder)
