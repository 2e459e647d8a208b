"""Building engines: the TensorRT Python API (TensorRT ≥ 10.3 calls only), or trtexec."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from edgevision.backends.tensorrt.metadata import (
    EngineInput,
    EngineMetadata,
    GpuInfo,
    write_metadata,
)
from edgevision.backends.tensorrt.plan import BuildPlan, trtexec_command, trtexec_text
from edgevision.backends.tensorrt.trtexec import run_trtexec
from edgevision.errors import ArtifactError, ExportError
from edgevision.io import atomic_path


def build_with_plan(plan: BuildPlan, builder: str) -> Path:
    """Build ``plan.engine`` and its metadata file. A failed build leaves no new engine; the
    old metadata file goes first, so an engine never pairs with another build's metadata."""
    from edgevision.backends.tensorrt.metadata import metadata_path

    metadata_path(plan.engine).unlink(missing_ok=True)
    if builder == "trtexec":
        output = run_trtexec(trtexec_command(plan), plan.engine)
        try:
            version, gpu = _trtexec_environment(output)
        except ArtifactError:
            plan.engine.unlink(missing_ok=True)  # no engine without its metadata
            raise
    else:
        from edgevision.backends.tensorrt.runtime import gpu_info, tensorrt_version

        _build_python(plan)
        version, gpu = tensorrt_version(), gpu_info()
    write_metadata(plan.engine, _metadata(plan, version, gpu, builder))
    return plan.engine


def _build_python(plan: BuildPlan) -> None:
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(plan.onnx)):
        raise ExportError(f"TensorRT's ONNX parser rejects {plan.onnx.name}: "
                          f"{_parser_errors(parser)}")
    config = builder.create_builder_config()
    for flag in plan.flags:
        config.set_flag(getattr(trt.BuilderFlag, flag))
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, plan.workspace_bytes)
    config.builder_optimization_level = plan.optimization_level
    profile = builder.create_optimization_profile()
    shapes = plan.profile
    profile.set_shape(shapes.input_name, trt.Dims(list(shapes.min_shape)),
                      trt.Dims(list(shapes.opt_shape)), trt.Dims(list(shapes.max_shape)))
    config.add_optimization_profile(profile)
    if plan.hardware_compatibility == "ampere_plus":
        config.hardware_compatibility_level = trt.HardwareCompatibilityLevel.AMPERE_PLUS
    if plan.dla_core is not None:
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = plan.dla_core
    cache_file = plan.timing_cache
    _use_timing_cache(config, cache_file)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ExportError(f"TensorRT could not build {plan.engine.name} from {plan.onnx.name} "
                          "(see the TensorRT log above)")
    with atomic_path(plan.engine) as tmp:
        tmp.write_bytes(bytes(serialized))
    if cache_file is not None:
        with atomic_path(cache_file) as tmp:
            tmp.write_bytes(bytes(config.get_timing_cache().serialize()))


def _use_timing_cache(config: Any, cache_file: Path | None) -> None:
    """Load the timing cache; one that is unreadable, corrupt, or from another GPU or TensorRT
    version is replaced by a fresh one (the file is rewritten after the build)."""
    data = b""
    if cache_file is not None and cache_file.is_file():
        try:
            data = cache_file.read_bytes()
        except OSError:
            data = b""
    cache = config.create_timing_cache(data) if data else None
    if cache is None or not config.set_timing_cache(cache, ignore_mismatch=False):
        config.set_timing_cache(config.create_timing_cache(b""), ignore_mismatch=False)


def _parser_errors(parser: Any) -> str:
    """The parser's errors, each with the ONNX node it concerns."""
    messages = []
    for index in range(parser.num_errors):
        error = parser.get_error(index)
        node = error.node_name() if hasattr(error, "node_name") else f"#{error.node()}"
        operator = f" ({error.node_operator()})" if hasattr(error, "node_operator") else ""
        messages.append(f"node {node}{operator}: {error.desc()}")
    return "; ".join(messages) or "no error message"


def _trtexec_environment(output: str) -> tuple[str, GpuInfo]:
    """TensorRT version and GPU from trtexec's log header."""
    version = re.search(r"TensorRT version:\s*([\d.]+)", output)
    name = re.search(r"Selected Device:\s*(.+)", output)
    capability = re.search(r"Compute Capability:\s*(\d+)\.(\d+)", output)
    if not (version and name and capability):
        raise ArtifactError("trtexec built the engine but its log lacks the TensorRT version "
                            "or device lines needed for the metadata file")
    return version[1], GpuInfo(name=name[1].strip(),
                               compute_capability=(int(capability[1]), int(capability[2])))


def _metadata(plan: BuildPlan, version: str, gpu: GpuInfo, builder: str) -> EngineMetadata:
    import hashlib

    from edgevision.onnxmeta import read_metadata

    source = read_metadata(plan.onnx)
    return EngineMetadata(
        tensorrt_version=version, gpu=gpu, precision=plan.precision, flags=list(plan.flags),
        hardware_compatibility=plan.hardware_compatibility,
        version_compatible=plan.version_compatible, dla_core=plan.dla_core,
        input=EngineInput(name=plan.profile.input_name, dtype="float32",
                          min_shape=list(plan.profile.min_shape),
                          opt_shape=list(plan.profile.opt_shape),
                          max_shape=list(plan.profile.max_shape)),
        output_name=plan.profile.output_name, preprocess=source.get("preprocess", {}),
        labels=list(source.get("labels", [])), onnx_file=str(plan.onnx),
        onnx_sha256=hashlib.sha256(plan.onnx.read_bytes()).hexdigest(),
        trtexec_command=trtexec_text(plan), built_with="python" if builder == "python"
        else "trtexec")
