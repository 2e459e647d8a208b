"""What a TensorRT build will do, decided without TensorRT: for the targeted release, the graph
TensorRT parses (its types carry the precision), the builder flags, the optimization profile,
and the equivalent ``trtexec`` command line.

Why strong typing on every release: TensorRT 11 has no other mode (the FP16/INT8 builder flags
and calibrators are gone), and NVIDIA deprecated weak typing in 10.12, recommending strongly
typed networks with explicit quantization on 10.x as well. Building 10.3 and 10.13 engines from
the same typed graphs gives the same precision per layer on every release (no builder choice
that differs between a Jetson and a desktop), and it is the mode TensorRT 10 documents for Q/DQ
graphs. The one exception is DLA on 10.x (see ``_typing``): there FP16 comes from the
weak-typing builder flag, the only DLA path NVIDIA documents for TensorRT 10.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from edgevision.backends.tensorrt.spec import EngineSpec
from edgevision.backends.tensorrt.versions import TensorRTRelease
from edgevision.errors import EdgevisionError

#: how the graph TensorRT parses is made from the one the user gave
GraphTransform = Literal["none", "fp16", "qdq-fp16"]
Typing = Literal["strong", "weak"]

#: per precision: the transform of the source graph (strong typing) and what the source is
PRECISION_GRAPHS: dict[str, tuple[GraphTransform, str]] = {
    "fp32": ("none", "FP32 graph"),
    "tf32": ("none", "FP32 graph"),
    "fp16": ("fp16", "FP32 graph"),
    "int8": ("none", "tensorrt-target Q/DQ graph"),
    "int8+fp16": ("qdq-fp16", "tensorrt-target Q/DQ graph"),
}

#: trtexec's names of the hardware compatibility levels
_TRTEXEC_HARDWARE = {"ampere_plus": "ampere+", "same_compute_capability": "sameComputeCapability"}


class EnginePlanError(EdgevisionError):
    """An engine that cannot be built as asked (precision, DLA, release)."""


@dataclass(frozen=True)
class Profile:
    """One optimization profile for the input: shapes at min/opt/max batch."""

    input_name: str
    output_name: str
    min_shape: tuple[int, ...]
    opt_shape: tuple[int, ...]
    max_shape: tuple[int, ...]

    def contains(self, batch: int) -> bool:
        return self.min_shape[0] <= batch <= self.max_shape[0]


@dataclass(frozen=True)
class BuildPlan:
    """Everything a build needs, from the engine settings, the graph and the release."""

    source: Path
    onnx: Path
    transform: GraphTransform
    engine: Path
    precision: str
    release: TensorRTRelease
    typing: Typing
    flags: tuple[str, ...]
    tf32: bool
    profile: Profile
    workspace_bytes: int
    optimization_level: int
    #: the timing cache file the build uses: the user's, or the default named for the GPU
    timing_cache: Path | None
    #: edgevision's default cache for this release, named per GPU at build time (``for_gpu``);
    #: None when the user named one
    default_timing_cache: Path | None
    hardware_compatibility: str
    version_compatible: bool
    dla_core: int | None
    gpu_fallback: bool
    sparsity: bool

    @property
    def mode(self) -> str:
        """How the precision was set, for the metadata: ``strongly typed (fp16 graph)``."""
        if self.typing == "weak":
            return f"weakly typed (builder flags {', '.join(self.flags)})"
        graph = {"none": "graph as given", "fp16": "FP16 graph",
                 "qdq-fp16": "Q/DQ graph with FP16 compute"}[self.transform]
        return f"strongly typed ({graph}{', TF32 allowed' if self.tf32 else ', TF32 off'})"

    def required_api(self) -> tuple[str, ...]:
        """The TensorRT names (``Class.member``) a Python build of this plan uses; the real
        bindings of each supported release are checked to have them (tests)."""
        names = ["Logger", "Dims", "Builder.create_network", "Builder.create_builder_config",
                 "Builder.create_optimization_profile", "Builder.build_serialized_network",
                 "OnnxParser.parse_from_file", "OnnxParser.num_errors", "OnnxParser.get_error",
                 "init_libnvinfer_plugins", "MemoryPoolType.WORKSPACE",
                 "IBuilderConfig.set_memory_pool_limit", "IBuilderConfig.add_optimization_profile",
                 "IBuilderConfig.builder_optimization_level", "IOptimizationProfile.set_shape",
                 "IBuilderConfig.profiling_verbosity", "ProfilingVerbosity.DETAILED",
                 "IBuilderConfig.create_timing_cache", "IBuilderConfig.set_timing_cache",
                 "IBuilderConfig.get_timing_cache", "ITimingCache.serialize",
                 "Runtime.deserialize_cuda_engine", "Runtime.engine_host_code_allowed",
                 "ICudaEngine.create_engine_inspector",
                 "EngineInspector.get_engine_information", "LayerInformationFormat.JSON",
                 "Builder.num_DLA_cores", "IBuilderConfig.profiling_verbosity"]
        if self.typing == "strong" and self.release.weak_typing:
            names.append("NetworkDefinitionCreationFlag.STRONGLY_TYPED")
        if not self.tf32:
            names += ["IBuilderConfig.clear_flag", "BuilderFlag.TF32"]
        if self.flags:
            names += ["IBuilderConfig.set_flag", *(f"BuilderFlag.{flag}" for flag in self.flags)]
        if self.hardware_compatibility != "none":
            names += ["IBuilderConfig.hardware_compatibility_level",
                      f"HardwareCompatibilityLevel.{self.hardware_compatibility.upper()}"]
        if self.dla_core is not None:
            names += ["IBuilderConfig.default_device_type", "IBuilderConfig.DLA_core",
                      "DeviceType.DLA", "Runtime.DLA_core"]
        return tuple(dict.fromkeys(names))


def for_gpu(plan: BuildPlan, gpu_name: str, compute_capability: tuple[int, int]) -> BuildPlan:
    """``plan`` with its default timing cache keyed by the GPU too (``timing-trt10.3.0-orin-
    sm87.cache``): a cache holds one GPU's timings, so each GPU gets its own file. A cache the
    user named is left as it is."""
    cache = plan.default_timing_cache
    if cache is None:
        return plan
    slug = re.sub(r"[^a-z0-9]+", "-", gpu_name.lower()).strip("-") or "gpu"
    sm = "".join(str(v) for v in compute_capability)
    return replace(plan, timing_cache=cache.with_name(f"{cache.stem}-{slug}-sm{sm}{cache.suffix}"))


def typed_graph_path(source: Path, engine: Path, transform: GraphTransform) -> Path:
    """The graph TensorRT parses: the source itself, or the typed graph made from it, beside
    the engine (``model.fp16.engine`` ← ``model.fp16.trt.onnx``); never the source's own path
    (an engine named after its source would otherwise overwrite it)."""
    if transform == "none":
        return source
    stem = engine.name.removesuffix(engine.suffix)
    typed = engine.with_name(f"{stem}.trt.onnx")
    if typed.resolve() == source.resolve():
        raise EnginePlanError(f"the {transform} graph for {engine.name} would be written over "
                              f"its source {source.name}: name the engine otherwise (--out)")
    return typed


def layers_file(engine: Path) -> Path:
    """TensorRT's per-layer JSON beside the engine: ``<engine>.layers.json``."""
    return engine.with_name(engine.name + ".layers.json")


