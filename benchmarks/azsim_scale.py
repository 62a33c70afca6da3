"""az-sim at scale: models larger than the default machine's SRAMs, compiled
with tiling (docs/azsim.md §3.2) and verified bit-exact.

Run from the repo root: `python benchmarks/azsim_scale.py [--hw MACHINE] [--only NAME]`
(needs PyTorch for the zoo models; prints a markdown table).

Models: ResNet-18 at 64×64 and MobileNetV2 at 96×96 (examples/zoo/zoo.py, torch
export, its calibration samples) and a synthetic 10 M-parameter conv + gemm stack
built here with onnx.helper (seeded). Each is compiled as
`nnc compile M --target az-sim --calib M.npz` on the default machine (or
`--hw`), verification on, which requires the simulator to match the reference
bit for bit. Figures, from report.json `sim` (the first verification sample):
cycles, latency, DMA bytes in (weights, constants, activation tiles) and out,
stall cycles, MAC utilization, the layers that ran in more than one piece, and
the wall time of the whole compile call.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import nnc

from common import machine, markdown_table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples" / "zoo"))

import zoo  # noqa: E402

SEED = 0
# (name, in channels, out channels, stride) of the synthetic model's convolutions, then its gemm widths
SYNTHETIC_CONVS = (("conv1", 3, 32, 1), ("conv2", 32, 64, 2), ("conv3", 64, 128, 2), ("conv4", 128, 256, 2),
                   ("conv5", 256, 512, 2))
SYNTHETIC_GEMMS = (512, 2048, 2048, 1600, 10)


def synthetic_model() -> onnx.ModelProto:
    """A 10.1 M-parameter model: five 3×3 convolutions (ReLU) on a 3×32×32 image,
    global average pooling, four fully connected layers; He-scaled normal weights."""
    rng = np.random.default_rng(SEED)
    nodes, inits, x = [], [], "image"

    def param(name: str, shape: tuple[int, ...], fan_in: int):
        inits.append(numpy_helper.from_array((rng.standard_normal(shape) * np.sqrt(2 / fan_in)).astype(np.float32),
                                             name))
    for name, cin, cout, stride in SYNTHETIC_CONVS:
        param(f"{name}.w", (cout, cin, 3, 3), cin * 9)
        param(f"{name}.b", (cout,), 100 * cin)
        nodes += [helper.make_node("Conv", [x, f"{name}.w", f"{name}.b"], [name], name=name, pads=[1] * 4,
                                   strides=[stride] * 2),
                  helper.make_node("Relu", [name], [f"{name}.r"], name=f"{name}.relu")]
        x = f"{name}.r"
    nodes += [helper.make_node("GlobalAveragePool", [x], ["gap"], name="gap"),
              helper.make_node("Flatten", ["gap"], ["flat"], name="flatten")]
    x = "flat"
    for i, (k, n) in enumerate(zip(SYNTHETIC_GEMMS, SYNTHETIC_GEMMS[1:]), 1):
        param(f"fc{i}.w", (n, k), k)
        param(f"fc{i}.b", (n,), 100 * k)
        nodes.append(helper.make_node("Gemm", [x, f"fc{i}.w", f"fc{i}.b"], [f"fc{i}"], name=f"fc{i}", transB=1))
        x = f"fc{i}"
        if n != SYNTHETIC_GEMMS[-1]:
            nodes.append(helper.make_node("Relu", [x], [f"fc{i}.r"], name=f"fc{i}.relu"))
            x = f"fc{i}.r"
    graph = helper.make_graph(nodes, "synthetic_10m",
                              [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 32, 32])],
                              [helper.make_tensor_value_info(x, TensorProto.FLOAT, [1, SYNTHETIC_GEMMS[-1]])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def build(name: str, folder: Path) -> tuple[Path, Path]:
    """(model, calibration samples) of one benchmark model, written into `folder`."""
    if name == "synthetic_10m":
        folder.mkdir(parents=True, exist_ok=True)
        model, calib = folder / "synthetic_10m.onnx", folder / "synthetic_10m.npz"
        onnx.save(synthetic_model(), model)
        rng = np.random.default_rng(SEED + 1)
        np.savez(calib, image=rng.standard_normal((4, 1, 3, 32, 32)).astype(np.float32))
        return model, calib
    family = zoo.FAMILIES[name]
    return zoo.build(family, family.exporters[0], folder)


def measure(name: str, hw: str | None, work: Path) -> list[str]:
    model, calib = build(name, work / name)
    start = time.perf_counter()
    report = nnc.compile(model, target="az-sim", output_dir=work / f"{name}-out", calib=calib, hw=hw).report
    seconds = time.perf_counter() - start
    assert report["verification"]["vs_reference"]["bit_exact"]  # the compile raises otherwise
    sim = report["sim"]
    tiled = [row for row in sim["layers"] if row["tiles"] > 1]
    return [name, f"{report['totals']['params']:,}", f"{sim['macs_total']:,}", f"{sim['cycles']:,}",
            f"{sim['latency_ms']:.2f}", f"{sim['dma_in_bytes']:,}", f"{sim['dma_out_bytes']:,}",
            f"{sim['stall_cycles']:,}", f"{sim['utilization']:.1%}",
            f"{len(tiled)} ({sum(row['tiles'] for row in tiled):,} pieces)", f"{sim['blob_bytes']:,}",
            f"{seconds:.1f}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hw", default=None, help="machine: a preset (small, default, large) or a TOML file")
    parser.add_argument("--only", default=None, help="one model: resnet18, mobilenet_v2 or synthetic_10m")
    args = parser.parse_args()
    names = [args.only] if args.only else ["resnet18", "mobilenet_v2", "synthetic_10m"]
    with tempfile.TemporaryDirectory(prefix="nnc-azsim-scale-") as tmp:
        rows = [measure(name, args.hw, Path(tmp)) for name in names]
    print(f"{machine()}; az-sim machine: {args.hw or 'default'}\n")
    print(markdown_table(["model", "params", "MACs", "cycles", "latency ms", "DMA in bytes", "DMA out bytes",
                          "stall cycles", "MAC utilization", "tiled layers", "blob bytes", "compile s"], rows))


if __name__ == "__main__":
    main()
