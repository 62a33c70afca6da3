"""The az-sim blob (docs/blob-format.md): read(write(p)) == p for hand-built,
generated and real programs, deterministic bytes, the documented header, writer
range checks, and one clear BlobError for each rule the reader enforces."""

from __future__ import annotations

import dataclasses
import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mlperf import MODEL_NAMES, MODELS_DIR, requires_models

import nnc
from nnc import packing
from nnc.backends.azsim.blob import ENTRY, FORMAT_SINCE, HEADER, MAGIC, OP_CODES, read_blob, write_blob
from nnc.backends.azsim.lowering import to_program
from nnc.backends.azsim.program import (DTYPE_CODES, FORMAT_BITMASK, FORMAT_CODEBOOK, FORMAT_DENSE, FORMAT_RLE,
                                        LayerDesc, Program, TensorDesc, WeightStream)
from nnc.backends.azsim.simulator import Simulator, simulate
from nnc.ops import get_op
from nnc.ops.qsoftmax import log_softmax_attrs, log_table
from nnc.packing import FORMAT_HUFFMAN
from nnc.passmanager import PassManager, parse_pipeline
from nnc.pipelines import CANONICAL

I8, I32 = DTYPE_CODES["i8"], DTYPE_CODES["i32"]


def const(name: str, values, dtype=np.int32) -> TensorDesc:
    data = np.asarray(values, dtype)
    return TensorDesc(name, DTYPE_CODES[{np.int32: "i32", np.int8: "i8"}[dtype]], data.shape,
                      data=data.astype(data.dtype.newbyteorder("<")).tobytes())


def tiny_program(**changes) -> Program:
    """x -> QGemm (dense 4-bit weights) -> Reshape (a view) -> QLut -> out; out
    reuses x's bytes, which are dead by then."""
    w = np.array([[1, 0, -3, 7], [0, 0, 0, 2], [-7, 1, 1, 1]], np.int8)
    tensors = (TensorDesc("x", I8, (1, 4), 0, (0.5,), (3,)), const("bias", [5, -6, 0]),
               const("m", [1 << 30] * 3), const("n", [20, 21, 22]),
               TensorDesc("y", I8, (1, 3), 16, (0.25,), (-1,)), TensorDesc("z", I8, (3,), 16, (0.25,), (-1,)),
               const("table", np.arange(-128, 128), np.int8), TensorDesc("out", I8, (3,), 0, (0.125,), (0,)))
    layers = (LayerDesc("fc", "QGemm", (0, -1, 1, 2, 3), (4,),
                        {"x_zero_point": 3, "y_zero_point": -1, "out_min": -128, "out_max": 127, "out_dtype": I8}, 0),
              LayerDesc("flat", "Reshape", (4,), (5,), {"shape": (3,)}),
              LayerDesc("lut", "QLut", (5, 6), (7,)))
    streams = (WeightStream(FORMAT_DENSE, 4, (3, 4), packing.encode(w, 4, FORMAT_DENSE)),)
    fields = dict(name="tiny", tensors=tensors, layers=layers, streams=streams, inputs=(0,), outputs=(7,),
                  activation_bytes=32)
    return Program(**{**fields, **changes})


def sections(blob: bytes) -> list[bytes]:
    (count,) = struct.unpack_from("<I", blob, 20)
    return [blob[o:o + n] for _, o, n, _ in (ENTRY.unpack_from(blob, HEADER.size + ENTRY.size * i)
                                              for i in range(count))]


def assemble(bodies: list[bytes], version: int = 1) -> bytes:
    """A blob with these section bodies and correct table and CRCs, written
    independently of blob.py from docs/blob-format.md (version 1 unless a stream
    format needs more)."""
    offset, table = 32 + 16 * len(bodies), b""
    for kind, body in enumerate(bodies, 1):
        table += struct.pack("<IIII", kind, offset, len(body), zlib.crc32(body))
        offset += len(body)
    head = MAGIC + struct.pack("<IIIII", version, 0, offset, len(bodies), 0)
    return head + struct.pack("<I", zlib.crc32(head + table)) + table + b"".join(bodies)


