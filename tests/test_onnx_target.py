"""Target onnx (issue 14): the compiled model as standard QDQ ONNX. onnxruntime
runs the file within 1 LSB of nnc's integer graph layer by layer and at the
outputs, onnx.checker accepts it with full shape inference, nnc reads it back
into the same integer graph, and an op without a QDQ form is one clean error."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import nnc
from nnc.backends.onnx_qdq.target import OnnxTarget
from nnc.backends.onnx_qdq.writer import WRITERS
from nnc.cli import run_cli
from nnc.errors import VerificationError
from nnc.interpreter import run
from nnc.verification import load_samples, synthetic_samples

from mlperf import MODEL_NAMES, MODELS_DIR, requires_models
from rnn_models import keyword_spotter

DIGITS = Path(__file__).resolve().parents[1] / "examples" / "digits"
DIGITS_SETTINGS = {"int8": {}, "4bit-half-sparse": {"weight_bits": 4, "sparsity": 0.5},
                   "2bit-codebook": {"weight_bits": 2, "codebook": True}}


def export(model, out, **options) -> tuple[nnc.CompileResult, onnx.ModelProto]:
    """Compile `model` for onnx into `out`; the result and the written model,
    which must pass onnx.checker with full shape inference."""
    result = nnc.compile(model, target="onnx", output_dir=out, **options)
    (name,) = [a for a in result.artifacts if a.endswith(".onnx")]
    written = onnx.load(str(out / name))
    onnx.checker.check_model(written, full_check=True)
    assert result.report["onnx"]["max_layer_diff_lsb"] <= 1 and result.report["onnx"]["layers_checked"] > 0
    return result, written


def assert_reads_back(result: nnc.CompileResult, path, samples: list[dict]) -> None:
    """nnc compiles the written file (no compression options: it is compressed
    already) into the same integer graph: each weighted layer's constants and
    the outputs are equal."""
    reference = OnnxTarget().reference_graph(result.graph)
    again = nnc.compile(path, target="ir", quantize=True, verify=False).graph
    assert _layer_constants(again) == _layer_constants(reference)
    for sample in samples:
        for name, value in run(reference, sample).items():
            np.testing.assert_array_equal(run(again, sample)[name], value, err_msg=name)


def _layer_constants(graph: nnc.Graph) -> dict[str, list[bytes]]:
    """Per weighted integer layer: its constant inputs (weights, bias, multipliers, shifts)."""
    return {node.name: [graph.tensor(t).data.tobytes() for t in node.inputs if t and graph.tensor(t).is_constant]
            for node in graph.nodes() if node.op in ("QConv", "QGemm", "QMatMul")}


def initializers(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


def layer_weights(model: onnx.ModelProto, op: str) -> list[tuple[onnx.NodeProto, onnx.NodeProto, onnx.NodeProto]]:
    """(layer, weight DequantizeLinear, bias DequantizeLinear) of each `op` node."""
    producer = {out: node for node in model.graph.node for out in node.output}
    return [(n, producer[n.input[1]], producer[n.input[2]]) for n in model.graph.node if n.op_type == op]


# -- MLPerf Tiny ----------------------------------------------------------------------
@requires_models
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_mlperf_model_runs_in_onnxruntime_and_reads_back(name, tmp_path):
    """On the model's sample: onnxruntime within 1 LSB of nnc's integer graph, or
    for a QDQ model no further than nnc's integer graph of the original is from
    onnxruntime on the original (ResNet-8's sample: 2 LSB, a one-step rounding
    difference grown through the residual blocks and the Softmax); onnxruntime
    computes a QDQ model's export exactly as the original."""
    sample = MODELS_DIR / f"{name}.io.npz"
    result, _ = export(MODELS_DIR / f"{name}.onnx", tmp_path / "out", inputs=sample)
    verification = result.report["verification"]
    reference = OnnxTarget().reference_graph(result.graph)
    (ours,) = run(reference, load_samples(sample, reference)[0]).values()
    gap = np.abs(ours.astype(np.int32) - np.load(sample)["output_ort_noopt"].astype(np.int32)).max() \
        if "qdq" in name else 0
    assert verification["vs_reference"]["max_abs_diff_lsb"] <= max(1, gap)
    if "qdq" in name:
        assert verification["vs_float"]["max_abs_diff"] == 0.0  # the float truth is onnxruntime on the original
    assert result.report["layers"] and all(row["op"] for row in result.report["layers"])
    samples = load_samples(sample, reference) + synthetic_samples(reference, 2)
    assert_reads_back(result, tmp_path / "out" / f"{name}.onnx", samples)


