"""The metadata file beside every engine (``<engine>.json``), and the check that an engine was
built for the TensorRT version and GPU it is about to run on."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edgevision.errors import ArtifactError, BackendUnavailableError
from edgevision.io import write_json_atomic

ENGINE_SCHEMA = "edgevision.engine/1"


class GpuInfo(BaseModel):
    """The GPU an engine was built on (or is about to run on)."""

    model_config = ConfigDict(extra="forbid")
    name: str
    compute_capability: tuple[int, int]


class EngineInput(BaseModel):
    """The engine's input tensor: name, dtype and its profile's shapes."""

    model_config = ConfigDict(extra="forbid")
    name: str
    dtype: str
    min_shape: list[int]
    opt_shape: list[int]
    max_shape: list[int]


class EngineMetadata(BaseModel):
    """What travels with an engine: how it was built, for what, and how to feed it."""

    # "schema" in JSON; schema_ in Python (BaseModel.schema is a method)
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    schema_: Literal["edgevision.engine/1"] = Field("edgevision.engine/1", alias="schema")
    tensorrt_version: str
    gpu: GpuInfo
    precision: str
    flags: list[str]
    hardware_compatibility: str
    version_compatible: bool
    dla_core: int | None
    input: EngineInput
    output_name: str
    preprocess: dict[str, Any]
    labels: list[str]
    onnx_file: str
    onnx_sha256: str
    trtexec_command: str
    built_with: Literal["python", "trtexec"]

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


def metadata_path(engine: Path) -> Path:
    """``model.fp16.engine`` → ``model.fp16.engine.json``."""
    return engine.with_name(engine.name + ".json")


def write_metadata(engine: Path, metadata: EngineMetadata) -> Path:
    return write_json_atomic(metadata_path(engine), metadata.to_json())


def read_metadata(engine: Path) -> EngineMetadata:
    """The engine's metadata file, validated; a missing or malformed file is one line."""
    path = metadata_path(engine)
    if not path.is_file():
        raise ArtifactError(f"{engine}: its metadata file {path.name} is missing (engines built "
                            "by edgevision carry one; rebuild with `edgevision build`)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return EngineMetadata.model_validate(data)
    except (json.JSONDecodeError, ValidationError) as exc:
        raise ArtifactError(f"{path}: not valid edgevision engine metadata "
                            f"({str(exc).splitlines()[0]})") from None


def check_compatible(metadata: EngineMetadata, tensorrt_version: str, gpu: GpuInfo,
                     engine: Path) -> None:
    """Raise with what was expected, what was found and how to rebuild, when ``engine`` cannot
    run with this TensorRT on this GPU."""
    rebuild = (f"rebuild it here: edgevision build {metadata.onnx_file} --precision "
               f"{metadata.precision}")
    built, found = _version(metadata.tensorrt_version), _version(tensorrt_version)
    if metadata.version_compatible:
        version_ok = found >= built and found[0] == built[0]
    else:
        version_ok = found[:3] == built[:3]
    if not version_ok:
        raise BackendUnavailableError(
            f"{engine.name} was built with TensorRT {metadata.tensorrt_version}"
            f"{' (version-compatible)' if metadata.version_compatible else ''}; this machine "
            f"has TensorRT {tensorrt_version}: {rebuild}")
    if metadata.hardware_compatibility == "ampere_plus":
        gpu_ok = gpu.compute_capability >= (8, 0)
    else:
        gpu_ok = gpu.compute_capability == metadata.gpu.compute_capability
    if not gpu_ok:
        raise BackendUnavailableError(
            f"{engine.name} was built for {metadata.gpu.name} (compute capability "
            f"{_cc(metadata.gpu)}, hardware compatibility {metadata.hardware_compatibility}); "
            f"this GPU is {gpu.name} ({_cc(gpu)}): {rebuild}")


def check_source_unchanged(metadata: EngineMetadata, engine: Path) -> None:
    """Raise when the ONNX file the engine was built from is still there but has changed
    (re-exported or re-quantized since): the engine would run an older model."""
    import hashlib

    source = Path(metadata.onnx_file)
    if not source.is_file():
        return  # a device with the engine only
    if hashlib.sha256(source.read_bytes()).hexdigest() != metadata.onnx_sha256:
        raise ArtifactError(f"{engine.name} was built from an earlier {source.name} (its sha256 "
                            f"differs now): rebuild it with edgevision build {source} "
                            f"--precision {metadata.precision}")


def _cc(gpu: GpuInfo) -> str:
    return ".".join(str(v) for v in gpu.compute_capability)


def _version(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split("."):
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)
