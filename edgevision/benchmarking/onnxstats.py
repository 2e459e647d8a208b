"""MACs and parameters of an ONNX graph, from ONNX Runtime's symbolic shape inference."""

from __future__ import annotations

import importlib.util

import numpy as np
import onnx


def onnx_macs_params(model: onnx.ModelProto) -> tuple[int, int]:
    """MACs for a batch-1 input, and parameters (float initializers of rank ≥ 1)."""
    model = _with_batch_one(model)
    inferred = _infer_shapes(model)
    shapes = _tensor_shapes(inferred)
    macs = 0
    for node in inferred.graph.node:
        out = shapes.get(node.output[0]) if node.output else None
        if out is None:
            continue
        if node.op_type == "Conv":
            weight = shapes.get(node.input[1])
            if weight is not None:
                macs += int(np.prod(out)) * int(np.prod(weight[1:]))
        elif node.op_type in ("Gemm", "MatMul"):
            left = shapes.get(node.input[0])
            if left is not None:
                inner = left[0] if node.op_type == "Gemm" and _attr(node, "transA") else left[-1]
                macs += int(np.prod(out)) * int(inner)
    params = sum(int(np.prod(init.dims)) for init in model.graph.initializer
                 if len(init.dims) >= 1 and init.data_type in _FLOAT_TYPES)
    return macs, params


_FLOAT_TYPES = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16,
                onnx.TensorProto.INT8, onnx.TensorProto.UINT8}


def _infer_shapes(model: onnx.ModelProto) -> onnx.ModelProto:
    """ONNX Runtime's symbolic shape inference when installed (it follows the shape arithmetic
    of TorchScript-exported pads and reshapes), else onnx's own."""
    if importlib.util.find_spec("onnxruntime") is not None:
        from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

        inferred = SymbolicShapeInference.infer_shapes(model, auto_merge=True)
        if inferred is not None:
            return inferred  # type: ignore[no-any-return]
    return onnx.shape_inference.infer_shapes(model, data_prop=True)


def _attr(node: onnx.NodeProto, name: str) -> int:
    return next((int(a.i) for a in node.attribute if a.name == name), 0)


def _with_batch_one(model: onnx.ModelProto) -> onnx.ModelProto:
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    initializers = {i.name for i in copy.graph.initializer}
    for graph_input in copy.graph.input:
        if graph_input.name in initializers:
            continue
        dims = graph_input.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            dims[0].dim_value = 1
    for output in copy.graph.output:  # let inference recompute the outputs with batch 1
        dims = output.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            dims[0].dim_value = 1
    del copy.graph.value_info[:]
    return copy


def _tensor_shapes(model: onnx.ModelProto) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {
        init.name: tuple(init.dims) for init in model.graph.initializer}
    graph = model.graph
    for info in [*graph.input, *graph.value_info, *graph.output]:
        dims = info.type.tensor_type.shape.dim
        if dims and all(d.HasField("dim_value") for d in dims):
            shapes[info.name] = tuple(d.dim_value for d in dims)
    return shapes
