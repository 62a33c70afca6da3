"""Samples larger than memory: an iterable is read once and spilled to a mapped
temporary file past SPILL_BYTES, a large .npy or stored .npz array is mapped
instead of read, and conform neither copies a batch of the right dtype nor
builds temporaries the size of the batch; every route gives the same compile."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import nnc
from nnc import limits, sample_spool, verification
from nnc.errors import ShapeError
from nnc.sample_sources import as_arrays

DIGITS = "examples/digits/digits.onnx"
CALIB = "examples/digits/calib.npz"


@pytest.fixture
def spill_small(monkeypatch):
    """Spill and map past 1 KiB instead of SPILL_BYTES."""
    monkeypatch.setattr(sample_spool, "SPILL_BYTES", 1024)
    monkeypatch.setattr(verification, "SPILL_BYTES", 1024)


def _samples(count: int, dtype=np.float32) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(3)
    return [{"x": rng.normal(size=(4, 5)).astype(dtype), "n": np.array([i, -i], np.int32)} for i in range(count)]


@pytest.mark.parametrize("count", [1, 7, 100])
def test_spilled_batches_equal_stacked_ones(count, spill_small):
    samples = _samples(count)
    spooled = as_arrays(iter(samples), "calib")
    for name in ("x", "n"):
        stacked = np.stack([s[name] for s in samples])
        assert spooled[name].dtype == stacked.dtype and np.array_equal(spooled[name], stacked)
    assert isinstance(spooled["x"], np.memmap) == (count * 80 > 1024)
    lone = as_arrays(iter([s["x"] for s in samples]), "calib")
    assert list(lone) == [""] and np.array_equal(lone[""], np.stack([s["x"] for s in samples]))


@pytest.mark.parametrize("spill", [False, True])
def test_a_generator_reusing_one_buffer_gives_every_sample(spill, monkeypatch):
    """A data loader may fill one buffer for every sample it yields."""
    monkeypatch.setattr(sample_spool, "SPILL_BYTES", 16 if spill else 2**20)
    buffer = np.zeros(4, np.float32)

    def generate():
        for i in range(10):
            buffer[:] = i
            yield buffer

    arrays = as_arrays(generate(), "calib")
    assert isinstance(arrays[""], np.memmap) == spill
    assert np.array_equal(arrays[""][:, 0], np.arange(10, dtype=np.float32))


def test_an_iterable_is_not_held_in_memory(monkeypatch):
    """64 MiB of samples from a generator with 1 MiB held: the traced peak stays
    near the hold and one sample, far from the data's size."""
    monkeypatch.setattr(sample_spool, "SPILL_BYTES", 2**20)
    sample_bytes, count = 2**18, 256

    def generate():
        for i in range(count):
            yield {"x": np.full(sample_bytes // 4, i, np.float32)}

    tracemalloc.start()
    try:
        arrays = as_arrays(generate(), "calib")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert arrays["x"].shape == (count, sample_bytes // 4)
    assert peak < 4 * 2**20, f"peak {peak:,} bytes for {count * sample_bytes:,} bytes of samples"
    assert np.array_equal(arrays["x"][:, 0], np.arange(count, dtype=np.float32))


def test_spilled_samples_are_checked_like_stacked_ones(spill_small):
    samples = _samples(40)
    with pytest.raises(ShapeError, match=r"calib: array 'x': sample 39 has shape \[5, 4\], sample 0 \[4, 5\]"):
        as_arrays(iter(samples[:39] + [{"x": np.zeros((5, 4), np.float32), "n": samples[0]["n"]}]), "calib")
    with pytest.raises(ShapeError, match="sample 39 is float64, earlier samples float32"):
        as_arrays(iter(samples[:39] + [{"x": samples[0]["x"].astype(np.float64), "n": samples[0]["n"]}]), "calib")
    with pytest.raises(ShapeError, match=r"item 39 names \['x'\]"):
        as_arrays(iter(samples[:39] + [{"x": samples[0]["x"]}]), "calib")


@pytest.mark.parametrize("saver", ["npy", "savez"])
def test_large_sample_files_are_mapped_not_read(saver, spill_small, tmp_path):
    x = np.asfortranarray(np.arange(600, dtype=np.float32).reshape(20, 30))
    path = tmp_path / ("x.npy" if saver == "npy" else "x.npz")
    np.save(path, x) if saver == "npy" else np.savez(path, a=np.zeros(3, np.int8), x=x)
    arrays = verification.read_arrays(path)
    mapped = arrays["" if saver == "npy" else "x"]
    assert isinstance(mapped, np.memmap) and mapped.flags.f_contiguous and np.array_equal(mapped, x)
    np.savez_compressed(tmp_path / "c.npz", x=x)  # decompressed into a temporary file, mapped from there
    spilled = verification.read_arrays(tmp_path / "c.npz")["x"]
    assert isinstance(spilled, np.memmap) and spilled.flags.f_contiguous and np.array_equal(spilled, x)


def test_a_large_compressed_member_is_decompressed_in_blocks(spill_small, monkeypatch, tmp_path):
    """It was read whole (and refused past the whole-array element limit)."""
    monkeypatch.setattr(verification, "DECOMPRESS_BLOCK", 64)
    x = np.random.default_rng(0).standard_normal((40, 7)).astype(np.float32)
    np.savez_compressed(tmp_path / "c.npz", x=x, small=np.arange(3))
    arrays = verification.read_arrays(tmp_path / "c.npz")
    assert isinstance(arrays["x"], np.memmap) and np.array_equal(arrays["x"], x)
    assert not isinstance(arrays["small"], np.memmap) and np.array_equal(arrays["small"], np.arange(3))


def test_the_element_limit_applies_to_each_sample_of_a_mapped_file(spill_small, monkeypatch, tmp_path):
    monkeypatch.setattr(limits, "MAX_TENSOR_ELEMENTS", 100)
    np.save(tmp_path / "many.npy", np.ones((50, 10), np.float32))
    assert verification.read_arrays(tmp_path / "many.npy")[""].shape == (50, 10)
    np.save(tmp_path / "wide.npy", np.ones((2, 101), np.float32))
    with pytest.raises(ShapeError, match="wide.npy: shape \\[101\\] has 101 elements, past nnc's limit of 100"):
        verification.read_arrays(tmp_path / "wide.npy")
    np.savez_compressed(tmp_path / "packed.npz", x=np.ones((50, 10), np.float32))
    assert verification.read_arrays(tmp_path / "packed.npz")["x"].shape == (50, 10)


def test_conform_keeps_a_batch_of_the_right_dtype_and_checks_it_in_blocks(monkeypatch):
    monkeypatch.setattr(verification, "CHECK_BLOCK_ELEMENTS", 8)
    batch = np.zeros((10, 3, 2), np.float32)
    kept = verification.conform(batch, "f32", "x", "calib")
    assert np.shares_memory(kept, batch) and not kept.flags.writeable and batch.flags.writeable
    batch[7, 2, 1] = np.inf
    with pytest.raises(ShapeError, match=r"holds inf at index \[7, 2, 1\]; samples must be finite"):
        verification.conform(batch, "f32", "x", "calib")
    with pytest.raises(ShapeError, match=r"holds 300 at index \[4\], which input 'i'"):
        verification.conform(np.array([1, 2, 3, 4, 300, 5], np.int32), "i8", "i", "calib")
    with pytest.raises(ShapeError, match=r"holds 2.5 at index \[\]"):
        verification.conform(np.array(2.5), "i32", "i", "calib")


def test_spilled_and_mapped_calibration_compile_alike(spill_small, tmp_path):
    x = np.load(CALIB)["image"]
    np.save(tmp_path / "calib.npy", x)
    results = [nnc.compile(DIGITS, "c", tmp_path / "a", calib={"image": x}),
               nnc.compile(DIGITS, "c", tmp_path / "b", calib=({"image": s} for s in x)),
               nnc.compile(DIGITS, "c", tmp_path / "c", calib=tmp_path / "calib.npy")]
    weights = [(tmp_path / d / "digits_weights.h").read_bytes() for d in "abc"]
    assert weights[0] == weights[1] == weights[2]
    assert results[0].report["pipeline"] == results[1].report["pipeline"]
    assert np.array_equal(results[1].run(iter(x[:5]))["logits"], results[0].run(x[:5])["logits"])


def test_a_batch_is_read_sample_by_sample_not_listed():
    """A million samples: prepare_samples makes each when it is read (views),
    not a million dicts up front."""
    specs = {"x": verification.InputSpec((1, 3), "f32"), "n": verification.InputSpec((2,), "i32")}
    x, n = np.arange(3e6, dtype=np.float32).reshape(-1, 3), np.zeros((10**6, 2), np.int32)
    tracemalloc.start()
    try:
        samples, batched = verification.prepare_samples({"x": x, "n": n}, specs, "calib")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert batched and len(samples) == 10**6 and peak < 48 * 2**20  # a list of 10**6 dicts: over 300 MiB
    assert samples[-1]["x"].shape == (1, 3) and samples[-1]["x"][0, 2] == 3e6 - 1 and samples[5]["n"].shape == (2,)
    assert [s["x"][0, 0] for s in samples[2:8:3]] == [6.0, 15.0]
    assert np.shares_memory(samples[0]["x"], x)
    with pytest.raises(IndexError):
        samples[10**6]
