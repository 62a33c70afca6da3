"""MaxPool, AveragePool, GlobalAveragePool and GlobalMaxPool against onnx's
reference evaluator: random windows (strides, dilations, asymmetric pads,
ceil_mode, count_include_pad), channels-last data, integer MaxPool, auto_pad
and the refusal of MaxPool's Indices output."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nnc.errors import ShapeError, UnsupportedError
from nnc.ir import TensorType
from nnc.ops import get_op
from nnc.ops.pool import pooled_size
from op_oracles import run_nnc, run_onnx, run_ort

TOL = dict(rtol=1e-5, atol=1e-6)


def _data(seed: int, shape, dtype=np.float32):
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)


@st.composite
def pool_cases(draw, strides=(1, 3)):
    """Windows that always overlap the input (pads smaller than the kernel, as
    ONNX requires), on inputs at least one window long."""
    nd = draw(st.integers(1, 2))
    kernel = draw(st.tuples(*[st.integers(1, 3)] * nd))
    dilations = draw(st.tuples(*[st.integers(1, 2)] * nd))
    attrs = dict(kernel_shape=kernel, strides=draw(st.tuples(*[st.integers(*strides)] * nd)),
                 dilations=dilations, ceil_mode=int(draw(st.booleans())),
                 pads=[draw(st.integers(0, k - 1)) for k in kernel * 2])
    sizes = [(k - 1) * d + 1 + draw(st.integers(0, 4)) for k, d in zip(kernel, dilations)]
    return attrs, (draw(st.integers(1, 2)), draw(st.integers(1, 3)), *sizes), draw(st.integers(0, 2**16))


# The reference evaluator is wrong in two corners, so those draw from onnxruntime:
# MaxPool with unit strides and dilations and nonzero pads (its generic pooling
# path misplaces or drops windows), and AveragePool whose ceil_mode windows reach
# two or more positions past the end pad (it moves half of that reach to the
# begin, shifting every window), which needs a stride of 3 or more.
@settings(max_examples=60, deadline=None)
@given(pool_cases(strides=(2, 3)), st.booleans())
def test_max_pool_matches_reference(case, channels_last):
    attrs, shape, seed = case
    x = _data(seed, shape)
    got = run_nnc("MaxPool", [x], attrs, channels_last=channels_last)[0]
    np.testing.assert_array_equal(got, run_onnx("MaxPool", [x], attrs)[0])


@settings(max_examples=60, deadline=None)
@given(pool_cases(strides=(1, 2)), st.booleans(), st.booleans())
def test_average_pool_matches_reference(case, count_include_pad, channels_last):
    attrs, shape, seed = case
    attrs = dict(attrs, count_include_pad=int(count_include_pad))
    x = _data(seed, shape)
    got = run_nnc("AveragePool", [x], attrs, channels_last=channels_last)[0]
    np.testing.assert_allclose(got, run_onnx("AveragePool", [x], attrs)[0], **TOL)


@settings(max_examples=60, deadline=None)
@given(pool_cases(), st.sampled_from([None, 0, 1]))
def test_pool_matches_onnxruntime(case, count_include_pad):
    """None: MaxPool, else AveragePool with that count_include_pad."""
    attrs, shape, seed = case
    op = "MaxPool" if count_include_pad is None else "AveragePool"
    attrs = attrs if count_include_pad is None else dict(attrs, count_include_pad=count_include_pad)
    x = _data(seed, shape)
    np.testing.assert_allclose(run_nnc(op, [x], attrs)[0], run_ort(op, [x], attrs)[0], **TOL)


@pytest.mark.parametrize("op", ["MaxPool", "AveragePool"])
@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "SAME_LOWER", "VALID"])
def test_auto_pad(op, auto_pad):
    """Against onnxruntime: the reference evaluator's MaxPool drops a window
    under SAME_LOWER with strides."""
    x = _data(1, (1, 2, 7, 6))
    attrs = dict(kernel_shape=[3, 2], strides=[2, 1], auto_pad=auto_pad)
    np.testing.assert_allclose(run_nnc(op, [x], attrs)[0], run_ort(op, [x], attrs)[0], **TOL)


def test_3d_windows():
    x = _data(2, (1, 2, 6, 5, 7))
    attrs = dict(kernel_shape=[2, 3, 2], strides=[2, 1, 3], pads=[1, 0, 1, 0, 2, 1], ceil_mode=1)
    for op in ("MaxPool", "AveragePool"):
        np.testing.assert_allclose(run_nnc(op, [x], attrs)[0], run_onnx(op, [x], attrs)[0], **TOL)


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.float64])
def test_max_pool_types(dtype):
    x = _data(3, (2, 3, 6, 6), dtype)
    attrs = dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=1)
    got = run_nnc("MaxPool", [x], attrs, channels_last=True)[0]
    assert got.dtype == dtype
    np.testing.assert_array_equal(got, run_onnx("MaxPool", [x], attrs)[0])


@pytest.mark.parametrize("op", ["GlobalAveragePool", "GlobalMaxPool"])
@pytest.mark.parametrize("shape", [(2, 3, 5), (1, 4, 3, 6), (1, 2, 2, 3, 4)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_global_pool(op, shape, channels_last):
    """GlobalMaxPool against onnxruntime: the reference reduces the wrong axes
    unless there are exactly two spatial axes."""
    x = _data(4, shape)
    oracle = run_onnx if op == "GlobalAveragePool" else run_ort
    got = run_nnc(op, [x], channels_last=channels_last)[0]
    np.testing.assert_allclose(got, oracle(op, [x])[0], **TOL)


def test_ceil_mode_drops_a_window_that_starts_in_the_end_pad():
    assert pooled_size(2, 1, 2, 1, 0, 0, ceil=True) == 1
    assert pooled_size(4, 3, 2, 1, 0, 0, ceil=True) == 2
    assert pooled_size(4, 3, 2, 1, 0, 0, ceil=False) == 1


def test_indices_output_is_refused():
    x = _data(5, (1, 1, 4, 4))
    with pytest.raises(UnsupportedError, match="output #1"):
        run_nnc("MaxPool", [x], dict(kernel_shape=[2, 2]), outputs=("y", "indices"))
    assert run_nnc("MaxPool", [x], dict(kernel_shape=[2, 2]), outputs=("y", ""))[0].shape == (1, 1, 3, 3)


@pytest.mark.parametrize("op,dtype,attrs,message", [
    ("AveragePool", "i8", {}, "not supported"),
    ("MaxPool", "i32", {}, "not supported"),
    ("MaxPool", "f32", dict(pads=(0, 0, -1, 0)), ">= 0"),
    ("MaxPool", "f32", dict(kernel_shape=(9, 2)), "does not fit"),
    ("MaxPool", "f32", dict(strides=(1,)), "do not fit 2 spatial axes"),
])
def test_infer_rejects(op, dtype, attrs, message):
    base = dict(kernel_shape=(2, 2), strides=(1, 1), pads=(0,) * 4, dilations=(1, 1))
    attrs_cls = get_op(op).Attrs
    with pytest.raises(ShapeError, match=message):
        get_op(op).infer(attrs_cls(**{**base, **attrs}), [TensorType(dtype, (1, 2, 5, 5))])

