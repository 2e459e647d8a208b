"""The workflows behind the commands: ``compress`` and ``train`` (recipe → model → train →
stages or search → export → engines → benchmark → report), ``quantize_run`` (a quantize stage on
a finished run) and ``benchmark`` (a run directory or a single file)."""

from edgevision.pipeline.benchmark import benchmark
from edgevision.pipeline.run import RunResult, compress, quantize_run, train_only

__all__ = ["RunResult", "benchmark", "compress", "quantize_run", "train_only"]
