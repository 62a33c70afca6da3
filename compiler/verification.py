"""Sample inputs, the float truth (onnxruntime) and the comparison metrics that
every compile reports.

- Samples come from a user file (`.npz` with one array per model input, named
  after it, other arrays ignored; for a single-input model an array named
  "input" or a file's only array also serves; `.npy` too). An
  array of exactly the input's shape is one sample; one extra leading dimension
  makes a batch of samples. Without a file, `synthetic_samples` draws seeded
  random inputs (the caller warns the user).
- A sample file is read without numpy's pickle path: each array's header is
  checked (numeric dtype, size within limits.py) before its data is read, and
  each array is converted to its input's dtype only where no value changes
  beyond float rounding (`conform`); NaN, ±inf and values past
  limits.MAX_SAMPLE_MAGNITUDE are refused with the array and the first bad index.
- onnxruntime runs the original model with graph optimizations disabled, i.e. the
  plain ONNX semantics (for QDQ models: dequantize -> float op -> quantize), which
  is what nnc's reference implements.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from . import dtypes
from .records import record
from .sample_sources import DTYPE_RULES, registered
from .sample_spool import SPILL_BYTES, mapped_spill, spill_file, write_spilled
from .errors import ModelError, ShapeError, not_a_file
from .ir import Graph
from .limits import MAX_SAMPLE_MAGNITUDE, check_sample_elements
from .ops.indexing import index_extent

Sample = dict[str, np.ndarray]


@record
class InputSpec:
    """What one input takes: its shape and its nnc dtype name ("f32", "i64", ...)."""

    shape: tuple[int, ...]
    dtype: str


InputSpecs = dict[str, InputSpec]

# Element kinds a sample array may have: bool, signed and unsigned integers, floats.
SAMPLE_KINDS = "biuf"
_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = b"PK"
_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
# Integers up to these magnitudes are exact in float32 and float64 (2^24, 2^53).
_EXACT_INTEGERS = {"f32": 1 << 24, "f64": 1 << 53}
# Elements a sample check reads at a time (see _refuse_first).
CHECK_BLOCK_ELEMENTS = 1 << 22
# Bytes of a compressed .npz member decompressed at a time into its temporary file.
DECOMPRESS_BLOCK = 1 << 24


def input_specs(graph: Graph) -> InputSpecs:
    return {name: InputSpec(graph.tensor(name).shape, graph.tensor(name).dtype) for name in graph.inputs}


def load_samples(path: str | Path, spec: Graph | InputSpecs) -> Sequence[Sample]:
    """Samples from an .npz/.npy file, checked against the inputs (a graph's, or
    name -> InputSpec); see `prepare_samples`."""
    specs = input_specs(spec) if isinstance(spec, Graph) else spec
    return prepare_samples(read_arrays(path), specs, str(path))[0]


def prepare_samples(arrays: dict[str, np.ndarray], specs: InputSpecs, source: str) -> tuple[Sequence[Sample], bool]:
    """(samples, batched) from `arrays` (a sample file's or a caller's): each input
    gets its array (`match_inputs`), of its shape or a batch of it (`batch_size`),
    converted to its dtype (`conform`); ShapeError naming `source` and the array
    otherwise."""
    keys = match_inputs(arrays, specs, source)
    matched = {name: np.asarray(arrays[key]) for name, key in keys.items()}
    count = batch_size(matched, specs, source)
    conformed = {name: conform(matched[name], specs[name].dtype, name, f"{source}: array {key!r}" if key else source)
                 for name, key in keys.items()}
    if count is None:
        return [conformed], False
    own_axis = {name for name, array in conformed.items() if array.shape[1:] != tuple(specs[name].shape)}
    return Samples(conformed, own_axis, count), True


class Samples(Sequence):
    """The `count` samples of a batch, each made when it is read: sample i is
    {input: entry i of its array} (for an input batched along its own batch
    axis of 1, entries i:i+1), views into the arrays. A large or memory-mapped
    batch is never held as a list of per-sample dicts."""

    def __init__(self, arrays: dict[str, np.ndarray], own_axis: set[str], count: int):
        self.arrays, self.own_axis, self.count = arrays, own_axis, count

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self.count))]
        if not -self.count <= index < self.count:
            raise IndexError(f"sample {index} of {self.count}")
        i = index % self.count
        return {name: array[i:i + 1] if name in self.own_axis else array[i] for name, array in self.arrays.items()}


# -- sample files ----------------------------------------------------------------------
def read_arrays(path: str | Path, kind: str = "samples") -> dict[str, np.ndarray]:
    """The arrays of an .npz file ({"": array} for an .npy). ShapeError naming the
    file (and the array) unless the file is a well-formed .npz/.npy whose arrays
    are bool, integer or float (never objects: nothing is unpickled; no records)
    and each within limits.check_sample_elements — checked from each array's header, before
    its data is read; errors state the rule of `kind` (a key of
    DTYPE_RULES). In-memory arrays a compile registered
    (sample_sources.in_memory) are returned for their token."""
    arrays = registered(str(path))
    if arrays is not None:
        return arrays
    path = Path(path)
    problem = not_a_file(path, "data file")
    if problem:
        raise ShapeError(f"{path}: {problem}")
    try:
        with open(path, "rb") as handle:
            magic = handle.read(len(_NPY_MAGIC))
            handle.seek(0)
            if magic == _NPY_MAGIC:
                return {"": _read_npy(handle, path.stat().st_size, str(path), kind, (path, 0))}
            if magic.startswith(_ZIP_MAGIC):
                return _read_npz(handle, path, kind)
    except OSError as exc:
        raise ShapeError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    what = "empty" if not magic else "neither an .npz (zip) nor an .npy file"
    raise ShapeError(f"{path}: {what}; samples are an .npz file of named arrays or an .npy array")


def _read_npz(handle, path: Path, kind: str) -> dict[str, np.ndarray]:
    import zipfile  # for sample files only: 1 ms of imports

    source = str(path)
    try:
        archive = zipfile.ZipFile(handle)
    except (zipfile.BadZipFile, ValueError, EOFError) as exc:
        raise ShapeError(f"{source}: not a readable .npz file (corrupt zip archive: {_first_line(exc)})") from None
    arrays = {}
    with archive:
        for info in archive.infolist():
            if not info.filename.endswith(".npy"):
                raise ShapeError(f"{source}: member {info.filename!r} is not an .npy array; "
                                 "an .npz file holds only .npy arrays")
            key = info.filename[:-len(".npy")]
            where = f"{source}: array {key!r}"
            try:
                at = (path, _stored_data_offset(handle, info)) if _is_stored(info) else None
                with archive.open(info) as member:
                    arrays[key] = _read_npy(member, info.file_size, where, kind, at)
            except (zipfile.BadZipFile, zlib.error, EOFError, OSError, RuntimeError, NotImplementedError) as exc:
                raise ShapeError(f"{where}: corrupt zip member ({_first_line(exc)})") from None
    return arrays


def _is_stored(info: zipfile.ZipInfo) -> bool:
    """Whether a member's bytes lie in the archive as they are (np.savez's, not
    np.savez_compressed's; not encrypted)."""
    import zipfile

    return info.compress_type == zipfile.ZIP_STORED and not info.flag_bits & 0x1


