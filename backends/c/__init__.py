"""Target `c`: C99 sources with a static arena for microcontrollers (see target.py)."""

from . import target  # noqa: F401  (registers the target)
