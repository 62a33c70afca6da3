"""The firmware harness of a C output: the golden test as a bare-metal program
for qemu's Cortex-M boards (`make qemu-m4`, `qemu-m7`, `qemu-m55`).

Files, under `firmware/` of the output folder:

    harness.h        the runtime's API (output, exit, stack measurement)
    startup.c        vector table, reset handler, fault handler, stack painting
    semihost.c       console output and exit through Arm semihosting
    main.c           runs every entry point on the golden vectors, prints
                     PASS or the first mismatch and the stack high-water mark
    <machine>.ld     one linker script per board (BOARDS)

Each board's memory map is qemu's model of it (hw/arm/mps2.c, mps2-tz.c; `info
mtree` in qemu's monitor prints it): code and constants go to a region large
enough for the largest MLPerf Tiny model (VWW: ~260 KiB of text and
constants, ~55 KiB of arena), data, bss and the stack to RAM. The Cortex-M55
runs in the secure state, so its script uses the secure aliases.
"""

from __future__ import annotations

from nnc.records import record


KIB = 1024
MIB = 1024 * KIB
STACK_BYTES = 32 * KIB


@record
class Region:
    name: str
    origin: int
    length: int
    access: str  # linker MEMORY attributes: "rx" or "rwx"

    def line(self) -> str:
        return f"{self.name} ({self.access}) : ORIGIN = 0x{self.origin:08X}, LENGTH = 0x{self.length:X}"


@record
class Board:
    """A qemu machine and where each part of the program goes."""

    target: str  # `make qemu-<target>`
    machine: str  # qemu-system-arm -M
    core: str
    cpu_flags: str  # arm-none-eabi-gcc flags selecting the core, its FPU and ABI
    regions: tuple[Region, ...]
    code: str  # the region of the vector table (at the reset VTOR) and .text
    const: str  # .rodata (the model's weights)
    ram: str  # .data and .bss (the arena)
    stack: str

    @property
    def variable(self) -> str:
        """The Makefile variable prefix of this board (M4, M7, M55)."""
        return self.target.upper()


# AN386/AN500: 4 MiB ZBT SSRAM1 at 0 (code), 4 MiB ZBT SSRAM2&3 at 0x20000000.
_MPS2_REGIONS = (Region("SSRAM1", 0x00000000, 4 * MIB, "rx"), Region("SSRAM23", 0x20000000, 4 * MIB, "rwx"))
# AN547 (SSE-300), secure aliases: 512 KiB ITCM (the reset VTOR is its base),
# 2 MiB FPGA SRAM, 512 KiB DTCM, 4 MiB SRAM 2&3.
_AN547_REGIONS = (Region("ITCM", 0x10000000, 512 * KIB, "rx"), Region("SRAM", 0x11000000, 2 * MIB, "rx"),
                  Region("DTCM", 0x30000000, 512 * KIB, "rwx"), Region("SRAM23", 0x31000000, 4 * MIB, "rwx"))

BOARDS = (
    Board("m4", "mps2-an386", "Cortex-M4", "-mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16",
          _MPS2_REGIONS, code="SSRAM1", const="SSRAM1", ram="SSRAM23", stack="SSRAM23"),
    Board("m7", "mps2-an500", "Cortex-M7", "-mcpu=cortex-m7 -mthumb -mfloat-abi=hard -mfpu=fpv5-d16",
          _MPS2_REGIONS, code="SSRAM1", const="SSRAM1", ram="SSRAM23", stack="SSRAM23"),
    Board("m55", "mps3-an547", "Cortex-M55 (MVE)", "-mcpu=cortex-m55 -mthumb -mfloat-abi=hard",
          _AN547_REGIONS, code="ITCM", const="SRAM", ram="SRAM23", stack="DTCM"),
)
SOURCES = ("firmware/main.c", "firmware/startup.c", "firmware/semihost.c")
QEMU_FLAGS = "-nographic -monitor none -serial none -semihosting-config enable=on,target=native"


def linker_script(board: Board, render, version: str) -> str:
    return render("firmware.ld.j2", board=board, regions=[r.line() for r in board.regions],
                  stack_bytes=f"0x{STACK_BYTES:X}", version=version)


def makefile_context(stem: str) -> dict:
    """What the Makefile's firmware rules need: per board its variables and
    linker script, the sources and their objects, qemu's flags."""
    boards = [dict(target=b.target, var=b.variable, machine=b.machine, core=b.core, cpu_flags=b.cpu_flags,
                   script=f"firmware/{b.machine}.ld",
                   usage=f"{'make qemu-' + b.target:<14}builds the golden test for {b.core} and runs it "
                         f"in qemu's {b.machine}")
              for b in BOARDS]
    objects = [dict(source=source, object=source.rsplit("/", 1)[-1].removesuffix(".c") + ".o")
               for source in (f"{stem}.c", *SOURCES)]
    return dict(boards=boards, objects=objects, qemu_flags=QEMU_FLAGS)


def runtime_files(render, version: str) -> dict[str, str]:
    """The model-independent files: the runtime and the linker scripts."""
    files = {f"firmware/{name}": render(f"firmware_{name}.j2", version=version)
             for name in ("harness.h", "startup.c", "semihost.c")}
    files.update({f"firmware/{b.machine}.ld": linker_script(b, render, version) for b in BOARDS})
    return files
