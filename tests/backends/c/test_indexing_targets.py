"""Gather, Slice, Split, Expand, Tile, Cast and any-rank Transpose on the C and
az-sim targets: integer graphs against the reference interpreter bit for bit
(C built under -Werror with ASan/UBSan, so an out-of-bounds read fails), the
out-of-range Gather index rule of docs/numerics.md §8a included; then small
float ONNX models compiled end to end (tests/e2e.py: every target bit-exact to
the reference, int8 output vs float cosine >= 0.99)."""

from __future__ import annotations

import numpy as np
import pytest
from c_testing import COMPILERS, GraphBuilder, assert_matches, run_c
from e2e import compile_everywhere
from onnx import TensorProto, helper, numpy_helper

from nnc.backends.azsim.blob import read_blob, write_blob
from nnc.backends.azsim.lowering import to_program
from nnc.backends.azsim.simulator import simulate
from nnc.dtypes import to_numpy
from nnc.errors import UnsupportedError
from nnc.interpreter import run
from nnc.ir import Node, Tensor
from nnc.ops.indexing import GatherAttrs, SliceAttrs, SplitAttrs
from nnc.ops.replicate import CastAttrs, ExpandAttrs, TileAttrs
from nnc.ops.shape import ConcatAttrs, TransposeAttrs

RNG = np.random.default_rng(11)
CC = COMPILERS[:1]


def _int8(*shape) -> np.ndarray:
    return RNG.integers(-128, 128, shape).astype(np.int8)


def indexing_graph(index_dtype: str):
    """One integer graph exercising every indexing op and its C/az-sim kernel."""
    b = GraphBuilder(f"indexing_{index_dtype}")
    x = b.input("x", "i8", (2, 3, 4, 5))
    ids = b.input("ids", index_dtype, (3, 2))
    table = b.const("table", _int8(7, 6))
    outs = [b.op("Gather", [table, ids], GatherAttrs(0)),                    # embedding lookup
            b.op("Gather", [x, ids], GatherAttrs(2)),                        # run-time data and indices
            b.op("Gather", [x, b.const("last", np.array(-1, np.int64))], GatherAttrs(1)),  # x[:, -1]
            b.op("Slice", [x], SliceAttrs((1, 2, 0, 4), (1, -1, 3, -2), (1, 3, 2, 3))),
            b.op("Expand", [b.op("Slice", [x], SliceAttrs((0, 0, 1, 0), (1, 1, 1, 1), (2, 1, 1, 5)))],
                 ExpandAttrs((3, 2, 4, 2, 5))),
            b.op("Tile", [x], TileAttrs((2, 1, 3, 1))),
            b.op("Cast", [ids], CastAttrs("i8")),
            b.op("Cast", [b.op("Cast", [x], CastAttrs("i64"))], CastAttrs("i16")),
            b.op("Concat", [x, b.op("Slice", [x], SliceAttrs((0, 0, 3, 0), (1, 1, -3, 1), (2, 3, 2, 5)))],
                 ConcatAttrs(2))]                                              # Concat on an inner axis
    pieces = [f"piece{i}" for i in range(3)]  # Split has several outputs: added by hand
    for name, size in zip(pieces, (1, 3, 1)):
        b.graph.add_tensor(Tensor(name, "i8", (2, 3, 4, size)))
    b.graph.add_node(Node("split", "Split", [x], pieces, SplitAttrs(3, (1, 3, 1))))
    return b.output(*outs, *pieces)


def transpose7_graph():
    """A rank-7 transpose that keeps more than six loops after merging axes."""
    b = GraphBuilder("transpose7")
    x = b.input("x", "i8", (2, 3, 2, 3, 2, 3, 2))
    return b.output(b.op("Transpose", [x], TransposeAttrs((6, 4, 2, 0, 5, 3, 1))))


