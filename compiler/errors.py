"""Typed errors of nnc.

Every error a user can cause derives from `NncError`; the CLI prints its message
as one line and exits with code 2. Anything else escaping is a bug in nnc.
"""

from __future__ import annotations

import os
from pathlib import Path


class NncError(Exception):
    """Base of every error caused by bad input or impossible options. The
    message names the options as the Python API's keyword arguments; `cli`,
    when given, is the same message naming the command line's flags, which the
    CLI prints instead."""

    def __init__(self, message: str, cli: str | None = None):
        super().__init__(message)
        self.cli = cli


class ModelError(NncError):
    """The model file is missing, truncated, malformed or not loadable."""


class UnsupportedError(NncError):
    """The model uses operators, attributes or data types nnc does not support."""


class ShapeError(NncError):
    """Shapes or data types do not agree (model, inputs or calibration data).
    `input`: the model input whose samples have the wrong shape, when that is
    what disagrees (the driver then says which of its dims were bound to 1)."""

    def __init__(self, message: str, cli: str | None = None, input: str | None = None):
        super().__init__(message, cli)
        self.input = input


class OptionError(NncError):
    """An option or pipeline string is invalid."""


class IRError(NncError):
    """The text IR does not parse, or a graph breaks an IR invariant."""


class VerificationError(NncError):
    """A compiled artifact does not compute what the reference computes."""


class QualityGateError(NncError):
    """A compile succeeded but missed a quality gate (--min-cosine,
    --max-accuracy-drop); its artifacts were written. `result` holds the
    CompileResult. The CLI exits with code 4."""

    def __init__(self, message: str, result=None):
        super().__init__(message)
        self.result = result


class TrainingError(NncError):
    """Fine-tuning diverged: the loss became NaN or infinite."""


class BlobError(NncError):
    """An az-sim blob is truncated, corrupted or of an unknown version."""


class NncWarning(UserWarning):
    """Something the user should know, that does not stop the compile
    (e.g. calibration on synthetic data). The CLI prints it as one line."""


class MissingExtraError(NncError):
    """A feature needs an optional dependency that is not installed (e.g.
    training needs PyTorch: pip install 'nnc[train]')."""


def not_a_file(path: str | os.PathLike, kind: str) -> str | None:
    """Why `path` is not the `kind` of file an entry point reads ("model file",
    "blob file", ...): "a folder, not a model file", "no such model file"; None
    when it is a file."""
    path = Path(path)
    if path.is_file():
        return None
    return f"a folder, not a {kind}" if path.is_dir() else f"no such {kind}"
