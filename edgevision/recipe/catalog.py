"""The bundled recipes: where they are (a source checkout's ``recipes/`` or the wheel's copy)."""

from __future__ import annotations

from pathlib import Path

#: the ``edgevision`` package folder (``recipes/`` sits beside it in a source checkout)
_PACKAGE_DIR = Path(__file__).resolve().parent.parent


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
