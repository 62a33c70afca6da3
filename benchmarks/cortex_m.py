"""Cortex-M benchmark: instructions per inference of nnc's C output on emulated
Cortex-M4 and Cortex-M55 cores, next to CMSIS-NN's kernels doing the same layers.

Run from the repo root: `python benchmarks/cortex_m.py [--models kws,vww]
[--tables main,layers,sparse] [--quick]` (prints markdown tables; about 4
minutes on 2 cores). `--quick` runs the main table for KWS on the Cortex-M4 at
-O2 only. Needs arm-none-eabi-gcc (with newlib), qemu-system-arm, make and a
host gcc; skips with a reason when one is missing.

Tables: `main`, per model, core and level; `layers`, KWS layer by layer;
`sparse`, pruned models (VWW as trained, KWS pruned to 95 %) compiled twice,
with the dense kernels only (qfast.SPARSE_MAX_DENSITY set to 0 for that
compile) and with nnc's choice (the sparse kernel qmms where few enough
weights are nonzero).

How each figure is measured:
- nnc: the model compiled with `nnc.compile(M, target="c", inputs=M.io.npz)`,
  then the generated folder's own firmware harness built with
  `make build/<core>/<stem>.elf OPT=<level>` and run in qemu (`mps2-an386` for
  the Cortex-M4, `mps3-an547` for the Cortex-M55) with the instruction-count
  plugin of ../shared/tools/qemu-insncount. The harness has no measuring hook,
  so the plugin marks two addresses read from the ELF: the entry of
  `<prefix>_invoke` and the instruction after main()'s call to it; the count
  between them is one inference of the first golden sample (every
  instruction of the call, softmax included). The run must print PASS.
  Per layer: the instruction after each call from `<prefix>_invoke_with_arena`
  to a kernel (library helpers such as __aeabi_ldivmod count with the kernel
  around them) is marked too, up to 15 marks per run; an inlined softmax is
  what follows the last call.
- CMSIS-NN (the program: cortex_m_cmsis.py): ../shared/third_party/cmsis-nn
  built for the same core and level
  (`-w`; CMSIS-NN is not warning-free under -pedantic), called layer by layer
  the way TensorFlow Lite Micro's CMSIS-NN port does (arm_convolve_wrapper_s8,
  arm_depthwise_conv_wrapper_s8, arm_avgpool_s8, arm_fully_connected_s8 or its
  per-channel variant, arm_elementwise_add_s8 with TFLite's add scaling (left
  shift 20, multipliers from the tensors' scales), arm_softmax_s8 with
  TFLite's softmax scaling; weights
  in TFLite's layouts; FC kernel sums filled by arm_vector_sum_s8 before the
  count, as TFLM's Prepare does) on the same weights and input, linked with
  the harness's startup code. The count of a layer is that between the noinline
  marks around its call (each mark's 3 instructions taken off). Its outputs are not
  checked: TFLite rounds pooling and softmax differently from nnc, so only the
  counts are comparable. Models with ops this generator does not map show
  "n/a" with the reason.
- flash: text + data of `<stem>.o` (the model with its weights) from
  `arm-none-eabi-size`; RAM: `<PREFIX>_ARENA_BYTES` of the header; stack: the
  high-water mark the harness prints (bytes below main()).
qemu counts instructions, not cycles (one MVE instruction counts once, a gather
load included).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from itertools import pairwise
from pathlib import Path

import nnc
import numpy as np
from common import MODELS_DIR, machine, markdown_table
from cortex_m_cmsis import cmsis_program
from nnc.backends.c import qfast

SHARED = MODELS_DIR.parents[1]
PLUGIN_SOURCE = SHARED / "tools" / "qemu-insncount" / "insncount.c"
CMSIS_NN = SHARED / "third_party" / "cmsis-nn"
CMSIS_CORE = SHARED / "third_party" / "cmsis-core" / "CMSIS" / "Core" / "Include"
MODELS = ["kws_dscnn_int8_qdq", "vww_mobilenet_int8_qdq", "ic_resnet8_int8_qdq", "ad_autoencoder_int8_qdq",
          "sww_int8_qdq"]
# core -> (Makefile target, qemu machine, linker script, CPU flags as the generated Makefile sets them)
CORES = {
    "m4": ("Cortex-M4", "mps2-an386", "mps2-an386.ld", "-mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16"),
    "m55": ("Cortex-M55", "mps3-an547", "mps3-an547.ld", "-mcpu=cortex-m55 -mthumb -mfloat-abi=hard"),
}
QEMU_FLAGS = ["-nographic", "-monitor", "none", "-serial", "none", "-semihosting-config", "enable=on,target=native"]
TOOLS = ("arm-none-eabi-gcc", "qemu-system-arm", "make", "gcc")
TIMEOUT_SECONDS = 300
MARKS_PER_RUN = 16  # addresses the plugin watches in one run


def run(args: list[str], cwd: Path | None = None) -> str:
    """stdout + stderr of a command that must succeed."""
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT_SECONDS, check=False)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(args[:3])} ... failed:\n{(proc.stdout + proc.stderr)[-2000:]}")
    return proc.stdout + proc.stderr


def symbol_address(elf: Path, name: str) -> int:
    for line in run(["arm-none-eabi-nm", str(elf)]).splitlines():
        fields = line.split()
        if len(fields) == 3 and fields[2] == name:
            return int(fields[0], 16) & ~1
    raise RuntimeError(f"{name} not in {elf}")


def return_site(elf: Path, callee: str) -> int:
    """Address of the instruction after main()'s call to `callee`."""
    listing = run(["arm-none-eabi-objdump", "-d", "--disassemble=main", str(elf)])
    lines = [ln for ln in listing.splitlines() if re.match(r"\s*[0-9a-f]+:\t", ln)]
    for i, line in enumerate(lines):
        if re.search(rf"\sbl(x)?\s+[0-9a-f]+ <{callee}>", line):
            return int(lines[i + 1].split(":")[0], 16)
    raise RuntimeError(f"main() of {elf} does not call {callee}")