# -- examples/digits ------------------------------------------------------------------
@pytest.mark.parametrize("setting", DIGITS_SETTINGS)
def test_digits_within_one_lsb_and_reads_back(setting, tmp_path):
    calib = DIGITS / "calib.npz"
    options = DIGITS_SETTINGS[setting]
    result, _ = export(DIGITS / "digits.onnx", tmp_path / "out", calib=calib, **options)
    assert result.report["verification"]["vs_reference"]["max_abs_diff_lsb"] <= 1
    samples = load_samples(calib, result.graph)
    assert_reads_back(result, tmp_path / "out" / "digits.onnx", samples[:16])
    as_for_c = nnc.compile(DIGITS / "digits.onnx", target="ir", quantize=True, calib=calib, verify=False,
                           **options).graph  # the integer graph c and az-sim compile (with the layout pass)
    reference = OnnxTarget().reference_graph(result.graph)
    for sample in samples[:16]:
        np.testing.assert_array_equal(run(as_for_c, sample)["logits"], run(reference, sample)["logits"])


def test_digits_weights_are_integer_grids_behind_dequantize(tmp_path):
    """Conv weights int8 per output channel (axis 0) on the 4-bit grid with the
    pruned zeros stored (conv1, fan-in 9, is kept dense), biases int32 at scale
    s_x·s_w; the 2-bit codebook keeps at most 4 values per channel."""
    calib = DIGITS / "calib.npz"
    result, sparse = export(DIGITS / "digits.onnx", tmp_path / "sparse", calib=calib, weight_bits=4, sparsity=0.5)
    values = initializers(sparse)
    producer = {out: node for node in sparse.graph.node for out in node.output}
    sparsity = {row["name"]: row["sparsity"] for row in result.report["layers"]}
    for conv, weight_dq, bias_dq in layer_weights(sparse, "Conv"):
        weights, bias = values[weight_dq.input[0]], values[bias_dq.input[0]]
        assert weights.dtype == np.int8 and bias.dtype == np.int32
        assert helper.get_attribute_value(weight_dq.attribute[0]) == 0  # axis
        assert np.abs(weights).max() <= 7 and np.mean(weights == 0) == sparsity[conv.name]
        assert conv.name == "conv1" or sparsity[conv.name] >= 0.5
        x_scale = values[producer[conv.input[0]].input[1]]
        np.testing.assert_allclose(values[bias_dq.input[1]], x_scale * values[weight_dq.input[1]], rtol=1e-6)
    _, codebook = export(DIGITS / "digits.onnx", tmp_path / "codebook", calib=calib, weight_bits=2, codebook=True)
    values = initializers(codebook)
    for _, weight_dq, _ in layer_weights(codebook, "Conv"):
        weights = values[weight_dq.input[0]]
        assert max(len(np.unique(channel)) for channel in weights) <= 4


# -- op coverage ----------------------------------------------------------------------
def _model(nodes, inits, shape_in, shape_out, opset):
    graph = helper.make_graph(nodes, "ops", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape_in)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape_out)],
                              [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)


def _data_movement():
    """Slice walking backwards, Pad with a fill, Resize by scales (1.5: 9 -> 13)
    and by sizes, Expand, Tile, Split, Concat, Transpose, ReduceSum, Softmax on axis 1."""
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Slice", ["c", "s0", "s1", "s2", "s3"], ["s"]),
             helper.make_node("Pad", ["s", "pads", "fill"], ["p"]),
             helper.make_node("Resize", ["p", "", "scales"], ["r"], mode="linear"),
             helper.make_node("Split", ["r", "halves"], ["h0", "h1"], axis=1),
             helper.make_node("Concat", ["h1", "h0"], ["cat"], axis=1),
             helper.make_node("Transpose", ["cat"], ["t"], perm=[0, 1, 3, 2]),
             helper.make_node("ReduceSum", ["t", "axis3"], ["sum"], keepdims=1),
             helper.make_node("Tile", ["sum", "reps"], ["tiled"]),
             helper.make_node("Resize", ["tiled", "", "", "sizes"], ["up"], mode="nearest"),
             helper.make_node("Expand", ["up", "big"], ["e"]),
             helper.make_node("Softmax", ["e"], ["y"], axis=1)]
    inits = {"w": rng.normal(0, 0.3, (4, 3, 3, 3)).astype(np.float32), "b": np.zeros(4, np.float32),
             "s0": np.array([-1], np.int64), "s1": np.array([-100], np.int64), "s2": np.array([3], np.int64),
             "s3": np.array([-1], np.int64), "pads": np.array([0, 0, 1, 1, 0, 0, 1, 2], np.int64),
             "fill": np.array(0.5, np.float32), "scales": np.array([1, 1, 1.5, 1.5], np.float32),
             "halves": np.array([2, 2], np.int64), "axis3": np.array([3], np.int64),
             "reps": np.array([1, 1, 1, 2], np.int64), "sizes": np.array([1, 4, 13, 4], np.int64),
             "big": np.array([2, 4, 13, 4], np.int64)}
    return _model(nodes, inits, [1, 3, 6, 6], [2, 4, 13, 4], 13)


