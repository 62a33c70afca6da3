"""Static memory planning: place buffers with known live ranges in one arena.

A buffer is live from the step that writes it (`first`) to the step that last
reads it (`last`), both inclusive: at step t the op reads its inputs and writes its
outputs, so a buffer ending at t and one starting at t are live together and
never share bytes, unless the second is declared *in place* over the first.

In place (`Buffer.alias`): a buffer may name an earlier buffer whose storage it
takes over. The two then form one group that occupies one region for the union
of their live ranges, sized by the larger. The planner does not judge legality;
the caller (a code generator) declares an alias only where it is legal:
- a view (Reshape, Identity) aliases its input: same bytes, no copy, and the input
  may stay live after the view is made;
- an element-wise op may write its output over an input that dies at that op
  (same element order, output elements no larger than input elements), since
  element i is read before it is overwritten and never read again.

`plan(buffers, alignment)` — greedy by size, as TensorFlow Lite Micro's
GreedyMemoryPlanner:
- merge aliased buffers into groups (size: the largest member; live range: the
  union of the members');
- order groups by size, largest first (ties: earlier first use, then input order);
- place each group at the lowest `alignment`-aligned offset where it overlaps no
  already-placed group whose live range intersects its own: walk those groups in
  offset order and take the first gap that is large enough;
- every member of a group gets the group's offset; the arena size is the highest
  end, rounded up to `alignment`.
Variants of the same scan are tried and the smallest arena wins (ties: the first
tried): three orders (by size, by size × lifetime, by first use), then
RANDOM_ORDERS orders by size with each size scaled by a seeded random factor in
[1, 1.3); each order with three gap choices (the lowest gap at its start, the
lowest gap at its end next to the group above, the smallest gap). The search
stops as soon as a plan meets the lower bound. Everything is deterministic.
Chains of one-input layers, where a small tensor sits between two large ones
(float → int8 → float), are what the jitter and the high fit are for: placing
the large tensors first leaves the small one no room between them.

Measures (`naive_bytes`, `lower_bound_bytes`, both at the plan's alignment):
the naive plan gives every group its own aligned region (the sum of group sizes
rounded up to the alignment); no plan can beat the largest total of those
rounded sizes live at one step, which is the lower bound. So
lower bound <= arena <= naive. `check(buffers, offsets)`
raises if two simultaneously live buffers of different groups overlap (tests),
and `timeline(buffers, offsets)` draws the plan as ASCII, one row per step.
"""

from __future__ import annotations

import random

from .records import record

DEFAULT_ALIGNMENT = 16


@record
class Buffer:
    """`size` bytes live over steps `first`..`last` (inclusive); `alias`: index of
    an earlier-listed buffer whose storage this one reuses in place, or None."""

    size: int
    first: int
    last: int
    name: str = ""
    alias: int | None = None

    def __post_init__(self):
        if self.size < 0 or self.first > self.last:
            raise ValueError(f"buffer {self.name!r}: size {self.size}, live {self.first}..{self.last}")


@record
class _Group:
    index: int
    size: int
    first: int
    last: int

    def overlaps_in_time(self, other: "_Group") -> bool:
        return self.first <= other.last and other.first <= self.last


def groups_of(buffers: list[Buffer]) -> list[int]:
    """For each buffer, the index of the group root it shares storage with."""
    roots: list[int] = []
    for i, b in enumerate(buffers):
        if b.alias is None:
            roots.append(i)
            continue
        if not 0 <= b.alias < i:
            raise ValueError(f"buffer {b.name!r}: alias {b.alias} must name an earlier buffer")
        roots.append(roots[b.alias])
    return roots


def _groups(buffers: list[Buffer]) -> tuple[list[_Group], list[int]]:
    roots = groups_of(buffers)
    members: dict[int, list[Buffer]] = {}
    for b, root in zip(buffers, roots):
        members.setdefault(root, []).append(b)
    groups = [_Group(root, max(b.size for b in bs), min(b.first for b in bs), max(b.last for b in bs))
              for root, bs in members.items()]
    return groups, roots


