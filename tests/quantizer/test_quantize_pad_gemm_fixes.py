"""Regressions: a constant Pad whose fill lies outside its input's range keeps
the fill in int8 (it was clamped: fill −0.5 after a Sigmoid became 0.0, cosine
0.70); Pad refuses an integer fill its type cannot hold with a ShapeError (it
raised OverflowError); Gemm with transA=1 after a Transpose compiles with bias
correction (its input mean was taken over the wrong axis: exit 3)."""

from __future__ import annotations

import numpy as np
import pytest
from e2e import compile_everywhere
from qmodels import Builder, ops, quantized, randn

from nnc.errors import ShapeError
from nnc.ops import get_op
from nnc.ops.shape import PadAttrs

RNG = np.random.default_rng(9)


def _sigmoid_pad(fill: float):
    b = Builder()
    s = b.node("Sigmoid", [b.input("x", [1, 2, 4, 4])])
    b.node("Pad", [s, b.const(np.array([0, 0, 2, 2, 0, 0, 2, 2], np.int64)), b.const(np.float32(fill))], "y")
    b.output("y", [1, 2, 8, 8])
    return b.model()


@pytest.mark.parametrize("fill", [-0.5, 3.0])
def test_pad_fill_outside_the_input_range_survives_int8(tmp_path, fill):
    samples = {"x": RNG.standard_normal((6, 1, 2, 4, 4)).astype(np.float32)}
    reports = compile_everywhere(_sigmoid_pad(fill), tmp_path, samples)
    assert reports["c"]["verification"]["vs_float"]["cosine"] > 0.999


def test_pad_with_zero_fill_keeps_the_input_parameters():
    b = Builder()
    s = b.node("Sigmoid", [b.input("x", [1, 2, 4, 4])])
    b.node("Pad", [s, b.const(np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64))], "y")
    b.output("y", [1, 2, 6, 6])
    _, result = quantized(b.model(), expect_warning=True)
    assert "Requantize" not in ops(result)  # the zero point pads: no rescaling


@pytest.mark.parametrize("fill", [300.0, -129.0, 2.5, float("nan")])
def test_pad_refuses_a_fill_the_integer_type_cannot_hold(fill):
    attrs = PadAttrs((1, 1), "constant", fill)
    with pytest.raises(ShapeError, match="fill value .* does not fit int8"):
        get_op("Pad").evaluate(attrs, [np.zeros(3, np.int8)])


def test_gemm_trans_a_after_transpose_compiles_with_bias_correction(tmp_path):
    b = Builder()
    t = b.node("Transpose", [b.input("x", [4, 3])], perm=[1, 0])
    b.node("Gemm", [t, b.const(randn(3, 5)), b.const(randn(5))], "y", transA=1)
    b.output("y", [4, 5])
    samples = {"x": RNG.standard_normal((8, 4, 3)).astype(np.float32)}
    reports = compile_everywhere(b.model(), tmp_path, samples)
    assert reports["az-sim"]["verification"]["vs_float"]["cosine"] > 0.999
