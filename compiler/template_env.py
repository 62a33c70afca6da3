"""The C target's templates: jinja2 templates rendered as compiled Python.

`Templates(source).render(name, **context)` renders the jinja2 template
`name` (its text: `source(name)`). template_compiler.py turns a template into
one Python function, which this module runs with the helpers below; jinja2
itself is imported only to compile. Compiled code is kept in the user cache
(user_cache.py) under a hash of the template's name and text and of the
compiler's and these helpers' sources, so an edited template or a changed
compiler is compiled again, and a warm `nnc compile --target c` never
imports jinja2 (about 0.02 s of its 0.2 s; issue 14). A failed read or
write of an entry is a miss. jinja2's version is not in the key (reading it
costs 0.02 s): should an upgrade parse a template differently, clear the
cache (tests/conftest.py would show the difference).

The helpers give jinja2's meaning to what compiled code does (tested against
jinja2 in tests/test_template_compiler.py): `a.b` is the attribute, else the
item; `a[b]` the item, else the attribute; a name is looked up in the
context, then in GLOBALS; what is undefined is an error (StrictUndefined).
"""

from __future__ import annotations

import hashlib
import marshal
import sys
from collections.abc import Callable, Iterable, Iterator
from functools import cache
from pathlib import Path
from types import CodeType

from .user_cache import read_entry, write_entry

# jinja2's lexer settings: block tags leave no blank lines, files keep their final newline.
SETTINGS = {"trim_blocks": True, "lstrip_blocks": True, "keep_trailing_newline": True, "autoescape": False}
_CACHE_KIND = f"templates-py{sys.version_info[0]}{sys.version_info[1]}"


class TemplateError(Exception):
    """A template that cannot be compiled or rendered (a bug of nnc's templates
    or of the context given, never of the user's model)."""


class Templates:
    """Templates read by name through `source`, each compiled once per process."""

    def __init__(self, source: Callable[[str], str]):
        self._source = source
        self._roots: dict[str, Callable] = {}

    def render(self, name: str, **context) -> str:
        out: list[str] = []
        self._root(name)(context, out, {})
        return "".join(out)

    def module(self, name: str, context: dict) -> dict:
        """The macros and `set` names of template `name` run in `context`
        (jinja2's `{% from name import ... %}`)."""
        exports: dict = {}
        self._root(name)(context, [], exports)
        return exports

    def _root(self, name: str) -> Callable:
        root = self._roots.get(name)
        if root is None:
            namespace = {**RUNTIME, "_templates": self}
            exec(_compiled(name, self._source(name)), namespace)
            root = self._roots[name] = namespace["root"]
        return root


def _compiled(name: str, text: str):
    """The code object of template `name`, from the user cache or compiled now."""
    key = hashlib.sha256(_compiler_digest() + f"{name}\0{text}".encode("utf-8")).hexdigest()[:32]
    data = read_entry(_CACHE_KIND, f"{key}.code")
    if data is not None:
        try:
            loaded = marshal.loads(data)
        except (EOFError, ValueError, TypeError):
            loaded = None
        if isinstance(loaded, CodeType):
            return loaded
    from .template_compiler import python_source

    code = compile(python_source(name, text), f"<template {name}>", "exec")
    write_entry(_CACHE_KIND, f"{key}.code", marshal.dumps(code))
    return code


@cache
def _compiler_digest() -> bytes:
    """A hash of what compiled code depends on: the compiler and these helpers
    (their sources; nnc's version where it is installed without them)."""
    here = Path(__file__).parent
    try:
        sources = b"".join((here / name).read_bytes() for name in ("template_compiler.py", "template_env.py"))
    except OSError:
        from . import __version__

        sources = f"nnc {__version__}".encode()
    return hashlib.sha256(sources).digest()


# -- what compiled code calls ------------------------------------------------------
class Loop:
    """jinja2's `loop` in a for loop over `length` items, at item `index0`."""

    __slots__ = ("index0", "length")

    def __init__(self, index0: int, length: int):
        self.index0, self.length = index0, length

    index = property(lambda self: self.index0 + 1)
    first = property(lambda self: self.index0 == 0)
    last = property(lambda self: self.index0 == self.length - 1)
    revindex = property(lambda self: self.length - self.index0)
    revindex0 = property(lambda self: self.length - self.index0 - 1)


