"""Bad input and interrupted work: one-line errors, nothing half-written, honest records."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from edgevision.cli import app
from edgevision.data import Dataset
from edgevision.errors import DataError, EdgevisionError, QuantizeError, RunDirError
from edgevision.recipe import DataSpec, Recipe, load_recipe
from edgevision.rundir import LOCK_FILE, MANIFEST, RECIPE_FILE, RunDir

runner = CliRunner()


def make_folder(root: Path, sizes: dict[str, tuple[int, int]]) -> Path:
    """An ImageFolder split ``root/test/<class>/<n>.png`` with the given image sizes."""
    for index, (name, size) in enumerate(sizes.items()):
        folder = root / "test" / name
        folder.mkdir(parents=True)
        Image.new("RGB", size, (index * 40, 0, 0)).save(folder / f"{index}.png")
    return root


def test_mixed_image_sizes_need_image_size(tmp_path: Path) -> None:
    root = make_folder(tmp_path, {"a": (32, 32), "b": (40, 30)})
    spec = DataSpec(root=root, train_split="test", eval_split="test", val_size=0)
    with pytest.raises(DataError, match="different sizes.*data.image_size"):
        next(Dataset.from_spec(spec).eval_set().batches(8))
    resized = spec.model_copy(update={"image_size": 24})
    images, _ = next(Dataset.from_spec(resized).eval_set().batches(8))
    assert images.shape == (2, 3, 24, 24)


def test_truncated_archive_is_a_one_line_error(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGEVISION_CACHE", str(tmp_path / "cache"))
    make_folder(tmp_path / "src", {"a": (8, 8), "b": (8, 8)})
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(tmp_path / "src", arcname="data")
    archive = tmp_path / "data.tar.gz"
    archive.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(DataError, match="truncated or corrupt"):
        Dataset.from_spec(DataSpec(root=archive)).eval_source  # noqa: B018
    assert not list((tmp_path / "cache" / "datasets").glob("data-*"))


def test_error_text_is_not_read_as_markup(tmp_path: Path) -> None:
    recipe = tmp_path / "[train]" / "r.yaml"
    recipe.parent.mkdir()
    result = runner.invoke(app, ["compress", str(recipe)])
    assert result.exit_code == 2
    assert "[train]" in result.output and "Traceback" not in result.output


def test_invalid_benchmark_overrides_are_one_line(tiny_run_dir: Path) -> None:
    import edgevision

    with pytest.raises(EdgevisionError, match=r"benchmark.batch_sizes"):
        edgevision.benchmark(tiny_run_dir, batch_sizes=[0])
    result = runner.invoke(app, ["benchmark", str(tiny_run_dir), "--threads", "0"])
    assert result.exit_code == 2 and "Traceback" not in result.output


@pytest.fixture(scope="module")
def tiny_run_dir(tmp_path_factory: pytest.TempPathFactory, cifar_archive: Path,
                 resnet20_checkpoint: Path) -> Path:
    """A finished tiny run (no training, torchscript export for speed)."""
    import yaml

    import edgevision
    from tests.conftest import tiny_recipe_dict

    folder = tmp_path_factory.mktemp("robust")
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_recipe_dict(
        cifar_archive, resnet20_checkpoint, export={"exporter": "torchscript"},
        benchmark={"batch_sizes": [2], "iterations": 2, "warmup": 0})))
    return edgevision.compress(load_recipe(path), out=folder / "run").run_dir


def test_benchmark_of_a_run_keeps_its_compress_report(tiny_run_dir: Path) -> None:
    import edgevision

    before = (tiny_run_dir / "report.json").read_text()
    edgevision.benchmark(tiny_run_dir, backends=["onnxruntime"], batch_sizes=[1], iterations=2,
                         warmup=0, limit=20)
    assert (tiny_run_dir / "report.json").read_text() == before
    separate = json.loads((tiny_run_dir / "benchmark" / "report.json").read_text())
    assert separate["rows"][0]["accuracy"]["images"] == 20


def test_missing_artifact_becomes_an_error_row(tiny_run_dir: Path, tmp_path: Path) -> None:
    import shutil

    import edgevision

    copy = tmp_path / "run"
    shutil.copytree(tiny_run_dir, copy)
    (copy / "model.onnx").unlink()
    report = edgevision.benchmark(copy, batch_sizes=[1], iterations=1, warmup=0, limit=10)
    rows = {row["backend"]: row for row in report["rows"]}
    assert rows["pytorch"]["error"] is None
    assert "not found" in rows["onnxruntime"]["error"]


def test_pytorch_backend_resolves_auto_device(tiny_run_dir: Path) -> None:
    from edgevision.backends import PyTorchBackend

    with PyTorchBackend(tiny_run_dir / "model.pt", device="auto") as session:
        assert session.info.device in ("cpu", "cuda")


def test_resume_rules(tiny_run_dir: Path, tmp_path: Path) -> None:
    """--resume continues after the last completed step, or from the first step whose recipe
    section changed; a change to what the model depends on is refused."""
    from edgevision.pipeline.resume import resume_step

    stored = (tiny_run_dir / RECIPE_FILE).read_text()
    with pytest.raises(RunDirError, match="contradict"):
        RunDir.prepare(tiny_run_dir, force=True, resume=True)
    run = RunDir.open(tiny_run_dir)

    def step_for(text: str) -> str:
        path = tmp_path / "recipe.yaml"
        path.write_text(text)
        return resume_step(run, load_recipe(path))

    with pytest.raises(RunDirError, match="recipe's seed differ"):
        step_for(stored.replace("seed: 0", "seed: 1"))
    assert step_for(stored.replace("warmup: 0", "warmup: 3")) == "benchmark"
    assert step_for(stored.replace("stages: []", "stages: [{kind: quantize}]")) == "artifacts"
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("x")
    with pytest.raises(RunDirError, match="not an edgevision run directory"):
        RunDir.prepare(other, resume=True)


def test_failed_run_records_its_error(tiny_recipe, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import edgevision.pipeline.run as pipeline

    def broken_export(state: object) -> None:
        raise EdgevisionError("export exploded [on purpose]")

    monkeypatch.setattr(pipeline, "export_models", broken_export)
    out = tmp_path / "run"
    result = runner.invoke(app, ["compress", str(tiny_recipe()), "--out", str(out)])
    assert result.exit_code == 2
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["status"] == "failed"
    assert manifest["error"] == "export exploded [on purpose]"
    assert not (out / "report.json").exists()


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the CPU-only refusal")
def test_untrainable_precision_fails_before_any_work(tiny_recipe, tmp_path: Path) -> None:
    """fp16 in a stage's train section (here distillation after pruning) needs CUDA: on a CPU
    machine compress refuses it at once, before pruning runs or the run folder exists."""
    stages = [{"kind": "prune", "ratio": 0.25},
              {"kind": "distill", "train": {"epochs": 1, "precision": "fp16"}}]
    out = tmp_path / "run"
    result = runner.invoke(app, ["compress", str(tiny_recipe(stages=stages)), "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert "fp16 needs a CUDA GPU" in result.output
    assert "stage prune" not in result.output
    assert not out.exists()
    search = {"prune_levels": [0.0], "precisions": ["fp32"],
              "distill": {"train": {"epochs": 1, "precision": "fp16"}}}
    result = runner.invoke(app, ["compress", str(tiny_recipe(search=search)), "--out", str(out)])
    assert result.exit_code == 2 and "fp16 needs a CUDA GPU" in result.output, result.output
    assert not out.exists()


# --- run directories: one writer, --force, inputs checked before the work, resume (issue 15) ---

HOLD_LOCK = """
import sys, time
from pathlib import Path
from edgevision.rundir import RunDir
run = RunDir.open(Path(sys.argv[1]), lock=True)
run.write_manifest(status="running")
print("locked", flush=True)
time.sleep(600)
"""


@contextmanager
def lock_held_by_another_process(run_dir: Path) -> Iterator[subprocess.Popen[str]]:
    """A real second process holding ``run_dir``'s lock with a ``running`` manifest; SIGKILLed
    on exit (so it never records why it stopped)."""
    child = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(run_dir)],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "locked"
        yield child
    finally:
        child.kill()
        child.wait()


def files_of(folder: Path) -> dict[str, bytes]:
    """Every file's bytes (but the manifest and the lock, which record who ran)."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name not in (MANIFEST, LOCK_FILE)}


