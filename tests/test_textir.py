"""Text IR: print -> parse -> print is the identity, the parsed graph equals the
printed one in every respect, and malformed text fails with a positioned IRError."""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from nnc import dtypes
from nnc.errors import IRError
from nnc.ir import Graph, Node, QuantParams, Tensor
from nnc.ops import NoAttrs, OpDef, attrs_dict, get_op, registry
from nnc.ops.elementwise import AlphaAttrs, ClipAttrs
from nnc.textir import parse_ir, print_ir

MODELS_DIR = Path(__file__).resolve().parents[2] / "shared/models/mlperf-tiny"
MODELS = sorted(MODELS_DIR.glob("*.onnx")) if MODELS_DIR.is_dir() else []
NAN_PAYLOAD = struct.unpack("<d", struct.pack("<Q", 0x7FF8000000000001))[0]
MLPERF_NAME = ("functional_1/activation_3/Relu;functional_1/batch_normalization_3/FusedBatchNormV3;"
               "functional_1/depthwise_conv2d_1/depthwise;functional_1/conv2d_2/Conv2D:0 ") * 3


# -- helpers ---------------------------------------------------------------------------
def _canon(value):
    """Comparable form of an attribute value: type and repr, floats by their bits
    (so NaN equals the same NaN, -0.0 differs from 0.0 and 1 from 1.0)."""
    if isinstance(value, tuple):
        return ("tuple", tuple(_canon(v) for v in value))
    if isinstance(value, float):
        return ("float", struct.pack("<d", value))
    return (type(value).__name__, repr(value))


def assert_same_graph(a: Graph, b: Graph) -> None:
    assert (a.name, a.inputs, a.outputs) == (b.name, b.inputs, b.outputs)
    assert set(a.tensors) == set(b.tensors)
    for name, ta in a.tensors.items():
        tb = b.tensors[name]
        assert (ta.dtype, ta.shape, ta.layout) == (tb.dtype, tb.shape, tb.layout), name
        assert _canon_quant(ta.quant) == _canon_quant(tb.quant), name
        assert (ta.data is None) == (tb.data is None), name
        if ta.data is not None:
            assert ta.data.dtype == tb.data.dtype and ta.data.shape == tb.data.shape, name
            assert ta.data.tobytes() == tb.data.tobytes(), name
    nodes_a, nodes_b = a.nodes(), b.nodes()
    assert [n.name for n in nodes_a] == [n.name for n in nodes_b]
    for na, nb in zip(nodes_a, nodes_b):
        assert (na.op, na.inputs, na.outputs) == (nb.op, nb.inputs, nb.outputs), na.name
        assert type(na.attrs) is type(nb.attrs), na.name
        assert _canon(tuple(attrs_dict(na.attrs).values())) == _canon(tuple(attrs_dict(nb.attrs).values()))


def _canon_quant(q):
    return None if q is None else (_canon(q.scale), _canon(q.zero_point), q.axis)


def round_trip(graph: Graph) -> tuple[str, Graph]:
    text = print_ir(graph)
    parsed = parse_ir(text)
    assert print_ir(parsed) == text
    assert_same_graph(graph, parsed)
    return text, parsed


def add_node(graph: Graph, op: str, inputs, outputs: dict, attrs=NoAttrs(), name=None):
    """Add tensors `outputs` (name -> (dtype, shape) or Tensor) and a node producing them."""
    for out, spec in outputs.items():
        graph.add_tensor(spec if isinstance(spec, Tensor) else Tensor(out, *spec))
    return graph.add_node(Node(f"n{len(graph)}" if name is None else name, op, list(inputs), list(outputs), attrs))


@dataclass(frozen=True)
class ProbeAttrs:
    count: int
    ratio: float
    label: str
    flag: bool
    limit: float | None
    shape: tuple[int, ...]
    weights: tuple[float, ...]
    nested: tuple[tuple[int, ...], ...]
    maybe: str | None = None


