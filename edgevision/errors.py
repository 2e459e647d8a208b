"""User-facing errors: each one prints as a single clear line from the CLI."""

from __future__ import annotations

from typing import Any


class EdgevisionError(Exception):
    """An error caused by the user's input (recipe, files, arguments).

    The CLI prints ``str(error)`` as one line and exits with status 2; the Python API lets it
    propagate so callers can catch it.
    """


class RecipeError(EdgevisionError):
    """The recipe file is missing, unreadable, or does not match the schema."""


class UnknownNameError(EdgevisionError, KeyError):
    """A name (model, backend, stage, ...) is not registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class CheckpointError(EdgevisionError):
    """A checkpoint cannot be read or does not fit the model."""


class DataError(EdgevisionError):
    """A dataset path is missing, empty, or malformed."""


class ExportError(EdgevisionError):
    """ONNX export failed or its outputs do not match PyTorch's."""


class ArtifactError(EdgevisionError):
    """A model artifact (ONNX, engine, model file) is missing or corrupt."""


class BackendUnavailableError(EdgevisionError):
    """A backend cannot run here (library missing, no GPU, ...)."""


class PruneError(EdgevisionError):
    """A model cannot be pruned as asked (unsafe operator, unreachable target, ...)."""


class TrainError(EdgevisionError):
    """Training cannot run as asked (a precision the device cannot run)."""


class DistillError(EdgevisionError):
    """Distillation cannot run as asked (teacher does not fit the student, unknown layer)."""


class QuantizeError(EdgevisionError):
    """Quantization cannot run as asked (unsupported operators, bad calibration data)."""


class RunDirError(EdgevisionError):
    """The run directory cannot be used (holds another run, ...)."""


class OutputError(EdgevisionError):
    """An output folder cannot be written (read-only, not a folder, no space, ...)."""


class BenchmarkError(EdgevisionError):
    """A benchmark ran but failed as a whole (nothing measured, trtexec failed, ...).

    ``report`` holds everything it did measure, error rows included, so that nothing is lost.
    """

    def __init__(self, message: str, report: dict[str, Any]) -> None:
        super().__init__(message)
        self.report = report


class ReportWriteError(BenchmarkError, OutputError):
    """The benchmark report could not be written; ``report`` holds its figures."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type name when the message is empty)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
