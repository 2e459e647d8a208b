"""The search on real data, CPU, a tiny space: ResNet-20 unpruned and pruned to half its MACs
(one short distillation) × FP32/INT8, measured on ONNX Runtime and on OpenVINO's own runtime
on 300 CIFAR-10 JPEG images."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from edgevision.pipeline import compress
from edgevision.recipe import load_recipe
from edgevision.recipe.search import SearchSpec
from edgevision.search.report import Row, SearchReport
from tests.conftest import tiny_recipe_dict

pytestmark = pytest.mark.slow

SEARCH = {"prune_levels": [0.0, 0.5], "prune": {"importance": "l2", "round_to": 8},
          "distill": {"train": {"epochs": 1, "lr": 0.01, "max_steps_per_epoch": 4}},
          "precisions": ["fp32", "int8", "int8-mixed"], "quantize": {"check_images": 100},
          "batch": 16, "accuracy_budget": 1.0, "rounds": 2, "iterations": 3, "warmup": 1,
          "backends": ["onnxruntime", "openvino"]}


@pytest.fixture(scope="module")
def search_run(tmp_path_factory: pytest.TempPathFactory, cifar_archive: Path,
               resnet20_checkpoint: Path) -> tuple[Path, Path, dict[str, Any]]:
    folder = tmp_path_factory.mktemp("search")
    raw = tiny_recipe_dict(cifar_archive, resnet20_checkpoint, search=SEARCH)
    recipe_path = folder / "search.yaml"
    recipe_path.write_text(yaml.safe_dump(raw))
    result = compress(load_recipe(recipe_path), out=folder / "run")
    assert result.report is not None
    return result.run_dir, recipe_path, result.report


def rows(report: dict[str, Any], backend: str | None = "onnxruntime") -> list[Row]:
    """The report's rows on ``backend`` (None: all)."""
    return [row for row in SearchReport.from_json(report).rows
            if backend is None or row.backend == backend]


def test_every_candidate_is_measured(search_run: tuple[Path, Path, dict[str, Any]]) -> None:
    _, _, report = search_run
    names = {row.name for row in rows(report)}
    # int8-mixed: not at base (PTQ within budget there) nor at pruned50 (4 distillation steps
    # leave it far outside the budget: pruning alone spent it)
    assert {"base/fp32", "base/int8", "pruned50/fp32", "pruned50/int8"} <= names
    assert "pruned50/int8-mixed" not in names
    for row in rows(report):
        assert row.error is None and row.top1 is not None and row.p50_ms is not None
        assert row.select_top1 is not None and row.select_drop is not None
        assert row.b1_p50_ms is not None and row.spread_pct is not None
    by_name = {row.name: row for row in rows(report)}
    assert by_name["base/fp32"].drop == 0.0 and by_name["base/fp32"].speedup == 1.0
    assert by_name["base/fp32"].select_drop == 0.0
    # chosen on the 200 validation images held out of the training split; reported on the
    # 300 evaluation images
    settings = report["settings"]
    assert (settings["select_split"], settings["select_images"]) == ("validation", 200)
    assert (settings["eval_split"], settings["eval_images"]) == ("test", 300)
    macs = by_name["pruned50/fp32"].macs
    assert macs is not None and macs <= 0.5 * (by_name["base/fp32"].macs or 0)


def test_search_picks_fastest_within_budget(search_run: tuple[Path, Path, dict[str, Any]]
                                            ) -> None:
    run_dir, _, report = search_run
    measured = [r for r in rows(report, None) if r.error is None]
    eligible = [r for r in measured if r.select_drop is not None
                and r.select_drop <= SEARCH["accuracy_budget"]]
    assert eligible  # base/fp32 always is
    # a candidate slower than its level's FP32 one on its backend is never chosen
    fastest = min((r for r in eligible if not r.slower_than_fp32), key=lambda r: r.p50_ms or 0.0)
    choice = report["choice"]
    assert choice["met"] and choice["chosen"] == fastest.name
    assert (run_dir / "deploy.onnx").read_bytes() == (run_dir / str(fastest.artifact)).read_bytes()
    assert all(r.within_budget == (r in eligible) for r in measured)
    assert all((r.slower_than_fp32 is None) == (r.precision == "fp32") for r in measured)
    assert choice["message"].startswith(f"chosen {fastest.name}")


