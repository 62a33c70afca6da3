"""Passes, their registry and the pass manager.

A pass is a record (a frozen dataclass made by `@record`, records.py) deriving
from `Pass`: its fields are its options (typed, with defaults), its class
attribute `name` is its pipeline name (kebab-case). `run(graph) -> graph`
receives a valid graph and must return a valid one (it may mutate and return
its argument). A pipeline is a string such
as `"canonicalize,fold-constants{fold_dequantize=true},fuse-activation"` (option
values: numbers, true/false, bare words, "JSON strings", [lists]);
`parse_pipeline` turns it into pass objects and `format_pipeline` prints them
back in canonical form (options that differ from their defaults only), so
`format_pipeline(parse_pipeline(s)) == s` for canonical strings.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import re
import time
import typing
from dataclasses import field
from pathlib import PureWindowsPath
from typing import Callable, ClassVar

from .errors import OptionError
from .ir import Graph
from .records import record


@record
class Pass:
    name: ClassVar[str]

    def run(self, graph: Graph) -> Graph:
        raise NotImplementedError


_PASSES: dict[str, type[Pass]] = {}


def register_pass(cls: type[Pass]) -> type[Pass]:
    if cls.name in _PASSES:
        raise RuntimeError(f"pass {cls.name} registered twice")
    _PASSES[cls.name] = cls
    return cls


def pass_class(name: str) -> type[Pass] | None:
    """The pass named `name` (None if there is none). Pass `a-b` lives in
    nnc/passes/a_b.py and registers on import, so a pipeline imports only its
    own passes."""
    if name not in _PASSES and _NAME.match(name):
        module = f"nnc.passes.{name.replace('-', '_')}"
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
    return _PASSES.get(name)


def available_passes() -> dict[str, type[Pass]]:
    """Every pass, by name (imports every module of nnc.passes)."""
    import pkgutil

    import nnc.passes

    for module in pkgutil.iter_modules(nnc.passes.__path__):
        importlib.import_module(f"nnc.passes.{module.name}")
    return dict(_PASSES)


# -- pipeline strings ------------------------------------------------------------
# The grammar (whitespace between tokens is ignored):
#   pipeline := step ("," step)*          step := NAME ["{" [option ("," option)*] "}"]
#   option   := KEY "=" value
#   value    := number | "JSON string" | true | false | WORD | "[" [value ("," value)*] "]"
# A hand-written recursive descent over one token regex: the grammar is small,
# and every compile parses its default pipeline, which a parser library's
# import (lark: 10 ms) would make slower.
_TOKEN = re.compile(r"""\s*(?:
    (?P<number>[+-]?(?:[0-9]+\.[0-9]*|\.[0-9]+|[0-9]+)(?:[eE][+-]?[0-9]+)?(?![A-Za-z0-9_.:/-]))
  | (?P<string>"(?:[^"\\]|\\.)*")
  | (?P<word>[A-Za-z_][A-Za-z0-9_.:/-]*)
  | (?P<punct>[,{}=\[\]])
)""", re.VERBOSE)
_NAME = re.compile(r"[a-z][a-z0-9-]*\Z")
_KEY = re.compile(r"[a-z_][a-z0-9_]*\Z")


class _PipelineSyntaxError(ValueError):
    pass


class _Tokens:
    """The tokens of a pipeline string as (kind, text, column); kind "end" last."""

    def __init__(self, text: str):
        self.items: list[tuple[str, str, int]] = []
        pos = 0
        while text[pos:].strip():
            match = _TOKEN.match(text, pos)
            if match is None:
                column = pos + len(text[pos:]) - len(text[pos:].lstrip()) + 1
                raise _PipelineSyntaxError(f"unexpected character {text[column - 1]!r} at column {column}")
            kind = match.lastgroup
            self.items.append((kind, match.group(kind), match.start(kind) + 1))
            pos = match.end()
        self.items.append(("end", "", len(text) + 1))
        self.index = 0

    def peek(self) -> tuple[str, str, int]:
        return self.items[self.index]

    def take(self, kind: str, text: str | None = None, what: str | None = None) -> str:
        found_kind, found, column = self.items[self.index]
        if found_kind != kind or (text is not None and found != text):
            shown = "the end" if found_kind == "end" else repr(found)
            raise _PipelineSyntaxError(f"expected {what or repr(text)} at column {column}, found {shown}")
        self.index += 1
        return found

    def skip(self, text: str) -> bool:
        if self.items[self.index][0] == "punct" and self.items[self.index][1] == text:
            self.index += 1
            return True
        return False


def _steps(text: str) -> list[tuple[str, dict]]:
    """(pass name, options) of each step of a non-empty pipeline string."""
    tokens = _Tokens(text)
    steps = [_step(tokens)]
    while tokens.skip(","):
        steps.append(_step(tokens))
    tokens.take("end", what="',' or the end")
    return steps


def _step(tokens: _Tokens) -> tuple[str, dict]:
    name = _matching(tokens, _NAME, "a pass name")
    options: dict = {}
    if tokens.skip("{") and not tokens.skip("}"):
        while True:
            key = _matching(tokens, _KEY, "an option name")
            tokens.take("punct", "=")
            options[key] = _value(tokens)
            if tokens.skip("}"):
                break
            tokens.take("punct", ",", what="',' or '}'")
    return name, options


def _matching(tokens: _Tokens, pattern: re.Pattern, what: str) -> str:
    kind, text, column = tokens.peek()
    if kind != "word" or not pattern.match(text):
        shown = "the end" if kind == "end" else repr(text)
        raise _PipelineSyntaxError(f"expected {what} at column {column}, found {shown}")
    return tokens.take("word")


MAX_LIST_DEPTH = 32  # nested option lists; deeper is refused, not a Python recursion error


def _value(tokens: _Tokens, depth: int = 0):
    kind, text, column = tokens.peek()
    if kind == "number":
        tokens.take(kind)
        return float(text) if any(c in text for c in ".eE") else int(text)
    if kind == "string":
        tokens.take(kind)
        try:
            return json.loads(text)
        except ValueError as exc:
            raise _PipelineSyntaxError(f"bad string {text}: {exc}") from None
    if kind == "word":
        tokens.take(kind)
        return {"true": True, "false": False}.get(text, text)
    if tokens.skip("["):
        if depth == MAX_LIST_DEPTH:
            raise _PipelineSyntaxError(f"lists nested deeper than {MAX_LIST_DEPTH} at column {column}")
        values = []
        if not tokens.skip("]"):
            values.append(_value(tokens, depth + 1))
            while not tokens.skip("]"):
                tokens.take("punct", ",", what="',' or ']'")
                values.append(_value(tokens, depth + 1))
        return values
    return tokens.take("word", what="a value")


_BARE_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_.:/-]*")


def parse_pipeline(text: str) -> list[Pass]:
    """Pass objects for a pipeline string ("" is the empty pipeline); OptionError on any mistake."""
    if not text.strip():
        return []
    try:
        steps = _steps(text)
    except _PipelineSyntaxError as exc:
        raise OptionError(f"bad pipeline {text!r}: {exc}") from None
    return [_make_pass(name, options) for name, options in steps]


def _make_pass(name: str, options: dict) -> Pass:
    cls = pass_class(name)
    if cls is None:
        raise OptionError(f"unknown pass {name!r}; known passes: {', '.join(sorted(available_passes()))}")
    hints = typing.get_type_hints(cls) if options else {}  # evaluates every annotation: only when needed
    fields = {f.name for f in dataclasses.fields(cls)}
    for key, value in options.items():
        if key not in fields:
            raise OptionError(f"pass {name!r} has no option {key!r}; options: {', '.join(sorted(fields)) or 'none'}")
        _check_option_type(name, key, hints[key], value)
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise OptionError(f"pass {name!r}: {exc}") from None


def _check_option_type(pass_name: str, key: str, hint, value) -> None:
    allowed = typing.get_args(hint) or (hint,)
    origin_ok = any((typing.get_origin(a) or a) is tuple for a in allowed) and isinstance(value, list)
    ok = origin_ok or any(
        isinstance(value, a) and not (a is int and isinstance(value, bool))
        for a in allowed if isinstance(a, type) and a is not tuple
    ) or (float in allowed and isinstance(value, int) and not isinstance(value, bool))
    if not ok:
        raise OptionError(f"pass {pass_name!r}: option {key}={value!r} has the wrong type")


def format_pass(p: Pass) -> str:
    changed = [f for f in dataclasses.fields(p) if getattr(p, f.name) != f.default]
    if not changed:
        return p.name
    return p.name + "{" + ",".join(f"{f.name}={_format_value(getattr(p, f.name))}" for f in changed) + "}"


def format_pipeline(passes: list[Pass]) -> str:
    return ",".join(format_pass(p) for p in passes)


def _format_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (tuple, list)):
        return "[" + ",".join(_format_value(v) for v in value) + "]"
    if isinstance(value, str) and not _BARE_WORD.fullmatch(value):
        return json.dumps(value)
    return str(value)


# Pass options that name files (calibration samples, activation ranges).
PATH_OPTIONS = frozenset({"calib", "ranges", "save_ranges"})


def without_folders(pipeline: str) -> str:
    """`pipeline` (as format_pipeline writes it) with the value of each path
    option (PATH_OPTIONS) cut to its file name: what nnc writes names no folder,
    and its bytes do not depend on how a path was spelled. Other options (layer
    names such as "/conv1/Conv" in overrides) stay as they are."""
    if not pipeline.strip():
        return pipeline
    steps = []
    for name, options in _steps(pipeline):
        shown = {key: file_name_only(value) if key in PATH_OPTIONS and isinstance(value, str) else value
                 for key, value in options.items()}
        steps.append(name + ("{" + ",".join(f"{key}={_format_value(value)}" for key, value in shown.items()) + "}"
                             if shown else ""))
    return ",".join(steps)


def file_name_only(path: str) -> str:
    """The file name of a path (either separator); a bare name as it is."""
    return PureWindowsPath(path).name or path


# -- running -----------------------------------------------------------------------
@record(frozen=False)
class PassRecord:
    """What one pass did: wall time and node counts before and after."""

    name: str
    seconds: float
    nodes_before: int
    nodes_after: int


@record(frozen=False)
class PassManager:
    """Runs passes in order. With `verify_each`, the graph is verified after
    every pass; `print_after` is a set of names of passes in `passes` (or
    {"all"}; OptionError otherwise) after which `dump(pass_name, graph)` is
    called. `snapshot` keeps a copy of the graph as it was before the first
    pass named in `snapshot_before` ran. `progress(message)`, if given, hears
    of each pass as it starts ("pass 3/12: quantize")."""

    passes: list[Pass]
    verify_each: bool = False
    print_after: set[str] = field(default_factory=set)
    dump: Callable[[str, Graph], None] | None = None
    records: list[PassRecord] = field(default_factory=list)
    snapshot_before: frozenset[str] = frozenset()
    snapshot: Graph | None = None
    progress: Callable[[str], None] | None = None

    def __post_init__(self):
        absent = sorted(set(self.print_after) - {"all", *(p.name for p in self.passes)})
        if absent:
            said = f"no such pass in the pipeline {format_pipeline(self.passes)!r}"
            raise OptionError(f"print_ir_after {absent[0]!r}: {said}", cli=f"--print-ir-after {absent[0]}: {said}")

    def run(self, graph: Graph) -> Graph:
        for number, p in enumerate(self.passes, 1):
            if self.progress:
                self.progress(f"pass {number}/{len(self.passes)}: {p.name}")
            if self.snapshot is None and p.name in self.snapshot_before:
                self.snapshot = graph.copy()
            before = len(graph)
            start = time.perf_counter()
            graph = p.run(graph)
            seconds = time.perf_counter() - start
            self.records.append(PassRecord(format_pass(p), seconds, before, len(graph)))
            if self.verify_each:
                from .verifier import verify

                verify(graph, context=f"after pass {p.name}")
            if self.dump and (p.name in self.print_after or "all" in self.print_after):
                self.dump(p.name, graph)
        return graph
