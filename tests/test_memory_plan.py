"""The static memory planner (compiler/memory_plan.py): hand-made cases, and
properties on random live ranges: no two simultaneously live buffers overlap,
lower bound <= arena <= naive sum (aligned), aliases share offsets."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nnc.memory_plan import (Buffer, arena_bytes, check, groups_of, lower_bound_bytes, naive_bytes, plan,
                             timeline)


def test_chain_reuses_memory_in_two_slots():
    buffers = [Buffer(100, i, i + 1, f"t{i}") for i in range(6)]
    offsets = plan(buffers, alignment=4)
    check(buffers, offsets, alignment=4)
    assert arena_bytes(buffers, offsets, 4) == lower_bound_bytes(buffers, 4) == 200
    assert naive_bytes(buffers, 4) == 600


def test_bounds_count_the_alignment_padding():
    """Three 1-byte buffers live together need 48 bytes at alignment 16: the
    bounds said 3, and the arena exceeded "naive" (a figure of the report)."""
    buffers = [Buffer(1, 0, 2, "a"), Buffer(1, 1, 2, "b"), Buffer(1, 2, 2, "c"), Buffer(17, 3, 3, "d")]
    arena = arena_bytes(buffers, plan(buffers, 16), 16)
    assert lower_bound_bytes(buffers, 16) == arena == 48 and naive_bytes(buffers, 16) == 80
    assert lower_bound_bytes(buffers, 1) == 17 and naive_bytes(buffers, 1) == 20


def test_buffers_ending_and_starting_at_one_step_do_not_share():
    a, b = Buffer(64, 0, 1, "a"), Buffer(64, 1, 2, "b")
    offsets = plan([a, b])
    assert abs(offsets[0] - offsets[1]) >= 64


def test_alias_shares_the_region_for_the_union_of_live_ranges():
    buffers = [Buffer(32, 0, 1, "x"), Buffer(32, 1, 3, "view", alias=0), Buffer(32, 2, 2, "other")]
    offsets = plan(buffers)
    assert offsets[0] == offsets[1] != offsets[2]
    assert groups_of(buffers) == [0, 0, 2]
    assert lower_bound_bytes(buffers) == 64 and naive_bytes(buffers) == 64
    check(buffers, offsets)


def test_alias_must_name_an_earlier_buffer():
    with pytest.raises(ValueError):
        plan([Buffer(8, 0, 1, alias=1), Buffer(8, 0, 1)])


def test_check_finds_an_overlap():
    buffers = [Buffer(16, 0, 2, "a"), Buffer(16, 1, 3, "b")]
    with pytest.raises(ValueError, match="overlap"):
        check(buffers, [0, 8])
    with pytest.raises(ValueError, match="alignment"):
        check(buffers, [0, 17], alignment=16)
    check(buffers, [0, 16], alignment=16)


def test_offsets_are_aligned_and_the_arena_rounds_up():
    buffers = [Buffer(5, 0, 1), Buffer(7, 0, 1), Buffer(3, 1, 2)]
    offsets = plan(buffers, alignment=16)
    assert all(o % 16 == 0 for o in offsets)
    assert arena_bytes(buffers, offsets) % 16 == 0
    check(buffers, offsets, alignment=16)


def test_small_tensor_between_large_ones_reaches_the_bound():
    """float -> int8 -> float chains (QDQ graphs) fragment a size-first plan;
    the planner's variants still meet the lower bound on this chain."""
    sizes = [32000, 32000, 8000] * 6  # dequantized input, conv output, quantized output
    buffers = [Buffer(s, i, i + 1, f"t{i}") for i, s in enumerate(sizes)]
    offsets = plan(buffers)
    check(buffers, offsets)
    assert arena_bytes(buffers, offsets) == lower_bound_bytes(buffers) == 64000


def test_empty_plan():
    assert plan([]) == [] and arena_bytes([], []) == 0 and lower_bound_bytes([]) == 0


def test_timeline_draws_every_step_and_group():
    buffers = [Buffer(100, 0, 1, "first"), Buffer(50, 1, 2, "second"), Buffer(100, 2, 2, "third", alias=0)]
    offsets = plan(buffers)
    text = timeline(buffers, offsets, width=20)
    rows = [line for line in text.splitlines() if line.strip()[:1].isdigit()]
    assert len(rows) == 3 and all(len(r.split("|")[1]) == 20 for r in rows)
    assert "first, third" in text and "second" in text and "arena" in text.splitlines()[0]


@st.composite
def live_ranges(draw):
    count = draw(st.integers(0, 24))
    buffers = []
    for i in range(count):
        first = draw(st.integers(0, 20))
        last = draw(st.integers(first, first + 8))
        size = draw(st.integers(0, 300))
        alias = None
        if buffers and draw(st.booleans()) and draw(st.booleans()):
            alias = draw(st.integers(0, len(buffers) - 1))
            size = buffers[alias].size
        buffers.append(Buffer(size, first, last, f"b{i}", alias))
    return buffers


@settings(max_examples=150, deadline=None)
@given(live_ranges(), st.sampled_from([1, 4, 16]))
def test_plans_are_valid_and_between_the_bounds(buffers, alignment):
    offsets = plan(buffers, alignment)
    check(buffers, offsets, alignment)
    arena = arena_bytes(buffers, offsets, alignment)
    assert lower_bound_bytes(buffers, alignment) <= arena <= naive_bytes(buffers, alignment)
    roots = groups_of(buffers)
    assert all(offsets[i] == offsets[roots[i]] for i in range(len(buffers)))


@settings(max_examples=30, deadline=None)
@given(live_ranges())
def test_plan_is_deterministic(buffers):
    assert plan(buffers) == plan(list(buffers))
