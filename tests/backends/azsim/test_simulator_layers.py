"""Every layer kind the simulator runs, on small hand-built Programs, against a
direct computation of docs/numerics.md (Python integers where the formula has a
rounding step, plain numpy for data movement)."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
from azsim_testing import ProgramBuilder, machine, mac_layer

from nnc.backends.azsim.mac import Requantizer
from nnc.backends.azsim.program import DTYPE_CODES
from nnc.backends.azsim.simulator import simulate
from nnc.numerics import quantize_multiplier, quantize_multipliers, requantize
from nnc.ops import get_op
from nnc.errors import BlobError
from nnc.ops.qsoftmax import QLogSoftmaxAttrs, QSoftmaxAttrs, log_softmax_attrs, log_table

RNG = np.random.default_rng(20240601)


def requant(acc: int, m: int, n: int, zy: int, lo: int, hi: int) -> int:
    """docs/numerics.md §1–2 on Python integers."""
    return min(max(zy + ((acc * m + (1 << (n - 1))) >> n), lo), hi)


def one_layer(op: str, inputs: list, params: dict, out_dtype: str, out_shape, hw=None):
    """Run a one-layer program. `inputs`: arrays (activations fed in) or
    ("const", array) constants or -1; returns (output, stats)."""
    b = ProgramBuilder()
    feed, indices = {}, []
    for i, value in enumerate(inputs):
        if isinstance(value, int):
            indices.append(value)
        elif isinstance(value, tuple):
            indices.append(b.const(f"c{i}", value[1]))
        else:
            dtype = {np.dtype(np.int8): "i8", np.dtype(np.uint8): "u8", np.dtype(np.float32): "f32"}[value.dtype]
            indices.append(b.input(f"x{i}", dtype, value.shape))
            feed[f"x{i}"] = value
    y = b.layer(op, indices, ("y", out_dtype, tuple(out_shape)), params)
    out, stats = simulate(b.program(y), feed, hw)
    return out["y"], stats


# -- QConv and QGemm ------------------------------------------------------------------
def conv_reference(x, w, bias, m, n, zx, zy, lo, hi, strides, pads, dilations, group):
    """x [N, Cin, *S] (channels first), w [Cout, Cin/g, *K]: the §2 sums, one by one."""
    nd, batch, cout = x.ndim - 2, x.shape[0], w.shape[0]
    kernel, cg, mg = w.shape[2:], w.shape[1], w.shape[0] // group
    out = [(s + pads[a] + pads[a + nd] - (k - 1) * d - 1) // st + 1
           for a, (s, k, d, st) in enumerate(zip(x.shape[2:], kernel, dilations, strides))]
    y = np.zeros((batch, cout, *out), np.int64)
    for b, c, *o in itertools.product(range(batch), range(cout), *map(range, out)):
        acc = int(bias[c])
        for ci, *k in itertools.product(range(cg), *map(range, kernel)):
            pos = [oo * st + kk * d - pads[a] for a, (oo, st, kk, d) in enumerate(zip(o, strides, k, dilations))]
            if all(0 <= p < s for p, s in zip(pos, x.shape[2:])):
                acc += (int(x[(b, (c // mg) * cg + ci, *pos)]) - zx) * int(w[(c, ci, *k)])
        y[(b, c, *o)] = requant(acc, int(m[c]), int(n[c]), zy, lo, hi)
    return y


CONV_CASES = [  # cin, cout, group, kernel, strides, pads, dilations, spatial
    (3, 4, 1, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), (5, 5)),
    (3, 5, 1, (3, 2), (2, 1), (0, 1, 2, 0), (1, 2), (7, 6)),
    (4, 4, 4, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), (5, 6)),        # depthwise, merged taps
    (4, 4, 4, (3, 3), (2, 2), (0, 0, 1, 1), (1, 1), (7, 7)),        # depthwise, strided
    (4, 4, 4, (2, 3), (1, 1), (2, 0, 1, 2), (2, 2), (6, 5)),        # depthwise, dilated
    (6, 4, 2, (1, 1), (1, 1), (0, 0, 0, 0), (1, 1), (3, 4)),        # grouped pointwise
    (6, 9, 3, (2, 2), (1, 2), (1, 0, 0, 1), (1, 1), (4, 5)),        # grouped
    (5, 7, 1, (1, 1), (1, 1), (0, 0, 0, 0), (1, 1), (4, 4)),        # pointwise, no im2col
    (5, 7, 1, (1, 1), (2, 2), (0, 0, 0, 0), (1, 1), (5, 5)),        # strided 1x1
    (2, 3, 1, (3,), (2,), (1, 2), (1,), (9,)),                      # 1-D
    (3, 3, 3, (3,), (1,), (1, 1), (1,), (8,)),                      # 1-D depthwise
    (4, 4, 4, (3, 1), (1, 1), (0, 0, 0, 0), (1, 1), (7, 2)),        # depthwise, unpadded: raw input
    (3, 3, 3, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), (17, 16)),      # depthwise, > 256 positions: per tap
    (3, 3, 3, (3, 3), (2, 1), (0, 1, 1, 0), (1, 1), (35, 17)),      # the same, strided
]


@pytest.mark.parametrize("channels_last", [True, False])
@pytest.mark.parametrize("case", CONV_CASES)
def test_qconv(case, channels_last):
    cin, cout, group, kernel, strides, pads, dilations, spatial = case
    x = RNG.integers(-128, 128, (1, cin, *spatial)).astype(np.int8)
    w = RNG.integers(-127, 128, (cout, cin // group, *kernel)).astype(np.int8)
    w[RNG.random(w.shape) < 0.4] = 0
    bias = RNG.integers(-3000, 3000, cout)
    m, n = quantize_multipliers(RNG.uniform(1e-4, 2e-3, cout))
    zx, zy, lo, hi = 7, -3, -100, 127
    expected = conv_reference(x, w, bias, m, n, zx, zy, lo, hi, strides, pads, dilations, group)
    layout = (lambda a: np.moveaxis(a, 1, -1)) if channels_last else (lambda a: a)
    b = ProgramBuilder()
    xi = b.input("x", "i8", layout(x).shape)
    params = dict(kernel_shape=kernel, strides=strides, pads=pads, dilations=dilations, group=group,
                  channels_last=int(channels_last), x_zero_point=zx, y_zero_point=zy, out_min=lo, out_max=hi,
                  out_dtype=DTYPE_CODES["i8"])
    y = mac_layer(b, "QConv", xi, w, bias, m, n, layout(expected).shape, params)
    out, stats = simulate(b.program(y), {"x": layout(x)}, machine(skip_zero_activations=True))
    np.testing.assert_array_equal(out["y"], layout(expected))
    positions = expected.size // cout
    assert stats.macs_total == positions * w.size
    assert stats.layers[0].macs_executed <= positions * np.count_nonzero(w)


@pytest.mark.parametrize("x_dtype, zx, out_dtype, zy, lo, hi", [
    ("i8", -128, "i8", 5, -128, 127), ("u8", 128, "u8", 3, 0, 255), ("i8", 0, "i8", 0, 0, 100)])
def test_qgemm(x_dtype, zx, out_dtype, zy, lo, hi):
    k, n_out = 10, 6
    x = RNG.integers(*((-128, 128) if x_dtype == "i8" else (0, 256)), (3, k))
    x = x.astype(np.int8 if x_dtype == "i8" else np.uint8)
    w = RNG.integers(-7, 8, (n_out, k)).astype(np.int8)
    bias = RNG.integers(-500, 500, n_out)
    m, n = quantize_multipliers(RNG.uniform(1e-3, 5e-2, n_out))
    expected = [[requant(bias[c] + sum((int(x[r, j]) - zx) * int(w[c, j]) for j in range(k)), int(m[c]), int(n[c]),
                         zy, lo, hi) for c in range(n_out)] for r in range(3)]
    b = ProgramBuilder()
    xi = b.input("x", x_dtype, x.shape)
    params = dict(x_zero_point=zx, y_zero_point=zy, out_min=lo, out_max=hi, out_dtype=DTYPE_CODES[out_dtype])
    y = mac_layer(b, "QGemm", xi, w, bias, m, n, (3, n_out), params, out_dtype=out_dtype)
    out, _ = simulate(b.program(y), {"x": x})
    np.testing.assert_array_equal(out["y"], np.array(expected))


def test_qgemm_without_bias_and_float64_accumulation():
    """No bias operand (-1); weights large enough that Σ|w|·255 ≥ 2^24 (float64 path)."""
    k = 600
    x = RNG.integers(-128, 128, (1, k)).astype(np.int8)
    w = np.full((2, k), 127, np.int8)
    w[1] = -127
    m, n = quantize_multipliers(np.array([1e-5, 1e-5]))
    expected = [requant(sum((int(v) + 128) * int(w[c, 0]) for v in x[0]), int(m[c]), int(n[c]), 0, -128, 127)
                for c in range(2)]
    b = ProgramBuilder()
    y = mac_layer(b, "QGemm", b.input("x", "i8", x.shape), w, None, m, n, (1, 2),
                  dict(x_zero_point=-128, y_zero_point=0, out_min=-128, out_max=127, out_dtype=1))
    out, _ = simulate(b.program(y), {"x": x})
    np.testing.assert_array_equal(out["y"][0], expected)


def test_unpadded_qconv_centres_its_input_when_raw_sums_need_float64():
    """u8 with z_x = 128: centred sums reach 127·600·128 < 2^24 (float32), raw ones
    127·600·255 ≥ 2^24, so the layer centres its input instead of folding z_x
    into the bias (which an unpadded layer does otherwise)."""
    cin, cout = 600, 3
    x = RNG.integers(0, 256, (1, cin, 1, 2)).astype(np.uint8)
    w = np.where(RNG.random((cout, cin, 1, 1)) < 0.5, 127, -127).astype(np.int8)
    bias = np.array([5, -7, 0])
    m, n = quantize_multipliers(np.array([1e-4, 2e-4, 3e-4]))
    expected = conv_reference(x, w, bias, m, n, 128, 1, 0, 255, (1, 1), (0, 0, 0, 0), (1, 1), 1)
    b = ProgramBuilder()
    params = dict(kernel_shape=(1, 1), strides=(1, 1), pads=(0, 0, 0, 0), dilations=(1, 1), group=1,
                  channels_last=0, x_zero_point=128, y_zero_point=1, out_min=0, out_max=255,
                  out_dtype=DTYPE_CODES["u8"])
    y = mac_layer(b, "QConv", b.input("x", "u8", x.shape), w, bias, m, n, expected.shape, params, out_dtype="u8")
    out, _ = simulate(b.program(y), {"x": x})
    np.testing.assert_array_equal(out["y"], expected)


def test_requantizer_equals_the_shared_primitive():
    """Folding the bias into the rounding constant changes nothing, at the extremes too."""
    acc = np.concatenate([RNG.integers(-2**31 + 2**20, 2**31 - 2**20, (500, 4)),
                          np.array([[-(2**31) + 2**20, 2**31 - 2**20 - 1, 0, 1]])]).astype(np.int64)
    bias = np.array([-(2**20), 2**20, 0, 12345], np.int64)
    m = np.array([2**31 - 1, 2**30, 1518500250, 2**30 + 1], np.int64)
    n = np.array([62, 1, 31, 40], np.int64)
    out = np.empty(acc.shape, np.int64)
    Requantizer(bias, m, n, 3, -128, 127)(acc.astype(np.float64), out)
    np.testing.assert_array_equal(out, requantize(acc + bias, m, n, 3, -128, 127))
    folded = Requantizer(bias[1:], m[1:], n[1:], 3, -128, 127, bound=2**31 - 2**20, period=2)  # z_y in the offset
    assert folded.tail.after == 0 and Requantizer(bias, m, n, 3, -128, 127).tail.after == 3
    pairs = acc[:500, 1:].reshape(250, 2, 3)  # [rows, period, C]
    out = np.empty(pairs.shape, np.int64)
    folded(pairs.astype(np.float64), out)
    np.testing.assert_array_equal(out, requantize(pairs + bias[1:], m[1:], n[1:], 3, -128, 127))


# -- PPU layers -------------------------------------------------------------------------
def pool_windows(x, kernel, strides, pads, out):
    """Per output position of channels-last x [N, H, W, C]: the in-bounds input positions."""
    for o in itertools.product(*map(range, out)):
        yield o, [p for p in itertools.product(*(range(oo * s - b, oo * s - b + k) for oo, s, b, k
                                                  in zip(o, strides, pads, kernel)))
                  if all(0 <= pp < size for pp, size in zip(p, x.shape[1:-1]))]


@pytest.mark.parametrize("kernel, strides, pads, out", [
    ((2, 2), (2, 2), (0, 0, 0, 0), (3, 3)), ((3, 3), (2, 2), (1, 1, 1, 1), (3, 3)),
    ((6, 6), (6, 6), (0, 0, 0, 0), (1, 1)), ((3, 2), (1, 2), (1, 0, 1, 0), (6, 3))])
def test_qaverage_pool(kernel, strides, pads, out):
    x = RNG.integers(-128, 128, (1, 6, 6, 3)).astype(np.int8)
    count = int(np.prod(kernel))
    m, n = quantize_multiplier(0.9 / count)
    expected = np.zeros((1, *out, 3), np.int64)
    for o, window in pool_windows(x, kernel, strides, pads, out):
        for c in range(3):
            acc = sum(int(x[(0, *p, c)]) + 5 for p in window)  # zx = -5; padding counts as 0
            expected[(0, *o, c)] = requant(acc, m, n, 2, -128, 127)
    params = dict(kernel_shape=kernel, strides=strides, pads=pads, channels_last=1, x_zero_point=-5,
                  y_zero_point=2, multiplier=m, shift=n, out_min=-128, out_max=127, out_dtype=1)
    y, stats = one_layer("QAveragePool", [x], params, "i8", expected.shape, machine(post_cycles_per_output=1))
    np.testing.assert_array_equal(y, expected)
    assert stats.post_cycles == expected.size * count


@pytest.mark.parametrize("kernel, strides, pads, dilations, ceil_mode, out", [
    ((2, 2), (2, 2), (0, 0, 0, 0), (1, 1), 0, (2, 2)), ((2, 2), (2, 2), (0, 0, 0, 0), (1, 1), 1, (3, 3)),
    ((3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 0, (5, 5)), ((2, 2), (1, 2), (0, 0, 0, 0), (2, 1), 0, (3, 2)),
    ((5, 5), (5, 5), (0, 0, 0, 0), (1, 1), 0, (1, 1))])
def test_max_pool(kernel, strides, pads, dilations, ceil_mode, out):
    x = RNG.integers(-128, 128, (1, 3, 5, 5)).astype(np.int8)      # channels first
    expected = np.zeros((1, 3, *out), np.int8)
    for o in itertools.product(*map(range, out)):
        cells = [tuple(oo * s - b + kk * d for oo, s, b, kk, d in zip(o, strides, pads, k, dilations))
                 for k in itertools.product(*map(range, kernel))]
        cells = [p for p in cells if all(0 <= pp < 5 for pp in p)]
        expected[(0, slice(None), *o)] = np.max([x[(0, slice(None), *p)] for p in cells], axis=0)
    params = dict(kernel_shape=kernel, strides=strides, pads=pads, dilations=dilations, ceil_mode=ceil_mode,
                  channels_last=0)
    y, _ = one_layer("MaxPool", [x], params, "i8", expected.shape)
    np.testing.assert_array_equal(y, expected)


def test_global_max_pool():
    x = RNG.integers(-128, 128, (1, 4, 3, 5)).astype(np.int8)
    y, _ = one_layer("GlobalMaxPool", [x], dict(channels_last=1), "i8", (1, 1, 1, 5))
    np.testing.assert_array_equal(y, x.max(axis=(1, 2), keepdims=True))


def test_qadd_broadcast():
    a = RNG.integers(-128, 128, (1, 3, 4)).astype(np.int8)
    b = RNG.integers(-128, 128, (1, 1, 4)).astype(np.int8)
    ma, mb, n = 1_234_567_890, 987_654_321, 31
    expected = np.array([[[min(max(-2 + (((int(a[0, i, j]) - 3) * ma + (int(b[0, 0, j]) + 7) * mb + (1 << (n - 1)))
                                         >> n), -128), 127) for j in range(4)] for i in range(3)]])
    params = dict(a_zero_point=3, b_zero_point=-7, y_zero_point=-2, a_multiplier=ma, b_multiplier=mb, shift=n,
                  out_min=-128, out_max=127, out_dtype=1)
    y, _ = one_layer("QAdd", [a, b], params, "i8", (1, 3, 4))
    np.testing.assert_array_equal(y, expected)


def test_requantize_to_u8():
    x = np.arange(-128, 128, dtype=np.int8).reshape(16, 16)
    m, n = quantize_multiplier(0.37)
    expected = np.array([[requant(int(v) - 10, m, n, 128, 0, 255) for v in row] for row in x])
    params = dict(x_zero_point=10, y_zero_point=128, multiplier=m, shift=n, out_min=0, out_max=255, out_dtype=2)
    y, _ = one_layer("Requantize", [x], params, "u8", x.shape)
    assert y.dtype == np.uint8
    np.testing.assert_array_equal(y, expected)


@pytest.mark.parametrize("x_dtype", [np.int8, np.uint8])
def test_qlut(x_dtype):
    info = np.iinfo(x_dtype)
    x = np.arange(info.min, info.max + 1, dtype=x_dtype).reshape(2, 128)
    table = RNG.integers(-128, 128, 256).astype(np.int8)
    y, _ = one_layer("QLut", [x, ("const", table)], {}, "i8", x.shape)
    np.testing.assert_array_equal(y, table[x.astype(np.int64) - info.min])


def test_qsoftmax():
    x = RNG.integers(-128, 128, (2, 7)).astype(np.int8)
    x[1] = 5  # all equal
    table = np.round(2**24 * np.exp(-0.1 * np.arange(256))).astype(np.int32)
    m, n = quantize_multiplier(256.0)
    expected = np.zeros(x.shape, np.int64)
    for r in range(2):
        e = [int(table[int(x[r].max()) - int(v)]) for v in x[r]]
        s = sum(e)
        expected[r] = [min(max(-128 + (ei * m + s * (1 << (n - 1))) // (s * (1 << n)), -128), 127) for ei in e]
    params = dict(y_zero_point=-128, multiplier=m, shift=n, out_min=-128, out_max=127, out_dtype=1)
    y, stats = one_layer("QSoftmax", [x, ("const", table)], params, "i8", x.shape, machine(post_cycles_per_output=1))
    np.testing.assert_array_equal(y, expected)
    assert stats.post_cycles == 2 * x.size


def test_qsoftmax_with_a_keep_mask():
    """A causal mask: the max and the sum run over kept positions, hidden ones
    get y_zero_point; the same values as the IR op's reference."""
    x = RNG.integers(-128, 128, (2, 4, 4)).astype(np.int8)
    keep = np.tril(np.ones((1, 4, 4), np.uint8))
    table = np.round(2**24 * np.exp(-0.1 * np.arange(256))).astype(np.int32)
    m, n = quantize_multiplier(256.0)
    attrs = QSoftmaxAttrs(-128, m, n, -128, 127, "i8")
    params = dict(y_zero_point=-128, multiplier=m, shift=n, out_min=-128, out_max=127, out_dtype=1)
    y, _ = one_layer("QSoftmax", [x, ("const", table), ("const", keep)], params, "i8", x.shape)
    np.testing.assert_array_equal(y, get_op("QSoftmax").evaluate(attrs, [x, table, keep])[0])
    assert (y[:, np.triu_indices(4, 1)[0], np.triu_indices(4, 1)[1]] == -128).all()


