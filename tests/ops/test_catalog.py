"""catalog.py names, for every op and ONNX lowering, the module that registers
it; the registry imports that module on the op's first lookup."""

import importlib
import pkgutil
import subprocess
import sys

from nnc.ops import registry
from nnc.ops.catalog import LOWERING_MODULES, OP_MODULES

from registration import modules_missing_names


def test_the_catalog_lists_what_each_module_registers():
    """Importing every module of nnc.ops registers exactly the catalog's names
    (a new op needs its catalog entry) ..."""
    import nnc.ops

    for module in pkgutil.iter_modules(nnc.ops.__path__):
        importlib.import_module(f"nnc.ops.{module.name}")
    ops = {name for name, cls in registry._OPS.items() if cls.__module__.startswith("nnc.ops.")}
    lowerings = {name for name, fn in registry._LOWERINGS.items() if fn.__module__.startswith("nnc.ops.")}
    assert ops == {name for names in OP_MODULES.values() for name in names.split()}
    assert lowerings == {name for names in LOWERING_MODULES.values() for name in names.split()}


def test_importing_the_listed_module_registers_each_name():
    """... and importing a module alone registers every name listed for it
    (what a lookup relies on)."""
    setup = ("from nnc.ops import registry\n"
             "from nnc.ops.catalog import LOWERING_MODULES, OP_MODULES\n"
             "CHECKS = [(module, names, registered) for table, registered in "
             "((OP_MODULES, registry._OPS), (LOWERING_MODULES, registry._LOWERINGS)) "
             "for module, names in table.items()]")
    assert modules_missing_names("nnc.ops", setup) == []


def test_op_modules_are_imported_on_first_lookup():
    """`import nnc.ops` loads no op module; a lookup loads the one defining
    the op; the full listings load them all."""
    code = ("import sys; from nnc.ops import get_op, lowering, supported_onnx_ops; "
            "loaded = lambda: sorted(m for m in sys.modules if m.startswith('nnc.ops.')); "
            "print(loaded()); get_op('QConv'); lowering('Einsum'); print(loaded()); "
            "supported_onnx_ops(); print(loaded())")
    lines = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.splitlines()
    first, looked_up, listed = (eval(line) for line in lines)  # noqa: S307 - our own printed lists
    assert first == ["nnc.ops.catalog", "nnc.ops.registry"]
    assert {"nnc.ops.qlinear", "nnc.ops.einsum"} <= set(looked_up) and "nnc.ops.recurrent" not in looked_up
    assert {f"nnc.ops.{module}" for module in LOWERING_MODULES} <= set(listed)
