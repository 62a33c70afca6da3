"""The fast int8 kernels (backends/c/qfast.py; kernels/qarm.h, qmm.c.j2,
qmms.c.j2, qmmconv.c.j2, qdwf.c.j2, qpoolf.c.j2, qaddf.c.j2): the
requantization identity they rely on, the bounds that keep a layer off them,
the sparse lists, and one graph of independent layers covering every route
(sparse layers included) with odd channel counts and tails, bit-exact with the
reference on the host (gcc and clang, sanitized: the portable path) and, where
arm-none-eabi-gcc and qemu-system-arm are installed, on the emulated Cortex-M4
(DSP path, -O2 and -Os) and Cortex-M55 (Helium path, -O2 and -Os) through the output's
`make qemu-m4/-m55`."""

from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest
from c_testing import GraphBuilder, check_graph, emit

from nnc.backends.c import qfast
from nnc.numerics import quantize_multiplier, quantize_multipliers, round_shift
from nnc.ops.qelementwise import QAddAttrs
from nnc.ops.qlinear import QConvAttrs, QGemmAttrs
from nnc.ops.qpool import QAveragePoolAttrs

RNG = np.random.default_rng(13)
ARM_TOOLS = ("make", "arm-none-eabi-gcc", "qemu-system-arm")
MISSING = [tool for tool in ARM_TOOLS if not shutil.which(tool)]
needs_arm = pytest.mark.skipif(bool(MISSING), reason=f"{', '.join(MISSING)} not installed (needed for Arm builds)")
STACK_LIMIT = 1024  # bytes below main() at -O2 and -Os (issue 13)


def _requant(channels: int, low=2e-4, high=4e-3):
    return quantize_multipliers(RNG.uniform(low, high, channels))


