"""What a run did to the files around it: snapshots of a case folder before and
after, and the file findings they imply (`touched`, `leftover`).

Rules (paths relative to CASE/home; layout in case.py):
- touched: a file that existed before and is not `owned` was changed, removed or
  replaced (a symlink retargeted counts); or a new path appeared outside -o,
  outside the sandbox and outside CASE/tmp, other than a staging folder or a
  .partial file (those are leftovers).
- leftover: after a failed run, -o changed at all (no half-written output),
  or anything new appeared in the sandbox outside -o; after any run, a staging
  folder (a hidden `.NAME.*` beside -o) or a `*.partial` file, anywhere, or
  anything left in CASE/tmp.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from .case import SANDBOX, Case

Snapshot = dict[str, tuple]


def snapshot(home: Path) -> Snapshot:
    """path -> ("file", sha256) | ("link", target) | ("dir",) | ("other",), not following symlinks."""
    result: Snapshot = {}
    for root, dirs, files in os.walk(home):
        for name in dirs + files:
            path = Path(root, name)
            rel = path.relative_to(home).as_posix()
            if path.is_symlink():
                result[rel] = ("link", os.readlink(path))
            elif path.is_dir():
                result[rel] = ("dir",)
            elif path.is_file():
                result[rel] = ("file", _sha256(path))
            else:
                result[rel] = ("other",)
    return result


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def output_area(case: Case) -> str | None:
    """-o as a path relative to CASE/home (normalized, symlinks not followed); None without -o."""
    if case.out is None:
        return None
    return os.path.normpath(os.path.join(SANDBOX, case.out or "."))


def _inside(path: str, area: str | None) -> bool:
    if area is None:
        return False
    return area == "." or path == area or path.startswith(area + "/")


def _is_ancestor(path: str, area: str | None) -> bool:
    return area is not None and area != "." and area.startswith(path + "/")


def _is_staging(path: str, area: str | None) -> bool:
    """A *.partial file, a hidden *.staging folder, or a hidden `.NAME.*` beside -o."""
    parent, _, name = path.rpartition("/")
    area_parent, _, area_name = (area or "").rpartition("/")
    if name.endswith(".partial") or (name.startswith(".") and name.endswith(".staging")):
        return True
    return bool(area_name) and parent == area_parent and name.startswith(f".{area_name}.")


def file_findings(case: Case, before: Snapshot, after: Snapshot, tmp_left: list[str],
                  succeeded: bool) -> list[tuple[str, str]]:
    """[(class, reason)] for the run that turned `before` into `after` (module docstring)."""
    area = output_area(case)
    found: list[tuple[str, str]] = []
    for path, entry in before.items():
        if path in case.owned or entry == ("dir",):
            continue
        if path not in after:
            found.append(("touched", f"removed {path}"))
        elif after[path] != entry:
            found.append(("touched", f"changed {path}"))
    new = set(after) - set(before)
    for path in sorted(new):
        found += _new_path_finding(path, new, area, succeeded)
    if not succeeded:
        changed = [p for p in before if _inside(p, area) and after.get(p) != before[p]]
        found += [("leftover", f"failed run changed {p} inside -o") for p in changed[:1]]
    found += [("leftover", f"left tmp/{name}") for name in tmp_left[:3]]
    return found


def _new_path_finding(path: str, new: set[str], area: str | None, succeeded: bool) -> list[tuple[str, str]]:
    """The finding for one new path; none for paths below a new path already reported."""
    parent = path.rpartition("/")[0]
    if parent in new and not _is_ancestor(parent, area):
        return []
    if _is_ancestor(path, area):
        return [] if succeeded else [("leftover", f"failed run left {path}, a parent folder of -o")]
    if _is_staging(path, area):
        return [("leftover", f"left {path}")]
    if _inside(path, area):
        return [] if succeeded else [("leftover", f"failed run wrote {path} inside -o")]
    if _inside(path, SANDBOX):
        return [("leftover", f"created {path} outside -o")]
    return [("touched", f"created {path} outside the sandbox")]
