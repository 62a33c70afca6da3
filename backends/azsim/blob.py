"""The az-sim blob: a `Program` as bytes and back, as docs/blob-format.md defines
it to the bit. This module is the format's only writer and reader.

- `write_blob(program)` is deterministic (params in name order, all else in
  program order, the version the lowest that holds its stream formats, ops and
  tiling) and
  range-checks every field it packs (ValueError: a program that does not fit
  the format is a bug upstream, not bad user input), weight payloads by
  decoding them unless the caller says not to (`check_payloads=False`: the
  az-sim target reads its blob back when it verifies, and read_blob decodes
  every payload, so decoding here too would do it twice).
- `read_blob(data)` trusts nothing: header (magic, version, flags, size), section
  table (sections back to back, so CRCs cover every byte), CRC32s, every record
  field (weight payloads by decoding them with nnc.packing), then
  cross-references (blob_checks.py: indices, dataflow, SRAM overlap, tiling)
  and the version. Lengths
  and counts are checked against the bytes left before anything is read or
  allocated: no input makes it allocate much beyond the blob's size or loop
  longer than the blob is long. Failures raise BlobError, one line naming the
  section and file offset.
Invariant: `read_blob(write_blob(p)) == p` for every program the writer accepts.
"""

from __future__ import annotations

import math
import re
import struct
import zlib

from nnc import dtypes
from nnc.errors import BlobError

from nnc import packing
from .program import DTYPE_CODES, ITEMSIZE, LayerDesc, Program, TensorDesc, Tiling, WeightStream

MAGIC = b"\x89AZB\r\n\x1a\n"
VERSION = 6  # the newest version this nnc reads and writes
HEADER = struct.Struct("<8sIIIIII")  # magic version flags file_size section_count reserved header_crc
ENTRY = struct.Struct("<IIII")  # kind offset length crc32
STREAM_HEADER = struct.Struct("<HBBIIB3x")  # header_len format bits count payload_len rank (+3 zero bytes)
SECTIONS = {1: "META", 2: "TENSORS", 3: "CONSTANTS", 4: "LAYERS", 5: "STREAMS", 6: "TILING"}
TILING_SINCE = 4  # the first version with external tensors and the TILING section
TILE_RECORD = struct.Struct("<IiIiII")  # layer axis rows staging staging_bytes chunk_count
MAX_RANK = 8
# The first blob version that holds each weight stream format; a blob's version is the
# lowest that holds all its streams (docs/blob-format.md, versioning).
FORMAT_SINCE = {packing.FORMAT_DENSE: 1, packing.FORMAT_BITMASK: 1,
                packing.FORMAT_RLE: 2, packing.FORMAT_CODEBOOK: 2, packing.FORMAT_HUFFMAN: 3}
# The ops the chip runs and their codes in layer records (append only: codes are never reused).
OP_CODES = {"QConv": 1, "QGemm": 2, "QAdd": 3, "QAveragePool": 4, "QSoftmax": 5, "QLut": 6,
            "Requantize": 7, "MaxPool": 8, "GlobalMaxPool": 9, "Clip": 10, "Reshape": 11,
            "Transpose": 12, "Concat": 13, "Pad": 14, "QuantizeLinear": 15, "DequantizeLinear": 16,
            "Gather": 20, "Slice": 21, "Split": 22, "Expand": 23, "Tile": 24, "Cast": 25,
            "ResizeNearest": 70, "QResize": 71,
            "QMul": 40, "QAffine": 41,
            "QReduce": 50, "QMatMul": 51, "QLayerNorm": 52,
            "QLSTM": 60, "QGRU": 61, "QRNN": 62,
            "QLogSoftmax": 72}
