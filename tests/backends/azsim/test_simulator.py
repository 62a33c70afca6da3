"""The simulator's accounting against hand-computed cases (docs/azsim.md §3–4,
§8), its refusals, activation SRAM as the memory plan lays it out, and parity
with the reference interpreter on the MLPerf Tiny models."""

from __future__ import annotations

import math

import numpy as np
import pytest
from azsim_testing import ProgramBuilder, mac_layer, machine
from mlperf import MODEL_NAMES, MODELS_DIR, requires_models

import nnc
from nnc import packing
from nnc.backends.azsim.blob import write_blob
from nnc.backends.azsim.program import FORMAT_BITMASK, FORMAT_CODEBOOK, FORMAT_DENSE, Program, WeightStream
from nnc.backends.azsim.simulator import Simulator, simulate
from nnc.cli import run_cli
from nnc.errors import BlobError, ShapeError, UnsupportedError
from nnc.numerics import quantize_multiplier

GEMM_PARAMS = dict(x_zero_point=0, y_zero_point=0, out_min=-128, out_max=127, out_dtype=1)
QUIET = dict(post_cycles_per_output=0, layer_overhead_cycles=0)  # isolates max(load, decode, compute)


def gemm(w: np.ndarray, rows: int = 1, bits: int = 8, format: int | None = None, bias: bool = True):
    """A one-QGemm program x[rows, K] -> y[rows, N] and a matching input."""
    n, k = w.shape
    b = ProgramBuilder()
    x = b.input("x", "i8", (rows, k))
    m, s = quantize_multiplier(0.01)
    y = mac_layer(b, "QGemm", x, w, np.arange(n) if bias else None, [m] * n, [s] * n, (rows, n), GEMM_PARAMS,
                  bits=bits, format=format)
    feed = {"x": np.random.default_rng(0).integers(-128, 128, (rows, k)).astype(np.int8)}
    return b.program(y), feed


def half_zero(n: int, k: int) -> np.ndarray:
    w = np.full((n, k), 3, np.int8)
    w[:, ::2] = 0
    return w


def test_worked_example_of_the_docs():
    """docs/azsim.md §8, number for number, on the default machine."""
    program, feed = gemm(half_zero(16, 64), format=FORMAT_BITMASK)
    assert program.streams[0].format == FORMAT_BITMASK and len(program.streams[0].payload) == 640
    _, stats = simulate(program, feed)
    row = stats.layers[0]
    assert (row.macs_total, row.macs_executed, row.macs_skipped) == (1024, 512, 512)
    assert (row.bytes_loaded, row.weight_stream_bytes, row.sram_bytes) == (832, 640, 2320)
    assert (row.load_cycles, row.decoder_cycles, row.compute_cycles, row.post_cycles) == (208, 160, 8, 4)
    assert row.cycles == stats.cycles == 276
    assert stats.energy_uj == pytest.approx(86253.6e-6, rel=1e-12)
    assert stats.latency_ms == pytest.approx(276 / 250_000)


def test_worked_example_packed_as_a_codebook():
    """docs/azsim.md §8, second part: the same layer as `--pack auto` stores it."""
    program, feed = gemm(half_zero(16, 64))
    stream = program.streams[0]
    assert (stream.format, stream.bits, len(stream.payload)) == (FORMAT_CODEBOOK, 1, 131)
    _, stats = simulate(program, feed)
    row = stats.layers[0]
    assert (row.bytes_loaded, row.sram_bytes, row.load_cycles, row.decoder_cycles) == (323, 2320, 81, 33)
    assert row.cycles == 149 and stats.energy_uj == pytest.approx(35353.6e-6, rel=1e-12)


