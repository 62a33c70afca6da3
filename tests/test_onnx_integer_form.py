"""`--target onnx --onnx-form integer` (issue 14): nnc's integer graph as ONNX
integer arithmetic (ConvInteger / MatMulInteger, int64 requantization), which
onnxruntime runs bit for bit like nnc's reference interpreter: on digits at
each compression setting, on the MLPerf Tiny int8 models, on every integer op
the writer knows (hand-built graphs sweeping each 8-bit value and the
coefficients' extremes), and the compile fails when it is not."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import nnc
from nnc.backends.onnx_qdq.integer_writer import INTEGER_WRITERS, to_integer_onnx
from nnc.backends.onnx_qdq.target import OnnxTarget
from nnc.cli import run_cli
from nnc.errors import OptionError, UnsupportedError, VerificationError
from nnc.interpreter import run
from nnc.ir import Graph, Tensor
from nnc.ops.layernorm import QLayerNormAttrs
from nnc.verification import load_samples, synthetic_samples

from elementwise_graphs import _node, corner_graph, corner_samples
from mlperf import MODEL_NAMES, MODELS_DIR, requires_models
from rnn_models import Spec, keyword_spotter, model, samples, split_samples
from test_onnx_target import _attention, _data_movement, _model, assert_every_tensor_typed

DIGITS = Path(__file__).resolve().parents[1] / "examples" / "digits"
DIGITS_SETTINGS = {"int8": {}, "4bit-half-sparse": {"weight_bits": 4, "sparsity": 0.5},
                   "2bit-codebook": {"weight_bits": 2, "codebook": True}}
INT8_MODELS = [name for name in MODEL_NAMES if "int8" in name]
# What the integer form may hold besides data movement: no float arithmetic.
INTEGER_ONNX_OPS = {"ConvInteger", "MatMulInteger", "Cast", "Add", "Sub", "Mul", "Div", "Mod", "Clip", "Pad",
                    "Gather", "ReduceMax", "ReduceSum", "Reshape", "Transpose", "QuantizeLinear", "DequantizeLinear"}


def session(model: onnx.ModelProto, optimized: bool):
    options = ort.SessionOptions()
    options.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimized
                                        else ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def assert_bit_exact(model: onnx.ModelProto, reference: Graph, samples: list[dict], optimized: bool = False) -> None:
    """onnxruntime on `model` (graph optimizations off, or all on) equals nnc's
    reference interpreter on `reference`, element for element and in type, on
    every sample."""
    runner = session(model, optimized)
    for sample in samples:
        expected = run(reference, sample)
        for name, got in zip(reference.outputs, runner.run(reference.outputs, sample)):
            assert got.dtype == expected[name].dtype, name
            np.testing.assert_array_equal(got, expected[name], err_msg=name)


def export(model, out: Path, **options) -> tuple[nnc.CompileResult, onnx.ModelProto, Graph]:
    """Compile for the integer form (its verification requires bit-exact
    outputs); the result, the written model (checked by onnx.checker, a
    value_info for every tensor) and the integer graph it stands for."""
    result = nnc.compile(model, target="onnx", onnx_form="integer", output_dir=out, **options)
    written = onnx.load(str(out / f"{Path(model).stem}.onnx"))
    onnx.checker.check_model(written, full_check=True)
    assert_every_tensor_typed(written)
    vs_reference = result.report["verification"]["vs_reference"]
    assert vs_reference["bit_exact"] and vs_reference["max_abs_diff_lsb"] == 0
    assert result.report["onnx"]["form"] == "integer"
    return result, written, OnnxTarget().reference_graph(result.graph)


@pytest.mark.parametrize("setting", DIGITS_SETTINGS)
def test_digits_bit_exact_in_onnxruntime(setting, tmp_path):
    calib = DIGITS / "calib.npz"
    _, written, reference = export(DIGITS / "digits.onnx", tmp_path / "out", calib=calib, **DIGITS_SETTINGS[setting])
    ops = {node.op_type for node in written.graph.node}
    assert {"ConvInteger", "MatMulInteger"} <= ops <= INTEGER_ONNX_OPS
    assert not {"Conv", "Gemm", "MatMul"} & ops
    assert_bit_exact(written, reference, load_samples(calib, reference)[:16])


@requires_models
@pytest.mark.parametrize("name", INT8_MODELS)
def test_mlperf_int8_model_bit_exact_in_onnxruntime(name, tmp_path):
    """The model's sample and random inputs (where the QDQ form of ResNet-8 can
    be many LSB apart at the outputs: float32 rounding in onnxruntime's
    convolutions, compounded by the later layers, docs/onnx-export.md), also
    with onnxruntime's graph optimizations on."""
    _, written, reference = export(MODELS_DIR / f"{name}.onnx", tmp_path / "out",
                                   inputs=MODELS_DIR / f"{name}.io.npz")
    assert {node.op_type for node in written.graph.node} <= INTEGER_ONNX_OPS
    assert_bit_exact(written, reference, synthetic_samples(reference, 3, seed=5), optimized=True)