def log_softmax_layer(x: np.ndarray, sx: float, sy: float, out: tuple[str, int, int, int], hw=None):
    """One QLogSoftmax layer with §6a's tables and attributes for scales s_x, s_y and
    out = (dtype, z_y, out_min, out_max): (y, stats, the IR op's reference)."""
    table = np.round(2**24 * np.exp(-sx * np.arange(256))).astype(np.int32)
    dtype, zy, lo, hi = out
    attrs = log_softmax_attrs(sx, sy, zy, lo, hi, dtype)
    params = dict(x_scale=attrs.x_scale, y_zero_point=zy, multiplier=attrs.multiplier, shift=attrs.shift,
                  out_min=lo, out_max=hi, out_dtype=DTYPE_CODES[dtype])
    inputs = [x, ("const", table), ("const", log_table())]
    y, stats = one_layer("QLogSoftmax", inputs, params, dtype, x.shape, hw)
    return y, stats, get_op("QLogSoftmax").evaluate(attrs, [x, table, log_table()])[0]


LOG_SOFTMAX_SCALES = [(2.0**-24, 2.0**-12), (2.0**-16, 0.1), (0.05, 0.1), (0.3, 1 / 16), (1.0, 2.0**-10),
                      (4.0, 2.0), (8.0, 2.0**6)]


