"""Listings: the models the registry can build and the bundled recipes."""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def recipes_dir() -> Path:
    """The bundled recipes: ``recipes/`` of a source checkout, or the copy inside a wheel."""
    for candidate in (_PACKAGE_DIR.parent / "recipes", _PACKAGE_DIR / "_recipes"):
        if candidate.is_dir():
            return candidate
    return _PACKAGE_DIR.parent / "recipes"


def bundled_recipes() -> dict[str, Path]:
    """Bundled recipe names (file stems) mapped to their paths."""
    folder = recipes_dir()
    if not folder.is_dir():
        return {}
    return {p.stem: p for p in sorted(folder.glob("*.yaml"))}


def recipe_summaries() -> list[tuple[str, Path, str]]:
    """(name, path, first line of the description) of every bundled recipe."""
    from edgevision.recipe.load import read_yaml

    rows = []
    for name, path in bundled_recipes().items():
        lines = str(read_yaml(path).get("description", "")).strip().splitlines()
        rows.append((name, path, lines[0] if lines else ""))
    return rows
