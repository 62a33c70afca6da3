"""Quantization groups: the unit that one integer op replaces.

A group is DequantizeLinear(s) → float op → [Relu/Clip ...] → QuantizeLinear:
- every input of the float op that carries data comes from a per-tensor
  DequantizeLinear (`Operand`: the 8-bit tensor it reads and its parameters);
  weights and biases come from a DequantizeLinear of constants, read by the rules;
- the op's output is read by a chain of Relu/Clip nodes (possibly empty), each
  read only by the next, and the chain's end only by one per-tensor
  QuantizeLinear, whose parameters become the integer op's output parameters and
  whose output tensor the integer op produces (so names and types downstream do
  not change). The chain's bounds become the integer op's clamp.

`match` finds the group of a float op or raises one UnsupportedError that names
the node and says what is missing. `RULES` maps op names to lowering rules,
registered with `@rule`; a rule receives the graph (with the group's float
nodes already removed) and the group, and must produce `group.output`.
`rule_for` and `node_rule_for` look a rule up, importing the module that
RULE_MODULES names for the op on its first lookup.
"""

from __future__ import annotations

import importlib
from dataclasses import field
from typing import Callable

from ..errors import UnsupportedError
from ..ir import Graph, Node
from ..records import record
from .params import Affine, qdq_affine

CLAMPS = ("Relu", "Clip")


@record
class Operand:
    """An 8-bit tensor read through a DequantizeLinear with parameters `affine`."""

    tensor: str
    affine: Affine


@record(frozen=False)
class Group:
    node: Node
    operands: list[Operand | None]  # per input of node; None: constant or absent
    output: str  # the 8-bit tensor the group must produce
    out: Affine
    clamp: tuple[float | None, float | None] = (None, None)
    absorbed: list[Node] = field(default_factory=list)  # clamp chain, then the QuantizeLinear

    @property
    def name(self) -> str:
        return self.node.name

    def bounds(self, extra: tuple[float | None, float | None] = (None, None)) -> tuple[int, int]:
        """Integer output clamp: the type's range ∩ the chain's clamp ∩ `extra`."""
        lo, hi = intersect(self.clamp, extra)
        return self.out.bounds(lo, hi)

    def operand(self, index: int) -> Operand:
        op = self.operands[index] if index < len(self.operands) else None
        if op is None:
            raise UnsupportedError(f"{self.node.op} node {self.name!r}: input #{index} is not a dequantized "
                                   "8-bit tensor")
        return op


Rule = Callable[[Graph, Group], None]
RULES: dict[str, Rule] = {}


def rule(*ops: str):
    """Register the decorated function as the lowering rule of the named float ops."""

    def decorate(fn: Rule) -> Rule:
        for op in ops:
            RULES[op] = fn
        return fn

    return decorate


NodeRule = Callable[[Graph, Node], None]
NODE_RULES: dict[str, NodeRule] = {}


def node_rule(*ops: str):
    """Register the decorated function as the lowering of the named float ops that
    are not groups (several outputs, each read by its own QuantizeLinear, e.g.
    LSTM): it receives the graph and the float node, and replaces both the node
    and the QuantizeLinear of its outputs."""

    def decorate(fn: NodeRule) -> NodeRule:
        for op in ops:
            NODE_RULES[op] = fn
        return fn

    return decorate


# The module (of this package) whose @rule or @node_rule lowers each float op.
# tests/quantizer/test_rule_modules.py checks that importing a module alone
# registers its ops, and that every rule is listed.
RULE_MODULES: dict[str, str] = {
    "rules": "Sigmoid Tanh HardSwish HardSigmoid LeakyRelu ThresholdedRelu Elu Selu Relu Clip AveragePool "
             "GlobalAveragePool Softmax LogSoftmax Reshape Transpose MaxPool GlobalMaxPool Identity Dropout Pad "
             "Concat",
    "indexing": "Gather Slice Expand Tile",
    "linear": "Conv Gemm",
    "rules_transformer": "ReduceSum ReduceMean ReduceMax MatMul LayerNormalization",
    "resize_rules": "Resize",
    "rules_elementwise": "Mul Add Sub Div BatchNormalization PRelu Erf Sqrt Exp Log Neg Abs Reciprocal Sign Sin Cos "
                         "Silu Softplus Softsign Mish Gelu Pow",
    "rules_recurrent": "LSTM GRU RNN",
}
_RULE_MODULE = {op: module for module, ops in RULE_MODULES.items() for op in ops.split()}