def qemu_marks(plugin: Path, machine_name: str, elf: Path, marks: list[int]) -> tuple[str, list[tuple[int, int]]]:
    """Run `elf` in qemu with the counting plugin: (program output, [(mark address, count)])."""
    options = ",".join([str(plugin)] + [f"mark={hex(a)}" for a in marks])
    proc = subprocess.run(["qemu-system-arm", "-M", machine_name, *QEMU_FLAGS, "-kernel", str(elf),
                           "-plugin", options, "-d", "plugin"], capture_output=True, text=True,
                          timeout=TIMEOUT_SECONDS, check=False)
    hits = [(int(a, 16), int(c)) for a, c in re.findall(r"insncount: mark 0x([0-9a-f]+) at (\d+)", proc.stderr)]
    return proc.stdout + proc.stderr, hits


# ---- nnc's side ---------------------------------------------------------------------------------------------


def measure_nnc(folder: Path, core: str, opt: str, plugin: Path) -> dict:
    """Build the folder's firmware for `core` at `opt`, run it counted: instructions, flash, stack."""
    header = next(p for p in folder.glob("*.h") if not p.stem.endswith(("_kernels", "_weights", "_golden")))
    stem = header.stem
    prefix = re.search(r"int (\w+)_invoke\(", header.read_text()).group(1)
    arena = int(re.search(r"#define \w+_ARENA_BYTES (\d+)", header.read_text()).group(1))
    elf = folder / "build" / core / f"{stem}.elf"
    run(["make", "--no-print-directory", "-j2", f"build/{core}/{stem}.elf", f"OPT={opt}"], cwd=folder)
    entry, back = symbol_address(elf, f"{prefix}_invoke"), return_site(elf, f"{prefix}_invoke")
    output, hits = qemu_marks(plugin, CORES[core][1], elf, [entry, back])
    start = next(c for a, c in hits if a == entry)
    end = next(c for a, c in hits if a == back and c > start)
    text, data = run(["arm-none-eabi-size", str(folder / "build" / core / f"{stem}.o")]).splitlines()[1].split()[:2]
    stack = re.search(r"stack high-water: (\d+) bytes below main", output)
    return {"instructions": end - start, "flash": int(text) + int(data), "ram": arena,
            "stack": int(stack.group(1)) if stack else None, "pass": "PASS" in output.splitlines()}


