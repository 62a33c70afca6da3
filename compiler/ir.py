"""The graph IR: tensors, nodes and the graph that connects them.

A `Graph` holds its nodes by name; node A precedes node B when B reads a tensor
A produces (`producer`/`consumers` index those links). Tensors live in
`Graph.tensors`. Invariants that the
mutation methods keep and `verifier.verify` checks:

- every tensor is produced by at most one node, and graph inputs and constants by none;
- node and tensor names are unique;
- the producer and consumer indexes always agree with the nodes' input and output lists;
- `states` pairs a graph input with a graph output of the same type that a
  caller feeds back into it on the next run (a recurrent state exposed for
  streaming, passes/expose_states.py); passes keep input and output names, so
  the pairs stay valid;
- `nodes()` returns a deterministic topological order: among ready nodes, the one
  inserted first comes first, so a printed and re-parsed graph keeps its order.

Tensor, TensorType and Node are dataclasses whose methods are written out as
@dataclass would generate them (it compiles them from source text at every
start, 8 M instructions for the three); they are built thousands of times per
compile, which is why they are not records (records.py).
"""

from __future__ import annotations

import heapq
from dataclasses import FrozenInstanceError, dataclass, field
from typing import Any, Iterator

import numpy as np

from . import dtypes
from .errors import IRError
from .records import record


@record
class QuantParams:
    """Affine quantization r = scale * (q - zero_point), per tensor or per `axis`."""

    scale: tuple[float, ...]
    zero_point: tuple[int, ...]
    axis: int | None = None

    def __post_init__(self):
        if len(self.scale) != len(self.zero_point):
            raise IRError("quantization scale and zero point differ in length")
        if self.axis is None and len(self.scale) != 1:
            raise IRError("per-tensor quantization needs exactly one scale")