def test_unmet_budget_reports_best_reached(search_run: tuple[Path, Path, dict[str, Any]]
                                           ) -> None:
    from edgevision.search.select import choose

    _, _, report = search_run
    measured = rows(report)
    spec = SearchSpec.model_validate({**SEARCH, "accuracy_budget": None,
                                      "latency_budget_ms": 1e-6})
    choice = choose(measured, spec)
    fastest = min(measured, key=lambda r: r.p50_ms or 0.0)
    assert not choice.met and choice.chosen is None and choice.best_reached == fastest.name
    assert "no candidate within 1e-06 ms" in choice.message and fastest.name in choice.message


def test_report_validates_against_schema(search_run: tuple[Path, Path, dict[str, Any]]) -> None:
    from pydantic import ValidationError

    run_dir, _, _ = search_run
    data = json.loads((run_dir / "report.json").read_text())
    assert data["schema"] == "edgevision.search/1"
    SearchReport.from_json(data)
    broken = {**data, "rows": [{**data["rows"][0], "p50": 1.0}]}
    with pytest.raises(ValidationError):
        SearchReport.from_json(broken)
    header = (run_dir / "report.csv").read_text().splitlines()[0]
    assert header.startswith("name,level,precision")


def test_plot_and_summary_are_written(search_run: tuple[Path, Path, dict[str, Any]]) -> None:
    run_dir, _, report = search_run
    png = (run_dir / "pareto.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    summary = (run_dir / "summary.md").read_text()
    assert "![latency vs accuracy](pareto.png)" in summary
    assert all(row.name in summary for row in rows(report))
    assert report["choice"]["chosen"] in summary


def test_pareto_front_is_non_dominated(search_run: tuple[Path, Path, dict[str, Any]]) -> None:
    from edgevision.search.plot import pareto_front

    _, _, report = search_run
    points = [(r.p50_ms or 0.0, r.select_top1 or 0.0, r.name) for r in rows(report)]
    front = pareto_front(points)
    assert front and front[0][0] == min(p[0] for p in points)
    for latency, top1, _ in points:
        dominated = any(l2 <= latency and t2 >= top1 and (l2, t2) != (latency, top1)
                        for l2, t2, _ in points)
        assert dominated or any(p[:2] == (latency, top1) for p in front)


def test_resume_skips_finished_candidates(search_run: tuple[Path, Path, dict[str, Any]]) -> None:
    run_dir, recipe_path, _ = search_run
    cached = [run_dir / "search" / "base" / "level.json",
              run_dir / "search" / "pruned50" / "level.json",
              run_dir / "search" / "measurements.json"]
    stamps = [path.stat().st_mtime_ns for path in cached]
    result = compress(load_recipe(recipe_path), out=run_dir, resume=True)
    assert [path.stat().st_mtime_ns for path in cached] == stamps  # nothing rebuilt or re-timed
    assert result.report is not None and result.report["choice"]["met"]


def test_resume_with_other_backends_builds_nothing(
        search_run: tuple[Path, Path, dict[str, Any]], tmp_path: Path) -> None:
    from edgevision.errors import RunDirError

    run_dir, recipe_path, _ = search_run
    raw = yaml.safe_load(recipe_path.read_text())
    levels = [run_dir / "search" / level / "level.json" for level in ("base", "pruned50")]
    stamps = [path.stat().st_mtime_ns for path in levels]
    only_target = tmp_path / "target.yaml"
    only_target.write_text(yaml.safe_dump({**raw, "search": {**raw["search"],
                                                             "backends": ["onnxruntime"]}}))
    result = compress(load_recipe(only_target), out=run_dir, resume=True)
    assert [path.stat().st_mtime_ns for path in levels] == stamps  # no level rebuilt
    assert result.report is not None
    assert {row["backend"] for row in result.report["rows"]} == {"onnxruntime"}
    changed = tmp_path / "budget.yaml"
    changed.write_text(yaml.safe_dump({**raw, "search": {**raw["search"], "batch": 8}}))
    with pytest.raises(RunDirError, match="recipe's search differ"):
        compress(load_recipe(changed), out=run_dir, resume=True)
    other_target = tmp_path / "other-target.yaml"  # the target decides what is built
    other_target.write_text(yaml.safe_dump({**raw, "search": {
        **raw["search"], "backends": ["openvino", "onnxruntime"]}}))
    with pytest.raises(RunDirError, match="recipe's search differ"):
        compress(load_recipe(other_target), out=run_dir, resume=True)
    compress(load_recipe(recipe_path), out=run_dir, resume=True)  # back as the module had it


def test_quantization_gets_the_budget_pruning_left_on_the_selection_images(
        search_run: tuple[Path, Path, dict[str, Any]], tmp_path: Path) -> None:
    from edgevision.data import Dataset
    from edgevision.search.build import _quantize_budget
    from edgevision.search.splits import search_splits

    run_dir, recipe_path, report = search_run
    by_name = {row.name: row for row in rows(report)}
    base, pruned = by_name["base/fp32"].select_top1, by_name["pruned50/fp32"].select_top1
    assert base is not None and pruned is not None
    recipe = load_recipe(recipe_path)
    dataset = Dataset.from_spec(recipe.data, recipe.seed)
    spec = SearchSpec.model_validate({**SEARCH, "accuracy_budget": base - pruned + 10.0})
    splits = search_splits(dataset, dataset.eval_set(), spec, recipe.seed)
    # measured afresh (a run directory holding only the two FP32 models) and cached
    for level in ("base", "pruned50"):
        (tmp_path / "search" / level).mkdir(parents=True)
        shutil.copy(run_dir / "search" / level / "model.onnx", tmp_path / "search" / level)
    state = SimpleNamespace(run=SimpleNamespace(path=tmp_path))
    left = _quantize_budget(state, spec, 0.5, splits)  # type: ignore[arg-type]
    assert left == pytest.approx(10.0)
    cached = json.loads((tmp_path / "search" / "measurements.json").read_text())
    assert {name: cached[name]["select_top1"] for name in cached} == {"base/fp32": base,
                                                                      "pruned50/fp32": pruned}


def test_the_choice_follows_the_selection_images_not_the_reported_ones(
        search_run: tuple[Path, Path, dict[str, Any]]) -> None:
    """Two candidates whose selection and report figures disagree: within the budget on the
    selection images but not on the report images, and the other way round. The choice follows
    the selection images."""
    from edgevision.search.select import choose

    _, _, report = search_run
    fast, slow = sorted(rows(report), key=lambda r: r.p50_ms or 0.0)[:2]
    fast = fast.model_copy(update={"select_drop": 0.3, "drop": 0.9})
    slow = slow.model_copy(update={"select_drop": 0.8, "drop": 0.1})
    spec = SearchSpec.model_validate({**SEARCH, "accuracy_budget": 0.5})
    assert choose([slow, fast], spec).chosen == fast.name
    swapped = [fast.model_copy(update={"select_drop": 0.9, "drop": 0.3}),
               slow.model_copy(update={"select_drop": 0.1, "drop": 0.8})]
    assert choose(swapped, spec).chosen == slow.name


def test_selection_on_half_the_evaluation_split(cifar_archive: Path) -> None:
    from edgevision.data import Dataset, DataSpec
    from edgevision.errors import DataError
    from edgevision.search.splits import search_splits

    dataset = Dataset.from_spec(DataSpec(root=cifar_archive, eval_limit=301, val_size=0))
    eval_set = dataset.eval_set()
    halves = search_splits(dataset, eval_set, SearchSpec(select_on="eval_half"), 0)
    select, report = set(halves.select.indices), set(halves.report.indices)
    assert len(select) == 150 and len(report) == 151 and not select & report
    assert select | report == set(eval_set.indices)
    assert halves.select.name == "test (selection half)"
    again = search_splits(dataset, eval_set, SearchSpec(select_on="eval_half"), 0)
    other = search_splits(dataset, eval_set, SearchSpec(select_on="eval_half"), 1)
    assert again.select.indices == halves.select.indices  # seeded: the same halves
    assert other.select.indices != halves.select.indices
    with pytest.raises(DataError, match="needs a validation hold-out"):
        search_splits(dataset, eval_set, SearchSpec(select_on="validation"), 0)


def test_unavailable_backend_is_recorded_not_raised(
        search_run: tuple[Path, Path, dict[str, Any]], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A backend not installed here keeps its rows, each with the reason instead of figures
    (a copy of the run resumed with openvino made unavailable)."""
    from edgevision.backends import Availability
    from edgevision.backends.openvino import OpenVinoBackend

    run_dir, recipe_path, _ = search_run
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    monkeypatch.setattr(OpenVinoBackend, "availability", classmethod(
        lambda cls: Availability(False, "no module named 'openvino'; pip install "
                                        "'edgevision[openvino]'")))
    report = compress(load_recipe(recipe_path), out=copy, resume=True).report
    assert report is not None
    openvino = rows(report, "openvino")
    assert {r.name for r in openvino} == {f"{r.name}@openvino" for r in rows(report)}
    for row in openvino:  # every variant kept, with the reason instead of figures
        assert row.error and "pip install 'edgevision[openvino]'" in row.error
        assert row.p50_ms is None and row.within_budget is None
    assert all(row.error is None for row in rows(report))  # the target's rows measured
    assert "error: backend 'openvino' is unavailable" in (copy / "summary.md").read_text()
    cached = json.loads((copy / "search" / "measurements.json").read_text())
    assert not any(entry["error"] for entry in cached.values())  # errors are not cached
    assert {name for name in cached if name.endswith("@openvino")} == {r.name for r in openvino}


def test_openvino_variants_are_measured_through_their_own_sessions(
        search_run: tuple[Path, Path, dict[str, Any]]) -> None:
    run_dir, _, report = search_run
    cached = json.loads((run_dir / "search" / "measurements.json").read_text())
    for name, entry in cached.items():  # each figure from its own backend's session
        on_openvino = name.endswith("@openvino")
        assert entry["backend"] == ("openvino" if on_openvino else "onnxruntime")
        assert entry["runtime"].startswith("openvino " if on_openvino else "onnxruntime ")
    on_cpu = {row.name: row for row in rows(report)}
    for row in rows(report, "openvino"):
        name, backend = row.name.split("@")
        assert backend == "openvino" and row.error is None
        assert row.p50_ms is not None and row.b1_p50_ms is not None and row.top1 is not None
        assert row.artifact == on_cpu[name].artifact  # the same ONNX file, another runtime
        assert abs(row.top1 - (on_cpu[name].top1 or 0.0)) <= 1.0  # 300 images: ≤ 3 differ
        assert row.speedup is not None  # against base/fp32 on the target, onnxruntime


def test_figures_from_another_backend_or_install_are_measured_again(
        search_run: tuple[Path, Path, dict[str, Any]], tmp_path: Path) -> None:
    from edgevision.data import Dataset
    from edgevision.search.build import Candidate
    from edgevision.search.measure import measure_candidates
    from edgevision.search.splits import search_splits

    run_dir, recipe_path, _ = search_run
    cached = json.loads((run_dir / "search" / "measurements.json").read_text())
    entry = cached["base/fp32"]
    assert entry["runtime"].startswith("onnxruntime ") and entry["top1"] is not None
    foreign = tmp_path / "m.json"
    foreign.write_text(json.dumps({"base/fp32": {**entry, "runtime": "onnxruntime 0.0 (x)",
                                                 "top1": -1.0}}))
    spec = SearchSpec.model_validate({**SEARCH, "backends": ["onnxruntime"]})
    candidate = Candidate("base/fp32", 0.0, "fp32", "search/base/model.onnx")
    recipe = load_recipe(recipe_path)
    dataset = Dataset.from_spec(recipe.data, recipe.seed)
    splits = search_splits(dataset, dataset.eval_set(), spec, recipe.seed)
    measured = measure_candidates([candidate], spec, splits, run_dir, foreign)
    assert measured["base/fp32"].top1 == entry["top1"]  # measured again, not the -1 cached
    assert measured["base/fp32"].runtime == entry["runtime"]
    # a figure measured on other selection images (another val_size, say) is measured again
    other_images = tmp_path / "other-images.json"
    other_images.write_text(json.dumps({"base/fp32": {**entry, "select_images": 7,
                                                      "select_top1": -1.0}}))
    measured = measure_candidates([candidate], spec, splits, run_dir, other_images)
    assert measured["base/fp32"].select_top1 == entry["select_top1"]


def test_search_recipe_errors() -> None:
    from edgevision.errors import RecipeError
    from edgevision.recipe.load import validate_recipe

    base = {"name": "s", "model": {"name": "resnet18"}, "data": {"root": os.devnull}}
    with pytest.raises(RecipeError, match="data.val_size is 0"):
        validate_recipe({**base, "data": {"root": os.devnull, "val_size": 0}, "search": {}})
    validate_recipe({**base, "data": {"root": os.devnull, "val_size": 0},
                     "search": {"select_on": "eval_half"}})
    with pytest.raises(RecipeError, match="leave `stages` empty"):
        validate_recipe({**base, "search": {}, "stages": [{"kind": "quantize"}]})
    with pytest.raises(RecipeError, match="must include 0"):
        validate_recipe({**base, "search": {"prune_levels": [0.3]}})
    with pytest.raises(RecipeError, match="did you mean 'importance'"):
        validate_recipe({**base, "search": {"prune": {"importanc": "l2"}}})
    with pytest.raises(RecipeError, match=r"renamed search.backends, a list .*\[onnxruntime\]"):
        validate_recipe({**base, "search": {"backend": "onnxruntime"}})
    with pytest.raises(RecipeError, match="does not run ONNX graphs"):
        validate_recipe({**base, "search": {"backends": ["onnxruntime", "pytorch"]}})
    with pytest.raises(RecipeError, match="did you mean 'openvino'"):
        validate_recipe({**base, "search": {"backends": ["onnxruntime", "openvno"]}})
    with pytest.raises(RecipeError, match="'onnxruntime-openvino' was removed: use 'openvino'"):
        validate_recipe({**base, "search": {"backends": ["onnxruntime-openvino"]}})
    assert validate_recipe({**base, "search": {"latency_budget_ms": 2}}).search.accuracy_budget \
        is None


def test_a_batch_1_search_chooses_and_plots(tmp_path: Path, cifar_archive: Path,
                                            resnet20_checkpoint: Path) -> None:
    """Batch 1, a camera frame at a time, as the search's batch: timed, chosen, plotted."""
    search = {**SEARCH, "prune_levels": [0.0], "precisions": ["fp32", "int8"], "batch": 1,
              "backends": ["onnxruntime"], "rounds": 2}
    path = tmp_path / "b1.yaml"
    path.write_text(yaml.safe_dump(tiny_recipe_dict(cifar_archive, resnet20_checkpoint,
                                                    search=search)))
    result = compress(load_recipe(path), out=tmp_path / "run")
    assert result.report is not None and result.report["batch"] == 1
    measured = rows(result.report)
    assert {row.name for row in measured} == {"base/fp32", "base/int8"}
    for row in measured:  # the search batch is batch 1: one timing serves both columns
        assert row.p50_ms is not None and row.p50_ms == row.b1_p50_ms
    eligible = [r for r in measured if (r.select_drop or 0.0) <= search["accuracy_budget"]]
    assert result.report["choice"]["chosen"] == min(eligible, key=lambda r: r.p50_ms or 0).name
    assert (tmp_path / "run" / "pareto.png").read_bytes().startswith(b"\x89PNG")
    assert "b1 p50/p99 ms" in (tmp_path / "run" / "summary.md").read_text()


def test_bundle_defaults_to_the_chosen_variant(search_run: tuple[Path, Path, dict[str, Any]],
                                               tmp_path: Path) -> None:
    """`edgevision bundle` of a search run ships the choice (deploy.onnx's file) for the runtime
    it was chosen on, with that row's figures."""
    from edgevision.bundle import make_bundle
    from edgevision.bundle.source import BACKEND_TARGETS

    run_dir, _, report = search_run
    choice = SearchReport.from_json(report).choice
    assert choice.chosen is not None
    row = next(r for r in rows(report, None) if r.name == choice.chosen)
    result = make_bundle(run_dir, tmp_path / "bundle")
    meta = result.metadata
    assert result.reason == "the search's choice"
    assert meta.variant == row.name
    assert meta.target == BACKEND_TARGETS[row.backend]
    assert (result.folder / "model.onnx").read_bytes() == (run_dir / "deploy.onnx").read_bytes()
    assert meta.measured is not None
    assert (meta.measured.backend, meta.measured.top1, meta.measured.p50_ms) == (
        row.backend, row.top1, row.b1_p50_ms)
    assert (meta.measured.images, meta.measured.split) == (300, "test")
    other = make_bundle(run_dir, tmp_path / "base", variant="base/fp32").metadata
    assert (other.variant, other.target, other.precision) == ("base/fp32",
                                                              "onnxruntime", "fp32")

