"""ReduceSum/ReduceMean/ReduceMax and LayerNormalization against onnxruntime, their
ONNX lowering (axes as attribute or constant input, keepdims,
noop_with_empty_axes, ReduceMean as GlobalAveragePool), and the integer forms'
definitions against exact arithmetic (docs/numerics.md §11, §14)."""

from __future__ import annotations

import math

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from op_oracles import run_ort

import nnc
from nnc import dtypes
from nnc.errors import ShapeError, UnsupportedError
from nnc.ir import TensorType
from nnc.ops import OnnxNode, get_op, lowering
from nnc.ops.layernorm import QLayerNormAttrs, rsqrt_fixed

RNG = np.random.default_rng(3)


def lower(op_type, inputs, attrs, opset, outputs=("y",)):
    """The lowered IR op of one ONNX node; inputs after the first are constants."""
    names = [f"in{i}" if a is not None else "" for i, a in enumerate(inputs)]
    constants = {n: a for n, a in zip(names[1:], inputs[1:]) if n}
    types = [None if a is None else TensorType(dtypes.from_numpy(a.dtype), a.shape) for a in inputs]
    return lowering(op_type)(OnnxNode("node", op_type, names, list(outputs), attrs, opset, constants, types))


def run_nnc(op_type, inputs, attrs, opset):
    lowered = lower(op_type, inputs, attrs, opset)
    op = get_op(lowered.op)
    values = dict(zip([f"in{i}" for i in range(len(inputs))], inputs))
    args = [values[n] if n else None for n in lowered.inputs]
    got = op.evaluate(lowered.attrs, args)
    assert op.infer(lowered.attrs, [None if a is None else TensorType(dtypes.from_numpy(a.dtype), a.shape)
                                    for a in args]) == [TensorType(dtypes.from_numpy(y.dtype), y.shape) for y in got]
    return got[0]


REDUCE = [
    ("ReduceSum", 11, dict(axes=[1]), None),
    ("ReduceSum", 13, dict(keepdims=0), [0, -1]),
    ("ReduceSum", 13, {}, None),  # no axes: every axis
    ("ReduceMean", 17, dict(axes=[-2, 0], keepdims=0), None),
    ("ReduceMean", 18, {}, [2]),
    ("ReduceMax", 13, dict(axes=[2, 1]), None),
    ("ReduceMax", 18, dict(keepdims=0), [1]),
]


@pytest.mark.parametrize("op_type,opset,attrs,axes", REDUCE)
def test_reduce_matches_onnxruntime(op_type, opset, attrs, axes):
    x = RNG.standard_normal((2, 3, 4, 5)).astype(np.float32)
    inputs = [x] if axes is None else [x, np.array(axes, np.int64)]
    got = run_nnc(op_type, inputs, attrs, opset)
    (want,) = run_ort(op_type, inputs, attrs, opset)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_empty_axes_with_noop_forward_the_input():
    x = RNG.standard_normal((2, 3)).astype(np.float32)
    inputs = [x, np.zeros(0, np.int64)]
    assert lower("ReduceSum", inputs, dict(noop_with_empty_axes=1), 13).op == "Identity"
    (want,) = run_ort("ReduceSum", inputs, dict(noop_with_empty_axes=1), 13)
    np.testing.assert_array_equal(want, x)
    np.testing.assert_array_equal(run_nnc("ReduceSum", inputs, dict(noop_with_empty_axes=1), 13), x)


def test_spatial_reduce_mean_is_global_average_pooling():
    x = RNG.standard_normal((1, 4, 5, 6)).astype(np.float32)
    lowered = lower("ReduceMean", [x, np.array([-1, 2], np.int64)], {}, 18)
    assert lowered.op == "GlobalAveragePool" and lowered.inputs == ["in0"]
    assert lower("ReduceMean", [x, np.array([1, 2, 3], np.int64)], {}, 18).op == "ReduceMean"
    assert lower("ReduceMean", [x, np.array([2, 3], np.int64)], dict(keepdims=0), 18).op == "ReduceMean"


def test_repeated_axes_are_refused():
    x = np.zeros((2, 3), np.float32)
    with pytest.raises(ShapeError, match="repeat"):
        lower("ReduceMax", [x], dict(axes=[1, -1]), 13)


