"""Which rewrite rules a node can fire: `fires_on(*ops)` declares the node ops a
rule (graph, node) -> bool looks at, and `rules_for(rules)` gives, per op, the
rules in their order that can fire on it (a rule without a declaration, on
every op). `canonicalize.rewrite` calls only those: every rule opens by testing
node.op, and calling all of them on every node of every sweep was most of what
canonicalize and layout cost on a large graph.

A rule in a module of its own can be listed as `Deferred(module, name, *ops)`:
its module is imported when `rules_for` first meets one of `ops` (so a graph
loads only the rules of its ops); `ops` must equal the rule's `fires_on`
(tests/passes/test_canonicalize.py checks)."""

from __future__ import annotations

import importlib
from collections.abc import Callable


def fires_on(*ops: str):
    """Mark a rule as firing only on nodes whose op is one of `ops`."""

    def mark(rule):
        rule.ops = frozenset(ops)
        return rule

    return mark


class Deferred:
    """The rule `name` of nnc.passes.`module`, firing on `ops`, imported on first use."""

    def __init__(self, module: str, name: str, *ops: str):
        self.module, self.name, self.ops = module, name, frozenset(ops)
        self._rule: Callable | None = None

    def resolve(self) -> Callable:
        if self._rule is None:
            self._rule = getattr(importlib.import_module(f"{__package__}.{self.module}"), self.name)
        return self._rule

    def __call__(self, graph, node) -> bool:
        return self.resolve()(graph, node)

    def __repr__(self) -> str:
        return f"Deferred({self.module!r}, {self.name!r})"


def rules_for(rules: tuple) -> Callable[[str], tuple]:
    """op -> the rules of `rules`, in order, that can fire on a node of that op
    (a Deferred rule resolved to its function)."""
    table: dict[str, tuple] = {}

    def lookup(op: str) -> tuple:
        found = table.get(op)
        if found is None:
            found = table[op] = tuple(r.resolve() if isinstance(r, Deferred) else r
                                      for r in rules if op in getattr(r, "ops", (op,)))
        return found

    return lookup
