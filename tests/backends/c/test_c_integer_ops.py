"""Each integer op through the C target: hand-built graphs, built with gcc and
clang (-std=c99 -Wall -Wextra -Werror -pedantic, ASan/UBSan), bit-exact with the
reference interpreter (docs/numerics.md)."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from c_testing import COMPILERS, GraphBuilder, check_graph, emit, single_op

from nnc.backends.c import build
from nnc.backends.c.lowering import lower
from nnc.backends.c.target import CTarget
from nnc.compile_options import CompileOptions
from nnc.dtypes import integer_range
from nnc.errors import UnsupportedError
from nnc.numerics import quantize_multiplier, quantize_multipliers
from nnc.ops.pool import PoolAttrs, GlobalPoolAttrs
from nnc.ops.elementwise import ClipAttrs
from nnc.ops.qelementwise import QAddAttrs, RequantizeAttrs
from nnc.ops.qlinear import QConvAttrs, QGemmAttrs
from nnc.ops.qpool import QAveragePoolAttrs
from nnc.ops.qsoftmax import EXP_BITS, QLogSoftmaxAttrs, QSoftmaxAttrs, log_softmax_attrs, log_table
from nnc.ops.quantize import DequantizeAttrs, QuantizeAttrs
from nnc.ops.shape import ConcatAttrs, PadAttrs, ReshapeAttrs, TransposeAttrs

RNG = np.random.default_rng(7)


def weights(*shape) -> np.ndarray:
    return RNG.integers(-127, 128, shape).astype(np.int8)


def requant_params(channels: int, low=2e-4, high=4e-3) -> tuple[np.ndarray, np.ndarray]:
    return quantize_multipliers(RNG.uniform(low, high, channels))


def qconv_graph(x_shape, cout, kernel, group=1, strides=None, pads=None, dilations=None, x_dtype="i8",
                out_dtype="i8", zx=3, zy=-5, clamp=None, bias=True):
    nd = len(kernel)
    cin = x_shape[-1]
    mult, shift = requant_params(cout)
    lo, hi = clamp or ((-128, 127) if out_dtype == "i8" else (0, 255))
    attrs = QConvAttrs(tuple(kernel), strides or (1,) * nd, pads or (0,) * (2 * nd), dilations or (1,) * nd,
                       group, True, zx, zy, lo, hi, out_dtype)
    return single_op("QConv", attrs, [
        ("x", (x_dtype, x_shape)), ("w", weights(cout, cin // group, *kernel)),
        ("b", RNG.integers(-5000, 5000, cout).astype(np.int32)) if bias else ("", None),
        ("mult", mult), ("shift", shift)], name="qconv")


@pytest.mark.parametrize("case", [
    dict(x_shape=(1, 6, 5, 3), cout=4, kernel=(3, 3), pads=(1, 1, 1, 1)),
    dict(x_shape=(1, 7, 6, 3), cout=5, kernel=(3, 2), strides=(2, 1), pads=(1, 0, 2, 1), zx=-128),
    dict(x_shape=(2, 7, 7, 2), cout=3, kernel=(2, 2), dilations=(2, 3), bias=False),
    dict(x_shape=(1, 5, 5, 4), cout=6, kernel=(3, 3), group=2, pads=(1, 1, 1, 1)),
    dict(x_shape=(1, 6, 6, 4), cout=4, kernel=(3, 3), group=4, pads=(1, 1, 1, 1), clamp=(-5, 127)),
    dict(x_shape=(1, 6, 6, 3), cout=6, kernel=(3, 3), group=3, strides=(2, 2), pads=(0, 0, 1, 1)),
    dict(x_shape=(1, 9, 3), cout=4, kernel=(3,), pads=(1, 1)),
    dict(x_shape=(1, 5, 4, 3), cout=4, kernel=(1, 1), x_dtype="u8", out_dtype="u8", zx=128, zy=10),
    dict(x_shape=(1, 5, 4, 2), cout=2, kernel=(3, 3), group=2, pads=(1, 1, 1, 1), x_dtype="u8", zx=0),
    # wide enough for the kernels' vector blocks and their tails
    dict(x_shape=(1, 5, 6, 24), cout=10, kernel=(3, 3), strides=(2, 1), pads=(1, 1, 1, 1), zx=-128),
    dict(x_shape=(1, 3, 3, 48), cout=9, kernel=(1, 1), x_dtype="u8", zx=255, bias=False),
    dict(x_shape=(1, 6, 6, 34), cout=6, kernel=(2, 2), group=2, dilations=(1, 2), pads=(1, 1, 0, 0)),
    dict(x_shape=(1, 5, 6, 40), cout=40, kernel=(3, 3), group=40, pads=(1, 1, 1, 1), zx=-128),
    dict(x_shape=(1, 7, 6, 27), cout=27, kernel=(3, 3), group=27, strides=(2, 2), dilations=(1, 2),
         pads=(1, 2, 1, 2), x_dtype="u8", zx=200),
    dict(x_shape=(1, 9, 5, 1), cout=24, kernel=(4, 3), strides=(2, 2), pads=(1, 1, 2, 1), zx=-7),
], ids=["basic", "strided-asym-pads", "dilated-batch2-nobias", "grouped", "depthwise-relu",
        "depthwise-strided", "conv1d", "pointwise-u8", "depthwise-u8-i8", "wide", "pointwise-wide-u8",
        "grouped-wide-dilated", "depthwise-wide", "depthwise-wide-u8-dilated", "single-input-channel"])
def test_qconv(case, tmp_path):
    check_graph(qconv_graph(**case), tmp_path)


@pytest.mark.parametrize("x_dtype,out_dtype", [("i8", "i8"), ("u8", "i8"), ("i8", "u8")])
def test_qgemm(x_dtype, out_dtype, tmp_path):
    mult, shift = requant_params(5, 1e-3, 1e-2)
    zx = 7 if x_dtype == "i8" else 120
    lo, hi = (-128, 127) if out_dtype == "i8" else (0, 255)
    attrs = QGemmAttrs(zx, 3, lo, hi, out_dtype)
    graph = single_op("QGemm", attrs, [("x", (x_dtype, (2, 8))), ("w", weights(5, 8)),
                                       ("b", RNG.integers(-300, 300, 5).astype(np.int32)),
                                       ("mult", mult), ("shift", shift)])
    check_graph(graph, tmp_path)


def test_qgemm_wide(tmp_path):
    """k = 70 and n = 15: the dot products' 16-wide loops and their tails; outputs 8, 4, then 1 at a time."""
    mult, shift = requant_params(15, 1e-4, 1e-3)
    attrs = QGemmAttrs(-128, 3, -128, 127, "i8")
    graph = single_op("QGemm", attrs, [("x", ("i8", (3, 70))), ("w", weights(15, 70)),
                                       ("b", RNG.integers(-300, 300, 15).astype(np.int32)),
                                       ("mult", mult), ("shift", shift)])
    check_graph(graph, tmp_path)