def integer_program(name: str) -> Program:
    graph = nnc.load(MODELS_DIR / f"{name}.onnx")
    pipeline = f"{CANONICAL},quantize{{calib=\"{MODELS_DIR / (name + '.io.npz')}\"}}"
    return to_program(PassManager(parse_pipeline(pipeline)).run(graph))


# -- round trips -------------------------------------------------------------------
def test_tiny_program_round_trips():
    program = tiny_program()
    assert read_blob(write_blob(program)) == program


def test_assemble_matches_the_writer():
    """The documented container, rebuilt from the sections alone, is the writer's."""
    blob = write_blob(tiny_program())
    assert assemble(sections(blob)) == blob


def test_header_fields_are_where_the_doc_says():
    blob = write_blob(tiny_program())
    magic, version, flags, size, count, reserved, crc = struct.unpack_from("<8sIIIIII", blob)
    assert (magic, version, flags, size, count, reserved) == (b"\x89AZB\r\n\x1a\n", 1, 0, len(blob), 5, 0)
    assert crc == zlib.crc32(blob[:28] + blob[32:112])
    assert [ENTRY.unpack_from(blob, 32 + 16 * i)[0] for i in range(5)] == [1, 2, 3, 4, 5]


def test_bytes_are_deterministic_and_params_canonical():
    program = tiny_program()
    shuffled = dataclasses.replace(program.layers[0], params=dict(reversed(program.layers[0].params.items())))
    assert write_blob(program) == write_blob(tiny_program())
    assert write_blob(program) == write_blob(tiny_program(layers=(shuffled, *program.layers[1:])))


def test_edge_values_round_trip():
    program = tiny_program(name="ünï/cødé;名前", layers=(
        LayerDesc("fc", "QGemm", (0, -1, 1, 2, 3), (4,), {"big": 2**63 - 1, "small": -2**63, "empty": (),
                                                          "t": tuple(range(-5, 300))}, 0),
        *tiny_program().layers[1:]))
    assert read_blob(write_blob(program)) == program


def test_empty_program_round_trips():
    program = Program("", (), (), (), (), (), 0)
    assert read_blob(write_blob(program)) == program


@st.composite
def programs(draw):
    """Chains of layers, each output in its own SRAM region, with random names,
    params, constants, quantization and weight streams of every format and width."""
    text, ints = st.text(max_size=12), st.integers(-2**63, 2**63 - 1)
    tensors, layers, streams, end = [TensorDesc("in", I8, (2, 3), 0, (1.0,), (0,))], [], [], 6
    for k in range(draw(st.integers(0, 5))):
        size = draw(st.integers(0, 40))
        data = draw(st.binary(min_size=4 * size, max_size=4 * size))
        tensors.append(TensorDesc(f"c{k}" + draw(text), I32, (size,), data=data,
                                  scale=(draw(st.floats(1e-30, 1e30)),) * 2, zero_point=(0, -7)))
        weights = -1
        if draw(st.booleans()):
            bits, count = draw(st.integers(2, 8)), draw(st.integers(0, 50))
            values = np.array(draw(st.lists(st.integers(-(1 << bits - 1), (1 << bits - 1) - 1),
                                            min_size=count, max_size=count)), np.int8)
            fmt = draw(st.sampled_from(packing.FORMATS))
            streams.append(WeightStream(fmt, bits, (count,), packing.encode(values, bits, fmt)))
            weights = len(streams) - 1
        tensors.append(TensorDesc(f"a{k}", I8, (size,), end))
        end += size
        params = draw(st.dictionaries(st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True),
                                      ints | st.tuples(ints, ints) | st.lists(ints, max_size=4).map(tuple)))
        layers.append(LayerDesc(f"l{k}" + draw(text), draw(st.sampled_from(sorted(OP_CODES))),
                                (len(tensors) - 3 if k else 0, -1, len(tensors) - 2), (len(tensors) - 1,),
                                params, weights))
    return Program(draw(text), tuple(tensors), tuple(layers), tuple(streams), (0,), (len(tensors) - 1,),
                   end + draw(st.integers(0, 100)))


@settings(max_examples=60, deadline=None)
@given(programs())
def test_generated_programs_round_trip(program):
    blob = write_blob(program)
    assert read_blob(blob) == program
    assert write_blob(read_blob(blob)) == blob


