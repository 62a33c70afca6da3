"""Reshape (and the Flatten/Squeeze/Unsqueeze lowerings), Transpose, Concat, Pad,
Identity and Dropout against onnx's reference evaluator (and onnxruntime where the
reference lacks a feature, such as negative pads)."""

from __future__ import annotations

import itertools

import numpy as np
import onnxruntime as ort
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import helper
from onnx.reference import ReferenceEvaluator

from nnc import dtypes
from nnc.errors import ShapeError, UnsupportedError
from nnc.ir import TensorType
from nnc.ops import OnnxNode, get_op, lowering
from nnc.ops.shape import PadAttrs, ReshapeAttrs, TransposeAttrs

OPSET = 21  # newest opset onnxruntime runs at the installed onnx's IR version 10


# -- one ONNX node through nnc and through the oracles -----------------------------
def _type(a: np.ndarray) -> TensorType:
    return TensorType(dtypes.from_numpy(a.dtype), a.shape)


def run_nnc(op_type, inputs, attrs=None, opset=OPSET, n_outputs=1, runtime=(0,)):
    """Lower one ONNX node (inputs not in `runtime` are constants; None = omitted),
    check `infer` against what `evaluate` returns, and return the outputs."""
    names = ["" if a is None else f"in{i}" for i, a in enumerate(inputs)]
    values = dict(zip(names, inputs))
    constants = {name: a for i, (name, a) in enumerate(zip(names, inputs)) if name and i not in runtime}
    node = OnnxNode("node", op_type, names, [f"out{i}" for i in range(n_outputs)], dict(attrs or {}), opset,
                    constants, [None if a is None else _type(a) for a in inputs])
    lowered = lowering(op_type)(node)
    op = get_op(lowered.op)
    args = [values[name] if name else None for name in (names if lowered.inputs is None else lowered.inputs)]
    expected_types = op.infer(lowered.attrs, [None if a is None else _type(a) for a in args])
    got = op.evaluate(lowered.attrs, args)
    assert [_type(g) for g in got] == expected_types
    return got


def onnx_model(op_type, inputs, attrs=None, opset=OPSET, n_outputs=1):
    names = ["" if a is None else f"in{i}" for i, a in enumerate(inputs)]
    node = helper.make_node(op_type, names, [f"out{i}" for i in range(n_outputs)], **(attrs or {}))
    graph = helper.make_graph(
        [node], "g",
        [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
         for n, a in zip(names, inputs) if n],
        [helper.make_empty_tensor_value_info(f"out{i}") for i in range(n_outputs)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=10)
    return model, {n: a for n, a in zip(names, inputs) if n}


def run_reference(op_type, inputs, attrs=None, opset=OPSET):
    model, feeds = onnx_model(op_type, inputs, attrs, opset)
    return ReferenceEvaluator(model).run(None, feeds)


def run_ort(op_type, inputs, attrs=None, opset=OPSET):
    model, feeds = onnx_model(op_type, inputs, attrs, opset)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def assert_matches(op_type, inputs, attrs=None, opset=OPSET, oracle=run_reference):
    got = run_nnc(op_type, inputs, attrs, opset)
    want = oracle(op_type, inputs, attrs, opset)
    assert got[0].dtype == want[0].dtype
    np.testing.assert_array_equal(got[0], want[0])


def i64(*values):
    return np.array(values, dtype=np.int64)


RNG = np.random.default_rng(0)
X234 = RNG.standard_normal((2, 3, 4)).astype(np.float32)


# -- Reshape ---------------------------------------------------------------------
@pytest.mark.parametrize("target", [(4, 2, 3), (2, 12), (24,), (-1,), (2, -1, 2), (0, 0, 4), (0, -1), (2, 0, 2, -1)])
def test_reshape_matches_onnx(target):
    assert_matches("Reshape", [X234, i64(*target)])


def test_reshape_allowzero_keeps_literal_zero():
    x = np.zeros((0, 3, 4), np.float32)
    assert run_nnc("Reshape", [x, i64(3, 4, 0)], {"allowzero": 1})[0].shape == (3, 4, 0)


@pytest.mark.parametrize("target,allowzero", [((-1, -1), 0), ((0, -1), 1), ((5, -1), 0), ((2, 3, 4, 0), 0),
                                              ((-2, 12), 0)])
def test_reshape_refuses_invalid_targets(target, allowzero):
    with pytest.raises(ShapeError):
        run_nnc("Reshape", [X234, i64(*target)], {"allowzero": allowzero})


def test_reshape_needs_constant_shape():
    with pytest.raises(UnsupportedError, match="must be a constant"):
        run_nnc("Reshape", [X234, i64(24)], runtime=(0, 1))


def test_reshape_infer_checks_element_count():
    with pytest.raises(ShapeError):
        get_op("Reshape").infer(ReshapeAttrs((5, 5)), [_type(X234)])


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 4), min_size=0, max_size=4), st.data())
def test_reshape_random_shapes(shape, data):
    x = np.arange(np.prod(shape), dtype=np.int32).reshape(shape)
    target = list(data.draw(st.permutations(list(shape) + [1])))
    if target:
        target[data.draw(st.integers(0, len(target) - 1))] = -1
    assert_matches("Reshape", [x, i64(*target)])


