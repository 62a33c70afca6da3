"""IntegerProgram (nnc.train.exact) against the reference interpreter: the integer
graphs that nnc's quantize pass makes of float models, run on a whole batch at
once, must give every sample exactly the bytes `nnc.interpreter.run` gives it."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, numpy_helper
from onnx import helper as oh

torch = pytest.importorskip("torch", reason="nnc.train needs PyTorch (pip install 'nnc[train]')")

import nnc  # noqa: E402
from nnc.errors import UnsupportedError  # noqa: E402
from nnc.ir import Node, Tensor  # noqa: E402
from nnc.numerics import round_shift as numpy_round_shift  # noqa: E402
from nnc.ops.layernorm import MAX_EPS, MAX_ROW, QLayerNormAttrs  # noqa: E402
from nnc.ops.layernorm import rsqrt_fixed as numpy_rsqrt_fixed  # noqa: E402
from nnc.ops.qsoftmax import QLogSoftmaxAttrs, log_softmax_attrs, log_table  # noqa: E402
from nnc.quantizer.rules import exp_table  # noqa: E402
from nnc.train.exact import (IntegerProgram, reference_per_sample, round_shift, rsqrt_fixed,  # noqa: E402
                             supported_ops)

ROOT = Path(__file__).resolve().parents[2]
DIGITS = ROOT / "examples" / "digits"
TINY_CNN = ROOT / "examples" / "01-tiny-cnn"
NO_LAYOUT = "remove-identity,canonicalize,fold-constants,fold-batchnorm,fuse-bias,fuse-activation,canonicalize"
RNG = np.random.default_rng(12)


# -- helpers -----------------------------------------------------------------------------------
def integer_graph(model: Path, calib: Path, **options) -> nnc.Graph:
    """The integer graph the c and az-sim targets run, through the public compile API."""
    return nnc.compile(str(model), "ir", quantize=True, calib=str(calib), verify=False, **options).graph


def ops_of(graph: nnc.Graph) -> set[str]:
    return {node.op for node in graph.nodes()}


def assert_bit_exact(graph: nnc.Graph, samples: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """The batched outputs equal, sample by sample, the reference's in dtype, shape and bytes."""
    outputs = IntegerProgram(graph)({name: torch.from_numpy(x) for name, x in samples.items()})
    count = len(next(iter(samples.values())))
    for i in range(count):
        expected = nnc.run(graph, {name: x[i:i + 1] for name, x in samples.items()})
        for name, want in expected.items():
            got = outputs[name][i:i + 1].numpy()
            assert (got.dtype, got.shape) == (want.dtype, want.shape), name
            assert got.tobytes() == want.tobytes(), f"output {name!r} of sample {i} differs"
    return outputs


def random_samples(graph: nnc.Graph, count: int = 40, spread: float = 1.5) -> dict[str, np.ndarray]:
    """Normal samples, wider than the calibration's, so that clamps saturate."""
    return {name: (RNG.standard_normal((count, *graph.tensors[name].shape[1:])) * spread).astype(np.float32)
            for name in graph.inputs}


def float_model(tmp_path: Path, nodes, inputs: dict[str, list[int]], outputs: list[str],
                weights: dict[str, np.ndarray]) -> tuple[Path, Path]:
    """An opset-17 ONNX model (output shapes inferred) and 16 normal calibration samples."""
    graph = oh.make_graph(nodes, "m", [oh.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs.items()],
                          [oh.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in outputs],
                          [numpy_helper.from_array(np.asarray(v), k) for k, v in weights.items()])
    model = onnx.shape_inference.infer_shapes(oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)]))
    path, calib = tmp_path / "model.onnx", tmp_path / "calib.npz"
    onnx.save(model, path)
    np.savez(calib, **{n: RNG.standard_normal((16, *s)).astype(np.float32) for n, s in inputs.items()})
    return path, calib


def w(*shape: int) -> np.ndarray:
    return (RNG.standard_normal(shape) * 0.4).astype(np.float32)


def node(op: str, inputs: list[str], output: str, **attrs):
    return oh.make_node(op, inputs, [output], **attrs)