class Probe(OpDef):
    """A test-only op whose attributes use every attribute value kind."""

    name = "TestProbe"
    Attrs = ProbeAttrs


class Bare(OpDef):
    name = "TestBare"


@pytest.fixture
def probe_ops(monkeypatch):
    monkeypatch.setitem(registry._OPS, Probe.name, Probe)
    monkeypatch.setitem(registry._OPS, Bare.name, Bare)


# -- hand-built graphs ------------------------------------------------------------------
def test_canonical_text_of_a_small_graph():
    g = Graph("tiny")
    g.add_tensor(Tensor("x", "f32", (1, 4), layout="NC"))
    g.inputs.append("x")
    g.add_constant("w", np.array([1.0, -2.5, 0.1, np.inf], np.float32))
    g.add_constant("shape", np.array([-1, 4], np.int64))
    add_node(g, "Add", ["x", "w"], {"y": ("f32", (1, 4))}, name="add")
    add_node(g, "Clip", ["y"], {"model/out:0": ("f32", (1, 4))}, ClipAttrs(0.0, None), name="clip 1")
    g.outputs.append("model/out:0")
    text, _ = round_trip(g)
    assert text == (
        'graph "tiny" {\n'
        "  input %x: f32[1,4] layout=NC\n"
        "  const %w: f32[4] = [1.0,-2.5,0.1,inf]\n"
        "  const %shape: i64[2] = [-1,4]\n"
        '  %y: f32[1,4] = Add "add" (%x, %w)\n'
        '  %"model/out:0": f32[1,4] = Clip "clip 1" (%y) {min=0.0, max=none}\n'
        '  output %"model/out:0"\n'
        "}\n"
    )


def test_every_feature_round_trips(probe_ops):
    g = Graph('kws "dscnn"\n')
    weird = [MLPERF_NAME, 'quote " backslash \\ tab \t newline \n', "ünïcode→名前", "0", "a.b-c", "-x"]
    g.add_tensor(Tensor(weird[0], "i8", (1, 49, 10, 1), layout="NHWC",
                        quant=QuantParams((0.5,), (-3,))))
    g.add_tensor(Tensor("in2", "f32", (3,), layout="odd layout/1"))
    g.inputs += ["in2", weird[0]]
    g.add_constant("w", np.arange(64, dtype=np.int8).reshape(4, 16),
                   quant=QuantParams((0.1, 0.2, float("inf"), 1e-30), (0, 0, 0, 0), axis=0))
    g.add_constant("pc1", np.ones(2, np.float32), quant=QuantParams((0.25,), (7,), axis=1))
    g.add_tensor(Tensor("leftover", "u8", (2, 2)))  # produced by no node, e.g. after a rewrite
    attrs = ProbeAttrs(count=-3, ratio=float("nan"), label='a "q" \\ é', flag=True, limit=None,
                       shape=(), weights=(1.0, -0.0, float("-inf"), 1e-300, -float("nan"), NAN_PAYLOAD),
                       nested=((1, 2), (), (3,)))
    add_node(g, "TestProbe", [weird[0], "", "w", ""],
             {weird[1]: ("f32", (2,)), weird[2]: Tensor(weird[2], "i32", (), layout="N")}, attrs, name=weird[1])
    add_node(g, "TestBare", [], {weird[3]: ("bool", (0,)), weird[4]: ("f64", (1, 0, 2))}, name="")
    add_node(g, "TestBare", [weird[3], weird[4], "in2"], {}, name=weird[2])
    add_node(g, "TestBare", [weird[2]], {weird[5]: ("i16", (5,))})
    g.outputs += [weird[2], weird[1], "in2", "w"]
    text, parsed = round_trip(g)
    assert '(%"' in text and ", _, %w, _)" in text and "tensor %leftover: u8[2,2]\n" in text
    assert "quant(scale=[0.1,0.2,inf,1e-30], zero_point=[0,0,0,0], axis=0)" in text
    assert 'TestBare "" ()' in text
    assert "weights=[1.0,-0.0,-inf,1e-300,-nan,nan:0x7ff8000000000001]" in text
    assert parsed.node(weird[1]).inputs == [weird[0], "", "w", ""]


