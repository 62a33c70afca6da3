"""Greater, Less, GreaterOrEqual, LessOrEqual and Equal against onnxruntime,
broadcasting, on floats and integers."""

from __future__ import annotations

import numpy as np
import pytest
from op_oracles import run_nnc, run_ort


@pytest.mark.parametrize("op", ["Greater", "Less", "GreaterOrEqual", "LessOrEqual", "Equal"])
@pytest.mark.parametrize("dtype", [np.float32, np.int64])
def test_matches_onnxruntime(op, dtype):
    rng = np.random.default_rng(3)
    a, b = rng.integers(-3, 3, (2, 3, 4)).astype(dtype), rng.integers(-3, 3, (3, 1)).astype(dtype)
    got, want = run_nnc(op, [a, b])[0], run_ort(op, [a, b])[0]
    assert got.dtype == np.bool_ and np.array_equal(got, want)