@pytest.mark.parametrize("format", packing.FORMATS)
def test_every_stream_format_computes_the_same_and_decodes_its_compressed_bytes(format):
    rng = np.random.default_rng(3)
    w = rng.integers(-7, 8, (8, 32)).astype(np.int8)
    w[rng.random(w.shape) < 0.7] = 0
    program, feed = gemm(w, rows=3, bits=packing.natural_bits(w, format), format=format)
    reference, _ = gemm(w, rows=3, format=FORMAT_DENSE)
    (out, stats), (expected, dense) = simulate(program, feed), simulate(reference, feed)
    np.testing.assert_array_equal(out["y"], expected["y"])
    payload, row = len(program.streams[0].payload), stats.layers[0]
    assert (row.weight_stream_bytes, row.bytes_loaded) == (payload, payload + 3 * 8 * 4)
    assert row.decoder_cycles == math.ceil(payload / 4) and row.macs_executed == dense.macs_executed


def test_half_the_weights_zero_executes_half_the_macs():
    dense, feed = gemm(np.full((8, 32), 5, np.int8), rows=3)
    sparse, _ = gemm(half_zero(8, 32), rows=3)
    _, full = simulate(dense, feed)
    _, half = simulate(sparse, feed)
    assert full.macs_executed == full.macs_total == 3 * 8 * 32
    assert half.macs_executed == half.macs_skipped == full.macs_total // 2


