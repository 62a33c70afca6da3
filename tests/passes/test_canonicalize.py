"""canonicalize: transpose/reshape simplifications, text in, text out, with the
graph's outputs checked bit for bit; hypothesis over random perms and shapes."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from nnc.interpreter import run
from nnc.ir import Graph, Node, Tensor
from nnc.ops import NoAttrs
from nnc.ops.shape import ReshapeAttrs, TransposeAttrs
from nnc.passes.canonicalize import compose, inverse, keeps_memory_order
from nnc.passmanager import format_pipeline, parse_pipeline
from nnc.textir import parse_ir, print_ir
from nnc.verifier import verify

from pass_testing import feeds_for
from pass_testing import text_graph as graph


def canonicalize(graph: Graph) -> Graph:
    """Run the pass on a copy; check validity, interface and bit-identical outputs."""
    (pass_,) = parse_pipeline("canonicalize")
    after = pass_.run(graph.copy())
    verify(after)
    assert after.inputs == graph.inputs and after.outputs == graph.outputs
    feeds = feeds_for(graph)
    expected, got = run(graph, feeds), run(after, feeds)
    for name, value in expected.items():
        assert got[name].dtype == value.dtype and np.array_equal(got[name], value)
    return after


def rewrite(text: str) -> str:
    return print_ir(canonicalize(parse_ir(text)))


# -- permutation helpers -------------------------------------------------------------
def test_perm_helpers():
    x = np.arange(24).reshape(2, 3, 4)
    p1, p2 = (2, 0, 1), (1, 2, 0)
    assert np.array_equal(np.transpose(np.transpose(x, p1), p2), np.transpose(x, compose(p1, p2)))
    assert compose(p1, inverse(p1)) == (0, 1, 2)
    assert keeps_memory_order((0, 2, 3, 1), (1, 1, 5, 7))
    assert not keeps_memory_order((0, 2, 3, 1), (1, 3, 5, 7))


# -- one rule at a time --------------------------------------------------------------
def test_identity_transpose_is_removed():
    src = graph("input %x: f32[2,3]",
                '%t: f32[2,3] = Transpose "t" (%x) {perm=[0,1]}',
                '%y: f32[2,3] = Relu "r" (%t)',
                "output %y")
    assert rewrite(src) == graph("input %x: f32[2,3]", '%y: f32[2,3] = Relu "r" (%x)', "output %y")


def test_transposes_compose():
    src = graph("input %x: f32[2,3,4]",
                '%a: f32[4,2,3] = Transpose "t1" (%x) {perm=[2,0,1]}',
                '%y: f32[4,3,2] = Transpose "t2" (%a) {perm=[0,2,1]}',
                "output %y")
    assert rewrite(src) == graph("input %x: f32[2,3,4]",
                                 '%y: f32[4,3,2] = Transpose "t2" (%x) {perm=[2,1,0]}',
                                 "output %y")


def test_inverse_transposes_cancel_and_the_output_name_stays():
    src = graph("input %x: f32[2,3,4]",
                '%r: f32[2,3,4] = Relu "r" (%x)',
                '%a: f32[4,2,3] = Transpose "t1" (%r) {perm=[2,0,1]}',
                '%y: f32[2,3,4] = Transpose "t2" (%a) {perm=[1,2,0]}',
                "output %y")
    assert rewrite(src) == graph("input %x: f32[2,3,4]", '%y: f32[2,3,4] = Relu "r" (%x)', "output %y")


def test_shared_first_transpose_stays_for_its_other_reader():
    src = graph("input %x: f32[2,3,4]",
                '%a: f32[4,2,3] = Transpose "t1" (%x) {perm=[2,0,1]}',
                '%b: f32[2,3,4] = Transpose "t2" (%a) {perm=[1,2,0]}',
                '%c: f32[4,2,3] = Relu "r" (%a)',
                '%y: f32[2,3,4] = Relu "r2" (%b)',
                "output %y, %c")
    assert rewrite(src) == graph("input %x: f32[2,3,4]",
                                 '%a: f32[4,2,3] = Transpose "t1" (%x) {perm=[2,0,1]}',
                                 '%c: f32[4,2,3] = Relu "r" (%a)',
                                 '%y: f32[2,3,4] = Relu "r2" (%x)',
                                 "output %y, %c")


def test_transpose_of_unit_axes_becomes_reshape():
    src = graph("input %x: f32[1,1,1,64]",
                '%y: f32[1,64,1,1] = Transpose "t" (%x) {perm=[0,3,1,2]}',
                "output %y")
    assert rewrite(src) == graph("input %x: f32[1,1,1,64]",
                                 '%y: f32[1,64,1,1] = Reshape "t" (%x) {shape=[1,64,1,1]}',
                                 "output %y")


def test_real_transpose_stays():
    src = graph("input %x: f32[1,2,1,3]",
                '%y: f32[1,3,2,1] = Transpose "t" (%x) {perm=[0,3,1,2]}',
                "output %y")
    assert rewrite(src) == src


def test_reshapes_merge_and_noop_reshape_goes():
    src = graph("input %x: f32[2,6]",
                '%a: f32[12] = Reshape "r1" (%x) {shape=[12]}',
                '%b: f32[3,4] = Reshape "r2" (%a) {shape=[3,4]}',
                '%c: f32[3,4] = Reshape "r3" (%b) {shape=[3,4]}',
                '%y: f32[3,4] = Relu "relu" (%c)',
                "output %y")
    assert rewrite(src) == graph("input %x: f32[2,6]",
                                 '%b: f32[3,4] = Reshape "r2" (%x) {shape=[3,4]}',
                                 '%y: f32[3,4] = Relu "relu" (%b)',
                                 "output %y")


def test_reshape_back_to_the_input_shape_vanishes_even_at_an_output():
    src = graph("input %x: f32[2,6]",
                '%r: f32[2,6] = Relu "relu" (%x)',
                '%a: f32[12] = Reshape "r1" (%r) {shape=[12]}',
                '%y: f32[2,6] = Reshape "r2" (%a) {shape=[2,6]}',
                "output %y")
    assert rewrite(src) == graph("input %x: f32[2,6]", '%y: f32[2,6] = Relu "relu" (%x)', "output %y")


def test_interface_names_keep_a_noop_between_input_and_output():
    """The no-op stays (an identity Transpose as a Reshape, which moves no data)."""
    src = graph("input %x: f32[2,3]",
                '%y: f32[2,3] = Transpose "t" (%x) {perm=[0,1]}',
                '%z: f32[2,3] = Reshape "r" (%x) {shape=[2,3]}',
                "output %y, %z")
    assert rewrite(src) == src.replace('Transpose "t" (%x) {perm=[0,1]}', 'Reshape "t" (%x) {shape=[2,3]}')


def test_duplicate_transposes_merge():
    src = graph("input %x: f32[2,3]",
                '%a: f32[3,2] = Transpose "t1" (%x) {perm=[1,0]}',
                '%b: f32[3,2] = Transpose "t2" (%x) {perm=[1,0]}',
                '%y: f32[3,2] = Add "add" (%a, %b)',
                "output %y")
    assert rewrite(src) == graph("input %x: f32[2,3]",
                                 '%a: f32[3,2] = Transpose "t1" (%x) {perm=[1,0]}',
                                 '%y: f32[3,2] = Add "add" (%a, %a)',
                                 "output %y")


QDQ_CONSTS = ("const %s: f32[] = 0.5", "const %z: i8[] = 3")


def test_reshape_moves_through_per_tensor_ops_into_the_next_reshape():
    src = graph("input %x: f32[1,1,1,8]", *QDQ_CONSTS,
                '%a: f32[1,8,1,1] = Reshape "r1" (%x) {shape=[1,8,1,1]}',
                '%b: f32[1,8,1,1] = Relu "relu" (%a)',
                '%q: i8[1,8,1,1] = QuantizeLinear "q" (%b, %s, %z) {axis=none, dtype="i8"}',
                '%y: i8[1,8] = Reshape "r2" (%q) {shape=[1,8]}',
                "output %y")
    assert rewrite(src) == graph("input %x: f32[1,1,1,8]", *QDQ_CONSTS,
                                 '%b: f32[1,1,1,8] = Relu "relu" (%x)',
                                 '%q: i8[1,1,1,8] = QuantizeLinear "q" (%b, %s, %z) {axis=none, dtype="i8"}',
                                 '%y: i8[1,8] = Reshape "r2" (%q) {shape=[1,8]}',
                                 "output %y")


def test_reshape_does_not_move_through_per_axis_or_shared_ops():
    per_axis = graph("input %x: f32[8]", "const %s: f32[2] = [0.5,0.25]", "const %z: i8[2] = [0,1]",
                     '%a: f32[2,4] = Reshape "r1" (%x) {shape=[2,4]}',
                     '%q: i8[2,4] = QuantizeLinear "q" (%a, %s, %z) {axis=0, dtype="i8"}',
                     '%y: i8[8] = Reshape "r2" (%q) {shape=[8]}',
                     "output %y")
    assert rewrite(per_axis) == per_axis
    shared = graph("input %x: f32[8]",
                   '%a: f32[2,4] = Reshape "r1" (%x) {shape=[2,4]}',
                   '%b: f32[2,4] = Relu "relu" (%a)',
                   '%y: f32[8] = Reshape "r2" (%b) {shape=[8]}',
                   "output %y, %b")
    assert rewrite(shared) == shared


def test_pipeline_name():
    assert format_pipeline(parse_pipeline("canonicalize")) == "canonicalize"


# -- random chains of transposes and reshapes ------------------------------------------
@st.composite
def movement_chains(draw):
    """A shape with some unit axes and 1-5 Transposes/Reshapes applied in a row."""
    shape = tuple(draw(st.lists(st.sampled_from([1, 1, 2, 3, 4]), min_size=1, max_size=5)))
    steps = []
    current = shape
    for _ in range(draw(st.integers(1, 5))):
        if draw(st.booleans()):
            perm = tuple(draw(st.permutations(range(len(current)))))
            steps.append(("Transpose", perm))
            current = tuple(current[p] for p in perm)
        else:
            dims = [d for d in current if d != 1]
            ones = draw(st.integers(0, 2))
            new = list(draw(st.permutations(dims))) if draw(st.booleans()) else dims
            if int(np.prod(new)) != int(np.prod(current)):
                new = dims
            for _ in range(ones):
                new.insert(draw(st.integers(0, len(new))), 1)
            new = new or [1]
            steps.append(("Reshape", tuple(new)))
            current = tuple(new)
    return shape, steps


def build_chain(shape, steps, relu_between: bool) -> Graph:
    g = Graph("chain")
    g.add_tensor(Tensor("x", "f32", shape))
    g.inputs.append("x")
    current = "x"
    for i, (op, arg) in enumerate(steps):
        src = g.tensor(current)
        out_shape = tuple(src.shape[p] for p in arg) if op == "Transpose" else arg
        attrs = TransposeAttrs(arg) if op == "Transpose" else ReshapeAttrs(arg)
        g.add_tensor(Tensor(f"t{i}", "f32", out_shape))
        g.add_node(Node(f"n{i}", op, [current], [f"t{i}"], attrs))
        current = f"t{i}"
        if relu_between and i % 2:
            g.add_tensor(Tensor(f"r{i}", "f32", out_shape))
            g.add_node(Node(f"relu{i}", "Relu", [current], [f"r{i}"], NoAttrs()))
            current = f"r{i}"
    g.outputs.append(current)
    verify(g)
    return g


def assert_canonical(g: Graph) -> None:
    """No rule applies (movement ops between the graph input and output excepted)."""
    for node in g.nodes():
        src = g.tensor(node.inputs[0])
        interface = node.inputs[0] in g.inputs and node.outputs[0] in g.outputs
        up = g.producer(node.inputs[0])
        if node.op == "Transpose":
            assert interface or not keeps_memory_order(node.attrs.perm, src.shape)
            assert up is None or up.op != "Transpose"
        if node.op == "Reshape":
            assert interface or node.attrs.shape != src.shape
            assert up is None or up.op != "Reshape"


@settings(max_examples=60, deadline=None)
@given(movement_chains(), st.booleans())
def test_random_chains_simplify_and_keep_values(chain, relu_between):
    shape, steps = chain
    g = build_chain(shape, steps, relu_between)
    after = canonicalize(g)
    assert_canonical(after)
    movement = [n for n in after.nodes() if n.op in ("Transpose", "Reshape")]
    assert len(movement) <= len(steps)
    if not relu_between and len({op for op, _ in steps}) == 1:
        assert len(movement) <= 1  # a run of Transposes, or of Reshapes, ends as one op or none


def test_deferred_rules_fire_on_the_ops_their_modules_declare():
    """canonicalize lists the rules of other modules as Deferred(module, name,
    *ops); the ops must be those the rule's @fires_on declares."""
    from nnc.passes.canonicalize import CANONICAL_RULES
    from nnc.passes.rule_dispatch import Deferred

    deferred = [r for r in CANONICAL_RULES if isinstance(r, Deferred)]
    assert len(deferred) == 16
    for rule in deferred:
        assert rule.resolve().ops == rule.ops, rule
        assert rule.resolve().__name__ == rule.name


def test_canonicalize_imports_the_rules_of_the_graph_ops_only():
    import subprocess
    import sys

    code = ("import sys; from nnc.ir import Graph, Tensor, Node; from nnc.ops import get_op; "
            "from nnc.passmanager import parse_pipeline; "
            "g = Graph('g'); g.add_tensor(Tensor('x', 'f32', (1, 4))); g.add_tensor(Tensor('y', 'f32', (1, 4))); "
            "g.inputs.append('x'); g.outputs.append('y'); g.add_node(Node('r', 'Relu', ['x'], ['y'], "
            "get_op('Relu').Attrs())); parse_pipeline('canonicalize')[0].run(g); "
            "print(sorted(m for m in sys.modules if m.startswith('nnc.passes.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert eval(out) == ["nnc.passes.canonicalize", "nnc.passes.graph_edits",  # noqa: S307 - our own list
                         "nnc.passes.rule_dispatch"]
