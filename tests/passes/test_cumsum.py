"""CumSum: the reference against onnxruntime (exclusive, reverse, every axis),
and cumsum_to_matmul (a canonicalize rule), which writes a float CumSum as a
MatMul of a constant triangle by x with the same values, compiles on every
target and leaves the triangle out of the compression passes."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import nnc
from nnc.interpreter import run
from nnc.passmanager import parse_pipeline

from pass_testing import apply, ops

SHAPES = [((6,), 0), ((2, 5), 1), ((2, 5), 0), ((2, 3, 4), -1), ((2, 3, 4), 1), ((3, 2, 4, 5), 1)]


def model(shape, axis: int, exclusive: int, reverse: int, weights: np.ndarray | None = None,
          dtype=TensorProto.FLOAT) -> onnx.ModelProto:
    """x (through a MatMul by `weights` when given) -> CumSum(axis) -> y."""
    nodes, initializers, source = [], [helper.make_tensor("axis", TensorProto.INT64, [], [axis])], "x"
    if weights is not None:
        nodes.append(helper.make_node("MatMul", ["x", "w"], ["h"]))
        initializers.append(numpy_helper.from_array(weights, "w"))
        source = "h"
    nodes.append(helper.make_node("CumSum", [source, "axis"], ["y"], exclusive=exclusive, reverse=reverse))
    graph = helper.make_graph(nodes, "cumsum", [helper.make_tensor_value_info("x", dtype, list(shape))],
                              [helper.make_tensor_value_info("y", dtype, list(shape))], initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])


@pytest.mark.parametrize("shape, axis", SHAPES)
@pytest.mark.parametrize("exclusive", [0, 1])
@pytest.mark.parametrize("reverse", [0, 1])
def test_reference_and_rewrite_match_onnxruntime(shape, axis, exclusive, reverse, tmp_path):
    m = model(shape, axis, exclusive, reverse)
    onnx.save(m, tmp_path / "m.onnx")
    x = np.random.default_rng(3).standard_normal(shape).astype(np.float32)
    want = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    graph = nnc.load(tmp_path / "m.onnx")
    np.testing.assert_allclose(run(graph, {"x": x})["y"], want, rtol=1e-6, atol=1e-6)
    after = apply(graph, "canonicalize", exact=False)
    assert "CumSum" not in ops(after) and "MatMul" in ops(after)
    np.testing.assert_allclose(run(after, {"x": x})["y"], want, rtol=1e-5, atol=1e-5)


def test_integer_cumsum_stays_in_the_reference(tmp_path):
    onnx.save(model((2, 5), 1, 0, 1, dtype=TensorProto.INT64), tmp_path / "m.onnx")
    graph = nnc.load(tmp_path / "m.onnx")
    x = np.arange(10, dtype=np.int64).reshape(2, 5)
    assert np.array_equal(run(graph, {"x": x})["y"], np.flip(np.cumsum(np.flip(x, 1), axis=1), 1))
    (canonicalize,) = parse_pipeline("canonicalize")
    assert ops(canonicalize.run(graph.copy())) == ["CumSum"]


@pytest.mark.parametrize("target", ["c", "az-sim", "onnx"])
@pytest.mark.parametrize("shape, axis, exclusive, reverse", [((1, 8, 6), 1, 0, 0), ((1, 8, 6), 2, 1, 0),
                                                             ((2, 3, 8, 6), 1, 1, 1)])
def test_int8_cumsum_compiles_everywhere(target, shape, axis, exclusive, reverse, tmp_path):
    """Bit-exact with the reference on each target (the driver checks it); the
    sums keep cosine 0.9998 to the float model."""
    rng = np.random.default_rng(1)
    onnx.save(model(shape, axis, exclusive, reverse, rng.standard_normal((6, 6)).astype(np.float32) * 0.5),
              tmp_path / "m.onnx")
    calib = {"x": rng.standard_normal((16, *shape)).astype(np.float32)}
    result = nnc.compile(tmp_path / "m.onnx", target, tmp_path / "out", calib=calib)
    assert result.report["verification"]["vs_reference"]["bit_exact"]
    assert result.report["verification"]["vs_float"]["cosine"] > 0.9998


def test_the_triangle_is_not_a_layer_to_compress(tmp_path):
    """Pruning and 4-bit weights act on the MatMul's weights, never on the triangle."""
    rng = np.random.default_rng(1)
    onnx.save(model((1, 8, 6), 1, 0, 0, rng.standard_normal((6, 6)).astype(np.float32)), tmp_path / "m.onnx")
    result = nnc.compile(tmp_path / "m.onnx", "ir", tmp_path / "out", quantize=True, weight_bits=4, sparsity=0.5,
                         calib={"x": rng.standard_normal((8, 1, 8, 6)).astype(np.float32)})
    product = next(n for n in result.graph.nodes() if n.op == "QMatMul")
    values = result.graph.constant(product.inputs[0])
    assert np.count_nonzero(values) == 36 and len(np.unique(values[values != 0])) == 1  # 8 x 8 lower triangle
    assert [layer["op"] for layer in result.report["layers"] if layer.get("bits")] == ["QGemm"]
