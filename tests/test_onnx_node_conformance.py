"""ONNX backend node tests (onnx.backend.test) for every op nnc supports.

Which cases are in scope and what each must do is decided by the catalogue in
node_conformance.py: a case passes (outputs match ONNX's expected ones) or is
refused (nnc must raise an NncError: the refusal is asserted, never skipped, so
a stale exclusion fails). docs/onnx-conformance.md, generated from the same catalogue, must be current.
"""

from __future__ import annotations

import re

import numpy as np
import onnx
import pytest

import node_conformance
from nnc.errors import NncError
from nnc.onnx_backend import NncBackend

CATALOGUE = node_conformance.catalogue()


def _array(value) -> np.ndarray:
    """ONNX's cases hold numpy arrays or TensorProtos (as ONNX's own runner normalizes)."""
    return onnx.numpy_helper.to_array(value) if isinstance(value, onnx.TensorProto) else np.asarray(value)


def _data_sets(case):
    for inputs, expected in case.test.data_sets:
        yield [_array(x) for x in inputs], [_array(x) for x in expected]


def _assert_outputs(got, expected, case) -> None:
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert g.dtype == e.dtype and g.shape == e.shape, f"{g.dtype}{g.shape} vs {e.dtype}{e.shape}"
        if e.dtype.kind == "f":
            np.testing.assert_allclose(g, e, rtol=case.test.rtol, atol=case.test.atol)
        else:
            np.testing.assert_array_equal(g, e)


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name) for c in CATALOGUE.cases])
def test_node(case):
    if case.outcome == "refused":
        with pytest.raises(NncError):
            rep = NncBackend.prepare(case.test.model)
            for inputs, _ in _data_sets(case):
                rep.run(inputs)
        return
    rep = NncBackend.prepare(case.test.model)
    for inputs, expected in _data_sets(case):
        _assert_outputs(rep.run(inputs), expected, case)


def test_every_listed_case_is_in_scope():
    """A reason in tests/conformance/*.toml names a case that runs here."""
    listed = set(CATALOGUE.excluded)
    assert listed <= {case.name for case in CATALOGUE.cases}, sorted(listed - {c.name for c in CATALOGUE.cases})


def test_doc_is_current():
    text = node_conformance.DOC.read_text()
    total = re.search(r"^\| official, onnx \S+ \| (\d+) \|$", text, flags=re.M)
    assert total, f"{node_conformance.DOC} has no count of official tests"
    assert text == node_conformance.render(CATALOGUE, int(total.group(1))), \
        "docs/onnx-conformance.md is stale: run `python tests/node_conformance.py`"