def _import_rules(op: str) -> None:
    module = _RULE_MODULE.get(op)
    if module is not None and op not in RULES and op not in NODE_RULES:
        importlib.import_module(f"{__package__}.{module}")


def rule_for(op: str) -> Rule | None:
    """The lowering rule of float op `op` (None if it has none)."""
    _import_rules(op)
    return RULES.get(op)


def node_rule_for(op: str) -> NodeRule | None:
    """The node rule of float op `op` (None if it has none)."""
    _import_rules(op)
    return NODE_RULES.get(op)


def quantizable_ops() -> list[str]:
    """Every op with a lowering rule (imports every rule module)."""
    for module in RULE_MODULES:
        importlib.import_module(f"{__package__}.{module}")
    return sorted(RULES)


def intersect(a: tuple, b: tuple) -> tuple[float | None, float | None]:
    lows = [v for v in (a[0], b[0]) if v is not None]
    highs = [v for v in (a[1], b[1]) if v is not None]
    return (max(lows) if lows else None), (min(highs) if highs else None)


def clamp_of(node: Node) -> tuple[float | None, float | None]:
    return (0.0, None) if node.op == "Relu" else (node.attrs.min, node.attrs.max)


def clamp_chain(graph: Graph, tensor: str) -> list[Node]:
    """The Relu/Clip nodes after `tensor`, each the only reader of the one before."""
    chain = []
    while tensor not in graph.outputs and graph.uses(tensor) == 1:
        (reader,) = graph.consumers(tensor)
        if reader.op not in CLAMPS:
            break
        chain.append(reader)
        tensor = reader.outputs[0]
    return chain


def chain_end(graph: Graph, tensor: str) -> str:
    chain = clamp_chain(graph, tensor)
    return chain[-1].outputs[0] if chain else tensor


def only_quantize(graph: Graph, tensor: str) -> Node | None:
    """The QuantizeLinear that is the only reader of `tensor`, if there is one."""
    if tensor in graph.outputs or graph.uses(tensor) != 1:
        return None
    (reader,) = graph.consumers(tensor)
    return reader if reader.op == "QuantizeLinear" else None


def operand_of(graph: Graph, tensor: str) -> Operand | None:
    """The 8-bit source of `tensor` if a per-tensor DequantizeLinear produces it."""
    dq = graph.producer(tensor) if tensor else None
    if dq is None or dq.op != "DequantizeLinear" or dq.attrs.axis is not None:
        return None
    if graph.tensor(dq.inputs[0]).dtype not in ("i8", "u8"):
        return None
    return Operand(dq.inputs[0], qdq_affine(graph, dq))


def match(graph: Graph, node: Node) -> Group:
    """The group whose float op is `node` (see the module docstring)."""
    if len(node.outputs) != 1:
        raise UnsupportedError(f"{node.op} node {node.name!r}: ops with several outputs cannot be quantized")
    chain = clamp_chain(graph, node.outputs[0])
    end = chain[-1].outputs[0] if chain else node.outputs[0]
    quantize = only_quantize(graph, end)
    if quantize is None:
        raise UnsupportedError(f"{node.op} node {node.name!r}: its output is not quantized (it must be read "
                               "only by a QuantizeLinear, possibly through Relu/Clip)")
    clamp = (None, None)
    for c in chain:
        clamp = intersect(clamp, clamp_of(c))
    operands = [operand_of(graph, t) for t in node.inputs]
    return Group(node, operands, quantize.outputs[0], qdq_affine(graph, quantize), clamp, [*chain, quantize])


def detach(graph: Graph, group: Group) -> None:
    """Remove the group's float op, clamp chain and QuantizeLinear, with the float
    tensors between them, leaving `group.output` declared but unproduced."""
    for node in reversed([group.node, *group.absorbed]):
        graph.remove_node(node.name)
    for node in [group.node, *group.absorbed[:-1]]:
        del graph.tensors[node.outputs[0]]
