"""Load a recipe file, apply ``--set key.path=value`` overrides, validate once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from edgevision.errors import EdgevisionError, RecipeError
from edgevision.recipe.catalog import bundled_recipes
from edgevision.recipe.schema import Recipe
from edgevision.registry import suggest
from edgevision.validation import format_validation_error

PATH_FIELDS = (("model", "checkpoint"), ("data", "root"))


def load_recipe(source: str | Path, overrides: list[str] | None = None) -> Recipe:
    """Read, override and validate a recipe.

    ``source`` is a YAML path or the name of a bundled recipe (``quickstart``). Relative paths
    inside the recipe are resolved against the current directory. Raises ``RecipeError`` with a
    one-line message naming the file, the key and the valid choices.
    """
    path = resolve_recipe_path(source)
    raw = read_yaml(path)
    for override in overrides or []:
        key, value = parse_override(override)
        apply_overrides(raw, {key: value})
    return validate_recipe(raw, where=str(path))


def resolve_recipe_path(source: str | Path) -> Path:
    """Return the recipe file for a path or a bundled recipe name."""
    path = Path(source)
    if path.is_file():
        return path
    bundled = bundled_recipes()
    if str(source) in bundled:
        return bundled[str(source)]
    if path.exists():
        raise RecipeError(f"recipe {str(path)!r} is not a file")
    raise RecipeError(f"recipe {str(path)!r} not found{suggest(str(source), sorted(bundled))} "
                      f"(bundled recipes: {', '.join(sorted(bundled)) or 'none'})")


def read_yaml(path: Path) -> dict[str, Any]:
    """Parse a YAML mapping, turning I/O and syntax errors into ``RecipeError``."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RecipeError(f"cannot read recipe {str(path)!r}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise RecipeError(f"{path}:{where} invalid YAML: {problem}") from None
    if not isinstance(data, dict):
        raise RecipeError(f"{path}: a recipe must be a YAML mapping with keys like "
                          f"{', '.join(Recipe.model_fields)}")
    return data


def recipe_summaries() -> list[tuple[str, Path, str]]:
    """(name, path, first line of the description) of every bundled recipe."""
    rows = []
    for name, path in bundled_recipes().items():
        lines = str(read_yaml(path).get("description", "")).strip().splitlines()
        rows.append((name, path, lines[0] if lines else ""))
    return rows


def parse_override(text: str) -> tuple[str, Any]:
    """Split ``key.path=value``; the value is parsed as YAML (``1``, ``true``, ``[1, 64]``)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise RecipeError(f"--set expects key.path=value, got {text!r}")
    try:
        parsed = yaml.safe_load(value) if value.strip() else None
    except yaml.YAMLError:
        parsed = value
    return key.strip(), parsed


def apply_overrides(raw: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Set dotted keys in ``raw`` in place (``stages.0.ratio`` indexes lists)."""
    for dotted, value in overrides.items():
        node: Any = raw
        parts = dotted.split(".")
        for depth, part in enumerate(parts[:-1]):
            node = _child(node, part, create=True, where=".".join(parts[: depth + 1]))
        last = parts[-1]
        if isinstance(node, list):
            node[_index(node, last, dotted)] = value
        elif isinstance(node, dict):
            node[last] = value
        else:
            raise RecipeError(f"--set {dotted}: {'.'.join(parts[:-1])} is not a section")
    return raw


def _child(node: Any, part: str, *, create: bool, where: str) -> Any:
    if isinstance(node, list):
        return node[_index(node, part, where)]
    if not isinstance(node, dict):
        raise RecipeError(f"--set {where}: parent is not a section")
    if part not in node or node[part] is None:
        if not create:
            raise RecipeError(f"--set {where}: no such key")
        node[part] = {}
    return node[part]


def _index(node: list[Any], part: str, where: str) -> int:
    if not part.isdigit() or int(part) >= len(node):
        raise RecipeError(f"--set {where}: {part!r} is not an index of a {len(node)}-item list")
    return int(part)


def validate_recipe(raw: dict[str, Any], where: str = "<recipe>") -> Recipe:
    """Validate ``raw`` against the schema; errors name the file, the key and the choices."""
    raw = _resolve_paths(raw)
    try:
        return Recipe.model_validate(raw)
    except ValidationError as exc:
        raise RecipeError(f"{where}: {format_validation_error(exc, Recipe)}") from None
    except EdgevisionError as exc:
        raise RecipeError(f"{where}: {exc}") from None


def _resolve_paths(raw: dict[str, Any]) -> dict[str, Any]:
    """Make relative paths absolute (relative to the current directory)."""
    for section, key in PATH_FIELDS:
        block = raw.get(section)
        if isinstance(block, dict) and isinstance(block.get(key), str):
            block[key] = str(Path(block[key]).expanduser().resolve())
    return raw


def recipe_to_yaml(recipe: Recipe) -> str:
    """The fully resolved recipe as YAML (what the run directory stores)."""
    data = recipe.model_dump(mode="json")
    return yaml.safe_dump(data, sort_keys=False)