@requires_models
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_mlperf_blobs_round_trip_and_recompile_identically(name):
    program = integer_program(name)
    blob = write_blob(program)
    assert read_blob(blob) == program
    assert write_blob(integer_program(name)) == blob


# -- writer range checks -------------------------------------------------------------
@pytest.mark.parametrize("changes, message", [
    (dict(activation_bytes=2**32), "activation_bytes"),
    (dict(inputs=(-1,)), "program inputs"),
    (dict(name="x" * 70000), "program name"),
    (dict(streams=(WeightStream(FORMAT_BITMASK, 4, (3, 4), b"\x00"),)), "stream 0"),
    (dict(streams=(WeightStream(7, 4, (3, 4), b""),)), "stream 0"),
    (dict(tensors=(TensorDesc("x", 99, (1,), 0),)), "tensor 0"),
    (dict(tensors=(TensorDesc("x", I8, (1,), -1),)), "offset -1 with data"),
    (dict(tensors=(TensorDesc("x", I8, (4,), -1, data=b"abc"),)), "data length"),
    (dict(tensors=(TensorDesc("x", I8, (1,), 0, (0.0,), (0,)),)), "quantization"),
    (dict(tensors=(TensorDesc("x", I8, (1,), 0, (1.0,), (200,)),)), "quantization"),
    (dict(tensors=(TensorDesc("x", I8, (1,) * 9, 0),)), "tensor 0"),
    (dict(layers=(LayerDesc("l", "Conv", (), ()),)), "no blob code"),
    (dict(layers=(LayerDesc("l", "QLut", (), (), {"alpha": 0.5}),)), "param 'alpha'"),
    (dict(layers=(LayerDesc("l", "QLut", (), (), {"not a name": 1}),)), "param 'not a name'"),
    (dict(layers=(LayerDesc("l", "QLut", (), (), {"k": 2**63}),)), "param 'k'"),
])
def test_writer_refuses_fields_out_of_range(changes, message):
    with pytest.raises(ValueError, match="blob writer: .*" + message):
        write_blob(tiny_program(**changes))


def test_a_writer_that_leaves_payloads_to_the_reader_writes_one_it_refuses():
    program = tiny_program(streams=(WeightStream(FORMAT_BITMASK, 4, (3, 4), b"\x00"),))
    with pytest.raises(nnc.BlobError, match="stream 0: bitmask payload"):
        read_blob(write_blob(program, check_payloads=False))


# -- reader: one BlobError per rule ------------------------------------------------------
def test_blob_error_is_an_nnc_error():
    assert issubclass(nnc.BlobError, nnc.NncError)  # so the CLI exits with code 2


@pytest.mark.parametrize("version, message", [
    (7, r"^blob version 7 is newer than this nnc supports \(6\)$"),
    (0, r"^unknown blob version 0"),
    (2, r"^corrupt blob: header offset 8: version 2, but its weight stream formats \[0\] make it version 1$"),
    (3, r"^corrupt blob: header offset 8: version 3, but its weight stream formats \[0\] make it version 1$"),
])
def test_reader_names_the_version(version, message):
    with pytest.raises(nnc.BlobError, match=message):
        read_blob(assemble(sections(write_blob(tiny_program())), version))


@pytest.mark.parametrize("mangle, message", [
    (lambda b: b[:10], "truncated: 10 bytes"),
    (lambda b: b[:-1], "truncated: the header .* says"),
    (lambda b: b + b"\0", "1 trailing bytes"),
    (lambda b: b"PK" + b[2:], "bad magic"),
    (lambda b: b[:100] + bytes([b[100] ^ 1]) + b[101:], "header CRC32 mismatch"),
    (lambda b: b[:-1] + bytes([b[-1] ^ 0x80]), "STREAMS section, offset .*: CRC32 mismatch"),
])
def test_reader_refuses_damaged_containers(mangle, message):
    with pytest.raises(nnc.BlobError, match=message):
        read_blob(mangle(write_blob(tiny_program())))


def resealed(kind: int, body: bytes) -> bytes:
    """The tiny program's blob with section `kind` replaced and valid CRCs."""
    bodies = sections(write_blob(tiny_program()))
    bodies[kind - 1] = body
    return assemble(bodies)


def section_of(program: Program, kind: int) -> bytes:
    return sections(write_blob(program))[kind - 1]