@pytest.mark.parametrize("build", [_data_movement, _attention], ids=lambda b: b.__name__.strip("_"))
def test_ops_bit_exact(build, tmp_path):
    """QResize, ResizeNearest, QReduce, Requantize, Concat, Slice, Tile, Expand,
    QSoftmax on axis 1; Gather, QLayerNorm, QMatMul of two activations, QLut."""
    onnx.save(build(), tmp_path / "ops.onnx")
    _, written, reference = export(tmp_path / "ops.onnx", tmp_path / "out", synthetic_samples=4)
    assert_bit_exact(written, reference, synthetic_samples(reference, 4, seed=3))


def test_global_max_pool_of_integers_is_a_reduce_max(tmp_path):
    """ONNX's GlobalMaxPool takes floats only; the integer form reduces instead."""
    rng = np.random.default_rng(2)
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"]), helper.make_node("GlobalMaxPool", ["c"], ["y"])]
    inits = {"w": rng.normal(0, 0.5, (4, 3, 1, 1)).astype(np.float32), "b": np.zeros(4, np.float32)}
    onnx.save(_model(nodes, inits, [1, 3, 5, 5], [1, 4, 1, 1], 13), tmp_path / "gmp.onnx")
    _, written, reference = export(tmp_path / "gmp.onnx", tmp_path / "out", synthetic_samples=4)
    assert "ReduceMax" in {node.op_type for node in written.graph.node}
    assert_bit_exact(written, reference, synthetic_samples(reference, 4, seed=3))


