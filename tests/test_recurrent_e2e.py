"""Keyword spotters with a recurrent layer (49 MFCC frames of 10 features, 12
classes) and CTC recognizers ending in LogSoftmax, compiled for ir, c and
az-sim: bit-exact targets and int8 vs float cosine >= 0.99 (tests/e2e.py).
GRU and RNN models are built with onnx.helper; a two-layer LSTM (20 frames,
hidden 16) is exported by both PyTorch exporters (skipped without torch).
Streaming compiles (--stream) run the keyword spotters 7 frames at a time,
bit-exact with the whole sequence."""

from __future__ import annotations

import re

import numpy as np
import onnx
import pytest
from e2e import compile_everywhere
from rnn_models import ctc_recognizer, keyword_spotter, predictor, samples, token_samples

import nnc


@pytest.mark.parametrize("op", ["GRU", "RNN"])
def test_keyword_spotter(op, tmp_path):
    m = keyword_spotter(op)
    reports = compile_everywhere(m, tmp_path, samples(m))
    (layer,) = [row for row in reports["c"]["layers"] if row["op"] == "Q" + op]
    assert layer["macs"] == 49 * {"GRU": 3, "RNN": 1}[op] * 32 * (10 + 32)


@pytest.mark.parametrize("op", ["LSTM", "GRU"])
def test_ctc_recognizer_ends_in_an_integer_log_softmax(op, tmp_path):
    """A CTC head's LogSoftmax compiles to QLogSoftmax on every target, and its
    greedy decoding (argmax per frame) agrees with the float model's."""
    m = ctc_recognizer(op)
    calib = samples(m)
    reports = compile_everywhere(m, tmp_path, calib)
    assert [row["op"] for row in reports["c"]["layers"]][-1] == "QLogSoftmax"
    assert reports["az-sim"]["verification"]["vs_float"]["top1_agreement"] >= 0.9