def _stored_data_offset(handle, info: zipfile.ZipInfo) -> int:
    """Where a stored member's bytes start in the archive: after its local file
    header (30 bytes, then its name and extra field, whose lengths the header
    gives at bytes 26 and 28; APPNOTE.TXT 4.3.7)."""
    import zipfile

    handle.seek(info.header_offset)
    header = handle.read(30)
    if len(header) != 30 or header[:4] != b"PK\x03\x04":
        raise zipfile.BadZipFile(f"bad local header of {info.filename}")
    return info.header_offset + 30 + int.from_bytes(header[26:28], "little") + int.from_bytes(header[28:30], "little")


def _read_npy(stream, size: int, where: str, kind: str, at: tuple[Path, int] | None = None) -> np.ndarray:
    """The array of the .npy bytes in `stream` (`size` bytes in all), checked from
    its header before its data is read. When `at` gives the file and offset
    where those bytes start, an array of more than SPILL_BYTES is mapped from
    the file copy-on-write instead of read (paged in as it is used; a mapped
    zip member's CRC is not checked); one whose bytes are not in the file as
    they are (a compressed .npz member) is decompressed block by block into a
    temporary file (sample_spool.spill_file) and mapped from there. Only
    arrays of at most SPILL_BYTES are held in memory; each sample must pass
    check_sample_elements."""
    try:
        version = np.lib.format.read_magic(stream)
        if version not in _HEADER_READERS:
            raise ValueError(f"unsupported .npy version {version[0]}.{version[1]}")
        shape, fortran_order, dtype = _HEADER_READERS[version](stream)
    except ValueError as exc:
        raise ShapeError(f"{where}: not a valid .npy array ({_first_line(exc)})") from None
    if dtype.kind not in SAMPLE_KINDS or dtype.fields is not None:
        raise ShapeError(f"{where}: dtype {dtype} is not numeric; {DTYPE_RULES[kind]}")
    count = check_sample_elements(shape, where)
    data_bytes = count * dtype.itemsize
    if size != stream.tell() + data_bytes:
        raise ShapeError(f"{where}: holds {size - stream.tell()} data bytes, its header announces "
                         f"{list(shape)} {dtype} = {data_bytes} (truncated or padded)")
    order = "F" if fortran_order else "C"
    if at is not None and data_bytes > SPILL_BYTES:
        start = at[1] + stream.tell()
        if start + data_bytes > at[0].stat().st_size:
            raise ShapeError(f"{where}: truncated data")
        return np.memmap(at[0], dtype, mode="c", offset=start, shape=tuple(shape), order=order)
    if data_bytes > SPILL_BYTES:
        return _decompressed(stream, data_bytes, dtype, tuple(shape), order, where)
    array = np.empty(count, dtype)
    if data_bytes and stream.readinto(memoryview(array).cast("B")) != data_bytes:
        raise ShapeError(f"{where}: truncated data")
    return array.reshape(shape, order=order)


