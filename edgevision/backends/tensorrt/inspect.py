"""What a TensorRT user checks first: which precision each layer of an engine ran in.

Reads the engine inspector's JSON (``IEngineInspector.get_engine_information`` with
``LayerInformationFormat.JSON``, or ``trtexec --exportLayerInfo``) of an engine built with
``ProfilingVerbosity.DETAILED``, in both generations of its schema:

- TensorRT 10.x: ``{"Layers": [...], "Bindings": ["input", ...]}``; each layer's tensors give
  their type inside one ``"Format/Datatype"`` string (``"Row major linear FP32"``, ``"Half"``,
  ``"Thirty-two wide channel vectorized row major Int8 format"``).
- TensorRT 11.x: ``"Bindings"`` became ``"I/O Tensors"`` (objects with ``Name``, ``IOMode``,
  ``DataType``, ...) and ``"Format/Datatype"`` was split into a format and a data type field.

A layer's precision is the type of its first input (TensorRT Engine Explorer's convention); its
kernel's precision comes from the tactic name (``..._i8i8_...``, ``..._f16f16_...``,
``..._tf32f32_...``). Pure Python: no TensorRT needed.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from edgevision.errors import ArtifactError

#: layers that only move, reformat or synchronise data: counted apart from compute layers
DATA_MOVEMENT = {"Reformat", "NoOp", "signal", "wait", "shape_call", "Shuffle"}
#: the precisions counted by name; anything else (INT32 indices, BOOL, BF16, FP8, ...) is "other"
COUNTED = ("INT8", "FP16", "FP32")

# data-type words in a tensor's format/type text, most specific first ("BFloat16" before
# "Float", "UInt8" before "Int8"), as TensorRT spells them in 10.x and 11.x
_TENSOR_TYPES = (
    ("BFLOAT16", "BF16"), ("BF16", "BF16"), ("UINT8", "UINT8"), ("INT8", "INT8"),
    ("FP16", "FP16"), ("HALF", "FP16"), ("FP32", "FP32"), ("FLOAT", "FP32"), ("FP8", "FP8"),
    ("E4M3", "FP8"), ("FP4", "FP4"), ("E2M1", "FP4"), ("INT4", "INT4"), ("INT32", "INT32"),
    ("INT64", "INT64"), ("BOOL", "BOOL"),
)
# math precision in a tactic (kernel) name, lowest precision first: "int8x4" in
# "ampere_fp32_icudnn_int8x4_..." is the math, "fp32" the output
_KERNEL_TYPES = (
    ("INT8", re.compile(r"(?:^|_)(?:i8\w*|int8\w*|imma\w*)", re.IGNORECASE)),
    ("FP8", re.compile(r"(?:^|_)(?:e4m3|e5m2|fp8)", re.IGNORECASE)),
    ("FP16", re.compile(r"(?:^|_)(?:f16\w*|fp16\w*|h\d{3,5}\w*|hmma\w*)", re.IGNORECASE)),
    ("BF16", re.compile(r"(?:^|_)bf16", re.IGNORECASE)),
    ("TF32", re.compile(r"tf32", re.IGNORECASE)),
    ("FP32", re.compile(r"(?:^|_)(?:f32\w*|fp32\w*|sgemm\w*|ffma\w*|scudnn\w*)", re.IGNORECASE)),
)
_WEIGHTED = {"Convolution", "Deconvolution", "MatrixMultiply", "FullyConnected", "gemm"}
_OTHER_PROFILE = re.compile(r"\[profile [1-9]\d*\]")


class LayerPrecisions(BaseModel):
    """Per-layer precisions of one engine, summarised (for its metadata and for people)."""

    model_config = ConfigDict(extra="forbid")
    #: the inspector JSON's generation: "10.x" (``Bindings``) or "11.x" (``I/O Tensors``)
    schema_generation: Literal["10.x", "11.x"]
    #: compute layers (data-movement layers counted in ``reformats`` instead)
    layers: int
    int8: int
    fp16: int
    fp32: int
    other: int
    reformats: int
    #: compute layers whose input was FP32: in an FP16 or INT8 engine, the ones that fell back
    fp32_layers: list[str]
    #: math precision of the convolution/GEMM kernels, from their tactic names (count of layers)
    kernel_precisions: dict[str, int]
    #: the most common of ``kernel_precisions`` (None when no tactic names one)
    dominant_kernel_precision: str | None

    def summary(self) -> str:
        """One line for people: counts, the dominant kernel precision, the FP32 layers."""
        text = (f"{self.layers} layers: {self.int8} INT8, {self.fp16} FP16, {self.fp32} FP32, "
                f"{self.other} other")
        if self.dominant_kernel_precision:
            text += f"; kernels mostly {self.dominant_kernel_precision}"
        if self.fp32_layers and (self.int8 or self.fp16):
            shown = ", ".join(self.fp32_layers[:5])
            more = f" (+{len(self.fp32_layers) - 5} more)" if len(self.fp32_layers) > 5 else ""
            text += f"; FP32: {shown}{more}"
        return text


def summarize_layers(engine_information_json: str) -> LayerPrecisions:
    """Summarise the inspector JSON of an engine built with detailed profiling verbosity
    (one-line ``ArtifactError`` for anything else). Layers of optimization profiles after the
    first (names ending ``[profile N]``) are left out: each profile repeats the graph."""
    document = _parse(engine_information_json)
    generation: Literal["10.x", "11.x"] = "11.x" if "I/O Tensors" in document else "10.x"
    layers = [layer for layer in document["Layers"]
              if not _OTHER_PROFILE.search(str(layer.get("Name", "")))]
    compute = [layer for layer in layers if not _moves_data(layer)]
    precisions = [layer_precision(layer) for layer in compute]
    counted = Counter(p if p in COUNTED else "other" for p in precisions)
    kernels = Counter(k for k in map(kernel_precision, compute) if k is not None)
    return LayerPrecisions(
        schema_generation=generation, layers=len(compute), int8=counted["INT8"],
        fp16=counted["FP16"], fp32=counted["FP32"], other=counted["other"],
        reformats=len(layers) - len(compute),
        fp32_layers=[str(layer.get("Name")) for layer, p in zip(compute, precisions,
                                                               strict=True) if p == "FP32"],
        kernel_precisions=dict(kernels.most_common()),
        dominant_kernel_precision=kernels.most_common(1)[0][0] if kernels else None)


def _parse(text: str) -> dict[str, Any]:
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise ArtifactError(f"not TensorRT engine inspector JSON: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("Layers"), list):
        raise ArtifactError("not TensorRT engine inspector JSON: it has no \"Layers\" list")
    if any(not isinstance(layer, dict) for layer in document["Layers"]):
        raise ArtifactError("the engine inspector gave layer names only: build the engine with "
                            "detailed profiling verbosity (ProfilingVerbosity.DETAILED, trtexec "
                            "--profilingVerbosity=detailed) to see per-layer precisions")
    return document


def _moves_data(layer: dict[str, Any]) -> bool:
    return (layer.get("LayerType") in DATA_MOVEMENT
            or layer.get("ParameterType") in DATA_MOVEMENT
            or layer.get("Origin") in ("REFORMAT", "QDQ"))


def tensor_type(tensor: dict[str, Any]) -> str | None:
    """A layer tensor's data type (``"INT8"``, ``"FP16"``, ``"FP32"``, ...): from 11.x's data
    type field where present, else from 10.x's ``"Format/Datatype"`` (or 11.x's format) text."""
    for key in ("Datatype", "DataType", "Format/Datatype", "Format"):
        text = tensor.get(key)
        if isinstance(text, str):
            upper = text.upper()
            found = next((name for word, name in _TENSOR_TYPES if word in upper), None)
            if found is not None:
                return found
    return None


def layer_precision(layer: dict[str, Any]) -> str | None:
    """The type of the layer's first input (its first output when it has no input)."""
    for key in ("Inputs", "Outputs"):
        tensors = layer.get(key) or []
        if tensors and isinstance(tensors[0], dict):
            return tensor_type(tensors[0])
    return None


def kernel_precision(layer: dict[str, Any]) -> str | None:
    """The math precision a convolution/GEMM layer's tactic (kernel) name says; None for other
    layers and for names that say none (Myelin's ``__myl_...`` kernels)."""
    kind = layer.get("ParameterType") or layer.get("LayerType")
    if kind not in _WEIGHTED and "Weights" not in layer:
        return None
    name = str(layer.get("TacticName") or "")
    return next((precision for precision, pattern in _KERNEL_TYPES if pattern.search(name)),
                None)
