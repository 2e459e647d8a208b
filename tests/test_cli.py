"""The CLI through Typer's test runner: end-to-end runs on real data, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgevision.cli import app
from edgevision.rundir import MANIFEST

runner = CliRunner()


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.output


def assert_one_line_error(code: int, output: str, fragment: str) -> None:
    assert code == 2, output
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, output
    assert fragment in errors[0], output
    assert "Traceback" not in output


@pytest.mark.parametrize("command", [[], ["compress"], ["train"], ["benchmark"], ["validate"],
                                     ["list"], ["bundle"]])
def test_help(command: list[str]) -> None:
    code, output = invoke(*command, "--help")
    assert code == 0
    assert "Usage" in output


def test_list_models() -> None:
    code, output = invoke("list", "models")
    names = {line.split("\t")[0] for line in output.splitlines()}
    assert code == 0
    assert {"cifar_resnet20", "cifar_resnet56", "resnet18", "mobilenet_v2"} <= names


def test_list_models_filter() -> None:
    code, output = invoke("list", "models", "cifar")
    assert code == 0
    depths = (20, 32, 44, 56, 110)
    assert {line.split("\t")[0] for line in output.splitlines()} == {
        *(f"cifar_resnet{d}" for d in depths), *(f"cifar_resnet{d}_conv_shortcut" for d in depths)}


def test_list_recipes_and_backends() -> None:
    code, output = invoke("list", "recipes")
    assert code == 0 and "quickstart\t" in output
    code, output = invoke("list", "backends")
    assert code == 0
    assert "onnxruntime\tavailable" in output and "pytorch\tavailable" in output


def test_validate_prints_resolved_recipe() -> None:
    code, output = invoke("validate", "quickstart", "--set", "train.epochs=2")
    assert code == 0
    assert "epochs: 2" in output and "augment: cifar" in output


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, cifar_archive: Path,
             resnet20_checkpoint: Path) -> Path:
    """One real compress run (pretrained ResNet-20, a short fine-tune, small subsets)."""
    import yaml

    from tests.conftest import tiny_recipe_dict

    folder = tmp_path_factory.mktemp("cli")
    recipe = folder / "tiny.yaml"
    recipe.write_text(yaml.safe_dump(tiny_recipe_dict(
        cifar_archive, resnet20_checkpoint,
        train={"epochs": 1, "max_steps_per_epoch": 2, "lr": 0.001})))
    out = folder / "run"
    code, output = invoke("compress", recipe, "--out", out)
    assert code == 0, output
    return out


def test_compress_writes_a_complete_run(tiny_run: Path) -> None:
    for name in ("recipe.yaml", "model.pt", "model.onnx", "calibration.json", "report.json",
                 "report.csv", MANIFEST, "train/last.pt"):
        assert (tiny_run / name).is_file(), name
    manifest = json.loads((tiny_run / MANIFEST).read_text())
    assert manifest["status"] == "complete"
    assert [a["path"] for a in manifest["artifacts"]] == ["model.pt", "model.onnx"]
    assert manifest["info"]["export"]["fp32"]["top1_agreement"] == 1.0
    assert not list(tiny_run.glob("**/*.partial"))


def test_compress_report_is_real(tiny_run: Path) -> None:
    report = json.loads((tiny_run / "report.json").read_text())
    assert report["schema"] == "edgevision.report/3"
    assert report["environment"]["cpu_count"] >= 1
    rows = {row["backend"]: row for row in report["rows"]}
    assert set(rows) == {"pytorch", "onnxruntime"}
    for row in rows.values():
        assert row["error"] is None
        assert row["accuracy"]["images"] == 300
        assert 70.0 < row["accuracy"]["top1"] <= 100.0
        assert [s["batch"] for s in row["latency"]] == [1, 8]
        for stats in row["latency"]:
            assert 0 < stats["p50_ms"] <= stats["p90_ms"] <= stats["p99_ms"]
        assert row["macs"] > 4e7 and row["params"] > 2.6e5
    # the same model through two backends: the same predictions on the same images
    assert abs(rows["pytorch"]["accuracy"]["top1"] - rows["onnxruntime"]["accuracy"]["top1"]) \
        < 0.5


def test_compress_refuses_existing_run_then_force(tiny_run: Path, tmp_path: Path) -> None:
    recipe = tiny_run / "recipe.yaml"
    code, output = invoke("compress", recipe, "--out", tiny_run)
    assert_one_line_error(code, output, "already holds a run; use --force")
    other = tmp_path / "notarun"
    other.mkdir()
    (other / "keep.txt").write_text("user data")
    code, output = invoke("compress", recipe, "--out", other, "--force")
    assert_one_line_error(code, output, "not an edgevision run")
    assert (other / "keep.txt").read_text() == "user data"


def test_benchmark_run_dir_json(tiny_run: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["benchmark", str(tiny_run), "--backend", "onnxruntime",
                                 "--batch", "4", "--iterations", "2", "--warmup", "0",
                                 "--limit", "100", "--out", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [r["backend"] for r in report["rows"]] == ["onnxruntime"]
    assert report["rows"][0]["accuracy"]["images"] == 100
    assert report["rows"][0]["latency"][0]["batch"] == 4
    assert (tmp_path / "report.json").is_file() and (tmp_path / "report.csv").is_file()


def test_benchmark_onnx_file_with_data(tiny_run: Path, cifar_archive: Path) -> None:
    code, output = invoke("benchmark", tiny_run / "model.onnx", "--data", cifar_archive,
                          "--limit", "64", "--batch", "1", "--iterations", "2")
    assert code == 0, output
    assert "onnxruntime" in output and "fp32" in output


def test_benchmark_onnx_with_class_mismatch(tiny_run: Path, tmp_path: Path) -> None:
    from PIL import Image

    for name in ("cats", "dogs"):
        (tmp_path / name).mkdir()
        Image.new("RGB", (32, 32)).save(tmp_path / name / "a.png")
    code, output = invoke("benchmark", tiny_run / "model.onnx", "--data", tmp_path)
    assert_one_line_error(code, output, "differ from the model's labels")


def test_train_command(tiny_recipe, tmp_path: Path) -> None:
    recipe = tiny_recipe(train={"epochs": 1, "max_steps_per_epoch": 1})
    code, output = invoke("train", recipe, "--out", tmp_path / "t")
    assert code == 0, output
    assert (tmp_path / "t" / "model.pt").is_file()
    code, output = invoke("train", recipe, "--out", tmp_path / "u", "--set", "train.epochs=0")
    assert_one_line_error(code, output, "nothing to train")


def test_bad_inputs(tiny_recipe, tmp_path: Path) -> None:
    code, output = invoke("compress", tmp_path / "missing.yaml")
    assert_one_line_error(code, output, "not found")

    recipe = tiny_recipe()
    code, output = invoke("compress", recipe, "--set", "model.nmae=x")
    assert_one_line_error(code, output, "unknown key 'model.nmae'; did you mean 'name'")

    code, output = invoke("compress", recipe, "--set", "model.name=resnt18", "--out",
                          tmp_path / "a")
    assert_one_line_error(code, output, "unknown model 'resnt18'; did you mean 'resnet18'")
    assert not (tmp_path / "a").exists()  # bad input is caught before the run folder is made

    code, output = invoke("compress", recipe, "--set", "data.root=/nonexistent/data",
                          "--out", tmp_path / "b")
    assert_one_line_error(code, output, "dataset path '/nonexistent/data' not found")

    code, output = invoke("compress", recipe, "--set", "model.name=cifar_resnet32",
                          "--out", tmp_path / "c")
    assert_one_line_error(code, output, "does not fit CifarResNet: missing keys")

    code, output = invoke("compress", recipe, "--set", "model.num_classes=100",
                          "--out", tmp_path / "d")
    assert_one_line_error(code, output, "shape mismatch: linear.weight")

    corrupt = tmp_path / "bad.onnx"
    corrupt.write_bytes(b"\x08\x01garbage" * 50)
    code, output = invoke("benchmark", corrupt, "--data", tmp_path)
    assert_one_line_error(code, output, "is not a valid ONNX model")

    code, output = invoke("benchmark", tmp_path / "nothing.onnx")
    assert_one_line_error(code, output, "not found")


def test_interrupted_run_leaves_no_complete_looking_artifact(
        tiny_recipe, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import onnx

    def interrupt(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(onnx.checker, "check_model", interrupt)
    out = tmp_path / "run"
    code, output = invoke("compress", tiny_recipe(), "--out", out)
    assert code == 130, output
    assert "interrupted" in output
    assert not (out / "model.onnx").exists()
    assert not list(out.glob("*.partial"))
    assert json.loads((out / MANIFEST).read_text())["status"] == "interrupted"
    assert not (out / "report.json").exists()


def test_python_api_mirrors_the_cli(tiny_run: Path, tmp_path: Path) -> None:
    import edgevision
    import edgevision.benchmarking
    import edgevision.pipeline
    import edgevision.training.loop  # importing the modules must not shadow the API functions

    assert callable(edgevision.compress) and callable(edgevision.train)
    report = edgevision.benchmark(tiny_run, backends=["onnxruntime"], batch_sizes=[2],
                                  iterations=2, warmup=0, limit=50, out=tmp_path)
    assert report["rows"][0]["accuracy"]["images"] == 50
    assert edgevision.load_recipe(tiny_run / "recipe.yaml").name == "tiny"
