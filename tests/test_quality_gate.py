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


def test_a_top_class_that_changes_under_a_high_cosine_is_warned():
    """An RNN-T joint's log-probabilities kept cosine 0.9991 at 4 bits and 50 %
    sparsity while its top class agreed on 57 % of positions (the model sweep)."""
    from nnc.quality import top1_agreement_warning

    def verification(agreement, samples=16, cosine=0.9991):
        return {"samples": samples, "vs_float": {"cosine": cosine, "top1_agreement": agreement}}

    said = top1_agreement_warning(verification(0.57))
    assert said.startswith("the top class agrees with the float model's on 57% of 16 sample(s) (below 90%)")
    assert "though the outputs' cosine is 0.9991" in said
    assert "cosine" not in top1_agreement_warning(verification(0.5, cosine=0.95))  # the cosine warning says it
    assert top1_agreement_warning(verification(0.95)) is None
    assert top1_agreement_warning(verification(0.5, samples=4)) is None  # too few to say
    assert top1_agreement_warning(verification(None)) is None  # not a classification output
