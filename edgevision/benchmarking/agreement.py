"""How closely a backend's outputs match ONNX Runtime's on the same images, as Polygraphy
compares TensorRT with ONNX Runtime: the largest and mean absolute difference of the logits and
the share of images whose top-1 class is the same.

The comparison rides on the accuracy pass: each batch the measured session has just run is also
run by ONNX Runtime (CPU) on the ONNX file the artifact is or was built from, so it costs one
extra pass over the evaluation images on the CPU, and no timed run changes.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edgevision.backends.base import Backend
from edgevision.errors import EdgevisionError, first_line
from edgevision.progress import log

#: what the other backends are compared with
REFERENCE_BACKEND = "onnxruntime"


@dataclass(frozen=True)
class Agreement:
    """Outputs vs a reference run's on ``images`` images: absolute differences of the logits
    and the fraction (0–1) of images with the same top-1 class."""

    max_abs_diff: float
    mean_abs_diff: float
    top1_agreement: float
    images: int
    #: what produced the reference outputs, e.g. "onnxruntime (cpu) on model.onnx"
    reference: str = ""

    def to_dict(self) -> dict[str, float | int | str]:
        return asdict(self)


class AgreementMeter:
    """Accumulates :class:`Agreement` batch by batch (no outputs kept)."""

    def __init__(self, reference: str = "") -> None:
        self.reference = reference
        self.images = 0
        self.same_top1 = 0
        self.abs_sum = 0.0
        self.values = 0
        self.abs_max = 0.0

    def add(self, outputs: np.ndarray, reference_outputs: np.ndarray) -> None:
        """One batch: (N, classes) outputs and the reference's for the same N images."""
        got = np.asarray(outputs, dtype=np.float64)
        want = np.asarray(reference_outputs, dtype=np.float64)
        if got.shape != want.shape or got.ndim != 2:
            raise EdgevisionError(f"cannot compare outputs of shape {got.shape} with the "
                                  f"reference's {want.shape} (both must be (images, classes))")
        diff = np.abs(got - want)
        self.images += len(got)
        self.same_top1 += int((got.argmax(axis=1) == want.argmax(axis=1)).sum())
        self.abs_sum += float(diff.sum())
        self.values += diff.size
        self.abs_max = max(self.abs_max, float(diff.max(initial=0.0)))

    def result(self) -> Agreement | None:
        """The agreement so far; None before any image."""
        if not self.images:
            return None
        return Agreement(max_abs_diff=self.abs_max, mean_abs_diff=self.abs_sum / self.values,
                         top1_agreement=self.same_top1 / self.images, images=self.images,
                         reference=self.reference)


def agreement(outputs: np.ndarray, reference_outputs: np.ndarray,
              reference: str = "") -> Agreement:
    """The agreement of (images, classes) ``outputs`` with ``reference_outputs``."""
    meter = AgreementMeter(reference)
    meter.add(outputs, reference_outputs)
    result = meter.result()
    if result is None:
        raise EdgevisionError("no outputs to compare (0 images)")
    return result


class ReferenceComparison:
    """Runs the reference session on each batch the measured session ran (an accuracy pass's
    observer) and accumulates the agreement. A reference that fails stops comparing, logs why
    and leaves no result: the measured row's figures stand."""

    def __init__(self, reference: Backend, label: str) -> None:
        self.session = reference
        self.meter = AgreementMeter(label)
        self.failed: str | None = None
        self.seconds = 0.0

    def observe(self, images: np.ndarray, outputs: np.ndarray) -> None:
        if self.failed is not None:
            return
        start = time.perf_counter()
        try:
            self.meter.add(outputs, self.session.predict(images))
        except EdgevisionError as exc:
            self.failed = first_line(exc)
            log(f"[yellow]no comparison with {self.meter.reference}: {self.failed}[/yellow]")
        self.seconds += time.perf_counter() - start

    def result(self) -> Agreement | None:
        if self.failed is not None:
            return None
        result = self.meter.result()
        if result is not None:
            log(f"{self.meter.reference}: {result.images} images in {self.seconds:.1f} s, "
                f"top-1 agreement {100 * result.top1_agreement:.1f}%, "
                f"max |diff| {result.max_abs_diff:.3g}")
        return result


def reference_label(source: Path) -> str:
    return f"{REFERENCE_BACKEND} (cpu) on {source.name}"