def _conv(b: GraphBuilder, name: str, x_shape, cout: int, kernel, group=1, strides=None, pads=None,
          dilations=None, zx=-3, zy=5, clamp=(-128, 127), bias=True, w=None, x_dtype="i8", mult=None) -> str:
    nd = len(kernel)
    attrs = QConvAttrs(tuple(kernel), strides or (1,) * nd, pads or (0,) * (2 * nd), dilations or (1,) * nd,
                       group, True, zx, zy, clamp[0], clamp[1], "i8")
    w = RNG.integers(-127, 128, (cout, x_shape[-1] // group, *kernel)).astype(np.int8) if w is None else w
    mult, shift = mult or _requant(cout)
    bias_name = b.const(f"{name}_b", RNG.integers(-4000, 4000, cout).astype(np.int32)) if bias else ""
    return b.op("QConv", [b.input(f"{name}_x", x_dtype, x_shape), b.const(f"{name}_w", w), bias_name,
                          b.const(f"{name}_m", mult), b.const(f"{name}_s", shift)], attrs, name=name)


def _gemm(b: GraphBuilder, name: str, m: int, k: int, n: int, w=None) -> str:
    mult, shift = _requant(n, 1e-4, 1e-3)
    w = RNG.integers(-127, 128, (n, k)).astype(np.int8) if w is None else w
    return b.op("QGemm", [b.input(f"{name}_x", "i8", (m, k)), b.const(f"{name}_w", w),
                          b.const(f"{name}_b", RNG.integers(-300, 300, n).astype(np.int32)),
                          b.const(f"{name}_m", mult), b.const(f"{name}_s", shift)],
                QGemmAttrs(-128, 3, -128, 127, "i8"), name=name)


def _pool(b: GraphBuilder, name: str, x_shape, kernel, strides, pads=(0, 0, 0, 0), zx=-20, zy=7) -> str:
    multiplier, shift = quantize_multiplier(0.8 / (kernel[0] * kernel[1]))
    attrs = QAveragePoolAttrs(tuple(kernel), tuple(strides), tuple(pads), True, zx, zy, multiplier, shift, -128, 127)
    return b.op("QAveragePool", [b.input(f"{name}_x", "i8", x_shape)], attrs, name=name)


def _add(b: GraphBuilder, name: str, a_shape, b_shape, a_mult: int, b_mult: int, shift: int, clamp=(-128, 127)) -> str:
    attrs = QAddAttrs(-128, 5, -3, a_mult, b_mult, shift, clamp[0], clamp[1])
    return b.op("QAdd", [b.input(f"{name}_a", "i8", a_shape), b.input(f"{name}_b", "i8", b_shape)], attrs, name=name)


def _tiny_multipliers(channels: int):
    """Multipliers whose shift reaches 59 in some channels."""
    reals = RNG.uniform(2e-4, 4e-3, channels)
    reals[::3] = 3e-9
    return quantize_multipliers(reals)


def _pruned(shape, zeros: float, empty: int | None = None) -> np.ndarray:
    """Weights of `shape` with about `zeros` of them 0 (output channel `empty` all 0), -128 and 127 among
    the rest."""
    w = RNG.integers(-127, 128, shape).astype(np.int8)
    w[RNG.random(shape) < zeros] = 0
    w.reshape(shape[0], -1)[0, :2] = (-128, 127)
    if empty is not None:
        w[empty] = 0
    return w


def _min_pairs(channels: int) -> np.ndarray:
    """3x3 depthwise weights with -128 twice in one channel: int16 pairs could overflow."""
    w = RNG.integers(-127, 128, (channels, 1, 3, 3)).astype(np.int8)
    w[5, 0, 0, :2] = -128
    return w


# name -> (the kernel its call must name, builder of the layer)
LAYERS = {
    "pw_odd": ("qmm_k13_ragged(", lambda b: _conv(b, "pw_odd", (1, 3, 5, 13), 7, (1, 1))),
    "pw_wide": ("qmm_k48(", lambda b: _conv(b, "pw_wide", (1, 2, 3, 48), 12, (1, 1), zx=-128, zy=-128)),
    "gemm_row": ("qmm_k70_ragged(", lambda b: _gemm(b, "gemm_row", 1, 70, 15)),
    "gemm_rows": ("qmm_k33_ragged(", lambda b: _gemm(b, "gemm_rows", 3, 33, 6)),
    "conv_asym": ("qmmconv_k20_3x2x3_ragged(", lambda b: _conv(b, "conv_asym", (1, 7, 6, 3), 5, (3, 2), strides=(2, 1),
                                                      pads=(1, 0, 2, 1), zx=-128)),
    "conv_dilated": ("qmmconv_k8_2x2x2_ragged(", lambda b: _conv(b, "conv_dilated", (2, 7, 7, 2), 3, (2, 2),
                                                       dilations=(2, 3), bias=False)),
    "conv_one_channel": ("qmmconv_k12_4x3x1(", lambda b: _conv(b, "conv_one_channel", (1, 9, 5, 1), 24, (4, 3),
                                                             strides=(2, 2), pads=(1, 1, 2, 1), zx=-7)),
    "conv1d": ("qmmconv_k12_1x3x4_ragged(", lambda b: _conv(b, "conv1d", (1, 9, 4), 6, (3,), pads=(1, 1))),
    "pw_strided": ("qmmconv_k20_1x1x20(", lambda b: _conv(b, "pw_strided", (1, 5, 5, 20), 8, (1, 1),
                                                       strides=(2, 2))),
    "dw_tail": ("qdwf_c40_t9(", lambda b: _conv(b, "dw_tail", (1, 5, 6, 40), 40, (3, 3), group=40,
                                                pads=(1, 1, 1, 1), zx=-128)),
    "dw_relu": ("qdwf_c27_t9_m5_127(", lambda b: _conv(b, "dw_relu", (1, 7, 6, 27), 27, (3, 3), group=27,
                                                       strides=(2, 2), dilations=(1, 2), pads=(1, 2, 1, 2),
                                                       zx=100, clamp=(-5, 127))),
    "dw_single": ("qdwf_c16_t9_single(", lambda b: _conv(b, "dw_single", (1, 4, 4, 16), 16, (3, 3), group=16,
                                                          pads=(1, 1, 1, 1), w=_min_pairs(16))),
    "pw_tiny_multipliers": ("qmm_k24_ragged(", lambda b: _conv(b, "pw_tiny_multipliers", (1, 2, 2, 24), 9,
                                                              (1, 1), zy=-128, mult=_tiny_multipliers(9))),
    "pool": ("qpoolf_c20(", lambda b: _pool(b, "pool", (1, 5, 4, 20), (3, 2), (2, 1))),
    "pool_global": ("qpoolf_c7(", lambda b: _pool(b, "pool_global", (1, 5, 3, 7), (5, 3), (1, 1), zx=127)),
    "add": ("qaddf_n29(", lambda b: _add(b, "add", (1, 3, 5, 7), (1, 3, 5, 7), 413000000, 1098000000, 29)),
    "sub_relu": ("qaddf_n44_m3_127(", lambda b: _add(b, "sub_relu", (1, 2, 9), (1, 2, 9), 1 << 30, -(3 << 29), 44,
                                                    clamp=(-3, 127))),
    "add_wide": ("qaddf_n12_wide(", lambda b: _add(b, "add_wide", (1, 2, 11), (1, 2, 11), 1500, -900, 12)),
    "add_deep": ("qaddf_n52_wide(", lambda b: _add(b, "add_deep", (1, 3, 5), (1, 3, 5), 1 << 30, 3 << 28, 52)),
    # sparse weights (qmms): pointwise with an empty channel and 13 channels, a QGemm with positions
    # past 255, a 3x3 convolution through qmmconv
    "pw_sparse": ("qmms_k100_ragged(", lambda b: _conv(b, "pw_sparse", (1, 3, 5, 100), 13, (1, 1),
                                               w=_pruned((13, 100, 1, 1), 0.95, empty=4))),
    "gemm_sparse": ("qmms_k300_ragged(", lambda b: _gemm(b, "gemm_sparse", 3, 300, 10, w=_pruned((10, 300), 0.97))),
    "conv_sparse": ("qmmconv_k72_3x3x8_ragged_sparse(", lambda b: _conv(b, "conv_sparse", (1, 5, 4, 8), 6, (3, 3),
                                                                pads=(1, 1, 1, 1), w=_pruned((6, 8, 3, 3), 0.9))),
    # portable kernels: u8 activations, a multiplier too large for rq_hi (shift 32), a padded pool,
    # a broadcast QAdd
    "add_broadcast": ("qadd_i8_i8_i8(", lambda b: _add(b, "add_broadcast", (1, 3, 5, 7), (1, 1, 1, 7), 413000000,
                                                       1098000000, 29)),
    "pool_padded": ("qavgpool_i8_i8(", lambda b: _pool(b, "pool_padded", (1, 4, 4, 8), (3, 3), (1, 1),
                                                       pads=(1, 1, 1, 1))),
    "pw_u8": ("qconv_col_u8_i8(", lambda b: _conv(b, "pw_u8", (1, 2, 2, 8), 4, (1, 1), zx=128, x_dtype="u8")),
    "pw_large_multiplier": ("qconv_col_i8_i8(", lambda b: _conv(b, "pw_large_multiplier", (1, 2, 2, 8), 4, (1, 1),
                                                            mult=quantize_multipliers(np.full(4, 0.6)))),
}


@pytest.fixture(scope="module")
def graph():
    b = GraphBuilder("fast_layers")
    outputs = [build(b) for _, build in LAYERS.values()]
    return b.output(*outputs)


@pytest.fixture(scope="module")
def emitted(graph, tmp_path_factory):
    """(folder, stem) of the graph's C output."""
    return emit(graph, tmp_path_factory.mktemp("fast") / "src", stem="fast_layers")


def test_rq_hi_equals_the_reference_rounding():
    """qarm.h's rq_hi (both the Arm form and the portable one), with the
    constants qfast prepares, is y_zero + round_shift(acc * m, n) for every
    int32 accumulator, at the range's edges too."""
    for _ in range(300):
        n = int(RNG.integers(33, 63))
        m = int(RNG.integers(0, 1 << 31))
        y_zero = int(RNG.integers(-128, 128))
        t, k = qfast.rq_hi_constants(np.array([n]), y_zero)
        t = int(t[0])
        for acc in [-(1 << 31), (1 << 31) - 1, 0, -1, *RNG.integers(-(1 << 31), 1 << 31, 20).tolist()]:
            want = int(round_shift(np.int64(acc) * m, n)) + y_zero
            assert (((acc * m) >> 32 >> t) + k) >> 1 == want  # Python's >> is arithmetic, like Arm's ASR
            hi = (((acc * m + (1 << 63)) % (1 << 64)) >> 32) - (1 << 31)  # the portable form
            v = hi + k * (1 << t)
            assert ((v + (1 << 40)) >> (t + 1)) - (1 << (39 - t)) == want


def test_bounds_keep_layers_off_the_fast_kernels():
    assert qfast.rq_hi_constants(np.array([40, 32]), 0) is None
    wide = qfast.Route("qmm", np.zeros((4, 1), np.int8), np.array([0]), np.array([(1 << 31) // 128]))
    assert qfast.folded_bias(np.array([0]), wide, -128) is None
    narrow = qfast.Route("qmm", np.zeros((4, 1), np.int8), np.array([10]), np.array([10]))
    assert qfast.folded_bias(np.array([7]), narrow, -3) == [37]


def test_depthwise_taps_pair_unless_int16_could_overflow():
    taps = np.full((9, 4), 127, np.int8)
    assert qfast.tap_groups(taps) == [(0, 1), (2, 3), (4, 5), (6, 7), (8,)]
    taps[3, 2], taps[2, 2] = -128, -128
    assert qfast.tap_groups(taps) == [(t,) for t in range(9)]


def test_sparse_lists_pad_each_channel_and_stay_off_dense_layers():
    rows = np.zeros((4, 300), np.int8)
    rows[0, [3, 299]] = (5, -128)
    rows[2, :9] = 1
    positions, values, sizes = qfast.sparse_lists(rows)
    assert sizes.tolist() == [8 + 6, 0, 16 + 7, 0]  # entries + padding: 2 and 9 nonzeros
    assert positions[:8].tolist() == [3, 299, 0, 0, 0, 0, 0, 0] and values[:8].tolist() == [5, -128, 0, 0, 0, 0, 0, 0]
    assert positions[8:17].tolist() == list(range(9)) and values[17:].tolist() == [0] * 7
    dense = rows.copy()
    dense[1:, :60] = 7  # 8 + 3 * 64 entries: over SPARSE_MAX_DENSITY (1 / 8) of 1,200
    assert qfast.sparse_lists(dense) is None
    assert qfast.sparse_lists(np.zeros((4, 8), np.int8)) is None


def test_add_splits_needs_a_shift_from_16_to_48_and_a_small_high_part():
    assert qfast.add_splits(1 << 40, 1 << 30, -(1 << 30), 44)
    assert qfast.add_splits(1 << 46, 1 << 20, 1 << 20, 48)
    assert not qfast.add_splits(1 << 9, 1500, -900, 12)
    assert not qfast.add_splits(1 << 48, 1 << 20, 1 << 20, 49)
    assert not qfast.add_splits(1 << 48, 1 << 30, 1 << 30, 44)  # r_h = 2^32


def test_inner_loop_steps():
    assert qfast.steps(70, 4) == dict(blocks=4, unroll=4, rest=1, tail=2)
    assert qfast.steps(13, 16) == dict(blocks=0, unroll=1, rest=0, tail=13)
    assert qfast.steps(64, 16) == dict(blocks=1, unroll=4, rest=0, tail=0)


def test_every_layer_takes_its_route_and_is_bit_exact_on_the_host(graph, emitted, tmp_path):
    folder, stem = emitted
    calls = (folder / f"{stem}.c").read_text()
    for name, (kernel, _) in LAYERS.items():
        assert f"\n    {kernel}" in calls, (name, kernel)
    check_graph(graph, tmp_path)


def _arm_assembly(folder, stem, cpu: str, opt: str = "-O2") -> str:
    command = ["arm-none-eabi-gcc", *cpu.split(), "-mthumb", opt, "-std=c99", "-Wall", "-Wextra", "-Werror",
               "-pedantic", f"-I{folder}", "-S", "-o", "-", str(folder / f"{stem}.c")]
    built = subprocess.run(command, capture_output=True, text=True, check=False)
    assert built.returncode == 0, built.stderr
    return built.stdout


@needs_arm
def test_arm_builds_take_the_core_paths(emitted):
    """Cortex-M4 code multiplies with SXTB16/SMLAD/SMLABB, Cortex-M55 code with
    Helium dot products and widening multiplies; the portable loops are not what runs."""
    folder, stem = emitted
    m4 = _arm_assembly(folder, stem, "-mcpu=cortex-m4 -mfloat-abi=hard -mfpu=fpv4-sp-d16")
    m55 = _arm_assembly(folder, stem, "-mcpu=cortex-m55 -mfloat-abi=hard")
    for mnemonic in ("sxtb16", "smlad", "smlabb", "sxtab16", "smull", "ssat"):
        assert re.search(rf"\t{mnemonic}\t", m4), mnemonic
    for mnemonic in ("vmladava.s8", "vmullb.s8", "vmulh.s32", "vst40.32", "vctp.8", "vmladava.s16", "vmla.s32"):
        assert f"\t{mnemonic}" in m55, mnemonic
    assert re.search(r"\tvldrb\.s16\tq\d+, \[r\d+, q\d+\]", m55), "gather load"


def _make(folder, *args: str) -> str:
    done = subprocess.run(["make", "--no-print-directory", "-C", str(folder), *args], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-3000:]
    return done.stdout


@needs_arm
@pytest.mark.parametrize("target, opt", [("qemu-m4", "-O2"), ("qemu-m4", "-Os"), ("qemu-m55", "-O2"),
                                         ("qemu-m55", "-Os")])
def test_bit_exact_on_the_emulated_core(emitted, target, opt):
    folder, _ = emitted
    if f"\n{target}:" not in (folder / "Makefile").read_text():
        pytest.skip(f"the C output has no `make {target}`")
    output = _make(folder, target, f"OPT={opt}")
    assert output.rstrip().endswith("PASS"), output[-3000:]
    stack = int(re.search(r"stack high-water: (\d+) bytes below main\(\)", output).group(1))
    assert 0 < stack <= STACK_LIMIT, output[-500:]
