"""Recipe loading: schema validation, clear errors, overrides, bundled recipes."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from edgevision.errors import RecipeError
from edgevision.recipe import load_recipe, parse_override, recipe_to_yaml
from edgevision.recipe.catalog import bundled_recipes
from edgevision.recipe.load import validate_recipe

MINIMAL = {"name": "r", "model": {"name": "cifar_resnet20", "num_classes": 10},
           "data": {"root": "somewhere"}}


def write(tmp_path: Path, data: object, name: str = "recipe.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


@pytest.mark.parametrize("name", sorted(bundled_recipes()))
def test_every_bundled_recipe_validates(name: str) -> None:
    recipe = load_recipe(bundled_recipes()[name])
    assert recipe.name == name
    assert recipe.model.name


def test_bundled_recipes_include_quickstart_and_resnet56() -> None:
    assert {"quickstart", "resnet56-cifar10"} <= set(bundled_recipes())


def test_bundled_recipe_by_name() -> None:
    assert load_recipe("quickstart").name == "quickstart"


def test_unknown_key_names_key_file_choices_and_suggestion(tmp_path: Path) -> None:
    data = {**MINIMAL, "data": {"rooot": "x"}}
    path = write(tmp_path, data)
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    message = str(info.value)
    assert str(path) in message
    assert "'data.rooot'" in message
    assert "did you mean 'root'" in message
    assert "valid keys in data:" in message and "image_size" in message


def test_unknown_top_level_key(tmp_path: Path) -> None:
    path = write(tmp_path, {**MINIMAL, "stagse": []})
    with pytest.raises(RecipeError, match=r"unknown key 'stagse'; did you mean 'stages'"):
        load_recipe(path)


def test_missing_required_key(tmp_path: Path) -> None:
    path = write(tmp_path, {"name": "r", "model": {"name": "x"}})
    with pytest.raises(RecipeError, match="missing required key 'data'"):
        load_recipe(path)


def test_wrong_value_type_is_one_line(tmp_path: Path) -> None:
    path = write(tmp_path, {**MINIMAL, "train": {"epochs": "many"}})
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    assert "train.epochs" in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_recipe_file_suggests_bundled(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="not found; did you mean 'quickstart'"):
        load_recipe("quikstart")


def test_invalid_yaml(tmp_path: Path) -> None:
    path = write(tmp_path, "name: [unclosed\n")
    with pytest.raises(RecipeError, match="invalid YAML"):
        load_recipe(path)


def test_recipe_must_be_mapping(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="must be a YAML mapping"):
        load_recipe(write(tmp_path, "- a\n- b\n"))


def test_set_overrides_parse_yaml_values(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL)
    recipe = load_recipe(path, ["train.epochs=3", "benchmark.batch_sizes=[1, 32]",
                                "train.lr=0.5", "data.augment=none"])
    assert recipe.train.epochs == 3
    assert recipe.benchmark.batch_sizes == [1, 32]
    assert recipe.train.lr == 0.5
    assert recipe.data.augment == "none"


def test_set_override_unknown_key_fails_like_the_file(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="unknown key 'train.epoch'; did you mean 'epochs'"):
        load_recipe(write(tmp_path, MINIMAL), ["train.epoch=3"])


@pytest.mark.parametrize("text", ["noequals", "=3"])
def test_bad_set_syntax(text: str) -> None:
    with pytest.raises(RecipeError, match="key.path=value"):
        parse_override(text)


def test_relative_paths_resolve_against_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                            ) -> None:
    monkeypatch.chdir(tmp_path)
    recipe = load_recipe(write(tmp_path, MINIMAL))
    assert recipe.data.root == tmp_path / "somewhere"


def test_resolved_recipe_round_trips(tmp_path: Path) -> None:
    recipe = load_recipe(write(tmp_path, MINIMAL))
    again = load_recipe(write(tmp_path, recipe_to_yaml(recipe), "resolved.yaml"))
    assert again == recipe


def test_stage_without_a_handler_is_a_clear_error_before_any_work(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from edgevision.pipeline import compress
    from edgevision.stages import registry

    monkeypatch.delitem(registry._STAGES, "quantize")
    recipe = validate_recipe({**MINIMAL, "stages": [{"kind": "quantize"}]})  # the recipe is valid
    with pytest.raises(RecipeError, match=r"stage 'quantize' is not implemented in this version "
                                          r"of edgevision \(implemented stages: prune, distill\)"):
        compress(recipe, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_quantize_stage_validates_strictly() -> None:
    recipe = validate_recipe({**MINIMAL, "stages": [
        {"kind": "quantize", "target": "tensorrt", "calibration": {"method": "entropy"}}]})
    assert recipe.stages[0].target == "tensorrt"
    with pytest.raises(RecipeError, match="target"):
        validate_recipe({**MINIMAL, "stages": [{"kind": "quantize", "target": "gpu"}]})
    with pytest.raises(RecipeError, match=r": quantize stage: stages\.0: qat\.when: "
                       "if_ptq_misses needs accuracy_budget"):
        validate_recipe({**MINIMAL, "stages": [{"kind": "quantize",
                                                "qat": {"when": "if_ptq_misses"}}]})
    with pytest.raises(RecipeError, match="distinct"):
        validate_recipe({**MINIMAL, "stages": [{"kind": "quantize",
                                                "precisions": ["int8", "int8"]}]})


def test_unknown_stage_kind_suggests() -> None:
    with pytest.raises(RecipeError, match="unknown stage kind 'quantise'; did you mean 'quantize'"):
        validate_recipe({**MINIMAL, "stages": [{"kind": "quantise"}]})


def test_stage_entry_needs_kind() -> None:
    with pytest.raises(RecipeError, match="'kind' key"):
        validate_recipe({**MINIMAL, "stages": [{"ratio": 0.5}]})


def test_unknown_backend_suggests() -> None:
    with pytest.raises(RecipeError,
                       match="unknown backend 'onnxruntim'; did you mean 'onnxruntime'"):
        validate_recipe({**MINIMAL, "benchmark": {"backends": ["onnxruntim"]}})


def test_mean_std_must_match_channels() -> None:
    with pytest.raises(RecipeError, match="data.mean has 2 values"):
        validate_recipe({**MINIMAL, "data": {"root": "x", "mean": [0.5, 0.5]}})


@pytest.mark.parametrize("batch_sizes", [[], [0], [1, -4]])
def test_bad_batch_sizes(batch_sizes: list[int]) -> None:
    with pytest.raises(RecipeError, match="batch_sizes"):
        validate_recipe({**MINIMAL, "benchmark": {"batch_sizes": batch_sizes}})


def test_opset_below_17_rejected() -> None:
    with pytest.raises(RecipeError, match="export.opset"):
        validate_recipe({**MINIMAL, "export": {"opset": 13}})
