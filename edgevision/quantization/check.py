"""Measuring a candidate graph on the check images (validation hold-out) against FP32."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgevision.benchmarking.environment import usable_cores
from edgevision.data import EvalSet


@dataclass(frozen=True)
class CheckSet:
    """Preprocessed labelled images held in memory, and the FP32 model's logits on them."""

    images: np.ndarray
    labels: np.ndarray
    reference: np.ndarray

    @classmethod
    def build(cls, images: EvalSet, fp32: Path, batch_size: int = 256) -> CheckSet:
        arrays = list(images.batches(len(images)))
        data, labels = arrays[0]
        return cls(data, labels, run_logits(fp32, data, batch_size))

    @property
    def reference_top1(self) -> float:
        return top1(self.reference, self.labels)


@dataclass(frozen=True)
class Comparison:
    """A candidate against FP32 on the check images."""

    top1: float
    drop: float
    kl: float

    def to_dict(self) -> dict[str, float]:
        return {"top1": round(self.top1, 3), "drop": round(self.drop, 3),
                "kl": float(f"{self.kl:.4g}")}


def compare(candidate: Path, check: CheckSet) -> Comparison:
    """Top-1, its drop in points and the mean KL(FP32 ‖ candidate) of the softmax outputs."""
    logits = run_logits(candidate, check.images)
    accuracy = top1(logits, check.labels)
    return Comparison(accuracy, check.reference_top1 - accuracy,
                      mean_kl(check.reference, logits))


def top1(logits: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy in percent."""
    return float(100.0 * (logits.argmax(1) == labels).mean())


def mean_kl(reference: np.ndarray, logits: np.ndarray) -> float:
    """Mean KL divergence from the reference's softmax to the candidate's."""
    p, log_p = _softmax(reference)
    _, log_q = _softmax(logits)
    return float((p * (log_p - log_q)).sum(1).mean())


def _softmax(logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    shifted = logits.astype(np.float64) - logits.max(1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(1, keepdims=True))
    return np.exp(log_probs), log_probs


def run_logits(path: Path, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """ONNX Runtime CPU outputs of ``path`` on ``images`` (float32 NCHW), through the same
    backend that benchmarks it."""
    from edgevision.backends.onnxruntime import OnnxRuntimeBackend

    with OnnxRuntimeBackend(path, threads=usable_cores()) as session:
        outputs = [session.run(images[i:i + batch_size])
                   for i in range(0, len(images), batch_size)]
    return np.concatenate(outputs).astype(np.float32)
