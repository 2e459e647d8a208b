"""The tensorrt target's Q/DQ placement around residual adds, on real graphs: the pretrained
CIFAR ResNet-20 (option-A shortcuts, and the same network with its exact 1x1 convolution
shortcuts) and torchvision's ResNet-18 (downsample convolutions; random weights, 32x32 CIFAR-10
images), each exported and quantized by the pipeline.

Rule checked: each Add reads the main branch's convolution output directly (TensorRT fuses the
add into it) and keeps exactly one Q/DQ pair, on the shortcut: the block input (identity), the
option-A padding, or the downsample convolution's output where both inputs are convolutions.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
import torchvision
from torch import nn

from edgevision.data import Dataset
from edgevision.data.spec import DataSpec
from edgevision.export.onnx import export_onnx
from edgevision.export.spec import ExportSpec
from edgevision.models.cifar_resnet import BasicBlock, convert_pad_shortcuts
from edgevision.quantization.calibration import BatchReader
from edgevision.quantization.check import CheckSet, compare, run_logits
from edgevision.quantization.config import QuantizeConfig
from edgevision.quantization.placement import remove_qdq_after_weighted_layers
from edgevision.quantization.ptq import Int8Options, quantize_int8
from edgevision.quantization.run import check_images, quantize_model
from edgevision.quantization.targets import TARGETS
from tests.conftest import pretrained_resnet20

MODELS = ("cifar_resnet20", "cifar_resnet20_conv_shortcut", "resnet18")
#: the models whose downsampling blocks add two convolution outputs
CONV_SHORTCUTS = MODELS[1:]


@dataclass
class Quantized:
    """One model's FP32 export, its tensorrt-target INT8 graph and the prepared FP32 graph
    the quantizer read."""

    module: nn.Module
    fp32: Path
    int8: Path
    prepared: Path


@pytest.fixture(scope="module")
def dataset(cifar_archive: Path) -> Dataset:
    return Dataset.from_spec(DataSpec(root=cifar_archive, val_size=300, calibration_size=64,
                                      eval_limit=32))


@pytest.fixture(scope="module")
def quantized(tmp_path_factory: pytest.TempPathFactory, dataset: Dataset,
              resnet20_checkpoint: Path) -> dict[str, Quantized]:
    """Each model of ``MODELS`` exported and quantized for the tensorrt target."""
    folder = tmp_path_factory.mktemp("placement")
    made = {}
    for name in MODELS:
        module = _module(name, resnet20_checkpoint)
        fp32 = export_onnx(module, dataset.calibration_set().first(4), folder / f"{name}.onnx",
                           ExportSpec(exporter="torchscript"), {"name": name})
        work = folder / f"{name}-work"
        result = quantize_model(fp32, folder / f"{name}.int8.trt.onnx",
                                QuantizeConfig(target="tensorrt"), dataset, work)
        made[name] = Quantized(module, fp32, result.path, work / "prepared.onnx")
    return made


def _module(name: str, checkpoint: Path) -> nn.Module:
    if name == "resnet18":
        torch.manual_seed(0)
        return torchvision.models.resnet18(num_classes=10).eval()
    module = pretrained_resnet20(checkpoint)
    if name == "cifar_resnet20_conv_shortcut":
        assert convert_pad_shortcuts(module) == 2  # exact: the accuracy stays the same
    return module


def _blocks(module: nn.Module) -> int:
    """Residual blocks (one Add each), counted on the PyTorch model."""
    return sum(1 for block in module.modules()
               if isinstance(block, BasicBlock | torchvision.models.resnet.BasicBlock))


def _downsampling_blocks(module: nn.Module) -> int:
    """Blocks whose shortcut is a convolution, counted on the PyTorch model."""
    return sum(1 for block in module.modules()
               if (isinstance(block, BasicBlock) and isinstance(block.shortcut, nn.Conv2d))
               or (isinstance(block, torchvision.models.resnet.BasicBlock)
               and block.downsample is not None))


class Graph:
    """Who computes each tensor of a QDQ graph, looking through Q/DQ pairs."""

    def __init__(self, model: onnx.ModelProto) -> None:
        self.model = model
        self.producer = {out: node for node in model.graph.node for out in node.output}
        self.initializers = {t.name: t for t in model.graph.initializer}

    def source(self, tensor: str) -> tuple[onnx.NodeProto | None, bool]:
        """The operator behind ``tensor`` and whether a Q→DQ pair sits in between."""
        node = self.producer.get(tensor)
        if node is not None and node.op_type == "DequantizeLinear":
            quant = self.producer.get(node.input[0])
            assert quant is not None and quant.op_type == "QuantizeLinear"
            return self.producer.get(quant.input[0]), True
        return node, False

    def kernel(self, conv: onnx.NodeProto) -> list[int]:
        """A convolution's spatial kernel size, from its (quantized) weight."""
        weight = self.producer[conv.input[1]].input[0]  # DQ of the INT8 weight
        return list(self.initializers[weight].dims[2:])

    def adds(self) -> list[onnx.NodeProto]:
        return [node for node in self.model.graph.node if node.op_type == "Add"]

    def conv_conv_adds(self) -> list[onnx.NodeProto]:
        """Adds whose both inputs are convolution outputs (downsampling blocks)."""
        return [add for add in self.adds()
                if all(getattr(self.source(i)[0], "op_type", None) == "Conv"
                       for i in add.input)]


