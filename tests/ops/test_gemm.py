"""Gemm and MatMul against onnx's reference evaluator: transposes, alpha/beta,
every broadcastable C, the fused clamp, 1-D and batched MatMul, integer MatMul."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nnc.errors import ShapeError, UnsupportedError
from nnc.ir import TensorType
from nnc.ops import get_op
from nnc.ops.gemm import GemmAttrs
from op_oracles import run_nnc, run_onnx

TOL = dict(rtol=1e-5, atol=1e-5)


def _data(seed: int, *shapes, dtype=np.float32):
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "i":
        return [rng.integers(-100, 100, size=s).astype(dtype) for s in shapes]
    return [rng.standard_normal(s).astype(dtype) for s in shapes]


@st.composite
def gemm_cases(draw):
    m, n, k = (draw(st.integers(1, 6)) for _ in range(3))
    trans_a, trans_b = draw(st.booleans()), draw(st.booleans())
    c_shape = draw(st.sampled_from([None, (), (1,), (n,), (1, n), (m, 1), (m, n)]))
    attrs = dict(alpha=draw(st.sampled_from([1.0, 0.5, -2.0])), beta=draw(st.sampled_from([1.0, 0.25, 0.0])),
                 transA=int(trans_a), transB=int(trans_b))
    shapes = [(k, m) if trans_a else (m, k), (n, k) if trans_b else (k, n)]
    return attrs, shapes, c_shape, draw(st.integers(0, 2**16))


@settings(max_examples=60, deadline=None)
@given(gemm_cases(), st.sampled_from([np.float32, np.float64]))
def test_gemm_matches_reference(case, dtype):
    attrs, shapes, c_shape, seed = case
    inputs = _data(seed, *shapes, *([] if c_shape is None else [c_shape]), dtype=dtype)
    got = run_nnc("Gemm", inputs, attrs, opset=13)[0]
    assert got.dtype == dtype
    np.testing.assert_allclose(got, run_onnx("Gemm", inputs, attrs, opset=13)[0], **TOL)


@pytest.mark.parametrize("bounds", [(0.0, None), (0.0, 6.0), (None, 0.5)])
def test_gemm_fused_clamp(bounds):
    a, b, c = _data(1, (4, 5), (3, 5), (3,))
    attrs = dict(transB=1, alpha=2.0)
    lo, hi = bounds
    got = run_nnc("Gemm", [a, b, c], attrs, act_min=lo, act_max=hi)[0]
    np.testing.assert_allclose(got, np.clip(run_onnx("Gemm", [a, b, c], attrs)[0], lo, hi), **TOL)


_MATMUL_SHAPES = [
    ((3,), (3,)), ((4,), (4, 2)), ((2, 4), (4,)), ((4,), (2, 4, 1)), ((1, 2, 4, 3), (3,)),
    ((3, 4), (4, 5)), ((2, 3, 4), (2, 4, 3)), ((3, 1, 3, 4), (1, 2, 4, 2)), ((5, 2, 3), (3, 4)),
]


@pytest.mark.parametrize("a_shape,b_shape", _MATMUL_SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.int64])
def test_matmul_matches_reference(a_shape, b_shape, dtype):
    a, b = _data(2, a_shape, b_shape, dtype=dtype)
    got = run_nnc("MatMul", [a, b], opset=13)[0]
    expected = run_onnx("MatMul", [a, b], opset=13)[0]
    assert got.dtype == dtype and got.shape == expected.shape
    np.testing.assert_allclose(got, expected, **TOL)


def test_macs():
    gemm = get_op("Gemm")
    a, b = TensorType("f32", (7, 4)), TensorType("f32", (5, 7))
    attrs = GemmAttrs(trans_a=True, trans_b=True)
    y = gemm.infer(attrs, [a, b, None])
    assert y == [TensorType("f32", (4, 5))]
    assert gemm.macs(attrs, [a, b, None], y) == 4 * 5 * 7
    matmul = get_op("MatMul")
    a, b = TensorType("f32", (3, 1, 2, 6)), TensorType("f32", (4, 6, 5))
    y = matmul.infer(None, [a, b])
    assert y == [TensorType("f32", (3, 4, 2, 5))]
    assert matmul.macs(None, [a, b], y) == 3 * 4 * 2 * 5 * 6


@pytest.mark.parametrize("shapes,message", [
    (((3, 4), (5, 2), None), "inner dimensions"),
    (((3, 4, 1), (4, 2), None), "2-D"),
    (((3, 4), (4, 2), (3, 3)), "does not broadcast"),
])
def test_gemm_infer_rejects(shapes, message):
    types = [None if s is None else TensorType("f32", s) for s in shapes]
    with pytest.raises(ShapeError, match=message):
        get_op("Gemm").infer(GemmAttrs(), types)


def test_gemm_infer_rejects_bad_clamp_and_types():
    a, b = TensorType("f32", (2, 3)), TensorType("f32", (3, 4))
    with pytest.raises(ShapeError, match="exceeds"):
        get_op("Gemm").infer(GemmAttrs(act_min=1.0, act_max=-1.0), [a, b, None])
    with pytest.raises(ShapeError, match="float"):
        get_op("Gemm").infer(GemmAttrs(), [a, TensorType("f64", (3, 4)), None])


@pytest.mark.parametrize("a_shape,b_shape,message", [
    ((2, 3), (4, 2), "inner dimensions"),
    ((2, 2, 3), (3, 3, 4), "do not broadcast"),
    ((), (3,), "rank"),
])
def test_matmul_infer_rejects(a_shape, b_shape, message):
    with pytest.raises(ShapeError, match=message):
        get_op("MatMul").infer(None, [TensorType("f32", a_shape), TensorType("f32", b_shape)])


def test_lowering_rejects_unsupported_types():
    a, b = _data(3, (2, 3), (3, 2), dtype=np.int32)
    with pytest.raises(UnsupportedError, match="float only"):
        run_nnc("Gemm", [a, b], opset=13)
    with pytest.raises(UnsupportedError, match="i8 MatMul"):
        run_nnc("MatMul", [a.astype(np.int8), b.astype(np.int8)], opset=13)