@pytest.mark.parametrize("x_dtype", [np.int8, np.uint8])
@pytest.mark.parametrize("out_dtype", ["i8", "u8"])
@pytest.mark.parametrize("sx, sy", LOG_SOFTMAX_SCALES)
def test_qlogsoftmax(x_dtype, out_dtype, sx, sy):
    """Random shapes with a constant row and a row spanning the whole input range,
    the full output range (z_y at the top: log p ≤ 0) and a clamped one; bit-exact,
    with 2 · elements + rows of PPU work and both tables loaded."""
    info, (lo, hi) = np.iinfo(x_dtype), (-128, 127) if out_dtype == "i8" else (0, 255)
    for shape in (tuple(RNG.integers(1, 7, RNG.integers(1, 4))) + (int(RNG.integers(2, 40)),) for _ in range(3)):
        x = RNG.integers(info.min, info.max + 1, shape).astype(x_dtype)
        x.reshape(-1, shape[-1])[0] = info.max
        x.reshape(-1, shape[-1])[-1, :2] = info.min, info.max
        for out in ((out_dtype, hi, lo, hi), (out_dtype, hi - 7, lo + 30, hi - 20)):
            y, stats, expected = log_softmax_layer(x, sx, sy, out, machine(post_cycles_per_output=1))
            assert y.dtype == expected.dtype
            np.testing.assert_array_equal(y, expected)
            assert stats.post_cycles == 2 * x.size + x.size // shape[-1]
            assert stats.layers[0].bytes_loaded == (256 + 257) * 4 and stats.cycles > stats.post_cycles