# -- Flatten, Squeeze, Unsqueeze ----------------------------------------------------
@pytest.mark.parametrize("opset", [11, 13, OPSET])
@pytest.mark.parametrize("axis", range(-3, 4))
def test_flatten_matches_onnx(axis, opset):
    assert_matches("Flatten", [X234], {"axis": axis}, opset)


X1315 = RNG.standard_normal((1, 3, 1, 5)).astype(np.float32)


# onnx's reference evaluator (un)squeezes axes one at a time, which goes wrong for
# unsorted or mixed-sign axes; onnxruntime is the oracle here.
@pytest.mark.parametrize("axes", [None, [0], [-2], [0, 2], [2, -4]])
def test_squeeze_matches_onnx(axes):
    assert_matches("Squeeze", [X1315], {} if axes is None else {"axes": axes}, opset=11, oracle=run_ort)
    assert_matches("Squeeze", [X1315] + ([] if axes is None else [i64(*axes)]), oracle=run_ort)


@pytest.mark.parametrize("axes", [[1], [0, 4], [2, -2]])
def test_squeeze_refuses_bad_axes(axes):
    with pytest.raises(ShapeError):
        run_nnc("Squeeze", [X1315, i64(*axes)])


@pytest.mark.parametrize("axes", [[0], [3], [-1], [0, 4], [5, 1, 0], [-1, -5, 2]])
def test_unsqueeze_matches_onnx(axes):
    assert_matches("Unsqueeze", [X234], {"axes": axes}, opset=11, oracle=run_ort)
    assert_matches("Unsqueeze", [X234, i64(*axes)], oracle=run_ort)


@pytest.mark.parametrize("axes", [[4], [0, 0], [-5]])
def test_unsqueeze_refuses_bad_axes(axes):
    with pytest.raises(ShapeError):
        run_nnc("Unsqueeze", [X234, i64(*axes)])


# -- Transpose -----------------------------------------------------------------------
@pytest.mark.parametrize("perm", [None, *itertools.permutations(range(3))])
def test_transpose_matches_onnx(perm):
    assert_matches("Transpose", [X234], {} if perm is None else {"perm": list(perm)})


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(1, 3), min_size=1, max_size=5), st.data())
def test_transpose_random_ranks(shape, data):
    perm = data.draw(st.permutations(range(len(shape))))
    x = np.arange(np.prod(shape), dtype=np.int64).reshape(shape)
    assert_matches("Transpose", [x], {"perm": list(perm)})


def test_transpose_infer_refuses_non_permutation():
    with pytest.raises(ShapeError, match="permutation"):
        get_op("Transpose").infer(TransposeAttrs((0, 0, 1)), [_type(X234)])


# -- Concat --------------------------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 3), min_size=1, max_size=4), st.data(),
       st.sampled_from([np.float32, np.int8, np.uint8, np.int64, np.bool_]))
