"""Cortex-M benchmark: instructions per inference of nnc's C output on emulated
Cortex-M4 and Cortex-M55 cores, next to CMSIS-NN's kernels doing the same layers.

Run from the repo root: `python benchmarks/cortex_m.py [--models kws,vww]
[--quick]` (prints markdown tables; about 5 minutes on 2 cores). `--quick`
runs KWS on the Cortex-M4 at -O2 only. Needs arm-none-eabi-gcc (with newlib),
qemu-system-arm, make and a host gcc; skips with a reason when one is missing.

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
- CMSIS-NN: ../shared/third_party/cmsis-nn built for the same core and level
  (`-w`; CMSIS-NN is not warning-free under -pedantic), called layer by layer
  the way TensorFlow Lite Micro's CMSIS-NN port does (arm_convolve_wrapper_s8,
  arm_depthwise_conv_wrapper_s8, arm_avgpool_s8, arm_fully_connected_s8 or its
  per-channel variant, arm_elementwise_add_s8 with TFLite's add scaling (left
  shift 20, multipliers from the tensors' scales), arm_softmax_s8 with
  TFLite's softmax scaling; weights
  in TFLite's layouts; FC kernel sums filled by arm_vector_sum_s8 before the
  count, as TFLM's Prepare does) on the same weights and input, linked with
  the harness's startup code. The count is the sum over the calls between
  noinline marks (each mark's 3 instructions taken off). Its outputs are not
  checked: TFLite rounds pooling and softmax differently from nnc, so only the
  counts are comparable. Models with ops this generator does not map show
  "n/a" with the reason.
- flash: text + data of `<stem>.o` (the model with its weights) from
  `arm-none-eabi-size`; RAM: `<PREFIX>_ARENA_BYTES` of the header; stack: the
  high-water mark the harness prints (bytes below main()).
qemu counts instructions, not cycles (one MVE instruction counts once).
"""

from __future__ import annotations

import argparse
import math
import re
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

import nnc

from common import MODELS_DIR, machine, markdown_table

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


def run(args: list[str], cwd: Path | None = None) -> str:
    """stdout + stderr of a command that must succeed."""
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT_SECONDS)
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
                          timeout=TIMEOUT_SECONDS)
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


# ---- CMSIS-NN's side ----------------------------------------------------------------------------------------


def c_array(name: str, ctype: str, values, const: bool = True) -> str:
    flat = np.asarray(values).reshape(-1)
    body = ", ".join(str(int(v)) for v in flat)
    qualifier = "const " if const else ""
    return f"static {qualifier}{ctype} {name}[{max(flat.size, 1)}] __attribute__((aligned(16))) = {{{body}}};\n"


def quant_arrays(graph, node, i: int) -> list[str]:
    """Per-channel multipliers and CMSIS shifts (left-positive: 31 - nnc's right shift)."""
    multiplier = graph.tensor(node.inputs[3]).data
    shift = 31 - graph.tensor(node.inputs[4]).data.astype(np.int64)
    return [c_array(f"m{i}", "int32_t", multiplier), c_array(f"s{i}", "int32_t", shift)]


def bias_of(graph, node, count: int) -> np.ndarray:
    return graph.tensor(node.inputs[2]).data if len(node.inputs) > 2 and node.inputs[2] else np.zeros(count, np.int32)