@pytest.mark.parametrize("sx, sy", [(2.0**-24, 2.0**-12), (0.05, 0.1), (8.0, 2.0**6)])
def test_qlogsoftmax_on_2_to_the_16_classes(sx, sy):
    """S up to 2^40 (a constant row) and the widest s_x: N · m stays inside int64."""
    x = RNG.integers(-128, 128, (3, 1 << 16)).astype(np.int8)
    x[0], x[1, ::2] = 7, 127
    y, _, expected = log_softmax_layer(x, sx, sy, ("i8", 0, -128, 127), machine(activation_sram_bytes=1 << 20))
    np.testing.assert_array_equal(y, expected)


def test_qlogsoftmax_at_its_int64_bounds():
    """S near 2^47, SX = 2^27, d = 255 and m = 2^27 − 1 at n = 62: N · m ≈ 2^62.005."""
    x = np.full((2, 1 << 16), -128, np.int8)
    x[:, 0] = 127
    attrs = QLogSoftmaxAttrs(1 << 27, 127, (1 << 27) - 1, 62, -128, 127, "i8")
    table = np.full(256, (1 << 31) - 1, np.int32)
    params = {**dataclasses.asdict(attrs), "out_dtype": DTYPE_CODES["i8"]}
    y, _ = one_layer("QLogSoftmax", [x, ("const", table), ("const", log_table())], params, "i8", x.shape,
                     machine(activation_sram_bytes=1 << 20))
    np.testing.assert_array_equal(y, get_op("QLogSoftmax").evaluate(attrs, [x, table, log_table()])[0])


