"""`edgevision bundle` on real runs: a quickstart-like run (pretrained ResNet-20, CIFAR-10 JPEG,
INT8 for the cpu target) bundled for OpenVINO and ONNX Runtime, its torch-free Python runner
(torch, torchvision, onnx and edgevision made unimportable) against edgevision's own backends
on 100 real test images, a model normalised TensorFlow-style with a resize and crop, the
runner's preprocessing against edgevision's bit for bit, and bad input."""

from __future__ import annotations

import importlib.util
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

from edgevision.backends import OnnxRuntimeBackend
from edgevision.backends.openvino import OpenVinoBackend
from edgevision.bundle import BundleError, BundleMetadata, make_bundle
from edgevision.bundle.make import preprocess_spec
from edgevision.bundle.schema import Batch, InputSpec
from edgevision.cli import app
from edgevision.data.preprocess import Preprocess
from edgevision.data.sources import read_image
from edgevision.errors import OutputError
from edgevision.onnxmeta import read_metadata
from edgevision.pipeline import compress
from edgevision.recipe import load_recipe
from edgevision.rundir import RunDir
from tests.conftest import SHARED_DATA, require, tiny_recipe_dict

pytestmark = pytest.mark.slow

TEMPLATE = Path(__file__).resolve().parents[1] / "edgevision" / "bundle" / "templates" / "run.py"
#: what the runner must run without: importing any of these fails in its process
BLOCKED = ("torch", "torchvision", "onnx", "edgevision")
#: |runner score − backend score|: the same runtime, file and inputs (FP32 and INT8 graphs)
SCORE_TOLERANCE = 1e-4


def make_run(folder: Path, cifar_archive: Path, checkpoint: Path, **sections: Any) -> Path:
    raw = tiny_recipe_dict(cifar_archive, checkpoint, **sections)
    path = folder / "recipe.yaml"
    path.write_text(yaml.safe_dump(raw))
    return compress(load_recipe(path), out=folder / "run").run_dir


@pytest.fixture(scope="module")
def quickstart_run(tmp_path_factory: pytest.TempPathFactory, cifar_archive: Path,
                   resnet20_checkpoint: Path) -> Path:
    """Pretrained ResNet-20 → FP32 ONNX → INT8 (cpu target), measured with ONNX Runtime and
    OpenVINO (quickstart's data section: ImageNet mean/std, no resize)."""
    return make_run(tmp_path_factory.mktemp("quickstart"), cifar_archive, resnet20_checkpoint,
                    stages=[{"kind": "quantize", "target": "cpu", "precisions": ["int8"],
                             "check_images": 100}],
                    benchmark={"backends": ["onnxruntime", "openvino"], "batch_sizes": [1],
                               "iterations": 3})


@pytest.fixture(scope="module")
def tf_style_run(tmp_path_factory: pytest.TempPathFactory, cifar_archive: Path,
                 resnet20_checkpoint: Path) -> Path:
    """The same model fed TensorFlow-style ((x − 0.5) / 0.5), resized to 36 and cropped to
    32: not torchvision's normalisation, and a resize and crop for the runner to follow."""
    return make_run(tmp_path_factory.mktemp("tfstyle"), cifar_archive, resnet20_checkpoint,
                    data={"mean": [0.5], "std": [0.5], "resize": 36, "image_size": 32,
                          "augment": "none"},
                    benchmark={"backends": ["onnxruntime"], "batch_sizes": [1],
                               "iterations": 3})


@pytest.fixture(scope="module")
def test_images(cifar_root: Path) -> list[Path]:
    """100 real CIFAR-10 test images: the first 10 of each class."""
    return [path for folder in sorted((cifar_root / "test").iterdir())
            for path in sorted(folder.glob("*.jpg"))[:10]]


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Real 224×224 photos from imagenette-224's val split: 6 colour, 3 greyscale."""
    archive = require(SHARED_DATA / "imagenette-224.tar.gz", "imagenette-224 archive")
    folder = tmp_path_factory.mktemp("photos")
    colour: list[Path] = []
    grey: list[Path] = []
    with tarfile.open(archive, "r|gz") as tar:
        for member in tar:
            if not member.isfile() or "/val/" not in member.name:
                continue
            data = tar.extractfile(member).read()  # type: ignore[union-attr]
            mode = Image.open(io.BytesIO(data)).mode
            chosen = grey if mode == "L" else colour
            if len(chosen) < (3 if mode == "L" else 6):
                chosen.append(folder / Path(member.name).name)
                chosen[-1].write_bytes(data)
            if len(grey) == 3 and len(colour) == 6:
                break
    assert len(grey) == 3, "imagenette-224's val split has greyscale photos"
    return colour + grey


