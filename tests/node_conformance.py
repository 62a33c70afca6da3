"""Catalogue of ONNX's official node tests (onnx.backend.test) as nnc sees them.

A node test is in scope when every node of its model is an ai.onnx op nnc lowers
(`supported_onnx_ops()`) or the front end consumes (FRONT_END_OPS); ONNX's
"_expanded" tests run an op's function body, made of other ops. Each in-scope
case expects one outcome:
- "pass": nnc's outputs match ONNX's expected ones (floats within the tolerance
  ONNX's own runner gives the case, integers exactly);
- "refused": nnc raises an NncError. The reason is written in the `[excluded]`
  table of a tests/conformance/*.toml file, or is automatic: an element type nnc
  does not support, a non-tensor input, or a zero-size run-time input.

`python tests/node_conformance.py` rewrites docs/onnx-conformance.md from this
catalogue; test_onnx_node_conformance.py checks that the file is current.
"""

from __future__ import annotations

import collections
import importlib
import pkgutil
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

import onnx
import onnx.backend.test.case.node as node_cases
from onnx.backend.test.loader import load_model_tests

from nnc import dtypes
from nnc.errors import NncError
from nnc.onnx_backend import shape_operand_inputs
from nnc.ops import supported_onnx_ops

# ops the front end consumes without a lowering: Constant becomes a constant, and
# Shape and Size of the statically shaped tensors are folded (frontend/shape_folding.py)
FRONT_END_OPS = frozenset({"Constant", "Shape", "Size"})
ROOT = Path(__file__).resolve().parents[1]
TABLES = Path(__file__).parent / "conformance"
DOC = ROOT / "docs" / "onnx-conformance.md"


@dataclass(frozen=True)
class Case:
    test: object  # onnx.backend.test.case.test_case.TestCase
    op: str  # the op under test (for an expanded test, the op whose body it runs)
    outcome: str  # "pass" or "refused"
    reason: str

    @property
    def name(self) -> str:
        return self.test.name


@dataclass(frozen=True)
class Catalogue:
    cases: list[Case]  # the in-scope ones, in ONNX's order
    excluded: dict[str, str]  # case name -> why nnc refuses it


def catalogue() -> Catalogue:
    supported = set(supported_onnx_ops()) | FRONT_END_OPS
    excluded = read_exclusions()
    tests = load_tests(supported)
    op_of = {t.name: t.model.graph.node[0].op_type for t in tests if len(t.model.graph.node) == 1}
    cases = [_classify(t, op_of, excluded) for t in tests if _in_scope(t.model, supported)]
    return Catalogue(cases, excluded)


def read_exclusions() -> dict[str, str]:
    """The `[excluded]` reasons of every TOML file in tests/conformance/; a file
    with another table, or a case named twice, is an error."""
    excluded: dict[str, str] = {}
    seen: dict[str, Path] = {}
    for path in sorted(TABLES.glob("*.toml")):
        data = tomllib.loads(path.read_text())
        if set(data) != {"excluded"}:
            raise ValueError(f"{path.name}: expected exactly one table, [excluded]; found {sorted(data)}")
        for name, reason in data["excluded"].items():
            if name in seen:
                raise ValueError(f"{name} is listed in both {seen[name].name} and {path.name}")
            seen[name] = path
            excluded[name] = reason
    return excluded


# -- loading ---------------------------------------------------------------------
def load_tests(supported: set[str]) -> list:
    """ONNX's generated node test cases that can be in scope. ONNX builds them while
    importing its case modules (the pooling ones take seconds), so a module named
    after an op nnc lacks is not imported when that op has no function body: such a
    module holds only tests of that op, which are out of scope. Nor is the
    ai_onnx_ml subpackage (another domain)."""
    skipped = _ops_without_function_body() - {op.lower() for op in supported}
    for module in pkgutil.iter_modules(node_cases.__path__):
        if not module.ispkg and module.name not in skipped:
            importlib.import_module(f"{node_cases.__name__}.{module.name}")
    return list(node_cases._NodeTestCases)


def _ops_without_function_body() -> set[str]:
    """Lower-cased names of the ai.onnx ops none of whose versions is a function."""
    with_body: dict[str, bool] = {}
    for schema in onnx.defs.get_all_schemas_with_history():
        if schema.domain in ("", "ai.onnx"):
            body = bool(schema.function_opset_versions or schema.context_dependent_function_opset_versions)
            with_body[schema.name.lower()] = with_body.get(schema.name.lower(), False) or body
    return {name for name, body in with_body.items() if not body}


def count_all_tests() -> int:
    """How many official node tests the installed onnx has (imports every case module: slow)."""
    return len(load_model_tests(kind="node"))


def _in_scope(model: onnx.ModelProto, supported: set[str]) -> bool:
    return all(n.op_type in supported and n.domain in ("", "ai.onnx") for n in model.graph.node)


