"""ONNX backend node tests (onnx.backend.test) for every op nnc supports.

A node test is in scope when every node of its model is an ONNX op that nnc
lowers. In-scope tests must match ONNX's expected outputs (floats within the
tolerance ONNX's own runner gives each case; integers exactly), unless
excluded: by a TOML file in tests/conformance/ (one written reason per test), or
because the model uses an element type nnc does not support. An excluded test is
not skipped: it must be refused with an NncError, which proves the exclusion is
still true and that nnc fails cleanly instead of computing something else.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx.backend.test.loader import load_model_tests

from nnc import dtypes
from nnc.errors import NncError
from nnc.onnx_backend import NncBackend
from nnc.ops import supported_onnx_ops

_EXCLUDED: dict[str, str] = {}
for _file in sorted((Path(__file__).parent / "conformance").glob("*.toml")):
    _EXCLUDED.update(tomllib.loads(_file.read_text())["excluded"])


def _element_types(model: onnx.ModelProto) -> set[int]:
    values = [*model.graph.input, *model.graph.output, *model.graph.value_info]
    types = {v.type.tensor_type.elem_type for v in values if v.type.HasField("tensor_type")}
    types |= {t.data_type for t in model.graph.initializer}
    return types


def _unsupported_type(model: onnx.ModelProto) -> str | None:
    for code in sorted(_element_types(model)):
        try:
            dtypes.from_onnx(code)
        except NncError:
            return onnx.TensorProto.DataType.Name(code)
    non_tensor = [v.name for v in model.graph.input if not v.type.HasField("tensor_type")]
    return "a non-tensor input" if non_tensor else None


def _cases():
    supported = set(supported_onnx_ops()) | {"Constant"}
    for case in load_model_tests(kind="node"):
        model = case.model
        if not {n.op_type for n in model.graph.node} <= supported:
            continue
        if any(n.domain not in ("", "ai.onnx") for n in model.graph.node):
            continue
        reason = _EXCLUDED.get(case.name)
        bad_type = _unsupported_type(model)
        if bad_type and not reason:
            reason = f"uses {bad_type}, which nnc does not support"
        yield pytest.param(case, reason, id=case.name)


@pytest.mark.parametrize("case,excluded", list(_cases()))
def test_node(case, excluded):
    if excluded:
        with pytest.raises(NncError):
            rep = NncBackend.prepare(case.model)
            for inputs, _ in case.data_sets:
                rep.run(inputs)
        return
    rep = NncBackend.prepare(case.model)
    for inputs, expected in case.data_sets:
        got = rep.run(inputs)
        assert len(got) == len(expected)
        for g, e in zip(got, expected):
            e = np.asarray(e)
            assert g.dtype == e.dtype and g.shape == e.shape, f"{g.dtype}{g.shape} vs {e.dtype}{e.shape}"
            if e.dtype.kind == "f":
                np.testing.assert_allclose(g, e, rtol=case.rtol, atol=case.atol)
            else:
                np.testing.assert_array_equal(g, e)
