"""@record behaves as @dataclass(frozen=True), @record(frozen=False) as
@dataclass (compiler/records.py): the same fields, construction, errors, repr,
equality, hash, replace, pickling and immutability, on random field layouts;
and it generates no code."""

from __future__ import annotations

import dataclasses
import inspect
import pickle
from dataclasses import field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nnc.records import record

NAMES = ("a", "b", "c", "d", "e")


def _layout_classes(defaults: list[str], flags: list[tuple[bool, bool, bool | None]], frozen: bool = True):
    """The same class body made by @dataclass(frozen=frozen) and by @record(frozen=frozen).
    defaults[i]: "none", "value" or "factory"; flags[i]: (compare, repr, hash)."""
    made = []
    for decorate in (dataclasses.dataclass(frozen=frozen), record(frozen=frozen)):
        namespace = {"__annotations__": {}}
        for name, kind, (compare, shown, hashed) in zip(NAMES, defaults, flags):
            namespace["__annotations__"][name] = "object"
            options = {"compare": compare, "repr": shown, "hash": hashed}
            if kind == "value":
                namespace[name] = field(default=len(name), **options)
            elif kind == "factory":
                namespace[name] = field(default_factory=tuple, **options)
            else:
                namespace[name] = field(**options)
        made.append(decorate(type("Layout", (), namespace)))
    return made


def _outcome(make):
    """What calling `make` gives: ("ok", instance) or ("TypeError", message)."""
    try:
        return "ok", make()
    except TypeError as exc:
        return "TypeError", str(exc)


@st.composite
def layouts(draw):
    count = draw(st.integers(0, len(NAMES)))
    kinds = draw(st.lists(st.sampled_from(["none", "value", "factory"]), min_size=count, max_size=count))
    required = sorted(kinds, key=lambda k: k != "none")  # dataclasses wants defaults last
    flags = draw(st.lists(st.tuples(st.booleans(), st.booleans(), st.sampled_from([None, True, False])),
                          min_size=count, max_size=count))
    return required, flags


@settings(max_examples=300, deadline=None)
@given(layouts(), st.integers(0, 6), st.sets(st.sampled_from(NAMES + ("z",))), st.integers(0, 3), st.booleans())
def test_record_matches_a_dataclass(layout, positional, keywords, seed, frozen):
    defaults, flags = layout
    plain, shared = _layout_classes(defaults, flags, frozen)
    assert [(f.name, f.default, f.default_factory, f.compare, f.repr, f.hash) for f in dataclasses.fields(plain)] \
        == [(f.name, f.default, f.default_factory, f.compare, f.repr, f.hash) for f in dataclasses.fields(shared)]
    assert shared.__doc__ == plain.__doc__  # Layout(a: 'object', b: 'object' = 1, ...)
    assert str(inspect.signature(shared)) == str(inspect.signature(plain))  # help() and IDEs read it
    args = [seed + i for i in range(positional)]
    kwargs = {name: seed * 10 + len(name) for name in sorted(keywords)}
    expected, got = _outcome(lambda: plain(*args, **kwargs)), _outcome(lambda: shared(*args, **kwargs))
    assert expected[0] == got[0]
    if expected[0] == "TypeError":
        assert got[1].replace("Layout", "X") == expected[1].replace("Layout", "X")
        return
    a, b = expected[1], got[1]
    assert repr(b) == repr(a)
    assert dataclasses.asdict(b) == dataclasses.asdict(a)
    twin = shared(*args, **kwargs)
    assert b == twin
    assert b != a  # another class: never equal, as dataclasses
    for name in NAMES[:len(defaults)]:
        changed = dataclasses.replace(b, **{name: "other"})
        compared = dataclasses.fields(shared)[NAMES.index(name)].compare
        assert (changed == b) == (not compared or getattr(b, name) == "other")
    if not frozen:
        assert shared.__hash__ is None is plain.__hash__  # compares by value: unhashable
        if defaults:
            b.a = "set"
            assert b.a == "set"
        return
    assert hash(b) == hash(twin) and hash(b) == hash(a)
    with pytest.raises(dataclasses.FrozenInstanceError):
        b.a = 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        del b.a


@record
class Pickled:
    """A module-level record (pickle finds its class by name)."""

    a: int
    b: tuple = ()
    c: list = field(default_factory=list, compare=False)


def test_a_record_pickles_and_copies():
    import copy

    value = Pickled(1, (2, 3), [4])
    for twin in (pickle.loads(pickle.dumps(value)), copy.copy(value), copy.deepcopy(value)):
        assert twin == value and twin.c == [4] and repr(twin) == repr(value)
        with pytest.raises(dataclasses.FrozenInstanceError):
            twin.a = 2


def test_post_init_and_methods_of_the_body_are_kept():
    @record
    class Scaled:
        """A record checking and deriving in __post_init__."""

        value: int
        double: int = 0

        def __post_init__(self):
            if self.value < 0:
                raise ValueError("negative")
            object.__setattr__(self, "double", 2 * self.value)

        def __repr__(self):
            return f"<{self.value}>"

    assert Scaled(3).double == 6 and repr(Scaled(3)) == "<3>"
    with pytest.raises(ValueError):
        Scaled(-1)


