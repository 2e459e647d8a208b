"""Device selection shared by training and every backend: ``auto``, ``cpu`` or ``cuda``."""

from __future__ import annotations

from edgevision.errors import BackendUnavailableError


def resolve_device(requested: str, cuda_available: bool, runtime: str) -> str:
    """``auto`` → ``cuda`` when ``runtime`` can use a GPU here, else ``cpu``; ``cuda`` without
    one is an error naming the runtime."""
    if requested == "auto":
        return "cuda" if cuda_available else "cpu"
    if requested == "cuda" and not cuda_available:
        raise BackendUnavailableError(f"{runtime}: device 'cuda' requested but no CUDA GPU is "
                                      "available to it")
    if requested not in ("cpu", "cuda"):
        raise BackendUnavailableError(f"{runtime}: unknown device {requested!r} (auto, cpu, cuda)")
    return requested
