"""``model.json``, the bundle's metadata (schema ``edgevision.bundle/1``): strict pydantic
models, so a bundle's metadata is validated when written and its JSON Schema
(``model.schema.json``) comes from the same definition."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from edgevision.config import SchemaDocument

BUNDLE_SCHEMA = "edgevision.bundle/1"
Target = Literal["openvino", "onnxruntime", "tensorrt"]
TARGETS: tuple[Target, ...] = ("openvino", "onnxruntime", "tensorrt")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelFiles(_Strict):
    """The model file in the bundle and the run file it comes from."""

    file: str = Field(description="the ONNX graph in the bundle (for tensorrt: the graph "
                      "TensorRT parses)")
    sha256: str
    source: str = Field(description="the run's file it was made from (<run folder>/<path>)")
    source_sha256: str
    engine: str | None = Field(description="the TensorRT engine in the bundle, when one was "
                               "built with the run")
    build_command: str | None = Field(description="tensorrt: the trtexec command (also in "
                                      "build_engine.sh), run in the bundle folder")


class Batch(_Strict):
    min: int = Field(ge=1)
    max: int | None = Field(description="largest batch (None: any)")


class InputSpec(_Strict):
    name: str
    dtype: Literal["float32", "float16"]
    layout: Literal["NCHW"]
    shape: list[int] = Field(min_length=4, max_length=4, description="-1: the dynamic batch")
    batch: Batch


class OutputSpec(_Strict):
    name: str
    kind: Literal["logits"]
    classes: int = Field(ge=1)


class PreprocessSpec(_Strict):
    """edgevision.data.preprocess.Preprocess as data (the algorithm: docs/deploy.md)."""

    color: Literal["RGB", "L"] = Field(description="RGB: 3 channels (grey replicated); L: one "
                                       "channel (Pillow's ITU-R 601-2 luma)")
    resize_shorter: int | None = Field(ge=1, description="resize the shorter side to this")
    center_crop: int | None = Field(ge=1, description="center-crop to this square")
    interpolation: Literal["bilinear-pillow"]
    scale: float = Field(gt=0, description="uint8 → [0, 1]: value / (1 / scale), i.e. / 255 "
                         "in float32")
    mean: list[float] = Field(min_length=1, description="per channel")
    std: list[float] = Field(min_length=1, description="per channel")
    channel_order: Literal["RGB", "L"]
    layout: Literal["CHW"]


class Machine(_Strict):
    cpu: str | None
    cores: int | None
    arch: str | None
    os: str | None
    gpu: str | None


class Measured(_Strict):
    """What edgevision measured for this variant on the target's runtime."""

    backend: str = Field(description="the edgevision backend that measured it")
    report: str = Field(description="the report in the run it comes from")
    created: str | None
    top1: float | None
    top5: float | None
    images: int | None
    split: str | None
    batch: int
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    threads: int | None
    machine: Machine


class Versions(_Strict):
    edgevision: str
    onnx_opset: int | None
    runtime: str | None = Field(description="the target runtime's version edgevision measured "
                                "with (None: not measured)")
    tensorrt: str | None = Field(description="tensorrt: the release build_engine.sh is for")
    pillow: str = Field(description="the Pillow whose decoding and resize the preprocessing "
                        "is (the C++ runner reproduces Pillow 13's resize)")


class BundleMetadata(SchemaDocument):
    """``model.json``: everything a runner needs to feed the model and read its output."""

    schema_: Literal["edgevision.bundle/1"] = Field("edgevision.bundle/1", alias="schema")
    name: str
    variant: str
    target: Target
    precision: str
    model: ModelFiles
    input: InputSpec
    output: OutputSpec
    preprocess: PreprocessSpec
    labels: list[str]
    measured: Measured | None
    versions: Versions
    created: str


def json_schema() -> dict[str, Any]:
    """``model.schema.json``: the JSON Schema (draft 2020-12) of ``model.json``."""
    schema = BundleMetadata.model_json_schema(by_alias=True, mode="serialization")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": BUNDLE_SCHEMA, **schema}
