"""The recipe reference (docs/recipes.md), generated from the pydantic schema.

Every section of a recipe is a strict pydantic model; this walks them from ``Recipe`` down
(the stage kinds of ``recipe.stages``, as ``stages[kind]``, and the search's ``SearchSpec``
included) and writes one table per model: key, type, default, description.
``scripts/recipe-reference`` writes the file; a test fails when the committed file differs from
what this returns.
"""

from __future__ import annotations

import json
import re
import types
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from edgevision.config import StageConfig
from edgevision.recipe.schema import Recipe
from edgevision.recipe.search import SearchSpec
from edgevision.recipe.stages import STAGE_CONFIGS

HEADER = """# Recipe reference

Generated from the recipe schema by `./scripts/recipe-reference`; do not edit by hand (a test
fails when this file and the schema differ). A recipe is a YAML mapping validated strictly:
an unknown key is an error that names the valid ones. Any key can be overridden on the command
line with `--set key.path=value` (the value is parsed as YAML). The bundled recipes in
[`recipes/`](../recipes) are worked examples; `edgevision validate RECIPE` prints a recipe with
every default filled in.
"""

#: fields holding a stage's settings as a plain mapping (validated as that stage's config)
TEMPLATES: dict[tuple[type[BaseModel], str], str] = {
    (SearchSpec, "prune"): "prune", (SearchSpec, "distill"): "distill",
    (SearchSpec, "quantize"): "quantize"}


@dataclass
class _Section:
    """One model's table, under the key path that first reaches it."""

    path: str
    model: type[BaseModel]
    also: list[str] = field(default_factory=list)


def recipe_reference() -> str:
    """The whole reference as Markdown."""
    sections = _sections()
    anchors = {s.model: _slug(_title(s.path)) for s in sections}
    parts = [HEADER]
    for section in sections:
        parts.append(_section_markdown(section, anchors))
    return "\n".join(parts)


def _sections() -> list[_Section]:
    """Every model reachable from ``Recipe`` (stage kinds after ``stages``), in reading order,
    each once; later paths to the same model are listed under ``also``."""
    found: dict[type[BaseModel], _Section] = {}
    order: list[_Section] = []

    def visit(model: type[BaseModel], path: str) -> None:
        if model in found:
            found[model].also.append(path)
            return
        found[model] = section = _Section(path, model)
        order.append(section)
        for name, info in model.model_fields.items():
            child_path = f"{path}.{name}" if path else name
            for child in _models_in(info.annotation):
                visit(child, child_path)
            if model is Recipe and name == "stages":
                for kind, config in STAGE_CONFIGS.items():
                    visit(config, f"stages[{kind}]")

    visit(Recipe, "")
    return order


def _section_markdown(section: _Section, anchors: dict[type[BaseModel], str]) -> str:
    model = section.model
    lines = [f"## {_title(section.path)}", "", _docstring(model)]
    if section.also:
        lines += ["", "Also at: " + ", ".join(f"`{p}`" for p in section.also) + "."]
    lines += ["", "| key | type | default | description |", "|---|---|---|---|"]
    for name, info in model.model_fields.items():
        lines.append(f"| `{name}` | {_type_text(model, name, info, anchors)} | "
                     f"{_default_text(info)} | "
                     f"{_cell(info.description or '')} |")
    return "\n".join(lines) + "\n"


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models an annotation holds (``X``, ``X | None``, ``list[X]``)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [] if annotation is StageConfig else [annotation]
    return [m for arg in get_args(annotation) for m in _models_in(arg)]


def _type_text(model: type[BaseModel], name: str, info: FieldInfo,
               anchors: dict[type[BaseModel], str]) -> str:
    """The type cell: the type, its bounds and pattern, then ``or null`` where it is optional."""
    args = get_args(info.annotation)
    nullable = (get_origin(info.annotation) in (Union, types.UnionType)
                and type(None) in args)
    annotation = (Union[tuple(a for a in args if a is not type(None))]  # noqa: UP007
                  if nullable else info.annotation)
    text = _annotation_text(annotation, anchors)
    if (model, name) in TEMPLATES:
        kind = TEMPLATES[(model, name)]
        text = (f"mapping: a [`stages[{kind}]`](#{_slug(_title(f'stages[{kind}]'))}) stage "
                "without `kind`")
    limits = [t for t in map(_limit_text, info.metadata) if t]
    if limits:
        text += " " + ", ".join(limits)
    return _cell(f"{text}, or null" if nullable else text)


def _annotation_text(annotation: Any, anchors: dict[type[BaseModel], str]) -> str:
    origin = get_origin(annotation)
    args = get_args(annotation)
    if origin is Literal:
        return " | ".join(f"`{a}`" for a in args)
    if origin in (Union, types.UnionType):
        return " or ".join("null" if a is type(None) else _annotation_text(a, anchors)
                           for a in args)
    if origin is Annotated:
        return _annotation_text(args[0], anchors)
    if origin is list:
        return f"list of {_annotation_text(args[0], anchors)}"
    if origin is tuple and Ellipsis not in args and len(set(args)) == 1:
        return f"list of {len(args)} {_annotation_text(args[0], anchors)}"
    if origin is dict:
        return (f"mapping of {_annotation_text(args[0], anchors)} to "
                f"{_annotation_text(args[1], anchors)}")
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        if annotation in anchors:
            return f"[{annotation.__name__}](#{anchors[annotation]})"
        return "mapping with `kind` (see the stage kinds below)"
    if annotation is Path:
        return "path"
    names = {str: "string", int: "int", float: "float", bool: "bool", Any: "any"}
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _limit_text(metadata: Any) -> str:
    """A field constraint as text: ``≥ 1``, ``< 100``, ``matching `^...$```."""
    symbols = ((annotated_types.Ge, "ge", "≥"), (annotated_types.Gt, "gt", ">"),
               (annotated_types.Le, "le", "≤"), (annotated_types.Lt, "lt", "<"))
    for kind, attribute, symbol in symbols:
        if isinstance(metadata, kind):
            return f"{symbol} {getattr(metadata, attribute)}"
    pattern = getattr(metadata, "pattern", None)
    return f"matching `{pattern}`" if pattern else ""


def _default_text(info: FieldInfo) -> str:
    if info.default is PydanticUndefined and info.default_factory is None:
        return "required"
    value = (info.default if info.default_factory is None
             else info.default_factory())  # type: ignore[call-arg]
    if isinstance(value, BaseModel):
        changed = value.model_dump(mode="json", exclude_defaults=True)
        return _cell(f"defaults, with `{_json(changed)}`" if changed else "defaults")
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, Path):
        value = str(value)
    return _cell(f"`{_json(value)}`")


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


def _docstring(model: type[BaseModel]) -> str:
    return " ".join((model.__doc__ or "").split())


def _cell(text: str) -> str:
    """Text fit for a table cell: pipes escaped, and ``<`` outside code spans not read as the
    start of an HTML tag."""
    parts = text.replace("|", "\\|").replace("\n", " ").split("`")
    return "`".join(part if i % 2 else part.replace("<", "&lt;") for i, part in enumerate(parts))


def _title(path: str) -> str:
    return f"`{path}`" if path else "Top level"


def _slug(title: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")


def main() -> None:
    """Write the reference to the path given, or print it."""
    import sys

    text = recipe_reference()
    if len(sys.argv) > 1:
        Path(sys.argv[1]).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
