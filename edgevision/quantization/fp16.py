"""FP16 graphs for GPU targets: weights and compute in FP16, inputs and outputs kept FP32."""

from __future__ import annotations

from pathlib import Path

import onnx

from edgevision.errors import QuantizeError, first_line
from edgevision.io import atomic_path


def convert_fp16(fp32: Path, out: Path) -> Path:
    """Write ``fp32`` converted to FP16 (ONNX Runtime's converter, ``keep_io_types=True``)."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(str(fp32))
    try:
        converted = convert_float_to_float16(model, keep_io_types=True)
        sort_topologically(converted.graph)
        onnx.checker.check_model(converted)
    except Exception as exc:  # the converter and checker raise many types
        raise QuantizeError(f"FP16 conversion of {fp32.name} failed: {first_line(exc)}") from exc
    with atomic_path(out) as tmp:
        onnx.save(converted, str(tmp))
    return out


def sort_topologically(graph: onnx.GraphProto) -> None:
    """Reorder ``graph.node`` so every node follows the producers of its inputs (the converter
    appends the input casts at the end)."""
    available = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        ready = [n for n in pending if all(i in available for i in n.input)]
        if not ready:
            raise QuantizeError("the FP16 graph has a cycle or an undefined input")
        for node in ready:
            available.update(node.output)
            ordered.append(node)
        pending = [n for n in pending if all(n is not r for r in ready)]
    del graph.node[:]
    graph.node.extend(ordered)