@pytest.mark.parametrize("x_dtype,out_dtype,real", [("i8", "i8", 0.37), ("i8", "u8", 1.9), ("u8", "i8", 0.002)])
def test_requantize(x_dtype, out_dtype, real, tmp_path):
    m, n = quantize_multiplier(real)
    lo, hi = (-128, 127) if out_dtype == "i8" else (0, 255)
    attrs = RequantizeAttrs(-4 if x_dtype == "i8" else 130, 9, m, n, lo, hi, out_dtype)
    check_graph(single_op("Requantize", attrs, [("x", (x_dtype, (2, 3, 7)))]), tmp_path)


@pytest.mark.parametrize("a_shape,b_shape,types", [
    ((1, 4, 4, 3), (1, 4, 4, 3), ("i8", "i8", "i8")),
    ((1, 4, 4, 3), (3,), ("i8", "i8", "i8")),
    ((2, 1, 5), (1, 3, 1), ("u8", "i8", "u8")),
])
def test_qadd(a_shape, b_shape, types, tmp_path):
    shift = 30
    ma, mb = round(0.7 * 2 ** shift), round(1.3 * 2 ** shift)
    lo, hi = (-128, 127) if types[2] == "i8" else (0, 255)
    za = -3 if types[0] == "i8" else 140
    attrs = QAddAttrs(za, 5, 2 if types[2] == "i8" else 100, ma, mb, shift, lo, hi, types[2])
    check_graph(single_op("QAdd", attrs, [("a", (types[0], a_shape)), ("b", (types[1], b_shape))]), tmp_path)


