"""Running an engine: deserialize, allocate device buffers for the profile's largest batch,
copy in, ``execute_async_v3`` on a CUDA stream, copy out; CUDA events time the host→device
copy, the GPU compute and the device→host copy of every run separately (as trtexec reports).

Needs ``tensorrt`` and ``cuda-python``; no torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import tensorrt as trt

from edgevision.backends.tensorrt.metadata import EngineMetadata, GpuInfo
from edgevision.errors import ArtifactError, BackendUnavailableError

try:  # cuda-python ≥ 12.6 (and 13) name the runtime bindings cuda.bindings.runtime
    from cuda.bindings import runtime as cudart
except ImportError:  # older cuda-python
    from cuda import cudart  # type: ignore[no-redef]

_LOGGER = trt.Logger(trt.Logger.WARNING)


class CudaError(BackendUnavailableError):
    """A CUDA runtime call failed (no GPU, out of memory, a faulting kernel)."""


def _check(result: Any) -> Any:
    """cuda-python returns ``(error, value...)``; raise on an error, return the value(s)."""
    error, *values = result if isinstance(result, tuple) else (result,)
    if error != cudart.cudaError_t.cudaSuccess:
        _, name = cudart.cudaGetErrorName(error)
        raise CudaError(f"CUDA error {name.decode() if isinstance(name, bytes) else name}")
    return values[0] if len(values) == 1 else tuple(values)


def _require(ok: bool, what: str) -> None:
    if not ok:
        raise ArtifactError(f"TensorRT refused to {what} (see the TensorRT log above)")


def tensorrt_version() -> str:
    return str(trt.__version__)


def gpu_info(device: int = 0) -> GpuInfo:
    """Name and compute capability of the GPU (RuntimeError when there is none)."""
    if _check(cudart.cudaGetDeviceCount()) < 1:
        raise CudaError("cudaGetDeviceCount found no GPU")
    props = _check(cudart.cudaGetDeviceProperties(device))
    name = props.name.decode(errors="replace") if isinstance(props.name, bytes) else props.name
    return GpuInfo(name=name.rstrip("\x00").strip(),
                   compute_capability=(int(props.major), int(props.minor)))


def _shape(dims: trt.Dims) -> tuple[int, ...]:
    return tuple(dims[i] for i in range(len(dims)))


class EngineSession:
    """One deserialized engine with its execution context, stream, buffers and events."""

    def __init__(self, path: Path, metadata: EngineMetadata) -> None:
        runtime = trt.Runtime(_LOGGER)
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
        _require(self.context.set_input_shape(self.input_name, max_input),
                 f"accept input shape {max_input}")
        max_output = _shape(self.context.get_tensor_shape(self.output_name))
        self.input_bytes = int(np.prod(max_input)) * self.input_dtype.itemsize
        self.output_bytes = int(np.prod(max_output)) * self.output_dtype.itemsize
        self.d_input = _check(cudart.cudaMalloc(self.input_bytes))
        self.d_output = _check(cudart.cudaMalloc(self.output_bytes))
        _require(self.context.set_tensor_address(self.input_name, int(self.d_input)) and
                 self.context.set_tensor_address(self.output_name, int(self.d_output)),
                 "bind the device buffers")

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """Run one batch; returns the output on the host."""
        host = np.ascontiguousarray(batch, dtype=self.input_dtype)
        _require(self.context.set_input_shape(self.input_name, host.shape),
                 f"accept input shape {host.shape}")
        output = np.empty(_shape(self.context.get_tensor_shape(self.output_name)),
                          dtype=self.output_dtype)
        start, copied_in, computed, copied_out = self.events
        _check(cudart.cudaEventRecord(start, self.stream))
        _check(cudart.cudaMemcpyAsync(self.d_input, host.ctypes.data, host.nbytes,
                                      cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, self.stream))
        _check(cudart.cudaEventRecord(copied_in, self.stream))
        if not self.context.execute_async_v3(int(self.stream)):
            raise ArtifactError("TensorRT failed to run the engine (see the TensorRT log)")
        _check(cudart.cudaEventRecord(computed, self.stream))
        _check(cudart.cudaMemcpyAsync(output.ctypes.data, self.d_output, output.nbytes,
                                      cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost, self.stream))
        _check(cudart.cudaEventRecord(copied_out, self.stream))
        _check(cudart.cudaStreamSynchronize(self.stream))
        self.times.append((_check(cudart.cudaEventElapsedTime(start, copied_in)),
                           _check(cudart.cudaEventElapsedTime(copied_in, computed)),
                           _check(cudart.cudaEventElapsedTime(computed, copied_out))))
        return output

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
        for event in self.events:
            cudart.cudaEventDestroy(event)
        if self.stream is not None:
            cudart.cudaStreamDestroy(self.stream)
        self.d_input = self.d_output = self.stream = None
        self.events = []
