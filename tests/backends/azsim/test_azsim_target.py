"""The az-sim target as users meet it: `nnc compile --target az-sim`, `nnc run`,
`nnc.simulate` — on the MLPerf Tiny models, the shipped example and CTC heads."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import nnc
from nnc import packing
from nnc.backends.azsim.blob import read_blob
from nnc.backends.azsim.hardware import load_hardware
from nnc.backends.azsim.program import weight_encodings
from nnc.summary import summarize

from mlperf import MODEL_NAMES, MODELS_DIR, requires_models

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "01-tiny-cnn"


def independent_skipped_macs(graph: nnc.Graph) -> int:
    """Zero weights × the output positions each weight is applied at, from the
    compiled graph's weight constants (zero_skip_group = 1, the default machine):
    QConv: every weight of output channel c is applied at N·Hout·Wout positions;
    QGemm: every weight is applied once per row M of the input."""
    total = 0
    for node in graph.nodes():
        if node.op not in ("QConv", "QGemm"):
            continue
        zeros = int(np.count_nonzero(graph.tensor(node.inputs[1]).data == 0))
        out = graph.tensor(node.outputs[0]).shape
        if node.op == "QConv":
            positions = math.prod(out) // (out[-1] if node.attrs.channels_last else out[1])
        else:
            positions = out[0]
        total += zeros * positions
    return total


@requires_models
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_model_compiles_and_verifies(name, tmp_path):
    sample = MODELS_DIR / f"{name}.io.npz"
    result = nnc.compile(MODELS_DIR / f"{name}.onnx", target="az-sim", output_dir=tmp_path / "out", calib=sample)
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["verification"]["vs_reference"]["bit_exact"] is True
    assert report["verification"]["executed"] is True
    assert report["sim"]["cycles"] > 0
    assert report["sim"]["macs_total"] == summarize(nnc.load(MODELS_DIR / f"{name}.onnx")).totals["macs"]
    assert report["sim"]["macs_skipped"] == independent_skipped_macs(result.graph)
    blob = (tmp_path / "out" / f"{name}.azb").read_bytes()
    outputs, stats = nnc.simulate(blob, sample)
    (expected,) = nnc.run(result.graph, {result.graph.inputs[0]: np.load(sample)["input"]}).values()
    np.testing.assert_array_equal(next(iter(outputs.values())), expected)
    assert stats.cycles == report["sim"]["cycles"]


def log_softmax_head(conv: bool) -> tuple[onnx.ModelProto, list[int]]:
    """A CTC head and its input shape: x [1, 16, 20] -> Conv1d -> LogSoftmax over
    channels (axis 1), or x [1, 20, 32] -> MatMul -> Add -> LogSoftmax over the last axis."""
    rng = np.random.default_rng(5)
    shape, out = ([1, 16, 20], [1, 29, 20]) if conv else ([1, 20, 32], [1, 20, 29])
    w = rng.standard_normal((29, 16, 3) if conv else (32, 29)) * 0.3
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["z"], pads=[1, 1])] if conv else \
        [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Add", ["h", "b"], ["z"])]
    nodes.append(helper.make_node("LogSoftmax", ["z"], ["logp"], axis=1 if conv else -1))
    graph = helper.make_graph(nodes, "ctc", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("logp", TensorProto.FLOAT, out)],
                              [numpy_helper.from_array(v.astype(np.float32), n)
                               for n, v in (("w", w), ("b", rng.standard_normal(29)))])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), shape


@pytest.mark.parametrize("conv", [False, True], ids=["linear", "conv"])
def test_log_softmax_heads_simulate_bit_exactly(conv, tmp_path):
    """LogSoftmax runs as one QLogSoftmax layer (a version 5 blob), bit-exact
    with the reference, its PPU work 2 · elements + rows and both tables loaded."""
    model, shape = log_softmax_head(conv)
    onnx.save(model, tmp_path / "ctc.onnx")
    calib = {"x": np.random.default_rng(6).standard_normal((8, *shape)).astype(np.float32)}
    result = nnc.compile(tmp_path / "ctc.onnx", target="az-sim", output_dir=tmp_path / "out", calib=calib)
    assert result.report["verification"]["vs_reference"]["bit_exact"] is True
    (row,) = [row for row in result.report["sim"]["layers"] if row["op"] == "QLogSoftmax"]
    hw = load_hardware()
    assert row["post_cycles"] == math.ceil((2 * 20 * 29 + 20) * hw.post_cycles_per_output)
    assert row["bytes_loaded"] == (256 + 257) * 4 and row["cycles"] > row["post_cycles"]
    assert (tmp_path / "out" / "ctc.azb").read_bytes()[8] == 5


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "nnc.cli", *map(str, args)], capture_output=True, text=True)


@pytest.fixture(scope="module")
def example_blob(tmp_path_factory):
    out = tmp_path_factory.mktemp("azsim") / "tiny"
    proc = _cli("compile", EXAMPLE / "tiny_cnn.onnx", "--target", "az-sim", "-o", out,
                "--calib", EXAMPLE / "sample.npz")
    assert proc.returncode == 0, proc.stderr
    assert "simulated on az-default" in proc.stdout
    return out / "tiny_cnn.azb"


def test_run_batch_stacks_outputs(example_blob, tmp_path):
    proc = _cli("run", example_blob, "--inputs", EXAMPLE / "sample.npz", "-o", tmp_path / "y.npz", "--json")
    assert proc.returncode == 0, proc.stderr
    stats = json.loads(proc.stdout)
    assert stats["samples"] == 4 and all(run["cycles"] > 0 for run in stats["runs"])
    outputs = np.load(tmp_path / "y.npz")
    assert outputs["probs"].shape == (4, 1, 10) and outputs["probs"].dtype == np.float32
    single, one = nnc.simulate(example_blob, {"input": np.load(EXAMPLE / "sample.npz")["input"][2]})
    np.testing.assert_array_equal(single["probs"], outputs["probs"][2])
    assert one.cycles == stats["runs"][2]["cycles"]


@pytest.mark.parametrize("damage", ["truncate", "flip", "overwrite"])
def test_damaged_blob_exits_2(example_blob, tmp_path, damage):
    data = bytearray(example_blob.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 3]
    elif damage == "flip":
        data[len(data) // 2] ^= 0x10
    else:
        data[40:48] = b"\xff" * 8
    bad = tmp_path / "bad.azb"
    bad.write_bytes(bytes(data))
    proc = _cli("run", bad, "--inputs", EXAMPLE / "sample.npz", "-o", tmp_path / "y.npz")
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and proc.stderr.startswith("nnc: error: ")
    assert not (tmp_path / "y.npz").exists()


def test_hardware_file_changes_the_cost_not_the_result(example_blob, tmp_path):
    hw = tmp_path / "wide.toml"
    hw.write_text("name = \"wide\"\nmac_lanes = 256\n")
    sample = {"input": np.load(EXAMPLE / "sample.npz")["input"][0]}
    base, base_stats = nnc.simulate(example_blob, sample)
    wide, wide_stats = nnc.simulate(example_blob, sample, hw)
    np.testing.assert_array_equal(base["probs"], wide["probs"])
    assert wide_stats.compute_cycles < base_stats.compute_cycles and wide_stats.hardware == "wide"
    bad = tmp_path / "bad.toml"
    bad.write_text("mac_lanes = -3\n")
    proc = _cli("run", example_blob, "--inputs", EXAMPLE / "sample.npz", "--hw", bad)
    assert proc.returncode == 2 and "mac_lanes" in proc.stderr


def test_every_changed_or_missing_byte_is_refused(example_blob):
    """Each byte of a real blob XOR 0xFF, and the blob cut at every length, must
    raise BlobError (which `nnc run` turns into exit 2) — nothing else."""
    data = example_blob.read_bytes()
    sample = {"input": np.load(EXAMPLE / "sample.npz")["input"][0]}
    damaged = [data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1:] for i in range(len(data))]
    damaged += [data[:length] for length in range(len(data))]
    for blob in damaged:
        with pytest.raises(nnc.BlobError):
            nnc.simulate(blob, sample)


# -- weight packing: --pack auto|dense|bitmask|rle|codebook ---------------------------------
@pytest.fixture(scope="module")
def packed_builds(tmp_path_factory):
    """The example pruned to 80 % zeros, compiled once per pack choice:
    choice -> (CompileResult, report, blob bytes)."""
    builds = {}
    for choice in packing.PACK_CHOICES:
        out = tmp_path_factory.mktemp(f"pack-{choice}")
        result = nnc.compile(EXAMPLE / "tiny_cnn.onnx", target="az-sim", output_dir=out,
                             calib=EXAMPLE / "sample.npz", sparsity=0.8, pack=choice)
        builds[choice] = result, json.loads((out / "report.json").read_text()), (out / "tiny_cnn.azb").read_bytes()
    return builds


@pytest.mark.parametrize("choice", packing.PACK_CHOICES)
def test_every_pack_choice_simulates_bit_exactly(packed_builds, choice):
    result, report, blob = packed_builds[choice]
    assert report["verification"]["vs_reference"]["bit_exact"] is True
    program = read_blob(blob)
    if choice != "auto":
        assert {s.format for s in program.streams} == {packing.FORMAT_NAMES[choice]}
    assert report["sim"]["streams"] == {layer: {"format": f, "bits": b, "bytes": n}
                                        for layer, (f, b, n) in weight_encodings(program).items()}
    x = np.load(EXAMPLE / "sample.npz")["input"][1]
    outputs, _ = nnc.simulate(blob, {"input": x})
    np.testing.assert_array_equal(outputs["probs"], nnc.run(result.graph, {"input": x})["probs"])


def test_auto_stores_the_fewest_bytes_per_layer(packed_builds):
    streams = {choice: packed_builds[choice][1]["sim"]["streams"] for choice in packing.PACK_CHOICES}
    assert list(streams["dense"]) == ["conv1", "dwconv", "pwconv", "fc"]
    # dense 8-bit weights: one byte per weight (conv1 16·1·3·3, dwconv 16·1·3·3, pwconv 32·16, fc 10·32)
    assert [s["bytes"] for s in streams["dense"].values()] == [144, 144, 512, 320]
    for layer, best in streams["auto"].items():
        sizes = {name: streams[name][layer]["bytes"] for name in packing.FORMAT_NAMES}
        assert best["bytes"] == min(sizes.values()) and sizes[best["format"]] == best["bytes"]
    # 80 % zeros in the layers the prune pass prunes (conv1 and dwconv read 9 weights per
    # channel: small fan-in layers stay dense, passes/prune.py)
    assert all(streams["auto"][layer]["format"] != "dense" for layer in ("pwconv", "fc"))


def test_stored_bytes_change_only_the_streams(packed_builds):
    """Blobs of different pack choices differ in size by their payloads alone (stream
    headers and everything else are the same), and the simulator loads exactly them."""
    def total(choice):
        return sum(s["bytes"] for s in packed_builds[choice][1]["sim"]["streams"].values())

    dense_blob = len(packed_builds["dense"][2])
    for choice in packing.PACK_CHOICES:
        _, report, blob = packed_builds[choice]
        assert len(blob) - dense_blob == total(choice) - total("dense")
        rows = {row["name"]: row["weight_stream_bytes"] for row in report["sim"]["layers"]}
        assert all(rows[layer] == s["bytes"] for layer, s in report["sim"]["streams"].items())
    assert total("auto") < min(total(name) for name in packing.FORMAT_NAMES)


def test_cli_pack_flag_reaches_the_blob(tmp_path):
    proc = _cli("compile", EXAMPLE / "tiny_cnn.onnx", "--target", "az-sim", "-o", tmp_path,
                "--calib", EXAMPLE / "sample.npz", "--pack", "codebook")
    assert proc.returncode == 0, proc.stderr
    program = read_blob((tmp_path / "tiny_cnn.azb").read_bytes())
    assert {s.format for s in program.streams} == {packing.FORMAT_CODEBOOK}


@pytest.mark.parametrize("folder", [True, False])
def test_a_compile_decodes_its_blob_once_and_verification_reads_the_file(folder, tmp_path, monkeypatch):
    """The target reads the blob it wrote straight back (every payload decoded:
    the writer's check); verification then reads the file, and decodes it again
    only if its bytes are not the ones read back."""
    import nnc.backends.azsim.target as target

    decoded, files = [], []
    monkeypatch.setattr(target, "read_blob", lambda data: decoded.append(len(data)) or read_blob(data))
    real_read_bytes = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes",
                        lambda self: files.append(self.name) or real_read_bytes(self))
    out = tmp_path / "out" if folder else None
    result = nnc.compile(EXAMPLE / "tiny_cnn.onnx", "az-sim", out, pack="huffman")
    assert len(decoded) == 1
    assert ("tiny_cnn.azb" in files) == folder and result.report["verification"]["vs_reference"]["bit_exact"]
