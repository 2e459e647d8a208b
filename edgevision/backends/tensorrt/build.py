"""Building engines: the TensorRT Python API (10.3 to 11.x, see ``api``), or trtexec.

Every TensorRT name is reached by plain attribute access; where releases differ the code
branches on ``api.TRT_11_OR_LATER`` / ``api.TRT_10_13_OR_LATER``, which the three type checks
fix per release, so a name a release lacks fails CI. TensorRT's own exceptions (a failed
``trt.Builder``, a shape it refuses) become one-line ``EngineBuildError``s.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgevision.backends.tensorrt.metadata import (
    EngineInput,
    EngineMetadata,
    GpuInfo,
    this_platform,
    write_metadata,
)
from edgevision.backends.tensorrt.plan import (
    BuildPlan,
    for_gpu,
    layers_file,
    trtexec_command,
    trtexec_text,
)
from edgevision.backends.tensorrt.trtexec import run_trtexec
from edgevision.errors import ArtifactError, EdgevisionError, ExportError, first_line
from edgevision.io import atomic_path
from edgevision.runlock import RunLock

if TYPE_CHECKING:  # checked against each release's stubs; imported lazily at run time
    import tensorrt as trt


class EngineBuildError(ExportError):
    """TensorRT could not build an engine (a one-line reason)."""


def build_with_plan(plan: BuildPlan, builder: str) -> Path:
    """Build ``plan.engine`` (from ``plan.onnx``, which must exist) and its metadata file. A
    failed build leaves no new engine; the old metadata file goes first, so an engine never
    pairs with another build's metadata."""
    from edgevision.backends.tensorrt.metadata import metadata_path

    metadata_path(plan.engine).unlink(missing_ok=True)
    layer_file = layers_file(plan.engine)
    layer_file.unlink(missing_ok=True)
    plan = _timing_cache_for_this_gpu(plan)
    try:
        if builder == "trtexec":
            version, gpu = trtexec_environment(run_trtexec(trtexec_command(plan), plan.engine))
        else:
            from edgevision.backends.tensorrt.runtime import gpu_info, tensorrt_version

            _build_python_safely(plan)
            version, gpu = tensorrt_version(), gpu_info()
        layers = _layer_precisions(layer_file)
        write_metadata(plan.engine, engine_metadata(plan, version, gpu, builder, layers))
    except BaseException:
        plan.engine.unlink(missing_ok=True)  # no engine without its metadata
        raise
    return plan.engine


def _timing_cache_for_this_gpu(plan: BuildPlan) -> BuildPlan:
    """The plan with its default timing cache named for this machine's GPU (where cuda-python
    can name the GPU; the trtexec builder may run without cuda-python, and then builds without
    a timing cache)."""
    if plan.default_timing_cache is None:
        return plan
    try:
        from edgevision.backends.tensorrt.runtime import gpu_info

        gpu = gpu_info()
    except (ImportError, OSError, RuntimeError, EdgevisionError):
        return plan
    return for_gpu(plan, gpu.name, gpu.compute_capability)


def _layer_precisions(layer_file: Path) -> dict[str, Any] | None:
    """The per-layer precisions TensorRT chose, summarised and printed (None, with a warning,
    when the build left no readable layer information)."""
    from edgevision.backends.tensorrt.inspect import summarize_layers
    from edgevision.progress import log

    try:
        summary = summarize_layers(layer_file.read_text(encoding="utf-8"))
    except (OSError, EdgevisionError) as exc:
        log(f"[yellow]no per-layer precisions for {layer_file.name}: {first_line(exc)}[/yellow]")
        return None
    log(f"{layer_file.name.removesuffix('.layers.json')}: {summary.summary()}")
    return summary.model_dump(mode="json")


def _build_python_safely(plan: BuildPlan) -> None:
    """``_build_python`` with TensorRT's own exceptions as one line."""
    try:
        _build_python(plan)
    except EdgevisionError:
        raise
    except Exception as exc:  # TypeError from trt.Builder, RuntimeError from set_shape, ...
        raise EngineBuildError(f"TensorRT {plan.release.label} could not build "
                               f"{plan.engine.name}: {type(exc).__name__}: "
                               f"{first_line(exc)}") from exc


