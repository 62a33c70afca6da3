"""Bad input a user can give ends in exactly one line `nnc: error: ...`, exit 2,
and no file left behind (issue 10, deliverable 2): sample files, options, hardware
files, text IR files and `nnc run`. The CLI runs in-process (`run_cli`)."""

from __future__ import annotations

import io
import os
import random
import stat
import zipfile
from pathlib import Path

import numpy as np
import pytest

import nnc
from nnc.cli import run_cli
from nnc.errors import ShapeError
from nnc.limits import MAX_SAMPLE_MAGNITUDE
from nnc.verification import InputSpec, conform, prepare_samples

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "01-tiny-cnn"
MODEL = EXAMPLE / "tiny_cnn.onnx"
GOOD = np.load(EXAMPLE / "sample.npz")["input"]  # [4, 1, 16, 12, 1] float32: a batch of 4


def files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def refused(capsys, folder: Path, *args) -> str:
    """Run `nnc ARGS` in-process; assert exit 2, one `nnc: error:` line on stderr
    and no file added to `folder`. Returns the line."""
    before = files(folder)
    code = run_cli([str(a) for a in args])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("nnc: error: "), err
    assert files(folder) == before
    return lines[0]


def accepted(capsys, *args) -> str:
    code = run_cli([str(a) for a in args])
    err = capsys.readouterr().err
    assert code == 0, err
    return err


