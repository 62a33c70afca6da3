"""The mutator table and how a case is drawn from it.

Every mutator is a function `(rng, case) -> case` registered with
`@mutator(family)` (registry.py) in one of the family modules imported below:

    onnx-bytes     mut_onnx.py      byte flips, truncation, insertion, not-a-model
    onnx-proto     mut_proto.py     dims, data_type (incl. 99), raw_data size, names
                                    with invalid UTF-8, no outputs, NaN/Inf weights
    onnx-attr      mut_attrs.py     Conv group/pads/auto_pad/strides, Clip bounds, ...
    external-data  mut_external.py  offset/length/location tricks, symlinks
    blob, nnir     mut_blob.py      `nnc run` on a damaged blob, `nnc inspect` on a damaged .nnir
    samples        mut_samples.py   corrupt, mistyped, non-finite or misshapen samples
    options        mut_options.py   flag values, --hw files, malformed command lines
    output         mut_output.py    -o folders: ., "", .., the model's, symlinks, earlier outputs

Case i of seed s: a generator seeded with "nnc-fuzz/s/i" builds a valid base
case (case.base_case), draws a family by FAMILY_WEIGHTS and one of its
mutators, and now and then a second mutator from SECOND (options and output
mutators that only add), never after a must_reject mutator (the second could
undo what made the input one nnc must refuse).
"""

from __future__ import annotations

import random

from . import mut_attrs, mut_blob, mut_external, mut_onnx, mut_options, mut_output, mut_proto, mut_samples  # noqa: F401
from .case import Case, base_case
from .registry import MUTATORS, Mutator, mutator
from .seeds import Corpus

FAMILY_WEIGHTS = {"baseline": 4, "onnx-bytes": 8, "onnx-proto": 16, "onnx-attr": 10, "external-data": 10,
                  "blob": 8, "nnir": 5, "samples": 14, "options": 16, "output": 12}
SECOND_MUTATION = 0.15
# Mutators that only add to a compile's command line or folders, so they can
# follow another mutation without undoing it.
SECOND = ("opt-bits", "opt-fraction", "opt-sparsity-pattern", "opt-input-shape", "opt-print-ir-after",
          "opt-pipeline", "opt-choice-flags", "opt-compression", "out-here-or-above", "out-user-folder",
          "out-symlink", "out-earlier-clean", "out-earlier-edited", "out-new-nested")


@mutator("baseline")
def no_mutation(rng: random.Random, case: Case) -> Case:
    """The valid base case (the accepted path, and the determinism check's main diet)."""
    case.note("no mutation")
    return case


def by_family() -> dict[str, list[Mutator]]:
    families: dict[str, list[Mutator]] = {name: [] for name in FAMILY_WEIGHTS}
    for item in MUTATORS.values():
        families[item.family].append(item)
    return families


def build_case(corpus: Corpus, seed: int, index: int) -> Case:
    """Case `index` of campaign `seed` (see the module docstring); pure function of its arguments."""
    rng = random.Random(f"nnc-fuzz/{seed}/{index}")
    case = base_case(corpus, seed, index, rng)
    family = rng.choices(list(FAMILY_WEIGHTS), weights=list(FAMILY_WEIGHTS.values()))[0]
    first, second = rng.choice(by_family()[family]), MUTATORS[rng.choice(SECOND)]
    if family == "output" and second.family == "output":
        second = MUTATORS["opt-compression"]  # a second -o would undo the first
    case = _apply(first, rng, case)
    if family != "baseline" and case.command == "compile" and not first.must_reject and \
            rng.random() < SECOND_MUTATION:
        case = _apply(second, rng, case)
    case.family = family
    return case


def _apply(item: Mutator, rng: random.Random, case: Case) -> Case:
    case = item.apply(rng, case)
    case.mutators.append(item.name)
    case.must_reject |= item.must_reject
    return case
