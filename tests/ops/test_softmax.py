"""Softmax against onnx's reference evaluator (opset 13 and later) and onnxruntime
(opset 11, whose flatten-to-2-D semantics the reference evaluator lacks)."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import helper
from onnx.reference import ReferenceEvaluator

from nnc import dtypes
from nnc.errors import ShapeError
from nnc.ir import TensorType
from nnc.ops import OnnxNode, get_op, lowering
from nnc.ops.softmax import SoftmaxAttrs

RNG = np.random.default_rng(0)


def run_nnc(x: np.ndarray, attrs: dict, opset: int):
    node = OnnxNode("node", "Softmax", ["x"], ["y"], attrs, opset, {},
                    [TensorType(dtypes.from_numpy(x.dtype), x.shape)])
    lowered = lowering("Softmax")(node)
    op = get_op(lowered.op)
    assert op.infer(lowered.attrs, node.input_types) == node.input_types
    return op.evaluate(lowered.attrs, [x])[0], lowered.attrs


def model(x: np.ndarray, attrs: dict, opset: int):
    node = helper.make_node("Softmax", ["x"], ["y"], **attrs)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info(
        "x", helper.np_dtype_to_tensor_dtype(x.dtype), x.shape)], [helper.make_empty_tensor_value_info("y")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=10)


def run_reference(x, attrs, opset):
    return ReferenceEvaluator(model(x, attrs, opset)).run(None, {"x": x})[0]


def run_ort(x, attrs, opset):
    session = ort.InferenceSession(model(x, attrs, opset).SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


def assert_close(got, want):
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("opset", [13, 21])
@pytest.mark.parametrize("axis", [None, 0, 1, 2, -1, -2, -3])
def test_matches_onnx(axis, opset):
    x = RNG.standard_normal((3, 4, 5)).astype(np.float32)
    attrs = {} if axis is None else {"axis": axis}
    assert_close(run_nnc(x, attrs, opset)[0], run_reference(x, attrs, opset))


@pytest.mark.parametrize("axis", [None, 0, 1, 2, -1, -2, -3])
def test_opset_11_normalises_over_trailing_axes(axis):
    x = RNG.standard_normal((3, 4, 5)).astype(np.float32)
    attrs = {} if axis is None else {"axis": axis}
    got, lowered = run_nnc(x, attrs, 11)
    assert_close(got, run_ort(x, attrs, 11))
    assert lowered.coerce_2d == (lowered.axis != 2)


def test_large_inputs_are_stable():
    x = np.array([[0, 1, 2, 3], [10000, 10001, 10002, 10003]], np.float32)
    got = run_nnc(x, {}, 13)[0]
    assert_close(got, run_reference(x, {}, 13))
    np.testing.assert_allclose(got[0], got[1])


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 5), min_size=1, max_size=4), st.data(),
       st.sampled_from([np.float32, np.float64]), st.sampled_from([11, 13]))
def test_random_shapes(shape, data, dtype, opset):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    x = (RNG.standard_normal(shape) * 10).astype(dtype)
    oracle = run_ort if opset == 11 else run_reference
    got = run_nnc(x, {"axis": axis}, opset)[0]
    assert_close(got, oracle(x, {"axis": axis}, opset))


def test_infer_refuses_integer_input_and_bad_axis():
    softmax = get_op("Softmax")
    with pytest.raises(ShapeError, match="float"):
        softmax.infer(SoftmaxAttrs(0), [TensorType("i8", (2, 3))])
    with pytest.raises(ShapeError, match="out of range"):
        softmax.infer(SoftmaxAttrs(2), [TensorType("f32", (2, 3))])


def test_lowering_refuses_bad_axis():
    with pytest.raises(ShapeError, match="out of range"):
        run_nnc(np.zeros((2, 3), np.float32), {"axis": 2}, 13)
