"""The quantize stage on real data: INT8 PTQ of the pretrained CIFAR ResNet-20 (ONNX Runtime's
quantizer), target-specific QDQ graphs, the calibration cache, sensitivity and FP16."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from edgevision.data import Dataset
from edgevision.errors import DataError, EdgevisionError, QuantizeError
from edgevision.pipeline import compress
from edgevision.quantization.config import QuantizeConfig
from edgevision.quantization.ptq import SUPPORTS_CACHE
from edgevision.recipe import load_recipe
from tests.conftest import tiny_recipe_dict

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def quantized_run(tmp_path_factory: pytest.TempPathFactory, cifar_archive: Path,
                  resnet20_checkpoint: Path) -> tuple[Path, dict[str, Any]]:
    """One compress run: ResNet-20 → FP32 ONNX → INT8 (cpu target, sensitivity) and FP16,
    each measured on 1,000 CIFAR-10 JPEG test images."""
    import yaml

    folder = tmp_path_factory.mktemp("quantize")
    raw = tiny_recipe_dict(
        cifar_archive, resnet20_checkpoint,
        data={"eval_limit": 1000, "calibration_size": 256},
        stages=[{"kind": "quantize", "precisions": ["int8", "fp16"], "sensitivity": True,
                 "check_images": 200,
                 "qat": {"when": "always", "train": {"epochs": 1, "lr": 0.001,
                                                      "max_steps_per_epoch": 8}}}],
        benchmark={"backends": ["onnxruntime"], "batch_sizes": [8], "iterations": 2})
    path = folder / "q.yaml"
    path.write_text(yaml.safe_dump(raw))
    result = compress(load_recipe(path), out=folder / "run")
    assert result.report is not None
    return result.run_dir, result.report


def rows_by_variant(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["variant"]: row for row in report["rows"] if row["backend"] == "onnxruntime"}


def initializer(model: onnx.ModelProto, name: str) -> np.ndarray:
    found = [t for t in model.graph.initializer if t.name == name]
    assert found, f"{name} is not an initializer"
    return numpy_helper.to_array(found[0])


def test_int8_keeps_top1_within_one_point(quantized_run: tuple[Path, dict[str, Any]]) -> None:
    _, report = quantized_run
    rows = rows_by_variant(report)
    fp32, int8 = rows["fp32"], rows["int8"]
    assert fp32["error"] is None and int8["error"] is None
    assert int8["accuracy"]["images"] == 1000
    assert int8["precision"] == "int8"
    assert fp32["accuracy"]["top1"] - int8["accuracy"]["top1"] <= 1.0
    assert int8["size_bytes"] < fp32["size_bytes"] / 2  # INT8 weights


def test_cpu_graph_is_u8s8_per_channel(quantized_run: tuple[Path, dict[str, Any]]) -> None:
    run_dir, _ = quantized_run
    model = onnx.load(str(run_dir / "model.int8.onnx"))
    ops = Counter(node.op_type for node in model.graph.node)
    assert ops["QuantizeLinear"] > 0 and ops["DequantizeLinear"] > ops["QuantizeLinear"]
    activation_zero_points = [initializer(model, n.input[2]) for n in model.graph.node
                              if n.op_type == "QuantizeLinear"]
    assert all(z.dtype == np.uint8 for z in activation_zero_points)
    weight_dq = [n for n in model.graph.node if n.op_type == "DequantizeLinear"
                 and any(t.name == n.input[0] and t.data_type == onnx.TensorProto.INT8
                         for t in model.graph.initializer)]
    assert weight_dq and all(initializer(model, n.input[1]).size > 1 for n in weight_dq
                             if len(initializer(model, n.input[0]).shape) == 4)  # per channel
    meta = json.loads(next(p.value for p in model.metadata_props if p.key == "edgevision"))
    assert meta["precision"] == "int8" and meta["quantization"]["target"] == "cpu"
    assert meta["labels"][0] == "airplane"  # the FP32 model's metadata travels along


def test_sensitivity_table_ranks_layers(quantized_run: tuple[Path, dict[str, Any]]) -> None:
    run_dir, report = quantized_run
    table = report["run"]["quantize"]["int8"]["sensitivity"]
    convs = [n for n in onnx.load(str(run_dir / "model.onnx")).graph.node
             if n.op_type in ("Conv", "Gemm")]
    assert len(table) == len(convs) == 20  # 19 convolutions + the classifier
    kls = [row["kl"] for row in table]
    assert kls == sorted(kls, reverse=True) and kls[0] > 0
    assert all(row["layer"] and row["node"] for row in table)


def test_fp16_graph_matches_fp32(quantized_run: tuple[Path, dict[str, Any]]) -> None:
    run_dir, report = quantized_run
    check = report["run"]["quantize"]["fp16"]
    assert check["top1_agreement"] >= 0.99 and check["max_abs_diff"] < 0.05
    model = onnx.load(str(run_dir / "model.fp16.onnx"))
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert model.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert {t.data_type for t in model.graph.initializer
            if len(t.dims) == 4} == {onnx.TensorProto.FLOAT16}
    rows = rows_by_variant(report)
    assert abs(rows["fp16"]["accuracy"]["top1"] - rows["fp32"]["accuracy"]["top1"]) <= 0.2


def test_quantized_rows_are_compared_with_their_fp32_model(
        quantized_run: tuple[Path, dict[str, Any]]) -> None:
    """Each graph the quantize stage writes records model.onnx as its FP32 source; the report
    compares its p50 with model.onnx's on the same backend (which is slower is not asserted:
    timings are noisy)."""
    from edgevision.onnxmeta import fp32_origin

    run_dir, report = quantized_run
    for name in ("model.int8.onnx", "model.fp16.onnx", "model.int8-qat.onnx"):
        assert fp32_origin(run_dir / name) == run_dir / "model.onnx"
    rows = rows_by_variant(report)
    assert {rows[v]["origin"] for v in ("fp32", "int8", "fp16", "int8-qat")} == {
        str(run_dir / "model.onnx")}
    entries = {e["variant"]: e for e in report["versus_fp32"]}
    assert set(entries) == {"int8", "fp16", "int8-qat"}
    fp32_p50 = rows["fp32"]["latency"][0]["p50_ms"]
    for variant, entry in entries.items():
        assert (entry["fp32_variant"], entry["matched_by"], entry["batch"]) == ("fp32", "origin", 8)
        p50 = rows[variant]["latency"][0]["p50_ms"]
        assert (entry["p50_ms"], entry["fp32_p50_ms"]) == (p50, fp32_p50)
        assert entry["slower"] == (p50 > fp32_p50)


def _dataset(run_dir: Path, **data: Any) -> Dataset:
    recipe = load_recipe(run_dir / "recipe.yaml")
    spec = recipe.data.model_copy(update=data)
    return Dataset.from_spec(spec, recipe.seed)


def test_calibration_cache_is_reused(quantized_run: tuple[Path, dict[str, Any]],
                                     tmp_path: Path) -> None:
    from edgevision.quantization.run import quantize_model

    run_dir, _ = quantized_run
    fp32 = tmp_path / "model.onnx"
    shutil.copy(run_dir / "model.onnx", fp32)
    config = QuantizeConfig()
    first = quantize_model(fp32, tmp_path / "a.onnx", config, _dataset(run_dir), tmp_path / "w")
    caches = list(tmp_path.glob("model.ranges-minmax-*.json"))
    if not SUPPORTS_CACHE:  # ONNX Runtime < 1.27: recomputed
        again = quantize_model(fp32, tmp_path / "b.onnx", config, _dataset(run_dir),
                               tmp_path / "w")
        assert first.info["calibration"]["cache_hit"] is again.info["calibration"][
            "cache_hit"] is False and caches == []
        assert (tmp_path / "a.onnx").read_bytes() == (tmp_path / "b.onnx").read_bytes()
        return
    assert first.info["calibration"]["cache_hit"] is False and len(caches) == 1
    stamp = caches[0].stat().st_mtime_ns
    again = quantize_model(fp32, tmp_path / "b.onnx", config, _dataset(run_dir), tmp_path / "w")
    assert again.info["calibration"]["cache_hit"] is True
    assert caches[0].stat().st_mtime_ns == stamp
    assert (tmp_path / "a.onnx").read_bytes() == (tmp_path / "b.onnx").read_bytes()
    other = quantize_model(fp32, tmp_path / "c.onnx", config,
                           _dataset(run_dir, calibration_size=32), tmp_path / "w")
    assert other.info["calibration"]["cache_hit"] is False  # other images: new ranges
    assert len(list(tmp_path.glob("model.ranges-minmax-*.json"))) == 2


def test_tensorrt_graph_is_symmetric_signed(quantized_run: tuple[Path, dict[str, Any]],
                                            tmp_path: Path) -> None:
    from edgevision.quantization.run import quantize_model

    run_dir, _ = quantized_run
    config = QuantizeConfig(target="tensorrt")
    result = quantize_model(run_dir / "model.onnx", tmp_path / "trt.onnx", config,
                            _dataset(run_dir), tmp_path / "w")
    model = onnx.load(str(result.path))
    qdq = [n for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    zero_points = [initializer(model, n.input[2]) for n in qdq if len(n.input) > 2]
    assert qdq and zero_points
    assert all(z.dtype == np.int8 and not z.any() for z in zero_points)
    consumers = {n.op_type for n in model.graph.node
                 if any(i in {o for q in qdq if q.op_type == "DequantizeLinear" for o in q.output}
                        for i in n.input)}
    # data movement (the option-A shortcut's Slice) may read INT8: TensorRT moves Q/DQ
    # across it; nothing else (Relu, ReduceMean, ...) may consume a dequantized tensor
    movement = {"Slice", "Pad", "Reshape", "Flatten", "Concat", "Transpose", "MaxPool"}
    assert consumers - movement <= {"Conv", "Gemm", "MatMul", "Add"} and "Conv" in consumers
    assert not any(n.op_type == "QuantizeLinear" and n.input[0] in
                   {o for c in model.graph.node if c.op_type in ("Conv", "Gemm") for o in c.output}
                   for n in model.graph.node)  # weighted layers' outputs stay unquantized
    from edgevision.quantization.check import CheckSet, compare
    from edgevision.quantization.run import check_images

    check = CheckSet.build(check_images(_dataset(run_dir), 300), run_dir / "model.onnx")
    assert compare(result.path, check).drop <= 1.0  # it runs in ONNX Runtime, and is accurate


def test_accuracy_budget_keeps_sensitive_layers_in_fp32(
        quantized_run: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    from edgevision.quantization.ptq import float_compute_nodes
    from edgevision.quantization.run import quantize_model

    run_dir, _ = quantized_run
    config = QuantizeConfig(accuracy_budget=0.0, max_fp32_layers=3, check_images=200)
    result = quantize_model(run_dir / "model.onnx", tmp_path / "m.int8.onnx", config,
                            _dataset(run_dir), tmp_path / "w")
    budget = result.info["budget"]
    full_drop = result.info["check"]["int8"]["drop"]
    if full_drop <= 0.0:
        assert result.mixed_path is None and budget["met"] and budget["fp32_nodes"] == []
        return
    assert len(budget["fp32_nodes"]) <= 3
    assert budget["met"] == (budget["drop"] <= 0.0)
    if budget["fp32_nodes"]:
        assert result.mixed_path is not None
        ranked = [row["node"] for row in result.info["sensitivity"]]
        assert budget["fp32_nodes"] == ranked[:len(budget["fp32_nodes"])]
        left_float = float_compute_nodes(onnx.load(str(result.mixed_path)))
        assert set(budget["fp32_nodes"]) <= set(left_float)


def test_unsupported_operator_named_when_recipe_forbids_fp32(
        quantized_run: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    from edgevision.quantization.run import quantize_model

    run_dir, _ = quantized_run
    config = QuantizeConfig(unsupported_ops="error")
    with pytest.raises(QuantizeError, match="cannot handle ReduceMean"):
        quantize_model(run_dir / "model.onnx", tmp_path / "x.onnx", config, _dataset(run_dir),
                       tmp_path / "w")
    assert not (tmp_path / "x.onnx").exists()


def test_bad_calibration_data(quantized_run: tuple[Path, dict[str, Any]],
                              tmp_path: Path) -> None:
    from edgevision.quantization.calibration import calibration_images, check_calibration_shape
    from edgevision.quantization.config import CalibrationSpec

    run_dir, _ = quantized_run
    dataset = _dataset(run_dir)
    listing = tmp_path / "cal.txt"
    listing.write_text("# comment\nairplane/does-not-exist.jpg\n")
    with pytest.raises(DataError,
                       match=r"1 image\(s\) not in .* \(first: airplane/does-not-exist.jpg\)"):
        calibration_images(CalibrationSpec(images=str(listing)), dataset)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no images"):
        calibration_images(CalibrationSpec(images=str(tmp_path / "empty")), dataset)
    images, _ = calibration_images(CalibrationSpec(), dataset)
    with pytest.raises(DataError, match=r"shape \(3, 32, 32\) but the model expects \(1, 28, 28\)"):
        check_calibration_shape(images, (1, 28, 28))


def test_calibration_list_file_in_repo_is_usable(
        quantized_run: tuple[Path, dict[str, Any]]) -> None:
    from edgevision.quantization.calibration import calibration_images
    from edgevision.quantization.config import CalibrationSpec
    from tests.conftest import REPO

    run_dir, _ = quantized_run
    listed = REPO / "calibration" / "cifar10-jpeg-train-512.txt"
    images, _ = calibration_images(CalibrationSpec(images=str(listed)), _dataset(run_dir))
    assert len(images) == 512 and images.sample_shape() == (3, 32, 32)


def test_qat_graph_is_qdq_and_keeps_accuracy(quantized_run: tuple[Path, dict[str, Any]]) -> None:
    run_dir, report = quantized_run
    rows = rows_by_variant(report)
    qat = rows["int8-qat"]
    assert qat["error"] is None and qat["precision"] == "int8"
    assert rows["fp32"]["accuracy"]["top1"] - qat["accuracy"]["top1"] <= 1.0
    ops = Counter(n.op_type for n in onnx.load(str(run_dir / "model.int8-qat.onnx")).graph.node)
    assert ops["QuantizeLinear"] > 0 and ops["BatchNormalization"] == 0
    info = report["run"]["quantize"]["int8"]["qat"]
    assert info["training"]["epochs"][0]["epoch"] == 1 and info["check"]["images"] == 200


def test_fake_quant_weight_is_per_channel_int8_grid() -> None:
    import torch

    from edgevision.quantization.qat import fake_quant_weight

    weight = torch.randn(4, 3, 3, 3) * torch.tensor([0.01, 0.1, 1.0, 10.0]).view(4, 1, 1, 1)
    weight.requires_grad_(True)
    quantized = fake_quant_weight(weight)
    for channel in range(4):
        scale = weight[channel].abs().max().item() / 127
        steps = quantized[channel].detach() / scale
        assert torch.allclose(steps, steps.round(), atol=1e-3)  # on the channel's own grid
        assert steps.abs().max().round().item() == 127
    quantized.sum().backward()
    assert weight.grad is not None and bool((weight.grad == 1).all())  # straight-through


def test_batchnorm_folding_is_exact_on_real_images(quantized_run: tuple[Path, dict[str, Any]]
                                                    ) -> None:
    import torch

    from edgevision.models.build import load_model_file
    from edgevision.quantization.qat import fold_batchnorm

    run_dir, _ = quantized_run
    model = load_model_file(run_dir / "model.pt")[0].module.eval()
    folded = fold_batchnorm(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    images = torch.from_numpy(_dataset(run_dir).eval_set().first(32))
    with torch.no_grad():
        assert torch.allclose(folded(images), model(images), atol=1e-4)


def test_quantize_existing_run_adds_artifacts(quantized_run: tuple[Path, dict[str, Any]],
                                              tmp_path: Path) -> None:
    from edgevision.pipeline import quantize_run
    from edgevision.rundir import RunDir

    run_dir, _ = quantized_run
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    before = [variant for variant, _ in RunDir.open(copy).artifacts()]
    recipe = load_recipe(copy / "recipe.yaml", ["stages=[{kind: quantize, precisions: [fp16]}]"])
    # the run's report.json measured model.fp16.onnx: it is not replaced silently
    with pytest.raises(EdgevisionError, match="model.fp16.onnx .* were measured in report.json"):
        quantize_run(copy, recipe)
    added = quantize_run(copy, recipe, replace=True)
    assert [a["variant"] for a in added] == ["fp16"]
    after = [variant for variant, _ in RunDir.open(copy).artifacts()]
    # the FP16 graph replaced (files and manifest), the INT8 ones (not asked for) kept
    assert sorted(after) == sorted(before)
    assert (copy / "model.int8.onnx").is_file() and (copy / "model.fp16.onnx").is_file()
    assert not (copy / "report.json").exists() and not (copy / "report.csv").exists()
    with pytest.raises(Exception, match="not an edgevision run directory"):
        quantize_run(tmp_path, recipe)
