"""kernels.KERNEL_MODULES names the module whose @kernel builds each op;
`build` imports it on the op's first use."""

import importlib
import pkgutil

from nnc.backends.azsim.kernels import KERNEL_MODULES, KERNELS

from registration import modules_missing_names


def test_every_kernel_is_listed():
    import nnc.backends.azsim

    for module in pkgutil.iter_modules(nnc.backends.azsim.__path__):
        importlib.import_module(f"nnc.backends.azsim.{module.name}")
    assert set(KERNELS) == {op for ops in KERNEL_MODULES.values() for op in ops.split()}


def test_importing_the_listed_module_registers_its_kernels():
    setup = ("from nnc.backends.azsim.kernels import KERNEL_MODULES, KERNELS\n"
             "assert not KERNELS\n"
             "CHECKS = [(module, ops, KERNELS) for module, ops in KERNEL_MODULES.items()]")
    assert modules_missing_names("nnc.backends.azsim", setup) == []


def test_the_recurrent_kernel_decodes_the_ir_directions():
    """lowering encodes `direction` as its index in the kernel's table."""
    from nnc.backends.azsim.recurrent import DIRECTIONS
    from nnc.ops.recurrent import DIRECTIONS as IR_DIRECTIONS

    assert DIRECTIONS == IR_DIRECTIONS
