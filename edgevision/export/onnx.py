"""ONNX export (opset ≥ 17, dynamic batch) with edgevision metadata, and its verification."""

from __future__ import annotations

import contextlib
import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from torch import nn

from edgevision.errors import ExportError, first_line
from edgevision.export.spec import ExportSpec
from edgevision.io import atomic_path
from edgevision.onnxmeta import (  # noqa: F401  (re-exported: the export's public names)
    INPUT_NAME,
    METADATA_KEY,
    OUTPUT_NAME,
    load_onnx,
    read_metadata,
    set_metadata,
    write_metadata,
)


def export_onnx(model: nn.Module, sample: np.ndarray, path: Path, spec: ExportSpec,
                metadata: dict[str, Any]) -> Path:
    """Export ``model`` (eval mode, CPU) to ``path`` as one self-contained ONNX file.

    ``sample`` is a real input batch (N, C, H, W). ``metadata`` (preprocessing, labels, model
    name) is stored as JSON in the model's ``metadata_props`` under ``"edgevision"``.
    """
    model = model.cpu().eval()
    # a dynamic graph is traced at batch 2 (batch 1 could be specialised); a static one at 1
    example = torch.from_numpy(sample[:2] if spec.dynamic_batch and len(sample) >= 2
                               else sample[:1])
    with atomic_path(path) as tmp:
        try:
            _run_exporter(model, example, tmp, spec)
            proto = onnx.load(str(tmp))
            onnx.checker.check_model(proto, full_check=True)
        except ExportError:
            raise
        except Exception as exc:  # the exporters raise many unrelated types
            raise ExportError(f"ONNX export of {type(model).__name__} failed: "
                              f"{first_line(exc)}") from exc
        proto.producer_name = "edgevision"
        set_metadata(proto, metadata)
        onnx.save(proto, str(tmp))
    return path


def _run_exporter(model: nn.Module, example: torch.Tensor, path: Path, spec: ExportSpec) -> None:
    quiet = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(quiet):
        warnings.simplefilter("ignore")
        if spec.exporter == "dynamo":
            # dynamic_shapes given positionally: one entry per forward() argument.
            shapes = (({0: torch.export.Dim("batch", min=1, max=4096)},)
                      if spec.dynamic_batch else None)
            program = torch.onnx.export(model, (example,), dynamo=True, opset_version=spec.opset,
                                        dynamic_shapes=shapes,
                                        verbose=False, optimize=True,
                                        input_names=[INPUT_NAME], output_names=[OUTPUT_NAME])
            if program is None:
                raise ExportError("the dynamo exporter returned no program")
            program.save(str(path), external_data=False)
        else:
            axes = ({INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}}
                    if spec.dynamic_batch else None)
            torch.onnx.export(model, (example,), str(path), dynamo=False,
                              opset_version=spec.opset, dynamic_axes=axes,
                              input_names=[INPUT_NAME], output_names=[OUTPUT_NAME])


@dataclass(frozen=True)
class Verification:
    """How closely ONNX Runtime's outputs match PyTorch's on real inputs."""

    images: int
    max_abs_diff: float
    max_rel_diff: float
    top1_agreement: float
    atol: float
    rtol: float

    def to_dict(self) -> dict[str, float]:
        return dict(self.__dict__)


def verify_onnx(path: Path, model: nn.Module, images: np.ndarray, atol: float,
                rtol: float) -> Verification:
    """Run real ``images`` through PyTorch and ONNX Runtime; raise ``ExportError`` on a mismatch
    (``|onnx - torch| > atol + rtol * |torch|`` anywhere).

    A dynamic-batch graph is checked at the full batch and at batch 1 (both are benchmarked); a
    static graph in chunks of its fixed batch. ``Verification.images`` counts what was compared.
    """
    with torch.inference_mode():
        expected = model.cpu().eval()(torch.from_numpy(images)).numpy()
    try:
        got, compared = _run_onnx_batches(path, images)
    except ExportError:
        raise
    except Exception as exc:  # onnxruntime's own error types
        raise ExportError(f"{path}: ONNX Runtime cannot run the exported graph "
                          f"({first_line(exc)})") from exc
    expected = expected[compared]
    if got.shape != expected.shape:
        raise ExportError(f"{path}: ONNX output shape {got.shape} differs from PyTorch's "
                          f"{expected.shape}")
    diff = np.abs(got - expected)
    result = Verification(
        images=len(set(compared)), max_abs_diff=float(diff.max()),
        max_rel_diff=float((diff / (np.abs(expected) + 1e-12)).max()),
        top1_agreement=float((got.argmax(1) == expected.argmax(1)).mean()), atol=atol, rtol=rtol)
    if not np.all(diff <= atol + rtol * np.abs(expected)):
        raise ExportError(
            f"{path}: ONNX Runtime's outputs differ from PyTorch's on {result.images} real images "
            f"(max |diff| {result.max_abs_diff:.3g} > atol {atol} + rtol {rtol}·|torch|)")
    return result


def _run_onnx_batches(path: Path, images: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """ONNX Runtime's outputs and the image index of each output row."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    graph_input = session.get_inputs()[0]
    fixed = graph_input.shape[0] if isinstance(graph_input.shape[0], int) else None
    step = fixed or len(images)
    usable = len(images) - len(images) % step
    if usable == 0:
        raise ExportError(f"{path}: need at least {step} images to verify a batch-{step} graph")
    starts = list(range(0, usable, step))
    if fixed is None and step > 1:
        starts.append(-1)  # marker: batch 1 on its own
    outputs, rows = [], []
    for start in starts:
        chunk = images[:1] if start == -1 else images[start:start + step]
        outputs.append(session.run(None, {graph_input.name: chunk})[0])
        rows += [0] if start == -1 else list(range(start, start + step))
    return np.concatenate(outputs), rows
