"""Build the nnc model zoo: every family by every exporter that builds it,
plus each family's calibration .npz, into one folder (default: models/ beside
this script). Prints one row per model: its ops, bytes, export seconds and,
with --check, whether building it again gives the same bytes.

    python examples/zoo/build_zoo.py                       # everything
    python examples/zoo/build_zoo.py --family kws_lstm --exporter helper --check
    nnc compile examples/zoo/models/kws_lstm.torchscript.onnx --target c \\
        --calib examples/zoo/models/kws_lstm.npz

Torch exports need `pip install -e '.[zoo]'`; without PyTorch only the
onnx.helper models are built. See zoo.py for the families and the invariants.
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
import time
from pathlib import Path

import onnx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import zoo  # noqa: E402


def files_of(model: Path, calib: Path) -> list[Path]:
    data = model.with_name(model.name + ".data")
    return [model, *([data] if data.exists() else []), calib]


def op_summary(model: Path) -> str:
    counts = collections.Counter(n.op_type for n in onnx.load(model, load_external_data=False).graph.node)
    return " ".join(f"{op}{'x' + str(n) if n > 1 else ''}" for op, n in sorted(counts.items()))


def same_bytes(family: zoo.Family, exporter: str, first: list[Path]) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        again = files_of(*zoo.build(family, exporter, Path(tmp)))
        differ = [a.name for a, b in zip(first, again) if a.read_bytes() != b.read_bytes()]
    return "yes" if not differ and len(first) == len(again) else "no: " + ", ".join(differ or ["file set"])


def build_one(family: zoo.Family, exporter: str, out: Path, check: bool) -> list[str]:
    start = time.perf_counter()
    written = files_of(*zoo.build(family, exporter, out))
    seconds = time.perf_counter() - start
    size = sum(p.stat().st_size for p in written[:-1])
    row = [family.name, exporter, f"{size:,}", f"{seconds:.2f}", op_summary(written[0])]
    return row + [same_bytes(family, exporter, written)] if check else row


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "models", help="output folder")
    parser.add_argument("--family", action="append", choices=sorted(zoo.FAMILIES), help="only these families")
    parser.add_argument("--exporter", action="append", choices=zoo.EXPORTERS, help="only these exporters")
    parser.add_argument("--check", action="store_true", help="build twice and compare the bytes")
    args = parser.parse_args(argv)
    exporters = [e for e in args.exporter or zoo.EXPORTERS if e == "helper" or zoo.torch_available()]
    if len(exporters) < len(args.exporter or zoo.EXPORTERS):
        print("PyTorch/onnxscript not installed: building the onnx.helper models only", file=sys.stderr)
    headers = ["family", "exporter", "model bytes", "export s", "ops", *(["same bytes"] if args.check else [])]
    print(" | ".join(headers))
    for name in args.family or zoo.FAMILIES:
        family = zoo.FAMILIES[name]
        for exporter in (e for e in family.exporters if e in exporters):
            print(" | ".join(build_one(family, exporter, args.out, args.check)), flush=True)


if __name__ == "__main__":
    main()