def _attention():
    """An embedding (Gather on int64 tokens), LayerNormalization, a batched MatMul
    of two activations, Softmax, LeakyRelu, HardSigmoid, ReduceMean."""
    rng = np.random.default_rng(1)
    nodes = [helper.make_node("Gather", ["table", "tokens"], ["e"]),
             helper.make_node("LayerNormalization", ["e", "gamma", "beta"], ["n"], axis=-1),
             helper.make_node("Transpose", ["n"], ["nt"], perm=[0, 2, 1]),
             helper.make_node("MatMul", ["n", "nt"], ["scores"]),
             helper.make_node("Softmax", ["scores"], ["a"], axis=-1),
             helper.make_node("MatMul", ["a", "n"], ["mixed"]),
             helper.make_node("LeakyRelu", ["mixed"], ["l"], alpha=0.1),
             helper.make_node("HardSigmoid", ["l"], ["hs"]),
             helper.make_node("ReduceMean", ["hs"], ["y"], axes=[2], keepdims=0)]
    inits = {"table": rng.normal(0, 1, (10, 8)).astype(np.float32),
             "gamma": rng.uniform(0.5, 1.5, 8).astype(np.float32), "beta": rng.normal(0, 0.1, 8).astype(np.float32)}
    graph = helper.make_graph(nodes, "ops", [helper.make_tensor_value_info("tokens", TensorProto.INT64, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
                              [numpy_helper.from_array(v, k) for k, v in inits.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def _gelus():
    """Both GELUs, written as the opset-17 float chains nnc fuses back."""
    nodes = [helper.make_node("Gelu", ["x"], ["g"]), helper.make_node("Gelu", ["g"], ["y"], approximate="tanh")]
    return _model(nodes, {}, [1, 16], [1, 16], 20)


@pytest.mark.parametrize("build", [_data_movement, _attention, _gelus], ids=lambda b: b.__name__.strip("_"))
def test_ops_export_within_one_lsb_per_layer_and_read_back(build, tmp_path):
    onnx.save(build(), tmp_path / "ops.onnx")
    result, _ = export(tmp_path / "ops.onnx", tmp_path / "out")  # each layer within 1 LSB (the outputs: reported)
    assert_reads_back(result, tmp_path / "out" / "ops.onnx", synthetic_samples(result.graph, 4, seed=2))


def test_float_export_with_no_quantize(tmp_path):
    """--no-quantize writes the float model; onnxruntime runs it as nnc's float reference does."""
    result = nnc.compile(DIGITS / "digits.onnx", target="onnx", output_dir=tmp_path / "out", quantize=False,
                         calib=DIGITS / "calib.npz")
    written = onnx.load(str(tmp_path / "out" / "digits.onnx"))
    onnx.checker.check_model(written, full_check=True)
    assert not {"QuantizeLinear", "DequantizeLinear"} & {n.op_type for n in written.graph.node}
    assert result.report["verification"]["vs_reference"]["max_abs_diff"] < 1e-4
    assert math.isclose(result.report["verification"]["vs_float"]["cosine"], 1.0, abs_tol=1e-9)


def test_a_wrong_layer_fails_verification(tmp_path, monkeypatch):
    """A writer that drops Conv's bias makes that layer differ from nnc's integer
    op: the compile fails and names it. (Dropping the fused Relu would not: the
    QuantizeLinear after it, zero point -128, clamps at 0 alike.)"""
    write_conv = WRITERS["Conv"]

    def conv_without_bias(out, node):
        write_conv(out, dataclasses.replace(node, inputs=node.inputs[:2]))

    monkeypatch.setitem(WRITERS, "Conv", conv_without_bias)
    with pytest.raises(VerificationError, match=r"onnxruntime's QConv layer producing '.*' differs .* LSB"):
        nnc.compile(DIGITS / "digits.onnx", target="onnx", output_dir=tmp_path / "out", calib=DIGITS / "calib.npz")
    assert not (tmp_path / "out").exists()


# -- refusals -------------------------------------------------------------------------
def test_recurrent_op_is_one_cli_error(tmp_path, capsys):
    onnx.save(keyword_spotter("GRU", hidden=8, frames=4, features=3, classes=2), tmp_path / "kws.onnx")
    code = run_cli(["compile", str(tmp_path / "kws.onnx"), "--target", "onnx", "-o", str(tmp_path / "out")])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("nnc: error:")]
    assert code == 2 and len(lines) == 1
    assert "GRU node" in lines[0] and "no QDQ ONNX form" in lines[0]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("form", ["qdq", "integer"])
def test_a_constant_graph_output_is_written(form, tmp_path):
    """A graph output that is a constant stays an initializer the file returns."""
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"]), helper.make_node("Identity", ["c"], ["z"])], "constant_output",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4]),
         helper.make_tensor_value_info("z", TensorProto.FLOAT, [2])],
        [numpy_helper.from_array(np.array([1.5, -2.0], np.float32), "c")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "m.onnx")
    result = nnc.compile(tmp_path / "m.onnx", target="onnx", output_dir=tmp_path / "out", onnx_form=form)
    written = onnx.load(str(tmp_path / "out" / "m.onnx"))
    onnx.checker.check_model(written, full_check=True)
    assert result.report["verification"]["vs_reference"]["bit_exact"]