def test_qlogsoftmax_rounds_ties_half_down():
    """y = z_y − round_shift(N · m, n): −log p / s_y rounds half up, so y half down.
    With s_x = 1 and one maximum per row, the rest at least 18 below, S = 2^24 and
    L = 0, so with s_y = 2 each odd d is a tie."""
    x = RNG.integers(-128, 110, (512, 16)).astype(np.int8)
    x[:, 0] = 127
    y, _, expected = log_softmax_layer(x, 1.0, 2.0, ("i8", 127, -128, 127))
    np.testing.assert_array_equal(y, expected)
    assert ((127 - x) % 2 == 1).sum() > 1000 and expected.min() > -128


@pytest.mark.parametrize("change, message", [
    (dict(x_scale=0), "needs x_scale in"), (dict(x_scale=(1 << 27) + 1), "needs x_scale in"),
    (dict(multiplier=1 << 27), "a multiplier in"), (dict(shift=0), "a shift in"),
    (dict(exp=lambda e: np.where(np.arange(256) == 0, 0, e)), "exp_table\\[0\\] >= 1"),
    (dict(exp=lambda e: np.where(np.arange(256) == 9, -1, e)), "exp table must be non-negative"),
    (dict(log=lambda l: l + 1), "log table must rise from 0"),
    (dict(log=lambda l: l[::-1].copy()), "log table must rise from 0"),
    (dict(x=np.zeros((2, 3), np.float32)), "needs an 8-bit input"),
])
def test_qlogsoftmax_refuses_what_would_leave_int64(change, message):
    attrs = log_softmax_attrs(0.05, 0.1, 127, -128, 127)
    x = change.get("x", np.zeros((2, 3), np.int8))
    exp = change.get("exp", lambda e: e)(np.round(2**24 * np.exp(-0.05 * np.arange(256))).astype(np.int32))
    log = change.get("log", lambda l: l)(log_table())
    params = dict(x_scale=attrs.x_scale, y_zero_point=127, multiplier=attrs.multiplier, shift=attrs.shift,
                  out_min=-128, out_max=127, out_dtype=1)
    params.update((k, v) for k, v in change.items() if k in params)
    with pytest.raises(BlobError, match=r"layer 'qlogsoftmax0' \(QLogSoftmax\): .*" + message):
        one_layer("QLogSoftmax", [x, ("const", exp), ("const", log)], params, "i8", x.shape)


