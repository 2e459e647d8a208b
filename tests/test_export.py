"""ONNX export of the pretrained ResNet-20 (both exporters), verification, metadata, failures."""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from edgevision.benchmarking.onnxstats import onnx_macs_params
from edgevision.data import Dataset
from edgevision.data.spec import DataSpec
from edgevision.errors import ArtifactError, ExportError
from edgevision.export.onnx import (
    INPUT_NAME,
    OUTPUT_NAME,
    export_onnx,
    load_onnx,
    read_metadata,
    verify_onnx,
)
from edgevision.export.spec import ExportSpec
from edgevision.models.build import count_macs_params
from tests.conftest import pretrained_resnet20

METADATA: dict[str, Any] = {
    "name": "cifar_resnet20", "num_classes": 10, "input_shape": [3, 32, 32],
    "preprocess": {"image_size": None, "resize": None, "mean": [0.485, 0.456, 0.406],
                   "std": [0.229, 0.224, 0.225], "channels": 3},
    "labels": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
               "truck"],
    "precision": "fp32",
}


@dataclass
class Exported:
    path: Path
    exporter: str
    model: nn.Module
    images: np.ndarray


@pytest.fixture(scope="module")
def resnet20(resnet20_checkpoint: Path) -> nn.Module:
    return pretrained_resnet20(resnet20_checkpoint)


@pytest.fixture(scope="module")
def real_images(cifar_archive: Path) -> np.ndarray:
    """32 preprocessed real CIFAR-10 test images."""
    return Dataset.from_spec(DataSpec(root=cifar_archive, eval_limit=32)).eval_set().first(32)


@pytest.fixture(scope="module", params=["dynamo", "torchscript"])
def exported(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
             resnet20: nn.Module, real_images: np.ndarray) -> Exported:
    """The pretrained ResNet-20 exported with each exporter (dynamo takes about 8 s)."""
    exporter = request.param
    path = tmp_path_factory.mktemp(f"export-{exporter}") / "resnet20.onnx"
    returned = export_onnx(resnet20, real_images, path, ExportSpec(exporter=exporter), METADATA)
    assert returned == path
    return Exported(path, exporter, resnet20, real_images)


def _run(path: Path, images: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {INPUT_NAME: images})[0]  # type: ignore[no-any-return]