@pytest.mark.parametrize("kind, body, message", [
    (1, section_of(tiny_program(), 1)[:-4], "META section, offset .*: program outputs needs 4 bytes"),
    (1, section_of(tiny_program(), 1) + b"\0", "META section.*1 bytes left over"),
    (1, b"\x02\x00\xff\xfe" + section_of(tiny_program(), 1)[6:], "program name is not valid UTF-8"),
    (2, b"\xff\xff\xff\xff" + section_of(tiny_program(), 2)[4:], "TENSORS section.*needs"),
    (3, section_of(tiny_program(), 3) + b"\0", "CONSTANTS section.*1 bytes left over"),
    (4, section_of(tiny_program(), 4).replace(b"fc\x02\x00", b"fc\x63\x00", 1), "unknown op code 99"),
    (5, section_of(tiny_program(), 5)[:-1], "STREAMS section.*payload needs"),
])
def test_reader_refuses_bad_records(kind, body, message):
    with pytest.raises(nnc.BlobError, match=message):
        read_blob(resealed(kind, body))


def _layer(program: Program, index: int, **changes) -> tuple[LayerDesc, ...]:
    layers = list(program.layers)
    layers[index] = dataclasses.replace(layers[index], **changes)
    return tuple(layers)


def _tensor(program: Program, index: int, **changes) -> tuple[TensorDesc, ...]:
    tensors = list(program.tensors)
    tensors[index] = dataclasses.replace(tensors[index], **changes)
    return tuple(tensors)


P = tiny_program()


@pytest.mark.parametrize("changes, message", [
    (dict(tensors=_tensor(P, 7, offset=30)), "tensor 7 .* must start at 30 and end by 32"),
    (dict(tensors=_tensor(P, 7, name="x")), "TENSORS section.*same name"),
    (dict(layers=_layer(P, 2, name="fc")), "LAYERS section.*same name"),
    (dict(tensors=_tensor(P, 7, offset=17)), r"'y' \[16, 19\) and 'out' \[17, 20\) are live together at step 2"),
    (dict(tensors=_tensor(P, 5, offset=17)), r"'y' \[16, 19\) and 'z' \[17, 20\) are live together at step 1"),
    (dict(layers=_layer(P, 0, inputs=(9, -1, 1, 2, 3))), "layer 0 .* reads tensor 9"),
    (dict(layers=_layer(P, 0, inputs=(5, -1, 1, 2, 3))), "reads tensor 5, .* not written yet"),
    (dict(layers=_layer(P, 1, outputs=(4,))), "writes tensor 4, .* already written"),
    (dict(layers=_layer(P, 2, outputs=(6,))), "writes tensor 6, .* a constant"),
    (dict(layers=_layer(P, 0, weights=1)), "weight stream 1 of 1"),
    (dict(layers=P.layers[:2]), "activation tensor 7 is neither a program input nor written"),
    (dict(inputs=(0, 0)), "META section.*inputs listed once"),
    (dict(outputs=(1,)), "META section.*must be activation tensors"),
])
def test_reader_checks_cross_references(changes, message):
    with pytest.raises(nnc.BlobError, match=message):
        read_blob(write_blob(tiny_program(**changes)))


def test_reader_decodes_streams():
    """A bitmask payload whose mask promises a nonzero value that is zero."""
    body = struct.pack("<IHBBIIB3xII", 1, 24, FORMAT_BITMASK, 4, 12, 3, 2, 3, 4) + b"\x01\x00\x00"
    with pytest.raises(nnc.BlobError, match="STREAMS section.*stream 0: .*zero value"):
        read_blob(resealed(5, body))


W = np.array([[1, 0, -3, 7], [0, 0, 0, 2], [-7, 1, 1, 1]], np.int8)  # tiny_program's weights


def with_stream(format: int, bits: int = 4) -> Program:
    return tiny_program(streams=(WeightStream(format, bits, (3, 4), packing.encode(W, bits, format)),))


@pytest.mark.parametrize("format, version", [(FORMAT_DENSE, 1), (FORMAT_BITMASK, 1), (FORMAT_RLE, 2),
                                             (FORMAT_CODEBOOK, 2), (FORMAT_HUFFMAN, 3)])