def plan_build(onnx: Path, engine: Path, precision: str, spec: EngineSpec, input_name: str,
               sample_shape: tuple[int, ...], release: TensorRTRelease,
               opt_batch: int | None = None, timing_cache: Path | None = None,
               output_name: str = "logits", source_typed: bool = False) -> BuildPlan:
    """The build of ``onnx`` (input ``input_name``, one sample's shape C×H×W) at ``precision``
    for TensorRT ``release``; refuses, in one line, what that release or DLA cannot build.
    ``source_typed``: ``onnx`` already has the precision's types (an FP16 graph), so TensorRT
    parses it as it is."""
    if precision not in PRECISION_GRAPHS:
        raise EnginePlanError(f"unknown engine precision {precision!r} "
                              f"({', '.join(PRECISION_GRAPHS)})")
    _check_dla(spec, precision, release)
    _check_hardware(spec, release)
    typing = _typing(spec, release)
    transform = PRECISION_GRAPHS[precision][0] if typing == "strong" and not source_typed \
        else "none"
    flags = [*_weak_precision_flags(precision, typing)]
    if spec.version_compatible:
        flags.append("VERSION_COMPATIBLE")
    if spec.dla_core is not None and spec.gpu_fallback:
        flags.append("GPU_FALLBACK")
    if spec.sparsity:
        flags.append("SPARSE_WEIGHTS")
    opt = spec.opt_batch or min(max(opt_batch or spec.max_batch, spec.min_batch), spec.max_batch)
    profile = Profile(input_name, output_name, (spec.min_batch, *sample_shape),
                      (opt, *sample_shape), (spec.max_batch, *sample_shape))
    return BuildPlan(onnx, typed_graph_path(onnx, engine, transform), transform, engine,
                     precision, release, typing, tuple(flags), precision == "tf32", profile,
                     spec.workspace_mb * (1 << 20), spec.optimization_level,
                     spec.timing_cache, None if spec.timing_cache else timing_cache,
                     spec.hardware_compatibility,
                     spec.version_compatible, spec.dla_core, spec.gpu_fallback, spec.sparsity)


def _typing(spec: EngineSpec, release: TensorRTRelease) -> Typing:
    """Strong typing, except DLA on 10.x: NVIDIA documents DLA builds on TensorRT 10 with the
    weak-typing flag (BuilderFlag.FP16, trtexec --fp16) and says nothing of strongly typed DLA
    there; from 11 every network, DLA included, is strongly typed."""
    if spec.dla_core is not None and release.weak_typing:
        return "weak"
    return "strong"


