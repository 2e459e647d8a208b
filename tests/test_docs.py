"""README.md and docs/*.md cannot drift: every relative link and every command is checked.

Convention for code blocks:

- A fenced block tagged ``bash`` or ``sh`` holds commands only, one per line (a trailing ``\\``
  continues a line, ``&&`` chains commands, ``#`` starts a comment, ``VAR=value`` prefixes are
  allowed). Every command in it must be one this test knows how to check, so none escapes it:
  ``edgevision`` (any path ending in ``bin/edgevision``), ``scripts/…`` (``./scripts/…``,
  ``python scripts/…``, ``.venv/bin/python scripts/…``), ``.ci/run``, ``pip install``/
  ``pip uninstall``, or an external tool in ``EXTERNAL`` (not checked beyond its name).
- Program output goes in ``text`` blocks; recipes in ``yaml``, code in ``python``. Those are not
  executed or checked. A block without a tag fails, so no command escapes the check unmarked.

An ``edgevision`` command must parse against the real Typer app (subcommand, options, argument
count and types); a recipe argument (``compress``/``train``/``validate`` RECIPE, ``quantize
--recipe``) must load with its ``--set`` overrides, so a wrong recipe key fails (``quantize``
without ``--recipe`` applies them to the run's recipe when ``runs/<name>`` names a bundled one,
else to ``quickstart``). A script must exist and be executable, and each ``--option`` given to
it must appear in its source as a string; ``pip install '.[extra]'`` (or
``'edgevision[extra]'``) must name an extra of pyproject.toml. Links are checked with
markdown-it's tokens: the file must exist and an anchor must match a heading's GitHub slug.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from markdown_it import MarkdownIt
from markdown_it.token import Token

from tests.conftest import REPO

#: fence tags whose blocks are commands
COMMAND_TAGS = {"bash", "sh"}
#: external programs a command block may use; only their name is checked
EXTERNAL = {"trtexec", "git", "sudo", "apt-get"}
#: edgevision subcommands whose RECIPE argument (or --recipe) names a recipe to load
RECIPE_PARAMS = {"compress": "recipe", "train": "recipe", "validate": "recipe",
                 "quantize": "recipe"}


@dataclass(frozen=True)
class Block:
    """A fenced code block: the page it is on, its first line (1-based), tag and text."""

    page: Path
    line: int
    tag: str
    text: str


def pages() -> list[Path]:
    """The pages checked: README.md and every docs/*.md."""
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def tokens(text: str) -> list[Token]:
    """The markdown-it (CommonMark + tables) block tokens of ``text``."""
    return MarkdownIt("commonmark").enable("table").parse(text)


def inline_text(token: Token) -> str:
    """The plain text of an inline token (text and code spans, no markup)."""
    return "".join(child.content for child in token.children or []
                   if child.type in ("text", "code_inline"))


def github_slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    kept = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return kept.replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every heading anchor of a page, with GitHub's ``-1``, ``-2`` suffixes for repeats."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    all_tokens = tokens(text)
    for i, token in enumerate(all_tokens):
        if token.type == "heading_open":
            slug = github_slug(inline_text(all_tokens[i + 1]))
            count = seen.get(slug, 0)
            seen[slug] = count + 1
            found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def links(text: str) -> Iterator[str]:
    """Every link target and image source of a page, in order."""
    for token in tokens(text):
        for child in token.children or []:
            if child.type == "link_open":
                yield str(child.attrGet("href"))
            elif child.type == "image":
                yield str(child.attrGet("src"))


def link_problems(page: Path, text: str) -> list[str]:
    """Relative links of ``page`` whose file or heading does not exist."""
    problems = []
    for target in links(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:, ...
            continue
        path_part, _, anchor = target.partition("#")
        if not path_part:
            if anchor not in anchors(text):
                problems.append(f"{page.name}: no heading #{anchor} in {page.name}")
            continue
        linked = (page.parent / path_part).resolve()
        if not linked.exists():
            problems.append(f"{page.name}: link to missing {target}")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(
                linked.read_text(encoding="utf-8")):
            problems.append(f"{page.name}: no heading #{anchor} in {linked.name}")
    return problems


def blocks(page: Path, text: str) -> list[Block]:
    """The fenced code blocks of a page."""
    return [Block(page, (token.map[0] + 1) if token.map else 0,
                  token.info.strip().split(" ")[0], token.content)
            for token in tokens(text) if token.type == "fence"]


def commands(block: Block) -> list[list[str]]:
    """The commands of a ``bash``/``sh`` block, each as shell words (no env prefixes)."""
    joined = re.sub(r"\\\n", " ", block.text)
    found = []
    for line in joined.splitlines():
        line = line.split(" #")[0].strip()
        if not line or line.startswith("#"):
            continue
        for part in line.split("&&"):
            words = shlex.split(part)
            while words and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]):
                words = words[1:]
            if words:
                found.append(words)
    return found


@cache
def cli_group() -> Any:
    """The click group behind edgevision's Typer app."""
    import typer.main

    from edgevision.cli import app

    return typer.main.get_command(app)


@cache
def extras() -> frozenset[str]:
    """The optional-dependency groups of pyproject.toml."""
    if sys.version_info < (3, 11):
        pytest.skip("reading pyproject.toml needs tomllib (Python 3.11)")
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return frozenset(project["optional-dependencies"])


def check_recipe(name: str, overrides: list[str]) -> str | None:
    """Load a recipe (from the repository root, as commands run) with ``--set`` overrides;
    the error message when it does not load."""
    from edgevision.errors import EdgevisionError
    from edgevision.recipe import load_recipe

    cwd = Path.cwd()
    os.chdir(REPO)
    try:
        load_recipe(name, overrides)
    except EdgevisionError as error:
        return str(error)
    finally:
        os.chdir(cwd)
    return None


def check_edgevision(args: list[str]) -> str | None:
    """Parse ``edgevision ARGS`` with the real CLI (no command runs); load its recipe."""
    command = cli_group()
    names = []
    while hasattr(command, "commands") and args and not args[0].startswith("-"):
        if args[0] not in command.commands:
            return f"no subcommand {' '.join([*names, args[0]])!r}"
        names.append(args[0])
        command, args = command.commands[args[0]], args[1:]
    if hasattr(command, "commands"):
        return f"{' '.join(names) or 'edgevision'} needs a subcommand"
    try:
        ctx = command.make_context(" ".join(names), list(args))
    except Exception as error:  # click's UsageError family, vendored by Typer
        return f"{' '.join(names)}: {error}"
    recipe = ctx.params.get(RECIPE_PARAMS.get(names[0], ""))
    overrides = list(ctx.params.get("set_") or [])
    if names[0] == "quantize" and recipe is None and overrides:
        recipe = run_recipe(ctx.params["run_dir"])
    if isinstance(recipe, str):
        return check_recipe(recipe, overrides)
    return None


def run_recipe(run_dir: Path) -> str:
    """The recipe a run directory was presumably made from: its name when that is a bundled
    recipe (``runs/<recipe name>``), else ``quickstart`` (the keys are the same schema)."""
    return run_dir.name if (REPO / "recipes" / f"{run_dir.name}.yaml").exists() else "quickstart"


def check_script(script: Path, args: list[str]) -> str | None:
    """A script must be executable, and each ``--option`` it is given must appear in it."""
    if not os.access(script, os.X_OK) or not script.is_file():
        return f"{script.relative_to(REPO)} is not an executable file"
    source = script.read_text(encoding="utf-8")
    unknown = [arg.split("=")[0] for arg in args
               if arg.startswith("--") and f'"{arg.split("=")[0]}"' not in source]
    return f"{script.name} has no option {unknown}" if unknown else None


def check_command(words: list[str]) -> str | None:
    """Why one command of a command block is wrong, or None."""
    program, args = words[0], words[1:]
    if program == "edgevision" or program.endswith("bin/edgevision"):
        return check_edgevision(args)
    if re.search(r"(^|/)python3?$", program) and args:
        program, args = args[0], args[1:]
    if program.removeprefix("./").startswith(("scripts/", ".ci/")):
        return check_script(REPO / program, args)
    if program.endswith("pip") and args[:1] in (["install"], ["uninstall"]):
        for word in args[1:]:
            match = re.match(r"^(?:edgevision|\.)\[([^\]]+)\]$", word)
            missing = set(match.group(1).split(",")) - extras() if match else set()
            if missing:
                return f"no extra {sorted(missing)} in pyproject.toml"
        return None
    if program in EXTERNAL:
        return None
    return f"unknown program {program!r} in a command block (use a text block for output)"


def command_problems(page: Path, text: str) -> list[str]:
    """Every command of the page's bash/sh blocks that does not check out."""
    problems = []
    for block in blocks(page, text):
        if not block.tag:
            problems.append(f"{page.name}:{block.line}: a code block without a tag (bash/sh for "
                            "commands, text for output), so nothing in it is checked")
        if block.tag not in COMMAND_TAGS:
            continue
        for words in commands(block):
            problem = check_command(words)
            if problem:
                problems.append(f"{page.name}:{block.line}: {shlex.join(words)}: {problem}")
    return problems


@pytest.mark.parametrize("page", pages(), ids=lambda page: page.name)
def test_relative_links_resolve(page: Path) -> None:
    assert link_problems(page, page.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize("page", pages(), ids=lambda page: page.name)
def test_commands_are_real(page: Path) -> None:
    assert command_problems(page, page.read_text(encoding="utf-8")) == []


def test_every_page_is_linked_from_the_readme_or_docs() -> None:
    linked = {(page.parent / target.partition("#")[0]).resolve()
              for page in pages() for target in links(page.read_text(encoding="utf-8"))}
    assert [page.name for page in pages()[1:] if page not in linked] == []


def test_the_checks_catch_planted_mistakes() -> None:
    page = REPO / "docs" / "planted.md"
    text = ("# Title\n\n[ok](../README.md) [gone](missing.md) [bad anchor](../README.md#nope)"
            " [local](#title) [local bad](#titel)\n\n"
            "```bash\nedgevision compress quickstart --no-such-option\n"
            "edgevision nosuch\n"
            "edgevision compress quickstart --set train.epoch=2\n"
            "./scripts/no-such-script\n"
            "python scripts/bench-int8-formats model.onnx --no-such-flag\n"
            "pip install 'edgevision[nosuch]'\n"
            "pip install '.[compress,nosuch2]'\n"
            "ls runs/\n"
            "edgevision quantize runs/x --set 'stages=[{kind: quantize, nosuch: 1}]'\n"
            "edgevision validate quickstart --set train.epochs=2\n```\n\n"
            "```text\nedgevision nosuch (output is not checked)\n```\n\n"
            "```\nedgevision nosuch\n```\n")
    found = link_problems(page, text)
    assert found == ["planted.md: link to missing missing.md",
                     "planted.md: no heading #nope in README.md",
                     "planted.md: no heading #titel in planted.md"]
    found = command_problems(page, text)
    assert len(found) == 10, found
    for problem, expected in zip(found, ["No such option: --no-such-option",
                                         "no subcommand 'nosuch'", "unknown key 'train.epoch'",
                                         "not an executable file",
                                         "bench-int8-formats has no option ['--no-such-flag']",
                                         "no extra ['nosuch']", "no extra ['nosuch2']",
                                         "unknown program 'ls'", "unknown key 'stages.0.nosuch'",
                                         "a code block without a tag"],
                                  strict=True):
        assert expected in problem
