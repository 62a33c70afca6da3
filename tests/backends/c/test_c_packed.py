"""Packed weights in the C target (--c-weights packed, docs/c-target.md): the row
layouts (decode(encode(w)) == w, to the bit), and QConv/QGemm graphs with
sub-8-bit, sparse and codebook-like weights in every --pack choice, built with
gcc and clang (-Werror, ASan/UBSan) and bit-exact with the reference interpreter."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
from c_testing import COMPILERS, GraphBuilder, assert_matches, check_graph, emit, run_c, target
from hypothesis import given, settings
from hypothesis import strategies as st
from test_c_kernel_properties import FEW, conv_geometry

from nnc import packing
from nnc.backends.c import ops_packed
from nnc.backends.c import packed as codec
from nnc.backends.c.library import KernelSet
from nnc.backends.c.target import CTarget
from nnc.driver import CompileOptions
from nnc.errors import OptionError
from nnc.ir import Graph
from nnc.numerics import quantize_multipliers
from nnc.ops.qlinear import QConvAttrs, QGemmAttrs
from nnc.ops.shape import ReshapeAttrs
from nnc.verification import synthetic_samples

CHOICES = ("dense", "bitmask", "rle", "codebook", "auto")
RNG = np.random.default_rng(11)


def sparse_weights(shape, peak: int, zeros: float, rng=RNG) -> np.ndarray:
    """Values in ±peak, a fraction `zeros` of them 0."""
    w = rng.integers(-peak, peak + 1, shape)
    return (w * (rng.random(shape) >= zeros)).astype(np.int8)


def codebook_weights(shape, rng=RNG) -> np.ndarray:
    """8 distinct values spread over the int8 range (a codebook-quantized tensor)."""
    table = np.array([-97, -41, -13, 0, 6, 29, 58, 121])
    return table[rng.integers(0, 8, shape)].astype(np.int8)


# -- the row layouts ---------------------------------------------------------------
@st.composite
def weight_rows(draw):
    rows, length = draw(st.integers(1, 9)), draw(st.integers(1, 70))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    peak = draw(st.sampled_from([1, 3, 7, 15, 63, 127]))
    w = sparse_weights((rows, length), peak, draw(st.integers(0, 100)) / 100, rng)
    if draw(st.booleans()):
        w[rng.random(w.shape) < 0.05] = -128 if peak == 127 else 0
    return w


@settings(max_examples=150, deadline=None)
@given(weight_rows(), st.sampled_from(codec.FORMATS))
def test_rows_round_trip(rows, fmt):
    encoded = codec.encode_rows(rows, fmt)
    np.testing.assert_array_equal(codec.decode_rows(encoded), rows)
    assert encoded.bits == packing.natural_bits(rows, packing.FORMAT_NAMES[fmt])
    assert encoded.nnz_max == np.count_nonzero(rows, axis=1).max()
    if encoded.offsets is not None:
        assert encoded.offsets[0] == 0 and encoded.offsets[-1] == len(encoded.data)
        assert (np.diff(encoded.offsets.astype(np.int64)) >= 0).all()
    else:
        assert len(encoded.data) == rows.shape[0] * encoded.row_bytes


@settings(max_examples=60, deadline=None)
@given(weight_rows())
def test_auto_is_the_smallest(rows):
    chosen = codec.choose(rows, "auto")
    assert chosen.stored_bytes == min(codec.encode_rows(rows, f).stored_bytes for f in codec.FORMATS)


def test_documented_row_layouts():
    """docs/c-target.md's example, to the bit: rows [1, 0, 0, -2] and [0, 0, 0, 3]."""
    rows = np.array([[1, 0, 0, -2], [0, 0, 0, 3]], np.int8)
    dense = codec.encode_rows(rows, "dense")
    assert (dense.bits, dense.data, dense.row_bytes) == (3, bytes([0x01, 0x0C, 0x00, 0x06]), 2)
    bitmask = codec.encode_rows(rows, "bitmask")
    assert bitmask.data == bytes([0x09, 0x31, 0x08, 0x03]) and bitmask.offsets.tolist() == [0, 2, 4]
    rle = codec.encode_rows(rows, "rle")  # r = 1 and r = 2 both take 3 bytes: the smaller r
    assert (rle.run_bits, rle.data, rle.offsets.tolist()) == (1, bytes([0x12, 0x0C, 0x71]), [0, 2, 3])
    codebook = codec.encode_rows(rows, "codebook")
    assert codebook.table.tolist() == [-2, 0, 1, 3] and codebook.data == bytes([0x16, 0xD5])
    assert (codebook.bits, codebook.stored_bytes) == (2, 6)


