"""Per-layer precisions from TensorRT's engine inspector JSON (10.x and 11.x schemas), on the
saved examples in tests/data/tensorrt (see its README for where each comes from)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgevision.backends.tensorrt.inspect import (
    kernel_precision,
    summarize_layers,
    tensor_type,
)
from edgevision.errors import ArtifactError

DATA = Path(__file__).parent / "data" / "tensorrt"


def test_real_trt10_fp32_engine() -> None:
    summary = summarize_layers((DATA / "trt10.16-fp32-layerinfo.json").read_text())
    assert summary.schema_generation == "10.x"
    # 4 Cask convolution/pooling layers + 5 Myelin layers; the last one casts the Int32 argmax
    assert (summary.layers, summary.fp32, summary.fp16, summary.int8, summary.other) == \
        (9, 8, 0, 0, 1)
    assert summary.reformats == 0
    assert summary.fp32_layers[0] == "node_conv2d + node_relu"
    # two convolutions (xmma f32f32 ... ffma, fused_conv_act_fp32) and the cuBLAS gemv: no TF32
    assert summary.kernel_precisions == {"FP32": 3}
    assert summary.dominant_kernel_precision == "FP32"


def test_real_int8_qat_engine() -> None:
    summary = summarize_layers((DATA / "trt8-int8-qat-mobilenet-excerpt.json").read_text())
    assert summary.schema_generation == "10.x"
    # 9 INT8 convolutions (one the classifier) and the FP16 global average pool; the Q/DQ
    # reformats, the reformat copy and the NoOp are data movement
    assert (summary.layers, summary.int8, summary.fp16, summary.fp32) == (10, 9, 1, 0)
    assert summary.reformats == 5
    assert summary.fp32_layers == []
    # depthwise convolutions name no tactic; every named one is an INT8 kernel
    # (int8x4, i8i8, i8816, i8f32)
    assert summary.kernel_precisions == {"INT8": 7}
    assert summary.summary() == "10 layers: 9 INT8, 1 FP16, 0 FP32, 0 other; kernels mostly INT8"


def test_constructed_trt11_fp16_engine() -> None:
    summary = summarize_layers((DATA / "trt11-constructed-fp16.json").read_text())
    assert summary.schema_generation == "11.x"
    assert (summary.layers, summary.fp16, summary.fp32, summary.reformats) == (5, 4, 1, 1)
    assert summary.fp32_layers == ["/linear/Gemm_myl0_1"]  # the layer kept in FP32
    assert summary.kernel_precisions == {"FP16": 2, "TF32": 1}
    assert summary.dominant_kernel_precision == "FP16"
    assert summary.summary() == ("5 layers: 0 INT8, 4 FP16, 1 FP32, 0 other; kernels mostly "
                                 "FP16; FP32: /linear/Gemm_myl0_1")


def test_tensor_types_in_either_schema() -> None:
    assert tensor_type({"Format/Datatype": "Thirty-two wide channel vectorized row major Int8 "
                                           "format"}) == "INT8"
    assert tensor_type({"Format/Datatype": "Channel major FP16 format where channel % 8 == 0"}) \
        == "FP16"
    assert tensor_type({"Format/Datatype": "Row major linear BFloat16 format"}) == "BF16"
    assert tensor_type({"Format/Datatype": "Row major linear UInt8 format"}) == "UINT8"
    assert tensor_type({"Format/Datatype": "Float"}) == "FP32"
    assert tensor_type({"Format": "Row major linear format", "Datatype": "Half"}) == "FP16"
    assert tensor_type({"Format": "Row major linear format", "DataType": "Int8"}) == "INT8"
    assert tensor_type({"Name": "x"}) is None


def test_kernel_precision_from_tactic_names() -> None:
    def conv(tactic: str) -> str | None:
        return kernel_precision({"ParameterType": "Convolution", "TacticName": tactic})

    assert conv("ampere_fp32_icudnn_int8x4_128x64_relu_medium_nn_v1") == "INT8"
    assert conv("sm80_xmma_fprop_implicit_gemm_f32f32_tf32f32_f32_nhwckrsc_nchw") == "TF32"
    assert conv("sm90_xmma_fprop_implicit_gemm_f16f16_f16f16_f16_nhwckrsc_nhwc") == "FP16"
    assert conv("__myl_MulSum_0xf51780477f7b66bae3896079c053d676") is None
    # a pooling layer is not a convolution/GEMM kernel
    assert kernel_precision({"ParameterType": "Pooling",
                             "TacticName": "sm50_xmma_pooling_fw_4d_FP32FP32NCHW_Max"}) is None


def test_other_profiles_are_left_out() -> None:
    layer = {"Name": "conv", "LayerType": "CaskConvolution",
             "Inputs": [{"Name": "x", "Format/Datatype": "Half"}], "Outputs": []}
    again = {**layer, "Name": "conv [profile 1]"}
    summary = summarize_layers(json.dumps({"Layers": [layer, again], "Bindings": ["x"]}))
    assert (summary.layers, summary.fp16) == (1, 1)


def test_names_only_or_not_inspector_json_is_a_one_line_error() -> None:
    with pytest.raises(ArtifactError, match="detailed profiling verbosity"):
        summarize_layers(json.dumps({"Layers": ["conv + relu"], "Bindings": ["x", "y"]}))
    with pytest.raises(ArtifactError, match="no \"Layers\" list"):
        summarize_layers("[]")
    with pytest.raises(ArtifactError, match="not TensorRT engine inspector JSON") as caught:
        summarize_layers("{not json")
    assert "\n" not in str(caught.value)
