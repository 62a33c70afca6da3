"""Which rewrite rules a node can fire: `fires_on(*ops)` declares the node ops a
rule (graph, node) -> bool looks at, and `rules_for(rules)` gives, per op, the
rules in their order that can fire on it (a rule without a declaration, on
every op). `canonicalize.rewrite` calls only those: every rule opens by testing
node.op, and calling all of them on every node of every sweep was most of what
canonicalize and layout cost on a large graph."""

from __future__ import annotations

from collections.abc import Callable


def fires_on(*ops: str):
    """Mark a rule as firing only on nodes whose op is one of `ops`."""

    def mark(rule):
        rule.ops = frozenset(ops)
        return rule

    return mark


def rules_for(rules: tuple) -> Callable[[str], tuple]:
    """op -> the rules of `rules`, in order, that can fire on a node of that op."""
    table: dict[str, tuple] = {}

    def lookup(op: str) -> tuple:
        found = table.get(op)
        if found is None:
            found = table[op] = tuple(r for r in rules if op in getattr(r, "ops", (op,)))
        return found

    return lookup