def _samples(graph, ids_range=(-9, 9)):
    out = []
    for _ in range(2):
        sample = {}
        for name in graph.inputs:
            t = graph.tensor(name)
            if t.dtype == "i8":
                sample[name] = _int8(*t.shape)
            else:  # indices: in range, negative and out of range alike
                sample[name] = RNG.integers(*ids_range, t.shape).astype(to_numpy(t.dtype))
        out.append(sample)
    return out


def _azsim_matches(graph, samples):
    program = read_blob(write_blob(to_program(graph)))
    for sample in samples:
        outputs, stats = simulate(program, sample)
        for name, want in run(graph, sample).items():
            assert outputs[name].dtype == want.dtype
            np.testing.assert_array_equal(outputs[name], want, err_msg=name)
    return stats


@pytest.mark.parametrize("index_dtype", ["i32", "i64"])
def test_indexing_ops_match_the_reference_on_c_and_azsim(index_dtype, tmp_path):
    graph = indexing_graph(index_dtype)
    samples = _samples(graph)
    assert any((s["ids"] < -7).any() or (s["ids"] >= 7).any() for s in samples)  # out of range exercised
    assert_matches(graph, samples, run_c(graph, samples, tmp_path, CC[0]))
    stats = _azsim_matches(graph, samples)
    assert stats.totals["cycles"] > 0


def test_gather_out_of_range_indices_clamp_on_every_target(tmp_path):
    b = GraphBuilder("clamp")
    ids = b.input("ids", "i64", (6,))
    table = b.const("table", np.arange(10, dtype=np.int8).reshape(5, 2))
    graph = b.output(b.op("Gather", [table, ids], GatherAttrs(0)))
    samples = [{"ids": np.array([-6, -5, 4, 5, 2**40, -2**62], np.int64)}]
    want = np.array([0, 0, 8, 8, 8, 0], np.int8)
    np.testing.assert_array_equal(run(graph, samples[0])[graph.outputs[0]][:, 0], want)
    assert_matches(graph, samples, run_c(graph, samples, tmp_path, CC[0]))
    _azsim_matches(graph, samples)


def test_transpose_beyond_six_loops(tmp_path):
    graph = transpose7_graph()
    samples = _samples(graph)
    assert_matches(graph, samples, run_c(graph, samples, tmp_path, CC[0]))
    _azsim_matches(graph, samples)


# -- float models end to end --------------------------------------------------------
def _model(nodes, inputs, outputs, inits, opset=18):
    graph = helper.make_graph(nodes, "g", inputs, outputs, [numpy_helper.from_array(v, k) for k, v in inits.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)


def _f(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape))


def _w(*shape, scale=0.3):
    return (RNG.standard_normal(shape) * scale).astype(np.float32)


def test_embedding_gemm_end_to_end(tmp_path):
    nodes = [helper.make_node("Gather", ["table", "ids"], ["e"], axis=0),
             helper.make_node("Gemm", ["e", "w", "b"], ["y"])]
    model = _model(nodes, [helper.make_tensor_value_info("ids", TensorProto.INT64, [6])], [_f("y", (6, 8))],
                   {"table": _w(40, 16, scale=1.0), "w": _w(16, 8), "b": _w(8)})
    samples = {"ids": RNG.integers(0, 40, (8, 6)).astype(np.int64)}
    reports = compile_everywhere(model, tmp_path, samples)
    assert reports["c"]["verification"]["vs_float"]["cosine"] >= 0.999


def test_slice_split_concat_end_to_end(tmp_path):
    """Split (opset 18 num_outputs) and reversed Slice of a Gemm output, joined
    again by Concat on axis 1, then another Gemm."""
    nodes = [helper.make_node("Gemm", ["x", "w1"], ["h"]),
             helper.make_node("Split", ["h"], ["a", "b"], axis=1, num_outputs=2),
             helper.make_node("Slice", ["b", "st", "en", "ax", "sp"], ["r"]),
             helper.make_node("Concat", ["r", "a"], ["c"], axis=1),
             helper.make_node("Gemm", ["c", "w2"], ["y"])]
    inits = {"w1": _w(12, 10), "w2": _w(8, 6), "st": np.array([-1], np.int64),
             "en": np.array([-100], np.int64), "ax": np.array([1], np.int64), "sp": np.array([-2], np.int64)}
    model = _model(nodes, [_f("x", (4, 12))], [_f("y", (4, 6))], inits)
    samples = {"x": RNG.standard_normal((8, 4, 12)).astype(np.float32)}
    compile_everywhere(model, tmp_path, samples)


