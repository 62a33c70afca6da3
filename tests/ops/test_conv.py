"""Conv and ConvTranspose against onnx's reference evaluator: random geometry,
groups, depthwise, channels-last data, the fused clamp and the ONNX lowering of
auto_pad, output_shape and output_padding."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from nnc.errors import ShapeError, UnsupportedError
from nnc.ir import TensorType
from nnc.ops import get_op
from nnc.ops.conv import ConvAttrs
from op_oracles import run_nnc, run_onnx, run_ort

TOL = dict(rtol=1e-5, atol=1e-5)


def _data(seed: int, *shapes, dtype=np.float32):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(dtype) for s in shapes]


@st.composite
def geometry(draw, nd=None):
    nd = nd or draw(st.integers(1, 2))
    dims = lambda lo, hi: draw(st.tuples(*[st.integers(lo, hi)] * nd))  # noqa: E731
    return dict(kernel_shape=dims(1, 3), strides=dims(1, 3), dilations=dims(1, 2),
                pads=draw(st.tuples(*[st.integers(0, 2)] * (2 * nd))))


@st.composite
def conv_cases(draw):
    g = draw(geometry())
    group = draw(st.sampled_from([1, 2, 3]))
    cin, cout = group * draw(st.integers(1, 3)), group * draw(st.integers(1, 3))
    spans = [(k - 1) * d + 1 for k, d in zip(g["kernel_shape"], g["dilations"])]
    sizes = tuple(s + draw(st.integers(0, 4)) for s in spans)
    x_shape = (draw(st.integers(1, 2)), cin, *sizes)
    w_shape = (cout, cin // group, *g["kernel_shape"])
    return dict(g, group=group), x_shape, w_shape, draw(st.booleans()), draw(st.integers(0, 2**16))


@settings(max_examples=60, deadline=None)
@given(conv_cases(), st.booleans())
def test_conv_matches_reference(case, channels_last):
    attrs, x_shape, w_shape, with_bias, seed = case
    x, w, b = _data(seed, x_shape, w_shape, (w_shape[0],))
    inputs = [x, w, b] if with_bias else [x, w]
    got = run_nnc("Conv", inputs, attrs, channels_last=channels_last)[0]
    np.testing.assert_allclose(got, run_onnx("Conv", inputs, attrs)[0], **TOL)


@pytest.mark.parametrize("multiplier", [1, 2])
def test_depthwise_conv(multiplier):
    x, w, b = _data(1, (2, 4, 9, 7), (4 * multiplier, 1, 3, 3), (4 * multiplier,))
    attrs = dict(kernel_shape=[3, 3], strides=[2, 1], pads=[1, 0, 2, 1], group=4)
    np.testing.assert_allclose(run_nnc("Conv", [x, w, b], attrs)[0],
                               run_onnx("Conv", [x, w, b], attrs)[0], **TOL)


@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "SAME_LOWER", "VALID"])
@pytest.mark.parametrize("strides", [[1, 1], [2, 3]])
def test_conv_auto_pad(auto_pad, strides):
    x, w = _data(2, (1, 2, 8, 7), (3, 2, 3, 2))
    attrs = dict(auto_pad=auto_pad, strides=strides, dilations=[1, 2])
    np.testing.assert_allclose(run_nnc("Conv", [x, w], attrs)[0], run_onnx("Conv", [x, w], attrs)[0], **TOL)


def test_conv_3d_and_f64():
    x, w, b = _data(3, (1, 2, 5, 6, 4), (4, 1, 2, 3, 2), (4,), dtype=np.float64)
    attrs = dict(kernel_shape=[2, 3, 2], strides=[1, 2, 1], pads=[0, 1, 1, 1, 0, 0], group=2)
    got = run_nnc("Conv", [x, w, b], attrs)[0]
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, run_onnx("Conv", [x, w, b], attrs)[0], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("op", ["Conv", "ConvTranspose"])
@pytest.mark.parametrize("bounds", [(0.0, None), (0.0, 6.0), (None, -0.25)])
def test_fused_clamp(op, bounds):
    x, w, b = _data(4, (1, 2, 6, 5), (2, 2, 3, 3), (2,))
    lo, hi = bounds
    got = run_nnc(op, [x, w, b], {}, channels_last=True, act_min=lo, act_max=hi)[0]
    expected = np.clip(run_onnx(op, [x, w, b])[0], lo, hi)
    np.testing.assert_allclose(got, expected, **TOL)


# -- ConvTranspose ------------------------------------------------------------------
def _transpose_reference(inputs, attrs, group):
    """onnx's ConvTranspose, one call per group: the reference mishandles group > 1
    when a group has several output channels or there is a bias."""
    parts = [np.split(a, group, axis=0 if i else 1) for i, a in enumerate(inputs)]
    return np.concatenate([run_onnx("ConvTranspose", list(p), attrs)[0] for p in zip(*parts)], axis=1)


@st.composite
def transpose_cases(draw):
    g = draw(geometry())
    group = draw(st.sampled_from([1, 2, 3]))
    cin, cout = group * draw(st.integers(1, 3)), group * draw(st.integers(1, 3))
    sizes = draw(st.tuples(*[st.integers(1, 5)] * len(g["kernel_shape"])))
    output_padding = [draw(st.integers(0, s - 1)) for s in g["strides"]]  # as onnxruntime allows
    x_shape = (draw(st.integers(1, 2)), cin, *sizes)
    w_shape = (cin, cout // group, *g["kernel_shape"])
    return dict(g, output_padding=output_padding), group, x_shape, w_shape, draw(st.integers(0, 2**16))


@settings(max_examples=60, deadline=None)
@given(transpose_cases(), st.booleans(), st.booleans())
def test_conv_transpose_matches_reference(case, with_bias, channels_last):
    attrs, group, x_shape, w_shape, seed = case
    nd = len(x_shape) - 2
    full = [(i - 1) * s + (k - 1) * d + 1 for i, s, k, d
            in zip(x_shape[2:], attrs["strides"], attrs["kernel_shape"], attrs["dilations"])]
    assume(all(f + p - b - e >= 1 for f, p, b, e
               in zip(full, attrs["output_padding"], attrs["pads"][:nd], attrs["pads"][nd:])))
    x, w, b = _data(seed, x_shape, w_shape, (w_shape[1] * group,))
    inputs = [x, w, b] if with_bias else [x, w]
    got = run_nnc("ConvTranspose", inputs, dict(attrs, group=group), channels_last=channels_last)[0]
    np.testing.assert_allclose(got, _transpose_reference(inputs, attrs, group), **TOL)


@pytest.mark.parametrize("attrs", [
    dict(strides=[3, 2], output_shape=[10, 8]),
    dict(strides=[3, 2], output_shape=[10, 8], output_padding=[1, 1]),
    dict(strides=[3, 2], output_shape=[7, 9], pads=[0, 0, 0, 0]),
    dict(strides=[2, 2], auto_pad="SAME_UPPER"),
    dict(strides=[2, 3], auto_pad="SAME_LOWER"),
    dict(strides=[2, 1], auto_pad="VALID", output_padding=[1, 0]),
    dict(strides=[3, 2], pads=[1, 2, 0, 1], output_padding=[2, 1]),
])
def test_conv_transpose_output_geometry(attrs):
    """Against onnxruntime: the reference evaluator ignores output_shape unless
    auto_pad is SAME_*."""
    x, w, b = _data(5, (2, 1, 3, 4), (1, 2, 3, 3), (2,))
    got = run_nnc("ConvTranspose", [x, w, b], attrs)[0]
    np.testing.assert_allclose(got, run_ort("ConvTranspose", [x, w, b], attrs)[0], **TOL)


def test_conv_transpose_1d_depthwise():
    x, w = _data(6, (1, 3, 5), (3, 1, 4))
    attrs = dict(strides=[2], dilations=[2], pads=[1, 2])
    got = run_nnc("ConvTranspose", [x, w], dict(attrs, group=3))[0]
    np.testing.assert_allclose(got, _transpose_reference([x, w], attrs, 3), **TOL)


# -- shapes, errors, MACs -----------------------------------------------------------
def _conv_attrs(**kw):
    return ConvAttrs(**{**dict(kernel_shape=(3, 3), strides=(1, 1), pads=(0,) * 4, dilations=(1, 1)), **kw})


def test_macs():
    x, w = TensorType("f32", (2, 4, 8, 8)), TensorType("f32", (6, 2, 3, 3))
    attrs = _conv_attrs(group=2)
    y = get_op("Conv").infer(attrs, [x, w, None])
    assert y == [TensorType("f32", (2, 6, 6, 6))]
    assert get_op("Conv").macs(attrs, [x, w, None], y) == 2 * 6 * 36 * 2 * 9
    wt = TensorType("f32", (4, 3, 3, 3))
    yt = get_op("ConvTranspose").infer(attrs, [x, wt, None])
    assert yt == [TensorType("f32", (2, 6, 10, 10))]
    assert get_op("ConvTranspose").macs(attrs, [x, wt, None], yt) == 2 * 4 * 64 * 3 * 9


@pytest.mark.parametrize("attrs,w_shape,message", [
    (_conv_attrs(), (6, 3, 3, 3), "do not fit"),
    (_conv_attrs(group=3), (6, 4, 3, 3), "do not fit"),
    (_conv_attrs(kernel_shape=(3, 2)), (6, 4, 3, 3), "do not fit"),
    (_conv_attrs(pads=(0, -1, 0, 0)), (6, 4, 3, 3), ">= 0"),
    (_conv_attrs(strides=(1,)), (6, 4, 3, 3), "do not fit 2 spatial axes"),
    (_conv_attrs(act_min=1.0, act_max=0.0), (6, 4, 3, 3), "exceeds"),
    (_conv_attrs(kernel_shape=(9, 9)), (6, 4, 9, 9), "does not fit the padded input"),
])
def test_conv_infer_rejects(attrs, w_shape, message):
    with pytest.raises(ShapeError, match=message):
        get_op("Conv").infer(attrs, [TensorType("f32", (1, 4, 8, 8)), TensorType("f32", w_shape), None])


def test_conv_infer_rejects_bad_types():
    x = TensorType("f32", (1, 4, 8, 8))
    with pytest.raises(ShapeError, match="float"):
        get_op("Conv").infer(_conv_attrs(), [x, TensorType("f64", (2, 4, 3, 3)), None])
    with pytest.raises(ShapeError, match="bias"):
        get_op("Conv").infer(_conv_attrs(), [x, TensorType("f32", (2, 4, 3, 3)), TensorType("f32", (3,))])


def test_lowering_rejects_integer_data():
    x, w = (np.ones((1, 1, 3, 3), np.int32),) * 2
    with pytest.raises(UnsupportedError, match="float only"):
        run_nnc("Conv", [x, w])


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 3), st.integers(1, 3), st.integers(1, 3), st.booleans(), st.integers(0, 2**31))
def test_conv_by_position_sums_exactly_what_einsum_sums(nd, groups, multiplier, depthwise, seed):
    """The two ways _conv computes a correlation agree bit for bit on integer
    operands (the integer ops' case); _conv picks by kernel size and grouping."""
    from nnc.ops import conv

    rng = np.random.default_rng(seed)
    per_group = 1 if depthwise else int(rng.integers(1, 4))
    kernel = tuple(int(k) for k in rng.integers(1, 4, nd))
    strides, dilations = tuple(int(s) for s in rng.integers(1, 3, nd)), tuple(int(d) for d in rng.integers(1, 3, nd))
    spatial = tuple(int(rng.integers((k - 1) * d + 1, (k - 1) * d + 6)) for k, d in zip(kernel, dilations))
    x = rng.integers(-128, 128, (2, groups * per_group, *spatial)).astype(np.float64)
    w = rng.integers(-127, 128, (groups * multiplier, per_group, *kernel)).astype(np.float64)
    attrs = ConvAttrs(kernel_shape=kernel, strides=strides, dilations=dilations, group=groups, pads=(0,) * (2 * nd))
    out = [(i - (k - 1) * d - 1) // s + 1 for i, k, s, d in zip(spatial, kernel, strides, dilations)]
    cols = conv.window_view(x, kernel, strides, dilations, out).reshape(2, groups, per_group, *out, *kernel)
    o, k = conv._OUT_AXES[:nd], conv._KERNEL_AXES[:nd]
    by_einsum = np.einsum(f"ngc{o}{k},gmc{k}->ngm{o}", cols, w.reshape(groups, multiplier, per_group, *kernel))
    np.testing.assert_array_equal(conv._conv_by_position(x, w, attrs, out), by_einsum.reshape(2, -1, *out))