# -- the example models ---------------------------------------------------------------------------
def digits_images() -> np.ndarray:
    return np.load(DIGITS / "calib.npz")["image"].reshape(-1, 1, 8, 8)


def test_digits_8bit_real_images():
    graph = integer_graph(DIGITS / "digits.onnx", DIGITS / "calib.npz")
    assert {"QConv", "QGemm", "Transpose", "Reshape"} <= ops_of(graph)
    outputs = assert_bit_exact(graph, {"image": digits_images()})
    assert len(set(outputs["logits"].argmax(dim=1).tolist())) > 5  # real, varied predictions


def test_digits_4bit_half_sparse():
    graph = integer_graph(DIGITS / "digits.onnx", DIGITS / "calib.npz", weight_bits=4, sparsity=0.5)
    samples = np.concatenate([digits_images()[:32], RNG.uniform(0, 1, (16, 1, 8, 8)).astype(np.float32)])
    assert_bit_exact(graph, {"image": samples})


def test_tiny_cnn():
    graph = integer_graph(TINY_CNN / "tiny_cnn.onnx", TINY_CNN / "sample.npz")
    assert {"QConv", "QAveragePool", "QSoftmax"} <= ops_of(graph)
    assert_bit_exact(graph, random_samples(graph))


def test_a_batch_of_256_digits_runs_well_under_a_second():
    program = IntegerProgram(integer_graph(DIGITS / "digits.onnx", DIGITS / "calib.npz"))
    images = torch.from_numpy(np.resize(digits_images(), (256, 1, 8, 8)))
    first = program({"image": images})["logits"]  # warms torch up
    start = time.perf_counter()
    again = program({"image": images})["logits"]
    assert time.perf_counter() - start < 1.0
    assert again.shape == (256, 10) and torch.equal(first, again)  # deterministic


# -- models built here, one group of integer ops each ------------------------------------------------
def test_depthwise_residual_global_average_gemm(tmp_path):
    nodes = [node("Conv", ["x", "w1", "b1"], "c1", pads=[1, 1, 1, 1]), node("Relu", ["c1"], "r1"),
             node("Conv", ["r1", "w2", "b2"], "c2", pads=[1, 1, 1, 1], group=8), node("Relu", ["c2"], "r2"),
             node("Add", ["r1", "r2"], "sum"), node("GlobalAveragePool", ["sum"], "gap"),
             node("Flatten", ["gap"], "flat"), node("Gemm", ["flat", "fw", "fb"], "y", transB=1)]
    weights = dict(w1=w(8, 4, 3, 3), b1=w(8), w2=w(8, 1, 3, 3), b2=w(8), fw=w(5, 8), fb=w(5))
    graph = integer_graph(*float_model(tmp_path, nodes, {"x": [1, 4, 8, 8]}, ["y"], weights))
    assert {"QConv", "QAdd", "QAveragePool", "QGemm"} <= ops_of(graph)
    assert any(n.op == "QConv" and n.attrs.group == 8 for n in graph.nodes())
    assert_bit_exact(graph, random_samples(graph))


@pytest.mark.parametrize("channels_last", [True, False])
def test_max_pools_concat_strides_dilations_asymmetric_pads(tmp_path, channels_last):
    nodes = [node("Conv", ["x", "w1"], "c1", kernel_shape=[2, 2], auto_pad="SAME_UPPER"),
             node("MaxPool", ["c1"], "p1", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=1),
             node("Conv", ["x", "w2"], "c2", strides=[2, 2], dilations=[2, 2], pads=[3, 2, 2, 3]),
             node("MaxPool", ["c2"], "p2", kernel_shape=[2, 2], dilations=[2, 2], pads=[1, 1, 1, 1]),
             node("Concat", ["p1", "p2"], "cat", axis=1), node("GlobalMaxPool", ["cat"], "g"),
             node("Flatten", ["g"], "flat"), node("Gemm", ["flat", "fw"], "y", transB=1)]
    weights = dict(w1=w(6, 3, 2, 2), w2=w(4, 3, 3, 3), fw=w(3, 10))
    model, calib = float_model(tmp_path, nodes, {"x": [1, 3, 9, 9]}, ["y", "cat"], weights)
    pipeline = None if channels_last else f"{NO_LAYOUT},quantize{{calib=\"{calib}\"}}"
    graph = integer_graph(model, calib, pipeline=pipeline)
    assert {"MaxPool", "Concat", "GlobalMaxPool"} <= ops_of(graph)
    assert {n.attrs.channels_last for n in graph.nodes() if n.op == "QConv"} == {channels_last}
    assert_bit_exact(graph, random_samples(graph))


