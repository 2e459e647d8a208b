"""Everything a run reads, checked before its run directory is created: the model and its
checkpoint, every teacher, the data (decoded, sizes alike), and every calibration source. A bad
input is a one-line error and no folder or file is left behind. The evaluation, validation and
training images decoded here are kept for the run (when they fit in memory), so checking them
costs no second decoding; the calibration images are decoded once more by the quantizer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.markup import escape

from edgevision.data import Dataset, EvalSet
from edgevision.errors import DataError, first_line
from edgevision.models.native import native_input
from edgevision.progress import log
from edgevision.recipe import Recipe
from edgevision.stages import get_stage

if TYPE_CHECKING:
    from edgevision.models.build import BuiltModel
    from edgevision.quantization.config import CalibrationSpec

#: images decoded to check a split that is too large to decode ahead of the run
SAMPLE_IMAGES = 64


@dataclass
class Inputs:
    """The checked data and model a run starts from."""

    dataset: Dataset
    built: BuiltModel


def load_inputs(recipe: Recipe, *, training: bool) -> Inputs:
    """Open the data and build the model, checking that they fit each other, that every image
    a run will read decodes to one size, and that the teachers and calibration sources exist."""
    import torch

    from edgevision.models.build import build_model

    torch.manual_seed(recipe.seed)
    dataset = Dataset.from_spec(recipe.data, recipe.seed)
    built = build_model(recipe.model)
    for note in built.notes:
        log(f"[yellow]{escape(note)}[/yellow]")
    log(escape(f"model {built.name} ({built.source}); data {recipe.data.root} "
               f"({len(dataset.train_source)} train / {len(dataset.eval_source)} "
               f"{recipe.data.eval_split} images)"))
    if recipe.data.eval_split == recipe.data.train_split:
        log("[yellow]data.eval_split is the training split: accuracy is measured on training "
            "images[/yellow]")
    check_classes(built, dataset)
    _note_input_size(built.name, dataset)
    _check_teachers(recipe, dataset)
    _check_images(dataset, training)
    check_calibration(recipe, dataset)
    return Inputs(dataset, built)


def _note_input_size(name: str, dataset: Dataset) -> None:
    """Say when the images differ from the model's native size (allowed: the artifacts'
    metadata records both)."""
    native = native_input(name)
    if native is None:
        return
    shape = dataset.eval_set().sample_shape()
    if tuple(shape[1:]) != (native.image_size, native.image_size):
        log(f"[yellow]input {shape[2]}x{shape[1]} px; {name}'s native size is "
            f"{native.image_size} px (allowed; the metadata records both)[/yellow]")


def check_classes(built: BuiltModel, dataset: Dataset) -> None:
    """The model runs on the data's input shape and has one output per class."""
    import torch

    shape = dataset.eval_set().sample_shape()
    built.module.eval()
    try:
        with torch.inference_mode():
            outputs = built.module(torch.zeros(1, *shape)).shape[-1]
    except RuntimeError as exc:
        raise DataError(f"model {built.name} cannot run on the data's input shape "
                        f"{tuple(shape)} (check data.image_size and data.channels): "
                        f"{first_line(exc)}") from None
    if outputs != len(dataset.classes):
        raise DataError(f"model {built.name} outputs {outputs} classes but the data has "
                        f"{len(dataset.classes)} ({', '.join(dataset.classes[:5])}, ...); set "
                        "model.num_classes")


def _check_teachers(recipe: Recipe, dataset: Dataset) -> None:
    from edgevision.distillation.config import DistillConfig
    from edgevision.models.build import build_model

    for config in recipe.stages:
        if isinstance(config, DistillConfig) and config.teacher is not None:
            check_classes(build_model(config.teacher), dataset)


def _check_images(dataset: Dataset, training: bool) -> None:
    """Decode the evaluation split (kept for the run when it fits in memory) and the training
    split (kept when training decodes it once); else a seeded sample of it, the rest being
    reported by file name when it is read."""
    log("checking the images (decoded once, kept for the run)")
    eval_set = dataset.eval_set()
    if not eval_set.preload():
        eval_set.check_decodable(eval_set.sample(SAMPLE_IMAGES))
    if not training:
        return
    if dataset.splits.val:  # evaluated after every epoch
        validation = dataset.val_set()
        if not validation.preload():
            validation.check_decodable(validation.sample(SAMPLE_IMAGES))
    from edgevision.data.loaders import predecode_training

    if not predecode_training(dataset):
        train = EvalSet(dataset.train_source, dataset.splits.train, dataset.preprocess,
                        name="training")
        train.check_decodable(train.sample(SAMPLE_IMAGES))


def check_calibration(recipe: Recipe, dataset: Dataset) -> None:
    """Every quantize stage's (and the search's) calibration images exist, decode and fit the
    model input."""
    from edgevision.quantization.calibration import calibration_images, check_calibration_shape
    from edgevision.quantization.config import QuantizeConfig

    specs: list[CalibrationSpec] = [c.calibration for c in recipe.stages
                                    if isinstance(c, QuantizeConfig)
                                    and get_stage(c.kind).phase == "artifact"]
    if recipe.search is not None and set(recipe.search.precisions) - {"fp32", "fp16"}:
        specs.append(recipe.search.quantize_config(["int8"]).calibration)
    shape = dataset.eval_set().sample_shape()
    for spec in {s.model_dump_json(): s for s in specs}.values():
        images, _ = calibration_images(spec, dataset)
        check_calibration_shape(images, shape)
        images.check_decodable(images.indices)