def test_all_dtypes_small_and_large_constants_are_bit_exact():
    g = Graph("dtypes")
    rng = np.random.default_rng(7)
    for name, dtype in dtypes.NUMPY.items():
        if dtype.kind == "f":
            nan_payload = np.frombuffer(b"\x01\x00\xc0\x7f\x00\x00\xf8\x7f", dtype=np.uint8)
            special = np.array([np.inf, -np.inf, np.nan, -0.0, 0.0, np.finfo(dtype).tiny / 2,
                                np.finfo(dtype).max, 0.1, -1e-7], dtype)
            g.add_constant(f"{name}_payload", nan_payload.view(dtype))  # NaN with payload: hex
            large = rng.standard_normal(40).astype(dtype)
        elif dtype.kind == "b":
            special = np.array([True, False, True])
            large = rng.integers(0, 2, 33).astype(bool)
        else:
            info = np.iinfo(dtype)
            special = np.array([info.min, info.max, 0, -1 if info.min else 1], dtype)
            large = rng.integers(info.min, info.max, 20, dtype=dtype, endpoint=True)
        g.add_constant(f"{name}_small", special)
        g.add_constant(f"{name}_large", large.reshape(4, -1) if large.size % 4 == 0 else large)
        g.add_constant(f"{name}_empty", np.zeros((2, 0), dtype))
    text, parsed = round_trip(g)
    assert 'const %f32_small: f32[9] = [inf,-inf,nan,-0.0,0.0,' in text
    assert "const %i64_small: i64[4] = [-9223372036854775808,9223372036854775807,0,-1]" in text
    assert "const %bool_small: bool[3] = [true,false,true]" in text
    assert 'const %f64_payload: f64[1] = hex"0100c07f0000f87f"' in text
    assert 'const %i8_large: i8[4,5] = hex"' in text
    for tensor in parsed.tensors.values():
        tensor.data[...] = tensor.data  # parsed constants are ordinary writable arrays


def test_scalar_constants():
    g = Graph("g")
    g.add_constant("s", np.array(0.5, np.float32))
    g.add_constant("b", np.array(True))
    text, _ = round_trip(g)
    assert "const %s: f32[] = 0.5\n" in text and "const %b: bool[] = true\n" in text


def test_elided_constants_print_sizes_and_refuse_to_parse():
    g = Graph("g")
    g.add_constant("big", np.zeros((8, 8), np.float32))
    g.add_constant("small", np.array([3], np.int32))
    text = print_ir(g, elide_constants=True)
    assert "const %big: f32[8,8] = <elided 256 bytes>\n" in text
    assert "const %small: i32[1] = [3]\n" in text
    with pytest.raises(IRError, match=r"^line 2:26: constant data was elided"):
        parse_ir(text)


def test_printing_normalizes_attrs_as_the_parser_will():
    g = Graph("g")
    g.add_tensor(Tensor("x", "f32", (2,)))
    g.inputs.append("x")
    add_node(g, "Clip", ["x"], {"y": ("f32", (2,))}, ClipAttrs(0, np.float32(6)))  # ints, numpy scalars
    add_node(g, "LeakyRelu", ["y"], {"z": ("f32", (2,))}, AlphaAttrs(np.float64(0.1)))
    text = print_ir(g)
    assert "{min=0.0, max=6.0}" in text and "{alpha=0.1}" in text
    assert print_ir(parse_ir(text)) == text