@pytest.mark.parametrize("x_dtype,table_dtype", [("i8", "i8"), ("u8", "i8"), ("i8", "u8")])
def test_qlut(x_dtype, table_dtype, tmp_path):
    lo, hi = (-128, 127) if table_dtype == "i8" else (0, 255)
    q = np.arange(256) - (128 if x_dtype == "i8" else 0)
    table = np.clip(np.round(np.tanh(q * 0.03) * 100), lo, hi).astype(np.dtype(table_dtype.replace("i8", "int8")
                                                                                .replace("u8", "uint8")))
    check_graph(single_op("QLut", None, [("x", (x_dtype, (3, 17))), ("table", table)]), tmp_path)


@pytest.mark.parametrize("kernel,strides,pads,shape", [
    ((2, 2), (2, 2), (0, 0, 0, 0), (1, 6, 6, 4)),
    ((3, 3), (1, 2), (1, 1, 1, 1), (1, 5, 6, 2)),
    ((25, 5), (25, 5), (0, 0, 0, 0), (1, 25, 5, 8)),
])
def test_qaverage_pool(kernel, strides, pads, shape, tmp_path):
    m, n = quantize_multiplier(0.9 / math.prod(kernel))
    attrs = QAveragePoolAttrs(kernel, strides, pads, True, -7, 4, m, n, -128, 127)
    check_graph(single_op("QAveragePool", attrs, [("x", ("i8", shape))]), tmp_path)


@pytest.mark.parametrize("shape,out_dtype", [((2, 10), "i8"), ((1, 1, 12), "u8"), ((3, 1), "i8")])
def test_qsoftmax(shape, out_dtype, tmp_path):
    sx = 0.0625
    table = np.round(2.0 ** EXP_BITS * np.exp(-sx * np.arange(256))).astype(np.int32)
    m, n = quantize_multiplier(256.0)
    zy, lo, hi = (-128, -128, 127) if out_dtype == "i8" else (0, 0, 255)
    attrs = QSoftmaxAttrs(zy, m, n, lo, hi, out_dtype)
    check_graph(single_op("QSoftmax", attrs, [("x", ("i8", shape)), ("table", table)]), tmp_path)


def qlogsoftmax_inputs(x_dtype: str, shape, sx: float, sy: float, out_dtype: str, clamp=None):
    """(attrs, inputs) of a QLogSoftmax: y_zero at the top of the output range
    (log probabilities are <= 0), clamped to `clamp` or the type's range."""
    table = np.round(2.0 ** EXP_BITS * np.exp(-sx * np.arange(256))).astype(np.int32)
    lo, hi = clamp or integer_range(out_dtype)
    attrs = log_softmax_attrs(sx, sy, integer_range(out_dtype)[1], lo, hi, out_dtype)
    return attrs, [("x", (x_dtype, shape)), ("exp_table", table), ("log_table", log_table())]


