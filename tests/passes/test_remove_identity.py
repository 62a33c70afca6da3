"""remove-identity: Identity/Dropout disappear, interface names survive."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper

from nnc.frontend.onnx_loader import lower_model
from nnc.interpreter import run
from nnc.passmanager import parse_pipeline
from nnc.textir import parse_ir, print_ir
from nnc.verifier import verify

from pass_testing import text_graph as graph


def rewrite(text: str) -> str:
    """Run remove-identity on text IR; check validity and unchanged outputs."""
    before = parse_ir(text)
    after = parse_ir(text)
    (remove,) = parse_pipeline("remove-identity")
    after = remove.run(after)
    verify(after)
    assert after.inputs == before.inputs and after.outputs == before.outputs
    rng = np.random.default_rng(0)
    feeds = {n: rng.standard_normal(before.tensor(n).shape).astype(np.float32) for n in before.inputs}
    for name, value in run(before, feeds).items():
        assert np.array_equal(run(after, feeds)[name], value)
    return print_ir(after)


def test_consumers_read_the_input_directly():
    src = graph("input %x: f32[2,3]",
                '%a: f32[2,3] = Relu "r1" (%x)',
                '%b: f32[2,3] = Identity "id" (%a)',
                '%c: f32[2,3] = Dropout "drop" (%b)',
                '%d: f32[2,3] = Relu "r2" (%c)',
                "output %d")
    assert rewrite(src) == graph("input %x: f32[2,3]",
                                 '%a: f32[2,3] = Relu "r1" (%x)',
                                 '%d: f32[2,3] = Relu "r2" (%a)',
                                 "output %d")


def test_graph_output_name_is_kept_by_renaming_the_producer():
    src = graph("input %x: f32[2,3]",
                '%r: f32[2,3] = Relu "r" (%x)',
                '%y: f32[2,3] = Identity "id" (%r)',
                '%z: f32[2,3] = Relu "r2" (%r)',
                "output %y, %z")
    assert rewrite(src) == graph("input %x: f32[2,3]",
                                 '%y: f32[2,3] = Relu "r" (%x)',
                                 '%z: f32[2,3] = Relu "r2" (%y)',
                                 "output %y, %z")


def test_chain_ending_in_an_output():
    src = graph("input %x: f32[4]",
                '%r: f32[4] = Relu "r" (%x)',
                '%a: f32[4] = Identity "id1" (%r)',
                '%y: f32[4] = Identity "id2" (%a)',
                "output %y")
    assert rewrite(src) == graph("input %x: f32[4]", '%y: f32[4] = Relu "r" (%x)', "output %y")


def test_kept_between_input_and_output():
    src = graph("input %x: f32[4]", '%y: f32[4] = Identity "id" (%x)', "output %y")
    assert rewrite(src) == src


def test_kept_between_two_outputs():
    src = graph("input %x: f32[4]",
                '%r: f32[4] = Relu "r" (%x)',
                '%y: f32[4] = Dropout "drop" (%r)',
                "output %r, %y")
    assert rewrite(src) == src


def test_identity_of_a_constant_output_becomes_a_constant():
    src = graph("input %x: f32[2]",
                "const %k: i64[2] = [3,4]",
                '%y: i64[2] = Identity "id" (%k)',
                '%r: f32[2] = Relu "r" (%x)',
                "output %r, %y")
    assert rewrite(src) == graph("input %x: f32[2]",
                                 "const %y: i64[2] = [3,4]",
                                 '%r: f32[2] = Relu "r" (%x)',
                                 "output %r, %y")


def test_onnx_dropout_and_identity_are_removed():
    nodes = [helper.make_node("Relu", ["x"], ["a"]),
             helper.make_node("Dropout", ["a"], ["b"]),
             helper.make_node("Identity", ["b"], ["y"])]
    model = helper.make_model(helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 5])]),
        opset_imports=[helper.make_opsetid("", 17)])
    text = print_ir(lower_model(model, {}))
    assert rewrite(text) == graph("input %x: f32[2,5]", '%y: f32[2,5] = Relu "Relu_0" (%x)', "output %y")
