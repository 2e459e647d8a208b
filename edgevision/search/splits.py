"""The images a search chooses on and those it reports on, kept apart so that the reported
accuracy of the chosen variant is not the figure it was chosen for."""

from __future__ import annotations

from dataclasses import dataclass

from edgevision.data import Dataset, EvalSet
from edgevision.data.splits import seeded_permutation
from edgevision.errors import DataError
from edgevision.recipe.search import SearchSpec


@dataclass(frozen=True)
class Splits:
    """``select``: the choice and the quantize budgets; ``report``: the accuracy reported."""

    select: EvalSet
    report: EvalSet


def search_splits(dataset: Dataset, eval_set: EvalSet, spec: SearchSpec, seed: int) -> Splits:
    """The selection and report images ``spec.select_on`` names."""
    if spec.select_on == "validation":
        if not dataset.splits.val:
            raise DataError("search.select_on: validation needs a validation hold-out "
                            "(data.val_size > 0), or use select_on: eval_half")
        return Splits(dataset.val_set(), eval_set)
    if len(eval_set) < 2:
        raise DataError(f"search.select_on: eval_half needs at least 2 {eval_set.name} images "
                        f"(there are {len(eval_set)})")
    order = [eval_set.indices[i] for i in seeded_permutation(len(eval_set), seed)]
    half = len(order) // 2
    select, report = sorted(order[:half]), sorted(order[half:])
    return Splits(EvalSet(eval_set.source, select, eval_set.preprocess,
                          name=f"{eval_set.name} (selection half)"),
                  EvalSet(eval_set.source, report, eval_set.preprocess,
                          name=f"{eval_set.name} (report half)"))
