"""Backends and the benchmark measurements, on a real exported ResNet-20."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgevision.backends import BACKENDS, OnnxRuntimeBackend, PyTorchBackend, backends_for
from edgevision.benchmarking import (
    Artifact,
    BenchmarkRow,
    build_report,
    measure_accuracy,
    measure_latency,
    report_csv,
    report_table,
)
from edgevision.benchmarking.runner import benchmark_artifacts
from edgevision.data import Dataset
from edgevision.errors import ArtifactError, EdgevisionError, UnknownNameError
from edgevision.recipe import BenchmarkSpec, DataSpec
from tests.conftest import export_resnet20


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory, cifar_archive: Path,
              resnet20_checkpoint: Path) -> tuple[Path, Path, Dataset]:
    """model.pt and model.onnx of the pretrained ResNet-20, and the CIFAR-10 JPEG data."""
    from edgevision.models.checkpoint import save_model_file

    folder = tmp_path_factory.mktemp("backends")
    dataset = Dataset.from_spec(DataSpec(root=cifar_archive, eval_limit=256))
    module, info, onnx_path = export_resnet20(resnet20_checkpoint, dataset, folder)
    pt = save_model_file(module, folder / "model.pt", info)
    return pt, onnx_path, dataset


def test_registry_and_routing(artifacts: tuple[Path, Path, Dataset]) -> None:
    pt, onnx_path, _ = artifacts
    assert BACKENDS.names() == ["onnxruntime", "openvino", "pytorch", "tensorrt"]
    assert backends_for(onnx_path, ["pytorch", "onnxruntime"]) == [OnnxRuntimeBackend]
    assert backends_for(onnx_path.with_suffix(".engine"), BACKENDS.names())[0].name == "tensorrt"
    assert backends_for(pt, ["pytorch", "onnxruntime"]) == [PyTorchBackend]
    with pytest.raises(UnknownNameError, match="did you mean 'pytorch'"):
        BACKENDS.get("pytorh")


def test_backends_agree_on_real_images(artifacts: tuple[Path, Path, Dataset]) -> None:
    pt, onnx_path, dataset = artifacts
    images = dataset.eval_set().first(16)
    with PyTorchBackend(pt, threads=2) as torch_session, \
            OnnxRuntimeBackend(onnx_path, threads=2) as ort_session:
        expected, got = torch_session.run(images), ort_session.run(images)
        assert ort_session.input_spec.shape == (None, 3, 32, 32)
        assert ort_session.info.threads == 2 and torch_session.info.threads == 2
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-3)


def test_input_validation(artifacts: tuple[Path, Path, Dataset]) -> None:
    _, onnx_path, _ = artifacts
    session = OnnxRuntimeBackend(onnx_path)
    with pytest.raises(RuntimeError, match="outside its `with` block"):
        session.run(np.zeros((1, 3, 32, 32), np.float32))
    with session:
        with pytest.raises(EdgevisionError, match=r"shape \(1, 3, 28, 28\) does not match"):
            session.run(np.zeros((1, 3, 28, 28), np.float32))
        with pytest.raises(EdgevisionError, match="must be a float32 array"):
            session.run(np.zeros((1, 3, 32, 32), np.float64))


class _RangedOnnxRuntime(OnnxRuntimeBackend):
    """ONNX Runtime limited to batches of 2..4, as a TensorRT profile limits an engine."""

    batch_range_hint = "; widen it"

    def _batch_range(self) -> tuple[int, int | None]:
        return 2, 4


def test_batch_range_is_enforced_and_predict_stays_inside_it(
        artifacts: tuple[Path, Path, Dataset]) -> None:
    """run() refuses batches outside the backend's range with its hint; predict() chunks to
    the largest batch and pads the last chunk to the smallest, with the same outputs."""
    _, onnx_path, dataset = artifacts
    images = dataset.eval_set().first(9)
    with OnnxRuntimeBackend(onnx_path) as plain, _RangedOnnxRuntime(onnx_path) as ranged:
        for size in (1, 5):
            with pytest.raises(ArtifactError, match=rf"batch {size} is outside the batch range "
                                                    r"the model takes \(2\.\.4\); widen it"):
                ranged.run(images[:size])
        expected = plain.run(images)
        got = ranged.predict(images)  # 4 + 4 + 1 (padded to 2)
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=1e-4)


def test_wrong_artifact_kind_and_missing(artifacts: tuple[Path, Path, Dataset],
                                         tmp_path: Path) -> None:
    pt, _, _ = artifacts
    with pytest.raises(ArtifactError, match="runs .onnx files"), OnnxRuntimeBackend(pt):
        pass
    with pytest.raises(ArtifactError, match="not found"), OnnxRuntimeBackend(tmp_path / "x.onnx"):
        pass


def test_latency_statistics(artifacts: tuple[Path, Path, Dataset]) -> None:
    _, onnx_path, dataset = artifacts
    with OnnxRuntimeBackend(onnx_path, threads=1) as session:
        stats = measure_latency(session, dataset.eval_set().first(4), warmup=2, iterations=7)
    assert stats.batch == 4 and stats.iterations == 7 and stats.warmup == 2
    assert 0 < stats.min_ms <= stats.p50_ms <= stats.p90_ms <= stats.p99_ms <= stats.max_ms
    assert stats.throughput_ips == pytest.approx(4000 / stats.p50_ms)


def test_accuracy_through_the_session_matches_pytorch(artifacts: tuple[Path, Path, Dataset]
                                                     ) -> None:
    pt, onnx_path, dataset = artifacts
    eval_set = dataset.eval_set()
    with OnnxRuntimeBackend(onnx_path) as session:
        ort = measure_accuracy(session, eval_set, batch_size=100)
    with PyTorchBackend(pt) as session:
        eager = measure_accuracy(session, eval_set, batch_size=64)
    assert ort.images == eager.images == 256
    assert ort.top1 == pytest.approx(eager.top1, abs=0.4)
    assert 70 < ort.top1 <= ort.top5 <= 100


def test_failed_rows_are_kept_with_their_error(artifacts: tuple[Path, Path, Dataset],
                                               tmp_path: Path) -> None:
    _, onnx_path, dataset = artifacts
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"not onnx")
    spec = BenchmarkSpec(backends=["onnxruntime"], batch_sizes=[2], warmup=0, iterations=2,
                         accuracy=False)
    rows = benchmark_artifacts([Artifact("good", onnx_path), Artifact("bad", corrupt)], spec,
                               dataset.eval_set())
    assert [r.variant for r in rows] == ["good", "bad"]
    assert rows[0].error is None and rows[0].latency
    assert rows[0].origin == str(onnx_path)  # an FP32 graph is its own FP32 model
    assert rows[1].error is not None and "not a valid ONNX model" in rows[1].error
    report = build_report(rows, spec)
    lines = report_csv(report).splitlines()
    assert lines[0].startswith("variant,backend,device,precision,threads,batch,top1")
    assert len(lines) == 3 and "not a valid ONNX model" in lines[2]
    assert report_table(report).row_count == 2


def test_row_serialises() -> None:
    row = BenchmarkRow("v", "a.onnx", "onnxruntime", "cpu", error="boom")
    assert row.to_dict()["error"] == "boom" and row.to_dict()["latency"] == []
