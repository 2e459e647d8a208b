"""TensorRT engines built and run for real: needs TensorRT, cuda-python and a GPU. Skips (with
the reason) elsewhere — including this project's CI and development machines, which have none;
nothing here is faked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from edgevision.backends.tensorrt import TensorRTBackend
from edgevision.pipeline import compress
from edgevision.recipe import load_recipe
from tests.conftest import tiny_recipe_dict

AVAILABLE = TensorRTBackend.availability()
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not AVAILABLE.ok, reason=f"TensorRT: {AVAILABLE.reason}")]


@pytest.fixture(scope="module")
def engine_run(tmp_path_factory: pytest.TempPathFactory, cifar_archive: Path,
               resnet20_checkpoint: Path) -> dict[str, Any]:
    """ResNet-20 → ONNX → tensorrt-target INT8 QDQ → strongly typed engines of every precision,
    all measured on 1,000 CIFAR-10 JPEG test images by ONNX Runtime and TensorRT."""
    folder = tmp_path_factory.mktemp("trt")
    raw = tiny_recipe_dict(
        cifar_archive, resnet20_checkpoint, data={"eval_limit": 1000, "calibration_size": 256},
        stages=[{"kind": "quantize", "target": "tensorrt"}],
        engine={"precisions": ["fp32", "tf32", "fp16", "int8", "int8+fp16"], "max_batch": 64},
        benchmark={"backends": ["onnxruntime", "tensorrt"], "batch_sizes": [1, 64],
                   "device": "cuda", "iterations": 20})
    path = folder / "trt.yaml"
    path.write_text(yaml.safe_dump(raw))
    result = compress(load_recipe(path), out=folder / "run")
    assert result.report is not None
    return {**result.report, "run": str(folder / "run")}


def top1(report: dict[str, Any], variant_end: str, backend: str) -> float:
    row = next(r for r in report["rows"] if r["backend"] == backend
               and r["variant"].endswith(variant_end) and r["error"] is None)
    return float(row["accuracy"]["top1"])


@pytest.mark.parametrize("precision", ["fp32", "tf32", "fp16", "int8", "int8+fp16"])
def test_engine_top1_matches_onnxruntime(engine_run: dict[str, Any], precision: str) -> None:
    reference = top1(engine_run, "int8" if precision.startswith("int8") else "fp32",
                     "onnxruntime")
    assert abs(top1(engine_run, f"trt-{precision}", "tensorrt") - reference) <= 1.0


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8", "int8+fp16"])
def test_engine_layers_run_in_the_graphs_precision(engine_run: dict[str, Any],
                                                   precision: str) -> None:
    import json

    from edgevision.engines import engine_name

    meta = json.loads((Path(engine_run["run"]) / (engine_name(precision) + ".json")).read_text())
    assert meta["build_mode"].startswith("strongly typed")
    layers = meta["layer_precisions"]
    wanted = {"fp32": "fp32", "fp16": "fp16", "int8": "int8", "int8+fp16": "int8"}[precision]
    # most compute layers run in the graph's precision; an fp32 engine has TF32 cleared
    assert layers[wanted] > layers["layers"] / 2, layers
    if precision == "fp32":
        assert "TF32" not in layers["kernel_precisions"], layers


def test_engine_rows_agree_with_onnxruntime(engine_run: dict[str, Any]) -> None:
    rows = [r for r in engine_run["rows"] if r["backend"] == "tensorrt"]
    for row in rows:
        assert row["agreement"]["top1_agreement"] >= 0.97, row["variant"]


def test_engine_rows_report_gpu_compute_time(engine_run: dict[str, Any]) -> None:
    rows = [r for r in engine_run["rows"] if r["backend"] == "tensorrt"]
    assert rows and all(r["error"] is None for r in rows)
    for row in rows:
        for stats in row["latency"]:
            times = stats["device_times"]
            assert times["gpu_compute"]["p50_ms"] > 0 and times["runs"] == stats["iterations"]
