"""Where the images are and how they are preprocessed and split (the recipe's ``data:``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from edgevision.config import Strict

DatasetKind = Literal["imagefolder", "cifar10", "fashion_mnist"]


class DataSpec(Strict):
    """Where the images are and how they are preprocessed and split."""

    dataset: DatasetKind = Field("imagefolder", description="imagefolder: one folder per class "
                                 "under each split folder; cifar10/fashion_mnist: torchvision's "
                                 "datasets")
    root: Path = Field(description="ImageFolder root (or a .tar.gz/.zip of one), or the "
                       "torchvision dataset root")
    download: bool = Field(False, description="let torchvision download cifar10/fashion_mnist")
    train_split: str = Field("train", description="the training split: its folder under root "
                             "(cifar10/fashion_mnist: train)")
    eval_split: str = Field("test", description="the split accuracy is reported on: its "
                            "folder under root (cifar10/fashion_mnist: test or train)")
    image_size: int | None = Field(None, ge=8, description="final square input size; "
                                   "None keeps the images' own size")
    resize: int | None = Field(None, ge=8, description="resize the shorter side to this before "
                               "the center crop to image_size (ImageNet style: 256 then 224)")
    mean: list[float] = Field(default_factory=lambda: [0.485, 0.456, 0.406], description="per-"
                              "channel mean subtracted after scaling to [0, 1] (1 or channels "
                              "values); omitted: the model's own (efficientnet_lite*: 127/255), "
                              "else torchvision's ImageNet mean")
    std: list[float] = Field(default_factory=lambda: [0.229, 0.224, 0.225], description="per-"
                             "channel standard deviation divided by (1 or channels values); "
                             "omitted: the model's own (efficientnet_lite*: 128/255), else "
                             "torchvision's ImageNet std")
    channels: Literal[1, 3] = Field(3, description="model input channels; grey images are "
                                    "repeated to 3 channels when 3")
    augment: Literal["none", "flip", "cifar", "imagenet"] = Field(
        "cifar", description="training augmentation: cifar = pad-4 random crop + flip; "
        "imagenet = random resized crop (data.crop_scale, aspect 3/4 to 4/3) to the input "
        "size + flip")
    crop_scale: tuple[float, float] = Field(
        (0.08, 1.0), description="augment imagenet: the [min, max] fraction of the image's "
        "area each random crop covers (torchvision's RandomResizedCrop scale)")
    val_size: int = Field(5000, ge=0, description="training images held out (seeded) for "
                          "validation during training")
    train_limit: int | None = Field(None, ge=1, description="use only this many (seeded) "
                                    "training images")
    eval_limit: int | None = Field(None, ge=1, description="evaluate on a seeded subset of "
                                   "this size")
    calibration_size: int = Field(512, ge=1, description="size of the seeded calibration subset "
                                  "of the training split")
    batch_size: int = Field(128, ge=1, description="training and evaluation batch size")
    workers: int = Field(0, ge=0, description="DataLoader worker processes")
    decode_once: bool = Field(True, description="decode the training images once into memory "
                              "(uint8; up to 2 GiB and half the available memory, else PIL "
                              "every epoch) and crop/flip/normalise whole batches with torch on "
                              "the training device (false: PIL every epoch)")

    @model_validator(mode="after")
    def _normalisation_matches_channels(self) -> DataSpec:
        for key in ("mean", "std"):
            values = getattr(self, key)
            if len(values) not in (1, self.channels):
                raise ValueError(f"data.{key} has {len(values)} values; expected 1 or "
                                 f"{self.channels} (data.channels)")
        if any(s <= 0 for s in self.std):
            raise ValueError("data.std values must be > 0")
        low, high = self.crop_scale
        if not 0 < low <= high <= 1:
            raise ValueError(f"data.crop_scale {[low, high]} must satisfy 0 < min <= max <= 1")
        return self
