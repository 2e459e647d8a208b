"""One-line messages for pydantic validation errors (shared by recipes and stage configs)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError

from edgevision.registry import suggest


def format_validation_error(exc: ValidationError, root: type[BaseModel], prefix: str = "") -> str:
    """The most useful error as one line: unknown keys first (with the valid keys and close
    names), then missing keys, then bad values. ``prefix`` is prepended to key paths."""
    errors = exc.errors()
    error = next((e for e in errors if e["type"] == "extra_forbidden"),
                 next((e for e in errors if e["type"] == "missing"), errors[0]))
    loc = [str(p) for p in error["loc"]]
    if prefix == "--":  # command-line options are spelled with hyphens
        loc = [part.replace("_", "-") for part in loc]
    dotted = prefix + ".".join(loc)
    more = f" (and {len(errors) - 1} more errors)" if len(errors) > 1 else ""
    if error["type"] == "extra_forbidden":
        parent = model_at(root, loc[:-1])
        if parent is None:
            return f"unknown key {dotted!r}{more}"
        valid = list(parent.model_fields)
        section = prefix + ".".join(loc[:-1]) if loc[:-1] else (prefix.rstrip(".") or
                                                                "the top level")
        return (f"unknown key {dotted!r}{suggest(loc[-1], valid)} "
                f"(valid keys in {section}: {', '.join(valid)}){more}")
    if error["type"] == "missing":
        return f"missing required key {dotted!r}{more}"
    message = error["msg"].removeprefix("Value error, ")
    value: Any = error.get("input")
    shown = f" (got {value!r})" if not isinstance(value, dict | list) and loc else ""
    return f"{dotted.rstrip('.') or 'recipe'}: {message}{shown}{more}"


def model_at(model: type[BaseModel], loc: list[str]) -> type[BaseModel] | None:
    """The pydantic model class reached by following field names in ``loc`` (indices skipped)."""
    current: type[BaseModel] = model
    for part in loc:
        if part.isdigit():
            continue
        field = current.model_fields.get(part)
        if field is None:
            return None
        annotation = field.annotation
        candidates = [annotation, *getattr(annotation, "__args__", ())]
        found = next((c for c in candidates
                      if isinstance(c, type) and issubclass(c, BaseModel)), None)
        if found is None:
            return None
        current = found
    return current
