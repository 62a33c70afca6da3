"""kernels.KERNEL_MODULES names the module whose @kernel builds each op;
`build` imports it on the op's first use."""

import importlib
import pkgutil
import subprocess
import sys

from nnc.backends.azsim.kernels import KERNEL_MODULES, KERNELS


def test_every_kernel_is_listed():
    import nnc.backends.azsim

    for module in pkgutil.iter_modules(nnc.backends.azsim.__path__):
        importlib.import_module(f"nnc.backends.azsim.{module.name}")
    assert set(KERNELS) == {op for ops in KERNEL_MODULES.values() for op in ops.split()}


# A fresh process per module (forked from one that has imported no kernel module).
REGISTERS_ALONE = """
import importlib, os, sys
from nnc.backends.azsim.kernels import KERNEL_MODULES, KERNELS
assert not KERNELS
for module, ops in KERNEL_MODULES.items():
    pid = os.fork()
    if pid == 0:
        importlib.import_module(f"nnc.backends.azsim.{module}")
        os._exit(any(op not in KERNELS for op in ops.split()))
    if os.waitpid(pid, 0)[1]:
        print(module)
"""


def test_importing_the_listed_module_registers_its_kernels():
    out = subprocess.run([sys.executable, "-c", REGISTERS_ALONE], capture_output=True, text=True, check=True).stdout
    assert out.split() == []


def test_the_recurrent_kernel_decodes_the_ir_directions():
    """lowering encodes `direction` as its index in the kernel's table."""
    from nnc.backends.azsim.recurrent import DIRECTIONS
    from nnc.ops.recurrent import DIRECTIONS as IR_DIRECTIONS

    assert DIRECTIONS == IR_DIRECTIONS
