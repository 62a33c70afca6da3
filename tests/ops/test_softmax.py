"""Softmax and LogSoftmax against onnx's reference evaluator (opset 13 and later) and onnxruntime
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


OPS = pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])


def run_nnc(x: np.ndarray, attrs: dict, opset: int, op: str = "Softmax"):
    node = OnnxNode("node", op, ["x"], ["y"], attrs, opset, {},
                    [TensorType(dtypes.from_numpy(x.dtype), x.shape)])
    lowered = lowering(op)(node)
    assert lowered.op == op
    definition = get_op(lowered.op)
    assert definition.infer(lowered.attrs, node.input_types) == node.input_types
    return definition.evaluate(lowered.attrs, [x])[0], lowered.attrs


def model(x: np.ndarray, attrs: dict, opset: int, op: str = "Softmax"):
    node = helper.make_node(op, ["x"], ["y"], **attrs)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info(
        "x", helper.np_dtype_to_tensor_dtype(x.dtype), x.shape)], [helper.make_empty_tensor_value_info("y")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=10)


def run_reference(x, attrs, opset, op="Softmax"):
    wide = _oracle_input(x, op)
    return ReferenceEvaluator(model(wide, attrs, opset, op)).run(None, {"x": wide})[0].astype(x.dtype)


def run_ort(x, attrs, opset, op="Softmax"):
    wide = _oracle_input(x, op)
    session = ort.InferenceSession(model(wide, attrs, opset, op).SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    return session.run(None, {"x": wide})[0].astype(x.dtype)


def _oracle_input(x: np.ndarray, op: str) -> np.ndarray:
    """LogSoftmax's oracle runs in float64: in float32 both oracles lose up to
    1e-7 on log probabilities near 0 (x − max − log S cancels), where nnc, which
    computes in float64, gives the correctly rounded value."""
    return x.astype(np.float64) if op == "LogSoftmax" else x


def assert_close(got, want):
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


@OPS
@pytest.mark.parametrize("opset", [13, 21])
@pytest.mark.parametrize("axis", [None, 0, 1, 2, -1, -2, -3])
def test_matches_onnx(axis, opset, op):
    x = RNG.standard_normal((3, 4, 5)).astype(np.float32)
    attrs = {} if axis is None else {"axis": axis}
    assert_close(run_nnc(x, attrs, opset, op)[0], run_reference(x, attrs, opset, op))


@OPS
@pytest.mark.parametrize("axis", [None, 0, 1, 2, -1, -2, -3])
def test_opset_11_normalises_over_trailing_axes(axis, op):
    x = RNG.standard_normal((3, 4, 5)).astype(np.float32)
    attrs = {} if axis is None else {"axis": axis}
    got, lowered = run_nnc(x, attrs, 11, op)
    assert_close(got, run_ort(x, attrs, 11, op))
    assert lowered.coerce_2d == (lowered.axis != 2)


@OPS
def test_large_inputs_are_stable(op):
    x = np.array([[0, 1, 2, 3], [10000, 10001, 10002, 10003]], np.float32)
    got = run_nnc(x, {}, 13, op)[0]
    assert_close(got, run_reference(x, {}, 13, op))
    np.testing.assert_allclose(got[0], got[1])


def test_log_softmax_takes_no_keep_mask():
    with pytest.raises(ShapeError, match="no keep mask"):
        get_op("LogSoftmax").infer(SoftmaxAttrs(1), [TensorType("f32", (2, 3)), TensorType("bool", (2, 3))])


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 5), min_size=1, max_size=4), st.data(),
       st.sampled_from([np.float32, np.float64]), st.sampled_from([11, 13]), st.sampled_from(["Softmax", "LogSoftmax"]))
def test_random_shapes(shape, data, dtype, opset, op):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    x = (RNG.standard_normal(shape) * 10).astype(dtype)
    oracle = run_ort if opset == 11 else run_reference
    got = run_nnc(x, {"axis": axis}, opset, op)[0]
    assert_close(got, oracle(x, {"axis": axis}, opset, op))


def test_infer_refuses_integer_input_and_bad_axis():
    softmax = get_op("Softmax")
    with pytest.raises(ShapeError, match="float"):
        softmax.infer(SoftmaxAttrs(0), [TensorType("i8", (2, 3))])
    with pytest.raises(ShapeError, match="out of range"):
        softmax.infer(SoftmaxAttrs(2), [TensorType("f32", (2, 3))])


def test_lowering_refuses_bad_axis():
    with pytest.raises(ShapeError, match="out of range"):
        run_nnc(np.zeros((2, 3), np.float32), {"axis": 2}, 13)