def kernel_calls(elf: Path, caller: str) -> list[int]:
    """Addresses of the instructions after `caller`'s calls to the model's kernels (library helpers such as
    __aeabi_ldivmod and memcpy left out: their instructions count with the kernel around them)."""
    listing = run(["arm-none-eabi-objdump", "-d", f"--disassemble={caller}", str(elf)])
    lines = [ln for ln in listing.splitlines() if re.match(r"\s*[0-9a-f]+:\t", ln)]
    sites = []
    for i, line in enumerate(lines):
        called = re.search(r"\sbl\s+[0-9a-f]+ <([\w.]+)>", line)
        if called and not called.group(1).startswith(("__", "mem")):
            sites.append(int(lines[i + 1].split(":")[0], 16))
    return sites


def layer_counts(folder: Path, core: str, plugin: Path) -> list[int]:
    """Instructions per kernel call of one inference of the firmware measure_nnc built last for `core`, in
    order, then those after the last call (an inlined softmax, the return); they sum to the inference's."""
    stem = next(p for p in folder.glob("*.h") if not p.stem.endswith(("_kernels", "_weights", "_golden"))).stem
    prefix = re.search(r"int (\w+)_invoke\(", (folder / f"{stem}.h").read_text()).group(1)
    elf = folder / "build" / core / f"{stem}.elf"
    entry = symbol_address(elf, f"{prefix}_invoke")
    sites = [*kernel_calls(elf, f"{prefix}_invoke_with_arena"), return_site(elf, f"{prefix}_invoke")]
    reached = {}
    for chunk in range(0, len(sites), MARKS_PER_RUN - 1):
        _, hits = qemu_marks(plugin, CORES[core][1], elf, [entry, *sites[chunk:chunk + MARKS_PER_RUN - 1]])
        start = next(c for a, c in hits if a == entry)
        for address, count in hits:
            if address != entry and count > start:
                reached.setdefault(address, count - start)
    counts = [reached[a] for a in sites]
    return [counts[0], *(b - a for a, b in pairwise(counts))]


# ---- CMSIS-NN's side (the program: cortex_m_cmsis.py) --------------------------------------------------------


def cmsis_library(work: Path, core: str, opt: str) -> Path:
    """libcmsisnn.a for `core` at `opt` (int8 and int16 kernels), built once per run."""
    out = work / f"cmsis-{core}{opt}"
    library = out / "libcmsisnn.a"
    if library.exists():
        return library
    out.mkdir(parents=True)
    sources = sorted(p for p in CMSIS_NN.glob("Source/*/*.c") if not re.search(r"_f(16|32)\b", p.stem))
    flags = [*CORES[core][3].split(), "-std=c99", opt, "-w", "-ffunction-sections", "-fdata-sections",
             f"-I{CMSIS_NN / 'Include'}", f"-I{CMSIS_CORE}"]

    def build(source: Path) -> Path:
        obj = out / f"{source.stem}.o"
        run(["arm-none-eabi-gcc", *flags, "-c", str(source), "-o", str(obj)])
        return obj

    with ThreadPoolExecutor(2) as pool:
        objects = list(pool.map(build, sources))
    run(["arm-none-eabi-ar", "rcs", str(library), *map(str, objects)])
    return library


