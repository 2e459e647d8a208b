"""What a TensorRT build will do, decided without TensorRT: builder flags per precision, the
optimization profile's shapes, and the equivalent ``trtexec`` command line."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

from edgevision.backends.tensorrt.spec import EngineSpec
from edgevision.errors import EdgevisionError

#: builder flags (``tensorrt.BuilderFlag`` member names) each precision sets
PRECISION_FLAGS: dict[str, tuple[str, ...]] = {
    "fp32": (),
    "fp16": ("FP16",),
    "int8": ("INT8",),
    "int8+fp16": ("INT8", "FP16"),
}


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
    """Everything a build needs, from the recipe's engine section and the ONNX input."""

    onnx: Path
    engine: Path
    precision: str
    flags: tuple[str, ...]
    profile: Profile
    workspace_bytes: int
    optimization_level: int
    timing_cache: Path | None
    hardware_compatibility: str
    version_compatible: bool
    dla_core: int | None
    gpu_fallback: bool
    sparsity: bool


def plan_build(onnx: Path, engine: Path, precision: str, spec: EngineSpec, input_name: str,
               sample_shape: tuple[int, ...], opt_batch: int | None = None,
               timing_cache: Path | None = None, output_name: str = "logits") -> BuildPlan:
    """The build of ``onnx`` (input ``input_name``, one sample's shape C×H×W) at ``precision``."""
    if precision not in PRECISION_FLAGS:
        raise EdgevisionError(f"unknown engine precision {precision!r} "
                              f"({', '.join(PRECISION_FLAGS)})")
    if spec.dla_core is not None and precision == "fp32":
        raise EdgevisionError("DLA runs FP16 or INT8 layers only: use precision fp16, int8 or "
                              "int8+fp16 with dla_core")
    opt = spec.opt_batch or min(max(opt_batch or spec.max_batch, spec.min_batch), spec.max_batch)
    flags = list(PRECISION_FLAGS[precision])
    if spec.version_compatible:
        flags.append("VERSION_COMPATIBLE")
    if spec.dla_core is not None and spec.gpu_fallback:
        flags.append("GPU_FALLBACK")
    if spec.sparsity:
        flags.append("SPARSE_WEIGHTS")
    profile = Profile(input_name, output_name, (spec.min_batch, *sample_shape),
                      (opt, *sample_shape), (spec.max_batch, *sample_shape))
    return BuildPlan(onnx, engine, precision, tuple(flags), profile,
                     spec.workspace_mb * (1 << 20), spec.optimization_level,
                     spec.timing_cache or timing_cache, spec.hardware_compatibility,
                     spec.version_compatible, spec.dla_core, spec.gpu_fallback, spec.sparsity)


def _dims(shape: tuple[int, ...]) -> str:
    return "x".join(str(d) for d in shape)


def trtexec_command(plan: BuildPlan) -> list[str]:
    """The ``trtexec`` invocation that builds the same engine (users compare with it)."""
    name = plan.profile.input_name
    command = ["trtexec", f"--onnx={plan.onnx}", f"--saveEngine={plan.engine}",
               f"--minShapes={name}:{_dims(plan.profile.min_shape)}",
               f"--optShapes={name}:{_dims(plan.profile.opt_shape)}",
               f"--maxShapes={name}:{_dims(plan.profile.max_shape)}",
               f"--memPoolSize=workspace:{plan.workspace_bytes >> 20}",  # MiB
               f"--builderOptimizationLevel={plan.optimization_level}"]
    command += [f"--{flag.lower()}" for flag in plan.flags if flag in ("FP16", "INT8")]
    if plan.timing_cache is not None:
        command.append(f"--timingCacheFile={plan.timing_cache}")
    if plan.hardware_compatibility == "ampere_plus":
        command.append("--hardwareCompatibilityLevel=ampere+")
    if plan.version_compatible:
        command.append("--versionCompatible")
    if plan.dla_core is not None:
        command.append(f"--useDLACore={plan.dla_core}")
        if plan.gpu_fallback:
            command.append("--allowGPUFallback")
    if plan.sparsity:
        command.append("--sparsity=enable")
    return command


def trtexec_text(plan: BuildPlan) -> str:
    """The command as one shell line."""
    return shlex.join(trtexec_command(plan))
