"""Parameter choice, weight and bias quantization, the overflow proof and the
multipliers the rules compute (nnc.quantizer.params, .weights, .rules)."""

from __future__ import annotations

import numpy as np
import pytest

from nnc.errors import UnsupportedError
from nnc.ops.quantize import QuantizeAttrs, QuantizeLinear
from nnc.ops.qsoftmax import EXP_BITS
from nnc.quantizer.params import Affine, affine_from_range
from nnc.quantizer.rules import add_multipliers, exp_table
from nnc.quantizer.weights import (BIAS_LIMIT, QuantizedConstant, bias_floor, check_accumulator, layer_bias,
                                   quantize_bias, quantize_weights)


@pytest.mark.parametrize("lo, hi", [(-1.0, 3.0), (0.0, 6.0), (-5.0, 0.0), (-0.001, 1000.0), (2.0, 3.0)])
def test_zero_is_exactly_representable(lo, hi):
    a = affine_from_range(lo, hi)
    assert -128 <= a.zero_point <= 127 and a.scale == float(np.float32(a.scale))
    assert a.quantize(0.0) == a.zero_point
    assert a.quantize(min(lo, 0)) == -128 or abs(a.scale * (-128 - a.zero_point) - min(lo, 0)) <= a.scale
    assert a.scale == pytest.approx((max(hi, 0) - min(lo, 0)) / 255, rel=1e-6)


def test_empty_range_gets_scale_one():
    assert affine_from_range(0.0, 0.0) == Affine(1.0, -128)


def test_quantize_matches_quantize_linear():
    a = Affine(0.0473, 11)
    values = np.linspace(-8, 8, 1001).astype(np.float32)
    (onnx,) = QuantizeLinear.evaluate(QuantizeAttrs(None, "i8"), [values, np.float32(a.scale), np.int8(11)])
    assert [a.quantize(v) for v in values] == onnx.tolist()


def test_clamp_bounds_of_relu6():
    a = Affine(0.05, -100)
    assert a.bounds(0.0, 6.0) == (-100, 20)
    assert a.bounds(None, None) == (-128, 127)
    assert a.bounds(-100.0, 100.0) == (-128, 127)


def test_weights_symmetric_per_channel():
    w = np.array([[0.5, -1.0, 0.25], [0.0, 0.0, 0.0], [2.0, 1.0, -0.01]], np.float32)
    q, s = quantize_weights(w, axis=0)
    assert q.dtype == np.int8 and q.tolist() == [[64, -127, 32], [0, 0, 0], [127, 64, -1]]
    assert s.tolist() == pytest.approx([1 / 127, 1.0, 2 / 127])
    q1, s1 = quantize_weights(w.T.copy(), axis=1)
    assert np.array_equal(q1, q.T) and np.array_equal(s1, s)


def test_bias_floor_keeps_nearly_dead_channels_representable():
    w = np.array([[1e-30, -2e-30], [0.5, 0.25]], np.float32)
    b = np.array([0.8, 0.1])
    q, s = quantize_weights(w, 0, bias_floor(b, 0.01))
    qb = quantize_bias(b, 0.01 * s.astype(np.float64), "layer")
    assert q[0].tolist() == [0, 0] and abs(int(qb[0])) <= BIAS_LIMIT * 1.0001
    assert q[1].tolist() == [127, 64]


def test_bias_overflow_is_refused():
    with pytest.raises(UnsupportedError, match="'dense'.*int32"):
        quantize_bias(np.array([1.0]), np.array([1e-12]), "dense")


def test_qdq_bias_is_requantized_only_when_its_scale_differs():
    bias = QuantizedConstant(np.array([10, -7], np.int32), np.array([0.02, 0.02]), 0, "b")
    same = layer_bias(bias, 2, np.array([0.02, 0.02]), "l")
    assert same.tolist() == [10, -7]
    assert layer_bias(bias, 2, np.array([0.01, 0.04]), "l").tolist() == [20, -4]  # -3.5 rounds to even


def test_overflow_proof_names_the_layer():
    w = np.full((2, 1000), 127, np.int8)
    check_accumulator(w, np.array([0, 0]), "ok")  # 1000·127·255 < 2^31
    with pytest.raises(UnsupportedError, match="'big'.*channel 1"):
        check_accumulator(w, np.array([0, 2 ** 31 - 1000 * 127 * 255]), "big")
    with pytest.raises(UnsupportedError, match="'wide'"):
        check_accumulator(np.full((1, 70_000), 127, np.int8), None, "wide")


@pytest.mark.parametrize("ra, rb", [(0.5, 0.25), (1.7, 0.001), (300.0, 2.0), (1e-6, 1e-7)])
def test_add_multipliers(ra, rb):
    ma, mb, n = add_multipliers(ra, rb)
    assert 1 <= n <= 53 and max(ma, mb) < 2 ** 31
    assert ma / 2 ** n == pytest.approx(ra, rel=2 ** -20) and mb / 2 ** n == pytest.approx(rb, rel=2 ** -20)
    assert n == 53 or max(round(ra * 2 ** (n + 1)), round(rb * 2 ** (n + 1))) >= 2 ** 31


def test_exp_table():
    table = exp_table(0.1)
    assert table.dtype == np.int32 and table[0] == 1 << EXP_BITS
    assert table[10] == round(2 ** EXP_BITS * np.exp(-1.0)) and np.all(np.diff(table) <= 0)
