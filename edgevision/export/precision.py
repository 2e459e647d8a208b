"""FP16 graphs for strongly typed engines (TensorRT 11 takes each layer's precision from the
graph's types): the FP32 graph in FP16 (``fp16``) and the tensorrt-target Q/DQ graph with its
float compute in FP16 (``int8+fp16``), both with FP32 inputs and outputs.

The rules follow NVIDIA ModelOpt's AutoCast
(https://nvidia.github.io/Model-Optimizer/guides/8_autocast.html, and its node classifier
https://github.com/NVIDIA/Model-Optimizer/blob/main/modelopt/onnx/autocast/nodeclassifier.py).
A node stays FP32, with Casts at its boundaries, when

- one of its inputs or outputs reached more than ``data_max`` (AutoCast's default: 512, where
  FP16's spacing is 0.5) on sample data; measured only when samples are given (AutoCast falls
  back to random data; we do not: without samples only the next two rules apply, and
  ``Fp16Conversion.measured`` says so);
- one of its float initializers (or Constant values) exceeds ``init_max`` (AutoCast: 65504,
  the largest FP16 value: more would overflow);
- its operator takes no float16 in the graph's ONNX opset, or is one AutoCast always keeps
  (``ALWAYS_FP32_OPS``, from AutoCast's ``precisionconverter.py``).

For Q/DQ graphs the default-domain opset is raised to 19 (``onnx.version_converter``), the
first where QuantizeLinear/DequantizeLinear take float16 scales — ModelOpt's own INT8 flow does
the same before converting the rest of the graph to FP16 (its ``high_precision_dtype='fp16'``
default: https://github.com/NVIDIA/Model-Optimizer/blob/main/modelopt/onnx/quantization/quantize.py).
Between opsets 18 and 19 only Cast, CastLike, Constant, Equal, Identity, If, Loop, Pad, Reshape,
Resize, Scan, Shape, Size, AveragePool and Q/DQ changed, each by new types (float8) or new
optional modes whose defaults keep the opset-18 meaning. A quantize/dequantize pair stays
together in one precision. Scales below FP16's normal range (2**-14) become FP16 subnormals
(those below 2**-24 are raised to it): a weight's error stays below 127 * 2**-24 ≈ 8e-6; how many
there were is recorded.

The casting itself is ONNX Runtime's converter (``onnxruntime.transformers.float16``), told which
nodes to keep in FP32. Errors are one-line ``ExportError``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

from edgevision.errors import EdgevisionError, ExportError, first_line
from edgevision.io import atomic_path
from edgevision.onnxmeta import fp32_source_entry, load_onnx, read_metadata, set_metadata

#: FP16's largest finite value: ModelOpt AutoCast's default ``init_max``
FP16_MAX = 65504.0
#: ModelOpt AutoCast's default ``data_max``: activations above it stay FP32
DATA_MAX = 512.0
#: training images (never the evaluation split) whose activations decide what stays FP32
RANGE_IMAGES = 64
#: FP16's smallest normal value: scales below it lose precision (subnormal)
FP16_TINY = 2.0**-14
#: the first default-domain opset whose QuantizeLinear/DequantizeLinear take float16 scales
QDQ_FP16_OPSET = 19
#: operators AutoCast never converts (``OP_TYPES_NOT_SUPPORTED_IN_LOW_PRECISION``)
ALWAYS_FP32_OPS = ("Upsample", "NonMaxSuppression", "Celu")
QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")
#: the IR version ONNX releases an opset with (opset 19: ONNX 1.14, IR 9)
MIN_IR_VERSION = {QDQ_FP16_OPSET: 9}
_FLOAT_TYPES = (TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE, TensorProto.BFLOAT16)


@dataclass(frozen=True)
class Fp16Conversion:
    """An FP16 graph written: what stayed FP32 and why, and what the rules were based on."""

    path: Path
    #: "fp16" or "int8+fp16"
    precision: str
    #: node name → why it stayed FP32
    kept_fp32: dict[str, str]
    #: whether activation ranges were measured (``data_max`` applied) on sample images
    measured: bool
    images: int
    data_max: float
    init_max: float
    opset: int
    #: Q/DQ scales that FP16 holds only as subnormals
    subnormal_scales: int = 0
    converted_nodes: int = 0

    def to_metadata(self) -> dict[str, Any]:
        """The entries recorded in the graph's edgevision metadata."""
        return {"precision": self.precision, "fp16": {
            "kept_fp32": self.kept_fp32, "measured": self.measured, "images": self.images,
            "data_max": self.data_max, "init_max": self.init_max, "opset": self.opset,
            "subnormal_scales": self.subnormal_scales, "converted_nodes": self.converted_nodes,
            "rules": "ModelOpt AutoCast style: node I/O above data_max on sample images"
                     + ("" if self.measured else " (not measured: no samples)")
                     + ", initializers above init_max, operators without float16"}}


