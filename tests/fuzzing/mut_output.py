"""Output-folder mutators (family output): -o values and the folders they name.

Issue 10's rules: nnc refuses (exit 2, nothing touched) an -o that is empty,
`.`, the current folder or an ancestor, the model's folder, a symlink, an
existing file, or a non-empty folder that is not an earlier nnc output; an
earlier nnc output is replaced only in the files nnc wrote and the user left
unchanged (those are `owned`: the only pre-existing files a run may change).
"""

from __future__ import annotations

import hashlib
import json
import random

from .case import SANDBOX, Case
from .registry import mutator


def _user_folder(rng: random.Random, case: Case, folder: str, with_report: bool = True) -> None:
    case.put(f"{folder}/mine.txt", f"user file {rng.randrange(10**6)}\n")
    if with_report or rng.random() < 0.5:
        case.put(f"{folder}/report.json", json.dumps({"user": rng.randrange(10**6)}))


def _earlier_output(rng: random.Random, case: Case, folder: str) -> list[str]:
    """Copy an earlier nnc output into `folder` (all of it owned); return its file names."""
    files = case.corpus.earlier_outputs[rng.choice(sorted(case.corpus.earlier_outputs))]
    for name, data in files.items():
        case.put(f"{folder}/{name}", data)
        case.owned.add(f"{SANDBOX}/{folder}/{name}")
    return sorted(files)


@mutator("output", must_reject=True)
def out_here_or_above(rng: random.Random, case: Case) -> Case:
    """-o naming the current folder or an ancestor, in a folder that holds a report.json."""
    case.out = rng.choice([".", "./", "", "..", "../", "sub/..", "sub/../..", "../work"])
    case.note(f"-o {case.out!r} (the current folder or an ancestor)")
    return case


@mutator("output", must_reject=True)
def out_model_folder(rng: random.Random, case: Case) -> Case:
    """The model in models/ beside user files, and -o naming that folder."""
    for name, data in case.seed_model.files.items():
        del case.files[f"{SANDBOX}/{name}"]
        case.put(f"models/{name}", data)
    case.subject = f"models/{case.seed_model.model}"
    _user_folder(rng, case, "models")
    case.out = rng.choice(["models", "models/", "./models", "models/../models"])
    case.note(f"-o {case.out!r} is the model's folder")
    return case


@mutator("output", must_reject=True)
def out_user_folder(rng: random.Random, case: Case) -> Case:
    """-o an existing folder of the user's (not an nnc output)."""
    _user_folder(rng, case, "mine", with_report=rng.random() < 0.7)
    case.out = "mine"
    case.note("-o an existing user folder")
    return case


@mutator("output", must_reject=True)
def out_symlink(rng: random.Random, case: Case) -> Case:
    pointee = rng.choice(["mine", ".", "..", "fresh", "sub"])
    if pointee == "mine":
        _user_folder(rng, case, "mine")
    case.symlinks[f"{SANDBOX}/link"] = pointee
    case.out = rng.choice(["link", "link/"])
    case.note(f"-o {case.out!r}, a symlink to {pointee}")
    return case


@mutator("output", must_reject=True)
def out_is_file(rng: random.Random, case: Case) -> Case:
    case.out = rng.choice(["notes.txt", "data.bin", "report.json", case.subject])
    case.note(f"-o {case.out!r}, an existing file")
    return case


@mutator("output")
def out_earlier_clean(rng: random.Random, case: Case) -> Case:
    """-o an earlier nnc output nobody touched: replacing it is allowed."""
    names = _earlier_output(rng, case, "prev")
    case.out = "prev"
    case.note(f"-o an unedited earlier nnc output ({', '.join(names)})")
    return case


@mutator("output")
def out_earlier_edited(rng: random.Random, case: Case) -> Case:
    """-o an earlier nnc output in which the user edited, removed or added a file."""
    names = _earlier_output(rng, case, "prev")
    how, name = rng.choice(["edited", "edited", "added", "removed"]), rng.choice(names)
    if how == "edited":
        case.put(f"prev/{name}", case.get(f"prev/{name}") + b"\n// my change\n")
        case.owned.discard(f"{SANDBOX}/prev/{name}")
    elif how == "added":
        case.put("prev/my_notes.txt", "the user's notes beside nnc's files\n")
    else:
        del case.files[f"{SANDBOX}/prev/{name}"]
    case.out = "prev"
    case.note(f"-o an earlier nnc output; the user {how} " + ("my_notes.txt" if how == "added" else name))
    return case


@mutator("output")
def out_forged_manifest(rng: random.Random, case: Case) -> Case:
    """A folder whose manifest claims files outside it, or claims a user file."""
    _earlier_output(rng, case, "prev")
    case.owned = {p for p in case.owned if not p.endswith("manifest.json")}
    claim = rng.choice(["../notes.txt", "../../outside.txt", "/etc/hostname", "mine.txt", "sub/../../data.bin"])
    if claim == "mine.txt":
        case.put("prev/mine.txt", "a user file the manifest claims, with another file's hash\n")
    target = {"../notes.txt": "notes.txt", "../../outside.txt": "../outside.txt", "sub/../../data.bin": "data.bin"}
    digest = hashlib.sha256(case.files.get(f"{SANDBOX}/{target.get(claim)}", b"")).hexdigest()
    manifest = {"nnc": "forged", "files": {claim: digest}}
    for path in list(case.files):
        if path.startswith(f"{SANDBOX}/prev/") and path.endswith("manifest.json"):
            case.files[path] = json.dumps(manifest).encode()
    case.out = "prev"
    case.note(f"-o a folder whose manifest claims {claim!r}")
    return case


@mutator("output")
def out_new_nested(rng: random.Random, case: Case) -> Case:
    case.out = rng.choice(["a/b/c", "new folder", "sub/out", "out.d", "-dash"])
    case.note(f"-o {case.out!r}, a new folder")
    return case


@mutator("output")
def run_out(rng: random.Random, case: Case) -> Case:
    """`nnc run -o`: a new file, a nested one, or an earlier result (owned)."""
    case.as_run(rng)
    how = rng.choice(["new", "nested", "earlier"])
    path = {"new": "y.npz", "nested": "res/deep/y.npz", "earlier": "prev.npz"}[how]
    if how == "earlier":
        case.put(path, case.corpus.seeds["cnn"].samples)
        case.owned.add(f"{SANDBOX}/{path}")
    case.out = path
    case.note(f"nnc run -o {path!r} ({how})")
    return case


@mutator("output", must_reject=True)
def run_out_folder(rng: random.Random, case: Case) -> Case:
    """`nnc run -o` naming an existing folder of the user's."""
    case.as_run(rng)
    _user_folder(rng, case, "mine")
    case.out = "mine"
    case.note("nnc run -o 'mine', an existing user folder")
    return case
