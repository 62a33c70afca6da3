"""The check shared by nnc's lazily imported tables (the op catalog, the C
handlers, the az-sim kernels): each module a table lists, imported alone in a
fresh process, registers every name the table lists for it, which is what a
lookup that imports only that module relies on."""

from __future__ import annotations

import subprocess
import sys

# A process per module, forked from one that has imported none of them.
_SCRIPT = """
import importlib, os
{setup}
for module, names, registered in CHECKS:
    pid = os.fork()
    if pid == 0:
        importlib.import_module(f"{package}.{{module}}")
        os._exit(any(name not in registered for name in names.split()))
    if os.waitpid(pid, 0)[1]:
        print(module)
"""


def modules_missing_names(package: str, setup: str) -> list[str]:
    """The modules of `package` that do not register their names; `setup` is
    Python that defines CHECKS, a list of (module, space-separated names, the
    registry they must appear in), without importing any of the modules."""
    script = _SCRIPT.format(setup=setup, package=package)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.split()
