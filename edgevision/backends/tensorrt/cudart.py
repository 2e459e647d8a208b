"""The CUDA runtime calls an engine session makes (cuda-python): errors as exceptions, a stream's
handle, and pinned (page-locked) host buffers seen as NumPy arrays.

Pinned memory is what trtexec copies from and to, so host↔device times measured here compare
with trtexec's; a copy from pageable memory goes through a staging buffer and is slower.
Needs ``cuda-python`` (cuda-bindings), not TensorRT.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgevision.errors import BackendUnavailableError

try:  # cuda-python ≥ 12.6 (and 13) name the runtime bindings cuda.bindings.runtime
    from cuda.bindings import runtime
except ImportError:  # older cuda-python
    from cuda import cudart as runtime  # type: ignore[no-redef]


class CudaError(BackendUnavailableError):
    """A CUDA runtime call failed (no GPU, out of memory, a faulting kernel)."""


def check(result: Any) -> Any:
    """cuda-python returns ``(error, value...)``; raise on an error, return the value(s)."""
    error, *values = result if isinstance(result, tuple) else (result,)
    if error != runtime.cudaError_t.cudaSuccess:
        _, name = runtime.cudaGetErrorName(error)
        raise CudaError(f"CUDA error {name.decode() if isinstance(name, bytes) else name}")
    if not values:
        return None
    return values[0] if len(values) == 1 else tuple(values)


def stream_handle(stream: Any) -> int:
    """The ``cudaStream_t`` value as an int (what ``execute_async_v3`` takes).

    cuda-bindings' supported accessor is ``cuda.bindings.utils.get_cuda_native_handle`` (it
    deprecates ``int(obj)``); cuda-bindings 12.9.0 and older lack it, and there ``int(stream)``
    is the handle. Never ``stream.getPtr()``: that is the address of the Python object's copy
    of the handle (a ``cudaStream_t*``), not the stream.
    """
    try:
        from cuda.bindings.utils import get_cuda_native_handle
    except ImportError:
        return int(stream)
    return int(get_cuda_native_handle(stream))


def host_view(pointer: int, count: int, dtype: np.dtype[Any]) -> np.ndarray:
    """A flat NumPy array of ``count`` ``dtype`` items over host memory at ``pointer`` (not
    owned: valid while that memory is)."""
    nbytes = count * dtype.itemsize
    raw = ctypes.cast(ctypes.c_void_p(pointer), ctypes.POINTER(ctypes.c_ubyte))
    return np.ctypeslib.as_array(raw, (nbytes,)).view(dtype)


@dataclass
class PinnedBuffer:
    """Page-locked host memory (``cudaMallocHost``) for ``array`` (flat, its capacity)."""

    pointer: int
    array: np.ndarray

    @property
    def nbytes(self) -> int:
        return int(self.array.nbytes)

    def view(self, shape: tuple[int, ...]) -> np.ndarray:
        """The first ``prod(shape)`` items, shaped (a view into the pinned memory)."""
        count = int(np.prod(shape))
        if count > self.array.size:
            raise ValueError(f"shape {shape} needs {count} items; the buffer holds "
                             f"{self.array.size}")
        return self.array[:count].reshape(shape)


def pinned_empty(count: int, dtype: np.dtype[Any]) -> PinnedBuffer:
    """``count`` items of ``dtype`` in pinned host memory (free with :func:`free_pinned`)."""
    pointer = int(check(runtime.cudaMallocHost(max(count, 1) * dtype.itemsize)))
    return PinnedBuffer(pointer, host_view(pointer, count, dtype))


def free_pinned(buffer: PinnedBuffer | None) -> None:
    """Give pinned memory back (``cudaFreeHost``); its array must not be used afterwards."""
    if buffer is not None:
        runtime.cudaFreeHost(buffer.pointer)