def _decompressed(stream, data_bytes: int, dtype, shape, order: str, where: str) -> np.memmap:
    """The array whose `data_bytes` bytes `stream` yields, written to a temporary
    file DECOMPRESS_BLOCK bytes at a time and mapped copy-on-write."""
    file = spill_file(where)
    left = data_bytes
    while left:
        block = stream.read(min(left, DECOMPRESS_BLOCK))
        if not block:
            raise ShapeError(f"{where}: truncated data")
        write_spilled(file, block, where)
        left -= len(block)
    return mapped_spill(file, dtype, shape, order)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# -- arrays to samples -----------------------------------------------------------------
def match_inputs(arrays: dict[str, np.ndarray], specs: InputSpecs, source) -> dict[str, str]:
    """Input name -> the key of its array: arrays named after the inputs (others
    ignored); for a single-input model also an array named "input", or the
    file's only array."""
    names = list(specs)
    if all(name in arrays for name in names):
        return {name: name for name in names}
    if len(names) == 1:
        for candidate in ("input", *([next(iter(arrays))] if len(arrays) == 1 else [])):
            if candidate in arrays:
                return {names[0]: candidate}
    raise ShapeError(f"{source}: arrays {sorted(arrays)} do not match the model inputs {names}")


def batch_size(arrays: dict[str, np.ndarray], specs: InputSpecs, source: str) -> int | None:
    """The number of samples when every array is a batch, None when every array
    has its input's shape; ShapeError otherwise. A batch of B samples of shape S
    is [B, *S], or, when S has batch size 1 (S = [1, *R]), [B, *R] with B > 1:
    samples stacked along the model's own batch axis."""
    counts = set()
    for name, array in arrays.items():
        shape = tuple(specs[name].shape)
        if array.shape == shape:
            counts.add(None)
        elif array.shape[1:] == shape and array.shape[0] > 0:
            counts.add(array.shape[0])
        elif shape[:1] == (1,) and array.ndim == len(shape) and array.shape[1:] == shape[1:] and array.shape[0] > 1:
            counts.add(array.shape[0])
        else:
            own_axis = f" or [B, {', '.join(map(str, shape[1:]))}]" if shape[:1] == (1,) else ""
            raise ShapeError(f"{source}: array {name!r} has shape {list(array.shape)}; input {name!r} "
                             f"needs {list(shape)} or a batch [B, {', '.join(map(str, shape))}]{own_axis}",
                             input=name)
    if len(counts) != 1:
        raise ShapeError(f"{source}: the arrays disagree on the number of samples")
    return counts.pop()