def test_rle_rows_are_packing_entries():
    """A C rle row is FORMAT_RLE's entry stream of that row (packing's header dropped)."""
    row = np.array([0] * 9 + [5, 0, -3] + [0] * 20 + [1, 0, 0], np.int8)
    payload = packing.encode(row, 4, packing.FORMAT_RLE)
    run_bits, count = packing.RLE_HEADER.unpack(payload[:packing.RLE_HEADER.size])
    entries = codec.rle_entries(row, run_bits, 4)
    assert entries.size == count
    assert packing.pack_fields(entries, run_bits + 4) == payload[packing.RLE_HEADER.size:]


# -- graphs ------------------------------------------------------------------------
def requant(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Multipliers that keep typical outputs inside int8 without saturating them all."""
    rows = w.reshape(w.shape[0], -1).astype(np.float64)
    typical = np.sqrt((rows ** 2).sum(axis=1)) * 60 + 1
    return quantize_multipliers(40 / typical)


def add_qconv(b: GraphBuilder, x: str, w: np.ndarray, kernel, group=1, strides=None, pads=None, zx=3, zy=-4,
              dilations=None) -> str:
    nd = len(kernel)
    attrs = QConvAttrs(tuple(kernel), strides or (1,) * nd, pads or (0,) * (2 * nd), dilations or (1,) * nd,
                       group, True, zx, zy, -128, 127, "i8")
    mult, shift = requant(w)
    bias = RNG.integers(-300, 300, w.shape[0]).astype(np.int32)
    names = [b.const(f"{x}_{n}", v) for n, v in (("w", w), ("b", bias), ("m", mult), ("s", shift))]
    return b.op("QConv", [x, *names], attrs)


def add_qgemm(b: GraphBuilder, x: str, w: np.ndarray, zx=-4) -> str:
    mult, shift = requant(w)
    bias = RNG.integers(-300, 300, w.shape[0]).astype(np.int32)
    names = [b.const(f"{x}_{n}", v) for n, v in (("w", w), ("b", bias), ("m", mult), ("s", shift))]
    return b.op("QGemm", [x, *names], QGemmAttrs(zx, 2, -128, 127, "i8"))


def network() -> Graph:
    """Every packed kernel path, each layer's weights of another kind:
    strided padded conv (±7, 50% zeros), depthwise (8 distinct values), grouped
    (±3, no zeros), depthwise with multiplier 2 (±15, 90% zeros), a wide conv
    with a 3x4 kernel (±7, 30% zeros; 288-value rows: 4-row blocks), pointwise
    (int8, 60% zeros), QGemm (±7, 50% zeros)."""
    b = GraphBuilder("packed_net")
    x = b.input("x", "u8", (1, 9, 8, 8))
    t = add_qconv(b, x, sparse_weights((16, 8, 3, 3), 7, 0.5), (3, 3), strides=(2, 1), pads=(1, 1, 2, 1), zx=128)
    t = add_qconv(b, t, codebook_weights((16, 1, 3, 3)), (3, 3), group=16, pads=(1, 1, 1, 1))
    t = add_qconv(b, t, sparse_weights((12, 8, 1, 1), 3, 0.0), (1, 1), group=2)
    t = add_qconv(b, t, sparse_weights((24, 1, 2, 3), 15, 0.9), (2, 3), group=12, pads=(0, 1, 1, 1))
    t = add_qconv(b, t, sparse_weights((13, 24, 3, 4), 7, 0.3), (3, 4), pads=(1, 1, 1, 1), dilations=(1, 2))
    t = add_qconv(b, t, sparse_weights((9, 13, 1, 1), 127, 0.6), (1, 1))
    shape = b.graph.tensor(t).shape
    t = b.op("Reshape", [t], ReshapeAttrs((1, int(np.prod(shape)))))
    return b.output(add_qgemm(b, t, sparse_weights((10, int(np.prod(shape))), 7, 0.5)))


def single_channel_network() -> Graph:
    """Depthwise over one input channel (each output channel broadcasts it), 20
    channels (blocks of 16 then 1), then a QGemm on a batch of rows."""
    b = GraphBuilder("packed_single")
    x = b.input("x", "i8", (1, 7, 6, 1))
    t = add_qconv(b, x, sparse_weights((20, 1, 3, 3), 7, 0.3), (3, 3), group=1, pads=(1, 1, 1, 1), zx=-128)
    t = b.op("Reshape", [t], ReshapeAttrs((42, 20)))
    return b.output(add_qgemm(b, t, codebook_weights((5, 20))))


NETWORK = network()
SINGLE = single_channel_network()


@pytest.mark.parametrize("pack", CHOICES)
@pytest.mark.parametrize("graph", [NETWORK, SINGLE], ids=["network", "single-channel"])
def test_packed_graph_is_bit_exact(graph, pack, tmp_path):
    check_graph(graph, tmp_path, pack=pack)


def test_each_layer_takes_its_smallest_format():
    """auto: per layer the fewest stored bytes; each kernel family is used."""
    program = target("auto").program(NETWORK, "packed_net")
    formats = {name: fmt for name, (fmt, _, _) in program.weights.items()}
    assert formats == {"QConv_1": "bitmask", "QConv_2": "codebook", "QConv_3": "dense", "QConv_4": "rle",
                       "QConv_5": "bitmask", "QConv_6": "bitmask", "QGemm_8": "bitmask"}
    families = {fam for fam, _ in program.kernels.instances.values()}
    assert {"qconvs", "qdwconvp", "qconvp", "qgemmp"} <= families


@pytest.mark.parametrize("pack,family,widths", [("dense", "qconvp", (4, 1)), ("codebook", "qdwconvp", (16, 8, 1))])
def test_decoded_blocks_fit_the_scratch_budget(pack, family, widths):
    """A 3x4x24 row (288 values): 8 rows would exceed SCRATCH_BUDGET, 4 fit;
    16 depthwise channels of 9 taps fit."""
    program = target(pack).program(NETWORK, "packed_net")
    layer = program.packed[4 if family == "qconvp" else 1]
    assert (layer.family, layer.widths) == (family, widths)
    assert layer.scratch <= ops_packed.SCRATCH_BUDGET
    assert program.storage.scratch_bytes[4 if family == "qconvp" else 1] == layer.scratch


def full_range_sparse(shape) -> np.ndarray:
    """int8 weights with about 97 % zeros, 127 first in every row (8-bit rows,
    none empty: requant's multipliers stay below 1/4), the same on every call."""
    w = sparse_weights(shape, 127, 0.97, rng=np.random.default_rng(7))
    w.reshape(shape[0], -1)[:, 0] = 127
    return w


def very_sparse_network() -> Graph:
    """A pointwise conv and a QGemm with full-range 97 %-zero weights (their
    lists within qfast.SPARSE_MAX_DENSITY), a dense QGemm."""
    b = GraphBuilder("packed_sparse")
    t = add_qconv(b, b.input("x", "i8", (1, 3, 4, 96)), full_range_sparse((20, 96, 1, 1)), (1, 1), zx=-128)
    t = b.op("Reshape", [t], ReshapeAttrs((12, 20)))
    return b.output(add_qgemm(b, t, sparse_weights((6, 20), 127, 0.0)),
                    add_qgemm(b, b.input("v", "i8", (2, 200)), full_range_sparse((7, 200))))


@pytest.mark.parametrize("pack", ["auto", "bitmask", "rle"])
def test_very_sparse_int8_layers_take_the_fast_sparse_kernel(pack, tmp_path):
    """Sparse 8-bit rows that qfast lists itself run through qmms (which skips
    the zeros on the Cortex-M paths too), not the packed decoders; bit-exact."""
    graph = very_sparse_network()
    program = target(pack).program(graph, "packed_sparse")
    formats = {name: fmt for name, (fmt, _, _) in program.weights.items()}
    assert formats["QConv_1"] == formats["QGemm_4"] == "sparse" and formats["QGemm_3"] != "sparse"
    families = {fam for fam, _ in program.kernels.instances.values()}
    assert "qmms" in families and "qconvs" not in families
    check_graph(graph, tmp_path, pack=pack)


def test_packed_flash_is_smaller_than_dense():
    dense = target().extras(NETWORK)["memory"]
    packed = target("auto").extras(NETWORK)["memory"]
    weights = {name: nbytes for name, (_, _, nbytes) in packed["weights"].items()}
    dense_weights = {name: nbytes for name, (_, _, nbytes) in dense["weights"].items()}
    assert all(fmt == "dense" and bits == 8 for fmt, bits, _ in dense["weights"].values())
    assert sum(weights.values()) < 0.6 * sum(dense_weights.values())
    assert packed["flash_bytes"] < dense["flash_bytes"]
    assert target("auto").weight_encodings(NETWORK) == packed["weights"]  # what the report's layers show
    # a dense compile of compressed weights says what packing would store; a packed one does not
    assert dense["packing_hint"] == {"dense_bytes": sum(dense_weights.values()), "packed_bytes": sum(weights.values())}
    assert "packing_hint" not in packed


def test_no_packing_hint_for_full_range_int8_weights():
    b = GraphBuilder("int8_hint")
    x = b.input("x", "i8", (1, 5, 5, 4))
    graph = b.output(add_qconv(b, x, sparse_weights((6, 4, 3, 3), 127, 0.1), (3, 3), pads=(1, 1, 1, 1)))
    assert "packing_hint" not in target().extras(graph)["memory"]


def test_eight_bit_dense_weights_keep_the_int8_kernels(tmp_path):
    """pack=dense on full-range int8 weights: the same arrays and kernels as dense C."""
    b = GraphBuilder("int8_net")
    x = b.input("x", "i8", (1, 5, 5, 4))
    t = add_qconv(b, x, sparse_weights((6, 4, 3, 3), 127, 0.0), (3, 3), pads=(1, 1, 1, 1))
    graph = b.output(t)
    dense_dir, stem = emit(graph, tmp_path / "dense")
    packed_dir, _ = emit(graph, tmp_path / "packed", pack="dense")
    for name in (f"{stem}_weights.h", f"{stem}_kernels.h"):
        assert (dense_dir / name).read_text() == (packed_dir / name).read_text()


@FEW
@given(conv_geometry(), st.sampled_from(CHOICES), st.data())
def test_packed_qconv_properties(geometry, pack, data):
    x_shape, cout, kernel, strides, pads, dilations, groups = geometry
    rng = np.random.default_rng(data.draw(st.integers(0, 1000)))
    peak = data.draw(st.sampled_from([1, 3, 7, 63]))
    w = sparse_weights((cout, x_shape[-1] // groups, *kernel), peak, data.draw(st.integers(0, 95)) / 100, rng)
    x_dtype = data.draw(st.sampled_from(["i8", "u8"]))
    zx = data.draw(st.integers(0, 255)) - (128 if x_dtype == "i8" else 0)
    b = GraphBuilder("prop")
    x = b.input("x", x_dtype, x_shape)
    graph = b.output(add_qconv(b, x, w, kernel, groups, strides, pads, zx=zx, dilations=dilations))
    samples = synthetic_samples(graph, 2, seed=3)
    with tempfile.TemporaryDirectory() as tmp:
        assert_matches(graph, samples, run_c(graph, samples, Path(tmp), COMPILERS[0], pack=pack))


def test_a_format_without_c_decoder_is_an_option_error():
    """nnc.packing's huffman (or any format the C kernels do not decode), with packed C weights."""
    options = CompileOptions(target="c", c_weights="packed")
    options.pack = "huffman"
    with pytest.raises(OptionError) as caught:
        CTarget(options)
    decoded = "(the C kernels decode dense, bitmask, rle, codebook; or give"
    assert str(caught.value) == f"pack='huffman' is not supported with c_weights='packed' {decoded} pack='auto')"
    assert caught.value.cli == f"--pack huffman is not supported with --c-weights packed {decoded} --pack auto)"
    options.c_weights = "dense"
    assert CTarget(options).pack is None


def test_qdot_renders_the_row_counts_its_users_call():
    """A packed conv with 4-row blocks needs qdot4 and qdot1, a dense one qdot8 too:
    the shared instance renders the union, so no static function goes unused."""
    kernels = KernelSet()
    kernels.use("qdot", fn="qdot_i8", sx="i8", tx="int8_t", parts=(4,))
    assert "qdot8_i8" not in "".join(kernels.render())
    kernels.use("qdot", fn="qdot_i8", sx="i8", tx="int8_t", parts=(8, 4))
    kernels.use("qdot", fn="qdot_i8", sx="i8", tx="int8_t", parts=())
    assert kernels.instances["qdot_i8"][1]["parts"] == (8, 4)
    with pytest.raises(ValueError, match="twice"):
        kernels.use("qdot", fn="qdot_i8", sx="u8", tx="uint8_t", parts=())


@pytest.mark.skipif(not shutil.which("arm-none-eabi-gcc"), reason="arm-none-eabi-gcc is not installed")
def test_cortex_m4_cross_compile(tmp_path):
    src, stem = emit(NETWORK, tmp_path / "src", pack="auto")
    command = ["arm-none-eabi-gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-mcpu=cortex-m4",
               "-mthumb", "-Os", "-c", str(src / f"{stem}.c"), "-o", str(tmp_path / f"{stem}.o")]
    built = subprocess.run(command, capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