def conv_call(graph, node, i: int, src: str, dst: str) -> tuple[list[str], str]:
    a = node.attrs
    n, h, w, cin = graph.tensor(node.inputs[0]).shape
    _, oh, ow, cout = graph.tensor(node.outputs[0]).shape
    weights = graph.tensor(node.inputs[1]).data  # [cout, cin / group, kh, kw]
    kh, kw = a.kernel_shape
    depthwise = a.group == cin and weights.shape[1] == 1 and cin > 1
    layout = weights[:, 0].transpose(1, 2, 0) if depthwise else weights.transpose(0, 2, 3, 1)
    data = [c_array(f"w{i}", "int8_t", layout), c_array(f"b{i}", "int32_t", bias_of(graph, node, cout)),
            *quant_arrays(graph, node, i)]
    common = (f"{{{a.strides[1]}, {a.strides[0]}}}, {{{a.pads[1]}, {a.pads[0]}}}, "
              f"{{{a.dilations[1]}, {a.dilations[0]}}}, {{{a.out_min}, {a.out_max}}}")
    dims = (f"id = {{{n}, {h}, {w}, {cin}}}, bd = {{1, 1, 1, {cout}}}, od = {{1, {oh}, {ow}, {cout}}}, "
            f"fd = {{{1 if depthwise else cout}, {kh}, {kw}, {cout if depthwise else cin}}}")
    kind, params = ("depthwise_conv", f"cmsis_nn_dw_conv_params p = {{{-a.x_zero_point}, {a.y_zero_point}, "
                    f"{cout // cin}, {common}}}") if depthwise else \
        ("convolve", f"cmsis_nn_conv_params p = {{{-a.x_zero_point}, {a.y_zero_point}, {common}}}")
    call = f"""    {{
        const {params};
        const cmsis_nn_per_channel_quant_params q = {{(int32_t *)m{i}, (int32_t *)s{i}}};
        const cmsis_nn_dims {dims};
        const cmsis_nn_context c = {{scratch, arm_{kind}_wrapper_s8_get_buffer_size(&p, &id, &fd, &od)}};
        status |= arm_{kind}_wrapper_s8(&c, &p, &q, &id, {src}, &fd, w{i}, &bd, b{i}, &od, {dst});
    }}"""
    return data, call


def pool_call(graph, node, i: int, src: str, dst: str) -> tuple[list[str], str]:
    a = node.attrs
    n, h, w, c = graph.tensor(node.inputs[0]).shape
    _, oh, ow, _ = graph.tensor(node.outputs[0]).shape
    call = f"""    {{
        const cmsis_nn_pool_params p = {{{{{a.strides[1]}, {a.strides[0]}}}, {{{a.pads[1]}, {a.pads[0]}}}, {{{a.out_min}, {a.out_max}}}}};
        const cmsis_nn_dims id = {{{n}, {h}, {w}, {c}}}, fd = {{1, {a.kernel_shape[0]}, {a.kernel_shape[1]}, 1}}, od = {{1, {oh}, {ow}, {c}}};
        const cmsis_nn_context ctx = {{scratch, arm_avgpool_s8_get_buffer_size({ow}, {c})}};
        status |= arm_avgpool_s8(&ctx, &p, &id, {src}, &fd, &od, {dst});
    }}"""
    return [], call


def gemm_call(graph, node, i: int, src: str, dst: str) -> tuple[list[str], str, str]:
    """(data, call, prepare): the prepare code fills the kernel sums TFLM computes in Prepare."""
    a = node.attrs
    depth = graph.tensor(node.inputs[0]).shape[-1]
    weights = graph.tensor(node.inputs[1]).data  # [cout, depth]
    cout = weights.shape[0]
    multiplier = graph.tensor(node.inputs[3]).data
    data = [c_array(f"w{i}", "int8_t", weights), c_array(f"b{i}", "int32_t", bias_of(graph, node, cout)),
            f"static int32_t sums{i}[{cout}];\n", *quant_arrays(graph, node, i)]
    per_tensor = bool(np.all(multiplier == multiplier[0]))
    function, quant = ("arm_fully_connected_s8", f"cmsis_nn_per_tensor_quant_params q = {{m{i}[0], s{i}[0]}}") \
        if per_tensor else ("arm_fully_connected_per_channel_s8",
                            f"cmsis_nn_per_channel_quant_params q = {{(int32_t *)m{i}, (int32_t *)s{i}}}")
    dims = f"id = {{1, 1, 1, {depth}}}, fd = {{{depth}, 1, 1, {cout}}}, bd = {{1, 1, 1, {cout}}}, od = {{1, 1, 1, {cout}}}"
    prepare = f"""    {{
        const cmsis_nn_dims {dims};
        if (arm_fully_connected_s8_get_buffer_size(&fd) > 0) {{
            arm_vector_sum_s8(sums{i}, {depth}, {cout}, w{i}, {-a.x_zero_point}, 0, b{i});
        }}
    }}"""
    call = f"""    {{
        const cmsis_nn_fc_params p = {{{-a.x_zero_point}, 0, {a.y_zero_point}, {{{a.out_min}, {a.out_max}}}}};
        const {quant};
        const cmsis_nn_dims {dims};
        const cmsis_nn_context c = {{sums{i}, arm_fully_connected_s8_get_buffer_size(&fd)}};
        status |= {function}(&c, &p, &q, &id, {src}, &fd, w{i}, &bd, b{i}, &od, {dst});
    }}"""
    return data, call, prepare