def _graph(path: Path) -> Graph:
    return Graph(onnx.load(str(path)))


@pytest.mark.parametrize("name", CONV_SHORTCUTS)
def test_downsampling_add_keeps_the_shortcut_pair(quantized: dict[str, Quantized],
                                                  name: str) -> None:
    graph = _graph(quantized[name].int8)
    adds = graph.conv_conv_adds()
    assert len(adds) == _downsampling_blocks(quantized[name].module) > 0
    for add in adds:
        sources = [graph.source(i) for i in add.input]
        assert [paired for _, paired in sources].count(True) == 1, add.name
        shortcut = next(conv for conv, paired in sources if paired)
        main = next(conv for conv, paired in sources if not paired)
        assert shortcut is not None and main is not None
        # structure: the shortcut is the strided 1x1 convolution, the main branch's is 3x3
        assert graph.kernel(shortcut) == [1, 1] and graph.kernel(main) == [3, 3]
        # and the exporter's names agree (checked only here; the rule does not read them)
        assert ("downsample" in shortcut.name or "shortcut" in shortcut.name) \
            and "conv2" in main.name


@pytest.mark.parametrize("name", MODELS)
def test_every_add_reads_its_convolution_directly_and_one_pair(
        quantized: dict[str, Quantized], name: str) -> None:
    """As before this change for identity (and option-A) shortcuts: the main branch's
    convolution output goes straight into the Add and the shortcut input keeps its pair."""
    graph = _graph(quantized[name].int8)
    adds = graph.adds()
    assert len(adds) == _blocks(quantized[name].module)
    for add in adds:
        sources = [graph.source(i) for i in add.input]
        direct = [node for node, paired in sources if not paired]
        assert len(direct) == 1 and direct[0] is not None and direct[0].op_type == "Conv", \
            add.name
        shortcut = next(node for node, paired in sources if paired)
        assert shortcut is not None
        expected = {"Relu", "MaxPool", "Pad", "Conv"}  # identity, option A, downsample
        assert shortcut.op_type in expected, (add.name, shortcut.op_type)


@pytest.mark.parametrize("name", MODELS)
def test_no_initializer_is_orphaned(quantized: dict[str, Quantized], name: str) -> None:
    model = onnx.load(str(quantized[name].int8))
    read = {i for node in model.graph.node for i in node.input}
    assert [t.name for t in model.graph.initializer if t.name not in read] == []
    onnx.checker.check_model(model, full_check=True)


@pytest.mark.parametrize("name", ["cifar_resnet20", "cifar_resnet20_conv_shortcut"])
def test_int8_graph_keeps_top1_on_real_images(quantized: dict[str, Quantized],
                                              dataset: Dataset, name: str) -> None:
    check = CheckSet.build(check_images(dataset, 300), quantized[name].fp32)
    assert check.reference_top1 > 80  # the pretrained network, shortcuts converted exactly
    assert compare(quantized[name].int8, check).drop <= 1.0


def test_random_resnet18_graph_runs(quantized: dict[str, Quantized], dataset: Dataset) -> None:
    images = dataset.eval_set().first(32)
    logits = run_logits(quantized["resnet18"].int8, images)
    reference = run_logits(quantized["resnet18"].fp32, images)
    assert logits.shape == reference.shape == (32, 10) and np.isfinite(logits).all()


def test_shortcut_found_without_names_or_input_order(quantized: dict[str, Quantized],
                                                     dataset: Dataset, tmp_path: Path) -> None:
    """The graph as ONNX Runtime's quantizer writes it, with every Add's inputs swapped and
    every node renamed: the same convolutions keep their pair."""
    model = quantized["resnet18"]
    options = Int8Options(dataclasses.replace(TARGETS["tensorrt"], float_weighted_outputs=False))
    prepared = onnx.load(str(model.prepared))
    raw = quantize_int8(model.prepared, tmp_path / "raw.onnx", options,
                        reader=BatchReader(dataset.calibration_set(),
                                           prepared.graph.input[0].name, 32))
    graph = onnx.load(str(raw))
    assert all(Graph(graph).source(i)[1] for add in Graph(graph).conv_conv_adds()
               for i in add.input)  # the quantizer's own graph: both inputs quantized
    for index, node in enumerate(graph.graph.node):
        node.name = f"n{index}"
        if node.op_type == "Add":
            node.input[:] = list(reversed(node.input))
    remove_qdq_after_weighted_layers(graph)
    after = Graph(graph)
    adds = after.conv_conv_adds()
    assert len(adds) == _downsampling_blocks(model.module)
    for add in adds:
        kept = [conv for conv, paired in map(after.source, add.input) if paired]
        assert len(kept) == 1 and kept[0] is not None and after.kernel(kept[0]) == [1, 1]
