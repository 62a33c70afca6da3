"""One fuzz case: the files of its sandbox and the `nnc` argv that runs there.

Layout of a case folder (what `materialize` writes):

    CASE/tmp/            TMPDIR and tempfile.tempdir of the run; must end empty
    CASE/home/           "outside" files (outside.txt, report.json, secret.bin)
    CASE/home/work/      the sandbox and the run's cwd: the inputs and user files

Paths in `Case.files`, `Case.symlinks` and `Case.owned` are relative to
CASE/home, so "work/cnn.onnx" is a sandbox file and "outside.txt" is not.
argv paths are relative to the sandbox. Every file written before the run is a
user file that nnc must leave byte for byte, except those in `owned` (files of
an earlier nnc output that nnc may replace).
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass, field
from pathlib import Path

from .seeds import Corpus, Seed

SANDBOX = "work"
TARGET_WEIGHTS = {"ir": 35, "az-sim": 55, "c": 10}


@dataclass
class Case:
    """A case as its mutators left it; `argv()` is what the runner passes to nnc."""

    seed: int
    index: int
    corpus: Corpus = field(repr=False)
    seed_name: str = "mlp"
    command: str = "compile"          # compile | run | inspect
    subject: str = ""                 # sandbox path of the model, blob or .nnir argument
    target: str | None = "ir"
    out: str | None = "out"           # the -o value as typed (None: no -o)
    options: list[str] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)
    symlinks: dict[str, str] = field(default_factory=dict)
    owned: set[str] = field(default_factory=set)
    family: str = "baseline"
    mutators: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    must_reject: bool = False         # a mutator made the input one nnc must refuse

    @property
    def seed_model(self) -> Seed:
        return self.corpus.seeds[self.seed_name]

    @property
    def case_id(self) -> str:
        return f"{self.seed}:{self.index}"

    def argv(self) -> list[str]:
        head = [self.command, self.subject]
        if self.command == "compile" and self.target is not None:
            head += ["--target", self.target]
        if self.out is not None:
            head += ["-o", self.out]
        return head + self.options

    # -- files -------------------------------------------------------------
    def put(self, path: str, data: bytes | str) -> None:
        """Write a sandbox file (path relative to the sandbox)."""
        self.files[f"{SANDBOX}/{path}"] = data.encode() if isinstance(data, str) else data

    def get(self, path: str) -> bytes:
        return self.files[f"{SANDBOX}/{path}"]

    def note(self, text: str) -> None:
        self.notes.append(text)

    # -- options -----------------------------------------------------------
    def flag(self, name: str) -> str | None:
        """The value of option `name` (the last one given), or None."""
        values = [self.options[i + 1] for i, o in enumerate(self.options[:-1]) if o == name]
        return values[-1] if values else None

    def set_flag(self, name: str, value: str | None) -> None:
        """Give option `name` this value (replacing earlier ones); a bare switch when value is None."""
        self.drop_flag(name)
        self.options += [name] if value is None else [name, value]

    def drop_flag(self, name: str, takes_value: bool = True) -> None:
        kept, skip = [], False
        for item in self.options:
            if skip:
                skip = False
            elif item == name:
                skip = takes_value
            else:
                kept.append(item)
        self.options = kept

    # -- switching seed or command ------------------------------------------
    def use_seed(self, name: str) -> None:
        """Compile seed `name` instead (its model and samples replace the current ones)."""
        for path in self.seed_model.files:
            self.files.pop(f"{SANDBOX}/{path}", None)
        self.seed_name = name
        self.subject = self.seed_model.model
        for path, data in self.seed_model.files.items():
            self.put(path, data)
        self.put("samples.npz", self.seed_model.samples)

    def as_run(self, rng: random.Random) -> None:
        """`nnc run model.azb --inputs samples.npz` on the corpus blob (seed "cnn")."""
        self.use_seed("cnn")
        self.put("model.azb", self.corpus.blob)
        self.command, self.subject, self.target, self.out = "run", "model.azb", None, None
        self.options = ["--inputs", "samples.npz"] + (["--json"] if rng.random() < 0.3 else [])

    def as_inspect(self, subject: str, rng: random.Random) -> None:
        self.command, self.subject, self.target, self.out = "inspect", subject, None, None
        self.options = ["--json"] if rng.random() < 0.3 else []


def user_files(rng: random.Random) -> dict[str, bytes]:
    """The user's own files around a case, with random content, keyed relative to CASE/home."""
    report = json.dumps({"mine": rng.randrange(10**9), "note": "a report.json the user wrote"}).encode()
    files = {"outside.txt": _text(rng), "report.json": report, "secret.bin": rng.randbytes(rng.randrange(1, 64)),
             f"{SANDBOX}/notes.txt": _text(rng), f"{SANDBOX}/data.bin": rng.randbytes(rng.randrange(1, 256)),
             f"{SANDBOX}/report.json": report, f"{SANDBOX}/sub/keep.txt": _text(rng)}
    return files


def _text(rng: random.Random) -> bytes:
    words = ["alpha", "beta", "gamma", "delta", "kws", "model", "weights", "notes"]
    return (" ".join(rng.choice(words) for _ in range(rng.randrange(1, 30))) + "\n").encode()


def base_case(corpus: Corpus, seed: int, index: int, rng: random.Random) -> Case:
    """A valid compile of a random seed for a random target, among user files."""
    case = Case(seed, index, corpus, files=user_files(rng))
    case.use_seed(rng.choice(sorted(corpus.seeds)))
    case.target = rng.choices(list(TARGET_WEIGHTS), weights=list(TARGET_WEIGHTS.values()))[0]
    case.out = rng.choice(["out", "out", "build/out", "artifacts"])
    if case.target != "ir" and rng.random() < 0.85:
        case.set_flag("--calib", "samples.npz")
    elif rng.random() < 0.5:
        case.set_flag("--inputs", "samples.npz")
    if rng.random() < 0.1:
        case.set_flag("--no-verify", None)
    return case


def materialize(case: Case, folder: Path) -> Path:
    """Write the case into `folder` (layout in the module docstring); return the sandbox."""
    home = folder / "home"
    (folder / "tmp").mkdir(parents=True)
    (home / SANDBOX).mkdir(parents=True)
    for path, data in case.files.items():
        target = home / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    for path, pointee in case.symlinks.items():
        link = home / path
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(pointee, link)
    return home / SANDBOX
