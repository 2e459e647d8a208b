"""Backends behind one small interface: PyTorch eager (baseline), ONNX Runtime (CPU/CUDA),
OpenVINO's own runtime and TensorRT.

``edgevision.backends.tensorrt`` is the only package allowed to import ``tensorrt`` (a ruff
rule), and only lazily.
"""

from __future__ import annotations

from pathlib import Path

from edgevision.backends.base import Availability, Backend, InputSpec, SessionInfo
from edgevision.backends.onnxruntime import OnnxRuntimeBackend
from edgevision.backends.openvino import OpenVinoBackend
from edgevision.backends.pytorch import PyTorchBackend
from edgevision.backends.tensorrt import TensorRTBackend
from edgevision.registry import Registry

BACKENDS: Registry[type[Backend]] = Registry("backend", hint="see `edgevision list backends`")
BACKENDS.register("pytorch")(PyTorchBackend)
BACKENDS.register("onnxruntime")(OnnxRuntimeBackend)
BACKENDS.register("openvino")(OpenVinoBackend)
BACKENDS.register("tensorrt")(TensorRTBackend)
BACKENDS.retire("onnxruntime-openvino", "use 'openvino', OpenVINO's own runtime (pip install "
                "'edgevision[openvino]'): it runs the same ONNX files, measured within 3% of "
                "the provider's speed, and installs beside onnxruntime, which "
                "onnxruntime-openvino replaced")


def get_backend(name: str) -> type[Backend]:
    """The backend class registered as ``name`` (close names suggested when unknown)."""
    return BACKENDS.get(name)


def backends_for(artifact: Path, names: list[str]) -> list[type[Backend]]:
    """Those of ``names`` that run ``artifact``."""
    return [cls for cls in map(get_backend, names) if cls.accepts(artifact)]


__all__ = ["BACKENDS", "Availability", "Backend", "InputSpec", "SessionInfo", "backends_for",
           "get_backend"]
