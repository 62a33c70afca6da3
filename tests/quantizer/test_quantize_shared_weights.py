"""A weight read by several layers (PyTorch's dynamo exporter unrolls nn.RNN into
one MatMul per step, all reading one tensor) stays one int8 tensor after
quantization, so flash and the az-sim weight streams hold it once."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from e2e import compile_everywhere

RNG = np.random.default_rng(31)


def _twice(op: str):
    """x -> op(W) -> Tanh -> op(W) -> y with one weight tensor W."""
    if op == "MatMul":
        w, shape = RNG.standard_normal((16, 16)) * 0.3, [1, 16]
        layer = lambda i, o: helper.make_node("MatMul", [i, "W"], [o])  # noqa: E731
    else:
        w, shape = RNG.standard_normal((4, 4, 3, 3)) * 0.3, [1, 4, 6, 6]
        layer = lambda i, o: helper.make_node("Conv", [i, "W"], [o], pads=[1, 1, 1, 1])  # noqa: E731
    nodes = [layer("x", "a"), helper.make_node("Tanh", ["a"], ["b"]), layer("b", "y")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)],
                              [numpy_helper.from_array(w.astype(np.float32), "W")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), shape, w.size


@pytest.mark.parametrize("op", ["MatMul", "Conv"])
def test_shared_weight_is_stored_once(tmp_path, op):
    model, shape, size = _twice(op)
    reports = compile_everywhere(model, tmp_path, {"x": RNG.standard_normal((4, *shape)).astype(np.float32)})
    assert reports["az-sim"]["weights"]["stored_bytes"] == size
    per_layer = [stored for _, _, stored in reports["c"]["memory"]["weights"].values()]
    assert len(per_layer) == 2 and reports["c"]["weights"]["stored_bytes"] == per_layer[0]  # one array in flash


def test_shared_batched_matmul_operand_is_stored_once(tmp_path):
    """A rank-3 constant two MatMuls read is no layer's weights but an int8
    QMatMul operand (docs/numerics.md §12): one int8 copy serves both."""
    import nnc

    w = (RNG.standard_normal((2, 8, 8)) * 0.3).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["x", "W"], ["a"]), helper.make_node("Tanh", ["a"], ["b"]),
             helper.make_node("MatMul", ["b", "W"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4, 8])],
                              [numpy_helper.from_array(w, "W")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    reports = compile_everywhere(model, tmp_path, {"x": RNG.standard_normal((4, 2, 4, 8)).astype(np.float32)})
    assert reports["c"]["weights"]["other_bytes"] == reports["az-sim"]["weights"]["other_bytes"] == w.size
    result = nnc.compile(tmp_path / "model.onnx", target="ir", quantize=True,
                         calib=tmp_path / "samples.npz")
    operands = {n.inputs[1] for n in result.graph.nodes() if n.op == "QMatMul"}
    assert len(operands) == 1 and result.graph.constant(operands.pop()).dtype == np.int8
