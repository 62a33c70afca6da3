"""Gather, Slice, Split, Expand, Tile and Cast: nnc's reference semantics
against onnxruntime (the float truth), plus nnc's own rule for out-of-range
Gather indices (docs/numerics.md §8a), which ONNX leaves an error."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from nnc import dtypes
from nnc.errors import ShapeError, UnsupportedError
from nnc.ir import TensorType
from nnc.ops import OnnxNode, get_op, lowering
from nnc.ops.indexing import GatherAttrs, clamp_indices, resolve_slice

OPSET = 21
RNG = np.random.default_rng(3)
X = RNG.standard_normal((3, 4, 5)).astype(np.float32)


def _type(a: np.ndarray) -> TensorType:
    return TensorType(dtypes.from_numpy(a.dtype), a.shape)


def run_nnc(op_type, inputs, attrs=None, opset=OPSET, n_outputs=1):
    """One ONNX node through nnc (input 0 at run time, the rest constants);
    checks that `infer` predicts what `evaluate` returns."""
    names = [f"in{i}" for i in range(len(inputs))]
    constants = dict(zip(names[1:], inputs[1:]))
    node = OnnxNode("node", op_type, names, [f"out{i}" for i in range(n_outputs)], dict(attrs or {}), opset,
                    constants, [_type(a) for a in inputs])
    lowered = lowering(op_type)(node)
    op = get_op(lowered.op)
    by_name = dict(zip(names, inputs))
    args = [by_name[n] for n in (names if lowered.inputs is None else lowered.inputs)]
    got = op.evaluate(lowered.attrs, args)
    assert [_type(g) for g in got] == op.infer(lowered.attrs, [_type(a) for a in args])
    return got


def run_ort(op_type, inputs, attrs=None, opset=OPSET, n_outputs=1):
    names = [f"in{i}" for i in range(len(inputs))]
    node = helper.make_node(op_type, names, [f"out{i}" for i in range(n_outputs)], **(attrs or {}))
    graph = helper.make_graph(
        [node], "g",
        [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
         for n, a in zip(names, inputs)],
        [helper.make_empty_tensor_value_info(f"out{i}") for i in range(n_outputs)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=10)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, dict(zip(names, inputs)))


def assert_matches_ort(op_type, inputs, attrs=None, opset=OPSET, n_outputs=1):
    got = run_nnc(op_type, inputs, attrs, opset, n_outputs)
    want = run_ort(op_type, inputs, attrs, opset, n_outputs)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.dtype == w.dtype
        np.testing.assert_array_equal(g, w)


def i64(*values):
    return np.array(values, dtype=np.int64)


# -- Gather --------------------------------------------------------------------
@pytest.mark.parametrize("axis", [0, 1, 2, -1])
@pytest.mark.parametrize("index_type", [np.int32, np.int64])
def test_gather_matches_ort(axis, index_type):
    extent = X.shape[axis]
    indices = np.array([[0, extent - 1], [-1, -extent]], index_type)
    assert_matches_ort("Gather", [X, indices], {"axis": axis})


def test_gather_scalar_index_drops_the_axis():
    assert_matches_ort("Gather", [X, np.array(-1, np.int64)], {"axis": 1})


def test_gather_clamps_out_of_range_indices():
    table = np.arange(10, dtype=np.int8).reshape(5, 2)
    (got,) = get_op("Gather").evaluate(GatherAttrs(0), [table, i64(-6, -5, 4, 5, 99, -99)])
    np.testing.assert_array_equal(got[:, 0], [0, 0, 8, 8, 8, 0])
    np.testing.assert_array_equal(clamp_indices(i64(-1, 7), 3), [2, 2])


def test_gather_refuses_float_indices():
    with pytest.raises(ShapeError, match="indices"):
        get_op("Gather").infer(GatherAttrs(0), [_type(X), TensorType("f32", (2,))])


# -- Slice ---------------------------------------------------------------------
SLICES = [
    ((0,), (2,), (0,), (1,)),
    ((-1,), (-100,), (2,), (-1,)),  # reverse the last axis
    ((1, -3), (4, 100), (1, 2), (2, 1)),
    ((-2, 3), (-1, 0), (0, 1), (1, -2)),
    ((4,), (9223372036854775807,), (-1,), (1,)),
    ((5,), (2,), (1,), (1,)),  # empty
    ((0, 0, 0), (3, 4, 5), (0, 1, 2), (3, 3, 3)),
]


@pytest.mark.parametrize("starts,ends,axes,steps", SLICES)
def test_slice_matches_ort(starts, ends, axes, steps):
    assert_matches_ort("Slice", [X, i64(*starts), i64(*ends), i64(*axes), i64(*steps)])


def test_slice_without_axes_and_steps():
    assert_matches_ort("Slice", [X, i64(1, -2), i64(3, 4)])


def test_slice_opset_9_attributes():
    got = run_nnc("Slice", [X], {"starts": [1], "ends": [-1], "axes": [2]}, opset=9)
    np.testing.assert_array_equal(got[0], X[:, :, 1:-1])


@pytest.mark.parametrize("extent,start,end,step", [(5, 0, 5, 1), (5, -1, -6, -1), (5, 7, -9, -2), (5, 1, 1, 1),
                                                   (0, 0, 3, 1), (4, -9, 9, 3)])
def test_resolve_slice_agrees_with_python(extent, start, end, step):
    first, count = resolve_slice(extent, start, end, step)
    want = list(range(extent))[slice(start, end, step)]
    assert count == len(want) and (not want or first == want[0])


def test_slice_refuses_zero_step():
    with pytest.raises(ShapeError):
        run_nnc("Slice", [X, i64(0), i64(2), i64(0), i64(0)])


# -- Split ---------------------------------------------------------------------
@pytest.mark.parametrize("axis,sizes", [(0, (1, 2)), (1, (2, 1, 1)), (-1, (3, 0, 2))])
def test_split_sizes_input_matches_ort(axis, sizes):
    assert_matches_ort("Split", [X, i64(*sizes)], {"axis": axis}, n_outputs=len(sizes))


def test_split_num_outputs_opset_18_uneven():
    assert_matches_ort("Split", [X], {"axis": 2, "num_outputs": 2}, opset=18, n_outputs=2)


def test_split_equal_pieces_and_attribute_form():
    assert_matches_ort("Split", [X], {"axis": 1}, opset=13, n_outputs=2)
    got = run_nnc("Split", [X], {"axis": 2, "split": [4, 1]}, opset=11, n_outputs=2)
    np.testing.assert_array_equal(got[1], X[:, :, 4:])


def test_split_refuses_uneven_equal_split():
    with pytest.raises(ShapeError, match="equal"):
        run_nnc("Split", [X], {"axis": 0}, opset=13, n_outputs=2)


# -- Expand, Tile, Cast ----------------------------------------------------------
@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (3, 1, 5), (1,), (3, 4, 5)])
def test_expand_matches_ort(shape):
    x = RNG.standard_normal((3, 1, 5)).astype(np.float32)
    assert_matches_ort("Expand", [x, i64(*shape)])


def test_expand_refuses_incompatible_shape():
    with pytest.raises(ShapeError):
        run_nnc("Expand", [X, i64(2, 5)])


@pytest.mark.parametrize("repeats", [(1, 1, 1), (2, 1, 3), (1, 0, 2)])
def test_tile_matches_ort(repeats):
    assert_matches_ort("Tile", [X, i64(*repeats)])


@pytest.mark.parametrize("src,to", [(np.float32, TensorProto.DOUBLE), (np.int64, TensorProto.INT32),
                                    (np.int32, TensorProto.INT8), (np.float32, TensorProto.FLOAT)])
def test_cast_matches_ort(src, to):
    x = (X * 300).astype(src)
    assert_matches_ort("Cast", [x], {"to": to})


def test_cast_same_type_is_identity_and_float_to_int_is_refused():
    names = ["in0"]
    node = OnnxNode("c", "Cast", names, ["out0"], {"to": TensorProto.FLOAT}, OPSET, {}, [_type(X)])
    assert lowering("Cast")(node).op == "Identity"
    node = OnnxNode("c", "Cast", names, ["out0"], {"to": TensorProto.INT32}, OPSET, {}, [_type(X)])
    with pytest.raises(UnsupportedError, match="Cast node 'c'"):
        lowering("Cast")(node)


# -- synthetic samples -------------------------------------------------------------
def test_synthetic_indices_are_valid_for_every_gather_reader():
    from nnc.ir import Graph, Node, Tensor
    from nnc.ops.replicate import CastAttrs
    from nnc.verification import synthetic_samples

    g = Graph("g")
    g.add_tensor(Tensor("ids", "i64", (64,)))
    g.inputs.append("ids")
    g.add_constant("small", np.zeros((7, 2), np.float32))
    g.add_constant("large", np.zeros((3, 50), np.float32))
    g.add_tensor(Tensor("ids32", "i32", (64,)))
    g.add_node(Node("cast", "Cast", ["ids"], ["ids32"], CastAttrs("i32")))
    for name, table, axis in (("a", "small", 0), ("b", "large", 1)):
        out = get_op("Gather").infer(GatherAttrs(axis), [TensorType("f32", g.tensor(table).shape),
                                                        TensorType("i32", (64,))])[0]
        g.add_tensor(Tensor(name, out.dtype, out.shape))
        g.add_node(Node(f"gather_{name}", "Gather", [table, "ids32"], [name], GatherAttrs(axis)))
    g.outputs += ["a", "b"]
    ids = np.concatenate([s["ids"] for s in synthetic_samples(g, 4)])
    assert ids.dtype == np.int64 and ids.min() >= 0 and ids.max() <= 6 and len(set(ids.tolist())) == 7
