"""The machine and library versions a measurement was taken on."""

from __future__ import annotations

import os
import platform
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

LIBRARIES = ("edgevision", "torch", "torchvision", "onnx", "onnxruntime", "onnxruntime-gpu",
             "onnxruntime-openvino", "openvino", "numpy", "torch-pruning", "tensorrt")
#: distributions whose imported module can differ from the installed metadata: the ONNX Runtime
#: builds (onnxruntime, -gpu, -openvino) all install the `onnxruntime` module
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


#: cores other processes may keep busy during a timed round before a benchmark script warns
BUSY_CORES = 0.2


def cpu_seconds() -> tuple[float, float]:
    """CPU seconds used so far by the whole machine (``/proc/stat``; 0 where absent) and by this
    process: their difference over a round is what other processes took from the cores."""
    stat = Path("/proc/stat")
    machine = 0.0
    if stat.is_file():
        user, nice, system, _idle, _iowait, irq, softirq, steal = (
            int(v) for v in stat.read_text().split("\n", 1)[0].split()[1:9])
        machine = (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
    own = os.times()
    return machine, own.user + own.system


class OtherLoad:
    """Started at the beginning of a timed round: ``cores()`` is how many cores other processes
    kept busy since, on average (0 on a quiet machine, and where ``/proc/stat`` is absent)."""

    def __init__(self) -> None:
        self.wall = time.perf_counter()
        self.machine, self.own = cpu_seconds()

    def cores(self) -> float:
        machine, own = cpu_seconds()
        return max(0.0, (machine - self.machine) - (own - self.own)) / (
            time.perf_counter() - self.wall)


def load_lines(others: list[float]) -> list[str]:
    """What a benchmark script prints about the other processes' load in each round, with a
    warning when they kept ``BUSY_CORES`` or more busy in any."""
    lines = ["cores kept busy by other processes in each round (0 = a quiet machine): "
             + ", ".join(f"{o:.2f}" for o in others)]
    busy = sum(o >= BUSY_CORES for o in others)
    if busy:
        lines.append(f"WARNING: other processes kept >= {BUSY_CORES} cores busy in {busy} of "
                     f"{len(others)} rounds: these figures are skewed; rerun on a quiet machine")
    return lines


def environment_line(env: dict[str, Any]) -> str:
    """``CPU: <model> (<n> usable cores); python <v>; <library> <version>, ...``."""
    return (f"CPU: {env['cpu']} ({env['usable_cores']} usable cores); python {env['python']}; "
            + ", ".join(f"{k} {v}" for k, v in env["libraries"].items() if v))


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
