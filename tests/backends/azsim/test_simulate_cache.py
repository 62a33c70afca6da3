"""`nnc.simulate` keeps decoded blobs (backends/azsim/api.py): the same bytes or
the same unchanged file are not decoded again, a rewritten file is, and the
cache stays bounded; the simulator's BLAS context restores thread counts."""

from __future__ import annotations

import os

import numpy as np
import pytest
from azsim_testing import ProgramBuilder, mac_layer

import nnc
from nnc.backends.azsim import api
from nnc.backends.azsim.blob import write_blob
from nnc.blas_threads import blas_libraries, one_blas_thread
from nnc.numerics import quantize_multiplier

PARAMS = dict(x_zero_point=0, y_zero_point=0, out_min=-128, out_max=127, out_dtype=1)


def blob(scale: int) -> bytes:
    """A one-QGemm blob x[1, 4] -> y[1, 2] whose weights are `scale`."""
    b = ProgramBuilder()
    m, s = quantize_multiplier(0.5)
    y = mac_layer(b, "QGemm", b.input("x", "i8", (1, 4)), np.full((2, 4), scale, np.int8), None, [m] * 2,
                  [s] * 2, (1, 2), PARAMS)
    return write_blob(b.program(y))


@pytest.fixture
def decodes(monkeypatch):
    """Counts the blobs api.py decodes."""
    counted = []
    real = api.read_blob
    monkeypatch.setattr(api, "read_blob", lambda data: counted.append(1) or real(data))
    monkeypatch.setattr(api, "_RUNNERS", type(api._RUNNERS)())
    return counted


X = {"x": np.array([[1, 2, 3, 4]], np.int8)}


def test_same_bytes_are_decoded_once(decodes):
    data = blob(2)
    first, stats = nnc.simulate(data, X)
    second, stats2 = nnc.simulate(bytes(bytearray(data)), X)  # equal bytes, another object
    assert len(decodes) == 1 and stats2 == stats
    np.testing.assert_array_equal(first["y"], second["y"])
    first["y"][...] = 0  # outputs are copies: the cached simulator's SRAM is untouched
    assert nnc.simulate(data, X)[0]["y"].any()


def test_a_rewritten_file_is_decoded_again(decodes, tmp_path):
    path = tmp_path / "m.azb"
    path.write_bytes(blob(2))
    before, _ = nnc.simulate(path, X)
    nnc.simulate(str(path), X)
    assert len(decodes) == 1
    path.write_bytes(blob(4))
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))  # a visibly newer file
    after, _ = nnc.simulate(path, X)
    assert len(decodes) == 2
    np.testing.assert_array_equal(after["y"], 2 * before["y"])


def test_the_cache_is_bounded(decodes):
    for scale in range(1, api.RUNNERS_KEPT + 3):
        nnc.simulate(blob(scale), X)
    assert len(api._RUNNERS) == api.RUNNERS_KEPT and len(decodes) == api.RUNNERS_KEPT + 2
    nnc.simulate(blob(1), X)  # the least recently used was dropped
    assert len(decodes) == api.RUNNERS_KEPT + 3


def test_blas_thread_counts_are_restored():
    libraries = blas_libraries()
    if not libraries:
        pytest.skip("threadpoolctl is not installed or finds no BLAS")
    before = [library.get_num_threads() for library in libraries]
    with one_blas_thread():
        assert all(library.get_num_threads() == 1 for library in libraries)
    assert [library.get_num_threads() for library in libraries] == before


def test_inputs_of_the_exact_type_run_as_they_are(decodes):
    """An int8 array of the input's shape skips conforming; any other form is
    conformed first (or refused) and computes the same."""
    data = blob(3)
    exact, _ = nnc.simulate(data, X)
    for inputs in ({"input": X["x"]}, {"x": X["x"].astype(np.int16)}, {"x": X["x"][None]}):
        again, _ = nnc.simulate(data, inputs)
        np.testing.assert_array_equal(again["y"].reshape(exact["y"].shape), exact["y"])
    with pytest.raises(nnc.ShapeError):
        nnc.simulate(data, {"x": np.full((1, 4), 300, np.int16)})
