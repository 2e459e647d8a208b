"""The metadata file beside every engine (``<engine>.json``), and the check that an engine was
built for the TensorRT version and GPU it is about to run on."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edgevision.config import SchemaDocument
from edgevision.errors import ArtifactError, BackendUnavailableError
from edgevision.io import write_json_atomic

ENGINE_SCHEMA = "edgevision.engine/2"


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


class EngineMetadata(SchemaDocument):
    """What travels with an engine: how it was built, for what, and how to feed it."""

    schema_: Literal["edgevision.engine/2"] = Field("edgevision.engine/2", alias="schema")
    tensorrt_version: str
    #: the CPU architecture the engine was built on (x86_64, aarch64): it runs only there
    platform: str
    gpu: GpuInfo
    precision: str
    #: how the precision was set: strongly typed from the graph's types, or builder flags
    build_mode: str
    flags: list[str]
    #: TF32 allowed for FP32 layers (TensorRT's default; edgevision clears it except for tf32)
    tf32: bool
    hardware_compatibility: str
    version_compatible: bool
    dla_core: int | None
    input: EngineInput
    output_name: str
    preprocess: dict[str, Any]
    labels: list[str]
    #: the graph TensorRT parsed (typed for the precision) and the one it was made from
    onnx_file: str
    onnx_sha256: str
    source_onnx: str
    source_sha256: str
    trtexec_command: str
    built_with: Literal["python", "trtexec"]
    #: per-layer precisions from TensorRT's engine inspector (None: not inspected)
    layer_precisions: dict[str, Any] | None = None


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
        if isinstance(data, dict) and data.get("schema") == "edgevision.engine/1":
            raise ArtifactError(f"{path}: engine metadata of an older edgevision (schema "
                                "edgevision.engine/1): rebuild the engine with edgevision build")
        return EngineMetadata.model_validate(data)
    except (json.JSONDecodeError, ValidationError) as exc:
        raise ArtifactError(f"{path}: not valid edgevision engine metadata "
                            f"({str(exc).splitlines()[0]})") from None


def this_platform() -> str:
    """The CPU architecture, as engines record it (``x86_64``, ``aarch64``)."""
    import platform

    machine = platform.machine().lower()
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)


def check_compatible(metadata: EngineMetadata, tensorrt_version: str, gpu: GpuInfo,
                     engine: Path, platform: str | None = None) -> None:
    """Raise with what was expected, what was found and how to rebuild, when ``engine`` cannot
    run with this TensorRT on this GPU and CPU architecture."""
    rebuild = (f"rebuild it here: edgevision build {metadata.source_onnx} --precision "
               f"{metadata.precision}")
    platform = platform or this_platform()
    if platform != metadata.platform:
        raise BackendUnavailableError(f"{engine.name} was built on {metadata.platform}; this "
                                      f"machine is {platform}: {rebuild}")
    if not _version_runs(metadata, tensorrt_version):
        raise BackendUnavailableError(
            f"{engine.name} was built with TensorRT {metadata.tensorrt_version}"
            f"{' (version-compatible)' if metadata.version_compatible else ''}; this machine "
            f"has TensorRT {tensorrt_version}: {rebuild}")
    if not _gpu_runs(metadata, gpu):
        raise BackendUnavailableError(
            f"{engine.name} was built for {metadata.gpu.name} (compute capability "
            f"{_cc(metadata.gpu)}, hardware compatibility {metadata.hardware_compatibility}); "
            f"this GPU is {gpu.name} ({_cc(gpu)}): {rebuild}")


#: majors a version-compatible engine may cross (NVIDIA's support matrix: "TensorRT 10
#: version-compatible engines can run with a TensorRT 11 runtime, and TensorRT 8 [ones] with a
#: TensorRT 10 runtime. No other combination across major versions is supported.")
CROSS_MAJOR_COMPATIBLE = {(10, 11), (8, 10)}


def _version_runs(metadata: EngineMetadata, tensorrt_version: str) -> bool:
    """An engine runs on the TensorRT x.y.z that built it; a version-compatible one also on
    later releases of its major, and a 10.x one on 11.x (the runtime allows its host code)."""
    built, found = _version(metadata.tensorrt_version), _version(tensorrt_version)
    if metadata.version_compatible:
        same_major = found[0] == built[0] or (built[0], found[0]) in CROSS_MAJOR_COMPATIBLE
        return found >= built and same_major
    return found[:3] == built[:3]


def _gpu_runs(metadata: EngineMetadata, gpu: GpuInfo) -> bool:
    """none: the GPU model it was built on; same_compute_capability: that compute
    capability; ampere_plus: compute capability 8.0 or later."""
    if metadata.hardware_compatibility == "ampere_plus":
        return gpu.compute_capability >= (8, 0)
    same = gpu.compute_capability == metadata.gpu.compute_capability
    if metadata.hardware_compatibility == "same_compute_capability":
        return same
    return same and gpu.name == metadata.gpu.name


def check_source_unchanged(metadata: EngineMetadata, engine: Path) -> None:
    """Raise when the ONNX file the engine was built from is still there but has changed
    (re-exported or re-quantized since): the engine would run an older model."""
    import hashlib

    for file, sha256 in ((metadata.source_onnx, metadata.source_sha256),
                         (metadata.onnx_file, metadata.onnx_sha256)):
        source = Path(file)
        if not source.is_file():
            continue  # a device with the engine only
        if hashlib.sha256(source.read_bytes()).hexdigest() != sha256:
            raise ArtifactError(f"{engine.name} was built from an earlier {source.name} (its "
                                f"sha256 differs now): rebuild it with edgevision build "
                                f"{metadata.source_onnx} --precision {metadata.precision}")


def _cc(gpu: GpuInfo) -> str:
    return ".".join(str(v) for v in gpu.compute_capability)


def _version(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split("."):
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)