def _uint8_qdq_conv() -> onnx.ModelProto:
    """A QDQ model with uint8 activations (zero points 120, 3, 7): a padded Conv
    and an AveragePool."""
    rng = np.random.default_rng(4)
    s_x, s_w = np.float32(0.02), rng.uniform(0.002, 0.01, 4).astype(np.float32)
    inits = {"s_x": s_x, "z_x": np.uint8(120), "w": rng.integers(-127, 128, (4, 3, 3, 3)).astype(np.int8),
             "s_w": s_w, "z_w": np.zeros(4, np.int8), "b": rng.integers(-2000, 2000, 4).astype(np.int32),
             "s_b": (s_x * s_w).astype(np.float32), "z_b": np.zeros(4, np.int32),
             "s_y": np.float32(0.05), "z_y": np.uint8(3), "s_p": np.float32(0.03), "z_p": np.uint8(7)}
    nodes = [helper.make_node("QuantizeLinear", ["x", "s_x", "z_x"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "s_x", "z_x"], ["xd"]),
             helper.make_node("DequantizeLinear", ["w", "s_w", "z_w"], ["wd"], axis=0),
             helper.make_node("DequantizeLinear", ["b", "s_b", "z_b"], ["bd"], axis=0),
             helper.make_node("Conv", ["xd", "wd", "bd"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("QuantizeLinear", ["c", "s_y", "z_y"], ["cq"]),
             helper.make_node("DequantizeLinear", ["cq", "s_y", "z_y"], ["cd"]),
             helper.make_node("AveragePool", ["cd"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("QuantizeLinear", ["p", "s_p", "z_p"], ["pq"]),
             helper.make_node("DequantizeLinear", ["pq", "s_p", "z_p"], ["y"])]
    graph = helper.make_graph(nodes, "u8", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 4, 4])],
                              [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


def test_uint8_activations_bit_exact(tmp_path):
    onnx.save(_uint8_qdq_conv(), tmp_path / "u8.onnx")
    _, written, reference = export(tmp_path / "u8.onnx", tmp_path / "out", synthetic_samples=4)
    assert [reference.tensor(n.outputs[0]).dtype for n in reference.nodes() if n.op in ("QConv", "QAveragePool")] \
        == ["u8", "u8"]
    assert_bit_exact(written, reference, synthetic_samples(reference, 8, seed=1))


def test_elementwise_corners_bit_exact():
    """QMul, QAffine (a negative-side slope) and QAdd with a negative multiplier
    over every 8-bit input, with int32 extremes as coefficients."""
    graph = corner_graph()
    written = to_integer_onnx(graph)
    assert_every_tensor_typed(written)
    assert_bit_exact(written, graph, corner_samples())


def test_layer_norm_corners_bit_exact():
    """QLayerNorm rows: constant (U = 0 and U = ε), one extreme value, alternating
    extremes (U near its largest), random; two row lengths."""
    graph, rng = Graph("layernorm"), np.random.default_rng(0)
    graph.add_tensor(Tensor("x", "i8", (6, 2, 16)))
    graph.inputs.append("x")
    for out, axis, count, g_bits, b_bits, eps, shift in (("y", 1, 32, 30, 52, 0, 55), ("y2", 2, 16, 23, 40, 12345, 47)):
        g = graph.add_constant(f"{out}.g", rng.integers(-(1 << g_bits), 1 << g_bits, count).astype(np.int32)).name
        b = graph.add_constant(f"{out}.b", rng.integers(-(1 << b_bits), 1 << b_bits, count).astype(np.int64)).name
        _node(graph, "QLayerNorm", ["x", g, b], QLayerNormAttrs(axis, eps, shift, 3, -128, 127), out)
        graph.outputs.append(out)
    x = rng.integers(-128, 128, (6, 2, 16)).astype(np.int8)
    x[0], x[1, 0], x[1, 0, 0], x[2] = 7, -128, 127, np.where(np.arange(16) % 2, 127, -128)
    samples = [{"x": x}] + [{"x": rng.integers(-128, 128, x.shape).astype(np.int8)} for _ in range(8)]
    assert len(np.unique(run(graph, samples[1])["y"])) > 8  # not saturated: the test sees the rounding
    written = to_integer_onnx(graph)
    assert_every_tensor_typed(written)
    assert_bit_exact(written, graph, samples)


def test_a_wrong_integer_layer_fails_verification(tmp_path, monkeypatch):
    """A writer that drops QConv's bias: the outputs differ, the compile fails."""
    write_qconv = INTEGER_WRITERS["QConv"]

    def qconv_without_bias(out, node):
        write_qconv(out, dataclasses.replace(node, inputs=[*node.inputs[:2], "", *node.inputs[3:]]))

    monkeypatch.setitem(INTEGER_WRITERS, "QConv", qconv_without_bias)
    with pytest.raises(VerificationError, match="must be bit-exact"):
        nnc.compile(DIGITS / "digits.onnx", target="onnx", onnx_form="integer", output_dir=tmp_path / "out",
                    calib=DIGITS / "calib.npz")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("spec", [
    Spec("LSTM", direction="bidirectional", layout=1, states="input", outputs=("Y", "Y_h", "Y_c")),
    Spec("GRU", direction="reverse", states="const", attrs={"linear_before_reset": 1}),
    Spec("GRU", steps=3, attrs={"clip": 2.0}),
    Spec("RNN", layout=1, states="input")], ids=["lstm-bidirectional-layout1", "gru-reverse-lbr", "gru-clip", "rnn"])
def test_recurrent_bit_exact(spec, tmp_path):
    """QLSTM, QGRU, QRNN unrolled over time, with their states as graph inputs
    and outputs (int16 cell state through the integer-form Q/DQ of int16)."""
    m = model(spec)
    onnx.save(m, tmp_path / "rnn.onnx")
    np.savez(tmp_path / "calib.npz", **samples(m, 6))
    _, written, reference = export(tmp_path / "rnn.onnx", tmp_path / "out", calib=tmp_path / "calib.npz")
    assert_bit_exact(written, reference, split_samples(samples(m, 4, seed=8, scale=2.0)))


def test_keyword_spotter_gru_bit_exact(tmp_path):
    """The QDQ form refuses recurrent layers; the integer form writes them."""
    onnx.save(keyword_spotter("GRU", hidden=8, frames=4, features=3, classes=2), tmp_path / "kws.onnx")
    export(tmp_path / "kws.onnx", tmp_path / "out", synthetic_samples=8)


def test_op_without_integer_form_is_one_cli_error(tmp_path, capsys, monkeypatch):
    monkeypatch.delitem(INTEGER_WRITERS, "QConv")
    code = run_cli(["compile", str(DIGITS / "digits.onnx"), "--target", "onnx", "--onnx-form", "integer",
                    "--calib", str(DIGITS / "calib.npz"), "-o", str(tmp_path / "out")])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("nnc: error:")]
    assert code == 2 and len(lines) == 1
    assert "QConv node 'conv1'" in lines[0] and "--onnx-form qdq" in lines[0]
    assert not (tmp_path / "out").exists()
    with pytest.raises(UnsupportedError, match=r"QConv node 'conv1'.*\(use onnx_form='qdq'\)") as raised:
        nnc.compile(DIGITS / "digits.onnx", target="onnx", onnx_form="integer", calib=DIGITS / "calib.npz",
                    output_dir=tmp_path / "api")
    assert "--" not in str(raised.value)
    with pytest.raises(OptionError, match="^stream is not available for target onnx") as raised:
        nnc.compile(DIGITS / "digits.onnx", target="onnx", stream={"image": (1, 1, 8, 8)}, output_dir=tmp_path / "s")
    assert raised.value.cli.startswith("--stream is not available")


@pytest.mark.parametrize("flags, message", [(["--target", "c", "--onnx-form", "integer"], "applies to --target onnx"),
                                            (["--target", "onnx", "--onnx-form", "int"], "qdq or integer")])
def test_bad_onnx_form_is_one_cli_error(flags, message, tmp_path, capsys):
    code = run_cli(["compile", str(DIGITS / "digits.onnx"), *flags, "-o", str(tmp_path / "out")])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("nnc: error:")]
    assert code == 2 and len(lines) == 1 and message in lines[0]

