"""Where ``compress --resume`` continues: after the last completed step, or earlier when the
recipe was corrected in a later section (quantize stages, engine), never with a different
model, data or training.

A run's steps, in order: ``model`` (train, prune, distill, save and export), ``artifacts``
(quantize), ``engines``, ``benchmark``. The manifest's ``completed`` lists those done.
"""

from __future__ import annotations

import copy
from typing import Any, Literal

import yaml

from edgevision.errors import RunDirError
from edgevision.recipe import Recipe, recipe_to_yaml
from edgevision.rundir import RECIPE_FILE, RunDir
from edgevision.stages import get_stage

Step = Literal["model", "artifacts", "engines", "benchmark"]
STEPS: tuple[Step, ...] = ("model", "artifacts", "engines", "benchmark")


def resume_step(run: RunDir, recipe: Recipe) -> Step:
    """The first step a resumed run must run: the first one not completed, or the first whose
    recipe section changed; refuses a change to what the completed model depends on."""
    stored = run.path / RECIPE_FILE
    if not stored.is_file():
        return "model"
    old = _parts(yaml.safe_load(stored.read_text(encoding="utf-8")), recipe)
    new = _parts(yaml.safe_load(recipe_to_yaml(recipe)), recipe)
    changed = [step for step in STEPS if old[step] != new[step]]
    if "model" in changed:
        keys = sorted(k for k in set(old["model"]) | set(new["model"])
                      if old["model"].get(k) != new["model"].get(k))
        raise RunDirError(f"cannot resume {run.path}: the recipe's {', '.join(keys)} differ "
                          f"from the run's {RECIPE_FILE} (use --force to start over)")
    if recipe.search is not None:
        return "model"  # a search is one step; it re-uses its finished levels itself
    completed = set(run.manifest().get("completed", []))
    pending = [step for step in STEPS if step not in completed]
    return min([*changed, *pending[:1], "benchmark"], key=STEPS.index)


def _parts(recipe: dict[str, Any], parsed: Recipe) -> dict[Step, Any]:
    """The recipe split by the step that reads each part (``model`` holds every key that the
    trained and exported model depends on; a search run is one ``model`` step)."""
    rest = copy.deepcopy(recipe)
    parts: dict[Step, Any] = {"benchmark": rest.pop("benchmark", None)}
    search = rest.get("search")
    if isinstance(search, dict) and isinstance(search.get("backends"), list):
        search["backends"] = search["backends"][:1]  # the others only add measurements
    if parsed.search is not None:
        parts["model"], parts["artifacts"], parts["engines"] = rest, None, None
        return parts
    engine = rest.pop("engine", None)
    batches = (parts["benchmark"] or {}).get("batch_sizes") or [0]
    # the engines are tuned for the largest batch benchmarked
    parts["engines"] = None if engine is None else {**engine, "benchmark_max": max(batches)}
    stages = rest.pop("stages", None) or []
    rest["stages"] = [s for s in stages if _phase(s) != "artifact"]
    parts["artifacts"] = [s for s in stages if _phase(s) == "artifact"]
    parts["model"] = rest
    return parts


def _phase(stage: Any) -> str:
    kind = stage.get("kind") if isinstance(stage, dict) else None
    return get_stage(kind).phase if isinstance(kind, str) else "model"
