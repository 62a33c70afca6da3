"""The C API firmware expects (issue 13): the caller's arena instead of the
static one (`{p}_invoke_with_arena`, `{P}_ARENA_BYTES`/`_ARENA_ALIGN`,
`-D{P}_EXTERNAL_ARENA`), the int8 entry point of a quantized model with a float
interface, which links no float code, and no absolute host path in the output.
examples/01-tiny-cnn quantized on its samples is the model (a float interface
around an int8 core)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from c_testing import COMPILERS, SANITIZE
from mlperf import MODEL_NAMES, MODELS_DIR

import nnc

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "01-tiny-cnn"
STRICT = ("-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-O1")
ARM = shutil.which("arm-none-eabi-gcc")
QEMU = shutil.which("qemu-system-arm")
# Symbols of float arithmetic or float math in an Arm ELF (soft-float ABI).
FLOAT_SYMBOL = re.compile(r"^(__aeabi_(f|d|[ui]2[fd]|l2[fd]|ul2[fd])\w*|__\w+[sd]f[23]?|(rint|exp|log|sqrt|tanh)f?)$")

CALLER_ARENA_MAIN = r"""
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "tiny_cnn.h"
#include "tiny_cnn_golden.h"

/* Room for two arenas at any alignment of the array itself. */
static uint8_t memory[2 * TINY_CNN_ARENA_BYTES + 2 * TINY_CNN_ARENA_ALIGN];

int main(void)
{
    uint8_t *a = memory + (TINY_CNN_ARENA_ALIGN - (uintptr_t)memory % TINY_CNN_ARENA_ALIGN) % TINY_CNN_ARENA_ALIGN;
    uint8_t *b = a + TINY_CNN_ARENA_BYTES + TINY_CNN_ARENA_ALIGN;
    float probs[TINY_CNN_OUTPUT0_SIZE];
    int8_t q[TINY_CNN_OUTPUT0_SIZE];
    if (tiny_cnn_invoke_with_arena(a + 1, golden_in0[0], probs) != -1 ||
        tiny_cnn_invoke_with_arena(NULL, golden_in0[0], probs) != -1) {
        return 1;
    }
    for (int s = 0; s < TINY_CNN_GOLDEN_SAMPLES; ++s) {
        uint8_t *arena = s % 2 ? b : a;
        memset(arena, 0xA5 + s, TINY_CNN_ARENA_BYTES);
        if (tiny_cnn_invoke_with_arena(arena, golden_in0[s], probs) != 0) {
            return 2;
        }
        for (int i = 0; i < TINY_CNN_OUTPUT0_SIZE; ++i) {
            if (!(fabsf(probs[i] - golden_out0[s][i]) <= 1e-4f)) {
                return 3;
            }
        }
        memset(arena, 0x5A, TINY_CNN_ARENA_BYTES);
        if (tiny_cnn_invoke_int8_with_arena(arena, golden_int8_in0[s], q) != 0 ||
            memcmp(q, golden_int8_out0[s], sizeof q) != 0) {
            return 4;
        }
    }
    puts("PASS");
    return 0;
}
"""

INT8_ONLY_MAIN = r"""
#include <string.h>
#include "tiny_cnn.h"
#include "tiny_cnn_golden.h"
#include "harness.h"