LOOP_FIELDS = frozenset(name for name in vars(Loop) if not name.startswith("_"))
GLOBALS = {"range": range}
_MISSING = object()


def lookup(context: dict, name: str):
    value = context.get(name, _MISSING)
    if value is _MISSING:
        value = GLOBALS.get(name, _MISSING)
        if value is _MISSING:
            raise TemplateError(f"{name!r} is undefined")
    return value


def attr(obj, name: str):
    try:
        return getattr(obj, name)
    except AttributeError:
        pass
    try:
        return obj[name]
    except (TypeError, LookupError, AttributeError):
        raise TemplateError(f"{type(obj).__name__} object has no attribute {name!r}") from None


def item(obj, key):
    try:
        return obj[key]
    except (TypeError, LookupError, AttributeError):
        if isinstance(key, str):
            try:
                return getattr(obj, key)
            except AttributeError:
                pass
    raise TemplateError(f"{type(obj).__name__} object has no item {key!r}")


def imported(exports: dict, template: str, name: str):
    try:
        return exports[name]
    except KeyError:
        raise TemplateError(f"template {template} exports no {name!r}") from None


def _indent(text: str, width: int | str = 4, first: bool = False, blank: bool = False) -> str:
    """Every line after the first (and the first with `first`) indented by
    `width` spaces (or the string `width`), blank lines only with `blank`; a
    final newline stays."""
    pad = width if isinstance(width, str) else " " * width
    first_line, *rest = (text + "\n").splitlines()
    indented = [pad + first_line if first else first_line] + [pad + line if blank or line else line for line in rest]
    return "\n".join(indented)


def _unique(values: Iterable, case_sensitive: bool = False) -> Iterator:
    """Each item once, at its first place; strings compared ignoring case unless `case_sensitive`."""
    seen = set()
    for value in values:
        key = value.lower() if isinstance(value, str) and not case_sensitive else value
        if key not in seen:
            seen.add(key)
            yield value


def _map(values: Iterable, name: str, *args) -> Iterator:
    """The filter `name` (with `args`) applied to each item."""
    applied = FILTERS[name]
    for value in values or ():
        yield applied(value, *args)


def _reject(values: Iterable, test: str | None = None, *args) -> Iterator:
    """The items for which the test `test` (with `args`; none: truth) fails."""
    tried = TESTS[test] if test is not None else (lambda value: value)
    for value in values or ():
        if not tried(value, *args):
            yield value


FILTERS: dict[str, Callable] = {
    "length": len, "count": len, "join": lambda values, d="": str(d).join(map(str, values)),
    "indent": _indent, "unique": _unique, "map": _map, "reject": _reject}
# The arguments of each filter beside its value the compiler lets through: (at
# most so many positional ones, these keywords); map's first names a filter
# taking only the value, reject's a test (jinja2's attribute= forms are not here).
FILTER_ARGUMENTS: dict[str, tuple[int, tuple[str, ...]]] = {
    "length": (0, ()), "count": (0, ()), "join": (1, ()), "indent": (3, ("width", "first", "blank")),
    "unique": (1, ("case_sensitive",)), "map": (1, ()), "reject": (2, ())}
_EQUAL, _UNEQUAL = (lambda a, b: a == b), (lambda a, b: a != b)
TESTS: dict[str, Callable] = {"eq": _EQUAL, "equalto": _EQUAL, "==": _EQUAL, "ne": _UNEQUAL, "!=": _UNEQUAL,
                              "none": lambda value: value is None}
# The names compiled code calls (template_compiler.py: every name it makes starts with _).
RUNTIME = {"_Loop": Loop, "_lookup": lookup, "_attr": attr, "_item": item, "_imported": imported,
           "_FILTERS": FILTERS, "_TESTS": TESTS, "_str": str, "_len": len, "_list": list, "_enumerate": enumerate,
           "_DEFAULT": _MISSING}  # a macro argument left out