# The first blob version that holds each op added after version 4 (every other op: 1).
OP_SINCE = {"QLogSoftmax": 5}
# The first blob version that holds each op param added after version 5. Such a
# param is written only when it is not 0, its default (lowering._params), so a
# program that does not use it keeps its earlier version and bytes.
PARAM_SINCE = {("QMatMul", "b_transposed"): 6}
OP_NAMES = {code: name for name, code in OP_CODES.items()}
_ZERO_POINT_RANGE = {code: dtypes.integer_range(name) if name in dtypes.INTEGER_TYPES else (-2**31, 2**31 - 1)
                     for name, code in DTYPE_CODES.items()}
_PARAM_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def _nbytes(dtype: int, shape) -> int:
    return math.prod(shape) * ITEMSIZE[dtype]


# -- writer ----------------------------------------------------------------------
def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(f"blob writer: {message}")


def _pack(parts: list[bytes], fmt: str, *values, what: str) -> None:
    """Append little-endian `values`; ValueError naming the field if one does not fit."""
    try:
        parts.append(struct.pack("<" + fmt, *values))
    except struct.error:
        raise ValueError(f"blob writer: {what} {values} does not fit the field ({fmt})") from None


def _string(parts: list[bytes], text: str, what: str, width: str = "H") -> None:
    raw = text.encode("utf-8")
    _pack(parts, width, len(raw), what=f"length of {what}")
    parts.append(raw)


def write_blob(program: Program, check_payloads: bool = True) -> bytes:
    """The blob of `program` (deterministic; see the module docstring)."""
    tensors, constants = _write_tensors(program.tensors)
    bodies = [_write_meta(program), tensors, constants, _write_layers(program.layers),
              _write_streams(program.streams, check_payloads)]
    version = _version(program)
    if version >= TILING_SINCE:
        bodies.append(_write_tiling(program.layers))
    offset, table = HEADER.size + ENTRY.size * len(bodies), []
    for kind, body in zip(SECTIONS, bodies):
        table.append(ENTRY.pack(kind, offset, len(body), zlib.crc32(body)))
        offset += len(body)
    _require(offset < 1 << 32, f"blob of {offset} bytes is larger than 4 GiB")
    head = HEADER.pack(MAGIC, version, 0, offset, len(bodies), 0, 0)[:-4]
    head += struct.pack("<I", zlib.crc32(head + b"".join(table)))
    return b"".join([head, *table, *bodies])


def _version(program: Program) -> int:
    """The lowest blob version that holds every stream's format, every op (OP_SINCE),
    every op param (PARAM_SINCE) and the tiling (TILING_SINCE)."""
    formats = max((FORMAT_SINCE[s.format] for s in program.streams), default=1)
    ops = max((OP_SINCE.get(layer.op, 1) for layer in program.layers), default=1)
    params = max((PARAM_SINCE.get((layer.op, key), 1) for layer in program.layers for key in layer.params),
                 default=1)
    return max(formats, ops, params, TILING_SINCE if _tiled(program) else 1)


def _tiled(program: Program) -> bool:
    """A tiled layer or an external tensor."""
    return any(t.external for t in program.tensors) or any(layer.tiling for layer in program.layers)


def _write_meta(p: Program) -> bytes:
    w: list[bytes] = []
    _string(w, p.name, "program name")
    _pack(w, "I", p.activation_bytes, what="activation_bytes")
    for what, indices in (("program inputs", p.inputs), ("program outputs", p.outputs)):
        _pack(w, f"I{len(indices)}I", len(indices), *indices, what=what)
    return b"".join(w)


