"""Hand-built integer graphs of the broadcast element-wise ops (QMul, QAffine and
QAdd with a negative multiplier, docs/numerics.md §4, §18) whose samples sweep
every 8-bit input value, with coefficients at the edges of their ranges. Shared
by the reference, C and az-sim tests (imported by module name)."""

from __future__ import annotations

import numpy as np

from nnc.ir import Graph, Node, Tensor, TensorType
from nnc.ops import get_op
from nnc.ops.qbinary import QAffineAttrs, QProductAttrs
from nnc.ops.qelementwise import QAddAttrs
from nnc.verifier import verify

TOP = (1 << 31) - 1


def _node(graph: Graph, op: str, inputs: list[str], attrs, out: str) -> str:
    types = [None if not t else TensorType(graph.tensor(t).dtype, graph.tensor(t).shape) for t in inputs]
    (result,) = get_op(op).infer(attrs, types)
    graph.add_tensor(Tensor(out, result.dtype, result.shape))
    graph.add_node(Node(f"{op}_{out}", op, list(inputs), [out], attrs))
    return out


def _const(graph: Graph, name: str, data) -> str:
    return graph.add_constant(name, np.asarray(data, np.int32)).name


def corner_graph() -> Graph:
    """Inputs a i8[256, 1] and b u8[1, 256]: every (a, b) pair meets in a broadcast
    QMul; QAffine reads a against [1, 3, 2] coefficients (int32 extremes, a
    negative-side multiplier) and b against scalar ones at shift 1; QAdd
    subtracts b from a."""
    g = Graph("elementwise")
    for name, dtype, shape in (("a", "i8", (256, 1)), ("b", "u8", (1, 256))):
        g.add_tensor(Tensor(name, dtype, shape))
        g.inputs.append(name)
    _node(g, "QMul", ["a", "b"], QProductAttrs(-3, 17, 5, 1518500250, 38, -128, 127), "mul")
    _node(g, "QMul", ["a", "b"], QProductAttrs(-128, 255, 128, TOP, 40, 10, 250, "u8"), "mul_u8")
    a3 = _node(g, "Reshape", ["a"], get_op("Reshape").Attrs((256, 1, 1)), "a3")
    mult = _const(g, "mult", [[[TOP, -TOP], [0, 12345], [-1 << 30, 3 << 28]]])
    offset = _const(g, "offset", [[[TOP, -TOP], [1 << 20, -(1 << 24)], [0, 77]]])
    mult_neg = _const(g, "mult_neg", [[[-TOP, TOP], [1 << 29, 0], [5, -(1 << 30)]]])
    _node(g, "QAffine", [a3, mult, offset, mult_neg], QAffineAttrs(7, -4, 31, -128, 127), "affine")
    _node(g, "QAffine", ["b", _const(g, "m1", [3]), _const(g, "o1", [-5])], QAffineAttrs(128, 10, 1, 0, 255, "u8"),
          "affine_u8")
    _node(g, "QAdd", ["a", "b"], QAddAttrs(2, 100, -1, 1 << 29, -(1 << 30), 31, -128, 127), "sub")
    g.outputs.extend(["mul", "mul_u8", "affine", "affine_u8", "sub"])
    verify(g)
    return g


def corner_samples() -> list[dict[str, np.ndarray]]:
    """Every value of a and b once (ascending), then a random permutation."""
    rng = np.random.default_rng(11)
    a, b = np.arange(-128, 128).astype(np.int8), np.arange(256).astype(np.uint8)
    return [{"a": a.reshape(256, 1), "b": b.reshape(1, 256)},
            {"a": rng.permutation(a).reshape(256, 1), "b": rng.permutation(b).reshape(1, 256)}]