def copy_of(run_dir: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    return copy


def test_a_run_directory_in_use_refuses_every_other_writer(tiny_run_dir: Path, tmp_path: Path,
                                                           tiny_recipe) -> None:
    run_dir = copy_of(tiny_run_dir, tmp_path)
    before = files_of(run_dir)
    with lock_held_by_another_process(run_dir) as holder:
        for args in (["compress", str(tiny_recipe()), "--out", str(run_dir), "--force"],
                     ["compress", str(run_dir / RECIPE_FILE), "--out", str(run_dir),
                      "--resume"],
                     ["train", str(tiny_recipe(train={"epochs": 1})), "--out", str(run_dir),
                      "--force"],
                     ["quantize", str(run_dir)],
                     ["benchmark", str(run_dir), "--limit", "10"]):
            result = runner.invoke(app, args)
            assert result.exit_code == 2, (args, result.output)
            assert f"in use by another edgevision process (pid {holder.pid}" in result.output
        assert RunDir.open(run_dir).status() == "running"
    # SIGKILLed: the kernel freed the lock, so the run reads (and is recorded) as interrupted
    assert RunDir.open(run_dir).status() == "interrupted"
    assert json.loads((run_dir / MANIFEST).read_text())["status"] == "running"
    RunDir.open(run_dir, lock=True).release()
    assert json.loads((run_dir / MANIFEST).read_text())["status"] == "interrupted"
    assert files_of(run_dir) == before


def test_force_deletes_only_what_edgevision_wrote(tiny_run_dir: Path, tmp_path: Path) -> None:
    run_dir = copy_of(tiny_run_dir, tmp_path)
    (run_dir / "notes.txt").write_text("my notes")
    before = files_of(run_dir)
    result = runner.invoke(app, ["compress", str(run_dir / RECIPE_FILE), "--out", str(run_dir),
                                 "--force"])
    assert result.exit_code == 2, result.output
    assert "files edgevision did not write (notes.txt)" in result.output
    assert files_of(run_dir) == before
    (run_dir / "notes.txt").unlink()
    with RunDir.prepare(run_dir, force=True):
        assert [p.name for p in run_dir.iterdir()] == [LOCK_FILE]


def test_unreadable_checkpoint_fails_before_the_run_directory(tiny_recipe,
                                                              tmp_path: Path) -> None:
    for name, content in (("notes.pt", b"hello world\n"), ("lines.pt", b"a\nb\nc\n")):
        checkpoint = tmp_path / name
        checkpoint.write_bytes(content)
        out = tmp_path / f"run-{name}"
        recipe = tiny_recipe(model={"checkpoint": str(checkpoint)})
        result = runner.invoke(app, ["compress", str(recipe), "--out", str(out)])
        assert result.exit_code == 2, result.output
        assert "not a readable PyTorch checkpoint" in result.output
        assert "Traceback" not in result.output and not out.exists()


def test_unwritable_out_fails_before_any_work(tiny_recipe, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    result = runner.invoke(app, ["compress", str(tiny_recipe()), "--out",
                                 str(blocker / "run")])
    assert result.exit_code == 2, result.output
    assert "cannot write the run directory" in result.output
    assert "model" not in result.output  # refused before the model was built


def small_cifar_folder(cifar_root: Path, folder: Path, per_class: int = 3) -> Path:
    """An ImageFolder with ``per_class`` real CIFAR-10 JPEGs per class in train/ and test/."""
    for split in ("train", "test"):
        for class_dir in sorted((cifar_root / split).iterdir()):
            target = folder / split / class_dir.name
            target.mkdir(parents=True)
            for image in sorted(class_dir.iterdir())[:per_class]:
                shutil.copy(image, target / image.name)
    return folder


def first_image(folder: Path) -> Path:
    return sorted(sorted(p for p in folder.iterdir() if p.is_dir())[0].iterdir())[0]


def test_bad_images_fail_before_the_run_directory(tiny_recipe, cifar_root: Path,
                                                  tmp_path: Path) -> None:
    data = small_cifar_folder(cifar_root, tmp_path / "data")
    data_section = {"root": str(data), "val_size": 2, "train_limit": None, "eval_limit": None,
                    "calibration_size": 4, "batch_size": 8}
    corrupt = first_image(data / "test")
    good = corrupt.read_bytes()
    corrupt.write_bytes(good[: len(good) // 3])  # a truncated JPEG in the evaluation split
    out = tmp_path / "run"
    result = runner.invoke(app, ["compress", str(tiny_recipe(data=data_section)), "--out",
                                 str(out)])
    assert result.exit_code == 2, result.output
    assert f"cannot read image {corrupt}" in result.output.replace("\n", "")
    assert not out.exists()
    corrupt.write_bytes(good)
    odd = first_image(data / "train")
    Image.open(odd).resize((40, 30)).save(odd)  # an odd-sized training image
    recipe = tiny_recipe(data=data_section, train={"epochs": 1})
    result = runner.invoke(app, ["compress", str(recipe), "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert "training images have different sizes" in result.output
    assert "epoch" not in result.output and not out.exists()


def test_bad_calibration_source_fails_before_the_run_directory(tiny_recipe,
                                                               tmp_path: Path) -> None:
    out = tmp_path / "run"
    missing = {"kind": "quantize", "calibration": {"images": str(tmp_path / "nothing-here")}}
    result = runner.invoke(app, ["compress", str(tiny_recipe(stages=[missing])), "--out",
                                 str(out)])
    assert result.exit_code == 2, result.output
    assert "no such list file or folder" in result.output and not out.exists()
    folder = tmp_path / "calibration"
    folder.mkdir()
    (folder / "broken.png").write_bytes(b"not a png")
    broken = {"kind": "quantize", "calibration": {"images": str(folder)}}
    result = runner.invoke(app, ["compress", str(tiny_recipe(stages=[broken])), "--out",
                                 str(out)])
    assert result.exit_code == 2, result.output
    assert "broken.png" in result.output and not out.exists()


def test_a_failed_stage_keeps_the_model_and_resume_goes_on_from_it(
        tiny_recipe, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import edgevision.quantization.run as quantization

    def broken(*args: object, **kwargs: object) -> None:
        raise QuantizeError("the quantizer failed [on purpose]")

    out = tmp_path / "run"
    with monkeypatch.context() as patch:
        patch.setattr(quantization, "quantize_model", broken)
        result = runner.invoke(app, ["compress", str(tiny_recipe(stages=[{"kind": "quantize"}])),
                                     "--out", str(out)])
    assert result.exit_code == 2 and "on purpose" in result.output, result.output
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["status"] == "failed" and manifest["completed"] == ["model"]
    assert [a["path"] for a in manifest["artifacts"]] == ["model.pt", "model.onnx"]
    model = (out / "model.pt").read_bytes()
    # the quantize section corrected: the run goes on from its quantize step
    corrected = tiny_recipe(stages=[{"kind": "quantize", "precisions": ["fp16"]}])
    result = runner.invoke(app, ["compress", str(corrected), "--out", str(out), "--resume"])
    assert result.exit_code == 0, result.output
    assert "at its artifacts step" in result.output and "exporting" not in result.output
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["status"] == "complete" and manifest["completed"][-1] == "benchmark"
    assert [a["path"] for a in manifest["artifacts"]] == ["model.pt", "model.onnx",
                                                          "model.fp16.onnx"]
    assert (out / "model.pt").read_bytes() == model
    measured = {Path(row["artifact"]).name for row in
                json.loads((out / "report.json").read_text())["rows"]}
    assert measured == {"model.pt", "model.onnx", "model.fp16.onnx"}


def test_targets_get_their_own_graphs_and_measured_ones_are_not_replaced(
        tiny_run_dir: Path, tmp_path: Path) -> None:
    import edgevision
    from edgevision.pipeline import quantize_run

    run_dir = copy_of(tiny_run_dir, tmp_path)
    stored = run_dir / RECIPE_FILE

    def recipe(target: str) -> Recipe:
        return load_recipe(stored, [f"stages=[{{kind: quantize, target: {target}}}]"])

    assert [a["path"] for a in quantize_run(run_dir, recipe("cpu"))] == ["model.int8.onnx"]
    edgevision.benchmark(run_dir, backends=["onnxruntime"], batch_sizes=[1], iterations=1,
                         warmup=0, limit=10)
    cpu_graph = (run_dir / "model.int8.onnx").read_bytes()
    added = quantize_run(run_dir, recipe("tensorrt"))
    assert [(a["path"], a["variant"]) for a in added] == [("model.int8.trt.onnx", "int8-trt")]
    assert (run_dir / "model.int8.onnx").read_bytes() == cpu_graph
    paths = [a["path"] for a in json.loads((run_dir / MANIFEST).read_text())["artifacts"]]
    assert {"model.int8.onnx", "model.int8.trt.onnx"} <= set(paths)
    # benchmark/report.json measured the cpu graph: replacing it needs --replace
    with pytest.raises(EdgevisionError, match=r"model.int8.onnx .* were measured in "
                                              r"benchmark/report.json"):
        quantize_run(run_dir, recipe("cpu"))
    assert (run_dir / "model.int8.onnx").read_bytes() == cpu_graph
    quantize_run(run_dir, recipe("cpu"), replace=True)
    assert not (run_dir / "benchmark" / "report.json").exists()
    assert (run_dir / "model.int8.trt.onnx").is_file()

# --- benchmark failures (issue 15) ---

BENCH_FAST = ["--batch", "1", "--iterations", "1", "--warmup", "0", "--limit", "10"]


def error_lines(output: str) -> list[str]:
    """The ``error:`` lines of a command's output."""
    return [line for line in output.splitlines() if line.startswith("error:")]


def test_benchmark_measuring_nothing_exits_2_with_the_report(tiny_run_dir: Path,
                                                             tmp_path: Path) -> None:
    """Data at another size than the ONNX input: every row fails, so exit 2; the report (with
    the rows' errors) is still printed and written, and the Python API raises it."""
    import edgevision
    from edgevision.errors import BenchmarkError
    from edgevision.onnxmeta import read_metadata

    labels = read_metadata(tiny_run_dir / "model.onnx")["labels"]
    data = make_folder(tmp_path / "big", {label: (40, 40) for label in labels})
    out = tmp_path / "out"
    result = runner.invoke(app, ["benchmark", str(tiny_run_dir / "model.onnx"), "--data",
                                 str(data), "--out", str(out), "--json", "--backend",
                                 "onnxruntime", *BENCH_FAST])
    assert result.exit_code == 2, result.output
    (line,) = error_lines(result.output)
    assert "nothing could be measured" in line and "does not match" in line, line
    assert str(out / "report.json") in line and "Traceback" not in result.output
    (row,) = json.loads(result.stdout)["rows"]
    assert "(1, 3, 40, 40)" in row["error"]
    assert json.loads((out / "report.json").read_text())["rows"][0]["error"] == row["error"]
    with pytest.raises(BenchmarkError, match="nothing could be measured") as caught:
        edgevision.benchmark(tiny_run_dir / "model.onnx", data=data, batch_sizes=[1],
                             iterations=1, warmup=0, backends=["onnxruntime"])
    assert caught.value.report["rows"][0]["error"] == row["error"]


def test_empty_onnx_is_not_a_valid_model(tiny_run_dir: Path, tmp_path: Path) -> None:
    from edgevision.errors import ArtifactError
    from edgevision.onnxmeta import load_onnx

    empty = tmp_path / "empty.onnx"
    empty.touch()
    result = runner.invoke(app, ["benchmark", str(empty), "--data", str(tmp_path)])
    assert result.exit_code == 2, result.output
    (line,) = error_lines(result.output)
    assert "is empty (0 bytes), not a valid ONNX model" in line
    assert "metadata" not in result.output
    # with --recipe no metadata is read first: the row fails, and nothing measured is exit 2
    result = runner.invoke(app, ["benchmark", str(empty), "--recipe",
                                 str(tiny_run_dir / RECIPE_FILE), *BENCH_FAST])
    assert result.exit_code == 2, result.output
    (line,) = error_lines(result.output)
    assert "nothing could be measured" in line and "is empty (0 bytes)" in line, line
    no_graph = tmp_path / "nograph.onnx"
    no_graph.write_bytes(b"\x08\x07")  # a valid ModelProto (ir_version 7) without a graph
    with pytest.raises(ArtifactError, match="not a valid ONNX model .it holds no graph"):
        load_onnx(no_graph)


def test_unwritable_out_fails_before_measuring(tiny_run_dir: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib
    import os

    bench = importlib.import_module("edgevision.pipeline.benchmark")  # the package shadows it

    def measure(*args: object) -> None:
        raise AssertionError("measured although the report could not be written")

    monkeypatch.setattr(bench, "benchmark_artifacts", measure)
    (tmp_path / "file").write_text("not a folder")
    cases = [(tmp_path / "file" / "sub", "Not a directory")]
    if os.geteuid() != 0:  # root may write into a 0o555 folder
        (tmp_path / "ro").mkdir(mode=0o555)
        cases.append((tmp_path / "ro" / "out", "Permission denied"))
    for out, reason in cases:
        result = runner.invoke(app, ["benchmark", str(tiny_run_dir), "--out", str(out),
                                     *BENCH_FAST])
        assert result.exit_code == 2, result.output
        (line,) = error_lines(result.output)
        assert f"cannot write the report to {out}: {reason}" in line, line
        assert "Traceback" not in result.output


def test_report_write_failure_prints_the_figures(tiny_run_dir: Path, tmp_path: Path) -> None:
    """The early check passes, the write fails anyway (report.json is a folder): the figures
    come on stdout and the command fails with one line naming the folder and the OS error."""
    import edgevision
    from edgevision.errors import ReportWriteError

    out = tmp_path / "out"
    (out / "report.json" / "in-the-way").mkdir(parents=True)
    result = runner.invoke(app, ["benchmark", str(tiny_run_dir), "--backend", "onnxruntime",
                                 "--out", str(out), *BENCH_FAST])
    assert result.exit_code == 2, result.output
    (line,) = error_lines(result.output)
    assert f"cannot write the report to {out}: Is a directory" in line, line
    assert "printed to stdout" in line and "Traceback" not in result.output
    (row,) = json.loads(result.stdout)["rows"]
    assert row["error"] is None and row["accuracy"]["images"] == 10
    assert row["latency"][0]["p50_ms"] > 0
    with pytest.raises(ReportWriteError, match="Is a directory") as caught:
        edgevision.benchmark(tiny_run_dir, backends=["onnxruntime"], batch_sizes=[1],
                             iterations=1, warmup=0, limit=10, out=out)
    assert caught.value.report["rows"][0]["latency"][0]["p50_ms"] > 0
    assert not list(out.glob("*.partial"))


def test_trtexec_failure_comes_after_the_report_is_written(tmp_path: Path) -> None:
    """A fake engine: its row fails (no TensorRT, or not an engine) and trtexec fails (not on
    PATH, or cannot load it); the report was written before trtexec ran."""
    from edgevision.backends.tensorrt.metadata import write_metadata
    from tests.test_tensorrt import metadata

    make_folder(tmp_path / "data", {"a": (32, 32), "b": (32, 32)})
    engine = tmp_path / "model.fp16.engine"
    engine.write_bytes(b"not really an engine")
    write_metadata(engine, metadata())
    out = tmp_path / "out"
    result = runner.invoke(app, ["benchmark", str(engine), "--data", str(tmp_path / "data"),
                                 "--trtexec", "--out", str(out), *BENCH_FAST])
    assert result.exit_code == 2, result.output
    (line,) = error_lines(result.output)
    assert "trtexec" in line and "Traceback" not in result.output, result.output
    (row,) = json.loads((out / "report.json").read_text())["rows"]
    assert row["backend"] == "tensorrt" and row["error"]


def test_a_failed_resume_forgets_the_steps_it_redoes(
        tiny_run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A complete run resumed at its quantize step, failing there: the steps from quantize on are
    no longer complete, so the next --resume quantizes again instead of only benchmarking."""
    import edgevision.quantization.run as quantization

    run_dir = copy_of(tiny_run_dir, tmp_path)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text((run_dir / RECIPE_FILE).read_text().replace(
        "stages: []", "stages: [{kind: quantize, precisions: [int8]}]"))

    def broken(*args: object, **kwargs: object) -> None:
        raise QuantizeError("the quantizer failed [on purpose]")

    with monkeypatch.context() as patch:
        patch.setattr(quantization, "quantize_model", broken)
        result = runner.invoke(app, ["compress", str(recipe), "--out", str(run_dir),
                                     "--resume"])
    assert result.exit_code == 2, result.output
    manifest = json.loads((run_dir / MANIFEST).read_text())
    assert manifest["status"] == "failed" and manifest["completed"] == ["model"]
    # the report measured model.pt and model.onnx only, which the resume did not replace
    assert (run_dir / "report.json").is_file() and not (run_dir / "report.stale.json").exists()
    result = runner.invoke(app, ["compress", str(recipe), "--out", str(run_dir), "--resume"])
    assert result.exit_code == 0, result.output
    assert "at its artifacts step" in result.output
    paths = [a["path"] for a in json.loads((run_dir / MANIFEST).read_text())["artifacts"]]
    assert paths == ["model.pt", "model.onnx", "model.int8.onnx"]


def test_train_then_compress_resume_runs_the_model_step(tiny_recipe, tmp_path: Path) -> None:
    """`train` completes no step of `compress`: resuming it with compress exports the model."""
    out = tmp_path / "run"
    recipe = tiny_recipe(train={"epochs": 1, "max_steps_per_epoch": 2})
    assert runner.invoke(app, ["train", str(recipe), "--out", str(out)]).exit_code == 0
    assert json.loads((out / MANIFEST).read_text())["completed"] == []
    result = runner.invoke(app, ["compress", str(recipe), "--out", str(out), "--resume"])
    assert result.exit_code == 0, result.output
    paths = [a["path"] for a in json.loads((out / MANIFEST).read_text())["artifacts"]]
    assert paths == ["model.pt", "model.onnx"] and (out / "report.json").is_file()


def test_a_failed_quantize_run_replaces_nothing(tiny_run_dir: Path, tmp_path: Path) -> None:
    from edgevision.pipeline import quantize_run

    run_dir = copy_of(tiny_run_dir, tmp_path)
    stored = run_dir / RECIPE_FILE
    quantize_run(run_dir, load_recipe(stored, ["stages=[{kind: quantize}]"]))
    before = files_of(run_dir)
    bad = load_recipe(stored, [f"stages=[{{kind: quantize, calibration: "
                               f"{{images: {tmp_path / 'nowhere'}}}}}]"])
    result = runner.invoke(app, ["quantize", str(run_dir), "--recipe", str(stored), "--set",
                                 f"stages=[{{kind: quantize, calibration: "
                                 f"{{images: {tmp_path / 'nowhere'}}}}}]", "--replace"])
    assert result.exit_code == 2 and "no such list file or folder" in result.output
    with pytest.raises(DataError, match="no such list file or folder"):
        quantize_run(run_dir, bad, replace=True)
    assert files_of(run_dir) == before
    paths = [a["path"] for a in json.loads((run_dir / MANIFEST).read_text())["artifacts"]]
    assert "model.int8.onnx" in paths