def test_every_format_round_trips_in_the_lowest_version_that_holds_it(format, version):
    program = with_stream(format)
    blob = write_blob(program)
    assert struct.unpack_from("<I", blob, 8) == (version,)
    assert read_blob(blob) == program


def test_a_version_1_blob_cannot_hold_the_version_2_formats():
    blob = assemble(sections(write_blob(with_stream(FORMAT_RLE))), version=1)
    with pytest.raises(nnc.BlobError, match=r"version 1, but its weight stream formats \[2\] make it version 2"):
        read_blob(blob)


@pytest.mark.parametrize("version", [1, 2])
def test_older_versions_cannot_hold_huffman(version):
    blob = assemble(sections(write_blob(with_stream(FORMAT_HUFFMAN))), version=version)
    with pytest.raises(nnc.BlobError, match=rf"version {version}, but its weight stream formats \[4\] make it "
                                            r"version 3"):
        read_blob(blob)


def test_a_huffman_stream_is_where_the_doc_says():
    """Format 4 at bits L = 3 (the code-length limit), the payload of
    nnc.packing's example, after the stream header; the blob is version 3."""
    values = np.array([0, 0, 1, 0, -1, 0, 2, 0], np.int8)
    payload = bytes.fromhex("03 0001 0202 FF03 0103 DC04")
    program = tiny_program(streams=(WeightStream(FORMAT_HUFFMAN, 3, (2, 4), payload),),
                           layers=_layer(P, 0, params={"x_zero_point": 3}))
    blob = write_blob(program)
    assert struct.unpack_from("<I", blob, 8) == (3,)
    assert sections(blob)[4] == struct.pack("<IHBBIIB3xII", 1, 24, 4, 3, 8, 11, 2, 2, 4) + payload
    assert read_blob(blob) == program
    assert packing.decode(read_blob(blob).streams[0].payload, 3, FORMAT_HUFFMAN, 8).tolist() == values.tolist()


# CRC32s of the blobs nnc wrote before huffman (version 1 and 2 writers, commit 68542c2)
OLDER_FORMAT_BLOBS = {FORMAT_DENSE: (908, 0x459BA189), FORMAT_BITMASK: (908, 0x0DF97433),
                      FORMAT_RLE: (913, 0x77632571), FORMAT_CODEBOOK: (915, 0x36C34008)}


@pytest.mark.parametrize("format", OLDER_FORMAT_BLOBS)
def test_blobs_without_huffman_keep_their_bytes(format):
    blob = write_blob(with_stream(format))
    assert (len(blob), zlib.crc32(blob)) == OLDER_FORMAT_BLOBS[format]


def test_a_huffman_program_simulates_and_costs_its_stored_bytes():
    """docs/azsim.md §8, third part: the worked example's layer as a huffman stream.
    The decoder is charged payload bytes / decoder_bytes_per_cycle, as for every format."""
    from test_simulator import gemm, half_zero

    program, feed = gemm(half_zero(16, 64), bits=1, format=FORMAT_HUFFMAN)
    stream = program.streams[0]
    assert (stream.format, stream.bits, len(stream.payload)) == (FORMAT_HUFFMAN, 1, 133)
    assert read_blob(write_blob(program)) == program
    (out, stats), (expected, _) = simulate(program, feed), simulate(gemm(half_zero(16, 64))[0], feed)
    np.testing.assert_array_equal(out["y"], expected["y"])
    row = stats.layers[0]
    assert (row.bytes_loaded, row.load_cycles, row.decoder_cycles, row.compute_cycles) == (325, 82, 34, 8)
    assert row.cycles == 150 and stats.energy_uj == pytest.approx(35553.6e-6, rel=1e-12)


