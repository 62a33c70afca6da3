"""The transformation passes, one module each: pass `a-b` is defined in a_b.py
and registers with the pass manager when imported (nnc.passmanager.pass_class
imports a pass's module on first use; available_passes imports them all).
Modules that are not passes hold rules a pass applies (canonicalize's) and
the graph edits those rules share (graph_edits.py)."""
