"""How artifacts are measured (the recipe's ``benchmark:``)."""

from __future__ import annotations

from pydantic import Field, field_validator

from edgevision.config import Device, Strict


class BenchmarkSpec(Strict):
    """How artifacts are measured: backends, batch sizes, timing and accuracy."""

    backends: list[str] = Field(default_factory=lambda: ["pytorch", "onnxruntime"],
                                description="backends each artifact runs on (see `edgevision "
                                "list backends`); a file none of them runs is skipped")
    batch_sizes: list[int] = Field(default_factory=lambda: [1, 64],
                                   description="batch sizes timed")
    warmup: int = Field(10, ge=0, description="untimed iterations before timing")
    iterations: int = Field(100, ge=1, description="timed iterations per batch size (p99 "
                            "needs ≥ 100 to differ from the maximum)")
    threads: int | None = Field(None, ge=1, description="intra-op threads; None = all cores")
    device: Device = Field("cpu", description="where pytorch and onnxruntime run (tensorrt: "
                           "always the GPU)")
    accuracy: bool = Field(True, description="measure top-1/top-5 on the evaluation split "
                           "through each timed session")

    @field_validator("batch_sizes")
    @classmethod
    def _positive_batches(cls, value: list[int]) -> list[int]:
        if not value or any(b < 1 for b in value):
            raise ValueError("benchmark.batch_sizes must be a non-empty list of positive ints")
        return value

    @field_validator("backends")
    @classmethod
    def _known_backends(cls, value: list[str]) -> list[str]:
        from edgevision.backends import BACKENDS

        for name in value:
            BACKENDS.get(name)  # raises with close-name suggestions
        return value
