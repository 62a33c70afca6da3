"""Observers (nnc.calibration) on data whose right answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from nnc.calibration import calibrate, make_observer, quantization_mse
from nnc.errors import OptionError
from qmodels import Builder, canonical


def observed(kind: str, *arrays, **options) -> tuple[float, float]:
    observer = make_observer(kind, **options)
    for a in arrays:
        observer.update(np.asarray(a, np.float32))
    return observer.range()


def test_minmax_spans_every_value_and_zero():
    assert observed("minmax", [0.5, 2.0], [-1.0, 3.0]) == (-1.0, 3.0)
    assert observed("minmax", [1.0, 2.0]) == (0.0, 2.0)  # 0 stays representable
    assert observed("minmax", [-4.0, -2.0]) == (-4.0, 0.0)


def test_percentile_ignores_rare_outliers():
    data = np.linspace(-1, 1, 100_001)
    data[[10, 20]] = [-1000.0, 1000.0]
    lo, hi = observed("percentile", data, percentile=99.99)
    assert -1.0 <= lo < -0.99 and 0.99 < hi <= 1.0
    assert observed("percentile", data, percentile=100.0) == (-1000.0, 1000.0)


def test_mse_clips_a_heavy_tail_but_not_uniform_data():
    rng = np.random.default_rng(0)
    uniform = rng.uniform(-2, 6, 50_000)
    lo, hi = observed("mse", uniform)
    assert lo == pytest.approx(-2, abs=0.05) and hi == pytest.approx(6, abs=0.1)
    # A million normal values and one at 20: clipping the outlier costs (20 − hi)²,
    # less than what its wider scale would add to every other value's rounding error.
    parts = [rng.standard_normal(250_000) for _ in range(4)]
    parts[0][0] = 20.0
    lo, hi = observed("mse", *parts)
    assert 4 < hi < 10 and -4.5 < lo < -3  # the lone outlier is clipped, the bulk kept
    values, counts = np.array([lo, 0.0, hi]), np.ones(3)
    assert quantization_mse(values, counts, lo, hi) < quantization_mse(values, counts, lo / 4, hi / 4)


def test_observers_of_constant_zero_data():
    for kind in ("minmax", "percentile", "mse"):
        assert observed(kind, np.zeros(10)) == (0.0, 0.0)


def test_unknown_observer():
    with pytest.raises(OptionError, match="observer"):
        make_observer("entropy")


def test_calibrate_observes_the_named_tensors_over_all_samples():
    b = Builder()
    b.node("Relu", [b.input("x", [1, 4])], "y")
    b.output("y", [1, 4])
    graph = canonical(b.model())
    samples = [{"x": np.array([[-3, 1, 2, 0]], np.float32)}, {"x": np.array([[5, -1, 0, 0]], np.float32)}]
    ranges = calibrate(graph, samples, ["x", "y"])
    assert ranges == {"x": (-3.0, 5.0), "y": (0.0, 5.0)}