def measure_ranges(onnx_path: Path, samples: np.ndarray, batch_size: int = 64
                   ) -> dict[str, float]:
    """The largest |value| of the graph input and of every float tensor the graph's nodes
    produce on ``samples`` (ONNX Runtime CPU, each tensor added as an output)."""
    import onnxruntime as ort

    model = load_onnx(onnx_path)
    if len(model.graph.input) != 1:
        raise ExportError(f"{onnx_path}: activation ranges are measured on graphs with one "
                          f"input (this one has {len(model.graph.input)})")
    if len(samples) == 0:
        raise ExportError(f"{onnx_path}: no sample images to measure activation ranges on")
    try:
        names = _float_tensors(model)
        listed = {o.name for o in model.graph.output}
        model.graph.output.extend(onnx.helper.make_tensor_value_info(name, element, None)
                                  for name, element in names.items() if name not in listed)
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only
        session = ort.InferenceSession(model.SerializeToString(), options,
                                       providers=["CPUExecutionProvider"])
        input_name = session.get_inputs()[0].name
        ranges = {input_name: float(np.abs(samples).max())}
        for start in range(0, len(samples), batch_size):
            batch = np.ascontiguousarray(samples[start:start + batch_size], dtype=np.float32)
            for name, value in zip(names, session.run(list(names), {input_name: batch}),
                                   strict=True):
                peak = float(np.abs(value).max()) if value.size else 0.0
                ranges[name] = max(ranges.get(name, 0.0), peak)
    except Exception as exc:  # onnxruntime raises its own exception types
        raise ExportError(f"{onnx_path}: measuring activation ranges in ONNX Runtime failed "
                          f"({first_line(exc)})") from exc
    return ranges


def convert_to_fp16(src: Path, out: Path, samples: np.ndarray | None = None, *,
                    data_max: float = DATA_MAX, init_max: float = FP16_MAX,
                    for_onnxruntime: bool = False) -> Fp16Conversion:
    """Write the FP32 graph ``src`` in FP16 to ``out`` (FP32 inputs/outputs; the module's rules
    keep overflowing nodes in FP32; ``samples``: images whose activations are measured).
    ``for_onnxruntime``: also keep FP32 the operators ONNX Runtime's converter keeps by default
    (its CPU kernels lack FP16 forms of some, e.g. Resize, TopK); TensorRT graphs convert them."""
    model = load_onnx(src)
    if _has_qdq(model):
        raise ExportError(f"{src}: this is a Q/DQ (INT8) graph: its FP16 form is int8+fp16 "
                          "(qdq_to_fp16), not fp16")
    return _convert(model, src, out, samples, "fp16", data_max, init_max, for_onnxruntime)


def qdq_to_fp16(src: Path, out: Path, samples: np.ndarray | None = None, *,
                data_max: float = DATA_MAX, init_max: float = FP16_MAX) -> Fp16Conversion:
    """Write the Q/DQ INT8 graph ``src`` with FP16 scales and its non-quantized compute (biases,
    Relu, Add, pooling, ...) in FP16 to ``out`` (opset ≥ 19, FP32 inputs/outputs, the module's
    rules)."""
    model = load_onnx(src)
    if not _has_qdq(model):
        raise ExportError(f"{src}: it has no QuantizeLinear/DequantizeLinear nodes; int8+fp16 "
                          "starts from a Q/DQ graph (quantize stage with target: tensorrt)")
    return _convert(_with_opset(model, src, QDQ_FP16_OPSET), src, out, samples, "int8+fp16",
                    data_max, init_max)