int main(void)
{
    static int8_t q[TINY_CNN_OUTPUT0_SIZE];
    (void)golden_in0;
    (void)golden_out0;
    (void)golden_int8_in0;
    for (int s = 0; s < TINY_CNN_GOLDEN_SAMPLES; ++s) {
        if (ENTRY(golden_int8_in0[s], q) != 0 || memcmp(q, golden_int8_out0[s], sizeof q) != 0) {
            fw_puts("FAIL\n");
            return FW_EXIT_MISMATCH;
        }
    }
    fw_puts("PASS\n");
    return FW_EXIT_PASS;
}
"""


def test_header_exports_the_arena_contract_and_the_int8_scales(tiny_cnn):
    header = (tiny_cnn / "tiny_cnn.h").read_text()
    assert "#define TINY_CNN_ARENA_ALIGN 16" in header and "#define TINY_CNN_INT8_ENTRY 1" in header
    assert "int tiny_cnn_invoke_with_arena(void *arena, const float *in_input, float *out_probs);" in header
    assert "int tiny_cnn_invoke_int8_with_arena(void *arena, const int8_t *in_input, int8_t *out_probs);" in header
    for port in ("INPUT0", "OUTPUT0"):
        assert re.search(rf"#define TINY_CNN_{port}_SCALE \S+f\n#define TINY_CNN_{port}_ZERO_POINT -?\d+\n", header)


@pytest.mark.skipif(not COMPILERS, reason="no host C compiler (gcc or clang)")
def test_caller_arenas_replace_the_static_one(tiny_cnn, tmp_path):
    """With -DTINY_CNN_EXTERNAL_ARENA: no static arena, no static-arena entry
    points; the caller's arenas (any garbage in them, two alternating) give the
    golden outputs from both entry points; a misaligned or NULL arena is -1."""
    main = tmp_path / "main.c"
    main.write_text(CALLER_ARENA_MAIN)
    flags = [*STRICT, "-DTINY_CNN_EXTERNAL_ARENA", f"-I{tiny_cnn}"]
    for cc in COMPILERS:
        obj = tmp_path / f"model_{cc}.o"
        subprocess.run([cc, *flags, "-c", str(tiny_cnn / "tiny_cnn.c"), "-o", str(obj)], check=True)
        symbols = subprocess.run(["nm", str(obj)], capture_output=True, text=True, check=True).stdout
        names = {line.split()[-1]: line.split()[-2] for line in symbols.splitlines() if line.strip()}
        assert not {"static_arena", "tiny_cnn_invoke", "tiny_cnn_invoke_int8"} & set(names)
        assert not {kind for kind in names.values() if kind in "bB"}  # no RAM at all
        exe = tmp_path / f"app_{cc}"
        built = subprocess.run([cc, *flags, *SANITIZE, str(main), str(tiny_cnn / "tiny_cnn.c"), "-o", str(exe),
                                "-lm"], capture_output=True, text=True)
        assert built.returncode == 0, built.stderr
        ran = subprocess.run([str(exe)], capture_output=True, text=True)
        assert ran.returncode == 0 and ran.stdout == "PASS\n", (ran.returncode, ran.stdout, ran.stderr)


def arm_program(folder: Path, main: Path, elf: Path, defines: list[str]) -> set[str]:
    """Link `main` with the model and the firmware runtime for a Cortex-M4
    without FPU (soft-float ABI), unused sections dropped; its symbols."""
    command = [ARM, "-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=soft", *STRICT, "-ffunction-sections",
               "-fdata-sections", *defines, f"-I{folder}", f"-I{folder / 'firmware'}", "-nostartfiles",
               "-Wl,--gc-sections", "-T", str(folder / "firmware" / "mps2-an386.ld"), str(main),
               str(folder / "tiny_cnn.c"), str(folder / "firmware" / "startup.c"),
               str(folder / "firmware" / "semihost.c"), "-o", str(elf), "-lm"]
    built = subprocess.run(command, capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    listing = subprocess.run(["arm-none-eabi-nm", str(elf)], capture_output=True, text=True, check=True).stdout
    return {line.split()[-1] for line in listing.splitlines() if line.strip()}


@pytest.mark.skipif(not ARM, reason="arm-none-eabi-gcc is not installed")
def test_int8_entry_point_links_no_float(tiny_cnn, tmp_path):
    """A soft-float Cortex-M4 program calling only tiny_cnn_invoke_int8 has no
    float routine in it (the float entry point, as a control, has several);
    in qemu it matches the int8 golden vectors."""
    main = tmp_path / "main.c"
    main.write_text(INT8_ONLY_MAIN)
    int8_only = arm_program(tiny_cnn, main, tmp_path / "int8.elf", ["-DENTRY=tiny_cnn_invoke_int8"])
    assert "tiny_cnn_invoke_int8_with_arena" in int8_only
    assert not {s for s in int8_only if FLOAT_SYMBOL.match(s)}
    assert "tiny_cnn_invoke_with_arena" not in int8_only
    control = main.read_text().replace("ENTRY(golden_int8_in0[s], q) != 0", "ENTRY(golden_in0[s], p) != 0")
    control = control.replace("static int8_t q[", "static float p[TINY_CNN_OUTPUT0_SIZE];\n    static int8_t q[")
    (tmp_path / "control.c").write_text(control)
    with_float = arm_program(tiny_cnn, tmp_path / "control.c", tmp_path / "float.elf", ["-DENTRY=tiny_cnn_invoke"])
    assert {s for s in with_float if FLOAT_SYMBOL.match(s)}
    if QEMU:
        ran = subprocess.run([QEMU, "-M", "mps2-an386", "-nographic", "-monitor", "none", "-serial", "none",
                              "-semihosting-config", "enable=on,target=native", "-kernel", str(tmp_path / "int8.elf")],
                             capture_output=True, text=True, timeout=120)
        output = ran.stdout + ran.stderr  # qemu prints semihosting output on stderr
        assert ran.returncode == 0 and output == "PASS\n", output


QDQ = "kws_dscnn_int8_qdq"


@pytest.mark.skipif(not ARM or not shutil.which("make"), reason="arm-none-eabi-gcc or make is not installed")
@pytest.mark.skipif(QDQ not in MODEL_NAMES, reason=f"{QDQ} not found in {MODELS_DIR}")
def test_qdq_model_firmware_links_no_float(tmp_path):
    """A QDQ model's interface is int8 already: its whole golden-test firmware,
    built for a Cortex-M4 without FPU, has no float routine."""
    out = tmp_path / QDQ
    nnc.compile(MODELS_DIR / f"{QDQ}.onnx", target="c", output_dir=out, inputs=MODELS_DIR / f"{QDQ}.io.npz")
    assert "needs no float" in (out / "README.md").read_text()
    built = subprocess.run(["make", "--no-print-directory", "-C", str(out), f"build/m4/{QDQ}.elf",
                            "M4_CPU=-mcpu=cortex-m4 -mthumb -mfloat-abi=soft"], capture_output=True, text=True)
    assert built.returncode == 0, built.stdout + built.stderr
    listing = subprocess.run(["arm-none-eabi-nm", str(out / "build" / "m4" / f"{QDQ}.elf")], capture_output=True,
                             text=True, check=True).stdout
    symbols = {line.split()[-1] for line in listing.splitlines() if line.strip()}
    assert f"{QDQ}_invoke_with_arena" in symbols and not {s for s in symbols if FLOAT_SYMBOL.match(s)}


def test_no_absolute_host_path_in_the_output(tiny_cnn):
    """Neither the output folder, its parents, the home folder nor the folder
    of the model and calibration data (given as absolute paths) appear in a
    generated file. report.json is the compile's log and records the inputs
    as given; it is not part of the sources."""
    forbidden = {str(tiny_cnn.parent), str(Path.home()), str(EXAMPLE), str(EXAMPLE.parents[1])}
    files = [p for p in tiny_cnn.rglob("*") if p.is_file() and p.name != "report.json"]
    assert len(files) >= 15
    for path in files:
        text = path.read_text(encoding="utf-8")
        assert not [f for f in forbidden if f in text], path
    assert 'quantize{calib=sample.npz' in (tiny_cnn / "tiny_cnn.c").read_text()
