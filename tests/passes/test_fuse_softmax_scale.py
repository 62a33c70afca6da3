"""fuse_softmax_scale (a canonicalize rule): attention's 1/√d, a positive
constant factor in front of Softmax or LogSoftmax, becomes the op's `scale`;
the quantizer then reads the scores into QSoftmax with no requantization of
their own, and every target computes the same values."""

from __future__ import annotations

import re

import numpy as np
import pytest
from onnx import helper

import nnc
from nnc.textir import parse_ir, print_ir
from nnc.verification import synthetic_samples

from pass_testing import apply, build, ops, randn

RNG = np.random.default_rng(11)
T, D = 6, 8


def _attention(factor=np.float32(D ** -0.5), op="Mul", swap=False, softmax="Softmax", mask=None, extra=(),
               outputs=None):
    """q, k -> MatMul(q, kᵀ) -> Mul/Div(factor) [-> Add(mask)] -> Softmax -> y."""
    scaling = ["k", "scores"] if swap else ["scores", "k"]
    nodes = [helper.make_node("Transpose", ["key"], ["kt"], perm=[0, 2, 1]),
             helper.make_node("MatMul", ["q", "kt"], ["scores"]),
             helper.make_node(op, scaling, ["scaled"])]
    last = "scaled"
    if mask is not None:
        nodes.append(helper.make_node("Add", ["scaled", "mask"], ["masked"]))
        last = "masked"
    nodes += [helper.make_node(softmax, [last], ["y"], axis=-1), *extra]
    constants = {"k": factor} | ({"mask": mask} if mask is not None else {})
    return build(nodes, {"q": [1, T, D], "key": [1, T, D]}, outputs or {"y": [1, T, T]}, constants)


@pytest.mark.parametrize("swap", [False, True])
@pytest.mark.parametrize("softmax", ["Softmax", "LogSoftmax"])
def test_a_mul_by_a_positive_constant_joins_the_softmax_bit_for_bit(swap, softmax):
    after = apply(_attention(swap=swap, softmax=softmax), "canonicalize", input_scale=3.0)
    assert "Mul" not in ops(after)
    node = after.producer("y")
    assert node.op == softmax and node.attrs.scale == float(np.float32(D ** -0.5))
    assert node.inputs[0] == "scores"
    assert print_ir(parse_ir(print_ir(after))) == print_ir(after)


def test_a_division_joins_as_its_reciprocal():
    after = apply(_attention(factor=np.float32(np.sqrt(D)), op="Div"), "canonicalize", exact=False,
                  input_scale=3.0)
    assert ops(after) == ["Transpose", "MatMul", "Softmax"]
    assert after.producer("y").attrs.scale == pytest.approx(D ** -0.5, rel=1e-7)


@pytest.mark.parametrize("mask_first", [False, True])
def test_a_mask_and_a_scale_both_join(mask_first):
    """Add(mask) after the Mul, or before it (the rules meet in either order)."""
    fill = np.float32(-1e9)  # a finite fill: the Add's output is not read by the Softmax alone at load
    mask = np.triu(np.full((T, T), fill, np.float32), 1)
    graph = _attention(mask=mask)
    if mask_first:
        nodes = [helper.make_node("Transpose", ["key"], ["kt"], perm=[0, 2, 1]),
                 helper.make_node("MatMul", ["q", "kt"], ["scores"]),
                 helper.make_node("Add", ["scores", "mask"], ["masked"]),
                 helper.make_node("Mul", ["masked", "k"], ["scaled"]),
                 helper.make_node("Softmax", ["scaled"], ["y"], axis=-1)]
        graph = build(nodes, {"q": [1, T, D], "key": [1, T, D]}, {"y": [1, T, T]},
                      {"k": np.float32(0.25), "mask": mask})
    after = apply(graph, "canonicalize", exact=False, tolerance=1e-6)
    assert ops(after) == ["Transpose", "MatMul", "Softmax"]
    softmax = after.producer("y")
    assert len(softmax.inputs) == 2 and softmax.attrs.scale != 1.0


def _sdpa(q_factor=np.float32(D ** -0.25), k_factor=np.float32(D ** -0.25), extra=(), outputs=None):
    """scaled_dot_product_attention as PyTorch exports it: √(1/√d) on q and on kᵀ,
    then MatMul -> Softmax -> MatMul(v)."""
    nodes = [helper.make_node("Transpose", ["key"], ["kt"], perm=[0, 2, 1]),
             helper.make_node("Mul", ["q", "qk"], ["qs"]), helper.make_node("Mul", ["kt", "kk"], ["ks"]),
             helper.make_node("MatMul", ["qs", "ks"], ["scores"]),
             helper.make_node("Softmax", ["scores"], ["p"], axis=-1),
             helper.make_node("MatMul", ["p", "value"], ["y"]), *extra]
    return build(nodes, {"q": [1, T, D], "key": [1, T, D], "value": [1, T, D]}, outputs or {"y": [1, T, D]},
                 {"qk": q_factor, "kk": k_factor})


