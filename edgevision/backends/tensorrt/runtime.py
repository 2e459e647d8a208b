"""Running an engine: register TensorRT's plugins, deserialize, allocate device buffers and
pinned host buffers for the profile's largest batch, copy in, ``execute_async_v3`` on a CUDA
stream, copy out; CUDA events time the host→device copy, the GPU compute and the device→host
copy of every run separately (as trtexec reports, which also copies from pinned memory).

Needs ``tensorrt`` and ``cuda-python``; no torch.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import tensorrt as trt

from edgevision.backends.tensorrt.cudart import (
    CudaError,
    PinnedBuffer,
    free_pinned,
    pinned_empty,
    stream_handle,
)
from edgevision.backends.tensorrt.cudart import check as _check
from edgevision.backends.tensorrt.cudart import runtime as cudart
from edgevision.backends.tensorrt.metadata import EngineMetadata, GpuInfo
from edgevision.errors import ArtifactError
from edgevision.progress import log

__all__ = ["LOGGER", "CudaError", "EngineSession", "gpu_info", "init_plugins",
           "inspect_engine", "tensorrt_version"]

#: the one TensorRT logger of the process (builder, parser, runtime, plugins share it)
LOGGER = trt.Logger(trt.Logger.WARNING)


def _require(ok: bool, what: str) -> None:
    if not ok:
        raise ArtifactError(f"TensorRT refused to {what} (see the TensorRT log above)")


def tensorrt_version() -> str:
    return str(trt.__version__)


@cache
def init_plugins() -> None:
    """Register TensorRT's own plugins (libnvinfer_plugin) once per process: call before
    parsing an ONNX graph or deserializing an engine that may use them."""
    # the binding declares a capsule; pybind11 passes any bound object (the Logger) as the
    # void* it takes, as NVIDIA's samples do
    if not trt.init_libnvinfer_plugins(LOGGER, ""):  # type: ignore[arg-type]
        log("[yellow]TensorRT could not register its plugins (libnvinfer_plugin); engines "
            "that use them will not load[/yellow]")


def gpu_info(device: int = 0) -> GpuInfo:
    """Name and compute capability of the GPU (RuntimeError when there is none)."""
    if _check(cudart.cudaGetDeviceCount()) < 1:
        raise CudaError("cudaGetDeviceCount found no GPU")
    props = _check(cudart.cudaGetDeviceProperties(device))
    name = props.name.decode(errors="replace") if isinstance(props.name, bytes) else props.name
    return GpuInfo(name=name.rstrip("\x00").strip(),
                   compute_capability=(int(props.major), int(props.minor)))


def inspect_engine(engine: trt.ICudaEngine | trt.IHostMemory | bytes,
                   host_code_allowed: bool = False, dla_core: int | None = None) -> str:
    """The engine's layer information as IEngineInspector JSON (per-layer precisions and
    tactics need ``ProfilingVerbosity.DETAILED`` at build): for an engine, or a serialized one
    (deserialized here; ``host_code_allowed`` for a version-compatible engine, ``dla_core`` for
    a DLA one)."""
    if not isinstance(engine, trt.ICudaEngine):
        init_plugins()
        runtime = trt.Runtime(LOGGER)
        runtime.engine_host_code_allowed = host_code_allowed
        if dla_core is not None:
            runtime.DLA_core = dla_core
        deserialized = runtime.deserialize_cuda_engine(bytes(engine))
        _require(deserialized is not None, "deserialize the engine it just built")
        engine = deserialized
    inspector = engine.create_engine_inspector()
    return str(inspector.get_engine_information(trt.LayerInformationFormat.JSON))


def _shape(dims: trt.Dims) -> tuple[int, ...]:
    return tuple(dims[i] for i in range(len(dims)))


class EngineSession:
    """One deserialized engine with its execution context, stream, buffers and events."""

    def __init__(self, path: Path, metadata: EngineMetadata) -> None:
        init_plugins()
        runtime = trt.Runtime(LOGGER)
        if metadata.version_compatible:
            runtime.engine_host_code_allowed = True
        if metadata.dla_core is not None:
            runtime.DLA_core = metadata.dla_core
        engine = runtime.deserialize_cuda_engine(path.read_bytes())
        if engine is None:
            raise ArtifactError(f"{path}: TensorRT {trt.__version__} cannot deserialize it "
                                "(truncated, corrupt, or built by another TensorRT version; "
                                "see the TensorRT log above)")
        self.engine, self.runtime = engine, runtime
        self.input_name, self.output_name = metadata.input.name, metadata.output_name
        names = {engine.get_tensor_name(i) for i in range(engine.num_io_tensors)}
        if names != {self.input_name, self.output_name}:
            raise ArtifactError(f"{path}: the engine's tensors {sorted(names)} differ from its "
                                f"metadata's ({self.input_name}, {self.output_name})")
        self.context = engine.create_execution_context()
        _require(self.context is not None, "create an execution context")
        self.d_input: Any = None
        self.d_output: Any = None
        self.h_input: PinnedBuffer | None = None
        self.h_output: PinnedBuffer | None = None
        self.input_dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(self.input_name)))
        self.output_dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(self.output_name)))
        self.stream: Any = None
        self.events: list[Any] = []
        self.times: list[tuple[float, float, float]] = []
        try:
            self.stream = _check(cudart.cudaStreamCreate())
            self.events = [_check(cudart.cudaEventCreate()) for _ in range(4)]
            self._allocate(tuple(metadata.input.max_shape))
        except BaseException:
            self.close()
            raise

    def _allocate(self, max_input: tuple[int, ...]) -> None:
        """Device and pinned host buffers for the profile's largest batch."""
        _require(self.context.set_input_shape(self.input_name, max_input),
                 f"accept input shape {max_input}")
        max_output = _shape(self.context.get_tensor_shape(self.output_name))
        self.h_input = pinned_empty(int(np.prod(max_input)), self.input_dtype)
        self.h_output = pinned_empty(int(np.prod(max_output)), self.output_dtype)
        self.d_input = _check(cudart.cudaMalloc(self.h_input.nbytes))
        self.d_output = _check(cudart.cudaMalloc(self.h_output.nbytes))
        _require(self.context.set_tensor_address(self.input_name, int(self.d_input)) and
                 self.context.set_tensor_address(self.output_name, int(self.d_output)),
                 "bind the device buffers")

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """Run one batch (within the profile): copied into the pinned input buffer, the output
        returned as a copy of the pinned output buffer."""
        assert self.h_input is not None and self.h_output is not None  # open session
        host_in = self.h_input.view(batch.shape)
        np.copyto(host_in, batch, casting="same_kind")
        _require(self.context.set_input_shape(self.input_name, batch.shape),
                 f"accept input shape {batch.shape}")
        host_out = self.h_output.view(_shape(self.context.get_tensor_shape(self.output_name)))
        stream = self.stream
        start, copied_in, computed, copied_out = self.events
        _check(cudart.cudaEventRecord(start, stream))
        _check(cudart.cudaMemcpyAsync(self.d_input, self.h_input.pointer, host_in.nbytes,
                                      cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, stream))
        _check(cudart.cudaEventRecord(copied_in, stream))
        if not self.context.execute_async_v3(stream_handle(stream)):
            raise ArtifactError("TensorRT failed to run the engine (see the TensorRT log)")
        _check(cudart.cudaEventRecord(computed, stream))
        _check(cudart.cudaMemcpyAsync(self.h_output.pointer, self.d_output, host_out.nbytes,
                                      cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost, stream))
        _check(cudart.cudaEventRecord(copied_out, stream))
        _check(cudart.cudaStreamSynchronize(stream))
        self.times.append((_check(cudart.cudaEventElapsedTime(start, copied_in)),
                           _check(cudart.cudaEventElapsedTime(copied_in, computed)),
                           _check(cudart.cudaEventElapsedTime(computed, copied_out))))
        return host_out.copy()

    def breakdown(self) -> dict[str, Any]:
        """Median and p99 (ms) of the host→device copy, GPU compute and device→host copy."""
        if not self.times:
            return {}
        data = np.asarray(self.times)
        result: dict[str, Any] = {}
        for column, name in enumerate(("h2d", "gpu_compute", "d2h")):
            p50, p99 = np.percentile(data[:, column], [50, 99])
            result[name] = {"p50_ms": float(p50), "p99_ms": float(p99)}
        result["runs"] = len(self.times)
        return result

    def close(self) -> None:
        for pointer in (self.d_input, self.d_output):
            if pointer is not None:
                cudart.cudaFree(pointer)
        free_pinned(self.h_input)
        free_pinned(self.h_output)
        for event in self.events:
            cudart.cudaEventDestroy(event)
        if self.stream is not None:
            cudart.cudaStreamDestroy(self.stream)
        self.d_input = self.d_output = self.h_input = self.h_output = self.stream = None
        self.events = []