def test_softmax_output(tmp_path):
    nodes = [node("Gemm", ["x", "w1", "b1"], "h", transB=1), node("Relu", ["h"], "r"),
             node("Gemm", ["r", "w2", "b2"], "logits", transB=1), node("Softmax", ["logits"], "y", axis=-1)]
    weights = dict(w1=w(16, 12), b1=w(16), w2=w(6, 16), b2=w(6))
    graph = integer_graph(*float_model(tmp_path, nodes, {"x": [1, 12]}, ["y"], weights))
    assert "QSoftmax" in ops_of(graph)
    assert_bit_exact(graph, random_samples(graph, spread=3.0))


def test_softmax_with_a_keep_mask(tmp_path):
    """Scores with a mask of -inf (fused into Softmax's keep mask): hidden
    positions take no part in the max and the sum."""
    nodes = [node("Gemm", ["x", "w1", "b1"], "h", transB=1), node("Add", ["h", "mask"], "masked"),
             node("Softmax", ["masked"], "y", axis=-1)]
    mask = np.where(np.arange(6) % 3 == 1, -np.inf, 0).astype(np.float32)[None]
    weights = dict(w1=w(6, 12), b1=w(6), mask=mask)
    graph = integer_graph(*float_model(tmp_path, nodes, {"x": [1, 12]}, ["y"], weights))
    softmax = next(n for n in graph.nodes() if n.op == "QSoftmax")
    assert len(softmax.inputs) == 3
    assert_bit_exact(graph, random_samples(graph, spread=3.0))


def test_log_softmax_outputs_over_the_last_axis_and_another(tmp_path):
    """A CTC-style head (classes last) and a LogSoftmax over axis 1, which the
    quantizer wraps in Transposes to and from the last axis."""
    nodes = [node("MatMul", ["x", "w1"], "h"), node("LogSoftmax", ["h"], "y", axis=-1),
             node("LogSoftmax", ["h"], "t", axis=1)]
    graph = integer_graph(*float_model(tmp_path, nodes, {"x": [1, 5, 12]}, ["y", "t"], dict(w1=w(12, 7))))
    assert sum(n.op == "QLogSoftmax" for n in graph.nodes()) == 2 and "Transpose" in ops_of(graph)
    assert_bit_exact(graph, random_samples(graph, spread=3.0))


def qlogsoftmax_graph(dtype: str, classes: int, exp_table: np.ndarray, **attrs) -> nnc.Graph:
    """x: dtype[1, 3, classes] → QLogSoftmax with `exp_table`, nnc's log table and `attrs`."""
    lo, hi = (-128, 127) if dtype == "i8" else (0, 255)
    graph = nnc.Graph("qlogsoftmax")
    graph.add_tensor(Tensor("x", dtype, (1, 3, classes)))
    graph.add_tensor(Tensor("y", dtype, (1, 3, classes)))
    graph.add_constant("exp", exp_table.astype(np.int32))
    graph.add_constant("log", log_table())
    attrs = QLogSoftmaxAttrs(**{"y_zero_point": hi, "out_min": lo, "out_max": hi, "out_dtype": dtype, **attrs})
    graph.add_node(Node("lsm", "QLogSoftmax", ["x", "exp", "log"], ["y"], attrs))
    graph.inputs, graph.outputs = ["x"], ["y"]
    return graph


def integer_rows(dtype: str, count: int, classes: int) -> np.ndarray:
    """Uniform codes, then rows of one value (d = 0 everywhere, the largest S)
    and rows of one maximum among minima (d = 255, the smallest S)."""
    lo, hi = (-128, 127) if dtype == "i8" else (0, 255)
    x = RNG.integers(lo, hi + 1, (count, 3, classes))
    x[:4] = RNG.integers(lo, hi + 1, (4, 1, 1))
    x[4:8] = lo
    x[4:8, :, 0] = hi
    return x.astype(np.int8 if dtype == "i8" else np.uint8)