def test_factors_on_both_operands_of_the_scores_matmul_join_the_softmax():
    after = apply(_sdpa(), "canonicalize", exact=False, tolerance=1e-6, input_scale=3.0)
    assert ops(after) == ["Transpose", "MatMul", "Softmax", "MatMul"]
    softmax = after.producer("p")
    assert softmax.attrs.scale == pytest.approx(D ** -0.5, rel=1e-6)
    assert after.producer(softmax.inputs[0]).inputs == ["q", "kt"]


@pytest.mark.parametrize("graph,kept", [
    pytest.param(lambda: _sdpa(q_factor=np.float32(-0.5)), 1, id="negative-factor-on-q"),
    pytest.param(lambda: _sdpa(extra=[helper.make_node("Relu", ["qs"], ["z"])],
                               outputs={"y": [1, T, D], "z": [1, T, D]}), 1, id="scaled-q-read-twice"),
    pytest.param(lambda: _sdpa(extra=[helper.make_node("Relu", ["scores"], ["z"])],
                               outputs={"y": [1, T, D], "z": [1, T, T]}), 2, id="scores-read-twice"),
])
def test_factors_the_matmul_cannot_pass_stay(graph, kept):
    after = apply(graph(), "canonicalize", exact=False, tolerance=1e-6)
    assert ops(after).count("Mul") == kept


@pytest.mark.parametrize("graph", [
    pytest.param(lambda: _attention(factor=np.float32(-0.5)), id="negative"),
    pytest.param(lambda: _attention(factor=np.float32(0.0)), id="zero"),
    pytest.param(lambda: _attention(factor=np.float32(0.0), op="Div"), id="division-by-zero"),
    pytest.param(lambda: _attention(factor=randn(RNG, T)), id="per-column-factor"),
    pytest.param(lambda: _attention(factor=np.full((1, 1, 1, 1), 0.5, np.float32), outputs={"y": [1, 1, T, T]}),
                 id="factor-adds-an-axis"),
    pytest.param(lambda: _attention(extra=[helper.make_node("Relu", ["scaled"], ["z"])],
                                    outputs={"y": [1, T, T], "z": [1, T, T]}), id="product-read-twice"),
    pytest.param(lambda: _attention(outputs={"y": [1, T, T], "scaled": [1, T, T]}), id="product-is-an-output"),
])
def test_other_factors_keep_their_op(graph):
    with np.errstate(divide="ignore", invalid="ignore"):
        after = apply(graph(), "canonicalize", exact=False)
    assert {"Mul", "Div"} & set(ops(after))
    assert all(n.attrs.scale == 1.0 for n in after.nodes() if n.op == "Softmax")


