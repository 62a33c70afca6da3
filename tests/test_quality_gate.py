"""The quality gate's messages, and the cosine it compares."""

from __future__ import annotations

import numpy as np

from nnc.quality import gate
from nnc.verification import cosine


def test_a_limit_is_shown_as_given_not_rounded():
    """--min-cosine 0.9999999 failed with "(at least 1)"."""
    report = {"verification": {"vs_float": {"cosine": 0.999987}}}
    result = gate(report, 0.9999999, None)
    assert not result["passed"] and "(at least 0.9999999)" in result["reason"]
    assert "(at least 0.99)" in gate(report, 0.99, None)["checks"][0]["what"]


def test_cosine_stays_within_minus_one_and_one():
    """float rounding gave 1.0000000000000002 in report.json."""
    rng = np.random.default_rng(0)
    values = [cosine(x, x.copy()) for x in (rng.standard_normal(n) * 10.0 ** rng.integers(-8, 8) for n in range(1, 200))]
    assert max(values) == 1.0 and all(-1.0 <= v <= 1.0 for v in values)
    assert cosine(np.ones(3), -np.ones(3)) == -1.0