def test_rank5_transpose_expand_tile_last_step_end_to_end(tmp_path):
    """y[:, -1] (Gather of a constant index on a run-time tensor), Expand, Tile
    and a rank-5 Transpose around Gemms."""
    nodes = [helper.make_node("Gemm", ["x", "w1"], ["h"]),
             helper.make_node("Reshape", ["h", "shape5"], ["h5"]),
             helper.make_node("Transpose", ["h5"], ["t5"], perm=[4, 2, 0, 3, 1]),
             helper.make_node("Gather", ["t5", "minus1"], ["g"], axis=1),
             helper.make_node("Expand", ["g", "eshape"], ["e"]),
             helper.make_node("Tile", ["e", "reps"], ["t"]),
             helper.make_node("Reshape", ["t", "flat"], ["f"]),
             helper.make_node("Gemm", ["f", "w2"], ["y"])]
    inits = {"w1": _w(6, 24), "w2": _w(96, 5, scale=0.1),
             "shape5": np.array([2, 2, 3, 2, 2], np.int64), "minus1": np.array(-1, np.int64),
             "eshape": np.array([3, 1, 1, 1, 1], np.int64), "reps": np.array([1, 1, 2, 1, 1], np.int64),
             "flat": np.array([1, -1], np.int64)}
    model = _model(nodes, [_f("x", (2, 6))], [_f("y", (1, 5))], inits)
    samples = {"x": RNG.standard_normal((8, 2, 6)).astype(np.float32)}
    compile_everywhere(model, tmp_path, samples)


def test_qdq_embedding_keeps_its_table_parameters(tmp_path):
    """A QDQ model's int8 table (DequantizeLinear → Gather → QuantizeLinear with
    the same parameters) is gathered as int8, its scale and zero point kept."""
    table = RNG.integers(-128, 128, (30, 8)).astype(np.int8)
    scale, zp = np.float32(0.05), np.int8(3)
    nodes = [helper.make_node("DequantizeLinear", ["tq", "s", "z"], ["t"]),
             helper.make_node("Gather", ["t", "ids"], ["e"], axis=0),
             helper.make_node("QuantizeLinear", ["e", "s", "z"], ["eq"]),
             helper.make_node("DequantizeLinear", ["eq", "s", "z"], ["y"])]
    model = _model(nodes, [helper.make_tensor_value_info("ids", TensorProto.INT32, [2, 5])], [_f("y", (2, 5, 8))],
                   {"tq": table, "s": scale, "z": zp})
    samples = {"ids": RNG.integers(-30, 30, (4, 2, 5)).astype(np.int32)}
    reports = compile_everywhere(model, tmp_path, samples)
    assert reports["az-sim"]["verification"]["vs_float"]["cosine"] == pytest.approx(1.0)


def test_integer_casts_wrap_alike_on_every_target(tmp_path):
    b = GraphBuilder("casts")
    big, mid = b.input("big", "i64", (8,)), b.input("mid", "i32", (8,))
    outs = [b.op("Cast", [big], CastAttrs(t)) for t in ("i32", "i16", "i8", "u8")]
    outs += [b.op("Cast", [mid], CastAttrs(t)) for t in ("i16", "u8", "i64")]
    graph = b.output(*outs)
    extremes = [-2**63, 2**63 - 1, -2**31 - 1, 2**31, 40000, -129, 128, 255]
    samples = [{"big": np.array(extremes, np.int64),
                "mid": np.array([-2**31, 2**31 - 1, -32769, 32768, 255, 256, -1, 0], np.int32)}]
    want = np.array(extremes, np.int64).astype(np.int8)  # numpy wraps modulo 2^8
    np.testing.assert_array_equal(run(graph, samples[0])[outs[2]], want)
    assert_matches(graph, samples, run_c(graph, samples, tmp_path, CC[0]))
    _azsim_matches(graph, samples)