def _write_tensors(tensors) -> tuple[bytes, bytes]:
    w, constants = [], bytearray()
    _pack(w, "I", len(tensors), what="tensor count")
    for i, t in enumerate(tensors):
        what, constant = f"tensor {i} ({t.name!r})", t.data is not None
        _require(t.dtype in ITEMSIZE and len(t.shape) <= MAX_RANK, f"{what}: dtype {t.dtype}, shape {t.shape}")
        _require(constant == (t.offset == -1) and not (constant and t.external),
                 f"{what}: needs offset -1 with data or offset >= 0 without (external: without data)")
        _require(not constant or len(t.data) == _nbytes(t.dtype, t.shape), f"{what}: data length != shape")
        lo, hi = _ZERO_POINT_RANGE[t.dtype]
        _require(len(t.scale) == len(t.zero_point) and all(math.isfinite(x) and x > 0 for x in t.scale)
                 and all(lo <= z <= hi for z in t.zero_point), f"{what}: bad quantization parameters")
        _string(w, t.name, what)
        kind = 1 if constant else 2 if t.external else 0
        _pack(w, "BBBxI", t.dtype, kind, len(t.shape), len(constants) if constant else t.offset, what=what)
        _pack(w, f"{len(t.shape)}I", *t.shape, what=f"{what} shape")
        n = len(t.scale)
        _pack(w, f"I{n}d{n}i", n, *t.scale, *t.zero_point, what=f"{what} quantization")
        constants += t.data if constant else b""
    return b"".join(w), bytes(constants)


def _write_layers(layers) -> bytes:
    w: list[bytes] = []
    _pack(w, "I", len(layers), what="layer count")
    for i, layer in enumerate(layers):
        what = f"layer {i} ({layer.name!r})"
        _require(layer.op in OP_CODES, f"{what}: op {layer.op!r} has no blob code")
        _string(w, layer.name, what)
        n_in, n_out = len(layer.inputs), len(layer.outputs)
        _pack(w, "HHHHi", OP_CODES[layer.op], n_in, n_out, len(layer.params), layer.weights, what=what)
        _pack(w, f"{n_in}i{n_out}I", *layer.inputs, *layer.outputs, what=f"{what} tensor indices")
        for key, value in sorted(layer.params.items()):
            values, where = value if isinstance(value, tuple) else (value,), f"{what} param {key!r}"
            _require(bool(_PARAM_NAME.match(key)) and all(isinstance(v, int) for v in values),
                     f"{where} = {value!r}: needs an identifier as name, an int or tuple of ints as value")
            _string(w, key, where, "B")
            _pack(w, f"BH{len(values)}q", isinstance(value, tuple), len(values), *values, what=where)
    return b"".join(w)


def _write_tiling(layers) -> bytes:
    w: list[bytes] = []
    tiled = [(i, layer.tiling) for i, layer in enumerate(layers) if layer.tiling is not None]
    _pack(w, "I", len(tiled), what="tiling count")
    for i, t in tiled:
        what = f"tiling of layer {i} ({layers[i].name!r})"
        _require(layers[i].weights == -1 or not t.chunks, f"{what}: chunks and a whole stream")
        _pack(w, TILE_RECORD.format[1:] + f"{len(t.chunks)}I", i, t.axis, t.rows, t.staging, t.staging_bytes,
              len(t.chunks), *t.chunks, what=what)
    return b"".join(w)


def _write_streams(streams, check_payloads: bool) -> bytes:
    w: list[bytes] = []
    _pack(w, "I", len(streams), what="stream count")
    for i, s in enumerate(streams):
        what, rank, count = f"stream {i}", len(s.shape), math.prod(s.shape)
        _require(rank <= MAX_RANK, f"{what}: rank {rank}")
        _require(s.format in packing.FORMATS, f"{what}: format {s.format}")
        try:
            if check_payloads:
                packing.validate(s.payload, s.bits, s.format, count)
        except ValueError as exc:
            raise ValueError(f"blob writer: {what}: {exc}") from None
        _pack(w, f"HBBIIB3x{rank}I", STREAM_HEADER.size + 4 * rank, s.format, s.bits, count, len(s.payload),
              rank, *s.shape, what=what)
        w.append(bytes(s.payload))
    return b"".join(w)