def test_clip():
    x = np.arange(-128, 128, dtype=np.int8)
    y, _ = one_layer("Clip", [x], dict(min=-3, max=40), "i8", x.shape)
    np.testing.assert_array_equal(y, np.clip(x, -3, 40))
    y, _ = one_layer("Clip", [x], dict(min=0), "i8", x.shape)  # max omitted: unbounded
    np.testing.assert_array_equal(y, np.maximum(x, 0))


def test_data_movement():
    x = RNG.integers(-128, 128, (1, 2, 3, 4)).astype(np.int8)
    y, _ = one_layer("Reshape", [x], dict(shape=(1, 24)), "i8", (1, 24))
    np.testing.assert_array_equal(y, x.reshape(1, 24))
    y, _ = one_layer("Transpose", [x], dict(perm=(0, 3, 1, 2)), "i8", (1, 4, 2, 3))
    np.testing.assert_array_equal(y, x.transpose(0, 3, 1, 2))
    z = RNG.integers(-128, 128, (1, 2, 1, 4)).astype(np.int8)
    y, _ = one_layer("Concat", [x, z], dict(axis=2), "i8", (1, 2, 4, 4))
    np.testing.assert_array_equal(y, np.concatenate([x, z], axis=2))


@pytest.mark.parametrize("pads, mode, value", [
    ((0, 1, 2, 0, 0, 0, 1, 3), 0, -7), ((0, -1, 1, 0, 0, 0, 0, 1), 0, 0), ((0, 0, 1, 1, 0, 0, 1, 1), 1, 0),
    ((0, 0, 2, 0, 0, 0, 0, 0), 2, 0), ((0, 0, 0, 2, 0, 0, 0, 2), 3, 0)])