def _convert(model: onnx.ModelProto, src: Path, out: Path, samples: np.ndarray | None,
             precision: str, data_max: float, init_max: float,
             for_onnxruntime: bool = False) -> Fp16Conversion:
    _check_thresholds(data_max, init_max)
    _check_float32(model, src)
    _name_nodes(model)
    ranges = measure_ranges(src, samples) if samples is not None else {}
    opset = default_opset(model)
    kept = fp32_nodes(model, ranges, data_max, init_max)
    converted = _cast_to_fp16(model, kept, src, for_onnxruntime)
    result = Fp16Conversion(
        out, precision, kept, samples is not None, 0 if samples is None else len(samples),
        data_max, init_max, opset, subnormal_scales=_subnormal_scales(converted),
        converted_nodes=sum(1 for n in model.graph.node if n.name not in kept))
    set_metadata(converted, {**read_metadata(src), **fp32_source_entry(src, out),
                             **result.to_metadata()})
    with atomic_path(out) as tmp:
        onnx.save(converted, str(tmp))
    return result


def fp32_nodes(model: onnx.ModelProto, ranges: dict[str, float], data_max: float = DATA_MAX,
               init_max: float = FP16_MAX) -> dict[str, str]:
    """The nodes that stay FP32 (name → reason), by the module's rules; ``ranges``: measured
    max |value| per tensor ({}: not measured)."""
    opset = default_opset(model)
    large = _large_constants(model, init_max)
    kept: dict[str, str] = {}
    for node in model.graph.node:
        reason = (_operator_reason(node, opset) or _constant_reason(node, large, init_max)
                  or _range_reason(node, ranges, data_max))
        if reason:
            kept[node.name] = reason
    _keep_pairs_together(model, kept)
    return kept


def default_opset(model: onnx.ModelProto) -> int:
    """The graph's default-domain (ai.onnx) opset."""
    return max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")),
               default=0)


def sort_topologically(graph: onnx.GraphProto) -> None:
    """Reorder ``graph.node`` so every node follows the producers of its inputs (ONNX Runtime's
    converter appends the casts it adds at the end)."""
    available = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        ready = [n for n in pending if all(i in available for i in n.input)]
        if not ready:
            raise ExportError("the FP16 graph has a cycle or an undefined input")
        for node in ready:
            available.update(node.output)
            ordered.append(node)
        pending = [n for n in pending if all(n is not r for r in ready)]
    del graph.node[:]
    graph.node.extend(ordered)


def drop_cast_round_trips(graph: onnx.GraphProto) -> int:
    """Remove each FP32 → FP16 → FP32 pair of Casts (ONNX Runtime's converter routes an FP32
    node's graph output through FP16, which would overflow it). Returns how many."""
    removed = 0
    while (pair := _cast_round_trip(graph)) is not None:
        down, up = pair
        source, target = down.input[0], up.output[0]
        graph.node.remove(down)
        _drop_value_info(graph, {down.output[0]})
        removed += 1
        readers = [n for n in graph.node if source in n.input]
        producers = [n for n in graph.node if source in n.output]
        if target not in {o.name for o in graph.output}:
            for node in graph.node:
                node.input[:] = [source if i == target else i for i in node.input]
            graph.node.remove(up)
            _drop_value_info(graph, {target})
        elif producers and not readers:  # the FP32 node writes the graph output itself
            producers[0].output[:] = [target if o == source else o for o in producers[0].output]
            graph.node.remove(up)
            _drop_value_info(graph, {source})
        else:  # a no-op FP32 → FP32 Cast is left
            up.input[0] = source
    return removed


def _drop_value_info(graph: onnx.GraphProto, names: set[str]) -> None:
    kept = [v for v in graph.value_info if v.name not in names]
    del graph.value_info[:]
    graph.value_info.extend(kept)


