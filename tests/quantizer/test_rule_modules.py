"""groups.RULE_MODULES names the module whose @rule or @node_rule lowers each
float op; the quantizer imports it on the op's first lookup."""

import importlib
import pkgutil
import subprocess
import sys

from nnc.quantizer.groups import NODE_RULES, RULE_MODULES, RULES

# A fresh process per module, forked from one that has imported the quantizer
# package alone (annotate imports indexing and rules).
REGISTERS_ALONE = """
import importlib, os
from nnc.quantizer.groups import NODE_RULES, RULE_MODULES, RULES
for module, ops in RULE_MODULES.items():
    pid = os.fork()
    if pid == 0:
        importlib.import_module(f"nnc.quantizer.{module}")
        os._exit(any(op not in RULES and op not in NODE_RULES for op in ops.split()))
    if os.waitpid(pid, 0)[1]:
        print(module)
"""


def test_every_rule_is_listed():
    import nnc.quantizer

    for module in pkgutil.iter_modules(nnc.quantizer.__path__):
        importlib.import_module(f"nnc.quantizer.{module.name}")
    assert {*RULES, *NODE_RULES} == {op for ops in RULE_MODULES.values() for op in ops.split()}


def test_importing_the_listed_module_registers_each_rule():
    out = subprocess.run([sys.executable, "-c", REGISTERS_ALONE], capture_output=True, text=True, check=True).stdout
    assert out.split() == []
