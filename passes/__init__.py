"""The transformation passes, one module each. Importing this package registers
every pass with the pass manager (see nnc.passmanager)."""
