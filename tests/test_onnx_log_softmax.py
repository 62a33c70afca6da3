"""LogSoftmax in `--target onnx` (docs/onnx-export.md, docs/numerics.md §6a).
The QDQ form writes DequantizeLinear → LogSoftmax → QuantizeLinear, which
onnxruntime runs within 1 LSB of nnc's QLogSoftmax and nnc reads back into the
same integer graph; the integer form writes §6a in int64 ONNX ops, bit for bit
nnc's reference (up to 2^16 classes and S near 2^47); a float graph gets the
float LogSoftmax."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

import nnc
from nnc import dtypes
from nnc.backends.onnx_qdq.integer_writer import to_integer_onnx
from nnc.backends.onnx_qdq.target import OnnxTarget, _session
from nnc.interpreter import run
from nnc.ir import Graph, Tensor
from nnc.numerics import quantize_multiplier
from nnc.ops.qsoftmax import QLogSoftmaxAttrs, log_table
from nnc.quantizer.rules import exp_table
from nnc.verification import synthetic_samples

import test_onnx_integer_form as integer_form
from elementwise_graphs import _node
from rnn_models import ctc_recognizer, samples, split_samples
from test_onnx_target import _model, assert_every_tensor_typed, assert_reads_back, export

TOP = (1 << 31) - 1
TOP_MULTIPLIER = (1 << 27) - 1  # QLogSoftmax's multiplier has 27 bits


def _qdq_log_softmax(dtype, shape, axis: int, sx: float, zx: int, sy: float, zy: int) -> onnx.ModelProto:
    """x (8-bit) → DequantizeLinear → LogSoftmax(axis) → QuantizeLinear → y."""
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    nodes = [helper.make_node("DequantizeLinear", ["x", "sx", "zx"], ["r"]),
             helper.make_node("LogSoftmax", ["r"], ["l"], axis=axis),
             helper.make_node("QuantizeLinear", ["l", "sy", "zy"], ["y"])]
    inits = [numpy_helper.from_array(np.array(v, t), k)
             for k, v, t in (("sx", sx, np.float32), ("zx", zx, dtype), ("sy", sy, np.float32), ("zy", zy, dtype))]
    graph = helper.make_graph(nodes, "log_softmax", [helper.make_tensor_value_info("x", elem, shape)],
                              [helper.make_tensor_value_info("y", elem, shape)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def _inputs(dtype, shape, axis: int, seed: int) -> np.ndarray:
    """Random 8-bit values; every other slice along `axis` spread over ±3 only
    (probabilities near uniform, log probabilities near −ln n)."""
    info = np.iinfo(dtype)
    rng = np.random.default_rng(seed)
    x = rng.integers(info.min, info.max + 1, shape)
    narrow = np.moveaxis(x, axis, -1)
    narrow[..., ::2, :] = rng.integers(-3, 4, narrow[..., ::2, :].shape) + (info.min + info.max) // 2
    return x.astype(dtype)


# (dtype, shape, axis, s_x, z_x, s_y, z_y): a CTC head's scales; near-equal inputs
# (s_x = 2^-14) into the finest output scale a calibration gives 5 classes (ln 5 / 255);
# two classes into output steps of 2^-10 and 2^-12 (finer than §6a's first Q16 form
# held to 1 LSB); s_x = 8 (SX = 2^27) over 300 classes; a Conv1d head over axis 1
# (the Transposes of §13).
QDQ_CASES = [(np.int8, [16, 29], -1, 0.1, 3, 0.1, 127),
             (np.uint8, [16, 5], -1, 2.0 ** -14, 130, 0.00637, 255),
             (np.int8, [64, 2], -1, 0.01, 0, 2.0 ** -10, 127),
             (np.int8, [64, 2], -1, 0.05, 0, 2.0 ** -12, 127),
             (np.int8, [8, 300], -1, 8.0, 0, 1.0, 127),
             (np.uint8, [2, 29, 20], 1, 0.05, 128, 0.05, 255),
             (np.int8, [6, 2, 9], 0, 0.3, -5, 0.04, 120)]


@pytest.mark.parametrize("case", QDQ_CASES, ids=lambda c: f"{np.dtype(c[0]).name}-{'x'.join(map(str, c[1]))}-"
                                                          f"axis{c[2]}-sx{c[3]:g}")
def test_qdq_log_softmax_within_one_lsb_reads_back_and_integer_form_bit_exact(case, tmp_path):
    """The QDQ file holds DequantizeLinear → LogSoftmax → QuantizeLinear; on
    every sample onnxruntime is within 1 LSB of nnc's reference (the compile's
    per-layer check, and here at the output on 64 inputs), nnc reads it back
    into the same integer graph, and the integer form is bit-exact (also with
    onnxruntime's optimizations on)."""
    dtype, shape, axis, *scales = case
    onnx.save(_qdq_log_softmax(dtype, shape, axis, *scales), tmp_path / "m.onnx")
    x = _inputs(dtype, shape, axis, 0)
    np.savez(tmp_path / "x.npz", x=x)
    result, written = export(tmp_path / "m.onnx", tmp_path / "out", inputs=tmp_path / "x.npz")
    assert [n.op_type for n in written.graph.node] == ["DequantizeLinear", "LogSoftmax", "QuantizeLinear"]
    reference = OnnxTarget().reference_graph(result.graph)
    assert "QLogSoftmax" in {n.op for n in reference.nodes()}
    batch = [{"x": _inputs(dtype, shape, axis, seed)} for seed in range(1, 65)]
    session = _session(str(tmp_path / "out" / "m.onnx"))
    for sample in batch:
        ours = run(reference, sample)["y"].astype(np.int32)
        assert np.abs(session.run(None, sample)[0].astype(np.int32) - ours).max() <= 1
    assert len(np.unique(run(reference, batch[0])["y"])) > 2  # not saturated
    assert_reads_back(result, tmp_path / "out" / "m.onnx", [{"x": x}, *batch[:4]])
    _, integer, again = integer_form.export(tmp_path / "m.onnx", tmp_path / "int", inputs=tmp_path / "x.npz")
    integer_form.assert_bit_exact(integer, again, batch, optimized=True)


def _conv_head() -> onnx.ModelProto:
    """A float Conv1d (16 → 29 channels) → LogSoftmax over the channels (axis 1)."""
    rng = np.random.default_rng(7)
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1]),
             helper.make_node("LogSoftmax", ["c"], ["y"], axis=1)]
    inits = {"w": rng.normal(0, 0.3, (29, 16, 3)).astype(np.float32), "b": rng.normal(0, 0.5, 29).astype(np.float32)}
    return _model(nodes, inits, [1, 16, 20], [1, 29, 20], 17)