def run_runner(bundle: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    """``python run.py ARGS`` with torch, torchvision, onnx and edgevision unimportable, from
    another folder (the runner finds its bundle beside itself)."""
    block = "; ".join(f"sys.modules[{name!r}] = None" for name in BLOCKED)
    code = (f"import runpy, sys; {block}; sys.argv = sys.argv[1:]; "
            "runpy.run_path(sys.argv[0], run_name='__main__')")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, "-c", code, str(bundle / "run.py"),
                           *map(str, args)], capture_output=True, text=True, env=env,
                          cwd=bundle.parent, timeout=300)


def runner_json(bundle: Path, images: list[Path], runs: int = 5) -> dict[str, Any]:
    result = run_runner(bundle, *images, "--json", "--runs", str(runs))
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


def backend_outputs(backend: type[Any], model: Path, images: list[Path]) -> np.ndarray:
    """edgevision's outputs: its preprocessing (the model's metadata), its backend."""
    preprocess = Preprocess.from_dict(read_metadata(model)["preprocess"])
    batch = np.stack([preprocess(read_image(path)) for path in images])
    with backend(model, threads=2) as session:
        return np.asarray(session.predict(batch))


def assert_same_predictions(result: dict[str, Any], expected: np.ndarray,
                            labels: list[str]) -> None:
    """Top-1 per image equal; every top-5 score equal to the backend's output within
    SCORE_TOLERANCE; the top-5 labels in the order of the backend's scores."""
    assert len(result["images"]) == len(expected)
    for image, logits in zip(result["images"], expected, strict=True):
        top = image["top5"]
        assert top[0]["index"] == int(np.argmax(logits)), image["file"]
        assert [entry["label"] for entry in top] == [labels[e["index"]] for e in top]
        for entry in top:
            assert abs(entry["score"] - float(logits[entry["index"]])) <= SCORE_TOLERANCE


