"""Static shape folding in the front end (compiler/frontend/shape_folding.py):
shape chains as PyTorch's exporters write them fold into constants, the model
still computes what onnxruntime computes, and quantized weights stay QDQ."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import nnc
from nnc.errors import UnsupportedError
from nnc.frontend.onnx_loader import lower_model

RNG = np.random.default_rng(3)


def _model(nodes, inputs, outputs, inits=(), opset=17):
    graph = helper.make_graph(nodes, "g", inputs, outputs, [numpy_helper.from_array(v, k) for k, v in inits])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _ort(model, feeds):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def _flatten_by_shape_model():
    """y = Reshape(x, Concat(Unsqueeze(Gather(Shape(x), 0)), [-1])): the exporters'
    batch-preserving flatten."""
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Gather", ["s", "zero"], ["b"], axis=0),
        helper.make_node("Unsqueeze", ["b", "axes"], ["b1"]),
        helper.make_node("Concat", ["b1", "minus_one"], ["shape"], axis=0),
        helper.make_node("Reshape", ["x", "shape"], ["y"]),
    ]
    inits = [("zero", np.array(0, np.int64)), ("axes", np.array([0], np.int64)),
             ("minus_one", np.array([-1], np.int64))]
    return _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 4])],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 12])], inits)


@pytest.mark.parametrize("batch", [1, 3])
def test_shape_chain_folds_to_one_reshape(batch):
    model = _flatten_by_shape_model()
    graph = lower_model(model, {"x": (batch, 3, 4)})
    assert [n.op for n in graph.nodes()] == ["Reshape"]
    x = RNG.standard_normal((batch, 3, 4)).astype(np.float32)
    (expected,) = _ort(model, {"x": x})
    np.testing.assert_array_equal(nnc.run(graph, {"x": x})["y"], expected)
    assert graph.tensor("y").shape == (batch, 12)


@pytest.mark.parametrize("opset", [11, 12])
def test_folded_nodes_run_at_the_model_s_opset(opset):
    """Before opset 13 Unsqueeze takes its axes as an attribute; folding must
    evaluate the node at the model's opset, not the newest one."""
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Gather", ["s", "zero"], ["b"], axis=0),
             helper.make_node("Unsqueeze", ["b"], ["b1"], axes=[0]),
             helper.make_node("Concat", ["b1", "minus_one"], ["shape"], axis=0),
             helper.make_node("Reshape", ["x", "shape"], ["y"])]
    model = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, 3])],
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 6])],
                   [("zero", np.array(0, np.int64)), ("minus_one", np.array([-1], np.int64))], opset=opset)
    graph = lower_model(model, {"x": (2, 2, 3)})
    assert [n.op for n in graph.nodes()] == ["Reshape"] and graph.tensor("y").shape == (2, 6)
    x = RNG.standard_normal((2, 2, 3)).astype(np.float32)
    np.testing.assert_array_equal(nnc.run(graph, {"x": x})["y"], _ort(model, {"x": x})[0])


def test_shape_start_end_and_size_fold():
    nodes = [
        helper.make_node("Shape", ["x"], ["tail"], start=-2),
        helper.make_node("Size", ["x"], ["n"]),
        helper.make_node("Unsqueeze", ["n", "axes"], ["n1"]),
        helper.make_node("Concat", ["n1", "tail"], ["shape"], axis=0),
        helper.make_node("Expand", ["x", "shape"], ["y"]),
    ]
    model = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 5])],
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, [10, 2, 5])],
                   [("axes", np.array([0], np.int64))])
    folded = nnc.frontend.shape_folding.fold_shapes(
        onnx.shape_inference.infer_shapes(model), 17, onnx.shape_inference.infer_shapes)
    shape_init = {t.name: numpy_helper.to_array(t) for t in folded.graph.initializer}["shape"]
    np.testing.assert_array_equal(shape_init, [10, 2, 5])
    assert [n.op_type for n in folded.graph.node] == ["Expand"]


def test_constant_subgraphs_fold_and_match_onnxruntime():
    """ConstantOfShape, Range, Cast, Where and Mul on constants become one constant
    that a run-time Add reads."""
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("ConstantOfShape", ["s"], ["ones"], value=helper.make_tensor("v", TensorProto.FLOAT, [1], [1.0])),
        helper.make_node("Range", ["start", "limit", "delta"], ["r"]),
        helper.make_node("Cast", ["r"], ["rf"], to=TensorProto.FLOAT),
        helper.make_node("Greater", ["rf", "two"], ["cond"]),
        helper.make_node("Where", ["cond", "rf", "ones"], ["w"]),
        helper.make_node("Add", ["x", "w"], ["y"]),
    ]
    inits = [("start", np.array(0, np.int64)), ("limit", np.array(4, np.int64)), ("delta", np.array(1, np.int64)),
             ("two", np.array(2.0, np.float32))]
    model = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])], inits)
    graph = lower_model(model, {})
    assert [n.op for n in graph.nodes()] == ["Add"]
    x = RNG.standard_normal((2, 4)).astype(np.float32)
    np.testing.assert_array_equal(nnc.run(graph, {"x": x})["y"], _ort(model, {"x": x})[0])


def test_quantized_weights_stay_dequantize_nodes():
    w = RNG.integers(-127, 128, (4, 3)).astype(np.int8)
    nodes = [helper.make_node("DequantizeLinear", ["w", "ws"], ["wf"]),
             helper.make_node("MatMul", ["x", "wf"], ["y"])]
    model = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
                   [("w", w), ("ws", np.array(0.02, np.float32))])
    graph = lower_model(model, {})
    assert "DequantizeLinear" in [n.op for n in graph.nodes()]


def test_data_dependent_shape_is_refused_by_name():
    """NonZero's output shape depends on values: the Shape after it cannot fold,
    and the error names what remains."""
    nodes = [helper.make_node("NonZero", ["x"], ["nz"]), helper.make_node("Shape", ["nz"], ["s"]),
             helper.make_node("Cast", ["s"], ["sf"], to=TensorProto.FLOAT),
             helper.make_node("ReduceSum", ["sf"], ["y"], keepdims=0)]
    model = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, [])])
    with pytest.raises(UnsupportedError, match="NonZero"):
        lower_model(model, {})
