"""Compile the example model twice (whole utterance, and one frame at a time),
build stream_main.c against both and run it: every utterance's scores must be
the same bit for bit. Usage: python run.py [OUT_DIR] (default: out/)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
MODEL, SAMPLES = HERE / "kws_lstm.onnx", HERE / "utterances.npz"
WHOLE, CHUNK = "x=1,49,10", "x=1,1,10"


def nnc(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "nnc.cli", *args], check=True)


def write_utterances(path: Path) -> None:
    x = np.load(SAMPLES)["x"]  # [count, 1, frames, features]
    rows = [", ".join(f"{v!r}f" for v in u.ravel().tolist()) for u in x]
    body = ",\n".join(f"    {{{row}}}" for row in rows)
    path.write_text(f"/* utterances.npz as C data (written by run.py) */\n"
                    f"#define UTTERANCE_COUNT {x.shape[0]}\n#define UTTERANCE_FRAMES {x.shape[2]}\n"
                    f"static const float utterances[{x.shape[0]}][{x[0].size}] = {{\n{body}\n}};\n")


def main(out: Path) -> int:
    # a streaming compile has no bias correction (docs/streaming.md): the whole compile matches it
    common = ["--target", "c", "--calib", str(SAMPLES), "--input-shape", WHOLE, "--no-bias-correction", "--quiet"]
    nnc("compile", str(MODEL), "-o", str(out / "kws"), "--name", "kws", *common)
    nnc("compile", str(MODEL), "-o", str(out / "kws_stream"), "--name", "kws_stream", "--stream", CHUNK, *common)
    write_utterances(out / "utterances.h")
    exe = out / "stream_main"
    cc = shutil.which("cc") or shutil.which("gcc") or "cc"
    subprocess.run([cc, "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-I", str(out), "-I", str(out / "kws"),
                    "-I", str(out / "kws_stream"), str(HERE / "stream_main.c"), str(out / "kws" / "kws.c"),
                    str(out / "kws_stream" / "kws_stream.c"), "-o", str(exe), "-lm"], check=True)
    return subprocess.run([str(exe)]).returncode


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "out"))