def _align(value: int, alignment: int) -> int:
    return -(-value // alignment) * alignment


def _place(groups: list[_Group], order: list[_Group], alignment: int, fit: str) -> dict[int, int]:
    """The greedy scan: each group in `order` goes into the lowest gap between
    placed, time-overlapping groups where it fits ("first": at the gap's start;
    "high": at its end, next to the group above), or into the smallest such gap
    ("best"); failing that, above all of them."""
    placed: list[tuple[int, _Group]] = []
    offsets: dict[int, int] = {}
    for g in order:
        offset, gaps = 0, []
        for at, other in sorted((p for p in placed if p[1].overlaps_in_time(g)), key=lambda p: p[0]):
            if offset + g.size <= at:
                gaps.append((at - offset, offset, (at - g.size) // alignment * alignment))
            offset = max(offset, _align(at + other.size, alignment))
        if gaps and fit == "first":
            offset = gaps[0][1]
        elif gaps and fit == "high":
            offset = gaps[0][2]
        elif gaps:
            offset = min(gaps)[1]
        placed.append((offset, g))
        offsets[g.index] = offset
    return offsets


_ORDERS = (
    lambda g: (-g.size, g.first, g.index),
    lambda g: (-g.size * (g.last - g.first + 1), -g.size, g.index),
    lambda g: (g.first, -g.size, g.index),
)
_FITS = ("first", "best", "high")
RANDOM_ORDERS = 200


def _candidate_orders(groups: list[_Group]):
    """The fixed orders, then RANDOM_ORDERS seeded jitters of the size order."""
    for key in _ORDERS:
        yield sorted(groups, key=key)
    rng = random.Random(0)
    for _ in range(RANDOM_ORDERS):
        jitter = {g.index: (-g.size * (1 + 0.3 * rng.random()), g.index) for g in groups}
        yield sorted(groups, key=lambda g: jitter[g.index])


def plan(buffers: list[Buffer], alignment: int = DEFAULT_ALIGNMENT) -> list[int]:
    """Arena offset of each buffer (see the module docstring)."""
    groups, roots = _groups(buffers)
    floor = _lower_bound(groups, alignment)
    best: dict[int, int] = {}
    best_end = None
    for order in _candidate_orders(groups):
        for fit in _FITS:
            offsets = _place(groups, order, alignment, fit)
            end = _end(groups, offsets, alignment)
            if best_end is None or end < best_end:
                best, best_end = offsets, end
        if best_end <= floor:
            break
    return [best[root] for root in roots]


def _end(groups: list[_Group], offsets: dict[int, int], alignment: int) -> int:
    return _align(max((offsets[g.index] + g.size for g in groups), default=0), alignment)


def arena_bytes(buffers: list[Buffer], offsets: list[int], alignment: int = DEFAULT_ALIGNMENT) -> int:
    """Arena size of a plan: the highest buffer end, rounded up to `alignment`."""
    return _align(max((o + b.size for b, o in zip(buffers, offsets)), default=0), alignment)


def naive_bytes(buffers: list[Buffer], alignment: int = DEFAULT_ALIGNMENT) -> int:
    """Every group in its own `alignment`-aligned region: the sum of group sizes,
    each rounded up to `alignment` (no plan needs more)."""
    return sum(_align(g.size, alignment) for g in _groups(buffers)[0])


def lower_bound_bytes(buffers: list[Buffer], alignment: int = DEFAULT_ALIGNMENT) -> int:
    """The largest total of group sizes live at one step, each rounded up to
    `alignment` (no plan does better: groups start at aligned offsets, so each
    but the highest is followed by its padding, and the arena is rounded up)."""
    return _lower_bound(_groups(buffers)[0], alignment)


def _lower_bound(groups: list[_Group], alignment: int) -> int:
    steps = sorted({g.first for g in groups})
    return max((sum(_align(g.size, alignment) for g in groups if g.first <= t <= g.last) for t in steps),
               default=0)


def check(buffers: list[Buffer], offsets: list[int], alignment: int = 1) -> None:
    """ValueError if two buffers of different groups are live at one step and
    overlap in memory, or an offset is negative or not aligned."""
    roots = groups_of(buffers)
    for i, (a, oa) in enumerate(zip(buffers, offsets)):
        if oa < 0 or oa % alignment:
            raise ValueError(f"buffer {a.name or i!r} at offset {oa} (alignment {alignment})")
        for j in range(i + 1, len(buffers)):
            b, ob = buffers[j], offsets[j]
            if roots[i] == roots[j] or a.last < b.first or b.last < a.first or not a.size or not b.size:
                continue
            if oa < ob + b.size and ob < oa + a.size:
                raise ValueError(f"buffers {a.name or i!r} [{oa}, {oa + a.size}) and {b.name or j!r} "
                                 f"[{ob}, {ob + b.size}) are live together and overlap")


_SYMBOLS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def timeline(buffers: list[Buffer], offsets: list[int], width: int = 64) -> str:
    """ASCII picture of a plan: one row per step, the arena left to right in
    `width` columns, each live group drawn with its letter ('.' = free); a legend
    lists each group's letter, offset, size, live range and member names."""
    groups, roots = _groups(buffers)
    total = max(arena_bytes(buffers, offsets, 1), 1)
    offset_of = {root: offsets[roots.index(root)] for root in dict.fromkeys(roots)}
    letter = {g.index: _SYMBOLS[k % len(_SYMBOLS)] for k, g in enumerate(groups)}
    steps = range(min((g.first for g in groups), default=0), max((g.last for g in groups), default=-1) + 1)
    rows = [f"arena {total} bytes, {width} columns of {total / width:.1f} bytes"]
    for t in steps:
        row = ["."] * width
        for g in groups:
            if g.first <= t <= g.last and g.size:
                lo = offset_of[g.index] * width // total
                hi = max(lo + 1, -(-(offset_of[g.index] + g.size) * width // total))
                row[lo:hi] = letter[g.index] * (hi - lo)
        rows.append(f"{t:4d} |{''.join(row)}|")
    for g in groups:
        names = ", ".join(_short(b.name or str(i)) for i, b in enumerate(buffers) if roots[i] == g.index)
        rows.append(f"  {letter[g.index]}: offset {offset_of[g.index]}, {g.size} bytes, "
                    f"steps {g.first}..{g.last}: {names}")
    return "\n".join(rows)


def _short(name: str, limit: int = 60) -> str:
    return name if len(name) <= limit else "..." + name[-(limit - 3):]
