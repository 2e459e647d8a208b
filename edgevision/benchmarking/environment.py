"""The machine and library versions a measurement was taken on."""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

LIBRARIES = ("edgevision", "torch", "torchvision", "onnx", "onnxruntime", "onnxruntime-gpu",
             "onnxruntime-openvino", "openvino", "numpy", "torch-pruning", "tensorrt")
#: distributions whose imported module can differ from the installed metadata: the ONNX Runtime
#: builds all install the `onnxruntime` module, and .venv-openvino sees two of them
MODULES = {"onnxruntime": "onnxruntime", "torch": "torch", "numpy": "numpy"}


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux)."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def library_versions() -> dict[str, str | None]:
    """Versions of the libraries that affect results (None when absent): the imported module's
    own version where it is loaded (what actually ran), else the installed metadata."""
    versions: dict[str, str | None] = {}
    for name in LIBRARIES:
        module = sys.modules.get(MODULES.get(name, ""))
        if module is not None and isinstance(getattr(module, "__version__", None), str):
            versions[name] = module.__version__
            continue
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def usable_cores() -> int:
    """CPU cores this process may run on (affinity-aware where the OS tells)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def environment() -> dict[str, Any]:
    """CPU model, core count, OS, Python and library versions; GPU when torch sees one."""
    info: dict[str, Any] = {
        "cpu": cpu_model(), "cpu_count": os.cpu_count(), "usable_cores": usable_cores(),
        "machine": platform.machine(),
        "os": platform.platform(), "python": sys.version.split()[0],
        "libraries": library_versions(), "gpu": None,
    }
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info
