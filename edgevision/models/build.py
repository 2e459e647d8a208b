"""Model registry: edgevision's own architectures, every torchvision classifier, checkpoints.

``build_model(spec)`` returns a ``BuiltModel`` (the ``nn.Module`` plus what is needed to rebuild
it). Names are looked up in edgevision's registry first, then among torchvision's
classification models.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgevision.errors import CheckpointError, EdgevisionError, UnknownNameError
from edgevision.models import checkpoint as ckpt
from edgevision.models.cifar_resnet import CONV_SHORTCUT_SUFFIX, DEPTHS, Shortcut, cifar_resnet
from edgevision.models.native import LITE_SIZES
from edgevision.models.spec import ModelSpec
from edgevision.registry import Registry, suggest

Builder = Callable[[int], nn.Module]

#: edgevision's own architectures: name → builder(num_classes).
MODELS: Registry[Builder] = Registry("model", hint="see `edgevision list models`")


def _cifar_builder(depth: int, shortcut: Shortcut) -> Builder:
    def build(num_classes: int) -> nn.Module:
        return cifar_resnet(depth, num_classes, shortcut)

    return build


for _depth in DEPTHS:
    MODELS.register(f"cifar_resnet{_depth}")(_cifar_builder(_depth, "pad"))
    # the same network with exact 1x1 selection convolutions as shortcuts (what pruning makes)
    MODELS.register(f"cifar_resnet{_depth}{CONV_SHORTCUT_SUFFIX}")(_cifar_builder(_depth, "conv"))


def _lite_builder(name: str) -> Builder:
    def build(num_classes: int) -> nn.Module:
        from edgevision.models.efficientnet_lite import efficientnet_lite

        return efficientnet_lite(name, num_classes)

    return build


for _lite in LITE_SIZES:
    MODELS.register(_lite)(_lite_builder(_lite))


@dataclass
class BuiltModel:
    """A model and its provenance (registry name, classes, source of its weights)."""

    module: nn.Module
    name: str
    num_classes: int
    source: str
    notes: list[str] = field(default_factory=list)


def torchvision_models() -> list[str]:
    """Names of torchvision's image-classification models."""
    import torchvision

    return sorted(torchvision.models.list_models(module=torchvision.models))


def list_models(contains: str | None = None) -> dict[str, str]:
    """Every buildable name (containing ``contains``, case-insensitive) mapped to its origin."""
    names = {name: "edgevision" for name in MODELS.names()}
    names.update({name: "torchvision" for name in torchvision_models()})
    if contains is None:
        return names
    return {name: origin for name, origin in names.items() if contains.lower() in name.lower()}


def build_model(spec: ModelSpec) -> BuiltModel:
    """Build the network ``spec`` describes and load its weights (torchvision or checkpoint)."""
    loaded = ckpt.read_checkpoint(spec.checkpoint, spec.trust_checkpoint) if spec.checkpoint \
        else None
    if isinstance(loaded, nn.Module):
        return BuiltModel(loaded, spec.name or type(loaded).__name__, _out_features(loaded),
                          f"whole model {spec.checkpoint}")
    if ckpt.is_model_file(loaded):
        return _from_model_file(loaded, spec.checkpoint)  # type: ignore[arg-type]
    if spec.name is None:
        raise CheckpointError("model.name is required unless model.checkpoint is a whole saved "
                              "model or an edgevision model file")
    built = _build_architecture(spec.name, spec.num_classes, spec.weights)
    if loaded is not None:
        state = _adapt_layout(spec.name, ckpt.unwrap_state_dict(loaded))
        ckpt.load_state_dict_strict(built.module, state, str(spec.checkpoint))
        built.source = f"checkpoint {spec.checkpoint}"
    return built


def _build_architecture(name: str, num_classes: int, weights: str | None) -> BuiltModel:
    if name in MODELS:
        if weights and name in LITE_SIZES:
            from edgevision.models.efficientnet_lite import pretrained_efficientnet_lite

            module, source, notes = pretrained_efficientnet_lite(name, num_classes, weights)
            return BuiltModel(module, name, num_classes, source, notes)
        if weights:
            raise CheckpointError(f"model {name!r} has no torchvision weights; use "
                                  "model.checkpoint")
        return BuiltModel(MODELS.get(name)(num_classes), name, num_classes, "random init")
    if name not in torchvision_models():
        raise UnknownNameError(MODELS.unknown_message(name, torchvision_models()))
    from edgevision.models.torchvision_zoo import build_torchvision

    module, source, notes = build_torchvision(name, num_classes, weights)
    return BuiltModel(module, name, num_classes, source, notes)


def _adapt_layout(name: str, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A checkpoint in another implementation's layout renamed to the registry model's
    (EfficientNet-Lite: lukemelas' EfficientNet-PyTorch names)."""
    if name in LITE_SIZES:
        from edgevision.models.efficientnet_lite import adapt_state_dict

        return adapt_state_dict(state)
    return state


def _from_model_file(payload: dict[str, Any], path: Path) -> BuiltModel:
    info = payload["info"]
    try:
        built = _build_architecture(info["name"], int(info["num_classes"]), None)
    except UnknownNameError:
        raise CheckpointError(
            f"{path} stores weights for {info['name']!r}, an architecture edgevision cannot "
            "rebuild by name (the run started from a whole pickled model); use its ONNX file"
        ) from None
    if payload.get("structure"):  # pruned layers: take the saved shapes
        from edgevision.models.structure import apply_structure

        apply_structure(built.module, payload["structure"], payload["state_dict"])
    ckpt.load_state_dict_strict(built.module, payload["state_dict"], str(path))
    built.source = f"edgevision model file {path}"
    return built


def load_model_file(path: Path) -> tuple[BuiltModel, dict[str, Any]]:
    """Load an edgevision model file; returns the model and its stored info."""
    payload = ckpt.read_checkpoint(path)
    if not ckpt.is_model_file(payload):
        raise CheckpointError(f"{path} is not an edgevision model file (expected format "
                              f"{ckpt.MODEL_FILE_FORMAT})")
    return _from_model_file(payload, path), dict(payload["info"])


def named_layer(model: nn.Module, name: str, where: str, error: type[EdgevisionError],
                role: str = "model") -> nn.Module:
    """``model``'s submodule ``name``; an unknown name raises ``error`` suggesting close ones."""
    modules = dict(model.named_modules())
    if name not in modules or not name:
        names = [n for n in modules if n]
        raise error(f"{where}: the {role} has no layer {name!r}{suggest(name, names)} "
                    f"(layers look like: {', '.join(names[:6])}, ...)")
    return modules[name]


def _out_features(module: nn.Module) -> int:
    last = [m for m in module.modules() if isinstance(m, nn.Linear)]
    return last[-1].out_features if last else -1


def count_macs_params(module: nn.Module, input_shape: tuple[int, ...]) -> tuple[int, int]:
    """MACs (multiply-accumulates) and parameters for one input of ``input_shape`` (C, H, W),
    counted by torch-pruning's op counter."""
    import torch_pruning as tp

    device = next(module.parameters()).device
    was_training = module.training
    module.eval()
    try:
        macs, params = tp.utils.count_ops_and_params(
            module, torch.zeros(1, *input_shape, device=device))
    finally:
        module.train(was_training)
    return int(macs), int(params)