def measure_cmsis(source: str, folder: Path, work: Path, core: str, opt: str, plugin: Path) -> list[int]:
    """Instructions of each CMSIS-NN call, in order, linked with the nnc folder's firmware startup (built for
    `core`)."""
    out = work / f"{folder.name}-cmsis-{core}{opt}"
    out.mkdir(parents=True, exist_ok=True)
    (out / "main.c").write_text(source)
    cpu = CORES[core][3].split()
    build = folder / "build" / core
    elf = out / "cmsis.elf"
    run(["arm-none-eabi-gcc", *cpu, "-std=c99", opt, "-w", "-ffunction-sections", "-fdata-sections",
         f"-I{folder / 'firmware'}", f"-I{CMSIS_NN / 'Include'}", f"-I{CMSIS_CORE}", "-c", str(out / "main.c"),
         "-o", str(out / "main.o")])
    run(["arm-none-eabi-gcc", *cpu, "-nostartfiles", "-Wl,--gc-sections", "-T",
         str(folder / "firmware" / CORES[core][2]), "-o", str(elf), str(out / "main.o"), str(build / "startup.o"),
         str(build / "semihost.o"), str(cmsis_library(work, core, opt)), "-lm"])
    output, hits = qemu_marks(plugin, CORES[core][1], elf, [symbol_address(elf, "bench_mark")])
    counts = [c for _, c in hits]
    if "ok" not in output or len(counts) < 2:
        raise RuntimeError(f"CMSIS-NN run failed:\n{output[-2000:]}")
    return [after - before - 3 for before, after in pairwise(counts)]


# ---- report -------------------------------------------------------------------------------------------------


def versions() -> list[str]:
    gcc = run(["arm-none-eabi-gcc", "--version"]).splitlines()[0]
    qemu = run(["qemu-system-arm", "--version"]).splitlines()[0]
    header = (CMSIS_NN / "Include" / "arm_nnfunctions.h").read_text()
    revision = re.search(r"\$Revision:\s*(\S+)", header)
    date = re.search(r"\$Date:\s*([^\n*]+)", header)
    cmsis = f"CMSIS-NN {revision.group(1)} ({date.group(1).strip()})" if revision and date else "CMSIS-NN n/a"
    return [gcc, qemu, cmsis]


def cmsis_source_of(graph, sample_file: Path) -> tuple[str | None, str]:
    """(the CMSIS-NN program of `graph` on the file's first input, "") or (None, why not)."""
    if not CMSIS_NN.is_dir():
        return None, "../shared/third_party/cmsis-nn absent"
    try:
        return cmsis_program(graph, np.load(sample_file)["input"][:1]), ""
    except NotImplementedError as error:
        return None, str(error)


def measure_model(name: str, work: Path, runs: list[tuple[str, str]], plugin: Path,
                  per_layer: bool) -> tuple[list[list], list[list]]:
    """(the main table's rows, the per-layer table's rows when `per_layer`) of one model."""
    folder = work / name
    sample_file = MODELS_DIR / f"{name}.io.npz"
    result = nnc.compile(MODELS_DIR / f"{name}.onnx", target="c", output_dir=folder, inputs=sample_file)
    cmsis_source, cmsis_reason = cmsis_source_of(result.graph, sample_file)
    rows, layers = [], []
    for core, opt in runs:
        figures = measure_nnc(folder, core, opt, plugin)
        calls = measure_cmsis(cmsis_source, folder, work, core, opt, plugin) if cmsis_source else None
        cmsis = sum(calls) if calls else None
        ratio = f"{figures['instructions'] / cmsis:.2f}×" if cmsis else f"n/a ({cmsis_reason})"
        rows.append([name, CORES[core][0], opt, f"{figures['instructions']:,}", f"{cmsis:,}" if cmsis else "n/a",
                     ratio, "PASS" if figures["pass"] else "FAIL", f"{figures['flash']:,}", f"{figures['ram']:,}",
                     f"{figures['stack']:,}" if figures["stack"] is not None else "n/a"])
        if per_layer and calls:
            layers += layer_rows(result.graph, layer_counts(folder, core, plugin), calls, core, opt)
    return rows, layers


