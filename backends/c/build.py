"""Building and running emitted C on the host: the compiler call, the harness's
raw sample files, and the errors a user sees when either fails."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from nnc import dtypes
from nnc.errors import VerificationError
from nnc.interpreter import check_inputs
from nnc.ir import Graph

STRICT_FLAGS = ("-std=c99", "-Wall", "-Wextra", "-pedantic")
RUN_TIMEOUT_SECONDS = 1800


def host_compiler() -> str:
    """The host C compiler (cc, else gcc, else clang); VerificationError if none."""
    for name in ("cc", "gcc", "clang"):
        path = shutil.which(name)
        if path:
            return path
    said = "no C compiler found (cc, gcc or clang) to build the generated C; install one or compile with"
    raise VerificationError(f"{said} verify=False", cli=f"{said} --no-verify")


def compile_c(sources: list[Path], output: Path, flags=("-O2",), cc: str | None = None,
              include: Path | None = None, link: bool = True) -> Path:
    """Compile `sources` into `output` (an executable, or an object with
    link=False); VerificationError with the first error line on failure."""
    command = [cc or host_compiler(), *STRICT_FLAGS, *flags]
    if include is not None:
        command.append(f"-I{include}")
    command += [str(s) for s in sources] + ["-o", str(output)]
    command += ["-lm"] if link else ["-c"]
    # The compiler's own temporary files (cc*.s, cc*.o) go to a folder of ours:
    # when nnc is interrupted, subprocess kills the compiler (SIGKILL), which
    # then cannot remove them, and this folder goes with them.
    with tempfile.TemporaryDirectory(prefix="nnc-cc-") as scratch:
        result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "TMPDIR": scratch})
    if result.returncode != 0:
        raise VerificationError(f"building the generated C failed: {first_error(result.stderr)}")
    return output


def first_error(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in lines:
        if "error" in line.lower():
            return line
    return lines[0] if lines else "(no compiler output)"


def write_inputs(graph: Graph, samples: list[dict], path: Path) -> None:
    """Raw inputs, per sample every graph input in order, in the host's byte order."""
    with open(path, "wb") as f:
        for sample in samples:
            converted = check_inputs(graph, sample)
            for name in graph.inputs:
                f.write(np.ascontiguousarray(converted[name]).tobytes())


def read_outputs(graph: Graph, count: int, path: Path) -> list[dict]:
    raw = path.read_bytes()
    results, offset = [], 0
    for _ in range(count):
        sample = {}
        for name in graph.outputs:
            t = graph.tensor(name)
            dtype = dtypes.to_numpy(t.dtype)
            sample[name] = np.frombuffer(raw, dtype, t.size, offset).reshape(t.shape).copy()
            offset += t.nbytes
        results.append(sample)
    if offset != len(raw):
        raise VerificationError(f"the C harness wrote {len(raw)} bytes of outputs, expected {offset}")
    return results


def run_harness(executable: Path, graph: Graph, samples: list[dict], work: Path) -> list[dict]:
    """Run the harness in --run mode on `samples`; its outputs per sample."""
    inputs, outputs = work / "inputs.bin", work / "outputs.bin"
    write_inputs(graph, samples, inputs)
    try:
        result = subprocess.run([str(executable), "--run", str(len(samples)), str(inputs), str(outputs)],
                                capture_output=True, text=True, timeout=RUN_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        raise VerificationError(f"the C harness did not finish within {RUN_TIMEOUT_SECONDS} s") from None
    if result.returncode != 0:
        why = f"signal {-result.returncode}" if result.returncode < 0 else f"exit code {result.returncode}"
        detail = first_error(result.stderr) if result.stderr.strip() else "no message"
        raise VerificationError(f"the C harness failed ({why}): {detail}")
    return read_outputs(graph, len(samples), outputs)