@dataclass(init=False, repr=False, eq=False)  # the methods below (module docstring)
class Tensor:
    """A value in the graph. `data` is set for constants (then its dtype and
    shape equal `dtype` and `shape`). `layout` names the axes of a spatial tensor
    ("NCHW", "NHWC", ...) or is None when axes carry no spatial meaning."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    data: np.ndarray | None = None
    layout: str | None = None
    quant: QuantParams | None = None

    def __init__(self, name: str, dtype: str, shape: tuple[int, ...], data: np.ndarray | None = None,
                 layout: str | None = None, quant: QuantParams | None = None) -> None:
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.data = data
        self.layout = layout
        self.quant = quant
        self.__post_init__()

    def __eq__(self, other):
        if other.__class__ is not self.__class__:
            return NotImplemented
        return ((self.name, self.dtype, self.shape, self.data, self.layout, self.quant)
                == (other.name, other.dtype, other.shape, other.data, other.layout, other.quant))

    def __post_init__(self):
        self.shape = tuple(int(d) for d in self.shape)
        if self.dtype not in dtypes.NUMPY:
            raise IRError(f"tensor {self.name!r}: unknown dtype {self.dtype!r}")
        if self.data is not None:
            self.data = np.asarray(self.data, dtype=dtypes.to_numpy(self.dtype), order="C")
            if tuple(self.data.shape) != self.shape:
                raise IRError(f"tensor {self.name!r}: data shape {self.data.shape} != {self.shape}")

    @property
    def is_constant(self) -> bool:
        return self.data is not None

    def __repr__(self) -> str:
        """One line, without the data (a weight's values are for print_ir or .data)."""
        kind = ", constant" if self.data is not None else ""
        extra = "".join(f", {key}={value!r}" for key, value in (("layout", self.layout), ("quant", self.quant))
                        if value is not None)
        return f"Tensor({self.name!r}, {self.dtype}, {list(self.shape)}{kind}{extra})"

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        return self.size * dtypes.to_numpy(self.dtype).itemsize


@dataclass(init=False, repr=False, eq=False)  # frozen; the methods below (module docstring)
class TensorType:
    """What shape inference knows about a value: element type and shape."""

    dtype: str
    shape: tuple[int, ...]

    def __init__(self, dtype: str, shape: tuple[int, ...]) -> None:
        object.__setattr__(self, "dtype", dtype)
        object.__setattr__(self, "shape", shape)

    def __repr__(self) -> str:
        return f"{type(self).__qualname__}(dtype={self.dtype!r}, shape={self.shape!r})"

    def __eq__(self, other):
        if other.__class__ is not self.__class__:
            return NotImplemented
        return (self.dtype, self.shape) == (other.dtype, other.shape)

    def __hash__(self) -> int:
        return hash((self.dtype, self.shape))

    def __setattr__(self, name: str, value) -> None:
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete field {name!r}")


TensorType.__dataclass_params__.frozen = True  # as dataclasses records it for @dataclass(frozen=True)


@dataclass(init=False, repr=False, eq=False)  # the methods below (module docstring)
class Node:
    """One operation. `attrs` is the op's frozen attribute dataclass; an input
    name "" stands for an omitted optional input."""

    name: str
    op: str
    inputs: list[str]
    outputs: list[str]
    attrs: Any

    def __init__(self, name: str, op: str, inputs: list[str], outputs: list[str], attrs: Any) -> None:
        self.name = name
        self.op = op
        self.inputs = inputs
        self.outputs = outputs
        self.attrs = attrs

    def __repr__(self) -> str:
        return (f"{type(self).__qualname__}(name={self.name!r}, op={self.op!r}, inputs={self.inputs!r}, "
                f"outputs={self.outputs!r}, attrs={self.attrs!r})")

    def __eq__(self, other):
        if other.__class__ is not self.__class__:
            return NotImplemented
        return ((self.name, self.op, self.inputs, self.outputs, self.attrs)
                == (other.name, other.op, other.inputs, other.outputs, other.attrs))


@record(frozen=False)
class Graph:
    name: str
    tensors: dict[str, Tensor] = field(default_factory=dict)
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    states: list[tuple[str, str]] = field(default_factory=list)  # (input, output) pairs a caller feeds back
    _nodes: dict[str, Node] = field(default_factory=dict, repr=False)  # in insertion order
    _seq: dict[str, int] = field(default_factory=dict, repr=False)  # insertion number per node
    _producer: dict[str, str] = field(default_factory=dict, repr=False)
    _consumers: dict[str, list[str]] = field(default_factory=dict, repr=False)
    _inserted: int = field(default=0, repr=False)
    _order: list[Node] | None = field(default=None, repr=False, compare=False)  # nodes() until the next edit

    def __repr__(self) -> str:
        """One line: the name, the counts and the interface (print_ir shows the rest)."""
        return (f"Graph({self.name!r}, {len(self._nodes)} nodes, {len(self.tensors)} tensors, "
                f"inputs={self.inputs}, outputs={self.outputs})")

    # -- tensors -------------------------------------------------------------
    def add_tensor(self, tensor: Tensor) -> Tensor:
        if tensor.name in self.tensors:
            raise IRError(f"tensor {tensor.name!r} is defined twice")
        if not tensor.name:
            raise IRError("a tensor needs a non-empty name")
        self.tensors[tensor.name] = tensor
        return tensor

    def add_constant(self, name: str, data: np.ndarray, **kwargs) -> Tensor:
        data = np.asarray(data)
        return self.add_tensor(Tensor(self.unique_tensor_name(name), dtypes.from_numpy(data.dtype),
                                      data.shape, data=data, **kwargs))

    def tensor(self, name: str) -> Tensor:
        try:
            return self.tensors[name]
        except KeyError:
            raise IRError(f"unknown tensor {name!r}") from None

    def constant(self, name: str) -> np.ndarray | None:
        """The data of tensor `name` if it is a constant, else None."""
        return self.tensors[name].data if name else None

    def unique_tensor_name(self, base: str) -> str:
        return _unique(base, self.tensors)

    def unique_node_name(self, base: str) -> str:
        return _unique(base, self._nodes)

    # -- nodes ---------------------------------------------------------------
    def add_node(self, node: Node) -> Node:
        if node.name in self._nodes:
            raise IRError(f"node {node.name!r} is defined twice")
        for out in node.outputs:
            if out and out in self._producer:
                raise IRError(f"tensor {out!r} is produced twice")
        self._nodes[node.name] = node
        self._order = None
        self._seq[node.name] = self._inserted
        self._inserted += 1
        for out in filter(None, node.outputs):  # "" is an omitted output
            self._producer[out] = node.name
        self._connect_inputs(node)
        return node

    def remove_node(self, name: str) -> None:
        node = self.node(name)
        self._disconnect_inputs(node)
        for out in filter(None, node.outputs):
            del self._producer[out]
        del self._nodes[name], self._seq[name]
        self._order = None

    def set_inputs(self, node: Node, inputs: list[str]) -> None:
        self._disconnect_inputs(node)
        node.inputs = list(inputs)
        self._connect_inputs(node)
        self._order = None

    def replace_uses(self, old: str, new: str) -> None:
        """Make every consumer of tensor `old`, and the graph outputs, use `new`."""
        for consumer in list(self.consumers(old)):
            self.set_inputs(consumer, [new if t == old else t for t in consumer.inputs])
        self.outputs = [new if t == old else t for t in self.outputs]

    def node(self, name: str) -> Node:
        try:
            return self._nodes[name]
        except KeyError:
            raise IRError(f"unknown node {name!r}") from None

    def producer(self, tensor: str) -> Node | None:
        name = self._producer.get(tensor)
        return self._nodes[name] if name is not None else None

    def consumers(self, tensor: str) -> list[Node]:
        nodes = self._nodes
        return [nodes[n] for n in dict.fromkeys(self._consumers.get(tensor, ()))]

    def uses(self, tensor: str) -> int:
        """How many node inputs and graph outputs read `tensor`."""
        return len(self._consumers.get(tensor, [])) + self.outputs.count(tensor)

    def nodes(self) -> list[Node]:
        """All nodes in deterministic topological order (see module docstring);
        the order is kept until a node is added, removed or rewired
        (`set_inputs`, the one way to change a node's inputs)."""
        if self._order is None:
            self._order = self._topological_order()
        return list(self._order)

    def _topological_order(self) -> list[Node]:
        waiting = {}  # node name -> producers of its inputs not yet placed
        readers: dict[str, list[str]] = {}
        for name, node in self._nodes.items():
            producers = {self._producer[t] for t in node.inputs if t in self._producer}
            waiting[name] = len(producers)
            for producer in producers:
                readers.setdefault(producer, []).append(name)
        ready = [(self._seq[name], name) for name, count in waiting.items() if count == 0]
        heapq.heapify(ready)
        order = []
        while ready:
            name = heapq.heappop(ready)[1]
            order.append(self._nodes[name])
            for reader in readers.get(name, ()):
                waiting[reader] -= 1
                if waiting[reader] == 0:
                    heapq.heappush(ready, (self._seq[reader], reader))
        if len(order) != len(self._nodes):
            raise IRError(f"graph {self.name!r} has a cycle")
        return order

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes())

    def __len__(self) -> int:
        return len(self._nodes)

    def has_node(self, name: str) -> bool:
        return name in self._nodes

    # -- whole-graph helpers -------------------------------------------------
    def remove_dead(self) -> None:
        """Drop nodes none of whose outputs is used, then unused tensors."""
        changed = True
        while changed:
            changed = False
            for node in reversed(self.nodes()):
                if not any(self.uses(t) for t in node.outputs):
                    self.remove_node(node.name)
                    changed = True
        used = set(self.inputs) | set(self.outputs) | set(self._producer)
        used |= {t for node in self._nodes.values() for t in node.inputs if t}
        self.tensors = {k: v for k, v in self.tensors.items() if k in used}

    def copy(self) -> "Graph":
        """Deep copy; constant arrays, shapes and quantization records are shared
        (they are never mutated in place). The clone holds its nodes as if added
        one by one in this graph's topological order, so that order is its own
        `nodes()` from the start (a topological numbering sorts to itself)."""
        clone = Graph(self.name)
        clone.tensors = {name: _shallow_copy(tensor) for name, tensor in self.tensors.items()}
        clone.inputs, clone.outputs, clone.states = list(self.inputs), list(self.outputs), list(self.states)
        order = [Node(node.name, node.op, list(node.inputs), list(node.outputs), node.attrs) for node in self.nodes()]
        for seq, node in enumerate(order):
            clone._nodes[node.name] = node
            clone._seq[node.name] = seq
            for out in filter(None, node.outputs):
                clone._producer[out] = node.name
            clone._connect_inputs(node)
        clone._inserted, clone._order = len(order), order
        return clone

    # -- internals -----------------------------------------------------------
    def _connect_inputs(self, node: Node) -> None:
        for tensor in node.inputs:
            if not tensor:
                continue
            self._consumers.setdefault(tensor, []).append(node.name)

    def _disconnect_inputs(self, node: Node) -> None:
        for tensor in node.inputs:
            if not tensor:
                continue
            self._consumers[tensor].remove(node.name)
            if not self._consumers[tensor]:
                del self._consumers[tensor]


def _shallow_copy(tensor: Tensor) -> Tensor:
    """A new Tensor with the same field values (already checked by __post_init__)."""
    clone = object.__new__(Tensor)
    clone.__dict__.update(tensor.__dict__)
    return clone


def _unique(base: str, taken) -> str:
    if base not in taken:
        return base
    i = 1
    while f"{base}_{i}" in taken:
        i += 1
    return f"{base}_{i}"
