"""What quantize refuses, and how: one UnsupportedError naming the node and the
reason, OptionError for bad options; and when it warns about synthetic data."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from nnc.errors import NncWarning, OptionError, ShapeError, UnsupportedError
from nnc.passmanager import parse_pipeline
from nnc.quantizer.groups import RULES, rule_for
from qmodels import Builder, canonical, quantized, rand_int8, randn


def quantize(model, options: str = ""):
    (p,) = parse_pipeline(f"quantize{{{options}}}" if options else "quantize")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NncWarning)
        return p.run(canonical(model))


def float_model(op: str, shape, out_shape, inputs=("x",), consts=(), **attrs):
    b = Builder()
    names = [b.input(n, shape) for n in inputs] + [b.const(c) for c in consts]
    b.node(op, names, "y", **attrs)
    b.output("y", out_shape)
    return b.model()


def test_ops_without_integer_lowering_are_listed_in_one_error(monkeypatch):
    for op in ("Mul", "Sub"):  # both have rules now; take them away to see the listing
        rule_for(op)  # registered first (a rule module is imported on its first lookup)
        monkeypatch.delitem(RULES, op)
    b = Builder()
    m = b.node("Mul", [b.input("a", [1, 4]), b.input("b", [1, 4])], "m")
    b.node("Sub", [m, b.input("c", [1, 4])], "y")
    b.output("y", [1, 4])
    with pytest.raises(UnsupportedError, match=r"Mul node 'mul_m'.*Sub node 'sub_y'"):
        quantize(b.model())


def test_a_run_time_where_says_why_it_has_no_integer_lowering():
    """An attention mask made from an input (Where on a run-time condition before
    the Softmax) is refused with the reason, after the usual listing."""
    b = Builder()
    mask = b.input("mask", [1, 4, 8], np.bool_)
    w = b.node("Where", [mask, b.const(np.float32(-1e4)), b.input("x", [1, 4, 8])], "w")
    b.node("Softmax", [w], "y", axis=-1)
    b.output("y", [1, 4, 8])
    with pytest.raises(UnsupportedError, match=r"Where node 'where_w' \(quantizable ops: .*\); a Where whose "
                                               r"condition is computed at run time, such as an attention mask"):
        quantize(b.model())


def test_conv_transpose_with_run_time_weights_is_refused_before_calibrating():
    b = Builder()
    b.node("ConvTranspose", [b.input("x", [1, 2, 4, 4]), b.input("w", [2, 3, 3, 3])], "y")
    b.output("y", [1, 3, 6, 6])
    model = b.model()
    (p,) = parse_pipeline("quantize")
    with warnings.catch_warnings(record=True) as caught, pytest.raises(
            UnsupportedError, match="ConvTranspose node 'convtranspose_y': its weights must be constants"):
        warnings.simplefilter("always", NncWarning)
        p.run(canonical(model))
    assert not caught  # refused before synthetic calibration could warn


def test_average_pool_counting_its_padding_with_ceil_windows_past_the_input_is_refused():
    """(One that does not count its padding is a uniform pool and a product:
    tests/quantizer/test_quantize_float_rules.py.)"""
    model = float_model("AveragePool", [1, 2, 6, 6], [1, 2, 4, 4], kernel_shape=[3, 3], strides=[2, 2],
                        pads=[1, 1, 1, 1], count_include_pad=1, ceil_mode=1)
    with pytest.raises(UnsupportedError, match="AveragePool node 'averagepool_y'.*ceil_mode windows reach past"):
        quantize(model)


def test_softmax_over_several_axes_is_refused():
    """Before opset 13 Softmax normalizes over every axis from `axis` on together;
    the integer softmax works over one axis (any one, since opset 13)."""
    model = float_model("Softmax", [2, 5, 3], [2, 5, 3], axis=1)
    model.opset_import[0].version = 11
    with pytest.raises(UnsupportedError, match="Softmax node 'softmax_y'.*several axes"):
        quantize(model)


@pytest.mark.parametrize("keep, message", [(None, "its keep mask must be a constant"),
                                           ("hides_a_row", "its keep mask hides every position of a row")])
def test_a_keep_mask_softmax_cannot_compute_is_refused(keep, message, tmp_path):
    """A text-IR graph may give Softmax any keep mask; the integer softmax needs a
    constant one that keeps a position in each row (fuse_softmax_mask makes no other)."""
    import nnc
    from nnc.ir import Graph, Node, Tensor
    from nnc.ops.softmax import SoftmaxAttrs
    from nnc.textir import print_ir

    graph = Graph("k")
    graph.add_tensor(Tensor("x", "f32", (1, 3, 4)))
    graph.inputs.append("x")
    if keep is None:
        graph.add_tensor(Tensor("keep", "bool", (1, 3, 4)))
        graph.inputs.append("keep")
    else:
        hidden = np.ones((1, 3, 4), bool)
        hidden[0, 1] = False
        graph.add_tensor(Tensor("keep", "bool", (1, 3, 4), data=hidden))
    graph.add_tensor(Tensor("y", "f32", (1, 3, 4)))
    graph.add_node(Node("sm", "Softmax", ["x", "keep"], ["y"], SoftmaxAttrs(2)))
    graph.outputs.append("y")
    (tmp_path / "k.nnir").write_text(print_ir(graph))
    for target in ("c", "az-sim"):
        with pytest.raises(UnsupportedError, match=f"Softmax node 'sm': {message}"):
            nnc.compile(tmp_path / "k.nnir", target, output_dir=tmp_path / target)


def test_accumulator_overflow_is_refused_naming_the_layer():
    b = Builder()
    x = b.dq(b.input("x", [1, 8], np.int8), 0.1, 0)
    w = b.weights(np.full((8, 2), 127, np.int8), np.float32(0.01))
    bias = b.bias(np.array([2 ** 31 - 100, 0]), np.float32(0.1) * np.float32(0.01))
    b.q(b.node("Gemm", [x, w, bias]), 0.5, 0, output="y")
    b.output("y", [1, 2], np.int8)
    with pytest.raises(UnsupportedError, match="gemm_.*accumulator can overflow"):
        quantize(b.model())


def test_weights_with_zero_points_are_refused():
    b = Builder()
    x = b.dq(b.input("x", [1, 4], np.int8), 0.1, 0)
    w = b.dq(b.const(rand_int8(4, 3)), np.float32(0.01), np.int8(5))
    b.q(b.node("MatMul", [x, w]), 0.5, 0, output="y")
    b.output("y", [1, 3], np.int8)
    with pytest.raises(UnsupportedError, match="non-zero zero points"):
        quantize(b.model())


@pytest.mark.parametrize("op, calibrates", [("HardSwish", True), ("Sigmoid", False)])
def test_unquantized_output_of_a_qdq_op(op, calibrates):
    """A float op in a QDQ model whose output is not quantized is calibrated like
    a float model's (with a warning: no data given), unless its output
    parameters are fixed by the function (Sigmoid: 1/256, −128)."""
    b = Builder()
    x = b.dq(b.input("x", [1, 6], np.int8), 0.1, 0)
    b.node(op, [x], "y")
    b.output("y", [1, 6])
    _, graph = quantized(b.model(), expect_warning=calibrates)
    assert [n.op for n in graph.nodes()] == ["QLut", "DequantizeLinear"]


@pytest.mark.parametrize("options, fragment", [
    ("observer=entropy", "observer"), ("percentile=10", "percentile"), ("samples=0", "samples"),
    ("bogus=1", "no option"), ("samples=1.5", "wrong type"),
])
def test_bad_options(options, fragment):
    with pytest.raises(OptionError, match=fragment):
        parse_pipeline(f"quantize{{{options}}}")


def test_calibration_data_of_the_wrong_shape(tmp_path):
    np.savez(tmp_path / "bad.npz", x=np.zeros((3, 7), np.float32))
    with pytest.raises(ShapeError, match="bad.npz"):
        quantize(float_model("Relu", [1, 4], [1, 4]), f'calib="{tmp_path / "bad.npz"}"')


def test_synthetic_calibration_warns_only_when_it_calibrates(tmp_path):
    quantized(float_model("Sigmoid", [1, 4], [1, 4]), expect_warning=True)
    np.save(tmp_path / "x.npy", randn(2, 1, 4))
    quantized(float_model("Sigmoid", [1, 4], [1, 4]), f'calib="{tmp_path / "x.npy"}"', expect_warning=False)
    b = Builder()
    b.q(b.node("Sigmoid", [b.dq(b.input("x", [1, 4], np.int8), 0.1, 0)]), 1 / 256, -128, output="y")
    b.output("y", [1, 4], np.int8)
    quantized(b.model(), expect_warning=False)  # fully QDQ: nothing to calibrate