def conform(array: np.ndarray, dtype: str, name: str, where: str) -> np.ndarray:
    """`array` as input `name`'s dtype, or ShapeError naming `where`, the expected
    dtype and, for values, the first bad index. A cast happens only where it
    keeps every value: float arrays for a float input (rounded to it), integer
    arrays of 16 bits or more for a float input when the float holds each value
    exactly (and within ±MAX_SAMPLE_MAGNITUDE), integer, bool or integral float arrays for an integer or bool input
    when each value fits. 8-bit integer and bool arrays for a float input are
    refused: nnc does not guess how they map to the model's float values (they
    are often quantized data or raw pixels). A float input's values must then be
    finite and within ±MAX_SAMPLE_MAGNITUDE (docs/limits.md). The result is
    read-only, and `array` itself (a view of it) when it has the dtype already:
    a large or memory-mapped batch is not copied."""
    array = np.asarray(array)
    target = dtypes.to_numpy(dtype)
    if array.dtype.kind not in SAMPLE_KINDS or array.dtype.fields is not None:
        raise ShapeError(f"{where}: {array.dtype} data for input {name!r}, which takes {target.name}")
    if dtype in dtypes.FLOAT_TYPES:
        return _to_float(array, dtype, name, where)
    lo, hi = (0, 1) if dtype == "bool" else dtypes.integer_range(dtype)

    def bad(block):
        with np.errstate(invalid="ignore"):
            outside = ~((block >= lo) & (block <= hi))
            return outside | (block != np.round(block)) if block.dtype.kind == "f" else outside

    _refuse_first(array, bad, where, f"which input {name!r} ({target.name}) cannot hold exactly")
    return _read_only(array.astype(target, copy=False))


def _to_float(array: np.ndarray, dtype: str, name: str, where: str) -> np.ndarray:
    target = dtypes.to_numpy(dtype)
    if array.dtype.kind == "b" or (array.dtype.kind in "iu" and array.dtype.itemsize == 1):
        raise ShapeError(f"{where}: {array.dtype} data for input {name!r}, which takes {target.name}; convert the "
                         f"samples to {target.name} (nnc does not guess how {array.dtype} values map to the model's "
                         "floats)")
    if array.dtype.kind in "iu":
        limit = min(_EXACT_INTEGERS[dtype], int(MAX_SAMPLE_MAGNITUDE))
        _refuse_first(array, lambda block: (block < -limit) | (block > limit), where,
                      f"outside ±{limit:,}, the integers input {name!r} ({target.name}) takes exactly")
        return _read_only(array.astype(target, copy=False))
    bound = min(MAX_SAMPLE_MAGNITUDE, float(np.finfo(array.dtype).max))  # float16 cannot hold 1e15

    def bad(block):
        with np.errstate(invalid="ignore"):
            return ~(np.abs(block) <= bound)  # NaN compares False

    _refuse_first(array, bad, where, f"past nnc's limit of ±{MAX_SAMPLE_MAGNITUDE:g} on sample values "
                                     "(docs/limits.md)")
    return _read_only(array.astype(target, copy=False))


def _read_only(array: np.ndarray) -> np.ndarray:
    """A view of `array` that nothing can write through (samples may be the
    caller's arrays, or a file's mapped pages)."""
    view = array.view()
    view.flags.writeable = False
    return view