def test_concat_random_shapes(shape, data, dtype):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    parts = []
    for _ in range(data.draw(st.integers(1, 4))):
        part_shape = list(shape)
        part_shape[axis] = data.draw(st.integers(0, 3))
        parts.append(RNG.integers(0, 2, part_shape).astype(dtype))
    got = run_nnc("Concat", parts, {"axis": axis}, runtime=range(len(parts)))
    np.testing.assert_array_equal(got[0], run_reference("Concat", parts, {"axis": axis})[0])


@pytest.mark.parametrize("other", [np.zeros((2, 4, 4), np.float32), np.zeros((2, 3), np.float32),
                                   np.zeros((2, 3, 4), np.int32)])
def test_concat_infer_refuses_mismatch(other):
    with pytest.raises(ShapeError):
        run_nnc("Concat", [X234, other], {"axis": 0}, runtime=(0, 1))


# -- Pad -----------------------------------------------------------------------------
X1345 = RNG.integers(-50, 50, (1, 3, 4, 5)).astype(np.int32)
PADS = i64(0, 0, 1, 3, 0, 0, 2, 4)


@pytest.mark.parametrize("opset", [11, 13, 18, OPSET])
@pytest.mark.parametrize("mode", ["constant", "reflect", "edge"])
def test_pad_matches_onnx(mode, opset):
    assert_matches("Pad", [X1345, PADS], {"mode": mode}, opset)
    assert_matches("Pad", [X1345.astype(np.float32), PADS, np.array(1.5, np.float32)], {"mode": mode}, opset)


def test_pad_wrap_and_axes_match_onnx():
    assert_matches("Pad", [X1345, PADS], {"mode": "wrap"}, opset=19)
    assert_matches("Pad", [X1345, i64(2, 1, 3, 2), np.array(7, np.int32), i64(-1, 1)], opset=18)
    assert_matches("Pad", [X1345, i64(1, 2), None, i64(2)], {"mode": "reflect"}, opset=18)


@pytest.mark.parametrize("mode", ["constant", "reflect", "edge", "wrap"])
@pytest.mark.parametrize("pads", [(0, 0, -1, 1, 0, 0, 2, -2), (0, -1, -2, -1, 0, 0, 1, 1)])
def test_negative_pads_crop_first_like_onnxruntime(mode, pads):
    assert_matches("Pad", [X1345.astype(np.float32), i64(*pads)], {"mode": mode}, oracle=run_ort)


@pytest.mark.parametrize("mode,pads", [("reflect", (0, 0, 0, 5, 0, 0, 0, 0)), ("reflect", (0, 0, 0, 2, 0, 0, 0, -3)),
                                       ("constant", (0, 0, 0, -6, 0, 0, 0, 0)), ("edge", (0, 0, 0, 1, 0, 0, 0, -5)),
                                       ("wrap", (0, 0, 0, -5, 0, 0, 0, 1)), ("constant", (0, 0, 0, 0))])
def test_pad_infer_refuses_impossible_pads(mode, pads):
    with pytest.raises(ShapeError):
        get_op("Pad").infer(PadAttrs(pads, mode), [_type(X1345)])


def test_pad_needs_constant_pads():
    with pytest.raises(UnsupportedError, match="pads must be a constant"):
        run_nnc("Pad", [X1345, PADS], runtime=(0, 1))


# -- Identity and Dropout --------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int8, np.uint8, np.int16, np.int32, np.int64, np.bool_])
def test_identity_forwards_any_type(dtype):
    x = RNG.integers(0, 2, (2, 3)).astype(dtype)
    assert_matches("Identity", [x])


def test_dropout_in_inference_forwards_input():
    assert_matches("Dropout", [X234], {"ratio": 0.3}, opset=11)
    assert_matches("Dropout", [X234, np.array(0.3, np.float32)])
    assert_matches("Dropout", [X234, np.array(0.3, np.float32), np.array(False)])


def test_dropout_refuses_training_and_mask():
    ratio = np.array(0.3, np.float32)
    with pytest.raises(UnsupportedError, match="training mode"):
        run_nnc("Dropout", [X234, ratio, np.array(True)])
    with pytest.raises(UnsupportedError, match="training_mode must be a constant"):
        run_nnc("Dropout", [X234, ratio, np.array(False)], runtime=(0, 2))
    with pytest.raises(UnsupportedError, match="output #1"):
        run_nnc("Dropout", [X234], n_outputs=2)