@pytest.mark.parametrize("format, payload, message", [
    (FORMAT_RLE, bytes.fromhex("01 01000000 00"), "not a filler"),
    (FORMAT_RLE, bytes.fromhex("04 01000000 1f"), "position 15, beyond the 12 values"),  # r = 4: (15, 1)
    (FORMAT_CODEBOOK, bytes.fromhex("01 0500 555555"), "ascending"),
    (FORMAT_CODEBOOK, bytes.fromhex("01 0005 ffffff"), "index 3 is not below the table size 2"),
    (FORMAT_HUFFMAN, bytes.fromhex("02 0001 0302 0502 ffff"), "ends before its 12 codes do"),  # 8 codes "11"
    (FORMAT_HUFFMAN, bytes.fromhex("01 0001 0501 ff1f"), "padding"),
    (FORMAT_HUFFMAN, bytes.fromhex("01 0501 0001 ff0f"), "canonical order"),
    (FORMAT_HUFFMAN, bytes.fromhex("01 0001 0502 ff0f"), "complete prefix code"),
    (FORMAT_HUFFMAN, bytes.fromhex("01 0001 0501 0000"), "never occurs"),                    # 12 zeros, no 5
    (FORMAT_HUFFMAN, bytes.fromhex("02 0001 0302 0502 ff"), "1 bytes; 12 codes of 1..2 bits take 2..3"),
])
def test_reader_refuses_malformed_new_format_streams(format, payload, message):
    body = struct.pack("<IHBBIIB3xII", 1, 24, format, 2, 12, len(payload), 2, 3, 4) + payload
    with pytest.raises(nnc.BlobError, match=f"STREAMS section.*stream 0: .*{message}"):
        read_blob(assemble(sections(resealed(5, body)), version=FORMAT_SINCE[format]))


def test_a_huge_all_zero_rle_stream_is_read_without_building_it():
    """5 payload bytes may stand for 2^32 − 1 zeros: the reader checks them without
    allocating, the simulator refuses the layer before decoding."""
    body = struct.pack("<IHBBIIB3xII", 1, 24, FORMAT_RLE, 8, 65535 * 65537, 5, 2, 65535, 65537) + b"\x01" + bytes(4)
    program = read_blob(assemble(sections(resealed(5, body)), version=2))
    assert program.streams[0].shape == (65535, 65537)
    with pytest.raises(nnc.UnsupportedError, match="decoded weights take 4294967295 bytes"):
        Simulator(program)


def test_reader_requires_param_order():
    body = section_of(tiny_program(), 4)
    swapped = body.replace(b"y_zero_point", b"a_zero_point", 1)
    with pytest.raises(nnc.BlobError, match="param 'a_zero_point'.*out-of-order"):
        read_blob(resealed(4, swapped))


def test_the_format_doc_lists_every_op_code():
    doc = (Path(__file__).resolve().parents[3] / "docs" / "blob-format.md").read_text()
    table = doc[doc.index("Op codes"):doc.index("Params are")]
    listed = {op: int(code) for code, op in re.findall(r"\| (\d+) +\| (\w+) +(?=\|)", table)}
    assert listed == OP_CODES


# -- QLogSoftmax: op code 72, version 5 ----------------------------------------------------
LOG_SOFTMAX = log_softmax_attrs(0.05, 0.125, 127, -128, 127)
EXP = np.round(2**24 * np.exp(-0.05 * np.arange(256))).astype(np.int32)


def log_softmax_program() -> Program:
    """x [2, 29] -> QLogSoftmax (x, exp_table, log_table) -> y, its params as the lowering encodes them."""
    params = {**dataclasses.asdict(LOG_SOFTMAX), "out_dtype": I8}
    tensors = (TensorDesc("x", I8, (2, 29), 0, (0.05,), (3,)), const("exp", EXP), const("log", log_table()),
               TensorDesc("y", I8, (2, 29), 64, (0.125,), (127,)))
    return Program("ctc", tensors, (LayerDesc("logp", "QLogSoftmax", (0, 1, 2), (3,), params),), (), (0,), (3,), 128)