@pytest.mark.parametrize("shape,x_dtype,out_dtype,sx,sy,clamp", [
    ((2, 10), "i8", "i8", 0.0625, 0.1, None),
    ((1, 3, 12), "u8", "u8", 2.0 ** -24, 2.0 ** -12, None),
    ((3, 1), "i8", "u8", 8.0, 2.0 ** 6, None),
    ((4, 29), "u8", "i8", 0.5, 0.05, (-100, 90)),
    ((2, 2, 40), "i8", "i8", 1.0, 2.0 ** -10, (-128, 0)),
], ids=["i8", "u8-smallest-sx", "one-class-largest-sx", "u8-i8-clamped", "rank3-fine-output"])
def test_qlogsoftmax(shape, x_dtype, out_dtype, sx, sy, clamp, tmp_path):
    attrs, inputs = qlogsoftmax_inputs(x_dtype, shape, sx, sy, out_dtype, clamp)
    check_graph(single_op("QLogSoftmax", attrs, inputs), tmp_path)


@pytest.mark.parametrize("sx,sy", [(2.0 ** -24, 0.05), (8.0, 2.0 ** 6)])
def test_qlogsoftmax_over_65536_classes(sx, sy, tmp_path):
    """Rows of 2^16 equal values (S = 2^40 at the smallest s_x), one peak, and
    a ramp: the widest sums and the extreme scales stay exact in int64."""
    rows = np.zeros((3, 1 << 16), np.uint8)
    rows[1, 0] = 255
    rows[2] = np.arange(1 << 16) % 256
    attrs, inputs = qlogsoftmax_inputs("u8", rows.shape, sx, sy, "i8")
    check_graph(single_op("QLogSoftmax", attrs, inputs), tmp_path, [{"x": rows}])


def test_qlogsoftmax_at_its_int64_bounds(tmp_path):
    """S near 2^47 (2^16 terms of 2^31 − 1), SX = 2^27, d = 255 and m = 2^27 − 1
    at n = 62: N · m ≈ 2^62.005, past the 2^62 of round_shift's usual bound."""
    x = np.full((2, 1 << 16), -128, np.int8)
    x[:, 0] = 127
    attrs = QLogSoftmaxAttrs(1 << 27, 127, (1 << 27) - 1, 62, -128, 127, "i8")
    inputs = [("x", ("i8", x.shape)), ("exp_table", np.full(256, (1 << 31) - 1, np.int32)), ("log_table", log_table())]
    check_graph(single_op("QLogSoftmax", attrs, inputs), tmp_path, [{"x": x}])


def test_qlogsoftmax_rounds_ties_half_down(tmp_path):
    """s_x = 1 and rows of one maximum with the rest at least 18 below: every
    other exp-table entry rounds to 0, so S = 2^24, L = 0 and N = d · 2^24; with
    s_y = 2, y = z_y − round_shift(d / 2): each odd d is a tie, which round_shift
    takes up, so y goes half down."""
    x = RNG.integers(-128, 110, (512, 16)).astype(np.int8)
    x[:, 0] = 127
    attrs, inputs = qlogsoftmax_inputs("i8", x.shape, 1.0, 2.0, "i8")
    assert attrs.x_scale == 1 << 24 and (attrs.multiplier, attrs.shift) == (1 << 26, 51)
    assert ((127 - x) % 2 == 1).sum() > 1000
    check_graph(single_op("QLogSoftmax", attrs, inputs), tmp_path, [{"x": x}])


def test_qlogsoftmax_runs_in_place_after_a_qgemm(tmp_path):
    """QGemm -> QLogSoftmax: the QGemm writes its logits into the output buffer,
    where the log-softmax overwrites them (each row's max and sum are complete
    before its first output is written), bit-exact."""
    b = GraphBuilder("ctc_head")
    x = b.input("x", "i8", (3, 8))
    mult, shift = requant_params(12, 1e-3, 1e-2)
    logits = b.op("QGemm", [x, b.const("w", weights(12, 8)), "", b.const("mult", mult), b.const("shift", shift)],
                  QGemmAttrs(-3, 5, -128, 127))
    attrs, inputs = qlogsoftmax_inputs("i8", (3, 12), 0.08, 0.1, "i8")
    graph = b.output(b.op("QLogSoftmax", [logits, *(b.const(name, data) for name, data in inputs[1:])], attrs))
    program = lower(graph, "ctc_head")
    assert program.storage.homes[program.idents[logits]] == program.idents[graph.outputs[0]]
    check_graph(graph, tmp_path)


