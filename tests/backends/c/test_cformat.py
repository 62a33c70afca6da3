"""The C literal formatting of arrays: every way of printing gives C that
reads back as the same values, four spaces in, a comma after every value."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from nnc.backends.c import cformat


def _values_of(lines: list[str]) -> list[int]:
    return [int(item) for line in lines for item in line.replace(",", " ").split()]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(-2**31 + 1, 2**31 - 1), max_size=70), st.integers(-300, 300), st.integers(1, 20))
def test_integer_bodies_read_back_as_their_values(values, offset, per_line):
    small = [v % 700 + offset for v in values]  # a span under TABLED_RANGE: the table's columns
    for array in (np.array(small, np.int64), np.array(values, np.int64)):
        lines = cformat.array_body(array, "i32", per_line)
        assert _values_of(lines) == array.tolist()
        assert len(lines) == -(-array.size // per_line)
        assert all(line.startswith("    ") and line.endswith(",") and line.count(",") <= per_line for line in lines)


def test_a_small_span_prints_in_right_aligned_columns():
    assert cformat.array_body(np.array([1, -2, 3, 127, -128, 0, 5], np.int8), "i8", 4) == [
        "       1,   -2,    3,  127,", "    -128,    0,    5,"]
