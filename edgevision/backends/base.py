"""The backend interface: a runner for one model artifact, used as a context manager.

Public methods validate their input, then call the ``_impl`` methods subclasses provide (as in
Polygraphy). Backends import their runtime library lazily so that listing them, or the CLI's
``--help``, never imports torch, onnxruntime or TensorRT.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar

import numpy as np

from edgevision.errors import (
    ArtifactError,
    BackendUnavailableError,
    EdgevisionError,
    first_line,
)


@dataclass(frozen=True)
class Availability:
    """Whether a backend can run here, and why not."""

    ok: bool
    reason: str = ""


@dataclass(frozen=True)
class InputSpec:
    """The model input: name, shape (None for a dynamic axis) and dtype."""

    name: str
    shape: tuple[int | None, ...]
    dtype: str = "float32"


@dataclass
class SessionInfo:
    """What a backend session actually runs on, for the report."""

    device: str
    precision: str
    threads: int | None
    details: dict[str, Any] = field(default_factory=dict)


def import_availability(module: str, install_hint: str) -> Availability:
    """Available when ``module`` imports; otherwise the import error and how to install it."""
    try:
        importlib.import_module(module)
    except Exception as exc:  # ImportError, or a broken install's OSError/RuntimeError
        return Availability(False, f"{module} cannot be imported ({first_line(exc)}); "
                                   f"{install_hint}")
    return Availability(True)


class Backend(ABC):
    """A runner for one artifact. Use as ``with Backend(path, ...) as session: session.run(x)``."""

    name: ClassVar[str]
    #: File suffixes of the artifacts this backend runs.
    suffixes: ClassVar[tuple[str, ...]]
    #: Appended to the error for a batch outside ``_batch_range`` (how to widen it).
    batch_range_hint: ClassVar[str] = ""

    def __init__(self, artifact: Path, *, threads: int | None = None, device: str = "cpu") -> None:
        self.artifact = Path(artifact)
        self.threads = threads
        self.device = device
        self._open = False

    @classmethod
    @abstractmethod
    def availability(cls) -> Availability:
        """Whether this backend's runtime is installed and usable here."""

    @classmethod
    def runtime(cls) -> str:
        """What runs the artifacts here (library, version, build), for telling measurements
        taken by another install apart; the backend's name where it says no more."""
        return cls.name

    @classmethod
    def accepts(cls, artifact: Path) -> bool:
        """True when this backend can run ``artifact`` (by file suffix)."""
        return artifact.name.endswith(cls.suffixes)

    def __enter__(self) -> Backend:
        status = self.availability()
        if not status.ok:
            raise BackendUnavailableError(f"backend {self.name!r} is unavailable: {status.reason}")
        if not self.artifact.is_file():
            raise ArtifactError(f"{self.name}: artifact {str(self.artifact)!r} not found")
        if not self.accepts(self.artifact):
            raise ArtifactError(f"backend {self.name!r} runs {', '.join(self.suffixes)} files, "
                                f"not {self.artifact.name}")
        self._open_impl()
        self._open = True
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._open:
            self._close_impl()
            self._open = False

    @property
    def input_spec(self) -> InputSpec:
        """The model's input, available once the session is open."""
        self._require_open()
        return self._input_spec_impl()

    @property
    def info(self) -> SessionInfo:
        """Device, precision and threads of the open session."""
        self._require_open()
        return self._info_impl()

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Run one batch (N, C, H, W float32) and return the logits (N, classes)."""
        self._require_open()
        self._validate(batch)
        return self._run_impl(batch)

    def predict(self, images: np.ndarray) -> np.ndarray:
        """Outputs for any number of images (accuracy runs, not timing): chunks of the largest
        batch ``run`` takes, the last one zero-padded up to the smallest (padding dropped)."""
        self._require_open()
        low, high = self._batch_range()
        step = high or len(images)
        outputs = []
        for start in range(0, len(images), step):
            chunk = images[start:start + step]
            count = len(chunk)
            if count < low:
                chunk = np.concatenate([chunk, np.zeros((low - count, *chunk.shape[1:]),
                                                        chunk.dtype)])
            outputs.append(self.run(chunk)[:count])
        return np.concatenate(outputs)

    def source_onnx(self) -> Path | None:
        """The ONNX file this artifact is, or was built from, where it is at hand (to compare
        outputs with ONNX Runtime's on it); None otherwise."""
        return self.artifact if self.artifact.suffix == ".onnx" else None

    def _batch_range(self) -> tuple[int, int | None]:
        """The smallest and largest batch ``run`` takes (None: no limit): a fixed batch
        dimension, else any; backends with a batch range (TensorRT profiles) override it."""
        fixed = self._input_spec_impl().shape[0]
        return (fixed, fixed) if isinstance(fixed, int) else (1, None)

    def prepare(self, batch: np.ndarray) -> None:
        """Get ready to run batches like ``batch`` (before any timed run): a backend that
        compiles per input shape compiles here, so a compile never lands in a timing. Nothing
        by default."""
        self._require_open()
        self._validate(batch)

    def timing_breakdown(self) -> dict[str, Any] | None:
        """Device-side times of the runs so far (GPU compute, copies), where the backend
        measures them; None otherwise."""
        return None

    def reset_timing_breakdown(self) -> None:
        """Forget the device-side times so far (called after warm-up); nothing to forget by
        default."""
        return None

    def _validate(self, batch: np.ndarray) -> None:
        spec = self._input_spec_impl()
        if not isinstance(batch, np.ndarray) or batch.dtype != np.dtype(spec.dtype):
            got = batch.dtype if isinstance(batch, np.ndarray) else type(batch).__name__
            raise EdgevisionError(f"{self.name}: input must be a {spec.dtype} array, got {got}")
        if batch.ndim != len(spec.shape) or any(
                want is not None and want != have
                for want, have in zip(spec.shape, batch.shape, strict=False)):
            shown = tuple("N" if d is None else d for d in spec.shape)
            raise EdgevisionError(f"{self.name}: input shape {batch.shape} does not match the "
                                  f"model's {spec.name!r} {shown}")
        low, high = self._batch_range()
        if len(batch) < low or (high is not None and len(batch) > high):
            raise ArtifactError(f"{self.artifact.name}: batch {len(batch)} is outside the "
                                f"batch range the model takes ({low}..{high or 'any'})"
                                f"{self.batch_range_hint}")

    def _require_open(self) -> None:
        if not self._open:
            raise RuntimeError(f"{self.name} session used outside its `with` block")

    @abstractmethod
    def _open_impl(self) -> None: ...

    @abstractmethod
    def _close_impl(self) -> None: ...

    @abstractmethod
    def _input_spec_impl(self) -> InputSpec: ...

    @abstractmethod
    def _info_impl(self) -> SessionInfo: ...

    @abstractmethod
    def _run_impl(self, batch: np.ndarray) -> np.ndarray: ...
