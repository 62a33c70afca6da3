"""Shared pieces of the benchmark scripts: where the models are, the machine
description line, and compiling a model the way `nnc compile` does."""

from __future__ import annotations

import os
import platform
from datetime import date
from pathlib import Path

MODELS_DIR = Path(__file__).resolve().parents[2] / "shared" / "models" / "mlperf-tiny"


def model_names() -> list[str]:
    if not MODELS_DIR.is_dir():
        raise SystemExit(f"MLPerf Tiny models not found in {MODELS_DIR}")
    return sorted(p.stem for p in MODELS_DIR.glob("*.onnx"))


def machine() -> str:
    """One line naming the date, CPU and Python this run measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{date.today().isoformat()}, {cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def markdown_table(headers: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