def layer_label(graph, node) -> str:
    x, y = graph.tensor(node.inputs[0]).shape, graph.tensor(node.outputs[0]).shape
    kernel = "×".join(map(str, getattr(node.attrs, "kernel_shape", ())))
    on = f"on {'×'.join(map(str, x[1:]))}"
    if node.op == "QConv" and node.attrs.group == x[-1] == y[-1] > 1:
        return f"depthwise {kernel} {on}"
    if node.op == "QConv":
        shape = "pointwise" if kernel in ("1×1", "1") else f"conv {kernel},"
        return f"{shape} {x[-1]}→{y[-1]} on {'×'.join(map(str, x[1:-1]))}"
    if node.op == "QGemm":
        return f"fully connected {x[-1]}→{y[-1]}"
    name = {"QAveragePool": "average pool", "QSoftmax": "softmax", "QAdd": "add"}.get(node.op, node.op)
    return " ".join(part for part in (name, kernel, on) if part)


def layer_rows(graph, nnc_counts: list[int], cmsis_counts: list[int], core: str, opt: str) -> list[list]:
    """Rows per layer: nnc's count of each kernel call (layer_counts) next to CMSIS-NN's call for the same
    node; the instructions after nnc's last call (an inlined softmax) are the last layer's when nnc made one
    call fewer than there are layers, else they join the last call's. Layers of one label (the same shape)
    show once, with the first one's counts."""
    nodes = [n for n in graph.nodes() if n.op not in ("Reshape", "Flatten", "Identity")]
    if len(nnc_counts) == len(nodes) + 1:
        nnc_counts = [*nnc_counts[:-2], nnc_counts[-2] + nnc_counts[-1]]
    if len(nnc_counts) != len(nodes) or len(cmsis_counts) != len(nodes):
        raise RuntimeError(f"{len(nnc_counts)} nnc calls, {len(cmsis_counts)} CMSIS-NN calls, {len(nodes)} layers")
    labels = [layer_label(graph, node) for node in nodes]
    rows, seen = [], set()
    for label, ours, theirs in zip(labels, nnc_counts, cmsis_counts, strict=True):
        if label not in seen:  # a repeated layer (KWS's four blocks) once, the first of them
            seen.add(label)
            times = labels.count(label)
            rows.append([CORES[core][0], opt, label + (f" (first of {times})" if times > 1 else ""), f"{ours:,}",
                         f"{theirs:,}", f"{ours / theirs:.2f}×"])
    return rows


# ---- sparse layers ------------------------------------------------------------------------------------------

# model -> nnc.compile options of the pruned case (vww's pointwise layers are 96-99 % zero as trained)
SPARSE_CASES = {"vww_mobilenet_int8_qdq": {}, "kws_dscnn_int8_qdq": {"sparsity": 0.95}}


@contextmanager
def dense_kernels_only():
    """Compiles inside keep every layer on the dense kernels (qfast's sparse threshold set to 0)."""
    saved = qfast.SPARSE_MAX_DENSITY
    qfast.SPARSE_MAX_DENSITY = 0.0
    try:
        yield
    finally:
        qfast.SPARSE_MAX_DENSITY = saved