@pytest.fixture(scope="module")
def blob(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("az") / "out"
    nnc.compile(MODEL, "az-sim", out, calib=EXAMPLE / "sample.npz", verify=False)
    return out / "tiny_cnn.azb"


# -- sample files ----------------------------------------------------------------------
def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def npz(**members: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def with_value(value, index=(1, 0, 3, 2, 0), dtype=np.float32) -> bytes:
    array = GOOD.astype(dtype)
    array[index] = value
    return npz(**{"input.npy": npy(array)})


def huge_header() -> bytes:
    """An .npy array whose header announces 2^27 floats (past the limit), then 16 bytes."""
    text = "{'descr': '<f4', 'fortran_order': False, 'shape': (134217728,), }"
    header = text + " " * (-(10 + len(text) + 1) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode("latin1") + bytes(16)


def crc_damaged() -> bytes:
    data = bytearray(npz(**{"input.npy": npy(GOOD)}))
    data[200] ^= 0xFF  # inside the stored array data
    return bytes(data)


BAD_SAMPLES = {
    "empty": (b"", "empty"),
    "truncated-npz": (npz(**{"input.npy": npy(GOOD)})[:1500], "corrupt zip archive"),
    "truncated-npy": (npy(GOOD)[:100], "not a valid .npy array"),
    "not-a-zip": (random.Random(0).randbytes(300), "neither an .npz"),
    "member-not-array": (npz(**{"input.txt": b"hello"}), "member 'input.txt' is not an .npy array"),
    "member-garbage": (npz(**{"input.npy": b"garbage"}), "array 'input': not a valid .npy array"),
    "crc-damaged": (crc_damaged(), "corrupt zip member"),
    "padded-member": (npz(**{"input.npy": npy(GOOD) + b"xx"}), "(truncated or padded)"),
    "folder": (None, "a folder, not a data file"),
    "object-npz": (npz(**{"input.npy": npy(np.array([1, "a"], dtype=object))}), "dtype object"),
    "strings": (npz(**{"input.npy": npy(np.array(["a", "b"]))}), "is not numeric"),
    "structured": (npz(**{"input.npy": npy(np.zeros(GOOD.shape, dtype=[("a", "<f4")]))}), "is not numeric"),
    "zero-d": (npz(**{"input.npy": npy(np.float32(1))}), "has shape []"),
    "past-the-limit": (npz(**{"input.npy": huge_header()}), "past nnc's limit"),
    "int8": (npz(**{"input.npy": npy(np.zeros(GOOD.shape, np.int8))}), "int8 data for input 'input', which takes"),
    "bool": (npz(**{"input.npy": npy(np.zeros(GOOD.shape, bool))}), "takes float32"),
    "int-not-exact": (with_value(2 ** 24 + 1, dtype=np.int32), "holds 16777217 at index [1, 0, 3, 2, 0]"),
    "nan": (with_value(np.nan), "holds nan at index [1, 0, 3, 2, 0]; samples must be finite"),
    "inf": (with_value(-np.inf), "holds -inf at index [1, 0, 3, 2, 0]"),
    "3e38": (with_value(3e38), "past nnc's limit of ±1e+15"),
    "float64-1e300": (with_value(1e300, dtype=np.float64), "holds 1e+300 at index [1, 0, 3, 2, 0]"),
}
READERS = {
    "compile --inputs": lambda f, o: ["compile", MODEL, "-o", o, "--inputs", f],
    "compile --calib": lambda f, o: ["compile", MODEL, "-t", "ir", "--quantize", "--no-verify", "-o", o,
                                     "--calib", f],
    "inspect --calib": lambda f, o: ["inspect", MODEL, "--sensitivity", "--calib", f],
    "run --inputs": None,  # needs the blob: see test_bad_sample_file
}


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("case", BAD_SAMPLES)
def test_bad_sample_file(capsys, tmp_path, blob, reader, case):
    data, fragment = BAD_SAMPLES[case]
    path = tmp_path / ("samples.npy" if case.endswith("npy") else "samples.npz")
    if data is None:
        path.mkdir()
    else:
        path.write_bytes(data)
    args = (["run", blob, "--inputs", path, "-o", tmp_path / "y.npz"] if reader == "run --inputs"
            else READERS[reader](path, tmp_path / "out"))
    line = refused(capsys, tmp_path, *args)
    assert fragment in line and str(path) in line


def test_nan_in_calib_is_named_not_an_accumulator_overflow(capsys, tmp_path):
    path = tmp_path / "calib.npz"
    path.write_bytes(with_value(np.nan))
    line = refused(capsys, tmp_path, "compile", MODEL, "-t", "c", "-o", tmp_path / "out", "--calib", path)
    assert "array 'input': holds nan at index [1, 0, 3, 2, 0]" in line and "accumulator" not in line


@pytest.mark.parametrize("dtype", [np.float64, np.float16, np.int32, np.int64, np.int16])
def test_exact_casts_are_accepted(capsys, tmp_path, dtype):
    values = np.round(GOOD * 100) if np.dtype(dtype).kind == "i" else GOOD
    np.savez(tmp_path / "x.npz", input=values.astype(dtype))
    accepted(capsys, "compile", MODEL, "-o", tmp_path / "out", "--inputs", tmp_path / "x.npz")
    assert (tmp_path / "out" / "report.json").is_file()


def test_a_batch_may_stack_samples_along_the_model_s_own_batch_axis():
    """For an input [1, 16, 12, 1], [4, 16, 12, 1] is four samples, as [4, 1, 16,
    12, 1] is (finetune took the first form, compile refused it)."""
    specs = {"input": InputSpec((1, 16, 12, 1), "f32")}
    stacked, batched = prepare_samples({"input": GOOD[:, 0]}, specs, "x.npz")
    extra_axis, _ = prepare_samples({"input": GOOD}, specs, "x.npz")
    assert batched and len(stacked) == 4
    assert all(np.array_equal(a["input"], b["input"]) and a["input"].shape == (1, 16, 12, 1)
               for a, b in zip(stacked, extra_axis))
    with pytest.raises(ShapeError, match=r"needs \[1, 16, 12, 1\] or a batch \[B, 1, 16, 12, 1\] or \[B, 16, 12, 1\]"):
        prepare_samples({"input": GOOD[:, 0, :8]}, specs, "x.npz")


@pytest.mark.parametrize("array, dtype, expected", [
    (np.array([1.5, -2.0], np.float64), "f32", np.array([1.5, -2.0], np.float32)),
    (np.array([3, -7], np.int16), "f32", np.array([3.0, -7.0], np.float32)),
    (np.array([3.0, 4.0], np.float32), "i64", np.array([3, 4], np.int64)),
    (np.array([True, False]), "i8", np.array([1, 0], np.int8)),
    (np.array([200, 7], np.int32), "u8", np.array([200, 7], np.uint8)),
])
def test_conform_casts_only_exactly(array, dtype, expected):
    got = conform(array, dtype, "x", "f.npz: array 'x'")
    assert got.dtype == expected.dtype and np.array_equal(got, expected)


@pytest.mark.parametrize("array, dtype, fragment", [
    (np.array([1.0, 2.5]), "i64", "holds 2.5 at index [1]"),
    (np.array([1, 300], np.int32), "i8", "holds 300 at index [1]"),
    (np.array([1, 2 ** 60], np.int64), "f32", "outside ±16,777,216, the integers input 'x' (float32) takes"),
    (np.array([np.float32(MAX_SAMPLE_MAGNITUDE) * 2]), "f32", "past nnc's limit"),
    (np.array([1, 2], np.uint8), "f32", "uint8 data for input 'x', which takes float32"),
    (np.array([1.0, np.nan, np.inf]), "f32", "holds nan at index [1]"),
])
def test_conform_refuses_with_the_first_bad_index(array, dtype, fragment):
    with pytest.raises(ShapeError, match=None) as info:
        conform(array, dtype, "x", "f.npz: array 'x'")
    assert fragment in str(info.value) and str(info.value).startswith("f.npz: array 'x': ")


def test_simulate_refuses_int8_for_a_float_blob(blob):
    with pytest.raises(ShapeError, match="int8 data for input 'input', which takes float32"):
        nnc.simulate(blob, {"input": np.zeros(GOOD.shape[1:], np.int8)})


# -- options ---------------------------------------------------------------------------
@pytest.mark.parametrize("args, fragment", [
    (["compile", MODEL, "-o", "OUT", "--weight-bits", "x"], "argument --weight-bits: invalid int value: 'x'"),
    (["compile", MODEL, "-o"], "argument -o/--output: expected one argument"),
    (["compile", MODEL], "the following arguments are required: -o/--output"),
    (["compile", MODEL, "-o", "OUT", "--bogus"], "no such option: --bogus"),
    (["inspect", MODEL, "--bits", "four", "--sensitivity"], "argument --bits: invalid int value: 'four'"),
    (["inspect"], "the following arguments are required: MODEL"),
    (["run", "x.azb"], "the following arguments are required: --inputs"),
    (["run", "x.azb", "--inputs", "x.npz", "--frobnicate"], "no such option: --frobnicate"),
    (["frobnicate"], "no such command 'frobnicate'"),
    (["compile", MODEL, "-o", "OUT", "--print-ir-after", "bogus"], "print-ir-after 'bogus' is not a pass"),
    (["compile", MODEL, "-o", "OUT", "--pipeline", "canonicalize", "--print-ir-after", "layout"],
     "--print-ir-after layout: no such pass in the pipeline 'canonicalize'"),
    (["compile", MODEL, "-o", "OUT", "--sparsity-pattern", ""], "sparsity-pattern must be \"N:M\""),
    (["compile", MODEL, "-o", "OUT", "--sparsity-pattern", "1:1000000000"], "M <= 256"),
    (["compile", MODEL, "-o", "OUT", "--sparsity-pattern", "0:4"], "got '0:4'"),
    (["compile", MODEL, "-o", "OUT", "--sparsity-pattern", "5:4"], "got '5:4'"),
    (["compile", MODEL, "-o", "OUT", "--sparsity-pattern", "a:b"], "got 'a:b'"),
    (["compile", MODEL, "-o", "OUT", "--sparsity-pattern", "²:4"], "got '²:4'"),
    (["compile", MODEL, "-o", "OUT", "--sparsity", "nan"], "sparsity must be in [0, 1)"),
    (["compile", MODEL, "-o", "OUT", "--input-shape", "input=100000000,16,12,1"], "past nnc's limit"),
    (["compile", MODEL, "-o", "OUT", "--input-shape", "input=0,16,12,1"], "positive integer"),
    (["compile", MODEL, "-o", "OUT", "--input-shape", "input=-3,16,12,1"], "positive integer"),
    (["compile", MODEL, "-o", "OUT", "--stream", "input=100000000,16,12,1"], "--stream input: shape"),
    (["inspect", MODEL, "--input-shape", "input=100000000,16,12,1"], "past nnc's limit"),
])
def test_bad_options(capsys, tmp_path, args, fragment):
    args = [tmp_path / "out" if a == "OUT" else a for a in args]
    assert fragment in refused(capsys, tmp_path, *args)


def test_api_print_ir_after_a_pass_outside_the_pipeline_names_the_keyword():
    with pytest.raises(nnc.OptionError, match="^print_ir_after 'layout': no such pass in the pipeline 'canonicalize'$"):
        nnc.compile(MODEL, pipeline="canonicalize", print_ir_after="layout")


def test_api_input_shapes_are_checked(tmp_path):
    with pytest.raises(nnc.OptionError, match="input-shape input: every dim must be a positive integer"):
        nnc.compile(MODEL, "ir", tmp_path / "out", input_shapes={"input": (1, 16, 0, 1)})
    assert not (tmp_path / "out").exists()


# -- hardware files --------------------------------------------------------------------
@pytest.mark.parametrize("text, fragment", [
    ("clock_mhz = 1e308\n", "'clock_mhz' must be a finite number in [0.001, 100,000] MHz, got 1e+308"),
    ("clock_mhz = 0\n", "'clock_mhz' must be a finite number in [0.001, 100,000]"),
    ("bus_bytes_per_cycle = -4\n", "'bus_bytes_per_cycle' must be a finite number in [0.001, 65,536]"),
    ("decoder_bytes_per_cycle = 1e-300\n", "'decoder_bytes_per_cycle' must be"),
    ("post_cycles_per_output = nan\n", "got nan"),
    ("energy_pj_per_mac = inf\n", "got inf"),
    ("mac_lanes = 9223372036854775807\n", "'mac_lanes' must be an integer in [1, 65,536]"),
    ("zero_skip_group = 1e3\n", "'zero_skip_group' must be an integer"),
    ("weight_sram_bytes = \"lots\"\n", "'weight_sram_bytes' must be an integer in [1, 4,294,967,296] bytes"),
    ("name = \"\"\n", "'name' must be a string of 1 to 64 printable characters"),
    ("clock = 100\n", "unknown key 'clock'"),
    (b"name = \"\xff\xfe\"\n", "not UTF-8 text"),
    (None, ": a folder, not a hardware file"),  # it said 'cannot read it (Is a directory)'
])
def test_bad_hardware_files(capsys, tmp_path, blob, text, fragment):
    hw = tmp_path / "hw.toml"
    if text is None:
        hw.mkdir()
    else:
        hw.write_bytes(text if isinstance(text, bytes) else text.encode())
    line = refused(capsys, tmp_path, "run", blob, "--inputs", EXAMPLE / "sample.npz", "--hw", hw)
    assert fragment in line and str(hw) in line


def test_bad_hardware_file_in_compile(capsys, tmp_path):
    (tmp_path / "hw.toml").write_text("clock_mhz = 1e308\n")
    line = refused(capsys, tmp_path, "compile", MODEL, "-t", "az-sim", "-o", tmp_path / "out",
                   "--hw", tmp_path / "hw.toml")
    assert "'clock_mhz'" in line


# -- text IR files ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def ir_text() -> str:
    return nnc.print_ir(nnc.load(MODEL))


@pytest.mark.parametrize("mutation, fragment", [
    (lambda t: random.Random(1).randbytes(400), "not UTF-8 text"),
    (lambda t: t.encode()[:60] + b"\xff" + t.encode()[60:], "not UTF-8 text (byte 60 is 0xff)"),
    (lambda t: t.encode()[: len(t) // 2], "unexpected"),
    (lambda t: b"", "expected 'graph'"),
    (lambda t: t.replace("f32[1,16,12,1]", "f32[-1,16,12,1]", 1).encode(), "negative dimension"),
    (lambda t: t.replace("f32[1,16,12,1]", "f32[100000,100000,12,1]", 1).encode(), "past nnc's limit"),
    (lambda t: t.replace("%r1: f32[1,16,8,6]", "%r1: f32[1,16,8,7]", 1).encode(), "invalid IR"),
])
def test_bad_ir_files(capsys, tmp_path, ir_text, mutation, fragment):
    path = tmp_path / "g.nnir"
    path.write_bytes(mutation(ir_text))
    line = refused(capsys, tmp_path, "inspect", path)
    assert fragment in line and str(path) in line


def test_valid_ir_file_is_accepted(capsys, tmp_path, ir_text):
    (tmp_path / "g.nnir").write_text(ir_text)
    accepted(capsys, "inspect", tmp_path / "g.nnir")


@pytest.mark.parametrize("seed", range(6))
def test_ir_byte_flips(capsys, tmp_path, ir_text, seed):
    rng = random.Random(seed)
    data = bytearray(ir_text.encode())
    for _ in range(3):
        data[rng.randrange(len(data))] = rng.randrange(256)
    (tmp_path / "g.nnir").write_bytes(bytes(data))
    code = run_cli(["inspect", str(tmp_path / "g.nnir")])
    err = capsys.readouterr().err
    assert code == 0 or (code == 2 and len(err.strip().splitlines()) == 1), err


# -- nnc run ---------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(8))
def test_corrupt_blobs(capsys, tmp_path, blob, seed):
    rng = random.Random(seed)
    data = bytearray(blob.read_bytes())
    if seed % 2:
        data = data[:rng.randrange(len(data))]
    else:
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    (tmp_path / "bad.azb").write_bytes(bytes(data))
    refused(capsys, tmp_path, "run", tmp_path / "bad.azb", "--inputs", EXAMPLE / "sample.npz", "-o",
            tmp_path / "y.npz")


def test_run_refuses_an_existing_folder(capsys, tmp_path, blob):
    (tmp_path / "out").mkdir()
    line = refused(capsys, tmp_path, "run", blob, "--inputs", EXAMPLE / "sample.npz", "-o", tmp_path / "out")
    assert "is a folder" in line and files(tmp_path / "out") == set()


def test_run_refuses_to_overwrite_what_it_reads(capsys, tmp_path, blob):
    copy = tmp_path / "m.azb"
    copy.write_bytes(blob.read_bytes())
    line = refused(capsys, tmp_path, "run", copy, "--inputs", EXAMPLE / "sample.npz", "-o", copy)
    assert "is the file nnc reads" in line and copy.read_bytes() == blob.read_bytes()


def test_run_refuses_a_parent_that_is_a_file(capsys, tmp_path, blob):
    (tmp_path / "f").write_text("mine")
    line = refused(capsys, tmp_path, "run", blob, "--inputs", EXAMPLE / "sample.npz", "-o", tmp_path / "f" / "y.npz")
    assert "is not a folder" in line and (tmp_path / "f").read_text() == "mine"


def test_run_replaces_only_an_earlier_result(capsys, tmp_path, blob):
    target = tmp_path / "y.npz"
    accepted(capsys, "run", blob, "--inputs", EXAMPLE / "sample.npz", "-o", target)
    first = target.read_bytes()
    accepted(capsys, "run", blob, "--inputs", EXAMPLE / "sample.npz", "-o", target)
    assert target.read_bytes() == first
    for name, mine in [("notes.npz", b"my text"), ("good.npy", None), ("other.npz", None)]:
        path = tmp_path / name
        if name == "good.npy":
            np.save(path, np.arange(3))
        elif name == "other.npz":
            np.savez(path, mine=np.arange(3))
        else:
            path.write_bytes(mine)
        before = path.read_bytes()
        line = refused(capsys, tmp_path, "run", blob, "--inputs", EXAMPLE / "sample.npz", "-o", path)
        assert "is not an earlier `nnc run` result" in line and path.read_bytes() == before


def test_run_writes_atomically_into_new_folders(capsys, tmp_path, blob):
    mask = os.umask(0o022)
    try:
        target = tmp_path / "a" / "b" / "y.npz"
        accepted(capsys, "run", blob, "--inputs", EXAMPLE / "sample.npz", "-o", target)
    finally:
        os.umask(mask)
    assert np.load(target)["probs"].shape == (GOOD.shape[0], 1, 10)
    assert files(tmp_path) == {"a", "a/b", "a/b/y.npz"}
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o755
    assert stat.S_IMODE(target.stat().st_mode) == 0o644


def test_run_interrupted_while_writing_leaves_nothing(capsys, tmp_path, blob, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", interrupted)
    (tmp_path / "y.npz").write_bytes(b"old")
    code = run_cli(["run", str(blob), "--inputs", str(EXAMPLE / "sample.npz"), "-o", str(tmp_path / "new" / "y.npz")])
    assert code != 0
    assert files(tmp_path) == {"y.npz"} and (tmp_path / "y.npz").read_bytes() == b"old"
    capsys.readouterr()


# -- a folder where a file is read -----------------------------------------------------
SAMPLES = EXAMPLE / "sample.npz"
FOLDER_READERS = {  # entry point: (arguments for the folder `f` and an output `o`, the file it stands for)
    "compile": (lambda f, o: ["compile", f, "-o", o], "model file"),
    "compile .nnir": (lambda f, o: ["compile", f.with_suffix(".nnir"), "-o", o], "model file"),
    "validate": (lambda f, o: ["validate", f, "--data", SAMPLES], "model file"),
    "finetune": (lambda f, o: ["finetune", f, "--data", SAMPLES, "-o", o], "model file"),
    "inspect": (lambda f, o: ["inspect", f], "model file"),
    "explore": (lambda f, o: ["explore", f, "-o", o, "--bits", "8"], "model file"),
    "run": (lambda f, o: ["run", f, "--inputs", SAMPLES], "blob file"),
    "run -o": (lambda f, o: ["run", f, "--inputs", SAMPLES, "-o", o.with_suffix(".npz")], "blob file"),
    "report": (lambda f, o: ["report", f], "report.json"),
}


@pytest.mark.parametrize("reader", FOLDER_READERS)
def test_a_folder_given_for_a_file_is_named_a_folder(capsys, tmp_path, reader):
    """Each command reading a model, blob or report says that the path is a
    folder (it said 'no such model file'); a missing path stays 'no such'."""
    if reader == "finetune":
        pytest.importorskip("torch", reason="nnc finetune needs PyTorch")
    args, kind = FOLDER_READERS[reader]
    folder = tmp_path / "m.onnx"
    path = Path(args(folder, tmp_path / "out")[1])
    path.mkdir()
    line = refused(capsys, tmp_path, *args(folder, tmp_path / "out"))
    assert line.endswith(f"{path}: a folder, not a {kind}")
    path.rmdir()
    assert refused(capsys, tmp_path, *args(folder, tmp_path / "out")).endswith(f"{path}: no such {kind}")


@pytest.mark.parametrize("call, error, kind", [
    (lambda f: nnc.load(f), nnc.ModelError, "model file"),
    (lambda f: nnc.compile(f, "ir"), nnc.ModelError, "model file"),
    (lambda f: nnc.compile(f.with_suffix(".nnir"), "ir"), nnc.ModelError, "model file"),
    (lambda f: nnc.validate(f, SAMPLES), nnc.ModelError, "model file"),
    (lambda f: nnc.simulate(f, SAMPLES), nnc.BlobError, "blob file"),
    (lambda f: nnc.Simulator(f), nnc.BlobError, "blob file"),
    (lambda f: nnc.explore.explore(f, None, {"bits": "8"}), nnc.ModelError, "model file"),
    (lambda f: nnc.explore.explore(MODEL, None, {"bits": "8"}, calib=f), ShapeError, "data file"),
    (lambda f: nnc.compile(MODEL, "az-sim", hw=f), nnc.OptionError, "hardware file"),
    (lambda f: nnc.explore.explore(MODEL, None, sweep_file=f), nnc.OptionError, "sweep file"),
])
def test_api_a_folder_given_for_a_file_is_named_a_folder(tmp_path, call, error, kind):
    folder = tmp_path / "m.onnx"
    folder.mkdir()
    folder.with_suffix(".nnir").mkdir()
    with pytest.raises(error, match=f"a folder, not a {kind}$"):
        call(folder)


def test_samples_of_a_symbolic_batch_say_which_dims_were_bound(capsys, tmp_path):
    """Samples made for batch 2 of a model exported with a symbolic batch dim:
    the error says that dim was bound to 1 and how to give the shape."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "m.onnx")
    np.savez(tmp_path / "calib.npz", x=np.ones((3, 2, 4), np.float32))
    code = run_cli(["compile", str(tmp_path / "m.onnx"), "--calib", str(tmp_path / "calib.npz"),
                    "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "input 'x' has symbolic dim 0 (batch), bound to 1" in err
    assert "--input-shape x=D0,D1,..." in err and len(err.strip().splitlines()) == 1
    with pytest.raises(ShapeError, match=r"give its shape with input_shapes=\{'x': \(\.\.\.\)\}"):
        nnc.compile(tmp_path / "m.onnx", "ir", calib=tmp_path / "calib.npz", quantize=True)
    assert nnc.compile(tmp_path / "m.onnx", "ir", calib=tmp_path / "calib.npz", quantize=True,
                       input_shapes={"x": (2, 4)}).graph.tensor("x").shape == (2, 4)
