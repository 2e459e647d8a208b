"""The recipe schema: strict pydantic models (unknown keys are errors)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny, field_validator, model_validator

from edgevision.stages import StageConfig, parse_stages

DatasetKind = Literal["imagefolder", "cifar10", "fashion_mnist"]
Device = Literal["auto", "cpu", "cuda"]


class Strict(BaseModel):
    """Base for every recipe section: unknown keys are rejected, assignments re-validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelSpec(Strict):
    """Which network to build and which weights to start from."""

    name: str | None = Field(
        None, description="registry name (see `edgevision list models`); may be omitted when "
        "`checkpoint` is a whole saved model or an edgevision model file")
    num_classes: int = Field(1000, ge=2, description="number of output classes")
    weights: str | None = Field(
        None, description="torchvision weights enum member, e.g. DEFAULT or IMAGENET1K_V1; the "
        "classifier is replaced when num_classes differs from the weights'")
    checkpoint: Path | None = Field(
        None, description="state_dict file (optionally wrapped in 'state_dict'/'model', "
        "'module.' prefixes allowed) or a whole saved model")
    trust_checkpoint: bool = Field(
        False, description="allow full unpickling of the checkpoint (needed for a whole saved "
        "nn.Module; only for files you trust)")


class DataSpec(Strict):
    """Where the images are and how they are preprocessed and split."""

    dataset: DatasetKind = "imagefolder"
    root: Path = Field(description="ImageFolder root (or a .tar.gz/.zip of one), or the "
                       "torchvision dataset root")
    download: bool = Field(False, description="let torchvision download cifar10/fashion_mnist")
    train_split: str = "train"
    eval_split: str = "test"
    image_size: int | None = Field(None, ge=8, description="final square input size; "
                                   "None keeps the images' own size")
    resize: int | None = Field(None, ge=8, description="resize the shorter side to this before "
                               "the center crop to image_size (ImageNet style: 256 then 224)")
    mean: list[float] = Field(default_factory=lambda: [0.485, 0.456, 0.406])
    std: list[float] = Field(default_factory=lambda: [0.229, 0.224, 0.225])
    channels: Literal[1, 3] = Field(3, description="model input channels; grey images are "
                                    "repeated to 3 channels when 3")
    augment: Literal["none", "flip", "cifar", "imagenet"] = Field(
        "cifar", description="training augmentation: cifar = pad-4 random crop + flip")
    val_size: int = Field(5000, ge=0, description="training images held out (seeded) for "
                          "validation during training")
    train_limit: int | None = Field(None, ge=1, description="use only this many (seeded) "
                                    "training images")
    eval_limit: int | None = Field(None, ge=1, description="evaluate on a seeded subset of "
                                   "this size")
    calibration_size: int = Field(512, ge=1, description="size of the seeded calibration subset "
                                  "of the training split")
    batch_size: int = Field(128, ge=1)
    workers: int = Field(0, ge=0, description="DataLoader worker processes")
    decode_once: bool = Field(True, description="decode the training images once into memory "
                              "(uint8, up to 2 GiB) and crop/flip/normalise whole batches with "
                              "torch; for augment none/flip/cifar (false: PIL every epoch)")

    @model_validator(mode="after")
    def _normalisation_matches_channels(self) -> DataSpec:
        for key in ("mean", "std"):
            values = getattr(self, key)
            if len(values) not in (1, self.channels):
                raise ValueError(f"data.{key} has {len(values)} values; expected 1 or "
                                 f"{self.channels} (data.channels)")
        if any(s <= 0 for s in self.std):
            raise ValueError("data.std values must be > 0")
        return self


