"""Reading user checkpoints and the self-describing edgevision model file."""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgevision.errors import CheckpointError, first_line
from edgevision.io import atomic_path

MODEL_FILE_FORMAT = "edgevision.model/1"
WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "net")
PREFIXES = ("module.", "_orig_mod.")


def read_checkpoint(path: Path, trust: bool = False) -> Any:
    """Load a checkpoint file on the CPU.

    Only tensors and plain containers are unpickled unless ``trust`` is set: a whole saved
    ``nn.Module`` needs full unpickling, which can run arbitrary code.
    """
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=not trust)
    except pickle.UnpicklingError as exc:
        if not trust and "Unsupported global" in str(exc):  # a pickled class, not corruption
            raise CheckpointError(
                f"{path} holds pickled Python objects (a whole saved model?); set "
                f"model.trust_checkpoint: true to unpickle it fully (only for files you trust)"
            ) from None
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({exc})") from None
    except Exception as exc:  # torch's loader fails on foreign bytes in many ways
        # (KeyError, IndexError, RuntimeError, EOFError, ...): any of them means the same
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint "
                              f"({type(exc).__name__}: {first_line(exc)})") from None


def unwrap_state_dict(obj: Any) -> dict[str, torch.Tensor]:
    """Extract a state_dict from common wrappers and strip ``module.``/``_orig_mod.`` prefixes."""
    while isinstance(obj, Mapping) and not _is_state_dict(obj):
        inner = next((obj[k] for k in WRAPPER_KEYS if k in obj), None)
        if inner is None:
            raise CheckpointError(
                "checkpoint holds no state_dict (looked for tensors or one of the keys "
                f"{', '.join(WRAPPER_KEYS)}; found keys {', '.join(map(str, list(obj)[:8]))})")
        obj = inner.state_dict() if isinstance(inner, nn.Module) else inner
    if isinstance(obj, nn.Module):
        obj = obj.state_dict()
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"checkpoint holds a {type(obj).__name__}, not a state_dict")
    return {_strip_prefixes(k): v for k, v in obj.items()}


def _is_state_dict(obj: Mapping[str, Any]) -> bool:
    return bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def _strip_prefixes(key: str) -> str:
    changed = True
    while changed:
        changed = False
        for prefix in PREFIXES:
            if key.startswith(prefix):
                key, changed = key[len(prefix):], True
    return key


def load_state_dict_strict(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load ``state`` strictly; a misfit names the missing, unexpected and mis-shaped keys."""
    expected = model.state_dict()
    # BatchNorm fills in num_batches_tracked for checkpoints from PyTorch < 0.4.1.
    missing = [k for k in expected
               if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    mismatched = [f"{k} {tuple(state[k].shape)} vs model {tuple(v.shape)}"
                  for k, v in expected.items() if k in state and state[k].shape != v.shape]
    if missing or unexpected or mismatched:
        parts = []
        for label, keys in (("missing keys", missing), ("unexpected keys", unexpected),
                            ("shape mismatch", mismatched)):
            if keys:
                shown = ", ".join(keys[:4]) + (f", ... ({len(keys)} in all)" if len(keys) > 4
                                               else "")
                parts.append(f"{label}: {shown}")
        raise CheckpointError(f"checkpoint {source} does not fit {type(model).__name__}: "
                              + "; ".join(parts))
    model.load_state_dict(state, strict=True)


def save_model_file(model: nn.Module, path: Path, info: dict[str, Any]) -> Path:
    """Save ``model`` as an edgevision model file: ``info`` (name, num_classes, preprocessing,
    labels), its layers' shape attributes (so a pruned model is rebuilt from its registry
    architecture) and its state_dict, written atomically."""
    from edgevision.models.structure import capture_structure

    payload = {"format": MODEL_FILE_FORMAT, "info": info, "structure": capture_structure(model),
               "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def is_model_file(obj: Any) -> bool:
    """True when ``obj`` (a loaded checkpoint) is an edgevision model file."""
    return isinstance(obj, Mapping) and obj.get("format") == MODEL_FILE_FORMAT


def fit_classifier(model: nn.Module, trained_classes: int, num_classes: int) -> list[str]:
    """A pretrained model's head for ``num_classes``: kept when the weights were trained for
    that many classes, else replaced (``replace_classifier``); returns the note saying so."""
    if trained_classes == num_classes:
        return []
    replace_classifier(model, num_classes)
    return [f"classifier replaced: {trained_classes} → {num_classes} classes (new head is "
            "randomly initialised; fine-tune it)"]


def replace_classifier(model: nn.Module, num_classes: int) -> None:
    """Replace the last ``nn.Linear`` with a fresh one producing ``num_classes`` outputs."""
    linears = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise CheckpointError(f"{type(model).__name__} has no Linear classifier to replace; "
                              "use weights=None or a checkpoint with the right classes")
    path, old = linears[-1]
    parent = model.get_submodule(path.rpartition(".")[0]) if "." in path else model
    setattr(parent, path.rpartition(".")[2], nn.Linear(old.in_features, num_classes))