@pytest.mark.parametrize("dtype", ["i8", "u8"])
@pytest.mark.parametrize("sx, sy", [(2.0 ** -24, 2.0 ** -12), (0.05, 0.1), (8.0, 2.0 ** 6), (1.0, 2.0 ** -10)])
def test_qlogsoftmax_matches_the_reference_op(dtype, sx, sy):
    """From the smallest input scale (SX = 1) to the largest (SX = 2^27),
    with the quantizer's exp table; the outputs saturate at both ends."""
    a = log_softmax_attrs(sx, sy, 0, 0, 0)
    graph = qlogsoftmax_graph(dtype, 10, exp_table(sx), x_scale=a.x_scale, multiplier=a.multiplier, shift=a.shift)
    assert_bit_exact(graph, {"x": integer_rows(dtype, 24, 10)})


@pytest.mark.parametrize("dtype", ["i8", "u8"])
def test_qlogsoftmax_sums_up_to_2_to_the_47(dtype):
    """2^16 classes and a table of entries up to 2^31 − 1 (any i32[256] the op
    takes): S reaches 2^47 − 2^16, where float64's frexp must still give its
    exact bit length, and j its 8 bits after the leading one."""
    table = np.concatenate([[(1 << 31) - 1], RNG.integers(1, 1 << 31, 255)])
    a = log_softmax_attrs(0.05, 0.25, 0, 0, 0)
    graph = qlogsoftmax_graph(dtype, 1 << 16, table, x_scale=a.x_scale, multiplier=a.multiplier, shift=a.shift)
    samples = integer_rows(dtype, 10, 1 << 16)
    outputs = assert_bit_exact(graph, {"x": samples})
    assert len(np.unique(outputs["y"].numpy())) > 10


def qlayernorm_graph(dtype: str, shape: tuple[int, ...], axis: int, g: np.ndarray, b: np.ndarray,
                     **attrs) -> nnc.Graph:
    """x: dtype[shape] → QLayerNorm over axes axis.. with constants g, b and `attrs`."""
    lo, hi = (-128, 127) if dtype == "i8" else (0, 255)
    graph = nnc.Graph("qlayernorm")
    graph.add_tensor(Tensor("x", dtype, shape))
    graph.add_tensor(Tensor("y", dtype, shape))
    graph.add_constant("g", g.astype(np.int32))
    graph.add_constant("b", b.astype(np.int64))
    attrs = QLayerNormAttrs(**{"axis": axis, "y_zero_point": (lo + hi + 1) // 2, "out_min": lo, "out_max": hi,
                               "out_dtype": dtype, **attrs})
    graph.add_node(Node("ln", "QLayerNorm", ["x", "g", "b"], ["y"], attrs))
    graph.inputs, graph.outputs = ["x"], ["y"]
    return graph


def layer_norm_constants(n: int, shift: int, s_y: float = 1 / 32) -> tuple[np.ndarray, np.ndarray]:
    """g, b as the quantizer makes them of random γ ≈ 1, β ≈ 0 (docs/numerics.md §14)."""
    gamma, beta = 1 + 0.5 * RNG.standard_normal(n), 0.5 * RNG.standard_normal(n)
    return np.rint(gamma * np.sqrt(n) / s_y * 2.0 ** (shift - 30)), np.rint(beta / s_y * 2.0 ** shift)


def layer_norm_rows(dtype: str, count: int, shape: tuple[int, ...], axis: int) -> np.ndarray:
    """Uniform codes, then, row by row: constant rows (c = 0), one maximum among
    minima (the largest |c_i|), minima and maxima alternating (the largest U) and
    two neighbouring codes (small U, a negative k)."""
    lo, hi = (-128, 127) if dtype == "i8" else (0, 255)
    n = int(np.prod(shape[axis:]))
    x = RNG.integers(lo, hi + 1, (count, int(np.prod(shape[1:axis])), n))
    x[:3] = RNG.integers(lo, hi + 1, (3, x.shape[1], 1))
    x[3:5] = lo
    x[3:5, :, 0] = hi
    x[5:7] = np.where(np.arange(n) % 2, lo, hi)
    x[7:9] = RNG.integers(lo, hi, (2, x.shape[1], 1)) + RNG.integers(0, 2, (2, x.shape[1], n))
    return x.reshape(count, *shape[1:]).astype(np.int8 if dtype == "i8" else np.uint8)


