"""Records: frozen dataclasses whose methods are shared instead of generated.

`@dataclass(frozen=True)` writes six methods per class as source text and
compiles them: 0.4-0.55 ms per class on CPython 3.10 to 3.13, about 45 ms of
every `nnc compile` for the hundred records it imports (op attributes, passes,
plans): 20% of the instructions of an int8 MLPerf compile (issue 14).
`@record` makes the same class with no code generated: dataclasses processes
the fields (so `fields`, `replace`, `asdict`, `is_dataclass` and pattern
matching work as on any dataclass) and the class takes one shared `__init__`,
`__repr__`, `__eq__`, `__hash__`, `__setattr__` and `__delattr__` reading a
table of its fields. A record shows the signature a dataclass would have
(`inspect.signature`, help()), and type checkers see it as a dataclass
(`dataclass_transform`). Building an instance from keywords costs about 1 µs
more, so the classes built thousands of times per compile (ir.TensorType,
Tensor, Node) stay dataclasses.

Invariants, as for `@dataclass(frozen=True)`: arguments positional or by
keyword in field order, defaults and `default_factory`, `__post_init__`
(which sets a field through `object.__setattr__`); the same TypeError
messages for a missing, unknown or repeated argument; equality of the same
class only, comparing the tuples of the fields with compare=True (as
dataclasses before Python 3.13, where an object, a shared NaN say, equals
itself), and a hash over the fields dataclasses would hash; repr
`Name(a=1, b=2)` of the fields with repr=True; assigning or deleting a field
raises FrozenInstanceError. A method the class body defines is kept. Records
and dataclasses derive from each other as dataclasses allow (a frozen record
counts as frozen). `@record(frozen=False)` stands for a plain `@dataclass`
the same way. Refused with a TypeError: InitVar, kw_only and init=False
fields, and a field without a default after one with a default.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from dataclasses import MISSING, FrozenInstanceError
from operator import attrgetter
from reprlib import recursive_repr
from typing import NamedTuple

try:
    from typing import dataclass_transform
except ImportError:  # Python 3.10: typing_extensions, a dependency there (pyproject.toml)
    from typing_extensions import dataclass_transform


class _Layout(NamedTuple):
    """What the shared methods read of one record class."""

    names: tuple[str, ...]  # of the __init__ arguments, in field order
    position: dict[str, int]  # of each __init__ argument
    required: int  # how many arguments (the first ones) have no default
    defaults: dict[str, object]  # {argument: default} in field order, MISSING for none or a factory
    factories: tuple[tuple[str, Callable[[], object]], ...]  # (argument, default_factory)
    compared: Callable[[object], tuple]  # the values equality compares
    hashed: Callable[[object], tuple]  # the values the hash covers
    shown: tuple[str, ...]
    post_init: bool


class _Signature:
    """A record class's `__signature__` (inspect.signature, help), built when
    read: that of the __init__ dataclasses would generate, without `self`; for
    a plain subclass, that of the __init__ it calls."""

    def __get__(self, instance, owner: type):
        if instance is not None:  # an instance's signature is its __call__'s, as for any object
            raise AttributeError("__signature__")
        maker = next(klass for klass in owner.__mro__ if "__init__" in klass.__dict__)
        if "__record__" not in maker.__dict__ or maker.__init__ is not _init:
            return inspect.Signature(list(inspect.signature(maker.__init__).parameters.values())[1:])
        parameters = [inspect.Parameter(f.name, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=f.type,
                                        default=f.default if f.default is not MISSING else
                                        dataclasses._HAS_DEFAULT_FACTORY if f.default_factory is not MISSING
                                        else inspect.Parameter.empty)
                      for f in dataclasses.fields(maker)]
        return inspect.Signature(parameters, return_annotation=None)


@dataclass_transform(frozen_default=True)
def record(cls: type | None = None, /, *, frozen: bool = True):
    """`cls` as a frozen dataclass with shared methods (see the module docstring);
    `@record(frozen=False)` as a plain `@dataclass`: assignable, and unhashable
    as dataclasses makes a class that compares by value."""
    if cls is None:
        return lambda undecorated: record(undecorated, frozen=frozen)
    undocumented = not cls.__doc__
    if undocumented:  # else dataclasses derives one from inspect.signature, 0.5 ms
        cls.__doc__ = cls.__name__
    implicit_hash = "__eq__" in cls.__dict__ and cls.__dict__.get("__hash__", MISSING) is None  # Python set it
    bases = [getattr(b, "__dataclass_params__", None) for b in cls.__mro__[1:]]
    frozen_bases = [params for params in bases if params is not None and params.frozen]
    if frozen and any(params is not None and not params.frozen for params in bases):
        raise TypeError("cannot inherit frozen dataclass from a non-frozen one")
    if frozen_bases and not frozen:
        raise TypeError("cannot inherit non-frozen dataclass from a frozen one")
    # dataclasses would write __setattr__ and __delattr__ for a child of a frozen
    # base (and refuses to make it unfrozen): the bases read as unfrozen while it
    # processes this class, which the shared methods then freeze
    for params in frozen_bases:
        params.frozen = False
    try:
        cls = dataclasses.dataclass(init=False, repr=False, eq=False)(cls)
    finally:
        for params in frozen_bases:
            params.frozen = True
    cls.__dataclass_params__.frozen = frozen  # what dataclasses checks of a class deriving from this one
    fields = dataclasses.fields(cls)
    _refuse_unsupported(cls, fields)
    if undocumented:  # as dataclasses words it: Name(a: int, b: str = '', c: list = <factory>)
        cls.__doc__ = f"{cls.__name__}({', '.join(map(_described, fields))})"
    cls.__record__ = _Layout(
        names=tuple(f.name for f in fields), position={f.name: i for i, f in enumerate(fields)},
        required=sum(f.default is MISSING and f.default_factory is MISSING for f in fields),
        defaults={f.name: f.default for f in fields},
        factories=tuple((f.name, f.default_factory) for f in fields if f.default_factory is not MISSING),
        compared=_values([f.name for f in fields if f.compare]),
        hashed=_values([f.name for f in fields if (f.compare if f.hash is None else f.hash)]),
        shown=tuple(f.name for f in fields if f.repr),
        post_init=hasattr(cls, "__post_init__"))
    for name, method in (_SHARED if frozen else _SHARED_MUTABLE).items():
        if name not in cls.__dict__ or (name == "__hash__" and implicit_hash):
            setattr(cls, name, method)
    cls.__signature__ = _SIGNATURE
    return cls


def _refuse_unsupported(cls: type, fields: tuple[dataclasses.Field, ...]) -> None:
    """TypeError for what a record does not implement (no nnc record uses it)."""
    unsupported = [f.name for f in fields if not f.init or f.kw_only is True]
    unsupported += [name for name, f in cls.__dataclass_fields__.items()
                    if f._field_type is dataclasses._FIELD_INITVAR]  # dataclasses' own marker of an InitVar
    if unsupported:
        raise TypeError(f"{cls.__qualname__}: a record has no InitVar, kw_only or init=False fields "
                        f"({', '.join(unsupported)})")
    defaulted = [f.default is not MISSING or f.default_factory is not MISSING for f in fields]
    if any(later < earlier for earlier, later in zip(defaulted, defaulted[1:])):
        raise TypeError(f"{cls.__qualname__}: a field without a default follows one with a default")


def _described(f: dataclasses.Field) -> str:
    default = "" if f.default is MISSING and f.default_factory is MISSING else \
        f" = {f.default!r}" if f.default is not MISSING else " = <factory>"
    return f"{f.name}: {inspect.formatannotation(f.type)}{default}"


def _values(names: list[str]) -> Callable[[object], tuple]:
    """obj -> the tuple of its attributes `names` (attrgetter's speed; a tuple also for one name)."""
    if len(names) > 1:
        return attrgetter(*names)
    if names:
        one = attrgetter(names[0])
        return lambda obj: (one(obj),)
    return lambda obj: ()


def _init(self, *args, **kwargs) -> None:
    layout = type(self).__record__
    if kwargs or len(args) != len(layout.names):
        self.__dict__.update(_arguments(type(self), args, kwargs))
    else:
        self.__dict__.update(zip(layout.names, args))  # in field order, as dataclasses sets them
    if layout.post_init:
        self.__post_init__()


def _arguments(cls: type, args: tuple, kwargs: dict) -> dict:
    """{argument: value} of every __init__ argument in field order (defaults
    filled in), or the TypeError Python raises for the call."""
    layout = cls.__record__
    given = len(args)
    values = layout.defaults.copy()  # MISSING where there is none or a factory
    values.update(zip(layout.names, args))
    values.update(kwargs)
    if len(values) > len(layout.names) or (given and any(layout.position[name] < given for name in kwargs)):
        for name in kwargs:  # the first mistake in order, as Python reports it
            if layout.position.get(name, -1) < given:
                problem = "multiple values for argument" if name in layout.position else \
                    "an unexpected keyword argument"
                raise TypeError(f"{cls.__qualname__}.__init__() got {problem} {name!r}")
    if given > len(layout.names):
        raise TypeError(_too_many(cls, given))
    if given < layout.required:
        missing = [repr(name) for name in layout.names[given:layout.required] if name not in kwargs]
        if missing:
            raise TypeError(_missing(cls, missing))
    for name, factory in layout.factories:
        if values[name] is MISSING:
            values[name] = factory()
    return values


def _too_many(cls: type, given: int) -> str:
    layout = cls.__record__
    count, required = len(layout.names), layout.required
    takes = f"{count + 1}" if required == count else f"from {required + 1} to {count + 1}"
    return (f"{cls.__qualname__}.__init__() takes {takes} positional argument{'s' * (takes != '1')} "
            f"but {given + 1} were given")


def _missing(cls: type, missing: list[str]) -> str:
    listed = missing[0] if len(missing) == 1 else \
        f"{', '.join(missing[:-1])}{',' * (len(missing) > 2)} and {missing[-1]}"
    return (f"{cls.__qualname__}.__init__() missing {len(missing)} required positional "
            f"argument{'s' * (len(missing) > 1)}: {listed}")


@recursive_repr()
def _repr(self) -> str:
    shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in type(self).__record__.shown)
    return f"{type(self).__qualname__}({shown})"


def _eq(self, other):
    if other.__class__ is not self.__class__:
        return NotImplemented
    compared = type(self).__record__.compared
    return compared(self) == compared(other)


def _hash(self) -> int:
    return hash(type(self).__record__.hashed(self))


def _setattr(self, name: str, value) -> None:
    if "__record__" in type(self).__dict__ or name in type(self).__record__.position:
        raise FrozenInstanceError(f"cannot assign to field {name!r}")
    object.__setattr__(self, name, value)  # a plain subclass's own attribute


def _delattr(self, name: str) -> None:
    if "__record__" in type(self).__dict__ or name in type(self).__record__.position:
        raise FrozenInstanceError(f"cannot delete field {name!r}")
    object.__delattr__(self, name)


_SHARED = {"__init__": _init, "__repr__": _repr, "__eq__": _eq, "__hash__": _hash,
           "__setattr__": _setattr, "__delattr__": _delattr}
_SHARED_MUTABLE = {"__init__": _init, "__repr__": _repr, "__eq__": _eq, "__hash__": None}
_SIGNATURE = _Signature()