def test_a_qlogsoftmax_record_is_where_the_doc_says():
    """docs/blob-format.md, LAYERS: code 72, inputs (x, exp_table, log_table), seven
    int params in byte order; the tables in CONSTANTS; version 5 with an empty TILING
    section; the simulator computes the IR op's reference from the blob."""
    blob = write_blob(log_softmax_program())
    values = {**dataclasses.asdict(LOG_SOFTMAX), "out_dtype": I8}
    record = struct.pack("<H4sHHHHi3iI", 4, b"logp", 72, 3, 1, 7, -1, 0, 1, 2, 3)
    for key in ("multiplier", "out_dtype", "out_max", "out_min", "shift", "x_scale", "y_zero_point"):
        record += struct.pack("<B", len(key)) + key.encode() + struct.pack("<BHq", 0, 1, values[key])
    assert struct.unpack_from("<II", blob, 8) == (5, 0) and struct.unpack_from("<I", blob, 20) == (6,)
    assert sections(blob)[3] == struct.pack("<I", 1) + record
    assert sections(blob)[2] == EXP.astype("<i4").tobytes() + log_table().astype("<i4").tobytes()
    assert sections(blob)[5] == struct.pack("<I", 0)
    program = read_blob(blob)
    assert program == log_softmax_program()
    x = np.random.default_rng(7).integers(-128, 128, (2, 29)).astype(np.int8)
    out, stats = simulate(program, {"x": x})
    np.testing.assert_array_equal(out["y"], get_op("QLogSoftmax").evaluate(LOG_SOFTMAX, [x, EXP, log_table()])[0])
    assert stats.layers[0].bytes_loaded == (256 + 257) * 4


def test_only_qlogsoftmax_makes_a_version_5_blob():
    """The reader requires the lowest version that holds the program, naming the op."""
    bodies = sections(write_blob(log_softmax_program()))
    with pytest.raises(nnc.BlobError, match=r"version 4, but its weight stream formats \[\] and ops "
                                            r"\['QLogSoftmax'\] make it version 5$"):
        read_blob(assemble(bodies, version=4))
    untiled = sections(write_blob(tiny_program())) + [struct.pack("<I", 0)]
    with pytest.raises(nnc.BlobError, match=r"version 5, but its weight stream formats \[0\] make it version 1$"):
        read_blob(assemble(untiled, version=5))


# -- QMatMul's b_transposed: a param of version 6 ------------------------------------------
def matmul_program(b_transposed: bool) -> Program:
    """q [1, 4, 8] @ k [1, 8, 5] -> s, k stored as [1, 5, 8] when `b_transposed`; its
    params as the lowering encodes them (b_transposed only when set)."""
    attrs = {"a_zero_point": 3, "b_zero_point": -9, "y_zero_point": 1, "multiplier": 1518500250, "shift": 38,
             "out_min": -128, "out_max": 127, "out_dtype": I8}
    params = {**attrs, "b_transposed": 1} if b_transposed else attrs
    k_shape = (1, 5, 8) if b_transposed else (1, 8, 5)
    tensors = (TensorDesc("q", I8, (1, 4, 8), 0, (0.05,), (3,)), TensorDesc("k", I8, k_shape, 32, (0.03,), (-9,)),
               TensorDesc("s", I8, (1, 4, 5), 80, (0.2,), (1,)))
    return Program("qk", tensors, (LayerDesc("scores", "QMatMul", (0, 1), (2,), params),), (), (0, 1), (2,), 112)


def test_b_transposed_makes_a_version_6_blob_that_computes_the_product():
    """A QMatMul with b_transposed is version 6 and simulates the reference; one
    without it keeps version 1 (the param is not written when 0); a version-5
    header on the first is refused naming the param."""
    rng = np.random.default_rng(3)
    q, k = rng.integers(-128, 128, (1, 4, 8)).astype(np.int8), rng.integers(-128, 128, (1, 8, 5)).astype(np.int8)
    attrs = get_op("QMatMul").Attrs(3, -9, 1, 1518500250, 38, -128, 127)
    expected = get_op("QMatMul").evaluate(attrs, [q, k])[0]
    for transposed, version in ((True, 6), (False, 1)):
        blob = write_blob(matmul_program(transposed))
        assert struct.unpack_from("<I", blob, 8) == (version,)
        assert (b"b_transposed" in blob) == transposed
        program = read_blob(blob)
        assert program == matmul_program(transposed)
        stored = np.ascontiguousarray(np.swapaxes(k, -1, -2)) if transposed else k
        out, _ = simulate(program, {"q": q, "k": stored})
        np.testing.assert_array_equal(out["s"], expected)
    bodies = sections(write_blob(matmul_program(True)))
    with pytest.raises(nnc.BlobError, match=r"version 5, but its weight stream formats \[\] and params "
                                            r"\['QMatMul.b_transposed'\] make it version 6$"):
        read_blob(assemble(bodies, version=5))
