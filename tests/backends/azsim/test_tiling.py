"""az-sim tiling: weight chunks and activation row tiles planned by the lowering,
carried by the blob (version 4) and executed piece by piece by the simulator,
bit-exact with the reference; the tile geometry and the pipeline cost formula
on hand-computed cases; machine presets."""

from __future__ import annotations

import dataclasses
import struct
import subprocess
import sys
import zlib

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import nnc
from nnc.backends.azsim.blob import read_blob, write_blob
from nnc.backends.azsim.hardware import PRESETS, load_hardware
from nnc.backends.azsim.lowering import to_program
from nnc.backends.azsim.pipeline import pipeline_cycles
from nnc.backends.azsim.program import Tiling
from nnc.backends.azsim.simulator import Simulator
from nnc.backends.azsim.tiling import halo, pieces, row_ranges
from nnc.passmanager import PassManager, parse_pipeline
from nnc.pipelines import CANONICAL

from azsim_testing import ProgramBuilder, machine, mac_layer

GEMM_PARAMS = dict(x_zero_point=0, y_zero_point=0, out_min=-128, out_max=127, out_dtype=1)
TINY_HW = 'name = "az-tiny"\nweight_sram_bytes = 256\nactivation_sram_bytes = 768\n'


# -- geometry and cost formulas, by hand ---------------------------------------------------
def test_halo_of_a_strided_padded_window():
    # 3-tap window, stride 2, pad 1 over 12 rows: output rows [2, 4) read input rows 3..7
    assert halo((2, 4), 12, kernel=3, stride=2, dilation=1, pad_begin=1) == (3, 8, 0, 0)
    # the first tile starts in the padding, the last one ends in it
    assert halo((0, 2), 12, 3, 2, 1, 1) == (0, 4, 1, 0)
    assert halo((5, 6), 11, 3, 2, 1, 1) == (9, 11, 0, 1)  # 11 rows: the last window passes the end
    assert halo((0, 12), 12, 3, 1, 1, 1) == (0, 12, 1, 1)


def test_pieces_run_chunk_major():
    assert row_ranges(5, 2) == [(0, 2), (2, 4), (4, 5)]
    order = [(p.chunk, p.channels, p.rows) for p in pieces(3, 2, [4, 1])]
    assert order == [(0, (0, 4), (0, 2)), (0, (0, 4), (2, 3)), (1, (4, 5), (0, 2)), (1, (4, 5), (2, 3))]


def test_pipeline_overlaps_fetch_and_write_back_with_compute():
    # fetch 10 | max(5, 7 + 0) | max(9, 0 + 3) | write 4  = 10 + 7 + 9 + 4
    assert pipeline_cycles([10, 7], [5, 9], [3, 4]) == 30
    assert pipeline_cycles([6], [20], [0]) == 26  # one piece: nothing overlaps


