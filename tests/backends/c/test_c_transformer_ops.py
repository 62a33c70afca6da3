"""QReduce, QMatMul and QLayerNorm through the C target: hand-built graphs built
with gcc and clang (-Werror, ASan/UBSan), bit-exact with the reference
interpreter (docs/numerics.md §11, §12, §14)."""

from __future__ import annotations

import numpy as np
import pytest
from c_testing import check_graph
from transformer_graphs import (LAYER_NORM_CASES, MATMUL_CASES, REDUCE_CASES, layer_norm_corner_samples,
                                layer_norm_graph, matmul_graph, one_node, random_samples, reduce_graph)

from nnc.ops.layernorm import LayerNormAttrs
from nnc.ops.reduce import ReduceAttrs

RNG = np.random.default_rng(2)


@pytest.mark.parametrize("case", REDUCE_CASES.values(), ids=REDUCE_CASES.keys())
def test_qreduce(case, tmp_path):
    graph = reduce_graph(**case)
    check_graph(graph, tmp_path, random_samples(graph))


@pytest.mark.parametrize("case", MATMUL_CASES.values(), ids=MATMUL_CASES.keys())
def test_qmatmul(case, tmp_path):
    graph = matmul_graph(**case)
    check_graph(graph, tmp_path, random_samples(graph))


def test_qmatmul_at_the_accumulator_bound(tmp_path):
    """k = 33,025, the largest the C target takes (k · 255² < 2^31), with
    a − z_a = 255 and b − z_b = −255 or 0: the true sums reach −k · 255² and
    the kernel's partial sum Σ (a − z_a) · b reaches +k · 255², so an int32
    overflow anywhere would show (UBSan builds check)."""
    k = 33_025
    graph = matmul_graph(a=(1, k), b=(k, 6), a_dtype="u8", b_dtype="u8", multiplier=2.0 ** -25, zeros=(0, 255))
    b = np.zeros((k, 6), np.uint8)
    b[:, 1::2] = 255
    check_graph(graph, tmp_path, [{"a": np.full((1, k), 255, np.uint8), "b": b}])


@pytest.mark.parametrize("case", LAYER_NORM_CASES.values(), ids=LAYER_NORM_CASES.keys())
def test_qlayer_norm(case, tmp_path):
    graph = layer_norm_graph(**case)
    check_graph(graph, tmp_path, layer_norm_corner_samples(graph))


@pytest.mark.parametrize("op,axes,keepdims", [("ReduceSum", (0, 2), False), ("ReduceMean", (1,), True),
                                               ("ReduceMax", (2, 3), False)])
def test_float_reduce(op, axes, keepdims, tmp_path):
    check_graph(one_node(op, ReduceAttrs(axes, keepdims), [("x", ("f32", (2, 3, 4, 5)))]), tmp_path)


@pytest.mark.parametrize("axis,bias", [(2, True), (1, False)])
def test_float_layer_norm(axis, bias, tmp_path):
    shape = (2, 3, 8)
    normalized = shape[axis:]
    inputs = [("x", ("f32", shape)), ("g", RNG.standard_normal(normalized).astype(np.float32))]
    if bias:
        inputs.append(("b", RNG.standard_normal(normalized[-1:]).astype(np.float32)))
    check_graph(one_node("LayerNormalization", LayerNormAttrs(axis, 1e-5), inputs), tmp_path)


def test_qreduce_interleaved_axes_of_rank_seven(tmp_path):
    """Three kept and three reduced axis groups, an extent of 1 between them."""
    graph = reduce_graph((2, 3, 1, 2, 3, 2, 2), (1, 4, 6), True, False, 0.05)
    check_graph(graph, tmp_path, random_samples(graph))