@pytest.mark.parametrize("dtype", ["i8", "u8"])
@pytest.mark.parametrize("shape, axis", [((1, 3, 1), 2), ((1, 4, 8), 2), ((1, 3, 4, 5), 1), ((1, 3, 4), 0),
                                         ((1, 2, 1000), 2), ((1, 2, MAX_ROW), 2)])
@pytest.mark.parametrize("epsilon", ["zero", "one", "1e-5", "largest"])
def test_qlayernorm_matches_the_reference_op(dtype, shape, axis, epsilon):
    """Rows of 1 to 2^15 values over the last axes, all axes (axis 0) or one; e = 0
    leaves constant rows at U = 0 and the largest e (2^61 − 1) takes U to 2^62 − 1."""
    n = int(np.prod(shape[axis:]))
    eps_int = {"zero": 0, "one": 1, "1e-5": round(1e-5 * n ** 3 / 0.05 ** 2), "largest": MAX_EPS - 1}[epsilon]
    g, b = layer_norm_constants(n, 40)
    graph = qlayernorm_graph(dtype, shape, axis, g, b, eps_int=eps_int, shift=40)
    outputs = assert_bit_exact(graph, {"x": layer_norm_rows(dtype, 12, shape, axis)})
    if n > 1 and epsilon != "largest":
        assert len(np.unique(outputs["y"].numpy())) > 10


@pytest.mark.parametrize("dtype", ["i8", "u8"])
@pytest.mark.parametrize("shift", [1, 62])
def test_qlayernorm_at_the_bounds_of_its_constants(dtype, shift):
    """|g_i| up to 2^30 and |b_i| up to 2^61 − 1 at T = 62 (|g_i · H_i + b_i| near
    2^62), and at T = 1 (no fraction left): every output saturates or not as the
    reference's does."""
    n = 64
    top_g, top_b = (1 << 30, (1 << 61) - 1) if shift == 62 else (2, 1 << 8)
    g = np.concatenate([[top_g, -top_g], RNG.integers(-top_g, top_g + 1, n - 2)])
    b = np.concatenate([[top_b, -top_b], RNG.integers(-top_b, top_b + 1, n - 2)])
    graph = qlayernorm_graph(dtype, (1, 3, n), 2, g, b, eps_int=7, shift=shift)
    assert_bit_exact(graph, {"x": layer_norm_rows(dtype, 12, (1, 3, n), 2)})


