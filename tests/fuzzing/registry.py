"""The mutator table: every mutator is a small function `(rng, case) -> case`
registered under a family by the `@mutator(family)` decorator.

A mutator draws every random choice from `rng` (so a case is reproducible from
its seed and index alone), records what it did with `case.note(...)`, and may
switch the case's seed, command or target when it needs one (a Conv mutator
picks the "cnn" seed). `must_reject=True` marks a mutation that the README or
issue 10 says nnc must refuse: exit 0 on it is the `should-reject` outcome.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable

from .case import Case

Apply = Callable[[random.Random, Case], Case]


@dataclass(frozen=True)
class Mutator:
    name: str
    family: str
    apply: Apply
    must_reject: bool = False


MUTATORS: dict[str, Mutator] = {}


def mutator(family: str, must_reject: bool = False) -> Callable[[Apply], Apply]:
    """Register the decorated function as mutator `name-with-dashes` of `family`."""
    def register(apply: Apply) -> Apply:
        name = apply.__name__.replace("_", "-")
        assert name not in MUTATORS, f"mutator {name} registered twice"
        MUTATORS[name] = Mutator(name, family, apply, must_reject)
        return apply
    return register