def test_pad(pads, mode, value):
    x = RNG.integers(-128, 128, (1, 2, 3, 4)).astype(np.int8)
    kept = x[tuple(slice(-min(b, 0), d + min(e, 0)) for d, b, e in zip(x.shape, pads[:4], pads[4:]))]
    width = [(max(b, 0), max(e, 0)) for b, e in zip(pads[:4], pads[4:])]
    names = ("constant", "reflect", "edge", "wrap")
    expected = (np.pad(kept, width, constant_values=value) if mode == 0 else np.pad(kept, width, mode=names[mode]))
    y, _ = one_layer("Pad", [x], dict(pads=pads, mode=mode, value=value), "i8", expected.shape)
    np.testing.assert_array_equal(y, expected)


def test_quantize_and_dequantize_linear():
    """docs/numerics.md §9: float32 division, round half to even, saturate; float32 product."""
    x = np.array([[-1000.0, -0.25, 0.25, 0.75, 1.25, 2.5, 3.49, 1000.0]], np.float32)
    scale, zero = np.float32(0.5), np.int8(1)
    expected = np.clip(np.rint(x / scale).astype(np.float64) + 1, -128, 127)
    assert list(expected[0]) == [-128, 1, 1, 3, 3, 6, 8, 127]  # ±0.5, 1.5 and 2.5 round to even
    y, _ = one_layer("QuantizeLinear", [x, ("const", np.array(scale)), ("const", np.array(zero))],
                     dict(dtype=DTYPE_CODES["i8"]), "i8", x.shape)
    np.testing.assert_array_equal(y, expected)
    q = np.arange(-128, 128, dtype=np.int8).reshape(1, 256)
    r, _ = one_layer("DequantizeLinear", [q, ("const", np.array(np.float32(0.1))), ("const", np.array(zero))],
                     {}, "f32", q.shape)
    assert r.dtype == np.float32
    np.testing.assert_array_equal(r, (q.astype(np.int64) - 1).astype(np.float32) * np.float32(0.1))


def test_per_axis_quantize():
    x = RNG.standard_normal((1, 3, 4)).astype(np.float32)
    scale = np.array([0.01, 0.02, 0.05], np.float32)
    expected = np.clip(np.rint(x / scale.reshape(1, 3, 1)), -128, 127)
    y, _ = one_layer("QuantizeLinear", [x, ("const", scale)], dict(axis=1, dtype=1), "i8", x.shape)
    np.testing.assert_array_equal(y, expected)


def test_pad_mode_codes_match_the_compiler():
    """Pad's `mode` param is its index in the IR's PAD_MODES (the lowering's encoding)."""
    from nnc.backends.azsim.kernels import PAD_MODES
    from nnc.ops.shape import PAD_MODES as IR_PAD_MODES

    assert PAD_MODES == IR_PAD_MODES