def test_qlogsoftmax_refuses_tables_the_kernel_cannot_hold():
    """An exp table with a zero first entry (S may be 0) or a negative entry, and
    a log table that does not rise from 0 to at most LN2 by steps below 2^16,
    are refused when compiled."""
    attrs, inputs = qlogsoftmax_inputs("i8", (2, 10), 0.1, 0.1, "i8")
    exp_table, logs = inputs[1][1], inputs[2][1]
    steep = np.where(np.arange(257) == 1, 1 << 16, logs).astype(np.int32)  # its first step is 2^16
    bad = {"exp_table": [exp_table * 0, np.where(np.arange(256) == 3, -1, exp_table).astype(np.int32)],
           "log_table": [logs + np.int32(1), logs[::-1].copy(), steep]}
    for name, tables in bad.items():
        for table in tables:
            case = [(n, table if n == name else spec) for n, spec in inputs]
            with pytest.raises(UnsupportedError, match="exp table|log table"):
                lower(single_op("QLogSoftmax", attrs, case), "g")


@pytest.mark.parametrize("dtype", ["i8", "u8"])
def test_max_pool_and_global_max_pool(dtype, tmp_path):
    attrs = PoolAttrs((3, 3), (2, 2), (1, 1, 1, 1), (1, 1), ceil_mode=True, channels_last=True)
    check_graph(single_op("MaxPool", attrs, [("x", (dtype, (1, 7, 6, 3)))]), tmp_path)
    check_graph(single_op("GlobalMaxPool", GlobalPoolAttrs(True), [("x", (dtype, (1, 4, 5, 3)))]), tmp_path)


@pytest.mark.parametrize("op,attrs", [("Clip", ClipAttrs(-10.5, 50.7)), ("Clip", ClipAttrs(None, 3.0)),
                                      ("Relu", None)])
def test_clip_and_relu_int8(op, attrs, tmp_path):
    check_graph(single_op(op, attrs, [("x", ("i8", (4, 9)))]), tmp_path)


def test_data_movement_int8(tmp_path):
    """Reshape (a view), Transpose, Pad (constant fill = zero point, and reflect)
    and Concat on int8 in one graph."""
    b = GraphBuilder("moves")
    x = b.input("x", "i8", (1, 4, 3, 2))
    y = b.input("y", "i8", (1, 4, 3, 5))
    t = b.op("Transpose", [x], TransposeAttrs((0, 3, 1, 2)))
    r = b.op("Reshape", [t], ReshapeAttrs((1, 2, 12)))
    p = b.op("Pad", [r], PadAttrs((0, 1, 2, 0, 0, -1), "constant", -3.0))
    q = b.op("Pad", [x], PadAttrs((0, 1, 2, 0, 0, 1, 1, 0), "reflect"))
    c = b.op("Concat", [x, y, x], ConcatAttrs(3))
    check_graph(b.output(p, q, c), tmp_path)


@pytest.mark.parametrize("dtype,axis", [("i8", None), ("u8", None), ("i8", 3), ("i16", 1)])
def test_quantize_linear(dtype, axis, tmp_path):
    shape = (1, 3, 4, 5)
    count = 1 if axis is None else shape[axis]
    scale = RNG.uniform(0.01, 0.05, count).astype(np.float32)
    zero = RNG.integers(-20, 20 if dtype != "u8" else 0, count) + (128 if dtype == "u8" else 0)
    np_type = {"i8": np.int8, "u8": np.uint8, "i16": np.int16}[dtype]
    if axis is None:
        scale, zero = scale.reshape(()), zero.reshape(())
    graph = single_op("QuantizeLinear", QuantizeAttrs(axis, dtype),
                      [("x", ("f32", shape)), ("s", scale), ("z", zero.astype(np_type))])
    samples = [{"x": (RNG.uniform(-8, 8, shape)).astype(np.float32)} for _ in range(2)]
    halves = np.float32(scale.reshape(-1)[0]) * (np.arange(60, dtype=np.float32) - 30.5)
    samples.append({"x": halves.reshape(shape) if axis is None else samples[0]["x"]})
    check_graph(graph, tmp_path, samples)