def test_float_model_log_softmax_exports_both_forms_and_reads_back(tmp_path):
    """Calibrated on synthetic samples: the QDQ form within 1 LSB per layer and
    read back bit-exactly, the integer form bit-exact."""
    onnx.save(_conv_head(), tmp_path / "m.onnx")
    result, written = export(tmp_path / "m.onnx", tmp_path / "out", synthetic_samples=8)
    assert "LogSoftmax" in {n.op_type for n in written.graph.node}
    checks = synthetic_samples(result.graph, 4, seed=2)
    assert_reads_back(result, tmp_path / "out" / "m.onnx", checks)
    _, integer, reference = integer_form.export(tmp_path / "m.onnx", tmp_path / "int", synthetic_samples=8)
    integer_form.assert_bit_exact(integer, reference, synthetic_samples(reference, 4, seed=3))


def test_float_log_softmax_is_written_as_itself(tmp_path):
    """--no-quantize: the float LogSoftmax, as nnc's float reference computes it,
    and read back as one."""
    onnx.save(_conv_head(), tmp_path / "m.onnx")
    result = nnc.compile(tmp_path / "m.onnx", target="onnx", output_dir=tmp_path / "out", quantize=False)
    written = onnx.load(str(tmp_path / "out" / "m.onnx"))
    onnx.checker.check_model(written, full_check=True)
    assert [n.op_type for n in written.graph.node] == ["Conv", "LogSoftmax"]
    assert result.report["verification"]["vs_reference"]["max_abs_diff"] < 1e-5
    again = nnc.compile(tmp_path / "out" / "m.onnx", target="onnx", output_dir=tmp_path / "again", quantize=False)
    assert [(n.op, n.attrs.axis) for n in again.graph.nodes() if n.op == "LogSoftmax"] == [("LogSoftmax", 1)]


def test_ctc_recognizer_integer_form_bit_exact(tmp_path):
    """LSTM → Gemm → LogSoftmax (a CTC head; the QDQ form refuses the LSTM)."""
    m = ctc_recognizer()
    onnx.save(m, tmp_path / "ctc.onnx")
    np.savez(tmp_path / "calib.npz", **samples(m, 6))
    _, written, reference = integer_form.export(tmp_path / "ctc.onnx", tmp_path / "out", calib=tmp_path / "calib.npz")
    assert "QLogSoftmax" in {n.op for n in reference.nodes()}
    integer_form.assert_bit_exact(written, reference, split_samples(samples(m, 4, seed=8, scale=2.0)))