def test_hand_written_text_is_accepted():
    text = """
    # comments, free whitespace, float lists and bare scalars
    graph "hand" {
      input %0 : f32 [ 2 ]
      const %c: f32[2] = [1, 2.5]   # ints are fine in a float constant
      const %one: i32[1] = 7
      const %q: i8[2] quant(zero_point=[0, 0], scale=[1, 2], axis=0) = [-1, 1]
      %1: f32[2] = Add "a" (%0, %c)
      %2: f32[2] = Clip "c" (%1) {max=6}
      output %2
    }"""
    g = parse_ir(text)
    assert g.tensors["c"].data.tolist() == [1.0, 2.5]
    assert g.tensors["one"].data.tolist() == [7]
    assert g.tensors["q"].quant == QuantParams((1.0, 2.0), (0, 0), 0)
    assert g.node("c").attrs == ClipAttrs(None, 6.0)
    assert print_ir(parse_ir(print_ir(g))) == print_ir(g)


# -- errors ----------------------------------------------------------------------------------
_BAD = [
    ('  %y: f32[2] = Conv2 "n" (%x)', r"line 3:16: unknown op 'Conv2'$"),
    ('  %y: f32[2] = Clip "n" (%x) {minimum=1.0}', r'line 3:16: Clip "n": ClipAttrs: unknown attribute\(s\) minimum$'),
    ('  %y: f32[2] = LeakyRelu "n" (%x)', r'line 3:16: LeakyRelu "n": AlphaAttrs: .*alpha'),
    ('  %y: f32[2] = Clip "n" (%x) {min=1.0, min=2.0}', r"line 3:40: attribute 'min' is given twice"),
    ('  %y: f32[2] = Clip "n" (%x) ?', r"line 3:30: unexpected '\?'; expected '\{' or '}' or a name or a tensor name"),
    ('  %y: f32[2] = Clip "n" (%x', r"line 4:1: unexpected '}'; expected '\)' or ','$"),
    ('  %y: f32[2] = Clip "n" (%z)', r"line 3:26: tensor %z is not defined before this use"),
    ('  %y: f33[2] = Relu "n" (%x)', r"line 3:7: unknown dtype 'f33'; known: f32, "),
    ('  %x: f32[2] = Relu "n" (%x)', r"line 3:3: tensor 'x' is defined twice"),
    ('  const %c: f32[2] = hex"0000"', r"line 3:22: hex data holds 2 bytes, f32\[2\] needs 8"),
    ('  const %c: u8[2] = [1, 256]', r"line 3:9: constant values do not fit u8"),
    ('  const %c: f32[2] = [1.0]', r"line 3:9: f32\[2\] needs 2 values, got 1"),
    ('  input %q: i8[2] quant(scale=[1.0, 2.0], zero_point=[0, 0])', r"line 3:25: per-tensor quantization"),
    ('  input %q: i8[2] quant(scale=1.0)', r"line 3:25: quant\(...\) takes scale, zero_point"),
    ('  output %nothing', r"line 3:10: tensor %nothing is not defined"),
    ('  input %"bad\\q": f32[2]', r"line 3:9: bad string"),
]


@pytest.mark.parametrize("line, message", _BAD, ids=[m[:25] for _, m in _BAD])
def test_malformed_text_raises_positioned_one_line_irerror(line, message):
    text = f'graph "g" {{\n  input %x: f32[2]\n{line}\n}}\n'
    with pytest.raises(IRError) as info:
        parse_ir(text)
    assert re.match(message, str(info.value)), str(info.value)
    assert "\n" not in str(info.value)


def test_truncated_text_reports_end_of_text():
    with pytest.raises(IRError, match=r"^line 2:19: unexpected end of text; expected .*"):
        parse_ir('graph "g" {\n  input %x: f32[2]')


def test_huge_tokens_are_shortened_in_messages():
    with pytest.raises(IRError) as info:
        parse_ir('graph "g" {\n  const %c: f32[1] = [1.0] "' + "a" * 100000 + '"\n}')
    assert str(info.value).startswith("line 2:28: unexpected '\"aaaa") and len(str(info.value)) < 200