def _weak_precision_flags(precision: str, typing: Typing) -> tuple[str, ...]:
    if typing == "strong":
        return ()
    return {"fp16": ("FP16",)}[precision]  # _check_dla admits only fp16 on 10.x DLA


def _check_dla(spec: EngineSpec, precision: str, release: TensorRTRelease) -> None:
    """DLA runs one static shape, in FP16 (INT8 on DLA needs implicit quantization, which
    edgevision does not make: its INT8 is explicit Q/DQ)."""
    if spec.dla_core is None:
        return
    if precision in ("fp32", "tf32"):
        raise EnginePlanError("DLA runs FP16 or INT8 layers only: use precision fp16 with "
                              "dla_core (or build fp32 for the GPU without dla_core)")
    if precision.startswith("int8"):
        raise EnginePlanError(_dla_int8_refusal(release))
    if spec.min_batch != spec.max_batch:  # EngineSpec keeps opt_batch between the two
        raise EnginePlanError(
            f"a DLA engine has one static batch, but the profile is {spec.min_batch}.."
            f"{spec.max_batch}: set min_batch and max_batch to the same value (e.g. "
            "--min-batch 1 --max-batch 1)")


def _dla_int8_refusal(release: TensorRTRelease) -> str:
    """Why DLA INT8 is refused. NVIDIA: TensorRT 10's DLA takes only implicit quantization
    (a calibrator or per-tensor dynamic ranges; its Q/DQ Translator strips explicit Q/DQ for it,
    https://github.com/NVIDIA/Deep-Learning-Accelerator-SW, tools/qdq-translator); TensorRT
    11.4.1's strongly typed DLA compiles the whole DLA region in INT8 and expects scales on every
    tensor of it (ModelOpt's DLA Q/DQ placement, https://github.com/NVIDIA/Model-Optimizer/pull/
    1661), which the tensorrt target's placement (inputs of weighted layers, residual adds)
    does not give."""
    need = ("implicit quantization (a calibrator), not the explicit Q/DQ graph edgevision makes"
            if release.weak_typing else "Q/DQ scales on every tensor of the DLA region "
            "(ModelOpt's DLA placement), not the tensorrt target's placement")
    return (f"INT8 on DLA with TensorRT {release.label} needs {need}: build fp16 for DLA, or "
            "int8 for the GPU (without dla_core)")


def _check_hardware(spec: EngineSpec, release: TensorRTRelease) -> None:
    if spec.hardware_compatibility == "same_compute_capability" and \
            not release.same_compute_capability:
        raise EnginePlanError(
            f"hardware_compatibility same_compute_capability needs TensorRT 10.13 or later "
            f"(the target is {release.label}): use none or ampere_plus")
    if spec.hardware_compatibility != "none" and spec.dla_core is not None:
        raise EnginePlanError("hardware_compatibility applies to GPU engines, not DLA: "
                              "leave it at none with dla_core")


def _dims(shape: tuple[int, ...]) -> str:
    return "x".join(str(d) for d in shape)


def trtexec_command(plan: BuildPlan) -> list[str]:
    """The ``trtexec`` invocation that builds the same engine for the plan's release (users
    compare with it): no ``--fp16/--int8`` on 11.x, ``--stronglyTyped`` where 10.x needs it,
    ``--skipInference`` (build only)."""
    name = plan.profile.input_name
    command = ["trtexec", f"--onnx={plan.onnx}", f"--saveEngine={plan.engine}",
               "--skipInference",
               f"--minShapes={name}:{_dims(plan.profile.min_shape)}",
               f"--optShapes={name}:{_dims(plan.profile.opt_shape)}",
               f"--maxShapes={name}:{_dims(plan.profile.max_shape)}",
               f"--memPoolSize=workspace:{plan.workspace_bytes >> 20}",  # MiB
               f"--builderOptimizationLevel={plan.optimization_level}"]
    if plan.typing == "strong" and plan.release.weak_typing:
        command.append("--stronglyTyped")
    command += [f"--{flag.lower()}" for flag in plan.flags if flag in ("FP16", "INT8")]
    if not plan.tf32:
        command.append("--noTF32")
    if plan.timing_cache is not None:  # the default is named per GPU at build time only
        command.append(f"--timingCacheFile={plan.timing_cache}")
    if plan.hardware_compatibility != "none":
        command.append("--hardwareCompatibilityLevel="
                       f"{_TRTEXEC_HARDWARE[plan.hardware_compatibility]}")
    if plan.version_compatible:
        command.append("--versionCompatible")
    if plan.dla_core is not None:
        command.append(f"--useDLACore={plan.dla_core}")
        if plan.gpu_fallback:
            command.append("--allowGPUFallback")
    if plan.sparsity:
        command.append("--sparsity=enable")
    command += ["--profilingVerbosity=detailed", f"--exportLayerInfo={layers_file(plan.engine)}"]
    return command


def trtexec_text(plan: BuildPlan) -> str:
    """The command as one shell line."""
    return shlex.join(trtexec_command(plan))
