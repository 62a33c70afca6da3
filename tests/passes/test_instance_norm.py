"""instance_norm_to_layer_norm (a canonicalize rule): InstanceNormalization, as
PyTorch exports InstanceNorm and GroupNorm, becomes a LayerNormalization over
the spatial axes and a per-channel Mul and Add, with the same values; a model
with GroupNorm then compiles on every target."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

import nnc
from nnc.interpreter import run
from nnc.textir import parse_ir, print_ir

from pass_testing import apply, build, ops

RNG = np.random.default_rng(4)


@pytest.mark.parametrize("shape", [[1, 4, 9], [2, 3, 5, 6]])
def test_instance_norm_becomes_a_layer_norm_and_a_channel_affine(shape):
    scale, bias = (RNG.standard_normal(shape[1]).astype(np.float32) for _ in range(2))
    node = helper.make_node("InstanceNormalization", ["x", "s", "b"], ["y"], name="inorm", epsilon=1e-4)
    before = build([node], {"x": shape}, {"y": shape}, {"s": scale, "b": bias})
    after = apply(before, "canonicalize", exact=False)
    assert ops(after) == ["LayerNormalization", "Mul", "Add"] and after.producer("y").name == "inorm"
    assert "s" not in after.tensors and print_ir(parse_ir(print_ir(after))) == print_ir(after)
    x = (RNG.standard_normal(shape) * 2 + 3).astype(np.float32)
    np.testing.assert_allclose(run(after, {"x": x})["y"], run(before, {"x": x})["y"], rtol=1e-5, atol=1e-5)


def _group_norm_model(channels=8, groups=4, steps=20) -> onnx.ModelProto:
    """Conv1d → InstanceNorm1d → GroupNorm as PyTorch exports it (Reshape to
    [1, G, -1], InstanceNormalization with scale 1 and B 0, Reshape back, Mul, Add)."""
    arrays = {"w": RNG.standard_normal((channels, channels, 3)) * 0.3, "s": RNG.standard_normal(channels),
              "b": RNG.standard_normal(channels), "g1": np.ones(groups), "g0": np.zeros(groups),
              "gs": RNG.standard_normal((channels, 1)), "gb": RNG.standard_normal((channels, 1))}
    inits = [numpy_helper.from_array(a.astype(np.float32), n) for n, a in arrays.items()]
    inits += [numpy_helper.from_array(np.array(v, np.int64), n) for n, v in
              (("grouped", [1, groups, -1]), ("back", [1, channels, steps]))]
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1]),
             helper.make_node("InstanceNormalization", ["c", "s", "b"], ["i"]),
             helper.make_node("Reshape", ["i", "grouped"], ["r"]),
             helper.make_node("InstanceNormalization", ["r", "g1", "g0"], ["gi"]),
             helper.make_node("Reshape", ["gi", "back"], ["rb"]),
             helper.make_node("Mul", ["rb", "gs"], ["m"]), helper.make_node("Add", ["m", "gb"], ["y"])]
    value = lambda name: helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, [1, channels, steps])
    graph = helper.make_graph(nodes, "group_norm", [value("x")], [value("y")], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("target, quantize", [("c", False), ("c", True), ("az-sim", True), ("onnx", True)])
def test_group_norm_compiles_on_every_target(target, quantize, tmp_path):
    onnx.save(_group_norm_model(), tmp_path / "gn.onnx")
    calib = RNG.standard_normal((16, 1, 8, 20)).astype(np.float32)
    result = nnc.compile(tmp_path / "gn.onnx", target, tmp_path / "out", calib=calib, quantize=quantize)
    verification = result.report["verification"]
    assert verification["vs_float"]["cosine"] > (0.9998 if quantize else 0.999999)
    if quantize:
        assert verification["vs_reference"]["max_abs_diff_lsb"] <= (1 if target == "onnx" else 0)
        assert [layer["op"] for layer in result.report["layers"]].count("QLayerNorm") == 2
        # γ = 1 and β = 0 over every spatial position are one value each: stored once, not per
        # position (a long input's GroupNorm took megabytes of flash, the model sweep found)
        norms = [n for n in result.graph.nodes() if n.op == "QLayerNorm"]
        assert all(result.graph.tensor(t).shape == (1,) for n in norms for t in n.inputs[1:])