def test_layout_moves_transposes_through_slice_tile_and_gather(tmp_path):
    """Conv → Slice (reversed rows, strided columns) → Tile → Gather → Conv runs
    channels-last throughout: only the model's own boundary transposes remain."""
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1]),
             helper.make_node("Slice", ["c1", "st", "en", "ax", "sp"], ["s"]),
             helper.make_node("Tile", ["s", "reps"], ["t"]),
             helper.make_node("Gather", ["t", "cols"], ["g"], axis=3),
             helper.make_node("Conv", ["g", "w2"], ["y"])]
    inits = {"w1": _w(8, 3, 3, 3), "w2": _w(4, 8, 1, 1), "st": np.array([-1, 0], np.int64),
             "cols": np.array([5, -6, 2, 3, 0, 1], np.int64),
             "en": np.array([-100, 6], np.int64), "ax": np.array([2, 3], np.int64),
             "sp": np.array([-2, 2], np.int64), "reps": np.array([1, 1, 1, 2], np.int64)}
    model = _model(nodes, [_f("x", (1, 3, 6, 6))], [_f("y", (1, 4, 3, 6))], inits)
    compile_everywhere(model, tmp_path, {"x": RNG.standard_normal((8, 1, 3, 6, 6)).astype(np.float32)})
    steps = [line for line in (tmp_path / "out-c" / "model.c").read_text().splitlines() if "/* [" in line]
    assert [s.split()[2] for s in steps if any(op in s for op in ("Transpose", "Slice", "Tile", "Gather"))] == \
        ["Transpose", "Slice", "Tile", "Gather", "Transpose"]


def test_rank9_transpose_runs_in_c_and_is_refused_cleanly_by_azsim(tmp_path):
    b = GraphBuilder("transpose9")
    x = b.input("x", "i8", (2,) * 9)
    graph = b.output(b.op("Transpose", [x], TransposeAttrs((8, 6, 4, 2, 0, 7, 5, 3, 1))))
    samples = _samples(graph)
    assert_matches(graph, samples, run_c(graph, samples, tmp_path, CC[0]))
    with pytest.raises(UnsupportedError, match="rank 9; blob tensors have at most 8 axes"):
        to_program(graph)


def test_float_graph_indexing_ops_in_c(tmp_path):
    """Unquantized (--no-quantize) graphs use the same byte-generic kernels on
    floats; Cast f32 -> f64 -> f32 converts exactly."""
    b = GraphBuilder("float_indexing")
    x = b.input("x", "f32", (3, 4, 5))
    ids = b.input("ids", "i64", (2, 2))
    table = b.const("table", RNG.standard_normal((6, 3)).astype(np.float32))
    outs = [b.op("Gather", [table, ids], GatherAttrs(0)),
            b.op("Slice", [x], SliceAttrs((2, 0, 4), (-1, 2, -1), (3, 2, 5))),
            b.op("Expand", [x], ExpandAttrs((2, 3, 4, 5))),
            b.op("Tile", [x], TileAttrs((1, 2, 1))),
            b.op("Cast", [b.op("Cast", [x], CastAttrs("f64"))], CastAttrs("f32"))]
    graph = b.output(*outs)
    samples = [{"x": RNG.standard_normal((3, 4, 5)).astype(np.float32),
                "ids": np.array([[0, 5], [-1, 9]], np.int64)}]
    produced = run_c(graph, samples, tmp_path, CC[0])
    for name, want in run(graph, samples[0]).items():
        np.testing.assert_array_equal(produced[0][name], want, err_msg=name)