# -- reader ------------------------------------------------------------------------
class _Cursor:
    """Reads little-endian fields of one section [pos, end) of `data`; every read
    first checks that the bytes are there. `fail` raises BlobError at an offset."""

    def __init__(self, data: bytes, section: str, pos: int, end: int):
        self.data, self.section, self.start, self.pos, self.end = data, section, pos, pos, end

    def fail(self, message: str, at: int | None = None):
        at = self.pos if at is None else at
        raise BlobError(f"corrupt blob: {self.section} section, offset {at}: {message}")

    def take(self, n: int, what: str) -> bytes:
        if n > self.end - self.pos:
            self.fail(f"{what} needs {n} bytes, the section has {self.end - self.pos} left")
        self.pos += n
        return self.data[self.pos - n:self.pos]

    def unpack(self, fmt: str, what: str) -> tuple:
        layout = struct.Struct("<" + fmt)
        return layout.unpack(self.take(layout.size, what))

    def string(self, what: str, width: str = "H") -> str:
        (n,) = self.unpack(width, f"length of {what}")
        try:
            return self.take(n, what).decode("utf-8")
        except UnicodeDecodeError:
            self.fail(f"{what} is not valid UTF-8", self.pos - n)

    def done(self) -> None:
        if self.pos != self.end:
            self.fail(f"{self.end - self.pos} bytes left over after the last record")


def read_blob(data: bytes) -> Program:
    """The program in `data`, validated (see the module docstring); BlobError otherwise."""
    data = bytes(data)
    version, spans = _read_container(data)
    cursor = {kind: _Cursor(data, SECTIONS[kind], *span) for kind, span in spans.items()}
    name, activation_bytes, inputs, outputs = _read_meta(cursor[1])
    tensors = _read_tensors(cursor[2], cursor[3], activation_bytes)
    layers, streams = _read_layers(cursor[4]), _read_streams(cursor[5])
    if 6 in cursor:
        layers = _read_tiling(cursor[6], layers)
    program = Program(name, tensors, layers, streams, inputs, outputs, activation_bytes)
    from .blob_checks import check_program  # decoding only: a compile encodes

    check_program(program, lambda kind, message: cursor[kind].fail(message, spans[kind][0]))
    if version != _version(program):
        tiled = " and tiling" if _tiled(program) else ""
        newer = sorted({layer.op for layer in layers if layer.op in OP_SINCE})
        ops = f" and ops {newer}" if newer else ""
        added = sorted({f"{layer.op}.{key}" for layer in layers for key in layer.params
                        if (layer.op, key) in PARAM_SINCE})
        params = f" and params {added}" if added else ""
        raise BlobError(f"corrupt blob: header offset 8: version {version}, but its weight stream formats "
                        f"{sorted({s.format for s in streams})}{tiled}{ops}{params} make it version "
                        f"{_version(program)}")
    return program


