"""Op definitions and the ONNX lowering table, both filled by decorators.

An op is a class registered with `@register_op`. It declares
- `Attrs`: a record (`@record`, records.py: a frozen dataclass) of typed
  attributes (fields of int, float, str, bool, None or tuples of those), so no
  code reads attributes by string key;
- `infer(attrs, inputs) -> outputs`: output `TensorType`s from input ones
  (None for an omitted optional input); raises ShapeError on a mismatch;
- `evaluate(attrs, inputs) -> outputs`: the reference semantics in numpy;
- optional `macs(attrs, inputs, outputs)` and `param_inputs` for `nnc inspect`,
  and `elementwise = True` when the op acts on every element alike (the layout
  pass moves transposes through such ops).

An ONNX lowering is a function registered with `@lowers("OnnxOp")`; it receives an
`OnnxNode` and returns a `Lowered` IR op (or None when the node is a no-op that
forwards its input). Adding an op touches its own module and its entry in
`compiler/ops/catalog.py`.

Op modules are imported on demand: `get_op` and `lowering` import the module
that catalog.py names for an op not registered yet, `all_ops` and
`supported_onnx_ops` import them all.
"""

from __future__ import annotations

import dataclasses
import importlib
import typing
from typing import Any, Callable, ClassVar

import numpy as np

from ..errors import IRError, UnsupportedError
from ..ir import TensorType
from ..records import record
from .catalog import LOWERING_MODULES, OP_MODULES


@record
class NoAttrs:
    """Attributes of an op that has none."""


class OpDef:
    """Base class of op definitions; see the module docstring."""

    name: ClassVar[str]
    Attrs: ClassVar[type] = NoAttrs
    elementwise: ClassVar[bool] = False
    param_inputs: ClassVar[tuple[int, ...] | None] = None  # None: every constant input

    @staticmethod
    def infer(attrs, inputs: list[TensorType | None]) -> list[TensorType]:
        raise NotImplementedError

    @staticmethod
    def evaluate(attrs, inputs: list[np.ndarray | None]) -> list[np.ndarray]:
        raise NotImplementedError

    @staticmethod
    def macs(attrs, inputs: list[TensorType | None], outputs: list[TensorType]) -> int:
        return 0


_OPS: dict[str, type[OpDef]] = {}
_LOWERINGS: dict[str, Callable[["OnnxNode"], "Lowered | None"]] = {}


def register_op(cls: type[OpDef]) -> type[OpDef]:
    if cls.name in _OPS:
        raise RuntimeError(f"op {cls.name} registered twice")
    _OPS[cls.name] = cls
    return cls


def lowers(*onnx_ops: str):
    """Register the decorated function as the lowering of the named ONNX ops."""

    def decorate(fn):
        for op in onnx_ops:
            _LOWERINGS[op] = fn
        return fn

    return decorate


def _modules_defining(table: dict[str, str]) -> dict[str, str]:
    """{name: module} from catalog.py's {module: names}."""
    return {name: module for module, names in table.items() for name in names.split()}


_OP_MODULE = _modules_defining(OP_MODULES)
_LOWERING_MODULE = _modules_defining(LOWERING_MODULES)


def _import_op_module(module: str | None) -> None:
    if module is not None:
        importlib.import_module(f"{__package__}.{module}")


def get_op(name: str) -> type[OpDef]:
    try:
        return _OPS[name]
    except KeyError:
        pass
    _import_op_module(_OP_MODULE.get(name))
    try:
        return _OPS[name]
    except KeyError:
        raise IRError(f"unknown op {name!r}") from None


def _import_all() -> None:
    for module in dict.fromkeys([*OP_MODULES, *LOWERING_MODULES]):
        _import_op_module(module)


def all_ops() -> dict[str, type[OpDef]]:
    _import_all()
    return dict(_OPS)


def lowering(onnx_op: str):
    if onnx_op not in _LOWERINGS:
        _import_op_module(_LOWERING_MODULE.get(onnx_op))
    return _LOWERINGS.get(onnx_op)


def supported_onnx_ops() -> list[str]:
    _import_all()
    return sorted(_LOWERINGS)


# -- attributes ------------------------------------------------------------------
def make_attrs(cls: type, values: dict[str, Any]):
    """Build attribute dataclass `cls` from plain values (lists become tuples).
    Raises IRError naming the unknown or missing attribute."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(values) - set(fields)
    if unknown:
        raise IRError(f"{cls.__qualname__}: unknown attribute(s) {', '.join(sorted(unknown))}")
    hints = typing.get_type_hints(cls)
    coerced = {k: _coerce(hints[k], v) for k, v in values.items()}
    try:
        return cls(**coerced)
    except TypeError as exc:
        raise IRError(f"{cls.__qualname__}: {exc}") from None


def _coerce(hint, value):
    if isinstance(value, list):
        value = tuple(value)
    args = typing.get_args(hint)
    if float in args or hint is float:
        if isinstance(value, int) and not isinstance(value, bool):
            return float(value)
    if isinstance(value, tuple) and any(typing.get_args(a) == (float, ...) for a in (hint, *args)):
        return tuple(float(v) for v in value)
    return value


def attrs_dict(attrs) -> dict[str, Any]:
    """Field name -> value, in declaration order."""
    return {f.name: getattr(attrs, f.name) for f in dataclasses.fields(attrs)}


# -- lowering from ONNX ------------------------------------------------------------
@record(frozen=False)
class Lowered:
    """The IR op an ONNX node becomes. `inputs` default to the node's inputs."""

    op: str
    attrs: Any = NoAttrs()
    inputs: list[str] | None = None


@record(frozen=False)
class OnnxNode:
    """What a lowering sees of one ONNX node."""

    name: str
    op_type: str
    inputs: list[str]
    outputs: list[str]
    attributes: dict[str, Any]
    opset: int
    constants: dict[str, np.ndarray]
    input_types: list[TensorType | None]

    def attr(self, key: str, default=None):
        return self.attributes.get(key, default)

    def const_input(self, index: int, what: str) -> np.ndarray | None:
        """Data of optional constant input `index`; None if omitted.
        Raises UnsupportedError when the input is computed at run time."""
        if index >= len(self.inputs) or not self.inputs[index]:
            return None
        name = self.inputs[index]
        if name not in self.constants:
            raise UnsupportedError(f"{self.op_type} node {self.name!r}: {what} must be a constant")
        return self.constants[name]

    def unsupported(self, why: str) -> UnsupportedError:
        return UnsupportedError(f"{self.op_type} node {self.name!r}: {why}")

    def require_unused_outputs(self, first: int) -> None:
        """Refuse the node if any output from index `first` on is used."""
        if any(self.outputs[first:]):
            raise self.unsupported(f"output #{first} (training or index output) is not supported")