@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
def test_torch_two_layer_lstm(dynamo, tmp_path):
    torch = pytest.importorskip("torch")

    class Spotter(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = torch.nn.LSTM(10, 16, num_layers=2, batch_first=True)
            self.head = torch.nn.Linear(16, 12)

        def forward(self, x):
            y, _ = self.rnn(x)
            return self.head(y[:, -1])

    torch.manual_seed(0)
    path = tmp_path / "kws.onnx"
    torch.onnx.export(Spotter().eval(), (torch.randn(1, 20, 10),), str(path), input_names=["mfcc"],
                      dynamo=dynamo, opset_version=18 if dynamo else 17)
    rng = np.random.default_rng(0)
    reports = compile_everywhere(path, tmp_path, {"mfcc": rng.standard_normal((4, 1, 20, 10)).astype(np.float32)})
    assert [row["op"] for row in reports["az-sim"]["layers"]].count("QLSTM") == 2


@pytest.mark.parametrize("op,target", [("LSTM", "c"), ("GRU", "az-sim")])
def test_streaming_frame_by_frame_equals_whole_sequence(op, target, tmp_path):
    """--stream: the states cross the graph boundary exactly (h at Y's parameters,
    the LSTM cell as int16 at 2^-F), so 7-frame chunks equal the whole run bit
    for bit, and the target equals the reference on every chunk."""
    m = keyword_spotter(op)
    path, calib = tmp_path / "kws.onnx", tmp_path / "calib.npz"
    onnx.save(m, path)
    np.savez(calib, **samples(m, 4))
    result = nnc.compile(path, target=target, output_dir=tmp_path / "out", calib=calib, stream={"mfcc": (1, 7, 10)})
    verification = result.report["verification"]
    assert verification["chunks"] == 4 * 7
    assert verification["vs_whole_sequence"]["bit_exact"] and verification["vs_reference"]["bit_exact"]
    assert verification["vs_float"]["cosine"] >= 0.99


@pytest.mark.parametrize("target", ["c", "az-sim"])
def test_streaming_a_model_that_takes_its_states_starts_from_the_given_states(target, tmp_path):
    """A model whose LSTM already reads h0 and c0 from inputs streams from the
    sample's own initial states; the chunks started from zero states and the
    compile failed, naming 'h0.quantize' as a layer that reads frames outside
    the chunk (third sweep)."""
    from rnn_models import Spec, model

    m = model(Spec("LSTM", steps=6, batch=1, inputs=3, hidden=4, layout=1, states="input",
                   outputs=("Y", "Y_h", "Y_c")))
    onnx.save(m, tmp_path / "lstm.onnx")
    np.savez(tmp_path / "calib.npz", **samples(m, 4))
    result = nnc.compile(tmp_path / "lstm.onnx", target, tmp_path / "out", calib=tmp_path / "calib.npz",
                         stream={"X": (1, 2, 3)})
    verification = result.report["verification"]
    assert verification["vs_whole_sequence"]["bit_exact"] and verification["chunks"] == 4 * 3


def test_compression_names_the_recurrent_layers_it_leaves_out(tmp_path):
    m = keyword_spotter("GRU", hidden=8, frames=4, features=3, classes=4)
    onnx.save(m, tmp_path / "kws.onnx")
    result = nnc.compile(tmp_path / "kws.onnx", "az-sim", calib=samples(m), weight_bits=4, sparsity=0.5,
                         method="magnitude", verify=False)
    left_out = [w for w in result.report["warnings"] if "recurrent layer(s)" in w]
    assert len(left_out) == 2 and any("dense" in w for w in left_out) and any("int8" in w for w in left_out)
    plain = nnc.compile(tmp_path / "kws.onnx", "az-sim", calib=samples(m), verify=False)
    assert not any("recurrent layer(s)" in w for w in plain.report["warnings"])


@pytest.mark.parametrize("options,says", [
    ({"weight_bits": 4}, "pass 'quantize' (4-bit weights) changes no layer"),
    ({"weight_bits": 3, "codebook": True}, "pass 'quantize' (8-entry codebooks) changes no layer"),
    ({"sparsity": 0.5}, "pass 'prune' (sparsity 0.5) changes no layer"),
    ({"ratio": 6}, "ratio 6 (--ratio): no budget applied"),
    ({"flash_budget": 200}, "flash_budget 200 (--flash-budget): no budget applied"),
])
def test_compression_of_a_model_without_weighted_layers_says_it_changes_nothing(options, says, tmp_path):
    """An embedding and an LSTM, no Conv/Gemm/MatMul: every compression option
    was a silent no-op (the recurrent warning needed a weighted layer)."""
    m = predictor()
    onnx.save(m, tmp_path / "predictor.onnx")
    result = nnc.compile(tmp_path / "predictor.onnx", "az-sim", calib=token_samples(m), verify=False, **options)
    (warning,) = [w for w in result.report["warnings"] if "Conv, Gemm and MatMul" in w]
    assert warning.startswith(says) and "the model has none" in warning
    assert "1 recurrent layer(s) ('rnn')" in warning and "1 embedding table(s) ('embed')" in warning
    assert result.report["budget"] is None


def test_channel_pruning_of_an_embedding_and_lstm_names_only_the_table(tmp_path):
    """prune-channels takes hidden units from recurrent layers: only the
    embedding table is left out (the predictor's LSTM output is its graph
    output, so it keeps its units, and says why)."""
    m = predictor()
    onnx.save(m, tmp_path / "predictor.onnx")
    result = nnc.compile(tmp_path / "predictor.onnx", "az-sim", calib=token_samples(m), verify=False,
                         prune_channels=0.5)
    (left_out,) = [w for w in result.report["warnings"] if "MatMul and recurrent layers only" in w]
    assert left_out.startswith("pass 'prune-channels' (ratio 0.5): 1 embedding table(s) ('embed') stay whole")
    assert "recurrent layer(s)" not in left_out
    (kept,) = [w for w in result.report["warnings"] if "removes no channel" in w]
    assert "'rnn' (" in kept


def test_int8_compile_of_a_model_without_weighted_layers_warns_of_nothing(tmp_path):
    m = predictor()
    onnx.save(m, tmp_path / "predictor.onnx")
    result = nnc.compile(tmp_path / "predictor.onnx", "az-sim", calib=token_samples(m), verify=False)
    assert not any("Conv, Gemm and MatMul" in w for w in result.report["warnings"])


def test_a_mean_over_time_is_refused_as_not_streamable(tmp_path):
    from onnx import TensorProto, helper

    from rnn_models import Spec, model

    spec = Spec("GRU", steps=6, batch=1, inputs=3, hidden=4, outputs=("Y",))
    m = model(spec)
    m.graph.initializer.append(onnx.numpy_helper.from_array(np.array([0], np.int64), "time"))
    m.graph.node.append(helper.make_node("ReduceMean", ["Y", "time"], ["mean"], keepdims=0))
    m.graph.output[0].CopyFrom(helper.make_tensor_value_info("mean", TensorProto.FLOAT, [1, 1, 4]))
    onnx.save(m, tmp_path / "mean.onnx")
    with pytest.raises(nnc.VerificationError, match="not streamable as it stands: .* LSB .*; layer 'ReduceMean_1' "
                                                   r"\(QReduce\) is the first whose output differs"):
        nnc.compile(tmp_path / "mean.onnx", "ir", quantize=True, calib=samples(m, 4), stream={"X": (2, 1, 3)})


def test_a_shape_fixed_to_the_whole_sequence_is_one_line_naming_the_chunk(tmp_path, capsys):
    """A Reshape to the sequence's length (as an exported attention has) cannot
    take a chunk: the error says so and names --stream (it was the shape
    inference's 'Incompatible dimensions' alone), and nothing is written."""
    from onnx import TensorProto, helper

    nodes = [helper.make_node("Reshape", ["x", "shape"], ["r"]), helper.make_node("Relu", ["r"], ["y"])]
    graph = helper.make_graph(nodes, "fixed", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 4, 4])],
                              [onnx.numpy_helper.from_array(np.array([1, 2, 4, 4], np.int64), "shape")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8),
              tmp_path / "fixed.onnx")
    from nnc.cli import run_cli

    code = run_cli(["compile", str(tmp_path / "fixed.onnx"), "--target", "c", "--stream", "x=1,2,4",
                    "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert err.startswith("nnc: error: the model does not run on a chunk (--stream x=1,2,4): ") and \
        "cannot run chunk by chunk" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("target", ["ir", "c"])
def test_a_conv_over_time_before_the_recurrence_is_named_as_not_streamable(target, tmp_path):
    """A Conv1d over time mixes frames that a one-frame chunk does not see: the
    error names that layer and gives the difference in output LSB (it gave the
    real-valued difference labelled LSB, and blamed the outputs)."""
    torch = pytest.importorskip("torch")

    class Spotter(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv1d(10, 16, 3, padding=1)
            self.gru = torch.nn.GRU(16, 16, batch_first=True)
            self.fc = torch.nn.Linear(16, 12)

        def forward(self, x):
            y, _ = self.gru(torch.relu(self.conv(x.transpose(1, 2))).transpose(1, 2))
            return self.fc(y[:, -1])

    torch.manual_seed(0)
    path = tmp_path / "conv_gru.onnx"
    torch.onnx.export(Spotter().eval(), (torch.randn(1, 20, 10),), str(path), input_names=["x"], dynamo=False,
                      opset_version=17)
    calib = {"x": np.random.default_rng(0).standard_normal((8, 1, 20, 10)).astype(np.float32)}
    with pytest.raises(nnc.VerificationError) as caught:
        nnc.compile(path, target, calib=calib, quantize=True, stream={"x": (1, 1, 10)})
    message = str(caught.value)
    lsb = re.search(r"whole sequence by up to (\d+) LSB \(they must be bit-exact\); ", message)
    assert lsb and int(lsb.group(1)) > 1, message
    assert message.endswith("layer '/conv/Conv' (QConv) is the first whose output differs: over a chunk it reads "
                            "frames outside the chunk (a convolution, pooling or mean over time mixes frames), and "
                            "only recurrent layers carry the frames before a chunk in their states")


def test_streaming_reports_differences_in_lsb_and_in_real_values(tmp_path):
    m = keyword_spotter("GRU")
    onnx.save(m, tmp_path / "kws.onnx")
    result = nnc.compile(tmp_path / "kws.onnx", "az-sim", calib=samples(m, 4), stream={"mfcc": (1, 7, 10)})
    verification = result.report["verification"]
    for entry in ("vs_whole_sequence", "vs_reference"):
        assert verification[entry]["max_abs_diff_lsb"] == 0 and verification[entry]["max_abs_diff"] == 0.0


def _qdq_island(quantized: str) -> onnx.ModelProto:
    """A QDQ model around a float LSTM (hidden 8, 6 frames): X through a Q/DQ
    pair, the `quantized` output (Y or Y_h) through one at 1/128, a Gemm head;
    no cell range is given."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    hidden, features = 8, 10
    values = {"W": rng.standard_normal((1, 4 * hidden, features)) * 0.3,
              "R": rng.standard_normal((1, 4 * hidden, hidden)) * 0.3, "B": rng.standard_normal((1, 8 * hidden)) * 0.1,
              "xs": np.array(0.03), "hs": np.array(1 / 128), "zero": np.array(0, np.int8),
              "flat": np.array([1, -1], np.int64), "gw": rng.standard_normal((hidden * (6 if quantized == "Y" else 1), 4)),
              "gb": np.zeros(4)}
    inits = [numpy_helper.from_array(v if v.dtype.kind in "iu" else v.astype(np.float32), k) for k, v in values.items()]
    outputs = ["h", ""] if quantized == "Y" else ["", "h"]
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "zero"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "xs", "zero"], ["xd"]),
             helper.make_node("Transpose", ["xd"], ["xt"], perm=[1, 0, 2]),
             helper.make_node("LSTM", ["xt", "W", "R", "B"], outputs, hidden_size=hidden, name="lstm"),
             helper.make_node("QuantizeLinear", ["h", "hs", "zero"], ["hq"]),
             helper.make_node("DequantizeLinear", ["hq", "hs", "zero"], ["hd"]),
             helper.make_node("Reshape", ["hd", "flat"], ["hf"]), helper.make_node("Gemm", ["hf", "gw", "gb"], ["y"])]
    graph = helper.make_graph(nodes, "qdq_lstm", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 6, 10])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


@pytest.mark.parametrize("quantized", ["Y", "Y_h"])
def test_a_qdq_model_gives_the_lstm_its_output_parameters(quantized, tmp_path):
    """A QDQ model's float LSTM keeps the parameters its QuantizeLinear gives
    (whichever of Y and Y_h the model reads; the other takes them) and its
    cell range is calibrated: c and az-sim bit-exact, close to onnxruntime."""
    compile_everywhere(_qdq_island(quantized), tmp_path, samples(_qdq_island(quantized), 16))
    graph = nnc.compile(tmp_path / "model.onnx", "c", calib=tmp_path / "samples.npz", verify=False).graph
    (lstm,) = [n for n in graph.nodes() if n.op == "QLSTM"]
    assert graph.tensor(lstm.outputs[0]).quant.scale[0] == 1 / 128


@pytest.mark.parametrize("value, outcome", [("0.0001220703125", "given"), ("0.3", "refused"), ("nan", "refused"),
                                            ("2.0", "refused"), (None, "calibrated")])
def test_a_cell_scale_in_the_model_metadata_is_taken(value, outcome, tmp_path):
    """nnc.train writes an LSTM's trained cell scale 2^-F into the ONNX
    metadata (nnc.cell_scale.<node>): the front end declares the cell with it,
    refuses one line for a value that is no such scale, and ignores a key
    naming no LSTM."""
    from nnc.errors import ModelError

    m = keyword_spotter("LSTM", hidden=8, frames=6)
    m.metadata_props.add(key="nnc.cell_scale.elsewhere", value="0.5")
    if value is not None:
        m.metadata_props.add(key="nnc.cell_scale.rnn", value=value)
    onnx.save(m, tmp_path / "kws.onnx")
    if outcome == "refused":
        with pytest.raises(ModelError, match="metadata nnc.cell_scale.rnn: .* is not a cell scale"):
            nnc.load(tmp_path / "kws.onnx")
        return
    lstm = next(n for n in nnc.load(tmp_path / "kws.onnx").nodes() if n.op == "LSTM")
    assert (len(lstm.outputs) == 4) == (outcome == "given")
    if outcome == "given":
        graph = nnc.load(tmp_path / "kws.onnx")
        cells = next(n for n in graph.nodes() if n.op == "LSTM").outputs[3]
        assert graph.tensor(cells).quant.scale == (2.0 ** -13,)