@pytest.mark.parametrize("cin, group", [(4, 1), (4, 4), (6, 2)])
def test_conv_executes_the_macs_of_nonzero_weights(cin, group):
    """N·Cout·Hout·Wout·(Cin/g)·kh·kw MACs, of which those of zero weights are skipped."""
    w = np.ones((4, cin // group, 3, 3), np.int8)
    w.reshape(4, -1)[:, ::2] = 0
    b = ProgramBuilder()
    x = b.input("x", "i8", (1, 6, 6, cin))
    m, s = quantize_multiplier(0.01)
    params = dict(kernel_shape=(3, 3), strides=(1, 1), pads=(1, 1, 1, 1), dilations=(1, 1), group=group,
                  channels_last=1, **GEMM_PARAMS)
    y = mac_layer(b, "QConv", x, w, None, [m] * 4, [s] * 4, (1, 6, 6, 4), params)
    _, stats = simulate(b.program(y), {"x": np.ones((1, 6, 6, cin), np.int8)})
    assert stats.macs_total == 1 * 4 * 6 * 6 * (cin // group) * 9
    assert stats.macs_executed == 6 * 6 * int(np.count_nonzero(w))


def test_bus_bound_cycles_are_bytes_over_bus_width():
    program, feed = gemm(np.full((4, 256), 9, np.int8), format=FORMAT_DENSE)
    hw = machine(bus_bytes_per_cycle=2, decoder_bytes_per_cycle=1000, mac_lanes=1024, **QUIET)
    _, stats = simulate(program, feed, hw)
    assert stats.bytes_loaded == 4 * 256 + 3 * 4 * 4  # dense weights + bias, multiplier, shift
    assert stats.cycles == stats.load_cycles == stats.bytes_loaded // 2
    _, slower = simulate(program, feed, machine(bus_bytes_per_cycle=2.5, decoder_bytes_per_cycle=1000,
                                                mac_lanes=1024, layer_overhead_cycles=7, post_cycles_per_output=0))
    assert slower.cycles == math.ceil(1072 / 2.5) + 7


def test_decoder_bound():
    program, feed = gemm(np.full((4, 256), 9, np.int8), format=FORMAT_DENSE)
    _, stats = simulate(program, feed, machine(bus_bytes_per_cycle=64, decoder_bytes_per_cycle=0.5,
                                               mac_lanes=1024, **QUIET))
    assert stats.cycles == stats.decoder_cycles == 1024 * 2


def test_compute_bound_and_post_processing():
    program, feed = gemm(np.full((16, 64), 1, np.int8), rows=8, bits=2, format=FORMAT_DENSE)
    hw = machine(mac_lanes=16, bus_bytes_per_cycle=64, post_cycles_per_output=0.1, layer_overhead_cycles=10)
    _, stats = simulate(program, feed, hw)
    assert stats.compute_cycles == 8 * 16 * 64 // 16
    assert stats.post_cycles == math.ceil(8 * 16 * 0.1) == 13  # decimal rates are exact: 12.8 -> 13
    assert stats.cycles == 512 + 13 + 10


def test_energy_formula():
    program, feed = gemm(half_zero(4, 16), rows=2)
    hw = machine(energy_pj_per_mac=2.0, energy_pj_per_sram_byte=0.5, energy_pj_per_offchip_byte=10.0)
    _, stats = simulate(program, feed, hw)
    stream = len(program.streams[0].payload)
    assert stats.bytes_loaded == stream + 48
    assert stats.sram_bytes == 2 * 16 + 2 * 4 + 2 * 64 + 48  # x, y, 2·decoded weights, constants
    expected_pj = 2 * 4 * 8 * 2.0 + stats.sram_bytes * 0.5 + stats.bytes_loaded * 10.0
    assert stats.energy_uj == pytest.approx(expected_pj * 1e-6, rel=1e-12)


def test_zero_skip_groups():
    """docs/azsim.md §4: G = 4, channel [0 0 0 0 | 0 5 0 0] runs 4 of 8 MACs."""
    w = np.array([[0, 0, 0, 0, 0, 5, 0, 0], [1, 0, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0, 0]], np.int8)
    program, feed = gemm(w, rows=2)
    for group, executed in ((1, 2), (4, 8), (3, 3 + 3), (8, 16), (5, 3 + 5)):
        _, stats = simulate(program, feed, machine(zero_skip_group=group))
        assert stats.macs_executed == 2 * executed, group


def test_activation_skipping_counts_zero_activations():
    w = np.array([[1, 1, 0, 1], [0, 2, 2, 2]], np.int8)
    program, _ = gemm(w, rows=2)
    x = np.array([[0, 5, 0, -1], [3, 0, 0, 0]], np.int8)  # zero point 0: zeros are real zeros
    _, off = simulate(program, {"x": x})
    _, on = simulate(program, {"x": x}, machine(skip_zero_activations=True))
    assert off.macs_executed == 2 * 6
    # row 0: nonzero at k=1 (2 kept weights), k=3 (2); row 1: k=0 (1)
    assert on.macs_executed == 2 + 2 + 1 and on.macs_skipped == 16 - 5
    assert on.compute_cycles == 1


def test_stats_rows_and_json():
    program, feed = gemm(half_zero(4, 8))
    outputs, stats = simulate(program, feed)
    data = stats.to_json()
    for key in ("macs_total", "macs_executed", "macs_skipped", "bytes_loaded", "decoder_cycles",
                "compute_cycles", "post_cycles", "cycles", "latency_ms", "energy_uj"):
        assert data[key] == getattr(stats, key) == stats.totals[key]
    assert data["layers"][0]["name"] == program.layers[0].name and data["hardware"] == "az-default"
    outputs["y"][...] = 0  # a copy, not a view of activation SRAM
    again, _ = simulate(program, feed)
    assert again["y"].any()


def test_prepared_once_per_program_and_machine():
    program, feed = gemm(half_zero(4, 8))
    sim = Simulator(program, machine())
    first, stats = sim.run(feed)
    second, stats2 = sim.run(feed)
    np.testing.assert_array_equal(first["y"], second["y"])
    assert stats == stats2


# -- activation SRAM --------------------------------------------------------------------
def requantize_params(multiplier: float = 1.0):
    m, s = quantize_multiplier(multiplier)
    return dict(x_zero_point=0, y_zero_point=0, multiplier=m, shift=s, out_min=-128, out_max=127, out_dtype=1)


def test_tensors_live_at_their_planned_offsets():
    """Two live tensors planned at the same offset clobber each other, as on the chip:
    y1 = x, y2 = x/2 written over y1, y = y1 + y2 sees y2 twice."""
    def program(second_offset):
        b = ProgramBuilder()
        x = b.input("x", "i8", (8,))
        y1 = b.layer("Requantize", (x,), ("y1", "i8", (8,)), requantize_params(1.0))
        y2 = b.layer("Requantize", (x,), b.activation("y2", "i8", (8,), offset=second_offset), requantize_params(0.5))
        ma, s = quantize_multiplier(0.5)
        add = dict(a_zero_point=0, b_zero_point=0, y_zero_point=0, a_multiplier=ma, b_multiplier=ma, shift=s - 1,
                   out_min=-128, out_max=127, out_dtype=1)
        return b.program(b.layer("QAdd", (y1, y2), ("y", "i8", (8,)), add))
    x = np.arange(-40, 40, 10, dtype=np.int8)
    good, _ = simulate(program(None), {"x": x})
    clobbered, _ = simulate(program(8), {"x": x})  # y2 over y1 (x at 0..7, y1 at 8..15)
    half = np.floor(x / 2 + 0.5)
    np.testing.assert_array_equal(good["y"], x + half)
    np.testing.assert_array_equal(clobbered["y"], 2 * half)


def test_a_reshape_view_costs_nothing_and_a_reshape_copy_costs_a_layer():
    """docs/azsim.md §3.1: a Reshape planned at its input's place is a view, every
    figure 0; one with its own place copies, paying the fixed overhead and its
    bytes. Both give the input's values in the new shape."""
    def program(view: bool):
        b = ProgramBuilder()
        x = b.input("x", "i8", (2, 12))
        y = b.layer("Reshape", (x,), b.activation("y", "i8", (24,), offset=0 if view else None), {"shape": (24,)})
        return b.program(y)
    x = np.arange(24, dtype=np.int8).reshape(2, 12)
    (view, view_stats), (copy, copy_stats) = (simulate(program(v), {"x": x}) for v in (True, False))
    np.testing.assert_array_equal(view["y"], x.reshape(-1))
    np.testing.assert_array_equal(copy["y"], x.reshape(-1))
    row = view_stats.layers[0]
    assert (row.cycles, row.post_cycles, row.sram_bytes, row.energy_uj) == (0, 0, 0, 0.0)
    assert (view_stats.cycles, view_stats.sram_bytes) == (0, 0)
    assert copy_stats.layers[0].cycles == 64 + math.ceil(24 * 0.25) and copy_stats.layers[0].sram_bytes == 48


def test_activation_sram_too_small_is_refused():
    program, _ = gemm(np.ones((4, 300), np.int8))
    with pytest.raises(UnsupportedError, match=r"layer 'qgemm0' \(QGemm\).*activation SRAM"):
        Simulator(program, machine(activation_sram_bytes=303))
    Simulator(program, machine(activation_sram_bytes=304))  # x 300 + y 4 bytes fit exactly


def test_weights_larger_than_weight_sram_are_refused():
    program, _ = gemm(np.ones((4, 300), np.int8))
    with pytest.raises(UnsupportedError, match="decoded weights take 1200 bytes.*weight SRAM"):
        Simulator(program, machine(weight_sram_bytes=1199))


def test_the_hint_to_compile_for_the_machine_names_hw_in_the_api_and_the_flag_on_the_command_line(tmp_path, capsys):
    program, feed = gemm(np.ones((4, 300), np.int8))
    (tmp_path / "p.azb").write_bytes(write_blob(program))
    (tmp_path / "hw.toml").write_text("weight_sram_bytes = 1199\n")
    np.savez(tmp_path / "x.npz", **feed)
    said = "layer 'qgemm0' (QGemm): its decoded weights take 1200 bytes, more than the 1199-byte weight SRAM of 'hw'"
    with pytest.raises(UnsupportedError) as caught:
        nnc.simulate(tmp_path / "p.azb", feed, tmp_path / "hw.toml")
    assert str(caught.value) == f"{said} (compile with hw set to this machine to stream them in chunks)"
    code = run_cli(["run", str(tmp_path / "p.azb"), "--inputs", str(tmp_path / "x.npz"), "--hw",
                    str(tmp_path / "hw.toml")])
    assert code == 2
    assert capsys.readouterr().err.splitlines() == [f"nnc: error: {said} (compile for this machine, --hw, to stream "
                                                    "them in chunks)"]


def test_accumulator_overflow_is_refused():
    # x_zero_point 0 on i8: |x − z_x| <= 128, so Σ|w|·128 = 140000·127·128 > 2^31
    program, _ = gemm(np.full((1, 140_000), 127, np.int8))
    with pytest.raises(UnsupportedError, match="int32 accumulator"):
        Simulator(program, machine(weight_sram_bytes=2**20, activation_sram_bytes=2**20))


def test_bad_programs_and_inputs():
    program, _ = gemm(half_zero(4, 8))
    with pytest.raises(ShapeError, match="missing"):
        simulate(program, {})
    with pytest.raises(ShapeError, match="shape"):
        simulate(program, {"x": np.zeros((2, 8), np.int8)})
    with pytest.raises(ShapeError, match="dtype"):
        simulate(program, {"x": np.full((1, 8), 300)})
    stream = program.streams[0]
    broken = Program(program.name, program.tensors, program.layers,
                     (WeightStream(stream.format, stream.bits, stream.shape, stream.payload[:-1]),),
                     program.inputs, program.outputs, program.activation_bytes)
    with pytest.raises(BlobError, match="weight stream 0"):
        Simulator(broken)
    layer = program.layers[0]
    unknown = Program(program.name, program.tensors, (type(layer)("l", "Conv", layer.inputs, layer.outputs),),
                      (), program.inputs, program.outputs, program.activation_bytes)
    with pytest.raises(UnsupportedError, match="no Conv unit"):
        Simulator(unknown)


# -- parity with the reference interpreter -------------------------------------------------
def compiled(name: str):
    from nnc.passmanager import PassManager, parse_pipeline
    from nnc.pipelines import CANONICAL

    graph = nnc.load(MODELS_DIR / f"{name}.onnx")
    calib = MODELS_DIR / f"{name}.io.npz"
    return PassManager(parse_pipeline(CANONICAL + f',quantize{{calib="{calib}"}}')).run(graph)


@requires_models
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_parity_with_the_reference_on_mlperf_models(name):
    """Graph -> Program -> blob bytes -> Program -> simulator, bit for bit equal to
    nnc.run on the graph; MACs equal to nnc inspect's count."""
    from nnc.backends.azsim.blob import read_blob, write_blob
    from nnc.backends.azsim.lowering import to_program
    from nnc.summary import summarize

    graph = compiled(name)
    program = read_blob(write_blob(to_program(graph)))
    sample = np.load(MODELS_DIR / f"{name}.io.npz")["input"]
    rng = np.random.default_rng(7)
    noise = (rng.integers(-128, 128, sample.shape).astype(sample.dtype) if sample.dtype == np.int8
             else (sample + rng.normal(0, sample.std() + 1e-3, sample.shape)).astype(sample.dtype))
    simulator = Simulator(program, machine(skip_zero_activations=True))
    for x in (sample, noise):
        inputs = {graph.inputs[0]: x}
        outputs, stats = simulator.run(inputs)
        reference = nnc.run(graph, inputs)
        assert outputs.keys() == reference.keys()
        for key, value in reference.items():
            assert outputs[key].dtype == value.dtype
            np.testing.assert_array_equal(outputs[key], value)
    assert stats.macs_total == summarize(graph).totals["macs"]
    assert 0 < stats.macs_executed <= stats.macs_total and stats.cycles > 0 and stats.energy_uj > 0