def _cast_round_trip(graph: onnx.GraphProto) -> tuple[onnx.NodeProto, onnx.NodeProto] | None:
    """A Cast to FP16 whose only reader is a Cast back to FP32."""
    readers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    outputs = {o.name for o in graph.output}
    for down in (n for n in graph.node if _cast_to(n) == TensorProto.FLOAT16):
        after = readers.get(down.output[0], [])
        if (len(after) == 1 and _cast_to(after[0]) == TensorProto.FLOAT
                and down.output[0] not in outputs and _is_float32(graph, down.input[0])):
            return down, after[0]
    return None


def _cast_to(node: onnx.NodeProto) -> int | None:
    if node.op_type != "Cast":
        return None
    return next((a.i for a in node.attribute if a.name == "to"), None)


def _is_float32(graph: onnx.GraphProto, name: str) -> bool:
    infos = (*graph.value_info, *graph.input, *graph.output)
    return any(v.name == name and v.type.tensor_type.elem_type == TensorProto.FLOAT
               for v in infos)


def _operator_reason(node: onnx.NodeProto, opset: int) -> str | None:
    if node.domain not in ("", "ai.onnx"):
        return f"{node.domain}.{node.op_type} is not a standard operator (types unknown)"
    if node.op_type in ALWAYS_FP32_OPS:
        return f"{node.op_type} stays FP32 (as in ModelOpt AutoCast)"
    try:
        schema = onnx.defs.get_schema(node.op_type, opset)
    except onnx.defs.SchemaError:
        return f"{node.op_type} is unknown in ONNX opset {opset}"
    if not any("tensor(float16)" in c.allowed_type_strs for c in schema.type_constraints):
        return f"{node.op_type} takes no float16 in ONNX opset {opset}"
    return None


def _constant_reason(node: onnx.NodeProto, large: dict[str, float], init_max: float
                     ) -> str | None:
    names = [*node.input, *(node.output if node.op_type == "Constant" else [])]
    found = [name for name in names if name in large]
    if not found:
        return None
    return f"constant {found[0]} reaches {large[found[0]]:.6g} > init_max {init_max:g}"


def _range_reason(node: onnx.NodeProto, ranges: dict[str, float], data_max: float
                  ) -> str | None:
    if node.op_type == "Constant":
        return None
    for name in [*node.input, *node.output]:
        if ranges.get(name, 0.0) > data_max:
            return f"{name} reaches |{ranges[name]:.6g}| > data_max {data_max:g}"
    return None


def _keep_pairs_together(model: onnx.ModelProto, kept: dict[str, str]) -> None:
    """A QuantizeLinear, the DequantizeLinear reading it and the layers that DequantizeLinear
    feeds share one precision: a Cast between a DequantizeLinear and its layer would stop
    TensorRT from fusing the layer into INT8. Spread to a fixed point (a layer kept FP32
    keeps the Q/DQ pairs of all its quantized inputs)."""
    producers = {o: n for n in model.graph.node for o in n.output}
    readers: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    groups = []
    for deq in (n for n in model.graph.node if n.op_type == "DequantizeLinear"):
        quant = producers.get(deq.input[0])
        pair = [quant] if quant is not None and quant.op_type == "QuantizeLinear" else []
        groups.append([*pair, deq, *readers.get(deq.output[0], [])])
    changed = True
    while changed:
        changed = False
        for group in groups:
            anchor = next((n.name for n in group if n.name in kept), None)
            for node in group:
                if anchor is not None and node.name not in kept:
                    kept[node.name] = f"shares its Q/DQ precision with {anchor}, kept FP32"
                    changed = True


def _large_constants(model: onnx.ModelProto, init_max: float) -> dict[str, float]:
    """Float initializers and Constant outputs holding a value above ``init_max``: name → max."""
    tensors = [(t.name, t) for t in model.graph.initializer]
    tensors += [(n.output[0], a.t) for n in model.graph.node if n.op_type == "Constant"
                for a in n.attribute if a.name == "value"]
    large = {}
    for name, tensor in tensors:
        if tensor.data_type == TensorProto.FLOAT:
            values = numpy_helper.to_array(tensor)
            peak = float(np.abs(values).max()) if values.size else 0.0
            if peak > init_max:
                large[name] = peak
    return large


