"""Where onnxruntime cannot run a valid model (LSTM with layout 1), verification
takes nnc's float reference on the unoptimized graph as the float truth, says so
in report.json, and still proves every target bit-exact."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from e2e import compile_everywhere

RNG = np.random.default_rng(5)
HIDDEN = 8


def _batch_first_lstm():
    inits = [numpy_helper.from_array((RNG.standard_normal((1, 4 * HIDDEN, n)) * s).astype(np.float32), name)
             for name, n, s in (("W", 5, 0.4), ("R", HIDDEN, 0.3))]
    node = helper.make_node("LSTM", ["x", "W", "R"], ["y"], hidden_size=HIDDEN, layout=1)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 6, 5])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 6, 1, HIDDEN])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_layout1_lstm_verifies_against_nnc_float_reference(tmp_path):
    reports = compile_everywhere(_batch_first_lstm(), tmp_path,
                                 {"x": RNG.standard_normal((4, 2, 6, 5)).astype(np.float32)})
    for target, report in reports.items():
        truth = report["verification"]["float_truth"]
        assert truth.startswith("nnc's float reference interpreter") and "layout" in truth, target
        assert any("vs_float compares with nnc's float reference" in w for w in report["warnings"])
    assert reports["ir"]["verification"]["vs_float"]["bit_exact"]  # the float graph against itself