# -- random graphs -----------------------------------------------------------------------------
_NAMES = st.one_of(st.text("abcXYZ_019.-", min_size=1, max_size=8), st.text(min_size=1, max_size=12))
_DTYPES = st.sampled_from(["f32", "f64", "i32", "i8"])


def _elements(dtype: str):
    if dtype in ("f32", "f64"):
        return st.floats(width=32 if dtype == "f32" else 64)
    lo, hi = dtypes.integer_range(dtype)
    return st.integers(lo, hi)


def _bound(dtype: str):
    special = [float("inf"), float("-inf"), -0.0] if dtype[0] == "f" else []  # Clip needs finite int bounds
    return st.one_of(st.none(), st.floats(-100, 100), st.sampled_from(special or [0.0]))


@st.composite
def random_graphs(draw):
    dtype = draw(_DTYPES)
    shape = tuple(draw(st.lists(st.integers(1, 3), max_size=3)))
    names = iter(draw(st.lists(_NAMES, min_size=40, max_size=40, unique=True)))
    g = Graph(draw(st.text(max_size=10)))
    for _ in range(draw(st.integers(1, 2))):
        name = next(names)
        g.add_tensor(Tensor(name, dtype, shape, layout=draw(st.sampled_from([None, "NHWC", "a b"]))))
        g.inputs.append(name)
    values = list(g.inputs)
    for i in range(draw(st.integers(1, 8))):
        op = draw(st.sampled_from(["Add", "Relu", "Clip"] + (["LeakyRelu"] if dtype[0] == "f" else [])))
        x = draw(st.sampled_from(values))
        inputs, attrs = [x], NoAttrs()
        if op == "Add":
            if draw(st.booleans()):
                cshape = tuple(draw(st.sampled_from([1, d])) for d in shape[draw(st.integers(0, len(shape))):])
                data = draw(hnp.arrays(dtypes.to_numpy(dtype), cshape, elements=_elements(dtype)))
                scale = draw(st.floats(1e-6, 10))
                quant = draw(st.sampled_from([None, QuantParams((scale,), (3,)), QuantParams((scale, 1.0), (0, -1), 0)]))
                inputs.append(g.add_constant(next(names), data, quant=quant).name)
            else:
                inputs.append(draw(st.sampled_from(values)))
        elif op == "Clip":
            attrs = ClipAttrs(draw(_bound(dtype)), draw(_bound(dtype)))
        elif op == "LeakyRelu":
            attrs = AlphaAttrs(draw(st.floats()))
        out = next(names)
        add_node(g, op, inputs, {out: (dtype, shape)}, attrs, name=next(names))
        values.append(out)
    g.outputs = draw(st.lists(st.sampled_from(values), min_size=1, max_size=3, unique=True))
    feeds = {n: draw(hnp.arrays(dtypes.to_numpy(dtype), shape, elements=_elements(dtype))) for n in g.inputs}
    return g, feeds


def evaluate(graph: Graph, feeds: dict) -> list[bytes]:
    env = {n: t.data for n, t in graph.tensors.items() if t.data is not None} | feeds
    for node in graph.nodes():
        results = get_op(node.op).evaluate(node.attrs, [env[t] for t in node.inputs])
        env.update(zip(node.outputs, results))
    return [np.asarray(env[n]).tobytes() for n in graph.outputs]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_graphs())
def test_random_elementwise_graphs_round_trip_and_compute_the_same(case):
    graph, feeds = case
    _, parsed = round_trip(graph)
    with np.errstate(all="ignore"):
        assert evaluate(parsed, feeds) == evaluate(graph, feeds)


# -- real models -------------------------------------------------------------------------------
@pytest.mark.skipif(not MODELS, reason=f"MLPerf Tiny models not found in {MODELS_DIR}")
@pytest.mark.parametrize("path", MODELS, ids=[p.stem for p in MODELS])
def test_mlperf_tiny_models_round_trip(path):
    from nnc.frontend.onnx_loader import load

    graph = load(path)
    text, _ = round_trip(graph)
    assert text.startswith("graph ")
