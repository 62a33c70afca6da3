"""ir.Tensor, TensorType and Node write out the methods @dataclass would
generate (ir.py's docstring); they behave as the generated ones do."""

import dataclasses
import inspect
from typing import Any

import pytest

from nnc.ir import Node, QuantParams, Tensor, TensorType


@dataclasses.dataclass(frozen=True)
class GeneratedTensorType:
    dtype: str
    shape: tuple[int, ...]


@dataclasses.dataclass
class GeneratedNode:
    name: str
    op: str
    inputs: list[str]
    outputs: list[str]
    attrs: Any


def _parameters(cls) -> list[tuple[str, Any]]:
    return [(p.name, p.default) for p in inspect.signature(cls).parameters.values()]


def test_tensor_type_is_a_frozen_dataclass():
    t, g = TensorType("f32", (1, 4)), GeneratedTensorType("f32", (1, 4))
    assert repr(t) == repr(g).replace("GeneratedTensorType", "TensorType")
    assert hash(t) == hash(g) and t == TensorType(dtype="f32", shape=(1, 4)) and t != TensorType("i8", (1, 4))
    assert t != g and {t: 1}[TensorType("f32", (1, 4))] == 1
    with pytest.raises(dataclasses.FrozenInstanceError, match="cannot assign to field 'dtype'"):
        t.dtype = "i8"
    with pytest.raises(dataclasses.FrozenInstanceError, match="cannot delete field 'shape'"):
        del t.shape
    assert dataclasses.replace(t, dtype="i8") == TensorType("i8", (1, 4))
    assert TensorType.__dataclass_params__.frozen and TensorType.__match_args__ == ("dtype", "shape")
    assert _parameters(TensorType) == _parameters(GeneratedTensorType)


def test_node_is_a_dataclass():
    n, g = Node("n", "Relu", ["x"], ["y"], None), GeneratedNode("n", "Relu", ["x"], ["y"], None)
    assert repr(n) == repr(g).replace("GeneratedNode", "Node")
    assert n == Node(name="n", op="Relu", inputs=["x"], outputs=["y"], attrs=None) and n != g
    assert n != Node("n", "Relu", ["x"], ["z"], None) and Node.__hash__ is None
    assert [f.name for f in dataclasses.fields(Node)] == ["name", "op", "inputs", "outputs", "attrs"]
    assert _parameters(Node) == _parameters(GeneratedNode)


def test_tensor_is_a_dataclass():
    q = QuantParams((0.5,), (0,))
    t = Tensor("w", "f32", [2], data=[1, 2], quant=q)
    assert t.shape == (2,) and t.data.dtype == "float32"  # __post_init__ ran
    assert t == Tensor("w", "f32", (2,), t.data, None, q) and Tensor.__hash__ is None
    assert dataclasses.replace(t, name="v").name == "v" and dataclasses.replace(t).data is t.data
    assert [f.name for f in dataclasses.fields(Tensor)] == ["name", "dtype", "shape", "data", "layout", "quant"]
    assert list(inspect.signature(Tensor).parameters) == ["name", "dtype", "shape", "data", "layout", "quant"]
