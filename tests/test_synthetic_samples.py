"""The seeded inputs nnc makes when it is given none (golden tests, reports)."""

from __future__ import annotations

import numpy as np

from nnc.ir import Graph, Tensor
from nnc.verification import _SplitMix64, synthetic_samples


def test_the_generator_is_splitmix64():
    # The published reference outputs of splitmix64 seeded 1234567.
    assert _SplitMix64(1234567).next(3).tolist() == [6457827717110365317, 3203168211198807973,
                                                      9817491932198370423]


def test_a_stream_continues_where_it_stopped():
    whole = _SplitMix64(7).next(10)
    parts = _SplitMix64(7)
    np.testing.assert_array_equal(np.concatenate([parts.next(3), parts.next(0), parts.next(7)]), whole)


def _graph(*inputs) -> Graph:
    graph = Graph("g")
    for name, dtype, shape in inputs:
        graph.add_tensor(Tensor(name, dtype, shape))
        graph.inputs.append(name)
    return graph


def test_values_cover_each_type_range_and_repeat_per_seed():
    graph = _graph(("f", "f32", (64, 64)), ("b", "i8", (64, 64)), ("u", "u8", (4096,)), ("w", "i64", (4096,)))
    first, again, other = (synthetic_samples(graph, 2, seed) for seed in (0, 0, 1))
    for a, b in zip(first, again):
        assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(first[0]["f"], other[0]["f"])
    assert not np.array_equal(first[0]["f"], first[1]["f"])
    sample = first[0]
    assert sample["f"].dtype == np.float32 and -1 <= sample["f"].min() < -0.99 and 0.99 < sample["f"].max() < 1
    assert sample["b"].dtype == np.int8 and sample["b"].min() == -128 and sample["b"].max() == 127
    assert sample["u"].min() == 0 and sample["u"].max() == 255
    assert sample["w"].min() < -2**62 and sample["w"].max() > 2**62
    assert abs(float(sample["f"].mean())) < 0.02


def test_bool_inputs_get_both_values():
    (sample,) = synthetic_samples(_graph(("mask", "bool", (32, 32))), 1)
    assert sample["mask"].dtype == np.bool_ and 0.4 < sample["mask"].mean() < 0.6


def _seed_whose_first_word_is(word: int) -> int:
    """splitmix64 is a bijection: the seed whose first output is `word`."""
    mask = (1 << 64) - 1

    def unshift(z, k):
        x = z
        for _ in range(64 // k + 1):
            x = z ^ (x >> k)
        return x & mask

    z = unshift(word, 31)
    z = unshift(z * pow(0x94D049BB133111EB, -1, 1 << 64) & mask, 27)
    z = unshift(z * pow(0xBF58476D1CE4E5B9, -1, 1 << 64) & mask, 30)
    return (z - 0x9E3779B97F4A7C15) & mask


def test_floats_stay_below_one_in_every_float_type():
    seed = _seed_whose_first_word_is((1 << 64) - 1)  # the largest word the generator gives
    assert int(_SplitMix64(seed).next(1)[0]) == (1 << 64) - 1
    for dtype, numpy_type in (("f32", np.float32), ("f64", np.float64)):
        value = synthetic_samples(_graph(("x", dtype, (1,))), 1, seed)[0]["x"]
        assert value.dtype == numpy_type and value[0] == 1 - np.finfo(numpy_type).eps