def _build_python(plan: BuildPlan) -> None:
    """Build and write the engine and its inspector JSON (``layers_path``)."""
    import tensorrt as trt

    from edgevision.backends.tensorrt.api import INSTALLED
    from edgevision.backends.tensorrt.runtime import LOGGER, init_plugins, inspect_engine

    if INSTALLED.version[:2] != plan.release.version[:2]:
        raise EngineBuildError(f"the build was planned for TensorRT {plan.release.label}, but "
                               f"TensorRT {INSTALLED.label} is installed")
    init_plugins()
    builder = trt.Builder(LOGGER)
    network = builder.create_network(_network_flags(plan))
    parser = trt.OnnxParser(network, LOGGER)
    if not parser.parse_from_file(str(plan.onnx)):
        raise ExportError(f"TensorRT's ONNX parser rejects {plan.onnx.name}: "
                          f"{_parser_errors(parser)}")
    config = builder.create_builder_config()
    _configure(builder, config, plan)
    cache_file = plan.timing_cache
    loaded = _use_timing_cache(config, cache_file)
    # a cache the user named that TensorRT refused (another GPU or release) is not overwritten
    save = cache_file is not None and (loaded or plan.default_timing_cache is not None)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EngineBuildError(f"TensorRT could not build {plan.engine.name} from "
                               f"{plan.onnx.name} (see the TensorRT log above)")
    information = inspect_engine(serialized, host_code_allowed=plan.version_compatible,
                                 dla_core=plan.dla_core)
    with atomic_path(layers_file(plan.engine)) as tmp:
        tmp.write_text(information, encoding="utf-8")
    with atomic_path(plan.engine) as tmp:
        tmp.write_bytes(bytes(serialized))
    if save and cache_file is not None:
        _save_timing_cache(config, cache_file)


def _network_flags(plan: BuildPlan) -> int:
    """Strong typing: always on (and its flag deprecated) in 11.x, asked for in 10.x."""
    import tensorrt as trt

    from edgevision.backends.tensorrt.api import TRT_11_OR_LATER

    if TRT_11_OR_LATER or plan.typing == "weak":
        return 0
    return 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)


def _configure(builder: trt.Builder, config: trt.IBuilderConfig, plan: BuildPlan) -> None:
    """Flags, workspace, profile, compatibility, DLA and layer information for ``plan``."""
    import tensorrt as trt

    for flag in _builder_flags(plan):
        config.set_flag(flag)
    if not plan.tf32:  # TensorRT allows TF32 for FP32 tensors by default
        config.clear_flag(trt.BuilderFlag.TF32)
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, plan.workspace_bytes)
    config.builder_optimization_level = plan.optimization_level
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
    profile = builder.create_optimization_profile()
    shapes = plan.profile
    profile.set_shape(shapes.input_name, trt.Dims(list(shapes.min_shape)),
                      trt.Dims(list(shapes.opt_shape)), trt.Dims(list(shapes.max_shape)))
    if config.add_optimization_profile(profile) < 0:
        raise EngineBuildError(f"TensorRT refused the optimization profile {shapes.min_shape}"
                               f"..{shapes.max_shape} for input {shapes.input_name!r}")
    _set_hardware_compatibility(config, plan)
    if plan.dla_core is not None:
        if builder.num_DLA_cores <= plan.dla_core:
            raise EngineBuildError(f"DLA core {plan.dla_core} does not exist here (this GPU has "
                                   f"{builder.num_DLA_cores} DLA cores; Jetson Thor has none)")
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = plan.dla_core


def _builder_flags(plan: BuildPlan) -> list[trt.BuilderFlag]:
    """The ``trt.BuilderFlag`` members of ``plan.flags`` (named explicitly: no ``getattr``,
    so each name is type-checked against each release)."""
    import tensorrt as trt

    members = {"VERSION_COMPATIBLE": trt.BuilderFlag.VERSION_COMPATIBLE,
               "GPU_FALLBACK": trt.BuilderFlag.GPU_FALLBACK,
               "SPARSE_WEIGHTS": trt.BuilderFlag.SPARSE_WEIGHTS,
               **_weak_typing_flags()}
    unknown = [flag for flag in plan.flags if flag not in members]
    if unknown:
        raise EngineBuildError(f"TensorRT {_installed_label()} has no builder flag "
                               f"{', '.join(unknown)} (this plan is for {plan.release.label})")
    return [members[flag] for flag in plan.flags]


def _weak_typing_flags() -> dict[str, trt.BuilderFlag]:
    """The weak-typing precision flag (DLA on 10.x); TensorRT 11 has none."""
    import tensorrt as trt

    from edgevision.backends.tensorrt.api import TRT_11_OR_LATER

    if TRT_11_OR_LATER:
        return {}
    return {"FP16": trt.BuilderFlag.FP16}


def _installed_label() -> str:
    from edgevision.backends.tensorrt.api import INSTALLED

    return INSTALLED.label


