"""OpenVINO on a real exported ResNet-20 and its INT8 QDQ and FP16 graphs, against ONNX
Runtime's CPU provider on CIFAR-10 JPEG images: the `openvino` backend (OpenVINO's own runtime,
the `openvino` extra, installed in .venv by scripts/setup)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgevision.backends import OnnxRuntimeBackend, get_backend
from edgevision.backends.openvino import OpenVinoBackend
from edgevision.benchmarking import Artifact, measure_accuracy
from edgevision.benchmarking.runner import benchmark_artifacts
from edgevision.data import Dataset
from edgevision.errors import ArtifactError, BackendUnavailableError, UnknownNameError
from edgevision.pipeline.benchmark import benchmark
from edgevision.recipe import BenchmarkSpec, DataSpec
from tests.conftest import CIFAR_ARCHIVE, export_resnet20


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory, cifar_archive: Path,
           resnet20_checkpoint: Path) -> dict[str, Path]:
    """The pretrained ResNet-20 as FP32 ONNX and as the cpu target's INT8 QDQ graph (256
    calibration images from the training split)."""
    from edgevision.quantization.calibration import BatchReader
    from edgevision.quantization.ptq import Int8Options, prepare_model, quantize_int8
    from edgevision.quantization.targets import TARGETS

    folder = tmp_path_factory.mktemp("openvino")
    dataset = Dataset.from_spec(DataSpec(root=cifar_archive, calibration_size=256))
    _, _, fp32 = export_resnet20(resnet20_checkpoint, dataset, folder)
    prepared = prepare_model(fp32, folder / "model.prep.onnx")
    int8 = quantize_int8(prepared, folder / "model.int8.onnx", Int8Options(TARGETS["cpu"]),
                         reader=BatchReader(dataset.calibration_set(), "input", 64))
    from edgevision.quantization.fp16 import convert_fp16

    return {"fp32": fp32, "int8": int8, "fp16": convert_fp16(fp32, folder / "model.fp16.onnx").path}


@pytest.fixture(scope="module")
def test_images(cifar_archive: Path) -> Dataset:
    """500 CIFAR-10 JPEG test images."""
    return Dataset.from_spec(DataSpec(root=cifar_archive, eval_limit=500))


def test_removed_provider_backend_names_its_replacement() -> None:
    """onnxruntime-openvino (ONNX Runtime's OpenVINO provider, which replaced the onnxruntime
    package) was removed for the openvino backend: its name says so in one line."""
    with pytest.raises(UnknownNameError, match="'onnxruntime-openvino' was removed: use "
                                               "'openvino'") as caught:
        get_backend("onnxruntime-openvino")
    assert "\n" not in str(caught.value)
    with pytest.raises(UnknownNameError, match="was removed"):
        BenchmarkSpec(backends=["onnxruntime-openvino"])


def test_lone_file_runs_on_every_installed_backend(models: dict[str, Path]) -> None:
    """Unnamed backends (a lone file): every installed one that runs it, openvino included."""
    report = benchmark(models["fp32"], batch_sizes=[1], warmup=1, iterations=2,
                       data=CIFAR_ARCHIVE, limit=32)
    installed = ["onnxruntime", *(["openvino"] if OpenVinoBackend.availability().ok else [])]
    assert [row["backend"] for row in report["rows"]] == installed
    assert all(row["error"] is None for row in report["rows"])


def test_environment_records_the_onnxruntime_that_ran() -> None:
    import onnxruntime

    from edgevision.benchmarking.environment import library_versions

    assert library_versions()["onnxruntime"] == onnxruntime.__version__


def test_native_fp32_logits_match_the_cpu_provider(models: dict[str, Path],
                                                   test_images: Dataset) -> None:
    images = test_images.eval_set().first(64)
    with OnnxRuntimeBackend(models["fp32"], threads=2) as cpu, \
            OpenVinoBackend(models["fp32"], threads=2) as openvino:
        expected, got = cpu.run(images), openvino.run(images)
        single = openvino.run(images[:1])  # another batch size: its own compiled model
        info = openvino.info
        compiled = openvino._compiled[(1, *images.shape[1:])].get_compiled_model()
        assert info.threads == int(compiled.get_property("INFERENCE_NUM_THREADS")) == 2
    assert info.device == "cpu" and info.precision == "fp32"
    assert info.details["performance_hint"] == "LATENCY"
    assert info.details["inference_precision"] == "f32"  # not the CPU plugin's bf16 default
    assert info.details["runtime"].startswith("openvino ")
    np.testing.assert_allclose(got, expected, atol=1e-3, rtol=1e-3)
    np.testing.assert_allclose(single, expected[:1], atol=1e-3, rtol=1e-3)


@pytest.mark.parametrize("precision", ["int8", "fp16"])
def test_native_top1_matches_the_cpu_provider(models: dict[str, Path], test_images: Dataset,
                                              precision: str) -> None:
    """The cpu target's Q/DQ INT8 graph and the FP16 graph: OpenVINO's top-1 on 500 real
    images within 0.5 points of ONNX Runtime's CPU provider on the same file."""
    eval_set = test_images.eval_set()
    with OnnxRuntimeBackend(models[precision], threads=2) as cpu, \
            OpenVinoBackend(models[precision], threads=2) as openvino:
        on_cpu = measure_accuracy(cpu, eval_set, 64)
        on_openvino = measure_accuracy(openvino, eval_set, 64)
    assert on_openvino.images == on_cpu.images == 500
    assert on_cpu.top1 > 80.0  # a working model, not noise
    assert abs(on_openvino.top1 - on_cpu.top1) <= 0.5


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_native_rows_agree_with_onnxruntime(models: dict[str, Path], test_images: Dataset,
                                            precision: str) -> None:
    """The benchmark compares a non-onnxruntime row's logits with ONNX Runtime's (CPU) on the
    same file and the same 500 images, during the accuracy pass: FP32 agrees to float rounding,
    the INT8 Q/DQ graph (OpenVINO's integer kernels vs ONNX Runtime's) on nearly every top-1."""
    spec = BenchmarkSpec(backends=["onnxruntime", "openvino"], batch_sizes=[1], warmup=1,
                         iterations=2, threads=2)
    rows = benchmark_artifacts([Artifact(precision, models[precision])], spec,
                               test_images.eval_set())
    assert [row.backend for row in rows] == ["onnxruntime", "openvino"]
    reference, openvino = rows
    assert reference.error is None and reference.agreement is None  # the reference itself
    assert openvino.error is None and openvino.agreement is not None
    agreement = openvino.agreement
    assert agreement.images == 500
    assert agreement.reference == f"onnxruntime (cpu) on {models[precision].name}"
    if precision == "fp32":
        assert agreement.top1_agreement >= 0.99
        assert agreement.max_abs_diff < 1e-3  # logits of magnitude ~10: float rounding only
    else:
        assert agreement.top1_agreement >= 0.97
    assert 0 < agreement.mean_abs_diff <= agreement.max_abs_diff
    row = openvino.to_dict()["agreement"]
    assert row["top1_agreement"] == agreement.top1_agreement