@pytest.mark.parametrize("axis,bias,shape", [(-1, True, (2, 5, 16)), (1, False, (2, 3, 4)), (0, True, (3, 4))])
def test_layer_norm_matches_onnxruntime(axis, bias, shape):
    x = RNG.standard_normal(shape).astype(np.float32) * 3 + 1
    normalized = shape[axis % len(shape):]
    scale = RNG.standard_normal(normalized).astype(np.float32)
    inputs = [x, scale, RNG.standard_normal(normalized).astype(np.float32) if bias else None]
    attrs = dict(axis=axis, epsilon=1e-3)
    got = run_nnc("LayerNormalization", inputs, attrs, 17)
    (want,) = run_ort("LayerNormalization", [a for a in inputs if a is not None], attrs, 17)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_layer_norm_statistics_match_onnxruntime():
    x = RNG.standard_normal((3, 4, 5)).astype(np.float32)
    inputs = [x, RNG.standard_normal((4, 5)).astype(np.float32)]
    lowered = lower("LayerNormalization", inputs, dict(axis=1), 17, outputs=("y", "mean", "inv_std"))
    got = get_op(lowered.op).evaluate(lowered.attrs, inputs + [None])
    want = run_ort("LayerNormalization", inputs, dict(axis=1), 17, outputs=("y", "mean", "inv_std"))
    for g, w in zip(got, want, strict=True):
        assert g.shape == w.shape
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)


def test_quantizing_a_used_statistic_is_refused(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])
    outs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in (("y", [2, 4]), ("m", [2, 1]))]
    node = helper.make_node("LayerNormalization", ["x", "g"], ["y", "m"], name="ln")
    graph = helper.make_graph([node], "g", [x], outs, [numpy_helper.from_array(np.ones(4, np.float32), "g")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), tmp_path / "m.onnx")
    with pytest.raises(UnsupportedError, match="LayerNormalization node 'ln': ops with several outputs"):
        nnc.compile(tmp_path / "m.onnx", target="c", output_dir=tmp_path / "out")


# -- integer definitions -------------------------------------------------------------------
def test_rsqrt_fixed_has_sixteen_significant_bits():
    values = [1, 2, 3, 1 << 31, (1 << 32) - 1, 1 << 32, (1 << 61) + 12345]
    values += [int(v) for v in RNG.integers(1, 1 << 62, 300, dtype=np.int64)]
    for u in values:
        r, k = rsqrt_fixed(u)
        assert 1 << 15 <= r <= 1 << 16
        assert abs(r * 2.0 ** (-31 - k) * math.sqrt(u) - 1) < 2 ** -14, u


def test_qlayer_norm_is_within_one_lsb_of_exact_layer_norm():
    """With γ = 1, β = 0 the integer result equals round(normalized / s_y) to 1 LSB."""
    n, s_x, s_y, eps = 24, 0.05, 1 / 32, 1e-4
    shift = 40
    x = RNG.integers(-128, 128, (50, n)).astype(np.int8)
    g = np.full(n, round(math.sqrt(n) / s_y * 2.0 ** (shift - 30)), np.int32)
    attrs = QLayerNormAttrs(1, round(eps * n ** 3 / s_x ** 2), shift, 0, -128, 127, "i8")
    (y,) = get_op("QLayerNorm").evaluate(attrs, [x, g, np.zeros(n, np.int64)])
    real = s_x * x.astype(np.float64)
    centred = real - real.mean(axis=1, keepdims=True)
    exact = np.clip(np.round(centred / np.sqrt((centred ** 2).mean(axis=1, keepdims=True) + eps) / s_y), -128, 127)
    assert np.abs(y.astype(np.int64) - exact).max() <= 1
    assert np.mean(y == exact) > 0.95


@pytest.mark.parametrize("a_shape, b_shape", [((5, 7), (7, 3)), ((2, 1, 4, 6), (3, 6, 5)), ((1, 2, 6, 8), (1, 2, 8, 6))])
def test_qmatmul_with_b_transposed_is_the_product_with_b_stored_transposed(a_shape, b_shape):
    """QMatMul(a, bᵀ stored, b_transposed) equals QMatMul(a, b), output type and
    MAC count included, and equals the exact integer product requantized."""
    from nnc.numerics import requantize
    from nnc.ops.qmatmul import QMatMulAttrs

    rng = np.random.default_rng(7)
    a = rng.integers(-128, 128, a_shape).astype(np.int8)
    b = rng.integers(-128, 128, b_shape).astype(np.int8)
    stored = np.ascontiguousarray(np.swapaxes(b, -1, -2))
    plain = QMatMulAttrs(-3, 5, 2, 1518500250, 38, -128, 127)
    flipped = QMatMulAttrs(-3, 5, 2, 1518500250, 38, -128, 127, b_transposed=True)
    op = get_op("QMatMul")
    (expected,), (got,) = op.evaluate(plain, [a, b]), op.evaluate(flipped, [a, stored])
    exact = requantize(np.matmul(a.astype(np.int64) + 3, b.astype(np.int64) - 5), 1518500250, 38, 2, -128, 127)
    assert np.array_equal(got, expected) and np.array_equal(got.astype(np.int64), exact)
    types = [TensorType("i8", a.shape), TensorType("i8", stored.shape)]
    assert op.infer(flipped, types) == op.infer(plain, [types[0], TensorType("i8", b.shape)])
    assert op.macs(flipped, types, None) == op.macs(plain, [types[0], TensorType("i8", b.shape)], None)
