"""The run directory: what ``compress`` writes, and its manifest ``run.json``."""

from __future__ import annotations

import copy
import json
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from edgevision.errors import RunDirError
from edgevision.io import write_json_atomic

MANIFEST = "run.json"
RUN_SCHEMA = "edgevision.run/1"
RECIPE_FILE = "recipe.yaml"



@dataclass
class RunDir:
    """A run directory and its manifest (status, artifacts)."""

    path: Path

    @classmethod
    def prepare(cls, path: Path, *, force: bool = False, resume: bool = False,
                recipe_yaml: str | None = None) -> RunDir:
        """Create ``path`` for a new run; refuse one that holds files unless ``force`` (wipe it)
        or ``resume`` (continue it, only with the same recipe apart from its benchmark
        section)."""
        if force and resume:
            raise RunDirError("--force and --resume contradict each other: choose one")
        if path.exists() and not path.is_dir():
            raise RunDirError(f"--out {str(path)!r} exists and is not a directory")
        if path.is_dir() and any(path.iterdir()):
            if resume:
                run = cls.open(path)
                run.check_same_recipe(recipe_yaml)
                return run
            if not force:
                what = "a run" if (path / MANIFEST).exists() else "files"
                raise RunDirError(f"{path} already holds {what}; use --force to overwrite it or "
                                  "--resume to continue it")
            if not (path / MANIFEST).exists():
                raise RunDirError(f"{path} holds files that are not an edgevision run; refusing "
                                  "to delete them even with --force (choose another --out)")
            shutil.rmtree(path)
        path.mkdir(parents=True, exist_ok=True)
        return cls(path)

    @classmethod
    def open(cls, path: Path) -> RunDir:
        """An existing run directory (must hold ``run.json``)."""
        if not (path / MANIFEST).is_file():
            raise RunDirError(f"{path} is not an edgevision run directory (no {MANIFEST})")
        return cls(path)

    def check_same_recipe(self, recipe_yaml: str | None) -> None:
        """Refuse to resume with a recipe that differs from the run's outside what only decides
        what is measured (the benchmark section, the search's backends after its first)."""
        stored = self.path / RECIPE_FILE
        if recipe_yaml is None or not stored.is_file():
            return
        old = _without_measured_only(yaml.safe_load(stored.read_text(encoding="utf-8")))
        new = _without_measured_only(yaml.safe_load(recipe_yaml))
        changed = sorted(key for key in set(old) | set(new) if old.get(key) != new.get(key))
        if changed:
            raise RunDirError(f"cannot resume {self.path}: the recipe's {', '.join(changed)} "
                              "differ from the run's recipe.yaml (use --force to start over)")

    def manifest(self) -> dict[str, Any]:
        """The stored manifest ({} before the first write)."""
        file = self.path / MANIFEST
        if not file.is_file():
            return {}
        try:
            return dict(json.loads(file.read_text(encoding="utf-8")))
        except (OSError, json.JSONDecodeError) as exc:
            raise RunDirError(f"{file} is unreadable: {exc}") from None

    def write_manifest(self, **fields: Any) -> None:
        """Merge ``fields`` into the manifest and write it atomically."""
        data = {"schema": RUN_SCHEMA, **self.manifest(), **fields,
                "updated": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        write_json_atomic(self.path / MANIFEST, data)

    def artifacts(self) -> list[tuple[str, Path]]:
        """(variant, path) of every artifact the manifest lists."""
        return [(a["variant"], self.path / a["path"])
                for a in self.manifest().get("artifacts", [])]


def _without_measured_only(recipe: dict[str, Any]) -> dict[str, Any]:
    """``recipe`` without what only decides what is measured: the benchmark section and the
    search's backends after the first (the first, the target, also decides what the search
    builds; adding a backend re-times every variant, so figures stay from one session)."""
    trimmed = copy.deepcopy(recipe)
    trimmed.pop("benchmark", None)
    search = trimmed.get("search")
    if isinstance(search, dict) and isinstance(search.get("backends"), list):
        search["backends"] = search["backends"][:1]
    return trimmed
