"""The ONNX front end: shape binding, external data, clean errors."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import nnc
from nnc.cli import run_cli
from nnc.errors import ModelError, OptionError, ShapeError, UnsupportedError


def _save(tmp_path, nodes, inputs, outputs, inits=(), opset=17, name="m.onnx"):
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    path = tmp_path / name
    onnx.save(model, path)
    return path


def _relu_model(tmp_path, shape):
    return _save(tmp_path, [helper.make_node("Relu", ["x"], ["y"])],
                 [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                 [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)])


def test_symbolic_dims_bind_to_one(tmp_path):
    graph = nnc.load(_relu_model(tmp_path, ["N", 3, None]))
    assert graph.tensor("x").shape == (1, 3, 1) and graph.tensor("y").shape == (1, 3, 1)


def test_input_shape_override(tmp_path):
    graph = nnc.load(_relu_model(tmp_path, ["N", 3]), {"x": (5, 3)})
    assert graph.tensor("y").shape == (5, 3)


@pytest.mark.parametrize("shapes,message", [
    ({"x": (5, 4)}, "dimension 1 is 3"),
    ({"x": (5,)}, "rank 2"),
    ({"z": (1, 3)}, "unknown input"),
    ({"x": (0, 3)}, "must be positive"),
])
def test_input_shape_errors(tmp_path, shapes, message):
    with pytest.raises(ShapeError, match=message):
        nnc.load(_relu_model(tmp_path, ["N", 3]), shapes)


def test_input_shape_errors_name_the_keyword_in_the_api_and_the_flag_on_the_command_line(tmp_path, capsys):
    model = _relu_model(tmp_path, ["N", 3])
    text_ir = tmp_path / "m.nnir"
    text_ir.write_text(nnc.print_ir(nnc.load(model)))
    unknown = "names unknown input(s) ['z']; the model's inputs are ['x']"
    static = "applies to ONNX models; a .nnir file has static shapes"
    with pytest.raises(ShapeError) as caught:
        nnc.compile(model, input_shapes={"z": (1, 3)})
    assert str(caught.value) == f"input_shapes {unknown}"
    with pytest.raises(OptionError) as caught:
        nnc.compile(text_ir, input_shapes={"x": (1, 3)})
    assert str(caught.value) == f"input_shapes {static}"
    for path, shape, message in ((model, "z=1,3", unknown), (text_ir, "x=1,3", static)):
        code = run_cli(["compile", str(path), "-o", str(tmp_path / "out"), "--input-shape", shape])
        assert code == 2 and capsys.readouterr().err.splitlines() == [f"nnc: error: --input-shape {message}"]


def test_old_opset_refused(tmp_path):
    path = _save(tmp_path, [helper.make_node("Relu", ["x"], ["y"])],
                 [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                 [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])], opset=9)
    with pytest.raises(UnsupportedError, match="opset 9"):
        nnc.load(path)


def test_not_onnx(tmp_path):
    path = tmp_path / "junk.onnx"
    path.write_bytes(b"\x00\xff" * 100)
    with pytest.raises(ModelError):
        nnc.load(path)


def test_unsupported_dtype(tmp_path):
    path = _save(tmp_path, [helper.make_node("Relu", ["x"], ["y"])],
                 [helper.make_tensor_value_info("x", TensorProto.FLOAT16, [2])],
                 [helper.make_tensor_value_info("y", TensorProto.FLOAT16, [2])])
    with pytest.raises(UnsupportedError, match="FLOAT16|float16"):
        nnc.load(path)


def test_external_data_outside_folder_refused(tmp_path):
    weights = numpy_helper.from_array(np.ones((4,), np.float32), "w")
    path = _save(tmp_path, [helper.make_node("Add", ["x", "w"], ["y"])],
                 [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
                 [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])], inits=[weights])
    model = onnx.load(path)
    onnx.external_data_helper.convert_model_to_external_data(model, location="../evil.bin", size_threshold=0)
    model.graph.initializer[0].ClearField("raw_data")
    onnx.save(model, path, save_as_external_data=False)
    with pytest.raises(ModelError, match="outside the model's folder"):
        nnc.load(path)


def test_external_data_inside_folder_loads(tmp_path):
    weights = numpy_helper.from_array(np.arange(4, dtype=np.float32), "w")
    path = _save(tmp_path, [helper.make_node("Add", ["x", "w"], ["y"])],
                 [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
                 [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])], inits=[weights])
    onnx.save(onnx.load(path), path, save_as_external_data=True, location="w.bin", size_threshold=0)
    graph = nnc.load(path)
    out = nnc.run(graph, {"x": np.ones(4, np.float32)})["y"]
    np.testing.assert_array_equal(out, [1, 2, 3, 4])


def test_constant_nodes_become_constants(tmp_path):
    nodes = [helper.make_node("Constant", [], ["c"], value_float=2.0),
             helper.make_node("Mul", ["x", "c"], ["y"])]
    path = _save(tmp_path, nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])],
                 [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])])
    graph = nnc.load(path)
    assert [n.op for n in graph.nodes()] == ["Mul"] and graph.tensor("c").is_constant


def test_run_checks_inputs(tmp_path):
    graph = nnc.load(_relu_model(tmp_path, [2, 3]))
    with pytest.raises(ShapeError, match="shape"):
        nnc.run(graph, {"x": np.zeros((3, 2), np.float32)})
    with pytest.raises(ShapeError, match="missing"):
        nnc.run(graph, {})
    out = nnc.run(graph, {"x": -np.ones((2, 3))})  # float64 converts to the declared f32
    assert out["y"].dtype == np.float32 and not out["y"].any()


def test_a_lowering_returning_none_forwards_its_input(monkeypatch):
    """registry.py: a lowering returns None for a node that is a no-op; the node
    then forwards its first input."""
    from nnc.frontend.onnx_loader import lower_model
    from nnc.interpreter import run
    from nnc.ops import registry

    registry.lowering("Relu")  # the real lowering registered first (op modules load on first lookup)
    monkeypatch.setitem(registry._LOWERINGS, "Relu", lambda node: None)
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])])
    lowered = lower_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), {})
    assert [n.op for n in lowered.nodes()] == ["Identity"]
    x = np.array([-1.0, 0.0, 2.0], np.float32)
    np.testing.assert_array_equal(run(lowered, {"x": x})["y"], x)
