"""The C literal formatting of arrays: every way of printing gives C that
reads back as the same values, four spaces in, a comma after every value."""

from __future__ import annotations

import re

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


_C_FLOAT = re.compile(r"^-?(\d+\.\d*|\d+(\.\d*)?e[-+]?\d+)f$")  # a decimal floating constant, suffix f


def _float_of(item: str) -> np.float32:
    special = {"NAN": np.nan, "INFINITY": np.inf, "-INFINITY": -np.inf}
    return np.float32(special[item] if item in special else float(item[:-1]))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(width=32), max_size=70), st.integers(1, 20))
def test_float_bodies_read_back_bit_exactly_and_shortest(values, per_line):
    array = np.array(values, np.float32)
    lines = cformat.array_body(array, "f32", per_line)
    items = [item.strip() for line in lines for item in line.split(",") if item.strip()]
    assert len(items) == array.size and len(lines) == -(-array.size // per_line)
    for item, value in zip(items, array):
        assert item in ("NAN", "INFINITY", "-INFINITY") or _C_FLOAT.match(item), item
        back = _float_of(item)
        assert (np.isnan(back) and np.isnan(value)) or back.tobytes() == value.tobytes()
        if np.isfinite(value):  # no shorter decimal reads back to the value
            digits = item[:-1].lstrip("-").split("e")[0].replace(".", "").strip("0")
            if len(digits) > 1:
                shorter = f"{float(item[:-1]):.{len(digits) - 2}e}"  # one significant digit fewer
                assert np.float32(float(shorter)).tobytes() != value.tobytes()
    assert cformat.float_literal(array[0]) == items[0] if array.size else True
