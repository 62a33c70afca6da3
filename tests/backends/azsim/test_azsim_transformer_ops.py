"""QReduce, QMatMul and QLayerNorm on az-sim: hand-built graphs lowered to a
blob, read back and simulated, bit-exact with the reference interpreter, with
the work the cost model counts (docs/azsim.md)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from transformer_graphs import (LAYER_NORM_CASES, MATMUL_CASES, REDUCE_CASES, layer_norm_corner_samples,
                                layer_norm_graph, matmul_graph, random_samples, reduce_graph)

from nnc.backends.azsim.blob import read_blob, write_blob
from nnc.backends.azsim.lowering import to_program
from nnc.backends.azsim.simulator import simulate
from nnc.interpreter import run


def simulate_all(graph, samples):
    program = read_blob(write_blob(to_program(graph)))
    for sample in samples:
        out, stats = simulate(program, sample)
        np.testing.assert_array_equal(out["y"], run(graph, sample)["y"])
    return stats


@pytest.mark.parametrize("case", REDUCE_CASES.values(), ids=REDUCE_CASES.keys())
def test_qreduce(case):
    graph = reduce_graph(**case)
    stats = simulate_all(graph, random_samples(graph))
    assert stats.macs_total == 0 and stats.post_cycles > 0


@pytest.mark.parametrize("case", MATMUL_CASES.values(), ids=MATMUL_CASES.keys())
def test_qmatmul_counts_its_macs(case):
    graph = matmul_graph(**case)
    stats = simulate_all(graph, random_samples(graph))
    a, y = graph.tensor(graph.inputs[0]), graph.tensor("y")
    assert stats.macs_total == math.prod(y.shape) * a.shape[-1]


@pytest.mark.parametrize("case", LAYER_NORM_CASES.values(), ids=LAYER_NORM_CASES.keys())
def test_qlayer_norm(case):
    graph = layer_norm_graph(**case)
    simulate_all(graph, layer_norm_corner_samples(graph))


@settings(max_examples=25, deadline=None)
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=5), data=st.data())
def test_qreduce_any_axes(shape, data):
    axes = tuple(sorted(data.draw(st.sets(st.integers(0, len(shape) - 1), min_size=1))))
    graph = reduce_graph(tuple(shape), axes, data.draw(st.booleans()), data.draw(st.booleans()), 0.3)
    simulate_all(graph, random_samples(graph, 1))


@settings(max_examples=25, deadline=None)
@given(batch_a=st.lists(st.sampled_from([1, 2, 3]), max_size=3), data=st.data())
def test_qmatmul_broadcasts_like_numpy(batch_a, data):
    batch_b = [data.draw(st.sampled_from([1, d])) for d in batch_a][data.draw(st.integers(0, len(batch_a))):]
    m, k, n = (data.draw(st.integers(1, 5)) for _ in range(3))
    graph = matmul_graph((*batch_a, m, k), (*batch_b, k, n))
    simulate_all(graph, random_samples(graph, 1))
