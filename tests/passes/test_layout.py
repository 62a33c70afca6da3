"""layout: spatial ops become channels-last and the transposes that needs cancel;
outputs stay bit-identical (the pass only moves data). Small ONNX graphs, a
hypothesis test of transposes sinking through ops with broadcast constants, and
the nine MLPerf Tiny models."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mlperf import MODEL_NAMES, MODELS_DIR, requires_models
import onnx
from onnx import TensorProto, helper, numpy_helper

from nnc.errors import OptionError
from nnc.frontend.onnx_loader import load, lower_model
from nnc.interpreter import run
from nnc.ir import Graph, Node, Tensor
from nnc.ops.elementwise import NoAttrs
from nnc.ops.quantize import DequantizeAttrs, QuantizeAttrs
from nnc.ops.shape import TransposeAttrs
from nnc.passes.canonicalize import inverse
from nnc.passmanager import PassManager, format_pipeline, parse_pipeline
from nnc.textir import print_ir
from nnc.verifier import verify

from pass_testing import feeds_for


F32, I8 = TensorProto.FLOAT, TensorProto.INT8
RNG = np.random.default_rng(7)


# -- helpers ---------------------------------------------------------------------------
def onnx_graph(nodes, inputs: dict, outputs: list[str], inits: dict) -> Graph:
    """Lower an ONNX graph: inputs name -> (elem type, shape), inits name -> array;
    the outputs' types come from ONNX shape inference."""
    g = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info(n, t, s) for n, (t, s) in inputs.items()],
        [helper.make_empty_tensor_value_info(n) for n in outputs],
        initializer=[numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {v.name: v for v in [*inferred.graph.value_info, *inferred.graph.output] if v.type.HasField("tensor_type")}
    del model.graph.output[:]
    model.graph.output.extend(types[n] for n in outputs)
    return lower_model(model, {})


def optimize(graph: Graph, pipeline: str = "layout", feeds=None) -> Graph:
    """Run `pipeline` on a copy, verifying after every pass; outputs must be
    bit-identical to the original graph's."""
    after = PassManager(parse_pipeline(pipeline), verify_each=True).run(graph.copy())
    assert after.inputs == graph.inputs and after.outputs == graph.outputs
    feeds = feeds or feeds_for(graph)
    expected, got = run(graph, feeds), run(after, feeds)
    for name, value in expected.items():
        assert got[name].dtype == value.dtype and np.array_equal(got[name], value), name
    return after


def ops(graph: Graph, op: str) -> list[Node]:
    return [n for n in graph.nodes() if n.op == op]


def weights(cout, cin, k=3):
    return RNG.standard_normal((cout, cin, k, k)).astype(np.float32)


def conv(x, w, y, pads=1, **kw):
    return helper.make_node("Conv", [x, w], [y], pads=[pads] * 4, **kw)


def flatten_tail(x: str, out: str) -> list:
    return [helper.make_node("GlobalAveragePool", [x], [f"{x}_gap"]),
            helper.make_node("Flatten", [f"{x}_gap"], [out])]


def assert_all_channels_last(graph: Graph) -> None:
    spatial = [n for n in graph.nodes() if hasattr(n.attrs, "channels_last")]
    assert spatial and all(n.attrs.channels_last for n in spatial)
    for n in spatial:
        rank = len(graph.tensor(n.inputs[0]).shape)
        expected = {3: "NWC", 4: "NHWC", 5: "NDHWC"}[rank]
        assert graph.tensor(n.inputs[0]).layout == expected and graph.tensor(n.outputs[0]).layout == expected


# -- small models ------------------------------------------------------------------------
def test_nhwc_input_model_loses_every_transpose():
    nodes = [helper.make_node("Transpose", ["x"], ["xt"], perm=[0, 3, 1, 2]),
             conv("xt", "w1", "c1"), helper.make_node("Relu", ["c1"], ["r1"]),
             conv("r1", "w2", "c2", pads=0),
             helper.make_node("Add", ["c2", "bias"], ["a"]), helper.make_node("Mul", ["a", "half"], ["m"]),
             helper.make_node("MaxPool", ["m"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
             *flatten_tail("p", "y")]
    g = onnx_graph(nodes, {"x": (F32, [1, 8, 8, 3])}, ["y"],
                   {"w1": weights(4, 3), "w2": weights(6, 4, 1), "half": np.float32(0.5),
                    "bias": RNG.standard_normal((6, 1, 1)).astype(np.float32)})
    after = optimize(g, "layout,canonicalize")
    assert not ops(after, "Transpose")
    assert_all_channels_last(after)
    assert after.tensor("x").layout == "NHWC"
    (add,) = ops(after, "Add")
    assert after.tensor(add.inputs[1]).shape == (6,)  # bias (6,1,1) transposed to (1,1,6), leading 1s dropped


def test_nchw_interface_keeps_one_transpose_at_each_end():
    nodes = [conv("x", "w1", "c1"), helper.make_node("Relu", ["c1"], ["r1"]), conv("r1", "w2", "y")]
    g = onnx_graph(nodes, {"x": (F32, [1, 3, 6, 6])}, ["y"], {"w1": weights(4, 3), "w2": weights(5, 4)})
    after = optimize(g, "layout,canonicalize")
    transposes = ops(after, "Transpose")
    assert len(transposes) == 2
    assert {t.inputs[0] for t in transposes} & {"x"} and {t.outputs[0] for t in transposes} & {"y"}


def test_concat_pad_prelu_softmax_are_remapped():
    nodes = [helper.make_node("Transpose", ["x"], ["xt"], perm=[0, 3, 1, 2]),
             conv("xt", "wa", "a"), conv("xt", "wb", "b"),
             helper.make_node("Concat", ["a", "b"], ["cat"], axis=1),
             helper.make_node("Pad", ["cat", "pads"], ["pad"]),
             helper.make_node("PRelu", ["pad", "slope"], ["pr"]),
             conv("pr", "wc", "c", pads=0),
             helper.make_node("Softmax", ["c"], ["s"], axis=1),
             helper.make_node("Transpose", ["s"], ["y"], perm=[0, 2, 3, 1])]
    g = onnx_graph(nodes, {"x": (F32, [1, 5, 5, 4])}, ["y"],
                   {"wa": weights(4, 4), "wb": weights(2, 4), "wc": weights(3, 6, 1),
                    "pads": np.array([0, 0, 1, 0, 0, 0, 0, 2], np.int64),
                    "slope": RNG.standard_normal((6, 1, 1)).astype(np.float32)})
    after = optimize(g, "layout,canonicalize")
    assert not ops(after, "Transpose")
    assert ops(after, "Concat")[0].attrs.axis == 3
    assert ops(after, "Pad")[0].attrs.pads == (0, 1, 0, 0, 0, 0, 2, 0)
    assert ops(after, "Softmax")[0].attrs.axis == 3
    assert after.tensor("y").layout == "NHWC"


def test_a_masked_softmax_moves_its_keep_mask_with_its_axis():
    """A Transpose sinking through a Softmax with a causal keep mask must
    transpose the mask too: a square mask keeps its shape, so only the values
    would show it (as the reviewer's x -> Transpose -> Add(mask) -> Softmax did)."""
    t = 5
    nodes = [helper.make_node("Transpose", ["x"], ["xt"], perm=[0, 1, 3, 2]),
             helper.make_node("Add", ["xt", "causal"], ["m"]),
             helper.make_node("Softmax", ["m"], ["y"], axis=-1)]
    g = onnx_graph(nodes, {"x": (F32, [1, 2, t, t])}, ["y"],
                   {"causal": np.triu(np.full((t, t), -np.inf, np.float32), 1)})
    after = optimize(g, "canonicalize,layout,canonicalize")
    (softmax,) = ops(after, "Softmax")
    assert len(softmax.inputs) == 2


def qdq(x: str, name: str, axis: int | None = None) -> list:
    kw = {} if axis is None else {"axis": axis}
    return [helper.make_node("QuantizeLinear", [x, f"{name}_s", f"{name}_z"], [f"{name}_q"], **kw),
            helper.make_node("DequantizeLinear", [f"{name}_q", f"{name}_s", f"{name}_z"], [name], **kw)]


def qdq_params(name: str, channels: int | None = None) -> dict:
    if channels is None:
        return {f"{name}_s": np.float32(0.05), f"{name}_z": np.int8(3)}
    return {f"{name}_s": np.linspace(0.02, 0.08, channels).astype(np.float32),
            f"{name}_z": np.arange(channels).astype(np.int8)}


def test_qdq_chain_with_per_axis_activations_and_a_residual_add():
    nodes = [helper.make_node("Transpose", ["x"], ["xt"], perm=[0, 3, 1, 2]),
             helper.make_node("DequantizeLinear", ["xt", "in_s", "in_z"], ["xf"]),
             conv("xf", "w1", "c1"), helper.make_node("Relu", ["c1"], ["r1"]), *qdq("r1", "d1", axis=1),
             conv("d1", "w2", "c2"), *qdq("c2", "d2"),
             helper.make_node("Add", ["d1", "d2"], ["sum"]), *qdq("sum", "d3"),
             *flatten_tail("d3", "y")]
    inits = {"in_s": np.float32(0.1), "in_z": np.int8(-2), "w1": weights(4, 3), "w2": weights(4, 4),
             **qdq_params("d1", 4), **qdq_params("d2"), **qdq_params("d3")}
    g = onnx_graph(nodes, {"x": (I8, [1, 6, 6, 3])}, ["y"], inits)
    after = optimize(g, "layout,canonicalize")
    assert not ops(after, "Transpose")
    assert_all_channels_last(after)
    per_axis = [n for n in ops(after, "QuantizeLinear") + ops(after, "DequantizeLinear") if n.attrs.axis is not None]
    assert len(per_axis) == 2 and all(n.attrs.axis == 3 for n in per_axis)


def test_hoisting_meets_a_shared_input_transpose():
    """The input Transpose also feeds a graph output, so it cannot sink; the
    conv's to-NHWC transpose rises through Relu and cancels against it."""
    nodes = [helper.make_node("Transpose", ["x"], ["xt"], perm=[0, 3, 1, 2]),
             helper.make_node("Relu", ["xt"], ["r"]), conv("r", "w", "c"), *flatten_tail("c", "y")]
    g = onnx_graph(nodes, {"x": (F32, [1, 5, 5, 2])}, ["xt", "y"], {"w": weights(3, 2)})
    after = optimize(g, "layout,canonicalize")
    (transpose,) = ops(after, "Transpose")
    assert transpose.outputs == ["xt"]
    (relu,) = ops(after, "Relu")
    assert relu.inputs == ["x"]


def test_channel_one_input_reshape_disappears():
    """KWS: the NHWC input with C = 1 reaches NCHW through a Reshape."""
    nodes = [helper.make_node("Reshape", ["x", "shape"], ["xr"]),
             helper.make_node("DequantizeLinear", ["xr", "in_s", "in_z"], ["xf"]),
             conv("xf", "w", "c"), *flatten_tail("c", "y")]
    g = onnx_graph(nodes, {"x": (I8, [1, 7, 5, 1])}, ["y"],
                   {"shape": np.array([-1, 1, 7, 5], np.int64), "in_s": np.float32(0.1), "in_z": np.int8(0),
                    "w": weights(4, 1)})
    after = optimize(g, "layout,canonicalize")
    assert not ops(after, "Transpose")
    assert [n.op for n in after.nodes()][:2] == ["DequantizeLinear", "Conv"]


def test_flatten_of_a_real_spatial_map_keeps_its_transpose():
    """Flattening [N,C,H,W] with H*W > 1 fixes NCHW element order for the dense
    layer: the transpose back to NCHW must stay (docs/layout.md)."""
    nodes = [helper.make_node("Transpose", ["x"], ["xt"], perm=[0, 3, 1, 2]), conv("xt", "w", "c"),
             helper.make_node("Flatten", ["c"], ["f"]), helper.make_node("MatMul", ["f", "dense"], ["y"])]
    g = onnx_graph(nodes, {"x": (F32, [1, 3, 3, 2])}, ["y"],
                   {"w": weights(4, 2), "dense": RNG.standard_normal((36, 5)).astype(np.float32)})
    after = optimize(g, "layout,canonicalize")
    (transpose,) = ops(after, "Transpose")
    assert after.producer(transpose.inputs[0]).op == "Conv"
    assert after.consumers(transpose.outputs[0])[0].op == "Reshape"


SPATIAL_CASES = {
    "conv1d": ([helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1])], [1, 3, 9],
               {"w": RNG.standard_normal((4, 3, 3)).astype(np.float32)}),
    "conv3d": ([helper.make_node("Conv", ["x", "w"], ["y"])], [1, 2, 4, 4, 4],
               {"w": RNG.standard_normal((3, 2, 2, 2, 2)).astype(np.float32)}),
    "conv_transpose": ([helper.make_node("ConvTranspose", ["x", "w"], ["y"], strides=[2, 2])], [1, 3, 4, 4],
                       {"w": RNG.standard_normal((3, 2, 3, 3)).astype(np.float32)}),
    "average_pool": ([helper.make_node("AveragePool", ["x"], ["y"], kernel_shape=[2, 2], pads=[1, 1, 0, 0])],
                     [1, 3, 5, 5], {}),
    "batch_norm": ([helper.make_node("BatchNormalization", ["x", "sc", "b", "m", "v"], ["y"])], [1, 3, 4, 4],
                   {k: RNG.uniform(0.5, 1.5, 3).astype(np.float32) for k in ("sc", "b", "m", "v")}),
    "depthwise": ([helper.make_node("Conv", ["x", "w"], ["y"], group=3, pads=[1, 1, 1, 1])], [1, 3, 5, 5],
                  {"w": RNG.standard_normal((3, 1, 3, 3)).astype(np.float32)}),
}


@pytest.mark.parametrize("case", sorted(SPATIAL_CASES))
def test_every_spatial_op_converts(case):
    nodes, shape, inits = SPATIAL_CASES[case]
    g = onnx_graph(nodes, {"x": (F32, shape)}, ["y"], inits)
    after = optimize(g, "layout")
    assert_all_channels_last(after)
    back = optimize(after, "layout{target=NCHW}")
    assert not any(n.attrs.channels_last for n in back.nodes() if hasattr(n.attrs, "channels_last"))
    assert not ops(back, "Transpose")


def test_idempotent_and_round_trip_on_a_model():
    nodes = [helper.make_node("Transpose", ["x"], ["xt"], perm=[0, 3, 1, 2]),
             conv("xt", "w1", "c1"), helper.make_node("Relu", ["c1"], ["r1"]), conv("r1", "w2", "c2"),
             helper.make_node("Transpose", ["c2"], ["y"], perm=[0, 2, 3, 1])]
    g = onnx_graph(nodes, {"x": (F32, [1, 6, 6, 3])}, ["y"], {"w1": weights(4, 3), "w2": weights(2, 4)})
    once = optimize(g, "layout")
    assert not ops(once, "Transpose")
    assert print_ir(optimize(once, "layout")) == print_ir(once)
    nchw = optimize(once, "layout{target=channels_first}")
    assert len(ops(nchw, "Transpose")) == 2  # the NHWC interface, as in the original


def test_pipeline_options():
    assert format_pipeline(parse_pipeline("layout,layout{target=NCHW}")) == "layout,layout{target=NCHW}"
    with pytest.raises(OptionError):
        parse_pipeline("layout{target=NCWH}")


# -- hypothesis: a transpose sinks through ops with broadcast constants ------------------------
@st.composite
def sink_cases(draw):
    rank = draw(st.integers(2, 5))
    shape = tuple(draw(st.lists(st.integers(1, 3), min_size=rank, max_size=rank)))
    perm = tuple(draw(st.permutations(range(rank))))
    ops_ = draw(st.lists(st.sampled_from(["Add", "Mul", "Relu", "QDQ", "QDQ_axis"]), min_size=1, max_size=4))
    consts = []
    for _ in ops_:
        tail = draw(st.integers(0, rank))
        mask = draw(st.lists(st.booleans(), min_size=tail, max_size=tail))
        consts.append((tail, mask, draw(st.integers(0, rank - 1))))
    return shape, perm, ops_, consts


def build_sink_graph(shape, perm, ops_, consts) -> Graph:
    """x -> Transpose(perm) -> ops (constants broadcast against the transposed
    shape, per-axis Q/DQ on a random axis) -> Transpose(perm^-1) -> y."""
    g = Graph("sink")
    g.add_tensor(Tensor("x", "f32", shape))
    g.inputs.append("x")
    current = _add(g, "Transpose", ["x"], tuple(shape[p] for p in perm), "f32", TransposeAttrs(perm))
    for op, (tail, mask, axis) in zip(ops_, consts):
        ts = g.tensor(current).shape
        if op in ("Add", "Mul"):
            kshape = tuple(1 if m else d for d, m in zip(ts[len(ts) - tail:], mask))
            k = g.add_constant("k", RNG.standard_normal(kshape).astype(np.float32)).name
            current = _add(g, op, [current, k], ts, "f32", NoAttrs())
        elif op == "Relu":
            current = _add(g, "Relu", [current], ts, "f32", NoAttrs())
        else:
            per_axis = op == "QDQ_axis"
            n = ts[axis] if per_axis else 1
            s = g.add_constant("s", np.linspace(0.05, 0.3, n).astype(np.float32).reshape(-1 if per_axis else ())).name
            z = g.add_constant("z", np.arange(n).astype(np.int8).reshape(-1 if per_axis else ())).name
            ax = axis if per_axis else None
            q = _add(g, "QuantizeLinear", [current, s, z], ts, "i8", QuantizeAttrs(ax, "i8"))
            current = _add(g, "DequantizeLinear", [q, s, z], ts, "f32", DequantizeAttrs(ax))
    out_shape = tuple(g.tensor(current).shape[p] for p in inverse(perm))
    g.outputs.append(_add(g, "Transpose", [current], out_shape, "f32", TransposeAttrs(inverse(perm))))
    verify(g)
    return g


def _add(g: Graph, op: str, inputs: list[str], shape, dtype: str, attrs) -> str:
    out = g.unique_tensor_name("t")
    g.add_tensor(Tensor(out, dtype, shape))
    g.add_node(Node(g.unique_node_name(op), op, inputs, [out], attrs))
    return out


@settings(max_examples=40, deadline=None)
@given(sink_cases())
def test_transposes_sink_through_broadcasts_and_cancel(case):
    g = build_sink_graph(*case)
    after = optimize(g, "layout")
    assert not ops(after, "Transpose")


# -- the MLPerf Tiny models -----------------------------------------------------------------
@requires_models
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_mlperf_models_lose_every_transpose(name):
    graph = load(MODELS_DIR / f"{name}.onnx")
    sample = np.load(MODELS_DIR / f"{name}.io.npz")["input"]
    after = optimize(graph, "layout,canonicalize", feeds={graph.inputs[0]: sample})
    assert not ops(after, "Transpose")
    spatial = [n for n in after.nodes() if hasattr(n.attrs, "channels_last")]
    assert all(n.attrs.channels_last for n in spatial)
    if spatial:
        assert after.tensor(after.inputs[0]).layout == "NHWC"


def test_layout_names_the_reductions_the_reduce_ops_define():
    from nnc.ops.reduce import REDUCE_OPS
    from nnc.passes.layout import KEEPDIMS_REDUCTIONS

    assert KEEPDIMS_REDUCTIONS == REDUCE_OPS
