"""CIFAR ResNets of He et al. (2016) with parameter-free "option A" shortcuts.

Parameter names follow akamaster/pytorch_resnet_cifar10 (``conv1``, ``layer1.0.conv1``,
``linear``...) so its pretrained checkpoints load strictly.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

DEPTHS = {20: 3, 32: 5, 44: 7, 56: 9, 110: 18}
#: registry-name suffix of the variant whose shortcuts are 1x1 convolutions
CONV_SHORTCUT_SUFFIX = "_conv_shortcut"

Shortcut = Literal["pad", "conv"]


class PadShortcut(nn.Module):
    """Option A shortcut: subsample by 2 and zero-pad ``pad`` channels on each side."""

    def __init__(self, pad: int) -> None:
        super().__init__()
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad), "constant", 0.0)


def selection_shortcut(in_planes: int, planes: int) -> nn.Conv2d:
    """A stride-2 1x1 convolution computing exactly what ``PadShortcut`` computes: input
    channel i goes to output channel i + pad, the other outputs are zero. Unlike the padding,
    torch-pruning can map its channels, and training may adjust it (option B without BN)."""
    pad = (planes - in_planes) // 2
    conv = nn.Conv2d(in_planes, planes, 1, stride=2, bias=False)
    with torch.no_grad():
        conv.weight.zero_()
        for channel in range(in_planes):
            conv.weight[channel + pad, channel] = 1.0
    return conv


def convert_pad_shortcuts(model: nn.Module) -> int:
    """Replace every ``PadShortcut`` in ``model`` with its exact ``selection_shortcut``;
    returns how many were replaced."""
    replaced = 0
    for block in model.modules():
        if isinstance(block, BasicBlock) and isinstance(block.shortcut, PadShortcut):
            device = block.conv1.weight.device
            block.shortcut = selection_shortcut(block.conv1.in_channels,
                                                block.conv2.out_channels).to(device)
            replaced += 1
    return replaced


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN, plus the shortcut, then ReLU."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1,
                 shortcut: Shortcut = "pad") -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_planes != planes:
            self.shortcut = PadShortcut((planes - in_planes) // 2) if shortcut == "pad" \
                else selection_shortcut(in_planes, planes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """3x3 stem (16), three stages of ``blocks`` BasicBlocks (16/32/64), pool, linear."""

    def __init__(self, blocks: int, num_classes: int = 10, shortcut: Shortcut = "pad") -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.layer1 = self._stage(16, 16, blocks, 1, shortcut)
        self.layer2 = self._stage(16, 32, blocks, 2, shortcut)
        self.layer3 = self._stage(32, 64, blocks, 2, shortcut)
        self.linear = nn.Linear(64, num_classes)
        shortcuts = {id(b.shortcut) for b in self.modules() if isinstance(b, BasicBlock)}
        for module in self.modules():
            if isinstance(module, nn.Conv2d | nn.Linear) and id(module) not in shortcuts:
                nn.init.kaiming_normal_(module.weight)

    @staticmethod
    def _stage(in_planes: int, planes: int, blocks: int, stride: int,
               shortcut: Shortcut) -> nn.Sequential:
        layers = [BasicBlock(in_planes, planes, stride, shortcut)]
        layers += [BasicBlock(planes, planes, 1, shortcut) for _ in range(blocks - 1)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.linear(out)


def cifar_resnet(depth: int, num_classes: int = 10, shortcut: Shortcut = "pad") -> CifarResNet:
    """Build the CIFAR ResNet of the given depth (20, 32, 44, 56 or 110)."""
    return CifarResNet(DEPTHS[depth], num_classes, shortcut)