def tflite_multiplier(real: float) -> tuple[int, int]:
    """TFLite's QuantizeMultiplier: (q, e) with real ≈ q · 2^(e − 31), q in [2^30, 2^31) (0, 0 for tiny reals)."""
    fraction, exponent = math.frexp(real)
    multiplier = round(fraction * 2**31)
    if multiplier == 2**31:
        multiplier, exponent = multiplier // 2, exponent + 1
    return (0, 0) if exponent < -31 else (multiplier, exponent)


def add_call(graph, node, sources: tuple[str, str], dst: str) -> str:
    """arm_elementwise_add_s8 with TFLite's add scaling: both inputs shifted left by 20, rescaled to
    twice the larger input scale, summed, then rescaled to the output (all multipliers below one)."""
    a, b = (graph.tensor(name) for name in node.inputs[:2])
    if a.shape != b.shape:
        raise NotImplementedError(f"QAdd ({node.name}) broadcasts {a.shape} with {b.shape}; only equal shapes map")
    left_shift, scale_a, scale_b = 20, a.quant.scale[0], b.quant.scale[0]
    scale_y = graph.tensor(node.outputs[0]).quant.scale[0]
    twice_max_input_scale = 2 * max(scale_a, scale_b)
    m_a, e_a = tflite_multiplier(scale_a / twice_max_input_scale)
    m_b, e_b = tflite_multiplier(scale_b / twice_max_input_scale)
    m_y, e_y = tflite_multiplier(twice_max_input_scale / ((1 << left_shift) * scale_y))
    x = node.attrs
    return (f"    status |= arm_elementwise_add_s8({sources[0]}, {sources[1]}, {-x.a_zero_point}, {m_a}, {e_a}, "
            f"{-x.b_zero_point}, {m_b}, {e_b}, {left_shift}, {dst}, {x.y_zero_point}, {m_y}, {e_y}, "
            f"{x.out_min}, {x.out_max}, {int(np.prod(a.shape))});")


def softmax_call(graph, node, src: str, dst: str) -> str:
    """arm_softmax_s8 with TFLite's scaling for beta 1 and 5 integer bits of the input difference."""
    scale = graph.tensor(node.inputs[0]).quant.scale[0]
    multiplier, exponent = tflite_multiplier(min(scale * 2.0**26, 2.0**31 - 1))
    diff_min = -math.floor(31 * 2.0**26 / 2.0**exponent)
    rows, size = int(np.prod(graph.tensor(node.inputs[0]).shape[:-1])), graph.tensor(node.inputs[0]).shape[-1]
    return f"    arm_softmax_s8({src}, {rows}, {size}, {multiplier}, {exponent}, {diff_min}, {dst});"


def cmsis_program(graph, sample: np.ndarray) -> str:
    """C source of the model as CMSIS-NN calls with a bench_mark() after each; raises
    NotImplementedError naming an op this generator does not map."""
    data = [c_array("input0", "int8_t", sample.astype(np.int8), const=False)]
    buffers = {graph.inputs[0]: "input0"}  # tensor name -> C array holding it
    prepare, calls = [], []
    for i, node in enumerate(graph.nodes()):
        if node.op in ("Reshape", "Flatten", "Identity"):
            buffers[node.outputs[0]] = buffers[node.inputs[0]]
            continue
        current, target = buffers[node.inputs[0]], f"act{i}"
        data.append(f"static int8_t {target}[{int(np.prod(graph.tensor(node.outputs[0]).shape))}] "
                    "__attribute__((aligned(16)));\n")
        if node.op == "QConv":
            more, call = conv_call(graph, node, i, current, target)
        elif node.op == "QAveragePool":
            more, call = pool_call(graph, node, i, current, target)
        elif node.op == "QGemm":
            more, call, ready = gemm_call(graph, node, i, current, target)
            prepare.append(ready)
        elif node.op == "QSoftmax":
            more, call = [], softmax_call(graph, node, current, target)
        elif node.op == "QAdd":
            more, call = [], add_call(graph, node, (current, buffers[node.inputs[1]]), target)
        else:
            raise NotImplementedError(f"{node.op} ({node.name}) has no CMSIS-NN mapping here")
        data += more
        calls += [call, "    bench_mark();"]
        buffers[node.outputs[0]] = target
    return ("#include \"arm_nnfunctions.h\"\n#include \"harness.h\"\n\n"
            "void bench_mark(void);\n__attribute__((noinline)) void bench_mark(void) { __asm volatile(\"\"); }\n"
            "static int8_t scratch[32768] __attribute__((aligned(16)));\n" + "".join(data) +
            "\nint main(void)\n{\n    int status = 0;\n" + "\n".join(prepare) + "\n    bench_mark();\n" +
            "\n".join(calls) + f"\n    fw_puts(status == 0 ? \"ok\\n\" : \"error\\n\");\n"
            "    return 0;\n}\n")


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