def _read_container(data: bytes) -> tuple[int, dict[int, tuple[int, int]]]:
    """Header and section table checks; (version, section kind -> (start, end))."""
    if len(data) < HEADER.size:
        raise BlobError(f"corrupt blob: truncated: {len(data)} bytes, the header alone is {HEADER.size}")
    magic, version, flags, size, count, reserved, crc = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise BlobError(f"not an az-sim blob: bad magic {magic!r} at offset 0")
    if version > VERSION:
        raise BlobError(f"blob version {version} is newer than this nnc supports ({VERSION})")
    if version < 1:
        raise BlobError(f"unknown blob version {version} (this nnc reads versions 1 to {VERSION})")
    if size != len(data):
        what = "truncated" if size > len(data) else f"{len(data) - size} trailing bytes"
        raise BlobError(f"corrupt blob: {what}: the header (offset 16) says {size} bytes, got {len(data)}")
    sections = [kind for kind in SECTIONS if kind != 6 or version >= TILING_SINCE]
    if flags or reserved or count != len(sections):
        raise BlobError(f"corrupt blob: header offset 12..28: flags {flags}, reserved {reserved}, "
                        f"{count} sections (expected 0, 0, {len(sections)})")
    table_end = HEADER.size + ENTRY.size * count
    if table_end > len(data):
        raise BlobError(f"corrupt blob: truncated: {len(data)} bytes, the section table ends at {table_end}")
    if zlib.crc32(data[:HEADER.size - 4] + data[HEADER.size:table_end]) != crc:
        raise BlobError(f"corrupt blob: header CRC32 mismatch (header or section table, offset 0..{table_end})")
    spans, pos = {}, table_end
    for i, expected in enumerate(sections):  # back to back, in SECTIONS order, up to the blob's end
        kind, offset, length, crc = ENTRY.unpack_from(data, HEADER.size + ENTRY.size * i)
        if kind != expected or offset != pos or offset + length > len(data):
            raise BlobError(f"corrupt blob: section table entry {i} (offset {HEADER.size + ENTRY.size * i}): "
                            f"kind {kind} at {offset}, {length} bytes; expected kind {expected} at {pos}, "
                            f"inside the blob's {len(data)} bytes")
        if zlib.crc32(data[offset:offset + length]) != crc:
            raise BlobError(f"corrupt blob: {SECTIONS[kind]} section, offset {offset}: CRC32 mismatch")
        spans[kind], pos = (offset, offset + length), offset + length
    if pos != len(data):
        raise BlobError(f"corrupt blob: {len(data) - pos} bytes after the last section (offset {pos})")
    return version, spans


def _read_meta(c: _Cursor) -> tuple[str, int, tuple[int, ...], tuple[int, ...]]:
    name, (activation_bytes, n_in) = c.string("program name"), c.unpack("II", "activation_bytes, input count")
    inputs, (n_out,) = c.unpack(f"{n_in}I", "program inputs"), c.unpack("I", "output count")
    outputs = c.unpack(f"{n_out}I", "program outputs")
    c.done()
    return name, activation_bytes, inputs, outputs


def _read_tensors(c: _Cursor, consts: _Cursor, activation_bytes: int) -> tuple[TensorDesc, ...]:
    (count,) = c.unpack("I", "tensor count")
    tensors = []
    while len(tensors) < count:
        at, what = c.pos, f"tensor {len(tensors)}"
        name = c.string(what + " name")
        dtype, constant, rank, reserved, location = c.unpack("BBBBI", what)
        if dtype not in ITEMSIZE or constant > 2 or rank > MAX_RANK or reserved:
            c.fail(f"{what} ({name!r}): dtype code {dtype}, kind {constant}, rank {rank}, reserved {reserved} "
                   f"(known dtypes {sorted(ITEMSIZE)}, kinds 0..2, rank <= {MAX_RANK}, reserved 0)", at)
        external, constant = constant == 2, constant == 1
        shape = c.unpack(f"{rank}I", f"{what} shape")
        (n,) = c.unpack("I", f"{what} quantization count")
        raw = c.take(12 * n, f"{what} quantization")
        scale, zero_point = struct.unpack_from(f"<{n}d", raw), struct.unpack_from(f"<{n}i", raw, 8 * n)
        lo, hi = _ZERO_POINT_RANGE[dtype]
        if not all(math.isfinite(x) and x > 0 for x in scale) or not all(lo <= z <= hi for z in zero_point):
            c.fail(f"{what} ({name!r}): a scale is not finite and > 0 or a zero point is out of range", at)
        nbytes = _nbytes(dtype, shape)
        data = consts.take(nbytes, f"data of {what} ({name!r})") if constant else None
        limit = consts.pos - consts.start if constant else (1 << 32) - 1 if external else activation_bytes
        expected = limit - nbytes if constant else location
        if location != expected or location + nbytes > limit:
            c.fail(f"{what} ({name!r}): {nbytes} bytes at {'constant' if constant else 'external' if external else 'activation'} offset "
                   f"{location}: must start at {expected} and end by {limit}", at)
        tensors.append(TensorDesc(name, dtype, shape, -1 if constant else location, scale, zero_point, data,
                                  external))
    c.done()
    consts.done()
    return tuple(tensors)