# -- expected outcome --------------------------------------------------------------
def _classify(test, op_of: dict[str, str], excluded: dict[str, str]) -> Case:
    """`op_of` maps the one-node tests' names to their op; an expanded test is named
    after the one-node test of the op whose body it runs (ONNX always builds both)."""
    op = op_of[re.sub(r"_expanded(_ver\d+)?$", "", test.name)]
    reason = excluded.get(test.name) or automatic_reason(test.model)
    return Case(test, op, "refused" if reason else "pass", reason or "")


def automatic_reason(model: onnx.ModelProto) -> str | None:
    """Why nnc refuses `model` whatever its ops: an element type nnc lacks, a
    non-tensor input, or a run-time input with a zero-size dimension."""
    graph = model.graph
    values = [*graph.input, *graph.output, *graph.value_info]
    codes = {v.type.tensor_type.elem_type for v in values if v.type.HasField("tensor_type")}
    codes |= {t.data_type for t in graph.initializer}
    for code in sorted(codes):
        try:
            dtypes.from_onnx(code)
        except NncError:
            return f"uses element type {onnx.TensorProto.DataType.Name(code)}, which nnc does not support"
    if any(not v.type.HasField("tensor_type") for v in graph.input):
        return "has a non-tensor input (sequence or optional); nnc supports tensors only"
    frozen = set(shape_operand_inputs(model))
    for value in graph.input:
        if value.name not in frozen and any(d.HasField("dim_value") and d.dim_value == 0
                                            for d in value.type.tensor_type.shape.dim):
            return "has a zero-size input (a dimension of 0); nnc's tensors are never empty"
    return None


# -- the document ------------------------------------------------------------------
_INTRO = """\
ONNX ships a node test for each behaviour of each op: a small model, inputs and
the expected outputs. `tests/test_onnx_node_conformance.py` runs every one whose
ops nnc supports (ops with a lowering, plus Constant, Shape and Size, which the
front end folds) through `nnc.onnx_backend.NncBackend`: the front end and the
reference interpreter, no passes. A case passes when its outputs match ONNX's
(floats within the tolerance ONNX's runner gives the case, integers exactly). A
refused case is not skipped: the test asserts that nnc refuses it with an
`NncError`, so each line below stays true. Shape operands fed as graph inputs
(Reshape's shape, Slice's starts, Resize's scales, a Reduce's axes, ...) are
frozen into constants by the backend for the values each run feeds, since nnc's
shapes are static (see `compiler/onnx_backend.py`).

The reasons come from `tests/conformance/*.toml`; element types, non-tensor and
zero-size inputs are refused automatically. This file is generated by
`python tests/node_conformance.py`, and the test suite fails when it is stale."""


def render(cat: Catalogue, total: int) -> str:
    """docs/onnx-conformance.md for the catalogue, given the number of official tests."""
    by_op: dict[str, list[Case]] = collections.defaultdict(list)
    for case in cat.cases:
        by_op[case.op].append(case)
    lines = ["# ONNX node-test conformance", "", _INTRO, "", *_summary(cat, total), "", *_op_table(by_op),
             "", "## Refused cases, by op", ""]
    for op, cases in sorted(by_op.items()):
        lines += _refusals(op, cases)
    return "\n".join(lines) + "\n"


def _summary(cat: Catalogue, total: int) -> list[str]:
    counts = collections.Counter(case.outcome for case in cat.cases)
    by_reason = collections.Counter(case.reason for case in cat.cases if case.outcome == "refused")
    return ["| node tests | cases |", "|---|---:|",
            f"| official, onnx {onnx.__version__} | {total} |",
            f"| in scope (every op supported by nnc) | {len(cat.cases)} |",
            f"| pass | {counts['pass']} |",
            f"| refused with an NncError | {counts['refused']} |",
            "", "## Refused, by reason", "", "| cases | reason |", "|---:|---|",
            *(f"| {n} | {reason} |" for reason, n in sorted(by_reason.items(), key=lambda r: (-r[1], r[0])))]


def _op_table(by_op: dict[str, list[Case]]) -> list[str]:
    lines = ["## By op", "", "An expanded case (`*_expanded`) runs the op's function body, built of ops nnc supports.",
             "", "| op | in scope | of them expanded | pass | refused |", "|---|---:|---:|---:|---:|"]
    for op, cases in sorted(by_op.items()):
        passed = sum(case.outcome == "pass" for case in cases)
        expanded = sum("_expanded" in case.name for case in cases)
        lines.append(f"| {op} | {len(cases)} | {expanded} | {passed} | {len(cases) - passed} |")
    return lines


def _refusals(op: str, cases: list[Case]) -> list[str]:
    names: dict[str, list[str]] = collections.defaultdict(list)
    for case in cases:
        if case.outcome == "refused":
            names[case.reason].append(f"`{case.name}`")
    if not names:
        return []
    return [f"### {op}", "", *(f"- {reason} ({len(n)}): {', '.join(n)}" for reason, n in sorted(names.items())), ""]


if __name__ == "__main__":
    DOC.write_text(render(catalogue(), count_all_tests()))
    print(f"wrote {DOC}")
