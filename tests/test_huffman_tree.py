"""huffman._tree_depths (two sorted queues) against Huffman's construction with
a heap of (weight, height, node number) entries, the definition it implements."""

import heapq

from hypothesis import given, settings
from hypothesis import strategies as st

from nnc.huffman import _tree_depths


def _heap_depths(weights: list[int]) -> list[int]:
    n = len(weights)
    heap = [(w, 0, leaf) for leaf, w in enumerate(weights)]
    heapq.heapify(heap)
    parent = list(range(2 * n - 1))
    for node in range(n, 2 * n - 1):
        (w1, h1, a), (w2, h2, b) = heapq.heappop(heap), heapq.heappop(heap)
        parent[a] = parent[b] = node
        heapq.heappush(heap, (w1 + w2, max(h1, h2) + 1, node))
    depth = [0] * (2 * n - 1)
    for node in range(2 * n - 3, -1, -1):
        depth[node] = depth[parent[node]] + 1
    return depth[:n]


@settings(max_examples=500, deadline=None)
@given(st.lists(st.one_of(st.integers(1, 4), st.sampled_from([1, 2, 4, 8, 16, 3, 6, 12]), st.integers(1, 10**9)),
                min_size=2, max_size=256))
def test_tree_depths_equal_the_heap_construction(weights):
    assert _tree_depths(weights) == _heap_depths(weights)


def test_equal_weights_tie_as_the_heap_does():
    for n in range(2, 70):
        assert _tree_depths([1] * n) == _heap_depths([1] * n)
        assert _tree_depths([2 ** (i % 5) for i in range(n)]) == _heap_depths([2 ** (i % 5) for i in range(n)])
