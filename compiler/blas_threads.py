"""BLAS on one thread, each library's count restored afterwards. Used where the
matrix products are small and many: az-sim's inferences (at most a few million
MACs, where a BLAS thread pool costs more than it gains: 3× slower for ic on a
busy 2-core machine) and the interpreter's runs that collect second-order
statistics (compiler/hessian.py: one summation order on every machine, so the
compression built on the sums is reproducible). The BLAS libraries'
threadpoolctl controllers are found once and called directly (threadpoolctl's
`limit` context costs tens of µs per entry, a large part of a small model's
inference); without threadpoolctl, BLAS keeps its own count. When the console
script set OPENBLAS_NUM_THREADS=1 before numpy loaded its OpenBLAS
(`started_on_one_thread`), that library runs one thread from the start and no
controller is looked for (threadpoolctl's import and search: 5 ms of a 0.2 s
compile).
"""

from __future__ import annotations

import contextlib

_BLAS: list = []  # [the controllers], filled on first use
_STARTED_SINGLE: list = []  # [True] once started_on_one_thread was called


@contextlib.contextmanager
def one_blas_thread():
    """A context running BLAS on one thread (blas_single_thread), each library's
    thread count restored on exit."""
    changed = blas_single_thread()
    try:
        yield
    finally:
        blas_restore(changed)


def blas_single_thread() -> list:
    """Sets every BLAS library running more than one thread to one; returns
    [(library, its former count)] for blas_restore."""
    if not _BLAS:
        _BLAS.append(blas_libraries())
    changed = [(library, count) for library in _BLAS[0]
               if isinstance(count := library.get_num_threads(), int) and count > 1]
    for library, _ in changed:
        library.set_num_threads(1)
    return changed


def blas_restore(changed: list) -> None:
    """Gives each library of blas_single_thread's list its former count back."""
    for library, count in changed:
        library.set_num_threads(count)


def started_on_one_thread() -> None:
    """Record that OPENBLAS_NUM_THREADS=1 was set before any BLAS library was
    loaded (the console script's doing)."""
    _STARTED_SINGLE.append(True)


def blas_libraries() -> list:
    """threadpoolctl's controllers of the loaded BLAS libraries ([] without
    threadpoolctl, or when numpy's OpenBLAS started on one thread)."""
    if _STARTED_SINGLE and _numpy_blas_is_openblas():
        return []
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return []
    return ThreadpoolController().select(user_api="blas").lib_controllers


def _numpy_blas_is_openblas() -> bool:
    """Whether numpy was built with OpenBLAS (numpy 1.26+ records it; False when unknown)."""
    import numpy

    try:
        return "openblas" in numpy.__config__.CONFIG["Build Dependencies"]["blas"]["name"].lower()
    except (AttributeError, KeyError, TypeError):
        return False
