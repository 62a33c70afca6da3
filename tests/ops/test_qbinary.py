"""QMul and QAffine (docs/numerics.md §18) against an exact rational reference,
and the compile-time coefficients of QAffine (quantizer/rules_elementwise.py)."""

from __future__ import annotations

from fractions import Fraction
from math import floor

import numpy as np
import pytest
from elementwise_graphs import corner_graph, corner_samples

from nnc.errors import ShapeError, UnsupportedError
from nnc.interpreter import run
from nnc.ir import TensorType
from nnc.ops import get_op
from nnc.ops.qbinary import QAffineAttrs
from nnc.quantizer.params import Affine
from nnc.quantizer.rules_elementwise import affine_coefficients

RNG = np.random.default_rng(4)


def _exact(value: int, shift: int, zero: int, lo: int, hi: int) -> int:
    """clamp(zero + floor(value / 2^shift + 1/2)) with rationals."""
    return min(max(zero + floor(Fraction(value, 1 << shift) + Fraction(1, 2)), lo), hi)


def _picks(shape, count=1500):
    return [tuple(int(i) for i in np.unravel_index(k, shape)) for k in RNG.choice(np.prod(shape), count)]


@pytest.mark.parametrize("out", ["mul", "mul_u8"])
def test_qmul_is_one_rounding_of_the_exact_product(out):
    graph = corner_graph()
    node = graph.producer(out)
    a = node.attrs
    sample = corner_samples()[1]
    y = run(graph, sample)[out]
    for i, j in _picks(y.shape):
        product = (int(sample["a"][i, 0]) - a.a_zero_point) * (int(sample["b"][0, j]) - a.b_zero_point)
        assert y[i, j] == _exact(product * a.multiplier, a.shift, a.y_zero_point, a.out_min, a.out_max)


def test_qaffine_takes_the_negative_side_multiplier_below_the_zero_point():
    graph = corner_graph()
    node = graph.producer("affine")
    a = node.attrs
    mult, offset, mult_neg = (graph.constant(t)[0] for t in node.inputs[1:])
    y = run(graph, corner_samples()[0])["affine"]
    for q in range(-128, 128):
        d = q - a.x_zero_point
        for c in range(3):
            for k in range(2):
                m = int(mult_neg[c, k] if d < 0 else mult[c, k])
                want = _exact(d * m + int(offset[c, k]), a.shift, a.y_zero_point, a.out_min, a.out_max)
                assert y[q + 128, c, k] == want


def test_qaffine_broadcasts_the_input_against_larger_coefficients():
    op = get_op("QAffine")
    attrs = QAffineAttrs(0, 0, 4, -128, 127)
    types = [TensorType("i8", (3,)), TensorType("i32", (2, 3)), TensorType("i32", (2, 3)), None]
    assert op.infer(attrs, types) == [TensorType("i8", (2, 3))]
    x = np.array([-2, 0, 5], np.int8)
    mult, offset = np.array([[16, 32, 48], [-16, 8, 0]], np.int32), np.array([[0, 8, -8], [24, 0, 7]], np.int32)
    (y,) = op.evaluate(attrs, [x, mult, offset, None])
    assert y.tolist() == [[-2, 1, 15], [4, 0, 0]]


def test_qaffine_refuses_coefficients_of_different_shapes():
    types = [TensorType("i8", (3,)), TensorType("i32", (3,)), TensorType("i32", (1,)), None]
    with pytest.raises(ShapeError, match="one shape"):
        get_op("QAffine").infer(QAffineAttrs(0, 0, 4, -128, 127), types)


def test_affine_coefficients_use_the_largest_shift_that_fits():
    x, out = Affine(0.02, 3), Affine(0.05, -7)
    k, c, k_neg = np.array([1.5, -0.25, 0.0]), np.array([0.1, -2.0, 0.0]), np.array([0.1, 0.2, 0.3])
    (m, o, mn), n = affine_coefficients(x, out, k, c, k_neg)
    reals = [x.scale * k / out.scale, c / out.scale, x.scale * k_neg / out.scale]
    for ints, real in zip((m, o, mn), reals):
        assert ints.dtype == np.int32
        np.testing.assert_array_less(np.abs(ints - real * 2.0 ** n), 0.5 + 1e-9)
    assert max(np.abs(r).max() for r in reals) * 2.0 ** (n + 1) >= (1 << 31) - 0.5


def test_affine_coefficients_refuse_what_no_shift_holds():
    with pytest.raises(UnsupportedError, match="output steps"):
        affine_coefficients(Affine(1.0, 0), Affine(1e-3, 0), 1.0, 2e6)
    with pytest.raises(UnsupportedError, match="not finite"):
        affine_coefficients(Affine(1.0, 0), Affine(1.0, 0), np.inf, 0.0)