@pytest.fixture(scope="module")
def openvino_bundle(quickstart_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_bundle(quickstart_run, tmp_path_factory.mktemp("b") / "ov",
                       target="openvino").folder


@pytest.mark.parametrize("target, backend", [("openvino", OpenVinoBackend),
                                             ("onnxruntime", OnnxRuntimeBackend)])
def test_runner_matches_the_backend_on_100_images(
        target: str, backend: type[Any], quickstart_run: Path, openvino_bundle: Path,
        test_images: list[Path], tmp_path: Path) -> None:
    bundle = openvino_bundle if target == "openvino" else make_bundle(
        quickstart_run, tmp_path / "ort", target=target).folder
    meta = json.loads((bundle / "model.json").read_text())
    assert (meta["variant"], meta["precision"], meta["target"]) == ("int8", "int8", target)
    result = runner_json(bundle, test_images)
    expected = backend_outputs(backend, bundle / "model.onnx", test_images)
    assert_same_predictions(result, expected, meta["labels"])
    assert result["latency_ms"]["runs"] == 5 and result["latency_ms"]["p50"] > 0
    # a working INT8 ResNet-20, not noise: the labels are right for most images
    right = sum(image["top5"][0]["label"] == Path(image["file"]).parent.name
                for image in result["images"])
    assert right >= 70


def test_the_bundles_cpp_runner_builds_and_matches_the_backend(
        openvino_bundle: Path, test_images: list[Path], tmp_path: Path) -> None:
    """The bundle's own cpp/ folder, as a user gets it (a copy of the folder), built with CMake
    against the openvino wheel's C++ SDK and run on the 100 images: the same predictions as
    the openvino backend and as the bundle's Python runner."""
    import openvino

    from tests.test_bundle_cpp import _require_build_tools

    _require_build_tools()
    bundle = tmp_path / "copied"
    shutil.copytree(openvino_bundle, bundle)
    build = bundle / "cpp" / "build"
    for command in (["cmake", "-S", str(bundle / "cpp"), "-B", str(build),
                     f"-DOpenVINO_DIR={Path(openvino.__file__).parent / 'cmake'}"],
                    ["cmake", "--build", str(build), "-j", "2"]):
        done = subprocess.run(command, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    ran = subprocess.run([str(build / "edgevision-run"), str(bundle / "model.json"),
                          *map(str, test_images), "--json", "--runs", "5"],
                         capture_output=True, text=True, timeout=300)
    assert ran.returncode == 0, ran.stderr
    result = json.loads(ran.stdout)
    meta = json.loads((bundle / "model.json").read_text())
    assert_same_predictions(result, backend_outputs(OpenVinoBackend, bundle / "model.onnx",
                                                    test_images), meta["labels"])
    python = runner_json(bundle, test_images)
    assert [i["top5"] for i in result["images"]] == [i["top5"] for i in python["images"]]


def test_model_json_validates_against_its_schema(openvino_bundle: Path) -> None:
    import jsonschema

    meta = json.loads((openvino_bundle / "model.json").read_text())
    schema = json.loads((openvino_bundle / "model.schema.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    validator.validate(meta)
    assert BundleMetadata.model_validate(meta).to_json() == meta  # and the pydantic model
    assert not validator.is_valid({**meta, "extra": 1})
    assert not validator.is_valid({**meta, "preprocess": {**meta["preprocess"], "scale": -1}})
    wrong = {**meta, "input": {**meta["input"], "layout": "NHWC"}}
    assert not validator.is_valid(wrong)


def test_bundle_contents_and_archive(openvino_bundle: Path, quickstart_run: Path) -> None:
    meta = json.loads((openvino_bundle / "model.json").read_text())
    labels = (openvino_bundle / "labels.txt").read_text().splitlines()
    assert labels == meta["labels"] == sorted(labels) and len(labels) == 10
    assert meta["model"]["source"].endswith("/model.int8.onnx")
    assert meta["model"]["sha256"] == meta["model"]["source_sha256"]  # copied as it is
    assert (openvino_bundle / "model.onnx").read_bytes() == (
        quickstart_run / "model.int8.onnx").read_bytes()
    assert meta["input"] == {"name": "input", "dtype": "float32", "layout": "NCHW",
                             "shape": [-1, 3, 32, 32], "batch": {"min": 1, "max": None}}
    measured = meta["measured"]
    report = json.loads((quickstart_run / "report.json").read_text())
    row = next(r for r in report["rows"] if r["variant"] == "int8"
               and r["backend"] == "openvino")
    assert measured["backend"] == "openvino" and measured["top1"] == row["accuracy"]["top1"]
    assert measured["images"] == row["accuracy"]["images"] and measured["split"] == "test"
    assert measured["p50_ms"] == row["latency"][0]["p50_ms"] and measured["threads"] == 2
    assert meta["versions"]["runtime"] == report["environment"]["libraries"]["openvino"]
    readme = (openvino_bundle / "README.md").read_text()
    assert "python run.py" in readme and "$" not in readme.replace("$(", "")
    archive = openvino_bundle.with_name("ov.tar.gz")
    with tarfile.open(archive) as tar:
        names = {m.name for m in tar.getmembers() if m.isfile()}
    on_disk = {f"ov/{p.relative_to(openvino_bundle).as_posix()}"
               for p in openvino_bundle.rglob("*") if p.is_file()}
    assert names == on_disk
    assert {"ov/model.json", "ov/model.schema.json", "ov/labels.txt", "ov/model.onnx",
            "ov/run.py", "ov/README.md"} <= names


def test_defaults_final_variant_and_measured_runtime(quickstart_run: Path,
                                                     tmp_path: Path) -> None:
    result = make_bundle(quickstart_run, tmp_path / "b")
    assert result.reason == "the run's final variant"
    # measured with onnxruntime first (the recipe's order): its target
    assert (result.metadata.variant, result.metadata.target) == ("int8", "onnxruntime")
    assert result.metadata.measured is not None
    assert result.metadata.measured.backend == "onnxruntime"


def test_tensorrt_bundle_writes_the_build_script(quickstart_run: Path, tmp_path: Path) -> None:
    result = make_bundle(quickstart_run, tmp_path / "trt", variant="fp32", target="tensorrt",
                         tensorrt_version="10.3")
    meta, folder = result.metadata, result.folder
    assert (meta.precision, meta.versions.tensorrt, meta.model.engine) == ("fp32", "10.3.0",
                                                                           None)
    command = meta.model.build_command
    assert command is not None
    for part in ("--onnx=model.onnx", "--saveEngine=model.engine", "--stronglyTyped",
                 "--minShapes=input:1x3x32x32", "--maxShapes=input:64x3x32x32", "--noTF32"):
        assert part in command.split()
    assert str(tmp_path) not in command and "timingCache" not in command
    script = (folder / "build_engine.sh").read_text()
    assert os.access(folder / "build_engine.sh", os.X_OK)
    assert command.removeprefix("trtexec ") in script
    assert meta.input.batch == Batch(min=1, max=64)
    assert (folder / "model.onnx").read_bytes() == (quickstart_run / "model.onnx").read_bytes()
    eleven = make_bundle(quickstart_run, tmp_path / "trt11", variant="fp32",
                         target="tensorrt", tensorrt_version="11.4").metadata
    assert "--stronglyTyped" not in str(eleven.model.build_command).split()  # 11: always


def test_build_script_refuses_another_trtexec_release(quickstart_run: Path,
                                                      tmp_path: Path) -> None:
    """build_engine.sh runs trtexec only when its banner is the release the command was
    written for (a stand-in trtexec prints the banner and its arguments: plumbing only)."""
    folder = make_bundle(quickstart_run, tmp_path / "trt", variant="fp32", target="tensorrt",
                         tensorrt_version="10.3").folder
    for banner, status in (("v110400", 2), ("v100300", 0)):
        fake = tmp_path / f"trtexec-{banner}"
        fake.write_text(f"#!/bin/sh\necho '&&&& RUNNING TensorRT.trtexec [TensorRT {banner}]'"
                        '\necho "ARGS $*"\n')
        fake.chmod(0o755)
        done = subprocess.run(["sh", str(folder / "build_engine.sh")], capture_output=True,
                              text=True, env={**os.environ, "TRTEXEC": str(fake)}, timeout=60)
        assert done.returncode == status, done.stderr
        if status:
            assert done.stderr.count("\n") == 1 and "this is for TensorRT 10.3" in done.stderr
        else:
            assert "ARGS --onnx=model.onnx --saveEngine=model.engine" in done.stdout


def test_tensorrt_bundle_of_cpu_int8_is_refused(quickstart_run: Path, tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="INT8 for the cpu target.*target: tensorrt") as info:
        make_bundle(quickstart_run, tmp_path / "b", target="tensorrt")
    assert "\n" not in str(info.value)
    assert not (tmp_path / "b").exists() and not list(tmp_path.iterdir())


def invoke(*args: str | Path) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["bundle", *map(str, args)])
    return result.exit_code, result.output


def assert_one_line_error(code: int, output: str, fragment: str) -> None:
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1 and fragment in errors[0], output
    assert "Traceback" not in output


def test_cli_bad_input(quickstart_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "b"
    assert_one_line_error(*invoke(quickstart_run, "--out", out, "--variant", "int9"),
                          "has no variant 'int9' (it has: fp32, int8)")
    assert_one_line_error(*invoke(quickstart_run, "--out", out, "--target", "coreml"),
                          "unknown target 'coreml'")
    assert_one_line_error(*invoke(quickstart_run, "--out", out, "--target", "openvino",
                                  "--tensorrt-version", "10.3"), "is for --target tensorrt")
    assert_one_line_error(*invoke(quickstart_run, "--out", out, "--target", "tensorrt",
                                  "--variant", "fp32", "--tensorrt-version", "9.0"),
                          "unknown target TensorRT 9.0")
    assert_one_line_error(*invoke(tmp_path, "--out", out), "not an edgevision run directory")
    assert not out.exists()
    empty = tmp_path / "failed"
    with RunDir.prepare(empty) as run:  # what a run that failed before its model leaves
        run.write_manifest(recipe="tiny", status="failed", error="stopped", artifacts=[])
    assert_one_line_error(*invoke(empty, "--out", out), "has no finished model")
    code, output = invoke(quickstart_run, "--out", out, "--target", "openvino")
    assert code == 0, output
    assert_one_line_error(*invoke(quickstart_run, "--out", out), "use --force")
    code, output = invoke(quickstart_run, "--out", out, "--force", "--variant", "fp32")
    assert code == 0 and json.loads((out / "model.json").read_text())["variant"] == "fp32"
    (out / "notes.txt").write_text("mine")
    assert_one_line_error(*invoke(quickstart_run, "--out", out, "--force"),
                          "not a bundle's (notes.txt)")
    assert (out / "notes.txt").read_text() == "mine"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".partial")] == []
    project = tmp_path / "project"  # a user's folder whose names happen to be a bundle's
    (project / "cpp").mkdir(parents=True)
    (project / "README.md").write_text("my project")
    assert_one_line_error(*invoke(quickstart_run, "--out", project, "--force"),
                          "is not an edgevision bundle")
    assert (project / "README.md").read_text() == "my project"
    assert_one_line_error(*invoke(quickstart_run, "--out", "."), "already holds files")
    assert_one_line_error(*invoke(quickstart_run, "--out", "/"), "name the bundle's own folder")


def test_out_that_is_a_file_is_refused(quickstart_run: Path, tmp_path: Path) -> None:
    (tmp_path / "b").write_text("x")
    with pytest.raises(OutputError, match="not a folder"):
        make_bundle(quickstart_run, tmp_path / "b")


def test_runner_bad_input(openvino_bundle: Path, test_images: list[Path], photos: list[Path],
                          tmp_path: Path) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(test_images[0].read_bytes()[:40])
    cases = {  # input → what the one line says
        str(tmp_path / "missing.jpg"): "no such image file",
        str(tmp_path / "text.jpg"): "cannot decode image",
        str(broken): "cannot decode image",
        str(photos[0]): "image is 224x224 after preprocessing; the model takes 32x32",
    }
    (tmp_path / "text.jpg").write_text("not an image")
    for image, fragment in cases.items():
        result = run_runner(openvino_bundle, test_images[0], image)
        assert result.returncode == 2 and result.stdout == "", result.stderr
        assert result.stderr.count("\n") == 1 and fragment in result.stderr, result.stderr


def test_runner_feeds_the_smallest_batch_the_model_takes(openvino_bundle: Path,
                                                        test_images: list[Path],
                                                        tmp_path: Path) -> None:
    """A profile whose smallest batch is 2 (a TensorRT engine built so): the image is
    repeated to fill it and its scores are the batch-1 ones."""
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(openvino_bundle, copy)
    meta = json.loads((copy / "model.json").read_text())
    meta["input"]["batch"]["min"] = 2
    (copy / "model.json").write_text(json.dumps(meta))
    images = test_images[:5]
    assert runner_json(copy, images, runs=2)["images"] == \
        runner_json(openvino_bundle, images, runs=2)["images"]


def test_runner_refuses_preprocessing_it_does_not_implement(openvino_bundle: Path,
                                                            test_images: list[Path],
                                                            tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(openvino_bundle, copy)
    meta = json.loads((copy / "model.json").read_text())
    meta["preprocess"]["interpolation"] = "bicubic"
    (copy / "model.json").write_text(json.dumps(meta))
    result = run_runner(copy, test_images[0])
    assert result.returncode == 2 and "interpolation 'bicubic' is not one" in result.stderr


def test_runner_bad_bundle(openvino_bundle: Path, test_images: list[Path],
                           tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(openvino_bundle, copy)
    (copy / "model.onnx").unlink()
    result = run_runner(copy, test_images[0])
    assert result.returncode == 2 and "model.onnx is missing" in result.stderr
    assert result.stderr.count("\n") == 1
    (copy / "model.json").write_text("{")
    result = run_runner(copy, test_images[0])
    assert result.returncode == 2 and "cannot read" in result.stderr
    assert result.stderr.count("\n") == 1


def test_tf_style_normalisation_resize_and_crop(tf_style_run: Path, test_images: list[Path],
                                                photos: list[Path], tmp_path: Path) -> None:
    bundle = make_bundle(tf_style_run, tmp_path / "tf", target="onnxruntime").folder
    meta = json.loads((bundle / "model.json").read_text())
    assert meta["preprocess"]["mean"] == [0.5, 0.5, 0.5] == meta["preprocess"]["std"]
    assert (meta["preprocess"]["resize_shorter"], meta["preprocess"]["center_crop"]) == (36, 32)
    images = test_images[::5] + photos  # 32×32 and 224×224, colour and grey
    result = runner_json(bundle, images, runs=0)
    expected = backend_outputs(OnnxRuntimeBackend, bundle / "model.onnx", images)
    assert_same_predictions(result, expected, meta["labels"])
    # the normalisation matters: torchvision's mean/std would give other outputs
    imagenet = Preprocess(image_size=32, resize=36, mean=(0.485, 0.456, 0.406),
                          std=(0.229, 0.224, 0.225))
    with OnnxRuntimeBackend(bundle / "model.onnx", threads=2) as session:
        other = session.predict(np.stack([imagenet(read_image(p)) for p in images]))
    assert float(np.abs(other - expected).max()) > 1.0


def load_runner() -> ModuleType:
    """The runner template as a module (it imports no edgevision: see the subprocess tests)."""
    spec = importlib.util.spec_from_file_location("bundle_run", TEMPLATE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("resize, size, channels, mean, std", [
    (None, None, 3, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    (36, 32, 3, (0.5,), (0.5,)),
    (None, 24, 3, (0.4914, 0.4822, 0.4465), (0.247, 0.2435, 0.2616)),
    (256, 224, 3, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    (None, 160, 3, (0.498,), (0.502,)),
    (100, None, 3, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    (None, 28, 1, (0.286,), (0.353,)),
])
def test_runner_preprocessing_is_edgevision_bit_for_bit(
        resize: int | None, size: int | None, channels: int, mean: tuple[float, ...],
        std: tuple[float, ...], test_images: list[Path], photos: list[Path]) -> None:
    runner = load_runner()
    reference = Preprocess(image_size=size, resize=resize, mean=mean, std=std,
                           channels=channels)
    shape = (-1, channels, size or 32, size or 32)
    spec = preprocess_spec({"preprocess": reference.to_dict()}, Path("model.onnx"),
                           InputSpec(name="input", dtype="float32", layout="NCHW",
                                     shape=list(shape), batch=Batch(min=1, max=None)))
    pre = spec.model_dump()
    images = [read_image(p) for p in test_images[:10] + photos]
    images += [image.crop((0, 0, 224, 150)) for image in images[-4:]]  # real, not square
    for image in images:
        expected, got = reference(image), runner.preprocess(image, pre)
        assert got.dtype == np.float32 and np.array_equal(got, expected), image.size



def test_cpp_runner_layout(quickstart_run: Path, tmp_path: Path,
                           monkeypatch: pytest.MonkeyPatch) -> None:
    """templates/cpp/<target>/ becomes cpp/ and templates/cpp/common/ cpp/common/ (stand-in
    template files here: the C++ runners have tests of their own)."""
    from edgevision.bundle import make

    templates = tmp_path / "templates"
    (templates / "cpp" / "openvino").mkdir(parents=True)
    (templates / "cpp" / "common").mkdir()
    for name in ("run.py", "README.md"):
        (templates / name).write_bytes((make.TEMPLATES / name).read_bytes())
    (templates / "cpp" / "openvino" / "CMakeLists.txt").write_text("project(x)\n")
    (templates / "cpp" / "common" / "image.hpp").write_text("#pragma once\n")
    monkeypatch.setattr(make, "TEMPLATES", templates)
    folder = make_bundle(quickstart_run, tmp_path / "ov", target="openvino").folder
    assert (folder / "cpp" / "CMakeLists.txt").read_text() == "project(x)\n"
    assert (folder / "cpp" / "common" / "image.hpp").is_file()
    assert "cmake -S cpp -B build -DOpenVINO_DIR=" in (folder / "README.md").read_text()
    ort = make_bundle(quickstart_run, tmp_path / "ort", target="onnxruntime").folder
    assert not (ort / "cpp").exists()
    assert "no C++ runner" in (ort / "README.md").read_text()


def test_the_python_api_name_survives_importing_the_package() -> None:
    import edgevision
    import edgevision.bundle

    assert edgevision.make_bundle is edgevision.bundle.make_bundle
    assert callable(edgevision.make_bundle) and callable(edgevision.make_bundle)
