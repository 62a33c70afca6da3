"""QuantizeLinear and DequantizeLinear against onnx's reference evaluator and
onnxruntime, bit for bit, including exact rounding ties and saturation."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator

from nnc import dtypes
from nnc.errors import ShapeError, UnsupportedError
from nnc.ir import TensorType
from nnc.ops import OnnxNode, get_op, lowering
from nnc.ops.quantize import DequantizeAttrs, QuantizeAttrs

OPSET = 21  # newest opset onnxruntime runs at the installed onnx's IR version 10
RNG = np.random.default_rng(0)
NUMPY = {"u8": np.uint8, "i8": np.int8, "i16": np.int16, "i32": np.int32}


def _type(a: np.ndarray) -> TensorType:
    return TensorType(dtypes.from_numpy(a.dtype), a.shape)


def run_nnc(op_type, inputs, attrs=None, opset=OPSET, constant=(1, 2)):
    """Lower one node (inputs at `constant` indices are constants; None = omitted),
    check `infer` against what `evaluate` returns and return the output."""
    names = ["" if a is None else f"in{i}" for i, a in enumerate(inputs)]
    constants = {name: a for i, (name, a) in enumerate(zip(names, inputs)) if name and i in constant}
    node = OnnxNode("node", op_type, names, ["y"], dict(attrs or {}), opset, constants,
                    [None if a is None else _type(a) for a in inputs])
    lowered = lowering(op_type)(node)
    assert lowered.inputs is None
    op = get_op(lowered.op)
    out_type = op.infer(lowered.attrs, node.input_types)
    got = op.evaluate(lowered.attrs, inputs)
    assert [_type(got[0])] == out_type
    return got[0]


def onnx_model(op_type, inputs, attrs, opset):
    names = ["" if a is None else f"in{i}" for i, a in enumerate(inputs)]
    node = helper.make_node(op_type, names, ["y"], **(attrs or {}))
    graph = helper.make_graph(
        [node], "g",
        [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
         for n, a in zip(names, inputs) if n],
        [helper.make_empty_tensor_value_info("y")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=10)
    return model, {n: a for n, a in zip(names, inputs) if n}


def run_reference(op_type, inputs, attrs=None, opset=OPSET):
    model, feeds = onnx_model(op_type, inputs, attrs, opset)
    return ReferenceEvaluator(model).run(None, feeds)[0]


def run_ort(op_type, inputs, attrs=None, opset=OPSET):
    model, feeds = onnx_model(op_type, inputs, attrs, opset)
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)[0]


def assert_exact(op_type, inputs, attrs=None, opset=OPSET, oracles=(run_reference, run_ort)):
    got = run_nnc(op_type, inputs, attrs, opset)
    for oracle in oracles:
        want = oracle(op_type, inputs, attrs, opset)
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(got, want, err_msg=oracle.__name__)


def f32(*values):
    return np.array(values, np.float32)


def ties(scale: float, lo: int, hi: int) -> np.ndarray:
    """Every x = (k + 0.5) * scale and k * scale for k in [lo, hi]: exact halves
    when `scale` is a power of two."""
    k = np.arange(lo, hi + 1, dtype=np.float32)
    return np.concatenate([k * np.float32(scale), (k + np.float32(0.5)) * np.float32(scale)])


# -- QuantizeLinear ------------------------------------------------------------------
@pytest.mark.parametrize("dtype,zero_point", [("u8", 128), ("u8", 0), ("i8", -3), ("i8", 0), ("i16", 1000)])
@pytest.mark.parametrize("scale_shape", [(), (1,)])
def test_quantize_per_tensor_rounds_half_to_even_and_saturates(dtype, zero_point, scale_shape):
    lo, hi = dtypes.integer_range(dtype)
    x = np.concatenate([ties(0.25, lo - zero_point - 3, min(hi - zero_point + 3, lo - zero_point + 600)),
                        f32(3.3, -7.1, 1e6, -1e6)])
    scale, zp = np.full(scale_shape, 0.25, np.float32), np.full(scale_shape, zero_point, NUMPY[dtype])
    assert_exact("QuantizeLinear", [x, scale, zp])
    # onnx's reference casts x / scale to int32 before saturating, so it wraps around
    # for huge inputs; onnxruntime saturates them
    assert_exact("QuantizeLinear", [f32(np.inf, -np.inf, 1e30, -1e30), scale, zp], oracles=(run_ort,))


def test_quantize_without_zero_point_gives_u8_or_output_dtype():
    x = ties(0.5, -5, 300)
    assert run_nnc("QuantizeLinear", [x, f32(0.5)]).dtype == np.uint8
    assert_exact("QuantizeLinear", [x, f32(0.5)])
    assert_exact("QuantizeLinear", [x, f32(0.5)], {"output_dtype": TensorProto.INT8}, oracles=(run_reference,))


@pytest.mark.parametrize("opset", [13, OPSET])
@pytest.mark.parametrize("axis", [0, 1, 3, -1, -4, None])
@pytest.mark.parametrize("dtype", ["u8", "i8"])
def test_quantize_per_axis(axis, dtype, opset):
    x = (RNG.standard_normal((2, 3, 4, 5)) * 20).astype(np.float32)
    channels = x.shape[1 if axis is None else axis]
    scale = RNG.uniform(0.01, 0.5, channels).astype(np.float32)
    lo, hi = dtypes.integer_range(dtype)
    zero_point = RNG.integers(lo, hi, channels).astype(NUMPY[dtype])
    assert_exact("QuantizeLinear", [x, scale, zero_point], {} if axis is None else {"axis": axis}, opset)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 4), min_size=1, max_size=4), st.data(), st.sampled_from(["u8", "i8", "i16"]))
def test_quantize_random_matches_onnxruntime(shape, data, dtype):
    per_axis = data.draw(st.booleans())
    axis = data.draw(st.integers(0, len(shape) - 1))
    channels = shape[axis] if per_axis else 1
    scale = np.array(data.draw(st.lists(st.floats(2.0**-14, 8.0, width=32), min_size=channels, max_size=channels)),
                     np.float32).reshape(channels if per_axis else ())
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    lo, hi = dtypes.integer_range(dtype)
    zero_point = rng.integers(lo, hi + 1, scale.shape).astype(NUMPY[dtype])
    x = (np.round(rng.standard_normal(shape) * 200) / 2 * scale.max()).astype(np.float32)  # many near-ties
    assert_exact("QuantizeLinear", [x, scale, zero_point], {"axis": axis}, oracles=(run_ort,))


# -- DequantizeLinear ----------------------------------------------------------------
@pytest.mark.parametrize("dtype,zero_point", [("u8", 128), ("i8", -3), ("i16", -1000), ("i32", 0), ("i32", None)])
def test_dequantize_per_tensor(dtype, zero_point):
    lo, hi = dtypes.integer_range(dtype)
    x = np.concatenate([np.arange(max(lo, -300), min(hi, 300)), [lo, hi, hi - 1]]).astype(NUMPY[dtype])
    zp = None if zero_point is None else np.array(zero_point, NUMPY[dtype])
    assert_exact("DequantizeLinear", [x, f32(0.0371).reshape(()), zp])


@pytest.mark.parametrize("axis", [0, 1, -1, None])
@pytest.mark.parametrize("dtype", ["u8", "i8"])
def test_dequantize_per_channel_weights(axis, dtype):
    lo, hi = dtypes.integer_range(dtype)
    w = RNG.integers(lo, hi + 1, (8, 3, 3, 3)).astype(NUMPY[dtype])
    channels = w.shape[1 if axis is None else axis]
    scale = RNG.uniform(1e-3, 0.1, channels).astype(np.float32)
    zero_point = (np.zeros if dtype == "i8" else np.ones)(channels, NUMPY[dtype])
    assert_exact("DequantizeLinear", [w, scale, zero_point], {} if axis is None else {"axis": axis})


def test_dequantize_is_per_tensor_when_scale_has_one_value():
    x = np.arange(12, dtype=np.uint8).reshape(3, 4)
    assert_exact("DequantizeLinear", [x, f32(0.5), np.array([3], np.uint8)], {"axis": 1})


def test_quantize_dequantize_round_trip_is_exact_on_the_grid():
    scale, zero_point = f32(0.05, 0.2, 0.125), np.array([-4, 0, 9], np.int8)
    q = RNG.integers(-128, 128, (3, 10)).astype(np.int8)
    r = run_nnc("DequantizeLinear", [q, scale, zero_point], {"axis": 0})
    clipped = np.clip(q.astype(np.int64), -128, 127)
    np.testing.assert_array_equal(run_nnc("QuantizeLinear", [r, scale, zero_point], {"axis": 0}), clipped)


# -- refusals -------------------------------------------------------------------------
def test_refuses_blocked_quantization():
    x, scale = np.zeros((3, 4), np.float32), np.ones((3, 2), np.float32)
    with pytest.raises(UnsupportedError, match="blocked"):
        run_nnc("QuantizeLinear", [x, scale, np.zeros((3, 2), np.uint8)], {"axis": 1, "block_size": 2})
    with pytest.raises(UnsupportedError, match="blocked"):
        run_nnc("DequantizeLinear", [x.astype(np.uint8), scale], {"axis": 1, "block_size": 2})


@pytest.mark.parametrize("inputs,attrs,match", [
    ([np.zeros(4, np.int32), f32(1)], {}, "i32 input"),
    ([np.zeros(4, np.float32), f32(1), np.array(0, np.int32)], {}, "quantizing to i32"),
    ([np.zeros(4, np.float32), f32(1)], {"output_dtype": TensorProto.UINT16}, "UINT16"),
    ([np.zeros(4, np.float32), f32(1)], {"precision": TensorProto.DOUBLE}, "precision"),
    ([np.zeros(4, np.float32), np.ones((), np.float64)], {}, "f64 scale"),
])
def test_quantize_refuses_what_it_cannot_honour(inputs, attrs, match):
    with pytest.raises(UnsupportedError, match=match):
        run_nnc("QuantizeLinear", inputs, attrs)


def test_dequantize_refuses_float_input_and_other_outputs():
    with pytest.raises(UnsupportedError, match="f32 input"):
        run_nnc("DequantizeLinear", [np.zeros(4, np.float32), f32(1)])
    with pytest.raises(UnsupportedError, match="float32 output"):
        run_nnc("DequantizeLinear", [np.zeros(4, np.uint8), f32(1)], {"output_dtype": TensorProto.FLOAT16})


def test_scale_and_zero_point_must_be_constants():
    x = np.zeros(4, np.float32)
    with pytest.raises(UnsupportedError, match="scale must be a constant"):
        run_nnc("QuantizeLinear", [x, f32(1), np.array(0, np.uint8)], constant=(2,))
    with pytest.raises(UnsupportedError, match="zero point must be a constant"):
        run_nnc("QuantizeLinear", [x, f32(1), np.array(0, np.uint8)], constant=(1,))


def test_lowering_refuses_inconsistent_models():
    x = np.zeros((2, 3), np.float32)
    with pytest.raises(ShapeError, match="output_dtype"):
        run_nnc("QuantizeLinear", [x, f32(1), np.array(0, np.uint8)], {"output_dtype": TensorProto.INT8})
    with pytest.raises(ShapeError, match="out of range"):
        run_nnc("QuantizeLinear", [x, f32(1, 2, 3)], {"axis": 2})
    with pytest.raises(ShapeError, match="neither"):
        run_nnc("DequantizeLinear", [x.astype(np.uint8), np.ones((2, 3), np.float32)])


@pytest.mark.parametrize("op,attrs,types,match", [
    ("QuantizeLinear", QuantizeAttrs(1, "u8"), [("f32", (2, 3)), ("f32", (2,))], "does not fit"),
    ("QuantizeLinear", QuantizeAttrs(None, "u8"), [("f32", (2, 3)), ("f32", (3,))], "per-tensor scale"),
    ("QuantizeLinear", QuantizeAttrs(None, "i8"), [("f32", (2, 3)), ("f32", ()), ("u8", ())], "zero point must be i8"),
    ("QuantizeLinear", QuantizeAttrs(None, "i32"), [("f32", (2, 3)), ("f32", ())], "cannot quantize to i32"),
    ("DequantizeLinear", DequantizeAttrs(0), [("u8", (2, 3)), ("f32", (2,)), ("u8", (3,))], "zero point of shape"),
    ("DequantizeLinear", DequantizeAttrs(None), [("i64", (2, 3)), ("f32", ())], "cannot dequantize i64"),
    ("DequantizeLinear", DequantizeAttrs(2), [("i8", (2, 3)), ("f32", (2,))], "out of range"),
])
def test_infer_validates_parameters(op, attrs, types, match):
    with pytest.raises(ShapeError, match=match):
        get_op(op).infer(attrs, [TensorType(*t) for t in types])


def test_scale_and_zero_point_are_not_parameters():
    assert get_op("QuantizeLinear").param_inputs == (0,)
    assert get_op("DequantizeLinear").param_inputs == (0,)