def measure_cmsis(source: str, folder: Path, work: Path, core: str, opt: str, plugin: Path) -> int:
    """Instructions of all CMSIS-NN calls, linked with the nnc folder's firmware startup (built for `core`)."""
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
    return counts[-1] - counts[0] - 3 * (len(counts) - 1)


# ---- report -------------------------------------------------------------------------------------------------


def versions() -> list[str]:
    gcc = run(["arm-none-eabi-gcc", "--version"]).splitlines()[0]
    qemu = run(["qemu-system-arm", "--version"]).splitlines()[0]
    header = (CMSIS_NN / "Include" / "arm_nnfunctions.h").read_text()
    revision = re.search(r"\$Revision:\s*(\S+)", header)
    date = re.search(r"\$Date:\s*([^\n*]+)", header)
    cmsis = f"CMSIS-NN {revision.group(1)} ({date.group(1).strip()})" if revision and date else "CMSIS-NN n/a"
    return [gcc, qemu, cmsis]


def measure_model(name: str, work: Path, runs: list[tuple[str, str]], plugin: Path) -> list[list]:
    folder = work / name
    sample_file = MODELS_DIR / f"{name}.io.npz"
    result = nnc.compile(MODELS_DIR / f"{name}.onnx", target="c", output_dir=folder, inputs=sample_file)
    try:
        cmsis_source = cmsis_program(result.graph, np.load(sample_file)["input"][:1]) if CMSIS_NN.is_dir() \
            else None
        cmsis_reason = "" if cmsis_source else "../shared/third_party/cmsis-nn absent"
    except NotImplementedError as error:
        cmsis_source, cmsis_reason = None, str(error)
    rows = []
    for core, opt in runs:
        figures = measure_nnc(folder, core, opt, plugin)
        cmsis = measure_cmsis(cmsis_source, folder, work, core, opt, plugin) if cmsis_source else None
        ratio = f"{figures['instructions'] / cmsis:.2f}×" if cmsis else f"n/a ({cmsis_reason})"
        rows.append([name, CORES[core][0], opt, f"{figures['instructions']:,}", f"{cmsis:,}" if cmsis else "n/a",
                     ratio, "PASS" if figures["pass"] else "FAIL", f"{figures['flash']:,}", f"{figures['ram']:,}",
                     f"{figures['stack']:,}" if figures["stack"] is not None else "n/a"])
    return rows


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="", help="comma-separated name prefixes (default: the 5 int8 models)")
    parser.add_argument("--quick", action="store_true", help="KWS on the Cortex-M4 at -O2 only")
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
    prefixes = ["kws"] if args.quick else [p for p in args.models.split(",") if p]
    chosen = [m for m in MODELS if not prefixes or any(m.startswith(p) for p in prefixes)]
    runs = [("m4", "-O2")] if args.quick else [(core, opt) for core in CORES for opt in ("-O2", "-Os")]
    print("Tools: " + "; ".join(versions()) + "\n")
    rows, skipped = [], []
    with tempfile.TemporaryDirectory(prefix="nnc-cortex-m-") as tmp:
        work = Path(tmp)
        plugin = work / "libinsncount.so"
        run(["gcc", "-O2", "-shared", "-fPIC", "-o", str(plugin), str(PLUGIN_SOURCE)])
        for name in chosen:
            if not (MODELS_DIR / f"{name}.onnx").is_file():
                skipped.append(f"{name}: not in {MODELS_DIR}")
                continue
            rows += measure_model(name, work, runs, plugin)
    print(markdown_table(["model", "core", "opt", "nnc instructions", "CMSIS-NN instructions", "nnc / CMSIS-NN",
                          "golden", "flash B", "RAM (arena) B", "stack B"], rows))
    for line in skipped:
        print(f"\nskipped {line}")


if __name__ == "__main__":
    main()