def _set_hardware_compatibility(config: trt.IBuilderConfig, plan: BuildPlan) -> None:
    import tensorrt as trt

    from edgevision.backends.tensorrt.api import TRT_10_13_OR_LATER

    if plan.hardware_compatibility == "ampere_plus":
        config.hardware_compatibility_level = trt.HardwareCompatibilityLevel.AMPERE_PLUS
    elif plan.hardware_compatibility == "same_compute_capability":
        if not TRT_10_13_OR_LATER:
            raise EngineBuildError("hardware_compatibility same_compute_capability needs "
                                   "TensorRT 10.13 or later")
        config.hardware_compatibility_level = \
            trt.HardwareCompatibilityLevel.SAME_COMPUTE_CAPABILITY


def _use_timing_cache(config: trt.IBuilderConfig, cache_file: Path | None) -> bool:
    """Load the timing cache; whether it was usable. One that is missing, unreadable, corrupt,
    or from another GPU or TensorRT release is replaced by a fresh one for this build (a
    refused file the user named is reported)."""
    from edgevision.progress import log

    data = b""
    if cache_file is not None and cache_file.is_file():
        try:
            data = cache_file.read_bytes()
        except OSError:
            data = b""
    cache = config.create_timing_cache(data) if data else None
    if cache is not None and config.set_timing_cache(cache, ignore_mismatch=False):
        return True
    if data and cache_file is not None:
        log(f"[yellow]timing cache {cache_file} is from another GPU or TensorRT release (or "
            "corrupt): not used, and not overwritten[/yellow]")
    config.set_timing_cache(config.create_timing_cache(b""), ignore_mismatch=False)
    return not data


def _save_timing_cache(config: trt.IBuilderConfig, cache_file: Path) -> None:
    """Write the timing cache under a lock (``<cache>.lock``); another build writing it at the
    same moment wins and this one's timings are not saved (the next build re-times)."""
    from edgevision.progress import log

    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        lock = RunLock.acquire(cache_file.with_name(cache_file.name + ".lock"))
    except BlockingIOError:
        log(f"timing cache {cache_file} is being written by another build: not updated")
        return
    except OSError as exc:
        log(f"[yellow]timing cache {cache_file} not saved: {first_line(exc)}[/yellow]")
        return
    try:
        with atomic_path(cache_file) as tmp:
            tmp.write_bytes(bytes(config.get_timing_cache().serialize()))
    except OSError as exc:
        log(f"[yellow]timing cache {cache_file} not saved: {first_line(exc)}[/yellow]")
    finally:
        lock.release()


def _parser_errors(parser: trt.OnnxParser) -> str:
    """The parser's errors, each with the ONNX node it concerns."""
    messages = []
    for index in range(parser.num_errors):
        error = parser.get_error(index)
        messages.append(f"node {error.node_name()} ({error.node_operator()}): {error.desc()}")
    return "; ".join(messages) or "no error message"


def trtexec_environment(output: str) -> tuple[str, GpuInfo]:
    """TensorRT version and GPU from trtexec's log header."""
    version = re.search(r"TensorRT version:\s*([\d.]+)", output)
    name = re.search(r"Selected Device:\s*(.+)", output)
    capability = re.search(r"Compute Capability:\s*(\d+)\.(\d+)", output)
    if not (version and name and capability):
        raise ArtifactError("trtexec built the engine but its log lacks the TensorRT version "
                            "or device lines needed for the metadata file")
    return version[1], GpuInfo(name=name[1].strip(),
                         compute_capability=(int(capability[1]), int(capability[2])))


def engine_metadata(plan: BuildPlan, version: str, gpu: GpuInfo, builder: str,
                    layers: dict[str, Any] | None) -> EngineMetadata:
    """The metadata of the engine ``plan`` built with TensorRT ``version`` on ``gpu``."""
    import hashlib

    from edgevision.onnxmeta import read_metadata

    source = read_metadata(plan.source)
    return EngineMetadata(
        tensorrt_version=version, platform=this_platform(), gpu=gpu, precision=plan.precision,
        build_mode=plan.mode, flags=list(plan.flags), tf32=plan.tf32,
        hardware_compatibility=plan.hardware_compatibility,
        version_compatible=plan.version_compatible, dla_core=plan.dla_core,
        input=EngineInput(name=plan.profile.input_name, dtype="float32",
                          min_shape=list(plan.profile.min_shape),
                          opt_shape=list(plan.profile.opt_shape),
                          max_shape=list(plan.profile.max_shape)),
        output_name=plan.profile.output_name, preprocess=source.get("preprocess", {}),
        labels=list(source.get("labels", [])), onnx_file=str(plan.onnx.resolve()),
        onnx_sha256=hashlib.sha256(plan.onnx.read_bytes()).hexdigest(),
        source_onnx=str(plan.source.resolve()),
        source_sha256=hashlib.sha256(plan.source.read_bytes()).hexdigest(),
        trtexec_command=trtexec_text(plan), built_with="python" if builder == "python"
        else "trtexec", layer_precisions=layers)