def measure_sparse(name: str, options: dict, work: Path, runs: list[tuple[str, str]], plugin: Path) -> list[list]:
    """Rows of one pruned case: the same compile with dense kernels only and with qfast's choice (qmms on the
    layers sparse enough)."""
    sample_file = MODELS_DIR / f"{name}.io.npz"
    folders = {}
    for kind, scope in (("dense", dense_kernels_only), ("sparse", nullcontext)):
        folders[kind] = work / f"{name}-{kind}"
        with scope():
            nnc.compile(MODELS_DIR / f"{name}.onnx", target="c", output_dir=folders[kind], inputs=sample_file,
                        **options)
    label = " ".join([name, *(f"--{k} {v}" for k, v in options.items())])
    rows = []
    for core, opt in runs:
        dense, sparse = (measure_nnc(folders[kind], core, opt, plugin) for kind in ("dense", "sparse"))
        rows.append([label, CORES[core][0], opt, f"{dense['instructions']:,}", f"{sparse['instructions']:,}",
                     f"{sparse['instructions'] / dense['instructions']:.2f}×", f"{dense['flash']:,}",
                     f"{sparse['flash']:,}", "PASS" if dense["pass"] and sparse["pass"] else "FAIL"])
    return rows


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="", help="comma-separated name prefixes (default: the 5 int8 models)")
    parser.add_argument("--tables", default="main,layers,sparse",
                        help="comma-separated: main (per model), layers (KWS per layer), sparse (pruned models)")
    parser.add_argument("--quick", action="store_true", help="the main table for KWS on the Cortex-M4 at -O2 only")
    return parser.parse_args()


def main() -> None:
    args = arguments()
    print(f"Cortex-M benchmark — {machine()}\n")
    missing = [tool for tool in TOOLS if not shutil.which(tool)]
    if missing:
        print(f"skipped: {', '.join(missing)} not installed (needs arm-none-eabi-gcc, qemu-system-arm, make, gcc)")
        return
    if not PLUGIN_SOURCE.is_file():
        print(f"skipped: the instruction-count plugin {PLUGIN_SOURCE} is absent")
        return
    tables = {"main"} if args.quick else set(args.tables.split(","))
    prefixes = ["kws"] if args.quick else [p for p in args.models.split(",") if p]
    chosen = [m for m in MODELS if not prefixes or any(m.startswith(p) for p in prefixes)]
    chosen = [m for m in chosen if "main" in tables or ("layers" in tables and m.startswith("kws"))]
    runs = [("m4", "-O2")] if args.quick else [(core, opt) for core in CORES for opt in ("-O2", "-Os")]
    print("Tools: " + "; ".join(versions()) + "\n")
    rows, layers, sparse, skipped = [], [], [], []
    with tempfile.TemporaryDirectory(prefix="nnc-cortex-m-") as tmp:
        work = Path(tmp)
        plugin = work / "libinsncount.so"
        run(["gcc", "-O2", "-shared", "-fPIC", "-o", str(plugin), str(PLUGIN_SOURCE)])
        for name in chosen:
            if not (MODELS_DIR / f"{name}.onnx").is_file():
                skipped.append(f"{name}: not in {MODELS_DIR}")
                continue
            model_rows, model_layers = measure_model(name, work, runs, plugin, "layers" in tables and
                                                     name.startswith("kws"))
            rows += model_rows if "main" in tables else []
            layers += model_layers
        for name, options in SPARSE_CASES.items() if "sparse" in tables else ():
            if (MODELS_DIR / f"{name}.onnx").is_file():
                sparse += measure_sparse(name, options, work, runs, plugin)
    if rows:
        print(markdown_table(["model", "core", "opt", "nnc instructions", "CMSIS-NN instructions", "nnc / CMSIS-NN",
                              "golden", "flash B", "RAM (arena) B", "stack B"], rows))
    if layers:
        print("\nkws_dscnn_int8_qdq per layer:\n")
        print(markdown_table(["core", "opt", "layer", "nnc instructions", "CMSIS-NN instructions", "nnc / CMSIS-NN"],
                             layers))
    if sparse:
        print("\nPruned models, nnc's dense kernels only vs its choice (qmms on the sparse layers):\n")
        print(markdown_table(["model", "core", "opt", "dense kernels", "with qmms", "with / dense", "flash dense B",
                              "flash with qmms B", "golden"], sparse))
    for line in skipped:
        print(f"\nskipped {line}")


if __name__ == "__main__":
    main()