def test_native_graph_it_cannot_read_is_an_error_row(models: dict[str, Path],
                                                     test_images: Dataset,
                                                     tmp_path: Path) -> None:
    """An operator OpenVINO does not know: a one-line error, in the report a row's error while
    the other backends and files go on."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Mystery", ["input"], ["logits"], domain="com.example")], "mystery",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, 3, 32, 32])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [None, 10])])
    odd = tmp_path / "mystery.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18),
                                                      helper.make_opsetid("com.example", 1)]),
              str(odd))
    with pytest.raises(ArtifactError, match="OpenVINO cannot read it") as caught, \
            OpenVinoBackend(odd):
        pass
    assert "\n" not in str(caught.value)
    spec = BenchmarkSpec(backends=["openvino"], batch_sizes=[1], warmup=1, iterations=2,
                         threads=2)
    rows = benchmark_artifacts([Artifact("odd", odd), Artifact("fp32", models["fp32"])], spec,
                               test_images.eval_set())
    assert "OpenVINO cannot read it" in (rows[0].error or "")
    assert rows[1].error is None and rows[1].accuracy is not None


def test_native_compiles_before_timing_and_keeps_few_models(models: dict[str, Path],
                                                              test_images: Dataset,
                                                              tmp_path: Path) -> None:
    """The compile for a batch shape happens in ``prepare``, not in a timed run; a graph that
    cannot take a batch size is a one-line error at that point."""
    import onnx
    from onnx import TensorProto, helper

    from edgevision.backends.openvino import MAX_COMPILED
    from edgevision.benchmarking.measure import time_runs

    images = test_images.eval_set().first(64)
    with OpenVinoBackend(models["fp32"], threads=2) as openvino:
        times = time_runs(openvino, images, warmup=0, iterations=5)
        assert (64, 3, 32, 32) in openvino._compiled
        assert times.max() < 5 * np.median(times)  # no compile in the first timed run
        for batch in range(1, MAX_COMPILED + 3):
            openvino.run(images[:batch])
        assert len(openvino._compiled) == MAX_COMPILED
    shape = helper.make_tensor("shape", TensorProto.INT64, [2], [4, 3 * 32 * 32])
    graph = helper.make_graph(  # a batch of 4 written into the graph
        [helper.make_node("Reshape", ["input", "shape"], ["logits"])], "fixed",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, 3, 32, 32])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [4, 3072])], [shape])
    fixed = tmp_path / "fixed.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(fixed))
    with pytest.raises(ArtifactError, match="cannot compile it for the CPU at input shape "
                                            r"\(1, 3, 32, 32\)") as caught, \
            OpenVinoBackend(fixed):
        pass
    assert "\n" not in str(caught.value)


def test_native_not_installed_says_how_to_install(models: dict[str, Path],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "openvino", None)  # what a missing package looks like
    status = OpenVinoBackend.availability()
    assert not status.ok and "pip install 'edgevision[openvino]'" in status.reason
    with pytest.raises(BackendUnavailableError, match="'openvino' is unavailable"), \
            OpenVinoBackend(models["fp32"]):
        pass


def test_native_cpu_only(models: dict[str, Path]) -> None:
    with pytest.raises(BackendUnavailableError, match="runs on the CPU only"), \
            OpenVinoBackend(models["fp32"], device="cuda"):
        pass
