"""The bundle's C++ runners (edgevision/bundle/templates/cpp) on real data.

The OpenVINO runner is built with CMake from a bundle-shaped folder (``cpp/`` = the target's
CMakeLists.txt + main.cpp beside ``common/``) against the `openvino` wheel's C++ SDK, and run on
100 CIFAR-10 test JPEGs with the pretrained ResNet-20 (FP32 and the cpu target's INT8 graph):
its top-1 equals edgevision's `openvino` backend's on the same file and images, its inputs equal
``Preprocess``'s bit for bit, also on ImageNet photos of other sizes, grey images and other
normalisations; files Pillow refuses (corrupt, truncated, decompression bombs) and formats
other than PNG and JPEG are one-line errors, clean under ASan + UBSan. The TensorRT runner's
CMake project is configured and compiled against NVIDIA's headers of each supported release
(``../shared/vendor/tensorrt-headers``); it cannot link or run here.

Needs cmake, g++ and the Debian packages libstb-dev, nlohmann-json3-dev, libjpeg-dev, zlib1g-dev
(``scripts/setup`` installs them): without them these tests skip, saying so, except under
CI=true, where they fail.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from edgevision.data import Dataset
from edgevision.data.preprocess import Preprocess
from edgevision.data.sources import read_image
from edgevision.recipe import DataSpec
from tests.conftest import REPO, SHARED_DATA, export_resnet20, missing, require

TEMPLATES = REPO / "edgevision" / "bundle" / "templates" / "cpp"
TENSORRT_HEADERS = REPO.parent / "shared" / "vendor" / "tensorrt-headers"
TENSORRT_RELEASES = ("10.3", "10.13", "11.1")
CUDA_INCLUDE_DIRS = (Path("/usr/local/cuda-13.0/include"), Path("/usr/local/cuda/include"))
IMAGENETTE_ARCHIVE = SHARED_DATA / "imagenette-224.tar.gz"
#: Debian packages the C++ runners build with, and a header each installs
BUILD_PACKAGES = {"libstb-dev": Path("/usr/include/stb/stb_image.h"),
                  "nlohmann-json3-dev": Path("/usr/include/nlohmann/json.hpp"),
                  "libjpeg-dev": Path("/usr/include/jpeglib.h"),
                  "zlib1g-dev": Path("/usr/include/zlib.h")}
IMAGES_PER_CLASS = 10




def _require_build_tools() -> None:
    for tool in ("cmake", "g++"):
        if shutil.which(tool) is None:
            missing(f"{tool} not found (the C++ runner tests build with it)")
    absent = [name for name, header in BUILD_PACKAGES.items() if not header.exists()]
    if absent:
        missing(f"{', '.join(absent)} not installed: apt-get install {' '.join(absent)} "
                 "(scripts/setup does it as root)")


def bundle_cpp(target: str, bundle: Path) -> Path:
    """Copy the C++ runner of ``target`` into ``bundle``/cpp as the bundle command does:
    ``templates/cpp/common`` -> ``cpp/common``, ``templates/cpp/<target>/*`` -> ``cpp/``."""
    cpp = bundle / "cpp"
    shutil.copytree(TEMPLATES / "common", cpp / "common")
    for path in (TEMPLATES / target).iterdir():
        shutil.copy2(path, cpp / path.name)
    return cpp


def _run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=300, **kwargs)


def _build_openvino_runner(folder: Path, *cmake_args: str) -> Path:
    """The OpenVINO runner built with CMake in a bundle-shaped folder under ``folder``."""
    _require_build_tools()
    try:
        import openvino
    except ImportError:
        missing("openvino not installed (pip install 'edgevision[openvino]')")
    cpp = bundle_cpp("openvino", folder)
    configure = _run(["cmake", "-S", str(cpp), "-B", str(cpp / "build"),
                      f"-DOpenVINO_DIR={Path(openvino.__file__).parent / 'cmake'}", *cmake_args])
    assert configure.returncode == 0, configure.stdout + configure.stderr
    build = _run(["cmake", "--build", str(cpp / "build"), "-j", str(os.cpu_count() or 2)])
    assert build.returncode == 0, build.stdout + build.stderr
    return cpp / "build" / "edgevision-run"


@pytest.fixture(scope="session")
def openvino_runner(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The OpenVINO runner built with CMake in a bundle-shaped folder (built once a session)."""
    return _build_openvino_runner(tmp_path_factory.mktemp("bundle"))


@pytest.fixture(scope="session")
def sanitized_runner(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The OpenVINO runner built unoptimised with AddressSanitizer and UndefinedBehaviorSanitizer
    (every report fatal)."""
    flags = "-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
    return _build_openvino_runner(tmp_path_factory.mktemp("sanitized"), "-DCMAKE_BUILD_TYPE=Debug",
                                  "-DCMAKE_CXX_FLAGS_DEBUG=", f"-DCMAKE_CXX_FLAGS={flags}")


@dataclass
class Bundle:
    """A model folder as the bundle command writes it: model.json beside model.onnx."""

    model_json: Path
    onnx: Path


def write_model_json(folder: Path, preprocess: dict[str, Any], *, labels: list[str],
                     channels: int = 3, size: int = 32, onnx: Path | None = None,
                     **overrides: Any) -> Path:
    """A model.json (schema edgevision.bundle/1) for ``onnx`` (copied to ``folder``)."""
    folder.mkdir(parents=True, exist_ok=True)
    input_name, output_name = "input", "logits"
    if onnx is not None:
        import onnx as onnx_lib

        graph = onnx_lib.load(str(onnx)).graph
        input_name, output_name = graph.input[0].name, graph.output[0].name
        shutil.copy2(onnx, folder / "model.onnx")
    document: dict[str, Any] = {
        "schema": "edgevision.bundle/1", "name": "test", "variant": "test",
        "target": "openvino", "precision": "fp32",
        "model": {"file": "model.onnx", "sha256": None, "source": None, "source_sha256": None,
                  "engine": None, "build_command": None},
        "input": {"name": input_name, "dtype": "float32", "layout": "NCHW",
                  "shape": [-1, channels, size, size], "batch": {"min": 1, "max": None}},
        "output": {"name": output_name, "kind": "logits", "classes": len(labels)},
        "preprocess": {"color": "RGB" if channels == 3 else "L", "interpolation": "bilinear-pillow",
                       "scale": 1 / 255, "channel_order": "RGB" if channels == 3 else "L",
                       "layout": "CHW", **preprocess},
        "labels": labels, "measured": None, "versions": {},
    }
    document.update(overrides)
    path = folder / "model.json"
    path.write_text(json.dumps(document, indent=2))
    return path


def contract_preprocess(preprocess: Preprocess) -> dict[str, Any]:
    """model.json's preprocess fields for an edgevision ``Preprocess``."""
    return {"resize_shorter": preprocess.resize, "center_crop": preprocess.image_size,
            "mean": list(preprocess.mean), "std": list(preprocess.std)}


@pytest.fixture(scope="session")
def cifar_dataset(cifar_archive: Path) -> Dataset:
    return Dataset.from_spec(DataSpec(root=cifar_archive, calibration_size=64))


@pytest.fixture(scope="session")
def cifar_images(cifar_root: Path) -> list[Path]:
    """100 CIFAR-10 test JPEGs: the first 10 of each class."""
    classes = sorted(p for p in (cifar_root / "test").iterdir() if p.is_dir())
    return [path for folder in classes for path in sorted(folder.glob("*.jpg"))[:IMAGES_PER_CLASS]]


@pytest.fixture(scope="session")
def bundles(tmp_path_factory: pytest.TempPathFactory, cifar_dataset: Dataset,
            resnet20_checkpoint: Path) -> dict[str, Bundle]:
    """The pretrained ResNet-20 as FP32 ONNX and as the cpu target's INT8 Q/DQ graph (64
    calibration images), each in a model folder with its model.json."""
    from edgevision.quantization.calibration import BatchReader
    from edgevision.quantization.ptq import Int8Options, prepare_model, quantize_int8
    from edgevision.quantization.targets import TARGETS

    work = tmp_path_factory.mktemp("models")
    _, _, fp32 = export_resnet20(resnet20_checkpoint, cifar_dataset, work)
    prepared = prepare_model(fp32, work / "model.prep.onnx")
    int8 = quantize_int8(prepared, work / "model.int8.onnx", Int8Options(TARGETS["cpu"]),
                         reader=BatchReader(cifar_dataset.calibration_set(), "input", 64))
    preprocess = contract_preprocess(cifar_dataset.preprocess)
    return {name: Bundle(write_model_json(work / name, preprocess, labels=cifar_dataset.classes,
                                          onnx=onnx), work / name / "model.onnx")
            for name, onnx in (("fp32", fp32), ("int8", int8))}


def run_json(runner: Path, model_json: Path, images: list[Path], *extra: str) -> dict[str, Any]:
    result = _run([str(runner), str(model_json), *map(str, images), "--json", "--threads", "2",
                   *extra])
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def dumped_inputs(runner: Path, model_json: Path, images: list[Path], shape: tuple[int, ...],
                  folder: Path) -> np.ndarray:
    """The runner's preprocessed inputs (``--dump-input``), one CHW array per image."""
    dump = folder / "inputs.f32"
    result = _run([str(runner), str(model_json), *map(str, images), "--dump-input", str(dump)])
    assert result.returncode == 0, result.stderr
    return np.fromfile(dump, dtype=np.float32).reshape(len(images), *shape)


def python_inputs(preprocess: Preprocess, images: list[Path]) -> np.ndarray:
    return np.stack([preprocess(read_image(path)) for path in images])


# --- the OpenVINO runner against edgevision's openvino backend ---


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_openvino_runner_matches_the_backend(openvino_runner: Path, bundles: dict[str, Bundle],
                                             cifar_dataset: Dataset, cifar_images: list[Path],
                                             precision: str) -> None:
    """100 real CIFAR-10 test images: the C++ runner's top-1 equals the `openvino` backend's
    (same file, images preprocessed by ``Preprocess``, batch 1, 2 threads) on every image; the
    FP32 scores agree within 1e-4; the top-1 is a working model's."""
    from edgevision.backends.openvino import OpenVinoBackend

    bundle = bundles[precision]
    output = run_json(openvino_runner, bundle.model_json, cifar_images, "--runs", "5")
    inputs = python_inputs(cifar_dataset.preprocess, cifar_images)
    with OpenVinoBackend(bundle.onnx, threads=2) as backend:
        expected = np.concatenate([backend.run(inputs[i:i + 1]) for i in range(len(inputs))])
    got_top1 = [image["top5"][0]["index"] for image in output["images"]]
    assert [image["file"] for image in output["images"]] == [str(p) for p in cifar_images]
    assert got_top1 == expected.argmax(axis=1).tolist()
    labels = [cifar_dataset.classes.index(path.parent.name) for path in cifar_images]
    assert np.mean(np.asarray(got_top1) == np.asarray(labels)) > 0.7  # a working model
    for image, scores in zip(output["images"], expected, strict=True):
        top5 = image["top5"]
        assert [entry["index"] for entry in top5] == np.argsort(-scores, kind="stable")[:5].tolist()
        assert all(entry["label"] == cifar_dataset.classes[entry["index"]] for entry in top5)
        if precision == "fp32":
            np.testing.assert_allclose([entry["score"] for entry in top5],
                                       scores[[entry["index"] for entry in top5]], atol=1e-4)
    latency = output["latency_ms"]
    assert latency["runs"] == 5 and 0 < latency["p50"] <= latency["p90"]


def test_openvino_runner_prints_top5_and_latency(openvino_runner: Path,
                                                 bundles: dict[str, Bundle],
                                                 cifar_images: list[Path]) -> None:
    result = _run([str(openvino_runner), str(bundles["fp32"].model_json), str(cifar_images[0]),
                   "--runs", "3"])
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == str(cifar_images[0])
    assert len([line for line in lines if line.startswith("  ")]) == 5
    assert lines[-1].startswith("latency: p50 ") and "(3 runs" in lines[-1]


def test_cifar_inputs_equal_preprocess(openvino_runner: Path, bundles: dict[str, Bundle],
                                       cifar_dataset: Dataset, cifar_images: list[Path],
                                       tmp_path: Path) -> None:
    """The 100 CIFAR-10 JPEGs (libjpeg decoding, no resize): the same float32 tensors."""
    got = dumped_inputs(openvino_runner, bundles["fp32"].model_json, cifar_images, (3, 32, 32),
                        tmp_path)
    np.testing.assert_array_equal(got, python_inputs(cifar_dataset.preprocess, cifar_images))


def test_runs_0_times_nothing(openvino_runner: Path, bundles: dict[str, Bundle],
                              cifar_images: list[Path]) -> None:
    """--runs 0, as in the Python runner: no latency line, "latency_ms": null; the top-5 as
    with timing."""
    model_json, images = bundles["fp32"].model_json, cifar_images[:2]
    untimed = run_json(openvino_runner, model_json, images, "--runs", "0")
    assert untimed["latency_ms"] is None
    timed = run_json(openvino_runner, model_json, images, "--runs", "1")
    assert untimed["images"] == timed["images"]
    text = _run([str(openvino_runner), str(model_json), *map(str, images), "--runs", "0"])
    assert text.returncode == 0, text.stderr
    assert len(text.stdout.splitlines()) == 12 and "latency" not in text.stdout


def test_negative_runs_is_one_line_error(openvino_runner: Path, bundles: dict[str, Bundle],
                                         cifar_images: list[Path]) -> None:
    result = _run([str(openvino_runner), str(bundles["fp32"].model_json), str(cifar_images[0]),
                   "--runs", "-1"])
    _assert_one_line_error(result, "--runs takes an integer >= 0, not '-1'")


def _with_batch_min(model_json: Path, folder: Path, batch_min: int) -> Path:
    """A copy of ``model_json`` (and its model.onnx) whose input.batch.min is ``batch_min``."""
    folder.mkdir()
    shutil.copy2(model_json.parent / "model.onnx", folder / "model.onnx")
    document = json.loads(model_json.read_text())
    document["input"]["batch"] = {"min": batch_min, "max": None}
    (folder / "model.json").write_text(json.dumps(document))
    return folder / "model.json"


def test_batch_min_2_feeds_two_copies_and_reads_the_first(openvino_runner: Path,
                                                          bundles: dict[str, Bundle],
                                                          cifar_images: list[Path],
                                                          tmp_path: Path) -> None:
    """input.batch.min 2 (a TensorRT profile's smallest batch) on the dynamic-batch ResNet-20:
    the runner feeds two copies of each image; the scores are batch 1's (within float
    tolerance), the top-5 the same, and the timed runs are at batch 2."""
    images = cifar_images[:4]
    batch1 = run_json(openvino_runner, bundles["fp32"].model_json, images, "--runs", "0")
    model_json = _with_batch_min(bundles["fp32"].model_json, tmp_path / "b2", 2)
    batch2 = run_json(openvino_runner, model_json, images, "--runs", "0")
    for one, two in zip(batch1["images"], batch2["images"], strict=True):
        assert [e["index"] for e in two["top5"]] == [e["index"] for e in one["top5"]]
        np.testing.assert_allclose([e["score"] for e in two["top5"]],
                                   [e["score"] for e in one["top5"]], atol=1e-5)
    text = _run([str(openvino_runner), str(model_json), str(images[0]), "--runs", "2"])
    assert text.returncode == 0, text.stderr
    assert text.stdout.splitlines()[-1].endswith("(2 runs of the first image, batch 2)")


def test_a_model_that_takes_only_batch_2_runs(openvino_runner: Path, tmp_path: Path,
                                              photos: list[Path]) -> None:
    """A graph that reshapes its input to [2, 3072] (so batch 1 cannot run) with
    input.batch.min 2: it runs, and the scores are the first row of flat(x) @ W for the
    runner's own preprocessed input x."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = np.random.default_rng(0).standard_normal((3 * 32 * 32, 2)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["input", "shape"], ["flat"]),
         helper.make_node("MatMul", ["flat", "weights"], ["logits"])],
        "batch2", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 32, 32])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [2, 2])],
        initializer=[numpy_helper.from_array(np.array([2, -1], dtype=np.int64), "shape"),
                     numpy_helper.from_array(weights, "weights")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    onnx.save(model, tmp_path / "batch2.onnx")
    model_json = write_model_json(tmp_path / "m", {"resize_shorter": 36, "center_crop": 32,
                                                   "mean": [0.5], "std": [0.5]},
                                  labels=["a", "b"], onnx=tmp_path / "batch2.onnx")
    document = json.loads(model_json.read_text())
    document["input"]["batch"]["min"] = 2
    model_json.write_text(json.dumps(document))
    output = run_json(openvino_runner, model_json, photos[:1], "--runs", "0")
    x = dumped_inputs(openvino_runner, model_json, photos[:1], (3, 32, 32), tmp_path)
    expected = x.reshape(1, -1) @ weights
    top = output["images"][0]["top5"]
    np.testing.assert_allclose([e["score"] for e in top], expected[0, [e["index"] for e in top]],
                               rtol=1e-4, atol=1e-4)


# --- preprocessing parity on photos of other sizes, grey images, other normalisations ---


@pytest.fixture(scope="session")
def photos(tmp_path_factory: pytest.TempPathFactory, cifar_images: list[Path]) -> list[Path]:
    """Real images of many shapes: six 224x224 Imagenette photos (JPEG) and its first grey
    one, non-square crops (up to 1:3.3, where Pillow 13 resizes vertically first) and a small
    crop of a photo (PNG), an RGBA and a grey PNG, and two 32x32 CIFAR-10 JPEGs (upscaled by a
    larger resize)."""
    archive = require(IMAGENETTE_ARCHIVE, "Imagenette-224 archive")
    folder = tmp_path_factory.mktemp("photos")
    colour: list[Path] = []
    grey: list[Path] = []
    with tarfile.open(archive, "r|gz") as tar:
        for member in tar:
            if not (member.isfile() and member.name.endswith(".JPEG")):
                continue
            data = tar.extractfile(member).read()  # type: ignore[union-attr]
            mode = Image.open(io.BytesIO(data)).mode
            found = colour if mode == "RGB" else grey
            if (mode == "RGB" and len(colour) < 6) or (mode == "L" and not grey):
                found.append(folder / Path(member.name).name)
                found[-1].write_bytes(data)
            if len(colour) == 6 and grey:
                break
    assert grey, "no grey photo in the Imagenette archive"
    photo = read_image(colour[0]).convert("RGB")
    derived = {"wide.png": photo.crop((0, 37, 224, 187)), "tall.png": photo.crop((37, 0, 187, 224)),
               "taller.png": photo.crop((80, 12, 140, 212)),  # Pillow 13: vertical pass first
               "wider.png": photo.crop((12, 80, 212, 140)),
               "small.png": photo.crop((10, 20, 30, 48)),
               "rgba.png": read_image(colour[1]).convert("RGBA"),
               "grey.png": read_image(colour[2]).convert("L")}
    for name, image in derived.items():
        image.save(folder / name)
    return [*colour, *grey, *(folder / name for name in derived), *cifar_images[:2]]


#: (name, resize, center crop, channels, mean, std): torchvision-style normalisation,
#: TensorFlow-style (x * 255 - 127) / 128, grey models; downscaling, upscaling, crop only
PREPROCESS_CASES = [
    ("resize36-crop32", 36, 32, 3, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    ("crop32-only", None, 32, 3, (0.4914, 0.4822, 0.4465), (0.247, 0.2435, 0.2616)),
    ("resize40-crop32-tf", 40, 32, 3, (127 / 255,) * 3, (128 / 255,) * 3),
    ("resize73-crop64", 73, 64, 3, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    ("grey-resize36-crop32", 36, 32, 1, (0.2860,), (0.3530,)),
]


@pytest.mark.parametrize(("resize", "crop", "channels", "mean", "std"),
                         [case[1:] for case in PREPROCESS_CASES],
                         ids=[case[0] for case in PREPROCESS_CASES])
def test_inputs_equal_preprocess(openvino_runner: Path, photos: list[Path], tmp_path: Path,
                                 resize: int | None, crop: int, channels: int,
                                 mean: tuple[float, ...], std: tuple[float, ...]) -> None:
    """Pillow's antialiased BILINEAR resize, Python's rounding of the size, the crop, Pillow's
    grey<->RGB conversions and the normalisation, ported to C++: bit-identical float32 inputs
    on every image."""
    preprocess = Preprocess(image_size=crop, resize=resize, mean=mean, std=std,
                            channels=channels)
    model_json = write_model_json(tmp_path, contract_preprocess(preprocess), labels=["a", "b"],
                                  channels=channels, size=crop)
    got = dumped_inputs(openvino_runner, model_json, photos, (channels, crop, crop), tmp_path)
    expected = python_inputs(preprocess, photos)
    assert float(np.abs(got - expected).max()) == 0.0
    np.testing.assert_array_equal(got, expected)


# --- bad input: one line on stderr, exit status 2 ---


BAD_CASES = ["undecodable", "truncated-jpeg", "missing-image", "wrong-size", "missing-model",
             "malformed-json", "missing-field", "wrong-schema"]


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_input_is_one_line_and_exit_2(openvino_runner: Path, bundles: dict[str, Bundle],
                                          cifar_dataset: Dataset, cifar_images: list[Path],
                                          tmp_path: Path, case: str) -> None:
    model_json, image = bundles["fp32"].model_json, cifar_images[0]
    preprocess = contract_preprocess(cifar_dataset.preprocess)
    labels = cifar_dataset.classes
    expected = {"undecodable": "cannot decode the image", "truncated-jpeg": "cannot decode",
                "missing-image": "no such image file",
                "wrong-size": "image is 64x48 after preprocessing; the model takes 32x32",
                "missing-model": "model file not found", "malformed-json": "not valid JSON",
                "missing-field": "input is missing", "wrong-schema": "is not edgevision.bundle/1"}
    if case == "undecodable":
        image = tmp_path / "noise.jpg"
        image.write_bytes(b"this is not an image")
    elif case == "truncated-jpeg":
        image = tmp_path / "truncated.jpg"
        image.write_bytes(cifar_images[0].read_bytes()[:300])
    elif case == "missing-image":
        image = tmp_path / "absent.png"
    elif case == "wrong-size":
        image = tmp_path / "photo.png"
        read_image(cifar_images[0]).resize((64, 48)).save(image)
        model_json = write_model_json(tmp_path / "m", preprocess | {"resize_shorter": None,
                                                                    "center_crop": None},
                                      labels=labels, onnx=bundles["fp32"].onnx)
    elif case == "missing-model":
        model_json = write_model_json(tmp_path / "m", preprocess, labels=labels)
    elif case == "malformed-json":
        model_json = tmp_path / "model.json"
        model_json.write_text('{"schema": "edgevision.bundle/1", "input": ')
    elif case == "missing-field":
        model_json = write_model_json(tmp_path / "m", preprocess, labels=labels,
                                      onnx=bundles["fp32"].onnx)
        document = json.loads(model_json.read_text())
        del document["input"]
        model_json.write_text(json.dumps(document))
    elif case == "wrong-schema":
        model_json = write_model_json(tmp_path / "m", preprocess, labels=labels,
                                      onnx=bundles["fp32"].onnx, schema="edgevision.bundle/99")
    result = _run([str(openvino_runner), str(model_json), str(image), "--runs", "1"])
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("edgevision-run: ")
    assert expected[case] in result.stderr


def _assert_one_line_error(result: subprocess.CompletedProcess[str], expected: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("edgevision-run: ")
    assert expected in result.stderr


def _pillow_refuses(path: Path) -> str:
    """Pillow's (edgevision's) refusal of ``path``: its message; fails when Pillow decodes it."""
    try:
        with Image.open(path) as image:
            image.load()
    except (OSError, SyntaxError, Image.DecompressionBombError) as exc:
        return str(exc)
    raise AssertionError(f"Pillow decodes {path}")


def _png_chunks(data: bytes) -> dict[bytes, tuple[int, int]]:
    """Each chunk type's first (offset, data length) in a PNG file."""
    chunks: dict[bytes, tuple[int, int]] = {}
    pos = 8
    while pos < len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        chunks.setdefault(data[pos + 4:pos + 8], (pos, length))
        pos += 12 + length
    return chunks


def _flip_byte(data: bytes, offset: int) -> bytes:
    return data[:offset] + bytes([data[offset] ^ 0x01]) + data[offset + 1:]


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims ``width`` x ``height`` RGB, with a one-row IDAT and IEND."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (len(body).to_bytes(4, "big") + kind + body
                + zlib.crc32(kind + body).to_bytes(4, "big"))
    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(bytes(1 + 3 * 16))) + chunk(b"IEND", b""))


def _jpeg_patched(jpeg: bytes, markers: tuple[bytes, ...], offset: int, value: bytes) -> bytes:
    """``jpeg`` with ``value`` written ``offset`` bytes after the first of ``markers``."""
    at = min(i for i in map(jpeg.find, markers) if i >= 0) + offset
    return jpeg[:at] + value + jpeg[at + len(value):]


def _jpeg_claiming(jpeg: bytes, width: int, height: int) -> bytes:
    """``jpeg`` with its frame header (SOF0 or SOF2) claiming another size."""
    size = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    return _jpeg_patched(jpeg, (b"\xff\xc0", b"\xff\xc2"), 5, size)


def _saved(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


#: corrupt or oversized files Pillow refuses -> what the C++ runner says
CORRUPT_CASES = {
    "png-truncated": "cannot decode the PNG image (the file is truncated)",
    "png-header-crc": "cannot decode the PNG image (bad CRC-32 in its IHDR chunk",
    "png-data-flipped": "cannot decode the PNG image (bad CRC-32 in its IDAT chunk",
    "jpeg-truncated": "cannot decode the JPEG image (Premature end of JPEG file)",
    "jpeg-without-end": "cannot decode the JPEG image (Premature end of JPEG file)",
    "jpeg-12-bit": "cannot decode the JPEG image (Unsupported JPEG data precision 12)",
    "jpeg-undefined-table": "cannot decode the JPEG image (Huffman table 0x03 was not defined)",
    "bmp-truncated": "cannot decode the image (not PNG or JPEG",
    "gif-truncated": "cannot decode the image (not PNG or JPEG",
    "png-20000x20000": "the image is 20000x20000, more than 178956970 pixels",
    "jpeg-20000x20000": "the image is 20000x20000, more than 178956970 pixels",
}


def corrupt_image(case: str, photo: Path, folder: Path) -> Path:
    """A real photo (JPEG) made into the file ``case`` names."""
    jpeg = photo.read_bytes()
    image = read_image(photo).convert("RGB")
    png = _saved(image, "PNG")
    ihdr, idat = _png_chunks(png)[b"IHDR"], _png_chunks(png)[b"IDAT"]
    data = {"png-truncated": lambda: png[:len(png) // 2],
            "png-header-crc": lambda: _flip_byte(png, ihdr[0] + 8 + ihdr[1]),
            "png-data-flipped": lambda: _flip_byte(png, idat[0] + 8 + idat[1] // 2),
            "jpeg-truncated": lambda: jpeg[:len(jpeg) // 2],
            "jpeg-without-end": lambda: jpeg[:-2],
            "jpeg-12-bit": lambda: _jpeg_patched(jpeg, (b"\xff\xc0", b"\xff\xc2"), 4, b"\x0c"),
            # the first scan's first component: Huffman tables 3, never defined
            "jpeg-undefined-table": lambda: _jpeg_patched(jpeg, (b"\xff\xda",), 6, b"\x33"),
            "bmp-truncated": lambda: _saved(image, "BMP")[:-600],
            "gif-truncated": lambda: _saved(image, "GIF")[:-600],
            "png-20000x20000": lambda: _png_header_only(20000, 20000),
            "jpeg-20000x20000": lambda: _jpeg_claiming(jpeg, 20000, 20000)}[case]()
    path = folder / f"{case}.{case.split('-')[0]}"
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("case", CORRUPT_CASES)
def test_corrupt_images_pillow_refuses_are_refused(openvino_runner: Path,
                                                   bundles: dict[str, Bundle],
                                                   photos: list[Path], tmp_path: Path,
                                                   case: str) -> None:
    """Truncated files, a flipped checksum or data byte, an unsupported or broken JPEG header
    (libjpeg's errors in jpeg_read_header, jpeg_start_decompress, the scanlines and
    jpeg_finish_decompress), a header claiming 4e8 pixels: Pillow refuses each
    (DecompressionBombError above 2 x MAX_IMAGE_PIXELS), so does the runner, in one line, from
    the header where it can (the 20000x20000 PNG holds one row)."""
    image = corrupt_image(case, photos[0], tmp_path)
    _pillow_refuses(image)
    result = _run([str(openvino_runner), str(bundles["fp32"].model_json), str(image)])
    _assert_one_line_error(result, f"{image}: {CORRUPT_CASES[case]}")


@pytest.mark.parametrize("fmt", ["BMP", "GIF", "TIFF", "WEBP"])
def test_formats_other_than_png_and_jpeg_are_refused(openvino_runner: Path,
                                                     bundles: dict[str, Bundle],
                                                     photos: list[Path], tmp_path: Path,
                                                     fmt: str) -> None:
    """The runner reads PNG and JPEG only (documented): a valid file of another format is a
    one-line error naming them, not a decode by a library that checks less than Pillow."""
    image = tmp_path / f"photo.{fmt.lower()}"
    image.write_bytes(_saved(read_image(photos[0]).convert("RGB"), fmt))
    result = _run([str(openvino_runner), str(bundles["fp32"].model_json), str(image)])
    _assert_one_line_error(result, "not PNG or JPEG, the formats the runner reads")


def test_a_resize_beyond_the_pixel_limit_is_refused(openvino_runner: Path,
                                                    tmp_path: Path) -> None:
    """A 1x10,000,000 PNG (10^7 pixels: decodable) resized so its shorter side is 224 would be
    224x2,240,000,000 (a height beyond 32 bits): refused before the size becomes an int or
    anything is allocated."""
    image = tmp_path / "tall.png"
    Image.new("L", (1, 10_000_000), 128).save(image)
    model_json = write_model_json(tmp_path, {"resize_shorter": 224, "center_crop": 224,
                                             "mean": [0.5], "std": [0.5]},
                                  labels=["a", "b"], size=224)
    result = _run([str(openvino_runner), str(model_json), str(image)])
    _assert_one_line_error(result, f"{image}: resizing the 1x10000000 image gives 224x2240000000, "
                                   "more than 178956970 pixels")


def test_decoding_is_sanitizer_clean(sanitized_runner: Path, bundles: dict[str, Bundle],
                                    photos: list[Path], tmp_path: Path) -> None:
    """Every corrupt file above (libjpeg's error exits longjmp out of each decoding step) and
    the intact photos, decoded and preprocessed under ASan (with LeakSanitizer, its default on
    Linux) + UBSan: the same
    one-line errors and inputs as the optimised build, no sanitizer report."""
    model_json = bundles["fp32"].model_json
    for case, message in CORRUPT_CASES.items():
        image = corrupt_image(case, photos[0], tmp_path)
        result = _run([str(sanitized_runner), str(model_json), str(image), "--dump-input",
                       str(tmp_path / "x.f32")])
        _assert_one_line_error(result, message)
    preprocess = Preprocess(image_size=32, resize=36, mean=(0.5,) * 3, std=(0.5,) * 3)
    model_json = write_model_json(tmp_path / "m", contract_preprocess(preprocess), labels=["a"])
    got = dumped_inputs(sanitized_runner, model_json, photos, (3, 32, 32), tmp_path)
    np.testing.assert_array_equal(got, python_inputs(preprocess, photos))


# --- the TensorRT runner: compile-checked against each release's headers ---


def _cuda_include() -> Path:
    for folder in CUDA_INCLUDE_DIRS:
        if (folder / "cuda_runtime_api.h").exists() and (folder / "crt").is_dir():
            return folder
    missing(f"CUDA's headers (cuda_runtime_api.h) not found in "
            f"{', '.join(map(str, CUDA_INCLUDE_DIRS))}")


@pytest.mark.parametrize("release", TENSORRT_RELEASES)
def test_tensorrt_runner_compiles(release: str) -> None:
    """setInputShape / setTensorAddress / enqueueV3 on pinned and device buffers, the engine
    deserialized with the plugins registered: no error and no warning in the runner's own code
    against NVIDIA's headers of 10.3 (JetPack 6), 10.13 (JetPack 7.0) and 11.1."""
    headers = TENSORRT_HEADERS / release / "include"
    if not (headers / "NvInfer.h").exists():
        missing(f"TensorRT {release} headers not found at {headers} "
                 "(see ../shared/vendor/README.md)")
    if shutil.which("g++") is None:
        missing("g++ not found")
    result = _run(["g++", "-std=c++17", "-fsyntax-only", "-Wall", "-Wextra", "-Werror",
                   f"-I{TEMPLATES / 'common'}", "-isystem", str(headers),
                   "-isystem", str(_cuda_include()), str(TEMPLATES / "tensorrt" / "main.cpp")])
    assert result.returncode == 0, result.stderr


@pytest.fixture(scope="session")
def tensorrt_stand_in_libraries(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with libnvinfer.so and libnvinfer_plugin.so that define nothing: enough for the
    project's find_library; nothing is linked against them."""
    _require_build_tools()
    lib = tmp_path_factory.mktemp("tensorrt-stand-ins")
    for name in ("libnvinfer.so", "libnvinfer_plugin.so"):
        built = _run(["g++", "-shared", "-x", "c++", "/dev/null", "-o", str(lib / name)])
        assert built.returncode == 0, built.stderr
    return lib


@pytest.mark.parametrize("release", TENSORRT_RELEASES)
def test_tensorrt_cmake_project_compiles(release: str, tensorrt_stand_in_libraries: Path,
                                         tmp_path: Path) -> None:
    """The TensorRT project as a bundle ships it (cpp/CMakeLists.txt beside common/) configures
    with -DTENSORRT_ROOT pointing at NVIDIA's headers of ``release`` (libraries: stand-ins) and
    CUDA's toolkit, and compiles without a warning (-Wall -Wextra -Werror): main.cpp's object
    for every release; the edgevision_common library (which includes no TensorRT header, so
    its compilation is the same for every release) for the first. Not linked: no TensorRT."""
    headers = TENSORRT_HEADERS / release / "include"
    if not (headers / "NvInfer.h").exists():
        missing(f"TensorRT {release} headers not found at {headers} "
                 "(see ../shared/vendor/README.md)")
    root = tmp_path / "tensorrt"
    root.mkdir()
    (root / "include").symlink_to(headers)
    (root / "lib").symlink_to(tensorrt_stand_in_libraries)
    cpp = bundle_cpp("tensorrt", tmp_path)
    build = cpp / "build"
    configure = _run(["cmake", "-G", "Unix Makefiles", "-S", str(cpp), "-B", str(build),
                      f"-DTENSORRT_ROOT={root}", f"-DCUDAToolkit_ROOT={_cuda_include().parent}",
                      "-DCMAKE_BUILD_TYPE=Debug", "-DCMAKE_CXX_FLAGS_DEBUG=",
                      "-DCMAKE_CXX_FLAGS=-Wall -Wextra -Werror"])
    assert configure.returncode == 0, configure.stdout + configure.stderr
    targets = ["main.o", "edgevision_common"] if release == TENSORRT_RELEASES[0] else ["main.o"]
    compiled = _run(["cmake", "--build", str(build), "-j", str(os.cpu_count() or 2),
                     "--target", *targets])
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr
    assert (build / "CMakeFiles" / "edgevision-run.dir" / "main.cpp.o").is_file()
