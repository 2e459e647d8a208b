"""TensorRT's Q/DQ placement around residual adds, applied to ONNX Runtime's QDQ graph.

ONNX Runtime's quantizer puts a Q/DQ pair on every input of an Add. TensorRT fuses an Add into
the weighted layer (Conv/Gemm/MatMul) producing one of its inputs, so that input must stay in
high precision, while the other input (the shortcut) keeps its pair and the Add runs as an INT8
residual add inside the fused layer. Sources (NVIDIA):

- TensorRT's explicit quantization and Q/DQ placement:
  https://docs.nvidia.com/deeplearning/tensorrt/latest/inference-library/quantized-types-explicit-quantization.html
- Q/DQ on the residual connection of ResNet blocks (TensorFlow quantization toolkit):
  https://docs.nvidia.com/deeplearning/tensorrt/tensorflow-quantization-toolkit/docs/docs/add_custom_qdq_cases.html
- NVIDIA's QAT ResNet quantizes only the shortcut input of each add, the downsample output
  where there is one (``out += self.residual_quantizer(identity)``):
  https://github.com/NVIDIA/TensorRT/blob/master/tools/pytorch-quantization/examples/torchvision/models/classification/resnet.py
- ModelOpt's ONNX quantizer takes the input on the longer path from the two inputs' lowest
  common ancestor as the non-residual one (``build_non_residual_input_map``):
  https://nvidia.github.io/Model-Optimizer/reference/generated/modelopt.onnx.quantization.qdq_graph.html
"""

from __future__ import annotations

from collections import deque

import onnx
from onnxruntime.quantization.onnx_model import ONNXModel

from edgevision.quantization.targets import COMPUTE_OPS

_QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")


def remove_qdq_after_weighted_layers(model: onnx.ModelProto) -> int:
    """Drop the Q→DQ pairs that carry a weighted layer's output only into Adds, keeping one
    pair on each Add, then the scales and zero points no node reads any more.

    An Add whose two inputs both come from weighted layers (a downsampling block: the main
    branch's last convolution and the shortcut's) keeps the pair on the shortcut input, the one
    nearer to the two inputs' lowest common ancestor (the block input), counted in operators
    other than Q/DQ; on a tie the first input keeps it (ModelOpt's convention). Names are not
    used. Returns how many pairs were removed.
    """
    graph = model.graph
    pairs = _weighted_output_pairs(graph)
    kept = _shortcut_pairs(graph, pairs)
    bypass = {deq_output: quant.input[0] for deq_output, (quant, _) in pairs.items()
              if deq_output not in kept}
    dropped = set(bypass) | {pairs[deq_output][0].output[0] for deq_output in bypass}
    for index in reversed(range(len(graph.node))):
        node = graph.node[index]
        if any(out in dropped for out in node.output):
            del graph.node[index]
        else:
            node.input[:] = [bypass.get(name, name) for name in node.input]
    ONNXModel(model).clean_initializers()  # the removed pairs' scales and zero points
    return len(bypass)


def _weighted_output_pairs(graph: onnx.GraphProto
                           ) -> dict[str, tuple[onnx.NodeProto, onnx.NodeProto]]:
    """Dedicated Q→DQ pairs from a weighted layer's output to Adds only, by the DQ's output."""
    weighted = {out for node in graph.node if node.op_type in COMPUTE_OPS for out in node.output}
    outputs = {out.name for out in graph.output}
    consumers = _consumers(graph)
    pairs = {}
    for quant in graph.node:
        if quant.op_type != "QuantizeLinear" or quant.input[0] not in weighted:
            continue
        deq = consumers.get(quant.output[0], [])
        if len(deq) != 1 or deq[0].op_type != "DequantizeLinear":
            continue
        users = consumers.get(deq[0].output[0], [])
        if users and all(user.op_type == "Add" for user in users) \
                and deq[0].output[0] not in outputs:
            pairs[deq[0].output[0]] = (quant, deq[0])
    return pairs


def _shortcut_pairs(graph: onnx.GraphProto,
                    pairs: dict[str, tuple[onnx.NodeProto, onnx.NodeProto]]) -> set[str]:
    """The pairs (by DQ output) that stay: the shortcut input of each Add whose two inputs are
    both weighted layers' outputs through such pairs."""
    producer = {out: node for node in graph.node for out in node.output}
    kept = set()
    for add in graph.node:
        if add.op_type == "Add" and len(add.input) == 2 and all(i in pairs for i in add.input):
            kept.add(add.input[1 - _main_branch_input(add, producer)])
    return kept


def _main_branch_input(add: onnx.NodeProto, producer: dict[str, onnx.NodeProto]) -> int:
    """Which input of ``add`` (0 or 1) is on the longer path from the inputs' lowest common
    ancestor: the main branch, whose layer TensorRT fuses the add into."""
    first, second = (_ancestor_distances(_operator_before(name, producer), producer)
                     for name in add.input)
    common = [key for key in first if key in second]
    if not common:
        return 1
    ancestor = min(common, key=lambda key: first[key] + second[key])
    return 0 if first[ancestor] > second[ancestor] else 1


def _ancestor_distances(start: onnx.NodeProto | None, producer: dict[str, onnx.NodeProto]
                        ) -> dict[str, int]:
    """The operators above ``start`` (itself included, keyed by their first output) and how
    many operators up each is, on the shortest way; Q/DQ nodes are not counted."""
    if start is None:
        return {}
    distances = {start.output[0]: 0}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for name in node.input:
            parent = _operator_before(name, producer)
            if parent is not None and parent.output[0] not in distances:
                distances[parent.output[0]] = distances[node.output[0]] + 1
                queue.append(parent)
    return distances


def _operator_before(tensor: str, producer: dict[str, onnx.NodeProto]) -> onnx.NodeProto | None:
    """The operator computing ``tensor``, looking through Q/DQ nodes (None: an input or a
    constant)."""
    node = producer.get(tensor)
    while node is not None and node.op_type in _QDQ_OPS:
        node = producer.get(node.input[0])
    return node


def _consumers(graph: onnx.GraphProto) -> dict[str, list[onnx.NodeProto]]:
    found: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            found.setdefault(name, []).append(node)
    return found
