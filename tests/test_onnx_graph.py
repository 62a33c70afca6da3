"""What the lowering reads of an ONNX graph (compiler/frontend/onnx_graph.py)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import nnc
from nnc.frontend.onnx_graph import read_graph
from nnc.frontend.onnx_loader import load


def _model(nodes, initializers=(), sparse=(), inputs=None, outputs=("y",)):
    inputs = inputs if inputs is not None else [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])]
    graph = helper.make_graph(nodes, "g", inputs, [helper.make_tensor_value_info(o, TensorProto.FLOAT, [2, 3])
                                                   for o in outputs], list(initializers))
    graph.sparse_initializer.extend(sparse)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_dead_nodes_go_and_file_order_stays():
    nodes = [helper.make_node("Relu", ["x"], ["a"], name="first"),
             helper.make_node("Neg", ["x"], ["dead"], name="unused"),
             helper.make_node("Abs", ["x"], ["b"], name="second"),
             helper.make_node("Add", ["a", "b"], ["y"], name="third")]
    graph = read_graph(_model(nodes).graph)
    assert [n.name for n in graph.nodes] == ["first", "second", "third"]
    assert graph.inputs == ["x"] and graph.outputs == ["y"] and graph.types["x"].shape == (2, 3)


def test_attributes_become_python_values():
    node = helper.make_node("Foo", ["x"], ["y"], i=3, f=0.5, s="same", ints=[1, 2], floats=[0.25], strings=["a", "b"],
                            t=numpy_helper.from_array(np.arange(3, dtype=np.int64)))
    attrs = read_graph(_model([node]).graph).nodes[0].attrs
    assert {k: v for k, v in attrs.items() if k != "t"} == {"i": 3, "f": 0.5, "s": "same", "ints": [1, 2],
                                                            "floats": [0.25], "strings": ["a", "b"]}
    assert attrs["t"].tolist() == [0, 1, 2] and attrs["t"].flags.writeable


@pytest.mark.parametrize("indices", [np.array([1, 5]), np.array([[0, 1], [1, 2]])])
def test_sparse_initializers_are_made_dense(indices, tmp_path):
    sparse = helper.make_sparse_tensor(numpy_helper.from_array(np.array([2.0, -3.0], np.float32), "w"),
                                       numpy_helper.from_array(indices.astype(np.int64), "w_indices"), [2, 3])
    model = _model([helper.make_node("Add", ["x", "w"], ["y"])], sparse=[sparse])
    graph = read_graph(model.graph)
    np.testing.assert_array_equal(graph.constants["w"], [[0, 2, 0], [0, 0, -3]])
    path = tmp_path / "sparse.onnx"
    onnx.save(model, path)
    x = np.ones((2, 3), np.float32)
    assert nnc.run(load(path), {"x": x})["y"].tolist() == [[1, 3, 1], [1, 1, -2]]


def test_an_input_without_a_shape_is_refused(tmp_path):
    model = _model([helper.make_node("Relu", ["x"], ["y"])],
                   inputs=[helper.make_tensor_value_info("x", TensorProto.FLOAT, None)])
    path = tmp_path / "noshape.onnx"
    onnx.save(model, path)
    with pytest.raises(nnc.NncError):
        load(path)


def test_a_sparse_initializer_past_the_size_limit_is_refused_before_it_is_built():
    sparse = helper.make_sparse_tensor(numpy_helper.from_array(np.array([1.0], np.float32), "w"),
                                       numpy_helper.from_array(np.array([0], np.int64), "w_indices"),
                                       [100000, 100000])
    model = _model([helper.make_node("Add", ["x", "x"], ["y"])], sparse=[sparse], outputs=("y", "w"))
    with pytest.raises(nnc.ModelError, match="sparse initializer 'w': dims.*past nnc's limit"):
        read_graph(model.graph)


@pytest.mark.parametrize("stale", [["N", 3], [4, 3]])
def test_a_graph_inputs_bound_shape_wins_over_a_value_info_naming_it(stale):
    from nnc.frontend.onnx_loader import lower_model

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])],
                              value_info=[helper.make_tensor_value_info("x", TensorProto.FLOAT, stale)])
    lowered = lower_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), {"x": (2, 3)})
    assert lowered.tensor("x").shape == (2, 3) and lowered.tensor("y").shape == (2, 3)