def _refuse_first(array: np.ndarray, bad, where: str, why: str) -> None:
    """ShapeError naming the first index where `bad(block)` holds, if any. The
    test runs on blocks of the leading axis (CHECK_BLOCK_ELEMENTS at a time), so
    that its temporaries stay small beside a large or memory-mapped array."""
    rows = array.reshape(1, *array.shape) if array.ndim == 0 else array
    step = max(1, CHECK_BLOCK_ELEMENTS // max(1, math.prod(rows.shape[1:])))
    for start in range(0, len(rows), step):
        flags = bad(rows[start:start + step])
        if flags.any():
            index = [int(i) for i in np.unravel_index(int(np.argmax(flags)), flags.shape)]
            index[0] += start
            index = index[array.ndim == 0:]
            _refuse_at(array[tuple(index)].item(), index, where, why)


def _refuse_at(value, index: list[int], where: str, why: str) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise ShapeError(f"{where}: holds {value} at index {index}; samples must be finite")
    shown = f"{value:g}" if isinstance(value, float) else repr(value)
    raise ShapeError(f"{where}: holds {shown} at index {index}, {why}")


def synthetic_samples(graph: Graph, count: int = 4, seed: int = 0) -> list[Sample]:
    """Seeded random inputs: floats uniform in [-1, 1), bools true or false with
    even odds, integers over their full range, except Gather indices: uniform over [0, extent) of the axis they index.
    The numbers are splitmix64's (_SplitMix64), the same on every platform and
    numpy version, and numpy.random (8 ms to import) is not needed."""
    stream = _SplitMix64(seed)
    samples = []
    for _ in range(count):
        sample = {}
        for name in graph.inputs:
            tensor = graph.tensor(name)
            dtype = dtypes.to_numpy(tensor.dtype)
            words = stream.next(math.prod(tensor.shape)).reshape(tensor.shape)
            if dtype.kind == "f":  # as many random bits as the type's mantissa holds: exact, never 1
                bits = np.finfo(dtype).nmant + 1
                sample[name] = ((words >> np.uint64(64 - bits)) * 2.0 ** (1 - bits) - 1.0).astype(dtype)
            elif dtype.kind == "b":
                sample[name] = (words >> np.uint64(63)).astype(bool)
            else:
                lo, hi = dtypes.integer_range(tensor.dtype)
                extent = index_extent(graph, name)
                lo, hi = (lo, hi) if extent is None else (0, max(extent - 1, 0))
                span = hi - lo + 1
                values = words.view(np.int64) if span == 1 << 64 else (words % np.uint64(span)).astype(np.int64) + lo
                sample[name] = values.astype(dtype)
        samples.append(sample)
    return samples


class _SplitMix64:
    """The splitmix64 generator (Steele, Lea and Flood, "Fast Splittable
    Pseudorandom Number Generators", OOPSLA 2014): output i of a stream seeded s
    is mix(s + i·0x9E3779B97F4A7C15), i = 1, 2, ..., as uint64."""

    _GAMMA = np.uint64(0x9E3779B97F4A7C15)

    def __init__(self, seed: int):
        self.state = np.uint64(seed % (1 << 64))
        self.taken = 0

    def next(self, n: int) -> np.ndarray:
        z = np.arange(self.taken + 1, self.taken + n + 1, dtype=np.uint64) * self._GAMMA + self.state
        self.taken += n
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def onnxruntime_outputs(model_path: str | Path, samples: list[Sample], output_names: list[str]) -> list[Sample]:
    """Run the original model in onnxruntime (optimizations off) on each sample."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types
        raise ModelError(f"onnxruntime cannot load {model_path}: {str(exc).splitlines()[0]}") from None
    results = []
    for sample in samples:
        try:
            values = session.run(output_names, sample)
        except Exception as exc:  # e.g. an op onnxruntime implements only partly
            raise ModelError(f"onnxruntime cannot run {model_path}: {str(exc).splitlines()[0]}") from None
        results.append(dict(zip(output_names, values)))
    return results


def compare(reference: list[Sample], candidate: list[Sample], class_axes: dict[str, int] | None = None) -> dict:
    """Metrics of `candidate` against `reference` over all samples and outputs:
    max abs difference, cosine similarity, SNR in dB, top-1 agreement (for outputs
    whose class axis, given in `class_axes` or else the last, holds more than one
    class), bit-exactness (NaN equal to NaN).
    The figures count the positions where both are finite (finite_pairs);
    `non_finite` counts the candidate's NaN and infinities where the reference
    is finite, and makes cosine -1."""
    ref, got, broken = finite_pairs(flatten(reference), flatten(candidate))
    bit_exact = all(_same(r[k], c[k]) for r, c in zip(reference, candidate) for k in r)
    noise = float(np.sum((ref - got) ** 2))
    signal = float(np.sum(ref ** 2))
    return {
        "samples": len(reference),
        "bit_exact": bool(bit_exact),
        "max_abs_diff": float(np.max(np.abs(ref - got))) if ref.size else 0.0,
        "cosine": -1.0 if broken else cosine(ref, got),
        "snr_db": _snr_db(signal, noise),
        "top1_agreement": _top1(reference, candidate, class_axes or {}),
        "non_finite": broken,
    }


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return bool(np.array_equal(a, b, equal_nan=a.dtype.kind in "fc" and b.dtype.kind in "fc"))


def flatten(samples: list[Sample]) -> np.ndarray:
    """Every output of every sample, float64, one flat array (outputs in name order)."""
    return np.concatenate([np.asarray(s[k], np.float64).ravel() for s in samples for k in sorted(s)])


def cosine(ref: np.ndarray, got: np.ndarray) -> float:
    """Cosine similarity of two flat arrays, in [-1, 1] (rounding can carry the
    quotient a step past 1); 1.0 or 0.0 when a norm is zero (equal or not).
    Over the positions where `ref` is finite (finite_pairs); -1 when `got`
    is not finite at one of them."""
    ref, got, broken = finite_pairs(ref, got)
    if broken:
        return -1.0
    norms = float(np.linalg.norm(ref) * np.linalg.norm(got))
    if not norms:
        return float(np.array_equal(ref, got))
    return min(1.0, max(-1.0, float(np.dot(ref, got) / norms)))


def finite_pairs(ref: np.ndarray, got: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """(ref, got, broken): flat arrays `ref` and `got` (one shape) at the
    positions where both are finite, and how many positions have `ref` finite
    but `got` not. Where `ref` is NaN or infinite (a float model computing NaN,
    verify_step warns) there is nothing to measure; where only `got` is, the
    candidate is wrong, which `broken` reports rather than hides."""
    measured = np.isfinite(ref)
    both = measured & np.isfinite(got)
    if both.all():
        return ref, got, 0
    return ref[both], got[both], int(np.count_nonzero(measured & ~both))


def cosine_rmse(ref: np.ndarray, got: np.ndarray) -> dict:
    """{"cosine", "rmse"} of flat arrays `got` against `ref`: over the
    positions both are finite, cosine -1 where `got` alone is not (finite_pairs)."""
    cos = cosine(ref, got)
    ref, got, _ = finite_pairs(ref, got)
    return {"cosine": cos, "rmse": float(np.sqrt(np.mean((ref - got) ** 2))) if ref.size else 0.0}


def _snr_db(signal: float, noise: float) -> float | None:
    """None where the SNR is infinite or undefined (JSON has no infinity)."""
    if noise == 0.0 or signal == 0.0:
        return None
    return float(10 * np.log10(signal / noise))


def _top1(reference: list[Sample], candidate: list[Sample], class_axes: dict[str, int]) -> float | None:
    agree, total = 0, 0
    for r, c in zip(reference, candidate):
        for key, value in r.items():
            value = np.asarray(value)
            if value.ndim == 0:
                continue
            value, other = (np.moveaxis(np.asarray(v), class_axes.get(key, -1), -1) for v in (value, c[key]))
            if value.shape[-1] < 2:
                continue
            a = value.reshape(-1, value.shape[-1]).argmax(-1)
            b = other.reshape(-1, value.shape[-1]).argmax(-1)
            agree += int(np.sum(a == b))
            total += a.size
    return agree / total if total else None