def test_rsqrt_fixed_matches_the_reference():
    """Every bit length of U, and u around 2^62 / r² for every r in [2^15, 2^16]:
    floor(2^62 / u) at and beside the perfect squares, where a float64 square
    root would first err."""
    edges = [v for m in range(1, 63) for v in ((1 << m) - 1, 1 << m - 1, (1 << m - 1) + 1)]
    squares = np.arange(1 << 15, (1 << 16) + 1, dtype=np.int64) ** 2
    near = ((1 << 62) // squares)[:, None] + np.arange(-2, 3)
    near = near[(near >= 1 << 30) & (near < 1 << 32)]
    totals = np.concatenate([edges, RNG.integers(1, 1 << 62, 5000, dtype=np.int64), near]).astype(np.int64)
    r, k = rsqrt_fixed(torch.from_numpy(totals))
    expected = np.array([numpy_rsqrt_fixed(int(u)) for u in totals])
    assert np.array_equal(r.numpy(), expected[:, 0]) and np.array_equal(k.numpy(), expected[:, 1])


def test_layer_norms_over_the_last_axis_and_two(tmp_path):
    """A transformer-style block: LayerNormalization with a bias over the features,
    and one over [T, D] without a bias, between matrix products."""
    nodes = [node("MatMul", ["x", "w1"], "h"), node("LayerNormalization", ["h", "g1", "b1"], "n1", axis=-1),
             node("MatMul", ["n1", "w2"], "y"), node("LayerNormalization", ["h", "g2"], "t", axis=1)]
    weights = dict(w1=w(8, 16), g1=1 + w(16), b1=w(16), w2=w(16, 8), g2=1 + w(6, 16))
    graph = integer_graph(*float_model(tmp_path, nodes, {"x": [1, 6, 8]}, ["y", "t"], weights))
    assert sum(n.op == "QLayerNorm" for n in graph.nodes()) == 2
    assert_bit_exact(graph, random_samples(graph, spread=3.0))


def test_sigmoid_tanh_tables(tmp_path):
    nodes = [node("Gemm", ["x", "w1"], "h", transB=1), node("Sigmoid", ["h"], "s"),
             node("Gemm", ["s", "w2"], "t", transB=1), node("Tanh", ["t"], "u"), node("HardSwish", ["u"], "y")]
    graph = integer_graph(*float_model(tmp_path, nodes, {"x": [1, 10]}, ["y"], dict(w1=w(12, 10), w2=w(8, 12))))
    assert sum(n.op == "QLut" for n in graph.nodes()) == 3
    assert_bit_exact(graph, random_samples(graph))


def test_sequence_rows_products_reductions_slices_pads(tmp_path):
    """A [1, T, D] model: QGemm over rows (a Reshape to [T, D] first), QMul and
    QMatMul of two activations (one read transposed), QSoftmax, QReduce, QAffine,
    QAdd (Sub), a Slice with a negative step and an edge Pad."""
    nodes = [node("MatMul", ["x", "wq"], "q"), node("Sigmoid", ["x"], "s"), node("Mul", ["q", "s"], "qs"),
             node("Transpose", ["s"], "st", perm=[0, 2, 1]), node("MatMul", ["qs", "st"], "scores"),
             node("Softmax", ["scores"], "p", axis=-1), node("ReduceMean", ["p"], "m", axes=[-1], keepdims=1),
             node("Mul", ["p", "c"], "pc"), node("Sub", ["pc", "m"], "d"),
             node("Slice", ["d", "starts", "ends", "axes", "steps"], "sl"),
             node("Pad", ["sl", "pads"], "y", mode="edge")]
    weights = dict(wq=w(8, 8), c=np.float32(1.5), starts=np.array([-1]), ends=np.array([-100]), axes=np.array([2]),
                   steps=np.array([-2]), pads=np.array([0, 1, 2, 0, 2, 1]))
    graph = integer_graph(*float_model(tmp_path, nodes, {"x": [1, 6, 8]}, ["y"], weights))
    assert {"QGemm", "QMul", "QMatMul", "QSoftmax", "QReduce", "QAffine", "QAdd", "Slice", "Pad"} <= ops_of(graph)
    assert any(n.op == "QMatMul" and n.attrs.b_transposed for n in graph.nodes())  # reads s in place of sᵀ
    assert any(graph.tensors[n.outputs[0]].shape[0] != 1 for n in graph.nodes())  # the [T, D] rows
    assert_bit_exact(graph, random_samples(graph))


def test_ops_along_axis_0_stay_within_each_sample(tmp_path):
    """Transpose moving axis 0, Concat and Softmax along it: with the batch as an
    extra leading axis they act per sample, as in the reference."""
    nodes = [node("Transpose", ["x"], "t", perm=[1, 0, 2]), node("Sigmoid", ["t"], "s"),
             node("Concat", ["t", "s"], "cat", axis=0), node("Softmax", ["cat"], "p", axis=0),
             node("Reshape", ["p", "shape"], "flat"), node("Gemm", ["flat", "fw"], "y", transB=1)]
    weights = dict(shape=np.array([1, 48]), fw=w(5, 48))
    graph = integer_graph(*float_model(tmp_path, nodes, {"x": [1, 4, 6]}, ["y"], weights))
    assert any(n.op == "Concat" and n.attrs.axis == 0 for n in graph.nodes())
    assert_bit_exact(graph, random_samples(graph))


HANDWRITTEN = """graph "handwritten" {
  input %x: f32[1,2,6]
  const %s: f32[2] = [0.5,0.25]
  const %z: i8[2] = [3,-2]
  const %k: i8[1,4,2] = [5,-7,100,-128,0,1,2,3]
  const %ys: f32[] = 0.1
  const %yz: u8[] = 128
  %q: i8[1,2,6] = QuantizeLinear "q" (%x, %s, %z) {axis=1, dtype="i8"}
  %c: i8[1,2,6] = Clip "clip" (%q) {min=-20.7, max=90.2}
  %r: i8[1,2,9] = Pad "reflect" (%c) {pads=[0,0,2,0,0,1], mode="reflect", value=0.0}
  %w: i8[1,2,12] = Pad "wrap" (%r) {pads=[0,0,-1,0,0,4], mode="wrap", value=0.0}
  %f: i8[1,4,14] = Pad "fill" (%w) {pads=[0,1,1,0,1,1], mode="constant", value=-5.0}
  %cat: i8[1,4,16] = Concat "cat" (%f, %k) {axis=2}
  %u: u8[1,4,16] = Requantize "rq" (%cat) {x_zero_point=0, y_zero_point=128, multiplier=1518500250, shift=31, out_min=0, out_max=255, out_dtype="u8"}
  %y: f32[1,4,16] = DequantizeLinear "dq" (%u, %ys, %yz) {axis=none}
  %d: f32[1,2,6] = DequantizeLinear "dq2" (%q, %s, %z) {axis=1}
  output %y
  output %d
}
"""


def test_handwritten_ties_per_axis_scales_pad_modes_clip_constant_concat():
    """Inputs at multiples of 1/8 put x / scale exactly on .5 (QuantizeLinear rounds
    half to even); reflect, wrap and filled pads; a Concat with a constant; u8."""
    samples = {"x": (RNG.integers(-400, 400, (40, 2, 6)) / 8).astype(np.float32)}
    assert_bit_exact(nnc.parse_ir(HANDWRITTEN), samples)


# -- refusals and primitives ---------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["linear", "nearest"])
def test_an_op_without_batched_kernel_runs_the_reference_on_each_sample(mode, tmp_path):
    """QResize (and ResizeNearest on int8) have no batched kernel: the program
    calls their reference op per sample, bit-exact by construction."""
    nodes = [node("Resize", ["x", "", "scales"], "y", mode=mode)]
    graph = integer_graph(*float_model(tmp_path, nodes, {"x": [1, 2, 4, 4]}, ["y"],
                                       dict(scales=np.array([1, 1, 2, 2], np.float32))))
    resize = next(op for op in ops_of(graph) if "Resize" in op)
    assert resize not in supported_ops()
    program = IntegerProgram(graph)
    assert next(step for step in program._steps if step.node.op == resize).kernel is reference_per_sample
    assert_bit_exact(graph, random_samples(graph, 12))


def test_an_input_whose_dim_0_is_not_1_is_refused(tmp_path):
    nodes = [node("Gemm", ["x", "fw"], "y", transB=1)]
    graph = integer_graph(*float_model(tmp_path, nodes, {"x": [2, 8]}, ["y"], dict(fw=w(3, 8))))
    with pytest.raises(UnsupportedError, match=r"input 'x' has shape \[2, 8\]"):
        IntegerProgram(graph)


def test_supported_ops_cover_the_quantized_classifiers():
    assert {"QuantizeLinear", "DequantizeLinear", "QConv", "QGemm", "QMatMul", "QAdd", "QMul", "Requantize",
            "QAveragePool", "MaxPool", "GlobalMaxPool", "Reshape", "Transpose", "Concat", "Pad", "Clip", "QLut",
            "QSoftmax", "QLogSoftmax", "QLayerNorm", "Slice"} <= supported_ops()


def test_round_shift_matches_numerics():
    values = np.concatenate([RNG.integers(-(1 << 61), 1 << 61, 2000), np.arange(-40, 41)])
    for shift in (1, 2, 7, 31, 40, 62):
        expected = numpy_round_shift(values, shift)
        assert torch.equal(round_shift(torch.from_numpy(values), shift), torch.from_numpy(expected))