def test_a_chunked_gemm_costs_what_the_formula_says():
    """QGemm [4, 16] in two dense chunks of 2 channels (32 bytes each) on a
    machine with 64 bytes of weight SRAM: pieces fetch 32 + 48 constant bytes,
    then 32 bytes; each computes 32 MACs on 8 lanes (4 cycles)."""
    b = ProgramBuilder()
    x = b.input("x", "i8", (1, 16))
    rng = np.random.default_rng(0)
    w = rng.integers(-20, 20, (4, 16), dtype=np.int8)
    w[w == 0] = 1
    out = mac_layer(b, "QGemm", x, w, np.zeros(4, np.int32), np.full(4, 1 << 20, np.int32),
                    np.full(4, 24, np.int32), (1, 4), GEMM_PARAMS)
    whole = b.program(out)
    chunks = (b.stream(w[:2], 8, 0), b.stream(w[2:], 8, 0))
    layer = dataclasses.replace(whole.layers[0], weights=-1, tiling=Tiling(chunks=chunks))
    program = dataclasses.replace(whole, layers=(layer,), streams=tuple(b.streams))
    hw = machine(weight_sram_bytes=64, bus_bytes_per_cycle=4.0, decoder_bytes_per_cycle=2.0, mac_lanes=8)
    sample = {"x": rng.integers(-128, 128, (1, 16), dtype=np.int8)}
    tiled_out, stats = Simulator(read_blob(write_blob(program)), hw).run(sample)
    whole_out, _ = Simulator(whole, dataclasses.replace(hw, weight_sram_bytes=128)).run(sample)
    np.testing.assert_array_equal(tiled_out[b.tensors[out].name], whole_out[b.tensors[out].name])
    (row,) = stats.layers
    fetch0 = max(-(-(32 + 48) // 4), 32 // 2)     # chunk + bias, multiplier, shift (3 × 16 bytes)
    fetch1 = max(32 // 4, 32 // 2)
    compute = [32 // 8, 32 // 8]
    assert (row.tiles, row.dma_in_bytes, row.dma_out_bytes) == (2, 32 + 48 + 32, 0)
    assert row.compute_cycles == 8 and row.decoder_cycles == 32
    assert row.stall_cycles == pipeline_cycles([fetch0, fetch1], compute, [0, 0]) - 8 == fetch0 + fetch1 - 4
    assert row.cycles == fetch0 + max(4, fetch1) + 4 + row.post_cycles + hw.layer_overhead_cycles
    assert row.utilization == pytest.approx(64 / (8 * row.cycles))


# -- a model that needs both kinds of tiling on a tiny machine ---------------------------------
def _conv(name, x, y, w, group=1, pad=1):
    """A Conv node and its initializers (weights `w`, bias 0.01)."""
    node = helper.make_node("Conv", [x, name + ".w", name + ".b"], [y], name=name, group=group, pads=[pad] * 4)
    bias = np.full(w.shape[0], 0.01, np.float32)
    return node, [numpy_helper.from_array(w, name + ".w"), numpy_helper.from_array(bias, name + ".b")]


def tiling_model() -> onnx.ModelProto:
    """conv 3×3 → relu → maxpool 3×3/2 → (grouped conv 3×3 + 1×1 conv) → add → relu
    → avgpool 2×2/2 → global average → gemm → relu → gemm."""
    rng = np.random.default_rng(7)

    def w(*shape):
        return (rng.standard_normal(shape) * 0.3).astype(np.float32)
    nodes, inits = [], []
    for node, params in (_conv("conv_a", "x", "a", w(8, 2, 3, 3)), _conv("conv_b", "p", "b", w(16, 2, 3, 3), 4),
                         _conv("conv_s", "p", "s", w(16, 8, 1, 1), pad=0)):
        nodes.append(node)
        inits += params
    nodes[1:1] = [helper.make_node("Relu", ["a"], ["ar"], name="relu_a"),
                  helper.make_node("MaxPool", ["ar"], ["p"], name="pool", kernel_shape=[3, 3], strides=[2, 2],
                                   pads=[1, 1, 1, 1])]
    nodes += [helper.make_node("Add", ["b", "s"], ["c"], name="add"),
              helper.make_node("Relu", ["c"], ["cr"], name="relu_c"),
              helper.make_node("AveragePool", ["cr"], ["ap"], name="avg", kernel_shape=[2, 2], strides=[2, 2]),
              helper.make_node("GlobalAveragePool", ["ap"], ["g"], name="gap"),
              helper.make_node("Flatten", ["g"], ["f"], name="flatten"),
              helper.make_node("Gemm", ["f", "fc1.w", "fc1.b"], ["h"], name="fc1", transB=1),
              helper.make_node("Relu", ["h"], ["hr"], name="relu_h"),
              helper.make_node("Gemm", ["hr", "fc2.w", "fc2.b"], ["y"], name="fc2", transB=1)]
    inits += [numpy_helper.from_array(w(32, 16), "fc1.w"), numpy_helper.from_array(w(32) * 0.1, "fc1.b"),
              numpy_helper.from_array(w(10, 32), "fc2.w"), numpy_helper.from_array(w(10) * 0.1, "fc2.b")]
    graph = helper.make_graph(nodes, "tiling", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 12, 12])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.fixture(scope="module")
def tiled_compile(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiling")
    onnx.save(tiling_model(), folder / "model.onnx")
    samples = np.random.default_rng(1).standard_normal((3, 1, 2, 12, 12)).astype(np.float32)
    np.savez(folder / "samples.npz", x=samples)
    (folder / "tiny.toml").write_text(TINY_HW, encoding="utf-8")
    result = nnc.compile(folder / "model.onnx", target="az-sim", output_dir=folder / "out",
                         calib=folder / "samples.npz", hw=folder / "tiny.toml")
    return folder, result.report


def test_a_model_tiled_both_ways_is_bit_exact(tiled_compile):
    _, report = tiled_compile
    assert report["verification"]["vs_reference"]["bit_exact"]  # the compile raises otherwise
    rows = {row["name"]: row for row in report["sim"]["layers"]}
    by_op = {}
    for row in rows.values():
        by_op.setdefault(row["op"], []).append(row)
    # activations: convolutions, pooling, addition and quantization ran in tiles through external memory
    for op in ("QConv", "MaxPool", "QAdd", "QuantizeLinear"):
        assert any(r["tiles"] > 1 and r["dma_in_bytes"] + r["dma_out_bytes"] > 0 for r in by_op[op]), op
    assert report["sim"]["dma_out_bytes"] > 0
    # weights: the 288-byte grouped convolution and both gemms streamed in chunks
    assert rows["fc2"]["tiles"] > 1 and rows["fc1"]["tiles"] > 1
    assert all(r["stall_cycles"] >= 0 and 0 <= r["utilization"] <= 1 for r in rows.values())


def test_a_compile_without_verification_reports_the_stats_verification_measures(tiled_compile):
    """Without skipping zero activations every inference has the static stats,
    which a compile without verification reports without simulating."""
    folder, verified = tiled_compile
    unverified = nnc.compile(folder / "model.onnx", target="az-sim", output_dir=folder / "unverified",
                             calib=folder / "samples.npz", hw=folder / "tiny.toml", verify=False).report
    assert "verification" not in unverified and unverified["sim"] == verified["sim"]


def test_the_tiling_round_trips_through_a_version_4_blob(tiled_compile):
    folder, _ = tiled_compile
    data = (folder / "out" / "model.azb").read_bytes()
    assert int.from_bytes(data[8:12], "little") == 4
    program = read_blob(data)
    assert read_blob(write_blob(program)) == program
    assert any(t.external for t in program.tensors)
    assert any(layer.tiling and layer.tiling.chunks for layer in program.layers)
    assert any(layer.tiling and layer.tiling.rows for layer in program.layers)
    with pytest.raises(nnc.UnsupportedError, match="weight SRAM|activation SRAM"):
        Simulator(program, machine(weight_sram_bytes=64, activation_sram_bytes=768))


@pytest.fixture(scope="module")
def integer_graph(tiled_compile):
    folder, _ = tiled_compile
    pipeline = f"{CANONICAL},quantize{{calib=\"{folder / 'samples.npz'}\"}}"
    return PassManager(parse_pipeline(pipeline)).run(nnc.load(folder / "model.onnx"))


def test_a_machine_it_fits_leaves_the_program_untiled(tiled_compile, integer_graph):
    folder, _ = tiled_compile
    untiled = to_program(integer_graph)
    assert to_program(integer_graph, hw=load_hardware("large")) == untiled
    assert all(layer.tiling is None for layer in untiled.layers) and not any(t.external for t in untiled.tensors)
    assert int.from_bytes(write_blob(untiled)[8:12], "little") < 4  # a version 1 to 3 blob, as before
    assert read_blob(write_blob(untiled)) == untiled
    tiled = to_program(integer_graph, hw=load_hardware(folder / "tiny.toml"))
    assert tiled != untiled and write_blob(tiled)[8:12] == (4).to_bytes(4, "little")
    assert write_blob(to_program(integer_graph, hw=load_hardware(folder / "tiny.toml"))) == write_blob(tiled)


@pytest.mark.parametrize("sizes, message", [
    ({"weight_sram_bytes": 256, "activation_sram_bytes": 512}, "'pool' .*staging areas need 672 bytes"),
    ({"weight_sram_bytes": 32, "activation_sram_bytes": 1 << 20}, "'conv_a' .*one output channel's weights take 18 bytes"),
])
def test_what_cannot_be_tiled_is_refused_at_compile_time(integer_graph, sizes, message):
    with pytest.raises(nnc.UnsupportedError, match=message):
        to_program(integer_graph, hw=machine(**sizes))


def test_tiles_execute_the_same_macs_with_activation_skipping(tiled_compile, integer_graph):
    """Pieces partition the output positions and channels: with zero skipping of
    weights and activations, per layer the executed MACs and outputs equal the
    untiled run's."""
    folder, _ = tiled_compile
    skipping = dict(skip_zero_activations=True, zero_skip_group=2)
    tiny = dataclasses.replace(load_hardware(folder / "tiny.toml"), **skipping)
    sample = {"x": np.random.default_rng(5).standard_normal((1, 2, 12, 12)).astype(np.float32)}
    tiled_out, tiled = Simulator(to_program(integer_graph, hw=tiny), tiny).run(sample)
    whole_out, whole = Simulator(to_program(integer_graph), machine(**skipping)).run(sample)
    np.testing.assert_array_equal(tiled_out["y"], whole_out["y"])
    assert [r.macs_executed for r in tiled.layers] == [r.macs_executed for r in whole.layers]
    assert tiled.macs_skipped > 0 and max(r.tiles for r in tiled.layers) > 1


def test_channels_first_layers_tile_too(tiled_compile):
    """Without the layout pass convolutions and poolings stay NCHW: rows are axis
    2, channels axis 1; the tiled run equals the untiled one."""
    folder, _ = tiled_compile
    pipeline = ("remove-identity,canonicalize,fold-constants,fuse-bias,fuse-activation,"
                f"quantize{{calib=\"{folder / 'samples.npz'}\"}}")
    graph = PassManager(parse_pipeline(pipeline)).run(nnc.load(folder / "model.onnx"))
    tiny = load_hardware(folder / "tiny.toml")
    program = to_program(graph, hw=tiny)
    conv = next(layer for layer in program.layers if layer.op == "QConv" and layer.tiling and layer.tiling.rows)
    assert not conv.params.get("channels_last") and conv.tiling.axis == 2
    sample = {"x": np.random.default_rng(6).standard_normal((1, 2, 12, 12)).astype(np.float32)}
    tiled_out, _ = Simulator(program, tiny).run(sample)
    whole_out, _ = Simulator(to_program(graph), machine()).run(sample)
    np.testing.assert_array_equal(tiled_out["y"], whole_out["y"])


def test_a_corrupt_tiling_record_is_refused(tiled_compile):
    folder, _ = tiled_compile
    program = read_blob((folder / "out" / "model.azb").read_bytes())
    index, layer = next((i, layer) for i, layer in enumerate(program.layers) if layer.tiling and layer.tiling.chunks)
    broken = dataclasses.replace(layer, tiling=dataclasses.replace(layer.tiling, chunks=(len(program.streams),)))
    layers = program.layers[:index] + (broken,) + program.layers[index + 1:]
    with pytest.raises(nnc.BlobError, match="TILING section.*chunk streams"):
        read_blob(write_blob(dataclasses.replace(program, layers=layers)))


def test_an_external_tensor_far_past_the_others_is_refused(tiled_compile):
    """A blob cannot make the simulator allocate more external memory than its
    external tensors need (4 GiB from one offset otherwise)."""
    folder, _ = tiled_compile
    program = read_blob((folder / "out" / "model.azb").read_bytes())
    index = next(i for i, t in enumerate(program.tensors) if t.external)
    far = dataclasses.replace(program.tensors[index], offset=(1 << 32) - 4096)
    tensors = program.tensors[:index] + (far,) + program.tensors[index + 1:]
    with pytest.raises(nnc.BlobError, match="external memory"):
        read_blob(write_blob(dataclasses.replace(program, tensors=tensors)))


def _with_tiling(program, pick, change):
    index = next(i for i, layer in enumerate(program.layers) if layer.tiling and pick(layer))
    layer = program.layers[index]
    changed = dataclasses.replace(layer, tiling=dataclasses.replace(layer.tiling, **change(layer.tiling)))
    return dataclasses.replace(program, layers=program.layers[:index] + (changed,) + program.layers[index + 1:])


@pytest.mark.parametrize("pick, change, message", [
    (lambda layer: layer.tiling.rows, lambda t: {"axis": 7}, "tiled along axis 7"),
    (lambda layer: layer.tiling.staging >= 0, lambda t: {"staging_bytes": 16}, "staging half"),
    (lambda layer: layer.tiling.chunks, lambda t: {"chunks": ()}, "neither a weight stream nor weight chunks"),
    (lambda layer: len(layer.tiling.chunks) > 1, lambda t: {"chunks": t.chunks[:1]}, "weight chunks of"),
])
def test_the_simulator_refuses_a_tiling_that_does_not_hold(tiled_compile, pick, change, message):
    folder, _ = tiled_compile
    program = read_blob((folder / "out" / "model.azb").read_bytes())
    with pytest.raises(nnc.BlobError, match=message):
        Simulator(_with_tiling(program, pick, change), load_hardware(folder / "tiny.toml"))


def test_every_flipped_tiling_byte_is_read_safely(tiled_compile):
    """Each byte of the TILING section with its bits inverted, CRCs fixed: the
    reader or the simulator refuses with an NncError, or the program runs."""
    folder, _ = tiled_compile
    blob = bytearray((folder / "out" / "model.azb").read_bytes())
    entry = 32 + 16 * 5  # the sixth section table entry: TILING
    _, offset, length, _ = struct.unpack_from("<4I", blob, entry)
    hw = load_hardware(folder / "tiny.toml")
    sample = {"x": np.zeros((1, 2, 12, 12), np.float32)}
    outcomes = set()
    for at in range(offset, offset + length):
        broken = bytearray(blob)
        broken[at] ^= 0xFF
        struct.pack_into("<I", broken, entry + 12, zlib.crc32(bytes(broken[offset:offset + length])))
        struct.pack_into("<I", broken, 28, zlib.crc32(bytes(broken[:28] + broken[32:32 + 16 * 6])))
        try:
            Simulator(read_blob(bytes(broken)), hw).run(sample)
            outcomes.add("ran")
        except nnc.NncError as exc:
            outcomes.add(type(exc).__name__)
    assert "BlobError" in outcomes


# -- presets -----------------------------------------------------------------------------
def test_presets_are_shipped_and_named():
    assert all(path.is_file() for path in PRESETS.values())
    small, default, large = (load_hardware(name) for name in ("small", "default", "large"))
    assert (small.name, default.name, large.name) == ("az-small", "az-default", "az-large")
    assert default == load_hardware()
    assert small.weight_sram_bytes < default.weight_sram_bytes < large.weight_sram_bytes


def test_nnc_run_takes_a_preset_name(tiled_compile):
    folder, _ = tiled_compile
    done = subprocess.run([sys.executable, "-m", "nnc.cli", "run", str(folder / "out" / "model.azb"), "--inputs",
                           str(folder / "samples.npz"), "--hw", "small"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "simulated on az-small" in done.stdout and "tiled layer(s)" in done.stdout