def _attrs(sx_int: int, sy: float | None, zy: int, dtype: str = "i8", m: int = 0, n: int = 0) -> QLogSoftmaxAttrs:
    """SX, and (m, n) of 1 / (s_y · 2^24) (given ones when sy is None)."""
    if sy is not None:
        m, n = quantize_multiplier(1.0 / (sy * (1 << 24)), 27)
    lo, hi = (-128, 127) if dtype == "i8" else (0, 255)
    return QLogSoftmaxAttrs(sx_int, zy, m, n, lo, hi, dtype)


def _corner_graph(dtype: str, shape: tuple[int, ...]) -> tuple[Graph, list[str]]:
    """x (`dtype`, `shape`) into one QLogSoftmax per corner; the graph and the
    outputs that spread over the output range at every class count (the others
    test the extremes: near one code, or mostly clamped)."""
    graph = Graph("log_softmax")
    graph.add_tensor(Tensor("x", dtype, shape))
    graph.inputs.append("x")
    logs = graph.add_constant("log_table", log_table()).name
    corners = {  # output: (exp table, attrs)
        "tiny_sx": (exp_table(2.0 ** -24), _attrs(1, 0.05, 127)),
        "ctc": (exp_table(0.05), _attrs(round(0.05 * (1 << 24)), 0.1, 127)),
        "widest_sx": (exp_table(8.0), _attrs(1 << 27, 2.0 ** 6, 0)),
        "fine_sy": (exp_table(1.0), _attrs(1 << 24, 2.0 ** -10, 200, "u8")),
        "largest_s": (np.full(256, TOP, np.int32), _attrs(3160000, 0.2, 127)),  # S near 2^47: k up to 46
        "smallest_s": (np.arange(1, 257, dtype=np.int32), _attrs(770000, 0.1, -100)),  # k < 24: N < 0
        "top_multiplier": (exp_table(0.3), _attrs(7, None, 5, "u8", TOP_MULTIPLIER, 62)),
        "shift_one": (exp_table(0.3), _attrs(1 << 23, None, -3, "i8", TOP_MULTIPLIER, 1)),
        "worst_product": (np.full(256, TOP, np.int32), _attrs(1 << 27, None, 127, "i8", TOP_MULTIPLIER, 62)),
    }
    for out, (table, attrs) in corners.items():
        exp = graph.add_constant(f"{out}.exp_table", table).name
        _node(graph, "QLogSoftmax", ["x", exp, logs], attrs, out)
        graph.outputs.append(out)
    return graph, ["ctc", "largest_s", "smallest_s"]


def _corner_rows(dtype: str, shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Random rows, the first four replaced by: constant (S largest), one peak
    at the type's maximum with the rest at its minimum, alternating extremes, a
    ramp over every value."""
    info = np.iinfo(dtypes.to_numpy(dtype))
    rng = np.random.default_rng(seed)
    x = rng.integers(info.min, info.max + 1, shape).reshape(-1, shape[-1])
    x[0], x[1], x[1, 0] = 7, info.min, info.max
    x[2] = np.where(np.arange(shape[-1]) % 2, info.max, info.min)
    x[3] = info.min + np.arange(shape[-1]) % 256
    return x.reshape(shape).astype(info.dtype)


@pytest.mark.parametrize("dtype, shape", [("i8", (2, 3, 37)), ("u8", (5, 300)), ("i8", (4, 1 << 16)),
                                          ("u8", (4, 1 << 16))])
def test_qlogsoftmax_corners_bit_exact(dtype, shape):
    """Hand-built QLogSoftmax nodes: s_x from 2^-24 to 8 (SX 1 .. 2^27), fine
    and coarse output scales, i8 and u8 in and out, exp tables whose S reaches
    near 2^47 (2^16 classes of 2^31 − 1) or stays below 2^24 (N_i negative), the
    largest multiplier at shifts 62 and 1; 2^16 classes."""
    graph, unclamped = _corner_graph(dtype, shape)
    written = to_integer_onnx(graph)
    assert_every_tensor_typed(written)
    x = [{"x": _corner_rows(dtype, shape, seed)} for seed in range(3)]
    for name in unclamped:
        assert len(np.unique(run(graph, x[0])[name])) > 16, name  # the test sees the rounding
    integer_form.assert_bit_exact(written, graph, x, optimized=shape[-1] < 1000)
