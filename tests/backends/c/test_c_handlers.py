"""lowering.HANDLER_MODULES names the module whose handlers lower each IR op;
`lower` imports only the modules of the ops a graph has."""

import importlib
import pkgutil
import subprocess
import sys

from nnc.backends.c import lowering

from registration import modules_missing_names


def test_the_handler_table_lists_what_each_module_registers():
    import nnc.backends.c

    for module in pkgutil.iter_modules(nnc.backends.c.__path__):
        importlib.import_module(f"nnc.backends.c.{module.name}")
    assert set(lowering.HANDLERS) == {op for ops in lowering.HANDLER_MODULES.values() for op in ops.split()}


def test_importing_the_listed_module_registers_its_handlers():
    setup = ("from nnc.backends.c.lowering import HANDLER_MODULES, HANDLERS\n"
             "CHECKS = [(module, ops, HANDLERS) for module, ops in HANDLER_MODULES.items()]")
    assert modules_missing_names("nnc.backends.c", setup) == []


def test_lowering_a_graph_imports_the_handlers_of_its_ops_only():
    code = ("import sys, numpy as np; from nnc.ir import Graph, Tensor, Node; "
            "from nnc.ops import get_op; from nnc.backends.c.lowering import lower; "
            "g = Graph('g'); g.add_tensor(Tensor('x', 'f32', (1, 4))); g.add_tensor(Tensor('y', 'f32', (1, 4))); "
            "g.inputs.append('x'); g.outputs.append('y'); g.add_node(Node('r', 'Relu', ['x'], ['y'], "
            "get_op('Relu').Attrs())); lower(g, 'g'); "
            "print(sorted(m for m in sys.modules if m.startswith('nnc.backends.c.ops')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert eval(out) == ["nnc.backends.c.ops_float"]  # noqa: S307 - our own printed list