def test_a_scale_that_is_not_positive_is_refused_in_text_ir(tmp_path):
    text = re.sub(r"scale=([0-9.]+)", r"scale=-\1", print_ir(apply(_attention(), "canonicalize")))
    assert "scale=-0.35" in text
    (tmp_path / "g.nnir").write_text(text, encoding="utf-8")
    with pytest.raises(nnc.NncError, match="scale must be a positive finite number, got -0.35"):
        nnc.compile(tmp_path / "g.nnir", "c", tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("build", [_attention, _sdpa])
@pytest.mark.parametrize("target,quantize", [("c", True), ("az-sim", True), ("c", False)])
def test_scaled_softmax_compiles_bit_exact(build, target, quantize, tmp_path):
    """Quantized, the scores go from the QMatMul straight into QSoftmax (its exp
    table steps by their scale times the factors), and nothing requantizes q or
    kᵀ; float C multiplies first."""
    graph = build()
    (tmp_path / "g.nnir").write_text(nnc.print_ir(graph), encoding="utf-8")
    samples = synthetic_samples(graph, 8)
    calib = {name: 3 * np.stack([s[name] for s in samples]) for name in graph.inputs}
    result = nnc.compile(tmp_path / "g.nnir", target, tmp_path / "out", calib=calib, quantize=quantize)
    check = result.report["verification"]["vs_reference"]
    assert result.report["verification"]["executed"]
    assert check["bit_exact"] if quantize else check["max_abs_diff"] < 1e-6
    if quantize:
        softmax = next(n for n in result.graph.nodes() if n.op == "QSoftmax")
        assert result.graph.producer(softmax.inputs[0]).op == "QMatMul"
        assert not {"QAffine", "QMul"} & {n.op for n in result.graph.nodes()}


@pytest.mark.parametrize("softmax", ["Softmax", "LogSoftmax"])
def test_a_scaled_softmax_exports_as_a_mul_and_reads_back(softmax, tmp_path):
    """The QDQ file holds Mul(scores, scale) -> (Log)Softmax, which onnxruntime
    runs within 1 LSB of nnc (the target checks it) and nnc folds back."""
    import onnx

    graph = _attention(softmax=softmax)
    (tmp_path / "g.nnir").write_text(nnc.print_ir(graph), encoding="utf-8")
    samples = synthetic_samples(graph, 8)
    calib = {name: 3 * np.stack([s[name] for s in samples]) for name in graph.inputs}
    result = nnc.compile(tmp_path / "g.nnir", "onnx", tmp_path / "out", calib=calib)
    written = onnx.load(str(tmp_path / "out" / "g.onnx"))
    (scaling,) = [n for n in written.graph.node if n.op_type == "Mul"]
    assert [n.op_type for n in written.graph.node if scaling.output[0] in n.input] == [softmax]
    back = nnc.compile(tmp_path / "out" / "g.onnx", "c", tmp_path / "back", verify=False)
    assert [n.op for n in back.graph.nodes()].count("QAffine") == 0
    assert result.report["verification"]["vs_reference"]["bit_exact"]



def _masked_then_scaled(factor):
    from onnx import TensorProto, numpy_helper

    mask = np.triu(np.full((T, T), -np.inf, np.float32), 1)
    nodes = [helper.make_node("MatMul", ["q", "kt"], ["s"]), helper.make_node("Add", ["s", "mask"], ["m"]),
             helper.make_node("Mul", ["m", "k"], ["sc"]), helper.make_node("Softmax", ["sc"], ["y"], axis=-1)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("q", TensorProto.FLOAT, [1, T, D]),
                                           helper.make_tensor_value_info("kt", TensorProto.FLOAT, [1, D, T])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT,
                                                             [1] * (max(3, np.ndim(factor)) - 2) + [T, T])],
                              [numpy_helper.from_array(mask, "mask"), numpy_helper.from_array(factor, "k")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def test_a_minus_infinity_mask_before_the_scale_loads_and_compiles(tmp_path):
    """(scores + mask) · k: the -inf is no weight once both join the softmax."""
    import onnx

    onnx.save(_masked_then_scaled(np.float32(0.5)), tmp_path / "m.onnx")
    result = nnc.compile(tmp_path / "m.onnx", "c", tmp_path / "out")
    assert [n.op for n in result.graph.nodes() if n.op.startswith("Q")] == ["QuantizeLinear", "QuantizeLinear",
                                                                          "QMatMul", "QSoftmax"]
    assert result.report["verification"]["vs_reference"]["bit_exact"]


@pytest.mark.parametrize("factor", [np.float32(-0.5), np.float32(np.inf), np.full((1, 1, 1, 1), 0.5, np.float32)],
                         ids=["negative", "infinite", "adds-axes"])
def test_a_minus_infinity_mask_before_another_factor_is_refused(factor, tmp_path):
    """Factors fuse_softmax_scale would not fold leave the mask's -inf a
    constant of the graph: refused at load, naming it."""
    import onnx

    onnx.save(_masked_then_scaled(factor), tmp_path / "m.onnx")
    with pytest.raises(nnc.NncError, match="holds -inf"):
        nnc.compile(tmp_path / "m.onnx", "c", tmp_path / "out")


def test_a_scaled_softmax_and_log_softmax_share_a_float_c_model(tmp_path):
    """Each gets its own scale kernel (one name for both was refused as a
    kernel instantiated twice)."""
    nodes = [helper.make_node("Transpose", ["key"], ["kt"], perm=[0, 2, 1]),
             helper.make_node("MatMul", ["q", "kt"], ["s1"]), helper.make_node("Mul", ["s1", "k"], ["m1"]),
             helper.make_node("Softmax", ["m1"], ["y1"], axis=-1),
             helper.make_node("MatMul", ["q", "kt"], ["s2"]), helper.make_node("Mul", ["s2", "k"], ["m2"]),
             helper.make_node("LogSoftmax", ["m2"], ["y2"], axis=-1)]
    graph = build(nodes, {"q": [1, T, D], "key": [1, T, D]}, {"y1": [1, T, T], "y2": [1, T, T]},
                  {"k": np.float32(0.35)})
    (tmp_path / "g.nnir").write_text(nnc.print_ir(graph), encoding="utf-8")
    result = nnc.compile(tmp_path / "g.nnir", "c", tmp_path / "out", quantize=False)
    assert result.report["verification"]["vs_reference"]["max_abs_diff"] < 1e-6

