"""nnc.onnx_backend: shape operands fed as graph inputs are frozen per run."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

from nnc.errors import ShapeError, UnsupportedError
from nnc.onnx_backend import NncBackend, shape_operand_inputs


def _model(node, inputs, output):
    graph = helper.make_graph([node], "g", inputs, [output])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def _reshape_model():
    return _model(helper.make_node("Reshape", ["x", "shape"], ["y"]),
                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3]),
                   helper.make_tensor_value_info("shape", TensorProto.INT64, [2])],
                  helper.make_tensor_value_info("y", TensorProto.FLOAT, ["a", "b"]))


def test_each_shape_value_gets_its_own_graph():
    rep = NncBackend.prepare(_reshape_model())
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert rep.frozen == ["shape"]
    for shape in ([3, 2], [1, 6], [3, 2], [6, -1]):
        (y,) = rep.run([x, np.array(shape, np.int64)])
        np.testing.assert_array_equal(y, x.reshape(shape))
    assert len(rep._graphs) == 3


def test_inputs_by_name():
    rep = NncBackend.prepare(_reshape_model())
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    (y,) = rep.run({"x": x, "shape": np.array([6, 1], np.int64)})
    np.testing.assert_array_equal(y, x.reshape(6, 1))


def test_frozen_value_must_have_the_declared_type():
    rep = NncBackend.prepare(_reshape_model())
    x = np.zeros((2, 3), np.float32)
    with pytest.raises(ShapeError, match="'shape' is int32"):
        rep.run([x, np.array([3, 2], np.int32)])
    with pytest.raises(ShapeError, match="'shape' is int64\\[3\\]"):
        rep.run([x, np.array([1, 3, 2], np.int64)])
    with pytest.raises(ShapeError, match="1 inputs given"):
        rep.run([x])


def test_value_operands_stay_run_time_inputs():
    """A Clip bound fixes no shape: it is not frozen, and nnc refuses a run-time bound."""
    model = _model(helper.make_node("Clip", ["x", "lo"], ["y"]),
                   [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4]),
                    helper.make_tensor_value_info("lo", TensorProto.FLOAT, [])],
                   helper.make_tensor_value_info("y", TensorProto.FLOAT, [4]))
    assert shape_operand_inputs(model) == []
    with pytest.raises(UnsupportedError, match="min must be a constant"):
        NncBackend.prepare(model)


def test_models_without_shape_inputs_lower_at_prepare():
    model = _model(helper.make_node("Relu", ["x"], ["y"]),
                   [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])],
                   helper.make_tensor_value_info("y", TensorProto.FLOAT, [3]))
    rep = NncBackend.prepare(model)
    assert rep.frozen == [] and len(rep._graphs) == 1
    (y,) = rep.run(np.array([-1, 0, 2], np.float32))
    np.testing.assert_array_equal(y, [0, 0, 2])
