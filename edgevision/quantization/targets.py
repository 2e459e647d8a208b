"""What each deployment target wants from the INT8 QDQ graph (ONNX Runtime quantizer settings)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: Operators that carry the MACs: a model whose compute sits elsewhere is mostly left in FP32.
COMPUTE_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")


@dataclass(frozen=True)
class TargetSettings:
    """Quantizer settings for one target."""

    name: str
    signed_activations: bool
    symmetric_activations: bool
    #: None: every operator ONNX Runtime's QDQ quantizer supports
    op_types: tuple[str, ...] | None
    extra_options: dict[str, Any] = field(default_factory=dict)
    #: remove the Q/DQ pair between a weighted layer and the Add it feeds, so the layer's
    #: output stays in high precision and TensorRT fuses the add into it; an Add of two
    #: weighted outputs keeps the pair on its shortcut (quantization/placement.py)
    float_weighted_outputs: bool = False

    def describe(self) -> str:
        acts = "S8" if self.signed_activations else "U8"
        kind = "symmetric" if self.symmetric_activations else "asymmetric"
        return (f"{self.name}: {acts} activations ({kind}), S8 symmetric weights, QDQ on "
                f"{', '.join(self.op_types) if self.op_types else 'every supported operator'}")


TARGETS: dict[str, TargetSettings] = {
    # ONNX Runtime's CPU recommendation: U8S8 (VPMADDUBSW / VNNI kernels), QDQ everywhere the
    # quantizer can put it so ONNX Runtime fuses whole quantized chains.
    "cpu": TargetSettings("cpu", signed_activations=False, symmetric_activations=False,
                          op_types=None),
    # TensorRT's explicit-quantization guidance: symmetric signed INT8 (zero point 0), Q/DQ on
    # the inputs of weighted layers and on the residual adds it fuses into the convolution;
    # pooling, reshapes and the like stay unquantized (TensorRT picks their precision).
    "tensorrt": TargetSettings(
        "tensorrt", signed_activations=True, symmetric_activations=True,
        op_types=(*COMPUTE_OPS, "Add"),
        # biases stay FP32: TensorRT's DequantizeLinear takes INT8 (not INT32) and it folds
        # the bias into the convolution itself
        # outputs are left unquantized (TensorRT: "do not quantize the outputs of weighted
        # operations"), and each quantized input gets its own pair, so every Q/DQ pair sits on
        # an input TensorRT fuses into that layer (reshapes and slices read the float tensor)
        extra_options={"ActivationSymmetric": True, "WeightSymmetric": True,
                       "QuantizeBias": False, "DedicatedQDQPair": True,
                       "OpTypesToExcludeOutputQuantization": [*COMPUTE_OPS, "Add"]},
        float_weighted_outputs=True),
}