@pytest.mark.parametrize("dtype,axis", [("i8", None), ("u8", 0), ("i32", None)])
def test_dequantize_linear(dtype, axis, tmp_path):
    shape = (4, 6)
    count = 1 if axis is None else shape[axis]
    scale = RNG.uniform(0.01, 0.05, count).astype(np.float32)
    np_type = {"i8": np.int8, "u8": np.uint8, "i32": np.int32}[dtype]
    zero = RNG.integers(0, 20, count).astype(np_type)
    if axis is None:
        scale, zero = scale.reshape(()), zero.reshape(())
    graph = single_op("DequantizeLinear", DequantizeAttrs(axis), [("x", (dtype, shape)), ("s", scale), ("z", zero)])
    check_graph(graph, tmp_path)


def _byte_weights_gemm(rows: int):
    """QGemm x [2, 64] -> [2, rows] whose int8 weights hold every byte value."""
    mult, shift = requant_params(rows, 1e-4, 1e-3)
    w = np.resize(np.arange(-128, 128, dtype=np.int8), rows * 64).reshape(rows, 64)
    RNG.shuffle(w.reshape(-1))
    graph = single_op("QGemm", QGemmAttrs(-128, 3, -128, 127, "i8"),
                      [("x", ("i8", (2, 64))), ("w", w), ("", None), ("mult", mult), ("shift", shift)])
    return graph, w


@pytest.mark.parametrize("rows", [60, 64])
def test_weights_from_4096_bytes_are_one_string_literal(rows, tmp_path):
    """A QGemm's int8 weights of 64·64 = 4096 bytes (every byte value among them)
    are a string literal of \\xHH escapes in weights.h, 60·64 a brace list; both
    build under -Werror -pedantic with gcc and clang and compute the reference's values."""
    graph, w = _byte_weights_gemm(rows)
    src, stem = emit(graph, tmp_path / "emitted")
    text = (src / f"{stem}_weights.h").read_text()
    strings = re.findall(r'^    "((?:\\x[0-9a-f]{2})+)"$', text, re.MULTILINE)
    assert (len(strings) > 0) == (w.size >= 4096) and ("Woverlength-strings" in text) == (w.size >= 4096)
    if strings:
        assert bytes.fromhex("".join(strings).replace("\\x", "")) == w.tobytes()
    check_graph(graph, tmp_path)
    for cc in COMPILERS:  # the NUL-less literal is what -Wc++-compat warns of, if the header did not say otherwise
        build.compile_c([src / f"{stem}.c"], tmp_path / f"{cc}.o", ("-O1", "-Werror", "-Wc++-compat"), cc=cc, link=False)


def test_c_arrays_braces_keeps_brace_lists(tmp_path):
    """c_arrays="braces" (--c-arrays braces): 4096 bytes of weights stay a brace
    list, without the diagnostic pragmas, for compilers that cap string literals."""
    graph, _ = _byte_weights_gemm(64)
    CTarget(CompileOptions(target="c", c_arrays="braces")).emit(graph, tmp_path, "g")
    text = (tmp_path / "g_weights.h").read_text()
    assert '    "' not in text and "pragma" not in text and "L0_w[4096]" in text
    for cc in COMPILERS:
        build.compile_c([tmp_path / "g.c"], tmp_path / f"{cc}.o", ("-O1", "-Werror", "-Wc++-compat"), cc=cc,
                        link=False)
