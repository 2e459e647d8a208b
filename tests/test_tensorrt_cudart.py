"""The CUDA helpers of the TensorRT session that run without a GPU: the stream handle TensorRT
gets, and NumPy views over host memory (what the pinned buffers are)."""

from __future__ import annotations

import ctypes

import numpy as np
import pytest

pytest.importorskip("cuda.bindings.runtime", reason="needs cuda-python (cuda-bindings)")

from edgevision.backends.tensorrt.cudart import PinnedBuffer, host_view, runtime, stream_handle


def test_stream_handle_is_the_stream_not_the_address_of_its_holder() -> None:
    stream = runtime.cudaStream_t(0x7F00_1234_5600)  # a handle value, no GPU needed
    assert stream_handle(stream) == 0x7F00_1234_5600
    assert stream.getPtr() != 0x7F00_1234_5600  # what must not be passed to TensorRT


def test_host_view_and_shaped_views_share_the_memory() -> None:
    memory = (ctypes.c_float * 24)()
    pointer = ctypes.addressof(memory)
    buffer = PinnedBuffer(pointer, host_view(pointer, 24, np.dtype(np.float32)))
    assert buffer.nbytes == 96
    batch = np.arange(12, dtype=np.float32).reshape(2, 2, 3)
    np.copyto(buffer.view(batch.shape), batch)
    assert list(memory)[:12] == list(range(12))  # written into the host memory itself
    half = PinnedBuffer(pointer, host_view(pointer, 48, np.dtype(np.float16)))
    assert half.view((48,)).dtype == np.float16
    with pytest.raises(ValueError, match="holds 24"):
        buffer.view((5, 5))