class TrainSpec(Strict):
    """Training or fine-tuning before the compression stages (epochs: 0 skips it)."""

    epochs: int = Field(0, ge=0)
    optimizer: Literal["sgd", "adamw"] = "sgd"
    lr: float = Field(0.01, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    nesterov: bool = True
    weight_decay: float = Field(5e-4, ge=0)
    schedule: Literal["cosine", "onecycle", "constant"] = "cosine"
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    max_steps_per_epoch: int | None = Field(None, ge=1, description="cap steps per epoch "
                                            "(quick runs)")
    device: Device = "auto"
    precision: Literal["fp32", "bf16", "fp16", "auto"] = Field(
        "fp32", description="autocast precision of the forward passes (weights and optimizer "
        "stay FP32): bf16 (CUDA, or CPUs with AVX512-BF16/AMX: about 2.5x faster training "
        "measured on AMX), fp16 (CUDA only, with loss scaling), auto = bf16 where the hardware "
        "runs it natively, else fp16 on CUDA, else fp32")
    evaluate_before: bool = Field(True, description="measure eval-split top-1 before training "
                                  "too, for the report")


class ExportSpec(Strict):
    """ONNX export and its numerical check against PyTorch."""

    opset: int = Field(18, ge=17, le=23)
    exporter: Literal["dynamo", "torchscript"] = Field(
        "dynamo", description="torch.onnx exporter: dynamo (torch.export) or the legacy "
        "TorchScript one")
    dynamic_batch: bool = True
    verify_images: int = Field(64, ge=1, description="real eval images used to compare ONNX "
                               "Runtime's outputs with PyTorch's")
    atol: float = Field(1e-4, gt=0)
    rtol: float = Field(1e-3, ge=0)


class BenchmarkSpec(Strict):
    """How artifacts are measured: backends, batch sizes, timing and accuracy."""

    backends: list[str] = Field(default_factory=lambda: ["pytorch", "onnxruntime"])
    batch_sizes: list[int] = Field(default_factory=lambda: [1, 64])
    warmup: int = Field(10, ge=0, description="untimed iterations before timing")
    iterations: int = Field(100, ge=1, description="timed iterations per batch size (p99 "
                            "needs ≥ 100 to differ from the maximum)")
    threads: int | None = Field(None, ge=1, description="intra-op threads; None = all cores")
    device: Device = "cpu"
    accuracy: bool = True

    @field_validator("batch_sizes")
    @classmethod
    def _positive_batches(cls, value: list[int]) -> list[int]:
        if not value or any(b < 1 for b in value):
            raise ValueError("benchmark.batch_sizes must be a non-empty list of positive ints")
        return value

    @field_validator("backends")
    @classmethod
    def _known_backends(cls, value: list[str]) -> list[str]:
        from edgevision.backends import BACKENDS

        for name in value:
            BACKENDS.get(name)  # raises with close-name suggestions
        return value


EnginePrecision = Literal["fp32", "fp16", "int8", "int8+fp16"]


class EngineSpec(Strict):
    """TensorRT engines built from the run's ONNX graphs (``edgevision build`` takes the same
    settings as options)."""

    precisions: list[EnginePrecision] = Field(
        default_factory=lambda: list[EnginePrecision](["fp16"]),
        description="fp32, fp16 (builder flag), int8 (from the quantize stage's tensorrt-target "
        "QDQ graph), int8+fp16 (unquantized layers in FP16)")
    min_batch: int = Field(1, ge=1, description="optimization profile: smallest batch")
    opt_batch: int | None = Field(None, ge=1, description="batch TensorRT tunes for (default: "
                                  "the largest benchmark batch size)")
    max_batch: int = Field(64, ge=1, description="optimization profile: largest batch")
    workspace_mb: int = Field(1024, ge=1, description="builder workspace memory limit (MiB)")
    optimization_level: int = Field(3, ge=0, le=5, description="builder optimization level "
                                    "(0-5; higher builds slower, may run faster)")
    timing_cache: Path | None = Field(
        None, description="timing cache file re-used between builds (default: tensorrt/"
        "timing.cache in the edgevision cache); one from another GPU or TensorRT version is "
        "replaced")
    hardware_compatibility: Literal["none", "ampere_plus"] = Field(
        "none", description="ampere_plus: the engine runs on any Ampere-or-newer GPU "
        "(slower kernels may be chosen)")
    version_compatible: bool = Field(False, description="runs on later TensorRT versions too "
                                     "(embeds the lean runtime; larger, can be slower)")
    dla_core: int | None = Field(None, ge=0, description="Jetson: run on this DLA core")
    gpu_fallback: bool = Field(True, description="with dla_core: layers DLA cannot run go to "
                               "the GPU")
    sparsity: bool = Field(False, description="allow 2:4 structured-sparse kernels (weights "
                           "must already be 2:4 sparse)")
    builder: Literal["python", "trtexec"] = Field(
        "python", description="build with the TensorRT Python API or with trtexec (on PATH)")

    @model_validator(mode="after")
    def _profile_order(self) -> EngineSpec:
        opt = self.opt_batch if self.opt_batch is not None else self.max_batch
        if not self.min_batch <= opt <= self.max_batch:
            raise ValueError(f"engine batches must satisfy min_batch ≤ opt_batch ≤ max_batch "
                             f"(got {self.min_batch}, {opt}, {self.max_batch})")
        if not self.precisions or len(set(self.precisions)) != len(self.precisions):
            raise ValueError("engine.precisions must be a non-empty list of distinct values")
        return self


class Recipe(Strict):
    """A whole recipe: model → data → train → stages → export → benchmark."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    description: str = ""
    seed: int = 0
    model: ModelSpec
    data: DataSpec
    train: TrainSpec = Field(default_factory=TrainSpec)
    stages: list[SerializeAsAny[StageConfig]] = Field(default_factory=list)
    search: Any = Field(None, description="optional search over pruning levels × precisions "
                        "(edgevision.search.config.SearchSpec); replaces `stages`")
    export: ExportSpec = Field(default_factory=ExportSpec)
    engine: EngineSpec | None = Field(None, description="TensorRT engines to build (skipped, "
                                      "with the reason, where TensorRT is unavailable)")
    benchmark: BenchmarkSpec = Field(default_factory=BenchmarkSpec)

    def train_specs(self) -> list[TrainSpec]:
        """Every train section: the model's, the stages' (fine-tuning, distillation, QAT) and
        the search's distillation."""
        found = list(_train_specs(self))
        if self.search is not None and (distill := self.search.distill_config()) is not None:
            found += _train_specs(distill)
        return found

    @field_validator("search", mode="before")
    @classmethod
    def _parse_search(cls, value: Any) -> Any:
        from edgevision.search.config import SearchSpec

        if value is None or isinstance(value, SearchSpec):
            return value
        return SearchSpec.model_validate(value)

    @model_validator(mode="after")
    def _engine_profile_covers_benchmark(self) -> Recipe:
        engine = self.engine
        if engine is not None and "tensorrt" in self.benchmark.backends:
            outside = [b for b in self.benchmark.batch_sizes
                       if not engine.min_batch <= b <= engine.max_batch]
            if outside:
                raise ValueError(f"benchmark.batch_sizes {outside} are outside the engine "
                                 f"profile {engine.min_batch}..{engine.max_batch} "
                                 "(engine.min_batch/max_batch)")
        return self

    @model_validator(mode="after")
    def _search_replaces_stages(self) -> Recipe:
        if self.search is not None and self.stages:
            raise ValueError("a recipe with `search` builds its own prune/distill/quantize "
                             "variants: leave `stages` empty")
        return self

    @field_validator("stages", mode="before")
    @classmethod
    def _parse_stages(cls, value: Any) -> list[StageConfig]:
        if value is None:
            return []
        if not isinstance(value, list):
            raise ValueError("stages must be a list")
        if all(isinstance(v, StageConfig) for v in value):
            return value
        return parse_stages(value)


def _train_specs(node: Any) -> Iterator[TrainSpec]:
    """The TrainSpec sections inside a config model (depth first, lists included)."""
    if isinstance(node, TrainSpec):
        yield node
    elif isinstance(node, BaseModel):
        for name in type(node).model_fields:
            yield from _train_specs(getattr(node, name))
    elif isinstance(node, list | tuple):
        for item in node:
            yield from _train_specs(item)
