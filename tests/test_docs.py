"""Docs that must follow the code: the pass index lists every registered pass,
the README's commands exist."""

from __future__ import annotations

import re
from pathlib import Path

from nnc.passmanager import available_passes

ROOT = Path(__file__).resolve().parents[1]


def test_pass_index_lists_every_pass():
    text = (ROOT / "docs" / "passes.md").read_text()
    listed = set(re.findall(r"^\| `([a-z-]+)` \|", text, flags=re.M))
    assert listed == set(available_passes())


def test_readme_commands():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert f"\n{ci}\n" in readme, "the README's test command must be the one .ci/run calls"
    for example in re.findall(r"(examples/\S+\.(?:onnx|npz))", readme):
        assert (ROOT / example).is_file(), example