def test_a_record_derives_from_a_record():
    @record
    class Base:
        """A base record."""

        a: int
        b: int = 2

    @record
    class Child(Base):
        """It adds a field."""

        c: int = 3

    assert [f.name for f in dataclasses.fields(Child)] == ["a", "b", "c"]
    assert repr(Child(1, c=4)) == "test_a_record_derives_from_a_record.<locals>.Child(a=1, b=2, c=4)"
    assert Child(1) != Base(1) and Child(1) == Child(1, 2, 3)


def test_a_record_generates_no_code(monkeypatch):
    """No method compiled by exec, the cost @dataclass pays per method."""
    calls = []
    real_exec = exec
    monkeypatch.setattr("builtins.exec", lambda *a, **k: calls.append(a) or real_exec(*a, **k))

    @record
    class Plain:
        """Three fields."""

        a: int
        b: str = ""
        c: tuple = ()

    generated = [text for text, *_ in calls
                 if any(f"def {name}" in text for name in ("__init__", "__repr__", "__eq__", "__hash__",
                                                             "__setattr__", "__delattr__"))]
    assert generated == [] and Plain(1) == Plain(1, "", ())  # (3.13's dataclasses execs one empty builder)


def test_records_and_dataclasses_derive_from_each_other_as_dataclasses_allow():
    @record
    class Base:
        """A frozen record, as nnc's Pass."""

        a: int = 1

    @dataclasses.dataclass(frozen=True)
    class Plugin(Base):  # an out-of-tree pass written the documented way before records
        b: int = 2

    assert Plugin(b=3) == Plugin(1, 3) and [f.name for f in dataclasses.fields(Plugin)] == ["a", "b"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        Plugin().a = 5
    with pytest.raises(TypeError, match="cannot inherit non-frozen dataclass from a frozen one"):
        @dataclasses.dataclass
        class Mutable(Base):
            c: int = 0
    with pytest.raises(TypeError, match="cannot inherit non-frozen dataclass from a frozen one"):
        @record(frozen=False)
        class MutableRecord(Base):
            c: int = 0

    @record(frozen=False)
    class Open:
        """A mutable record."""

        a: int = 1

    with pytest.raises(TypeError, match="cannot inherit frozen dataclass from a non-frozen one"):
        @record
        class Closed(Open):
            b: int = 0


def test_a_plain_subclass_keeps_its_own_attributes_and_signature():
    @record
    class Base:
        """Two fields."""

        a: int
        b: int = 0

    class Plain(Base):
        def __init__(self, a: int):
            super().__init__(a, 2 * a)
            self.note = "set"  # not a field: allowed, as for a dataclass's plain subclass

    value = Plain(3)
    assert (value.a, value.b, value.note) == (3, 6, "set")
    with pytest.raises(dataclasses.FrozenInstanceError):
        value.a = 1
    assert str(inspect.signature(Plain)) == "(a: 'int')"
    assert str(inspect.signature(Base)) == "(a: 'int', b: 'int' = 0) -> None"


def test_what_a_record_does_not_implement_is_refused():
    for body in ({"a": dataclasses.InitVar[int]}, {"a": int, "b": int}):
        namespace = {"__annotations__": body}
        if "b" in body:
            namespace["a"] = 1  # b, without a default, follows a, with one
        with pytest.raises(TypeError, match="a record has no InitVar|without a default follows"):
            record(type("Odd", (), namespace))
    for options in ({"kw_only": True}, {"init": False, "default": 0}):
        with pytest.raises(TypeError, match="kw_only or init=False"):
            record(type("Odd", (), {"__annotations__": {"a": int}, "a": field(**options)}))


def test_an_equality_of_the_body_keeps_the_hash_dataclasses_would_add():
    made = []
    for decorate in (dataclasses.dataclass(frozen=True), record):
        @decorate
        class Keyed:
            """Equal by `key` alone."""

            key: int
            extra: int = 0

            def __eq__(self, other):
                return type(other) is type(self) and self.key == other.key

        made.append(Keyed)
    for cls in made:
        assert hash(cls(1, 2)) == hash((1, 2)) and cls(1, 2) == cls(1, 3)


def test_repr_of_a_record_holding_itself_and_docstrings_of_real_annotations():
    @record(frozen=False)
    class Node:
        """A mutable record that can hold itself."""

        items: list

    node = Node([])
    node.items.append(node)
    assert repr(node) == "test_repr_of_a_record_holding_itself_and_docstrings_of_real_annotations.<locals>.Node(" \
        "items=[...])"
    twins = [decorate(type("Real", (), {"__annotations__": {"a": int, "b": "list[int]"}, "b": field(default_factory=list)}))
             for decorate in (dataclasses.dataclass(frozen=True), record)]
    assert twins[1].__doc__ == twins[0].__doc__ == "Real(a: int, b: 'list[int]' = <factory>)"
