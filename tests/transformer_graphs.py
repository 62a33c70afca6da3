"""Integer graphs of the transformer ops (QReduce, QMatMul, QLayerNorm) with the
samples that reach their corner cases, shared by the C and az-sim parity tests.
Imported by module name (tests/conftest.py puts tests/ on sys.path)."""

from __future__ import annotations

import math

import numpy as np

from nnc.ir import Graph, Node, Tensor, TensorType
from nnc.numerics import quantize_multiplier
from nnc.ops import get_op
from nnc.ops.layernorm import QLayerNormAttrs
from nnc.ops.qmatmul import QMatMulAttrs
from nnc.ops.reduce import QReduceAttrs
from nnc.verifier import verify

RNG = np.random.default_rng(11)


def one_node(op: str, attrs, inputs: list[tuple[str, object]]) -> Graph:
    """A graph of one node; an input is (name, ndarray constant) or (name, (dtype, shape))."""
    graph = Graph(op.lower())
    names = []
    for name, spec in inputs:
        if isinstance(spec, np.ndarray):
            names.append(graph.add_constant(name, spec).name)
        else:
            graph.add_tensor(Tensor(name, spec[0], tuple(spec[1])))
            graph.inputs.append(name)
            names.append(name)
    types = [TensorType(graph.tensor(n).dtype, graph.tensor(n).shape) for n in names]
    out = get_op(op).infer(attrs, types)[0]
    graph.add_tensor(Tensor("y", out.dtype, out.shape))
    graph.add_node(Node(op, op, names, ["y"], attrs))
    graph.outputs.append("y")
    verify(graph)
    return graph


def random_samples(graph: Graph, count: int = 3) -> list[dict[str, np.ndarray]]:
    samples = []
    for _ in range(count):
        sample = {}
        for name in graph.inputs:
            t = graph.tensor(name)
            lo, hi = (-128, 127) if t.dtype == "i8" else (0, 255)
            sample[name] = RNG.integers(lo, hi + 1, t.shape).astype(np.int8 if t.dtype == "i8" else np.uint8)
        samples.append(sample)
    return samples


# -- QReduce ----------------------------------------------------------------------------
REDUCE_CASES = {
    "sum-mid-keep": dict(shape=(2, 5, 3), axes=(1,), keepdims=True, is_max=False, real=0.11),
    "mean-split-axes": dict(shape=(3, 4, 2, 5), axes=(0, 2), keepdims=False, is_max=False, real=0.4 / 6),
    "max-last": dict(shape=(2, 3, 7), axes=(2,), keepdims=True, is_max=True, real=1.0),
    "max-all-u8": dict(shape=(4, 6), axes=(0, 1), keepdims=False, is_max=True, real=0.7, dtype="u8"),
}


def reduce_graph(shape, axes, keepdims, is_max, real, dtype="i8") -> Graph:
    m, n = quantize_multiplier(real)
    zx = -3 if dtype == "i8" else 120
    attrs = QReduceAttrs(axes, keepdims, zx, 4, m, n, -128, 127, "i8", is_max=is_max)
    return one_node("QReduce", attrs, [("x", (dtype, shape))])


# -- QMatMul ----------------------------------------------------------------------------
MATMUL_CASES = {
    "2d": dict(a=(5, 7), b=(7, 3)),
    "attention-qk": dict(a=(1, 2, 6, 8), b=(1, 2, 8, 6)),
    "broadcast-batch": dict(a=(2, 1, 4, 5), b=(3, 5, 2)),
    "const-b-u8": dict(a=(3, 4, 9), b=(9, 4), const_b=True, a_dtype="u8"),
    "two-blocks-and-a-column": dict(a=(2, 3, 11), b=(2, 11, 9), b_dtype="u8"),  # n = 4 + 4 + 1 columns
    # b stored [..., N, K] (attention's k read in place of kᵀ)
    "attention-qk-b-transposed": dict(a=(1, 2, 6, 8), b=(1, 2, 8, 6), b_transposed=True),
    "b-transposed-blocks-and-a-column": dict(a=(2, 3, 11), b=(2, 11, 9), b_dtype="u8", b_transposed=True),
    "const-b-transposed-broadcast": dict(a=(2, 1, 4, 5), b=(3, 5, 2), const_b=True, b_transposed=True),
}


def matmul_graph(a, b, const_b=False, a_dtype="i8", b_dtype="i8", multiplier=0.0021, zeros=None,
                 b_transposed=False) -> Graph:
    """QMatMul of a and the right operand of shape `b`; with `b_transposed` the
    input b holds it transposed, shape (..., N, K)."""
    m, n = quantize_multiplier(multiplier)
    za = -7 if a_dtype == "i8" else 130
    zb = 0 if const_b else 5 if b_dtype == "i8" else 200
    za, zb = zeros or (za, zb)
    attrs = QMatMulAttrs(za, zb, -2, m, n, -128, 127, "i8", b_transposed=b_transposed)
    b = (*b[:-2], b[-1], b[-2]) if b_transposed else b
    b_spec = RNG.integers(-127, 128, b).astype(np.int8) if const_b else (b_dtype, b)
    return one_node("QMatMul", attrs, [("a", (a_dtype, a)), ("b", b_spec)])


# -- QLayerNorm -------------------------------------------------------------------------
def layer_norm_graph(shape, axis, eps_int=1000, dtype="i8", gain=0.8) -> Graph:
    """γ around `gain`, β small, at the constants' shift as the quantizer chooses it."""
    n = math.prod(shape[axis:])
    shift = 40
    g = np.rint(RNG.uniform(0.5, 1.5, n) * gain * math.sqrt(n) / 0.05 * 2.0 ** (shift - 30)).astype(np.int32)
    b = np.rint(RNG.uniform(-20, 20, n) * 2.0 ** shift).astype(np.int64)
    attrs = QLayerNormAttrs(axis, eps_int, shift, 3, -128, 127, "i8")
    return one_node("QLayerNorm", attrs, [("x", (dtype, shape)), ("g", g), ("b", b)])


LAYER_NORM_CASES = {
    "rows": dict(shape=(2, 5, 16), axis=2),
    "two-axes-u8": dict(shape=(3, 4, 6), axis=1, dtype="u8"),
    "eps-zero": dict(shape=(4, 8), axis=1, eps_int=0),
    "long-row": dict(shape=(1, 2048), axis=1, eps_int=1 << 40),
}


def layer_norm_corner_samples(graph: Graph) -> list[dict[str, np.ndarray]]:
    """Random rows, then constant rows (U = eps, or 0) and rows of two extremes."""
    (name,) = graph.inputs
    t = graph.tensor(name)
    lo, hi = (-128, 127) if t.dtype == "i8" else (0, 255)
    numpy_type = np.int8 if t.dtype == "i8" else np.uint8
    constant = np.full(t.shape, hi, numpy_type)
    extremes = np.where(RNG.random(t.shape) < 0.5, lo, hi).astype(numpy_type)
    return random_samples(graph, 2) + [{name: constant}, {name: extremes}]