def _torch(model: nn.Module, images: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return model.eval()(torch.from_numpy(images)).numpy()  # type: ignore[no-any-return]


def test_export_writes_one_checked_file(exported: Exported) -> None:
    assert exported.path.is_file()
    leftovers = [n for n in os.listdir(exported.path.parent) if n != exported.path.name]
    assert leftovers == []  # no .partial temp file, no external-data files
    proto = onnx.load(str(exported.path))
    onnx.checker.check_model(proto, full_check=True)
    assert proto.producer_name == "edgevision"
    assert [i.name for i in proto.graph.input] == [INPUT_NAME]
    assert [o.name for o in proto.graph.output] == [OUTPUT_NAME]


def test_verify_on_real_images(exported: Exported) -> None:
    check = verify_onnx(exported.path, exported.model, exported.images, atol=1e-4, rtol=1e-3)
    assert check.images == 32
    assert check.top1_agreement == 1.0
    assert check.max_abs_diff <= 1e-4 + 1e-3 * np.abs(_torch(exported.model, exported.images)).max()
    assert check.to_dict()["top1_agreement"] == 1.0


def test_opset_at_least_17(exported: Exported) -> None:
    proto = load_onnx(exported.path)
    default_domain = [o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")]
    assert default_domain
    assert default_domain[0] >= 17
    assert default_domain[0] == ExportSpec().opset


def test_dynamic_batch(exported: Exported) -> None:
    proto = load_onnx(exported.path)
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert len(dims) == 4
    assert not dims[0].HasField("dim_value")
    assert dims[0].dim_param
    assert [d.dim_value for d in dims[1:]] == [3, 32, 32]
    for batch in (1, 5):
        images = exported.images[:batch]
        got = _run(exported.path, images)
        expected = _torch(exported.model, images)
        assert got.shape == (batch, 10)
        np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-3)
        assert (got.argmax(1) == expected.argmax(1)).all()


def test_predictions_are_real(exported: Exported, cifar_archive: Path) -> None:
    """The exported model classifies real images about as well as the pretrained one."""
    eval_set = Dataset.from_spec(DataSpec(root=cifar_archive, eval_limit=32)).eval_set()
    images, labels = next(eval_set.batches(32))
    accuracy = float((_run(exported.path, images).argmax(1) == labels).mean())
    assert accuracy > 0.6


def test_read_metadata(exported: Exported) -> None:
    assert read_metadata(exported.path) == METADATA


def test_read_metadata_absent_is_empty(exported: Exported, tmp_path: Path) -> None:
    proto = load_onnx(exported.path)
    del proto.metadata_props[:]
    bare = tmp_path / "bare.onnx"
    onnx.save(proto, str(bare))
    assert read_metadata(bare) == {}


def test_perturbed_model_is_a_mismatch(exported: Exported) -> None:
    perturbed = copy.deepcopy(exported.model)
    with torch.no_grad():
        perturbed.linear.bias += 0.5
        perturbed.layer3[2].conv2.weight.mul_(1.05)
    with pytest.raises(ExportError, match="differ from PyTorch's"):
        verify_onnx(exported.path, perturbed, exported.images, atol=1e-4, rtol=1e-3)


def test_wrong_output_shape_is_a_mismatch(exported: Exported) -> None:
    other = copy.deepcopy(exported.model)
    other.linear = nn.Linear(64, 7)
    with pytest.raises(ExportError, match="output shape"):
        verify_onnx(exported.path, other, exported.images, atol=1e-4, rtol=1e-3)


def test_onnx_macs_params_agree_with_torch_pruning(exported: Exported) -> None:
    macs, params = onnx_macs_params(load_onnx(exported.path))
    torch_macs, torch_params = count_macs_params(exported.model, (3, 32, 32))
    assert 39e6 < torch_macs < 42e6
    assert abs(macs - torch_macs) / torch_macs < 0.02, (macs, torch_macs)
    assert abs(params - torch_params) / torch_params < 0.02, (params, torch_params)


# --- failures ----------------------------------------------------------------------------------


def test_corrupt_onnx(tmp_path: Path) -> None:
    path = tmp_path / "x.onnx"
    path.write_bytes(np.random.default_rng(0).bytes(2048))
    with pytest.raises(ArtifactError, match="not a valid ONNX model"):
        read_metadata(path)
    with pytest.raises(ArtifactError, match="not a valid ONNX model"):
        load_onnx(path)


def test_missing_onnx(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="not found"):
        read_metadata(tmp_path / "missing.onnx")
    with pytest.raises(ArtifactError, match="not found"):
        load_onnx(tmp_path / "missing.onnx")


def test_interrupted_export_leaves_no_file(tmp_path: Path, resnet20: nn.Module,
                                           real_images: np.ndarray,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Interrupted after the exporter wrote its temp file (the torchscript exporter, for speed:
    the atomic write around it is the same for both)."""
    calls: list[object] = []

    def interrupt(*args: object, **kwargs: object) -> None:
        calls.append(args)
        raise KeyboardInterrupt

    monkeypatch.setattr(onnx.checker, "check_model", interrupt)
    target = tmp_path / "out" / "model.onnx"
    with pytest.raises(KeyboardInterrupt):
        export_onnx(resnet20, real_images, target, ExportSpec(exporter="torchscript"), METADATA)
    assert len(calls) == 1
    assert not target.exists()
    assert [n for n in os.listdir(target.parent) if n.endswith(".partial")] == []
    assert os.listdir(target.parent) == []


def test_interrupted_export_keeps_the_previous_file(tmp_path: Path, resnet20: nn.Module,
                                                    real_images: np.ndarray,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "model.onnx"
    target.write_bytes(b"previous artifact")

    def interrupt(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(onnx.checker, "check_model", interrupt)
    with pytest.raises(KeyboardInterrupt):
        export_onnx(resnet20, real_images, target, ExportSpec(exporter="torchscript"), METADATA)
    assert target.read_bytes() == b"previous artifact"
    assert os.listdir(tmp_path) == ["model.onnx"]


def test_failed_check_is_an_export_error(tmp_path: Path, resnet20: nn.Module,
                                         real_images: np.ndarray,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    def invalid(*args: object, **kwargs: object) -> None:
        raise onnx.checker.ValidationError("Field 'type' of 'value_info' is required")

    monkeypatch.setattr(onnx.checker, "check_model", invalid)
    target = tmp_path / "model.onnx"
    with pytest.raises(ExportError, match="ONNX export of CifarResNet failed: Field 'type'"):
        export_onnx(resnet20, real_images, target, ExportSpec(exporter="torchscript"), METADATA)
    assert os.listdir(tmp_path) == []


def test_static_batch_export(tmp_path: Path, resnet20: nn.Module,
                             real_images: np.ndarray) -> None:
    path = export_onnx(resnet20, real_images, tmp_path / "static.onnx",
                       ExportSpec(exporter="torchscript", dynamic_batch=False), METADATA)
    dims = load_onnx(path).graph.input[0].type.tensor_type.shape.dim
    assert all(d.HasField("dim_value") for d in dims)
    batch = dims[0].dim_value
    assert [d.dim_value for d in dims[1:]] == [3, 32, 32]
    got = _run(path, real_images[:batch])
    np.testing.assert_allclose(got, _torch(resnet20, real_images[:batch]), atol=1e-4, rtol=1e-3)


def test_static_batch_export_verifies(tmp_path: Path, resnet20: nn.Module,
                                      real_images: np.ndarray) -> None:
    path = export_onnx(resnet20, real_images, tmp_path / "static.onnx",
                       ExportSpec(exporter="torchscript", dynamic_batch=False), METADATA)
    check = verify_onnx(path, resnet20, real_images[:16], atol=1e-4, rtol=1e-3)
    assert check.top1_agreement == 1.0


def test_accuracy_of_a_static_batch_graph_pads_the_last_batch(
        tmp_path: Path, resnet20: nn.Module, cifar_archive: Path) -> None:
    """A graph exported for batch 8 is scored on 20 real images: batches of 8, the last 4
    images zero-padded, the padding's outputs dropped — the same top-1 as PyTorch."""
    from edgevision.backends.onnxruntime import OnnxRuntimeBackend
    from edgevision.benchmarking.measure import measure_accuracy

    data = Dataset.from_spec(DataSpec(root=cifar_archive, eval_limit=20)).eval_set()
    images, labels = next(data.batches(20))
    path = tmp_path / "batch8.onnx"  # export_onnx fixes static graphs at batch 1
    torch.onnx.export(resnet20, (torch.from_numpy(images[:8]),), str(path), dynamo=False,
                      input_names=[INPUT_NAME], output_names=[OUTPUT_NAME])
    expected = 100.0 * float((_torch(resnet20, images).argmax(1) == labels).mean())
    with OnnxRuntimeBackend(path) as session:
        assert session.input_spec.shape[0] == 8
        assert measure_accuracy(session, data, batch_size=64).top1 == pytest.approx(expected)
        assert session.predict(images).shape == (20, 10)