def _read_layers(c: _Cursor) -> tuple[LayerDesc, ...]:
    (count,) = c.unpack("I", "layer count")
    layers = []
    while len(layers) < count:
        at, what = c.pos, f"layer {len(layers)}"
        name = c.string(what + " name")
        op, n_in, n_out, n_params, weights = c.unpack("HHHHi", what)
        if op not in OP_NAMES:
            c.fail(f"{what} ({name!r}): unknown op code {op}", at)
        io = c.unpack(f"{n_in}i{n_out}I", f"{what} tensor indices")
        params, key = {}, ""
        for _ in range(n_params):
            previous, key = key, c.string(f"{what} param name", "B")
            is_tuple, n = c.unpack("BH", f"{what} param {key!r}")
            if not _PARAM_NAME.match(key) or key <= previous or is_tuple > 1 or not is_tuple and n != 1:
                c.fail(f"{what} ({name!r}) param {key!r}: a bad or out-of-order name, or kind {is_tuple} "
                       f"with {n} values", at)
            values = c.unpack(f"{n}q", f"{what} param {key!r} values")
            params[key] = values if is_tuple else values[0]
        layers.append(LayerDesc(name, OP_NAMES[op], io[:n_in], io[n_in:], params, weights))
    c.done()
    return tuple(layers)


def _read_tiling(c: _Cursor, layers: tuple[LayerDesc, ...]) -> tuple[LayerDesc, ...]:
    """The layers with their tiling records (layer indices strictly increasing)."""
    (count,) = c.unpack("I", "tiling count")
    tiled, previous = {}, -1
    for _ in range(count):
        at = c.pos
        index, axis, rows, staging, staging_bytes, n = c.unpack(TILE_RECORD.format[1:], "tiling record")
        if not previous < index < len(layers) or n > c.end - c.pos:
            c.fail(f"tiling record of layer {index}: layers must be in range and increasing, {n} chunks", at)
        chunks = c.unpack(f"{n}I", f"chunks of layer {index}")
        tiled[index], previous = Tiling(chunks, axis, rows, staging, staging_bytes), index
    c.done()
    return tuple(LayerDesc(*[getattr(layer, f) for f in ("name", "op", "inputs", "outputs", "params", "weights")],
                           tiling=tiled.get(i)) for i, layer in enumerate(layers))


def _read_streams(c: _Cursor) -> tuple[WeightStream, ...]:
    (count,) = c.unpack("I", "stream count")
    streams = []
    while len(streams) < count:
        at, what = c.pos, f"stream {len(streams)}"
        header_len, fmt, bits, n, payload_len, rank = c.unpack(STREAM_HEADER.format[1:], what + " header")
        if fmt not in packing.FORMATS or rank > MAX_RANK or any(c.data[c.pos - 3:c.pos]):
            c.fail(f"{what}: format {fmt}, rank {rank}, reserved {bytes(c.data[c.pos - 3:c.pos])!r} "
                   f"(known formats {list(packing.FORMATS)}, rank <= {MAX_RANK}, reserved zero)", at)
        shape = c.unpack(f"{rank}I", f"{what} shape")
        if header_len != STREAM_HEADER.size + 4 * rank or n != math.prod(shape):
            c.fail(f"{what}: header length {header_len} or count {n} wrong for shape {shape}", at)
        payload = c.take(payload_len, f"{what} payload")
        try:
            decoded = packing.validate(payload, bits, fmt, n)
        except ValueError as exc:
            c.fail(f"{what}: {exc}", at)
        streams.append(WeightStream(fmt, bits, shape, payload, decoded))
    c.done()
    return tuple(streams)
