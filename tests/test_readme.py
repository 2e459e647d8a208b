"""The README's two commands are the front door: check they are real and wired to CI."""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

from tests.conftest import REPO, require

README = (REPO / "README.md").read_text(encoding="utf-8")
COMMANDS = re.findall(r"^\./scripts/setup && .+$", README, flags=re.MULTILINE)


def test_readme_has_exactly_two_front_door_commands() -> None:
    assert len(COMMANDS) == 2, COMMANDS
    assert "edgevision compress" in COMMANDS[0]
    assert COMMANDS[1] == "./scripts/setup && ./scripts/test"


def test_ci_runs_the_readme_test_command() -> None:
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert COMMANDS[1] in ci.splitlines()


def test_scripts_exist_and_are_executable() -> None:
    for script in ("scripts/setup", "scripts/test", ".ci/run"):
        assert os.access(REPO / script, os.X_OK), script


def test_main_command_runs_a_bundled_recipe_on_real_data() -> None:
    from edgevision.recipe import load_recipe

    words = shlex.split(COMMANDS[0].split("&&", 1)[1])
    assert words[:2] == [".venv/bin/edgevision", "compress"]
    cwd = Path.cwd()
    os.chdir(REPO)  # recipe paths are relative to the directory the command runs in
    try:
        recipe = load_recipe(words[2])
    finally:
        os.chdir(cwd)
    require(recipe.data.root, "the quickstart's dataset")
    require(recipe.model.checkpoint or REPO, "the quickstart's checkpoint")
    assert recipe.train.epochs >= 1 and recipe.data.dataset == "imagefolder"


def test_calibration_list_matches_what_the_code_draws(cifar_archive: Path) -> None:
    from edgevision.data import Dataset
    from edgevision.recipe import load_recipe

    recipe = load_recipe("quickstart")
    manifest = Dataset.from_spec(recipe.data.model_copy(update={"root": cifar_archive}),
                                 recipe.seed).calibration_manifest()
    listed = [line for line in (REPO / "calibration" / "cifar10-jpeg-train-512.txt")
              .read_text().splitlines() if line and not line.startswith("#")]
    assert listed == manifest["files"]
    assert len(listed) == recipe.data.calibration_size
