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
        if dataset.spec.eval_split == dataset.spec.train_split:
            raise DataError("search.select_on: validation needs an evaluation split apart from "
                            "the training split; use select_on: eval_half")
        if not dataset.splits.val:
            raise DataError("search.select_on: validation needs a validation hold-out "
                            "(data.val_size > 0), or use select_on: eval_half")
        return Splits(dataset.val_set(), eval_set)
    if len(eval_set) < 2:
        raise DataError(f"search.select_on: eval_half needs at least 2 {eval_set.name} images "
                        f"(there are {len(eval_set)})")
    order = seeded_permutation(len(eval_set), seed)
    half = len(order) // 2
    return Splits(eval_set.part(sorted(order[:half]), f"{eval_set.name} (selection half)"),
                  eval_set.part(sorted(order[half:]), f"{eval_set.name} (report half)"))
