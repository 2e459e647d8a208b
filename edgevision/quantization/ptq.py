"""INT8 post-training quantization with ONNX Runtime's quantizer (``quantize_static``, QDQ)."""

from __future__ import annotations

import ast
import contextlib
import inspect
import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry
from onnxruntime.quantization.shape_inference import quant_pre_process

from edgevision.errors import EdgevisionError, QuantizeError, first_line
from edgevision.io import atomic_path
from edgevision.quantization.placement import remove_qdq_after_weighted_layers
from edgevision.quantization.targets import COMPUTE_OPS, TargetSettings

_METHODS = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
            "percentile": CalibrationMethod.Percentile}

#: ONNX Runtime ≥ 1.27 saves and re-loads calibration ranges itself.
SUPPORTS_CACHE = "calibration_cache_path" in inspect.signature(quantize_static).parameters

#: Operators that only move or reshape data: leaving them in float costs nothing.
_LAYOUT_OPS = {"Shape", "Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "Concat",
               "Slice", "Pad", "Identity", "Constant", "Gather", "Split", "Expand", "Cast",
               "QuantizeLinear", "DequantizeLinear"}


@dataclass(frozen=True)
class Int8Options:
    """How the INT8 graph is built: target settings and the calibration method."""

    target: TargetSettings
    method: str = "minmax"
    percentile: float = 99.999
    per_channel: bool = True
    reduce_range: bool = False

    def cache_settings(self) -> dict[str, Any]:
        """What the calibrated ranges depend on besides the model and the images."""
        return {"method": self.method, "percentile": self.percentile,
                "op_types": list(self.target.op_types or [])}


def prepare_model(fp32: Path, out: Path) -> Path:
    """ONNX Runtime's recommended pre-processing (shape inference, graph optimisation)."""
    with atomic_path(out) as tmp, _quiet():
        try:
            quant_pre_process(str(fp32), str(tmp), skip_symbolic_shape=True)
        except Exception as exc:  # onnx/onnxruntime raise many types here
            raise QuantizeError(f"{fp32}: ONNX Runtime's quantization pre-processing failed "
                                f"({first_line(exc)})") from exc
    return out


def quantize_int8(model: Path, out: Path, options: Int8Options, *,
                  reader: CalibrationDataReader | None, cache: Path | None = None,
                  exclude: list[str] | None = None, only: list[str] | None = None) -> Path:
    """Write the QDQ INT8 graph of ``model`` (already prepared) to ``out``.

    Ranges come from ``cache`` when it exists (ONNX Runtime ≥ 1.27), else from ``reader``
    (and are saved to ``cache``). ``exclude`` nodes stay FP32; ``only`` restricts
    quantization to these nodes (sensitivity analysis).
    """
    settings = options.target
    extra: dict[str, Any] = dict(settings.extra_options)
    if options.method == "percentile":
        extra["CalibPercentile"] = options.percentile
    kwargs: dict[str, Any] = {}
    if SUPPORTS_CACHE and cache is not None:
        kwargs["calibration_cache_path"] = str(cache)
    with atomic_path(out) as tmp, _quiet():
        try:
            quantize_static(
                str(model), str(tmp), reader, quant_format=QuantFormat.QDQ,
                op_types_to_quantize=list(settings.op_types) if settings.op_types else None,
                per_channel=options.per_channel, reduce_range=options.reduce_range,
                activation_type=(QuantType.QInt8 if settings.signed_activations
                                 else QuantType.QUInt8),
                weight_type=QuantType.QInt8, nodes_to_quantize=only or None,
                nodes_to_exclude=exclude or None, calibrate_method=_METHODS[options.method],
                extra_options=extra, **kwargs)
        except EdgevisionError:
            raise
        except Exception as exc:
            raise QuantizeError(f"ONNX Runtime's quantizer failed on {model.name}: "
                                f"{first_line(exc)}") from exc
        if settings.float_weighted_outputs:
            graph = onnx.load(str(tmp))
            remove_qdq_after_weighted_layers(graph)
            onnx.save(graph, str(tmp))
    return out


def compute_nodes(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    """The nodes that carry the MACs (convolutions, GEMMs, MatMuls), in graph order."""
    return [node for node in model.graph.node if node.op_type in COMPUTE_OPS]


def layer_label(node: onnx.NodeProto) -> str:
    """The PyTorch module path the exporter recorded for ``node`` (else the node's name)."""
    for prop in node.metadata_props:
        if prop.key == "pkg.torch.onnx.name_scopes":
            with contextlib.suppress(ValueError, SyntaxError):
                scopes = [s for s in ast.literal_eval(prop.value)[:-1] if s]
                if scopes:  # cumulative: ['layer1', 'layer1.0', 'layer1.0.conv1']
                    return str(scopes[-1])
    return node.name


def unsupported_ops(model: onnx.ModelProto, target: TargetSettings) -> list[str]:
    """Operator types in ``model`` the quantizer leaves in float that do real work."""
    handled = set(target.op_types or (*QDQRegistry, *QLinearOpsRegistry))
    if target.op_types:  # the tensorrt target leaves these to TensorRT on purpose
        handled |= {"Relu", "MaxPool", "AveragePool", "GlobalAveragePool", "ReduceMean",
                    "Clip", "BatchNormalization", "Softmax", "Mul", "Sigmoid"}
    present = {node.op_type for node in model.graph.node}
    return sorted(present - handled - _LAYOUT_OPS)


def float_compute_nodes(quantized: onnx.ModelProto) -> list[str]:
    """Names of compute nodes whose inputs are not dequantized (they run in float)."""
    dequantized = {out for node in quantized.graph.node if node.op_type == "DequantizeLinear"
                   for out in node.output}
    return [node.name for node in compute_nodes(quantized)
            if node.input[0] not in dequantized]


@contextlib.contextmanager
def _quiet() -> Any:
    """ONNX Runtime's quantizer logs advice at WARNING and prints; keep the console ours."""
    logger = logging.getLogger()
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        logger.setLevel(level)