def _cast_to_fp16(model: onnx.ModelProto, kept: dict[str, str], src: Path,
                  for_onnxruntime: bool = False) -> onnx.ModelProto:
    from onnxruntime.transformers.float16 import convert_float_to_float16

    try:  # op_block_list None: the converter's default list of operators kept FP32
        converted = convert_float_to_float16(model, keep_io_types=True,
                                             op_block_list=None if for_onnxruntime else [],
                                             node_block_list=list(kept))
        drop_cast_round_trips(converted.graph)
        sort_topologically(converted.graph)
        onnx.checker.check_model(converted, full_check=True)
    except EdgevisionError:
        raise
    except Exception as exc:  # the converter and the checker raise many types
        raise ExportError(f"FP16 conversion of {src.name} failed: {first_line(exc)}") from exc
    return converted


def _with_opset(model: onnx.ModelProto, src: Path, opset: int) -> onnx.ModelProto:
    """``model`` at default-domain opset ≥ ``opset`` (ONNX's version converter)."""
    if default_opset(model) >= opset:
        return model
    try:
        raised = onnx.version_converter.convert_version(model, opset)
    except Exception as exc:  # the converter raises RuntimeError and friends
        raise ExportError(f"{src}: ONNX's version converter cannot raise it from opset "
                          f"{default_opset(model)} to {opset} for FP16 Q/DQ scales "
                          f"({first_line(exc)})") from exc
    if [n.op_type for n in raised.graph.node] != [n.op_type for n in model.graph.node]:
        raise ExportError(f"{src}: raising the opset to {opset} rewrote operators; "
                          "re-export the model at opset ≥ 19")
    raised.ir_version = max(raised.ir_version, MIN_IR_VERSION[opset])
    return raised


def _check_thresholds(data_max: float, init_max: float) -> None:
    if not 0 < data_max <= FP16_MAX:
        raise ExportError(f"data_max must be in (0, {FP16_MAX:g}], got {data_max:g}")
    if not 0 < init_max <= FP16_MAX:
        raise ExportError(f"init_max must be in (0, {FP16_MAX:g}] (FP16 holds nothing larger), "
                          f"got {init_max:g}")


def _check_float32(model: onnx.ModelProto, src: Path) -> None:
    types = {vi.type.tensor_type.elem_type for vi in (*model.graph.input, *model.graph.output)}
    inits = {t.data_type for t in model.graph.initializer}
    if TensorProto.FLOAT16 in types | inits:
        raise ExportError(f"{src} already holds FP16 tensors: convert its FP32 graph instead")
    if not types <= {TensorProto.FLOAT}:
        raise ExportError(f"{src}: FP16 conversion expects float32 inputs and outputs")


def _name_nodes(model: onnx.ModelProto) -> None:
    """Give unnamed nodes a unique name (the converter keeps nodes in FP32 by name)."""
    names = {n.name for n in model.graph.node}
    for index, node in enumerate(model.graph.node):
        if not node.name:
            node.name = f"{node.op_type}_{index}"
            while node.name in names:
                node.name += "_"
            names.add(node.name)


def _float_tensors(model: onnx.ModelProto) -> dict[str, int]:
    """Every node output whose inferred type is a float: name → element type."""
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {vi.name: vi.type.tensor_type.elem_type
             for vi in (*inferred.graph.value_info, *inferred.graph.output)}
    return {name: types[name] for node in model.graph.node for name in node.output
            if name and types.get(name) in _FLOAT_TYPES}


def _has_qdq(model: onnx.ModelProto) -> bool:
    return any(node.op_type in QDQ_OPS for node in model.graph.node)


def _subnormal_scales(model: onnx.ModelProto) -> int:
    """FP16 Q/DQ scale values below FP16's normal range."""
    inits = {t.name: t for t in model.graph.initializer}
    count = 0
    for node in model.graph.node:
        scale = inits.get(node.input[1]) if node.op_type in QDQ_OPS else None
        if scale is not None and scale.data_type == TensorProto.FLOAT16:
            count += int((np.abs(numpy_helper.to_array(scale)) < FP16_TINY).sum())
    return count

