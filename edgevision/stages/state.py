"""What flows between a run's steps (``PipelineState``) and the steps every path through a
run takes: the model's metadata, saving and exporting the model and its comparison snapshots.
The stage handlers, the search and the pipeline all work on this state."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgevision.data import Dataset, EvalSet
from edgevision.models.native import native_input
from edgevision.progress import log
from edgevision.recipe import Recipe
from edgevision.rundir import RunDir

if TYPE_CHECKING:
    from torch import nn

    from edgevision.models.build import BuiltModel

MODEL_FILE = "model.pt"
ONNX_FILE = "model.onnx"
CALIBRATION_FILE = "calibration.json"


@dataclass
class PipelineState:
    """What flows between steps; stages read and replace ``model`` or add ``artifacts``."""

    recipe: Recipe
    run: RunDir
    dataset: Dataset
    model: BuiltModel
    resume: bool = False
    artifacts: list[dict[str, str]] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    #: the model's variant name in the report: fp32, then e.g. pruned, pruned+distilled
    variant: str = "fp32"
    #: the model before the first model stage (the default distillation teacher); set by the
    #: pipeline whenever the recipe has a model stage
    original: nn.Module | None = None
    #: earlier states of the model exported and benchmarked beside it, by variant name
    snapshots: dict[str, nn.Module] = field(default_factory=dict)

    @cached_property
    def eval_set(self) -> EvalSet:
        """The evaluation split, decoded once per run."""
        return self.dataset.eval_set()

    def variant_with(self, step: str) -> str:
        """The variant name after ``step``: ``step`` itself for the plain FP32 model, else
        appended (pruned+distilled, pruned+distilled+int8)."""
        return step if self.variant == "fp32" else f"{self.variant}+{step}"

    def add_snapshot(self, variant: str, module: nn.Module) -> None:
        """Keep a frozen copy of ``module`` to export and benchmark as ``variant``."""
        import copy

        self.snapshots[variant] = copy.deepcopy(module).eval()

    def add_artifact(self, variant: str, path: Path, backend_hint: str = "") -> None:
        """Record an artifact (relative to the run directory) for benchmarking."""
        entry = {"variant": variant, "path": path.relative_to(self.run.path).as_posix()}
        if backend_hint:
            entry["backend"] = backend_hint
        self.artifacts.append(entry)


def model_info(state: PipelineState) -> dict[str, Any]:
    """What travels with every artifact: name, classes, input shape, preprocessing, labels,
    and the model's native input size where it has one (the input may differ from it)."""
    info = {"name": state.model.name, "num_classes": len(state.dataset.classes),
            "input_shape": list(state.eval_set.sample_shape()),
            "preprocess": state.dataset.preprocess.to_dict(), "labels": state.dataset.classes,
            "recipe": state.recipe.name}
    native = native_input(state.model.name)
    if native is not None:
        info["native_image_size"] = native.image_size
    return info


def _models_to_export(state: PipelineState) -> list[tuple[str, nn.Module, str]]:
    """(variant, module, file stem): the comparison snapshots first, then the final model."""
    snapshots = [(variant, module, variant) for variant, module in state.snapshots.items()]
    return [*snapshots, (state.variant, state.model.module, Path(MODEL_FILE).stem)]


def save_models(state: PipelineState) -> None:
    """Save the final model and its comparison snapshots as edgevision model files."""
    from edgevision.models.build import count_macs_params
    from edgevision.models.checkpoint import save_model_file

    info = model_info(state)
    macs, params = count_macs_params(state.model.module, tuple(info["input_shape"]))
    state.info["model"] = {"name": state.model.name, "source": state.model.source,
                           "variant": state.variant, "macs": macs, "params": params}
    for variant, module, stem in _models_to_export(state):
        path = state.run.path / f"{stem}.pt"
        save_model_file(module, path, {**info, "variant": variant})
        state.add_artifact(variant, path)


def export_models(state: PipelineState) -> None:
    """Export the final model and its snapshots to ONNX, each checked against PyTorch."""
    from edgevision.export.onnx import export_onnx, verify_onnx

    spec = state.recipe.export
    images = state.eval_set.first(spec.verify_images)
    checks = {}
    for variant, module, stem in _models_to_export(state):
        path = state.run.path / f"{stem}.onnx"
        log(f"exporting {variant} to ONNX (opset {spec.opset}, {spec.exporter} exporter): {path}")
        export_onnx(module, images, path, spec,
                    {**model_info(state), "variant": variant, "precision": "fp32"})
        check = verify_onnx(path, module, images, spec.atol, spec.rtol)
        log(f"ONNX Runtime matches PyTorch on {check.images} real images (max |diff| "
            f"{check.max_abs_diff:.2e}, top-1 agreement {100 * check.top1_agreement:.1f}%)")
        checks[variant] = check.to_dict()
        state.add_artifact(variant, path)
    state.info["export"] = checks
