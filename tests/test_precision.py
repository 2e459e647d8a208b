"""FP16 graphs for strongly typed engines (edgevision.export.precision): the pretrained ResNet-20
and its tensorrt-target Q/DQ graph on real CIFAR-10 images, in ONNX Runtime and OpenVINO; the
overflow rules on a scaled-up model and on small synthetic graphs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgevision.data import Dataset
from edgevision.errors import ArtifactError, ExportError
from edgevision.export.precision import (
    DATA_MAX,
    FP16_MAX,
    QDQ_FP16_OPSET,
    convert_to_fp16,
    default_opset,
    measure_ranges,
    qdq_to_fp16,
)
from edgevision.onnxmeta import fp32_origin, read_metadata, write_metadata
from edgevision.quantization.check import top1
from edgevision.recipe import DataSpec
from tests.conftest import export_resnet20

#: test images each graph is measured on
IMAGES = 500
#: FP16 against FP32: at most 2 of 500 test images may change their top-1 answer
FP16_TOLERANCE = 0.4
#: INT8 with FP16 compute against INT8 with FP32 compute: two simulations of INT8 rounding
#: (ONNX Runtime fuses the FP32 one into integer kernels); at most 5 of 500 images
INT8_FP16_TOLERANCE = 1.0


@pytest.fixture(scope="module")
def graphs(tmp_path_factory: pytest.TempPathFactory, cifar_archive: Path,
           resnet20_checkpoint: Path) -> dict[str, Path]:
    """The pretrained ResNet-20 as FP32 ONNX and as the tensorrt target's INT8 Q/DQ graph (128
    calibration images), and their FP16 forms (ranges measured on 64 calibration images)."""
    from edgevision.quantization.calibration import BatchReader
    from edgevision.quantization.ptq import Int8Options, prepare_model, quantize_int8
    from edgevision.quantization.targets import TARGETS

    folder = tmp_path_factory.mktemp("precision")
    dataset = Dataset.from_spec(DataSpec(root=cifar_archive, calibration_size=128))
    _, _, fp32 = export_resnet20(resnet20_checkpoint, dataset, folder)
    prepared = prepare_model(fp32, folder / "model.prep.onnx")
    int8 = quantize_int8(prepared, folder / "model.int8.trt.onnx",
                         Int8Options(TARGETS["tensorrt"]),
                         reader=BatchReader(dataset.calibration_set(), "input", 64))
    write_metadata(int8, {**read_metadata(fp32), "precision": "int8",
                          "quantization": {"target": "tensorrt"}})
    samples = dataset.calibration_set().first(64)
    return {"fp32": fp32, "int8": int8, "samples": _save(folder / "samples.npy", samples),
            "fp16": convert_to_fp16(fp32, folder / "model.fp16.onnx", samples).path,
            "int8+fp16": qdq_to_fp16(int8, folder / "model.int8-fp16.onnx", samples).path}


@pytest.fixture(scope="module")
def test_images(cifar_archive: Path) -> tuple[np.ndarray, np.ndarray]:
    """500 CIFAR-10 JPEG test images and their labels."""
    eval_set = Dataset.from_spec(DataSpec(root=cifar_archive, eval_limit=IMAGES)).eval_set()
    images, labels = next(eval_set.batches(IMAGES))
    assert len(images) == IMAGES
    return images, labels


def _save(path: Path, array: np.ndarray) -> Path:
    np.save(path, array)
    return path


def onnxruntime_logits(path: Path, images: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, {session.get_inputs()[0].name: images})[0])


def openvino_logits(path: Path, images: np.ndarray) -> np.ndarray:
    import openvino

    compiled = openvino.Core().compile_model(str(path), "CPU")
    return np.asarray(compiled(images)[compiled.output(0)])


def tensor_types(model: onnx.ModelProto) -> dict[str, int]:
    inferred = onnx.shape_inference.infer_shapes(model)
    return {v.name: v.type.tensor_type.elem_type
            for v in (*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output)}


def assert_float32_io(model: onnx.ModelProto) -> None:
    assert [v.type.tensor_type.elem_type for v in (*model.graph.input, *model.graph.output)] \
        == [TensorProto.FLOAT, TensorProto.FLOAT]


@pytest.mark.parametrize("runtime", [onnxruntime_logits, openvino_logits],
                         ids=["onnxruntime", "openvino"])
@pytest.mark.parametrize(("graph", "reference", "tolerance"), [
    ("fp16", "fp32", FP16_TOLERANCE), ("int8+fp16", "int8", INT8_FP16_TOLERANCE)])
def test_fp16_graphs_keep_top1(graphs: dict[str, Path], test_images: tuple[np.ndarray, np.ndarray],
                               runtime: object, graph: str, reference: str,
                               tolerance: float) -> None:
    images, labels = test_images
    assert callable(runtime)
    expected, got = runtime(graphs[reference], images), runtime(graphs[graph], images)
    assert got.dtype == np.float32 and np.isfinite(got).all()
    assert top1(expected, labels) > 75.0  # a working ResNet-20, not noise
    assert abs(top1(got, labels) - top1(expected, labels)) <= tolerance


def test_fp16_graph_types_and_metadata(graphs: dict[str, Path]) -> None:
    model = onnx.load(str(graphs["fp16"]))
    onnx.checker.check_model(model, full_check=True)
    assert_float32_io(model)
    weights = [t for t in model.graph.initializer if len(t.dims) == 4]
    assert weights and {t.data_type for t in weights} == {TensorProto.FLOAT16}
    types = tensor_types(model)
    assert {types[n.output[0]] for n in model.graph.node if n.op_type == "Conv"} \
        == {TensorProto.FLOAT16}
    meta, source = read_metadata(graphs["fp16"]), read_metadata(graphs["fp32"])
    assert meta["precision"] == "fp16" and meta["labels"] == source["labels"]
    assert meta["fp16"]["measured"] is True and meta["fp16"]["images"] == 64
    assert meta["fp16"]["kept_fp32"] == {}  # ResNet-20's activations stay far below 512
    assert meta["fp16"]["data_max"] == DATA_MAX and meta["fp16"]["init_max"] == FP16_MAX
    origin = fp32_origin(graphs["fp16"])  # recorded: what the report compares its speed with
    assert origin is not None and origin.resolve() == graphs["fp32"].resolve()


def test_int8_fp16_graph_has_fp16_scales_and_compute(graphs: dict[str, Path]) -> None:
    model = onnx.load(str(graphs["int8+fp16"]))
    onnx.checker.check_model(model, full_check=True)
    assert_float32_io(model)
    assert max(o.version for o in model.opset_import if o.domain == "") == QDQ_FP16_OPSET
    inits = {t.name: t for t in model.graph.initializer}
    qdq = [n for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    source = onnx.load(str(graphs["int8"])).graph.node
    assert len(qdq) == len([n for n in source if n.op_type in ("QuantizeLinear",
                                                                "DequantizeLinear")])
    assert {inits[n.input[1]].data_type for n in qdq} == {TensorProto.FLOAT16}
    assert {inits[n.input[2]].data_type for n in qdq} == {TensorProto.INT8}
    types = tensor_types(model)
    float_ops = ("DequantizeLinear", "Conv", "Relu", "Add", "GlobalAveragePool", "Gemm")
    assert {types[n.output[0]] for n in model.graph.node if n.op_type in float_ops} \
        == {TensorProto.FLOAT16}
    assert {inits[n.input[2]].data_type for n in model.graph.node
            if n.op_type == "Conv"} == {TensorProto.FLOAT16}  # biases
    meta = read_metadata(graphs["int8+fp16"])
    assert meta["precision"] == "int8+fp16" and meta["quantization"]["target"] == "tensorrt"
    assert meta["fp16"]["opset"] == QDQ_FP16_OPSET and meta["fp16"]["kept_fp32"] == {}


def test_raising_the_opset_keeps_the_int8_graph(graphs: dict[str, Path], tmp_path: Path,
                                                test_images: tuple[np.ndarray, np.ndarray]
                                                ) -> None:
    """Opset 18 → 19 (for FP16 scales) changes no operator of the graph: same outputs."""
    from edgevision.export.precision import _with_opset

    source = onnx.load(str(graphs["int8"]))
    raised = _with_opset(source, graphs["int8"], QDQ_FP16_OPSET)
    onnx.save(raised, str(tmp_path / "raised.onnx"))
    images = test_images[0][:64]
    np.testing.assert_array_equal(onnxruntime_logits(tmp_path / "raised.onnx", images),
                                  onnxruntime_logits(graphs["int8"], images))


def test_activations_above_data_max_stay_fp32(graphs: dict[str, Path], tmp_path: Path,
                                              test_images: tuple[np.ndarray, np.ndarray]
                                              ) -> None:
    """ResNet-20 with its classifier scaled up 10,000×: logits beyond FP16's range. Measured
    on real images, the classifier stays FP32 and writes the FP32 output itself."""
    model = onnx.load(str(graphs["fp32"]))
    gemm = next(n for n in model.graph.node if n.op_type == "Gemm")
    for tensor in model.graph.initializer:
        if tensor.name in gemm.input[1:]:
            tensor.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(tensor) * 1e4,
                                                    tensor.name))
    scaled = tmp_path / "scaled.onnx"
    onnx.save(model, str(scaled))
    samples = np.load(graphs["samples"])
    assert measure_ranges(scaled, samples)[gemm.output[0]] > FP16_MAX
    result = convert_to_fp16(scaled, tmp_path / "scaled.fp16.onnx", samples)
    assert list(result.kept_fp32) == [gemm.name] and "data_max" in result.kept_fp32[gemm.name]
    converted = onnx.load(str(result.path))
    assert next(n for n in converted.graph.node if n.op_type == "Gemm").output[0] == "logits"
    assert tensor_types(converted)["logits"] == TensorProto.FLOAT
    images, labels = test_images
    expected, got = onnxruntime_logits(scaled, images), onnxruntime_logits(result.path, images)
    assert np.abs(expected).max() > FP16_MAX and np.isfinite(got).all()
    assert abs(top1(got, labels) - top1(expected, labels)) <= FP16_TOLERANCE
    unmeasured = convert_to_fp16(scaled, tmp_path / "blind.fp16.onnx")
    assert unmeasured.measured is False and unmeasured.kept_fp32 == {}
    assert "not measured" in read_metadata(unmeasured.path)["fp16"]["rules"]


def _synthetic(path: Path, weight: np.ndarray, scale: float) -> Path:
    """x[N, 4] → Mul(scale) → MatMul(weight) → Relu → y: a tiny graph for the rules."""
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "s"], ["scaled"], name="scale_up"),
         helper.make_node("MatMul", ["scaled", "w"], ["mixed"], name="matmul"),
         helper.make_node("Relu", ["mixed"], ["y"], name="relu")],
        "synthetic",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])],
        [numpy_helper.from_array(np.array(scale, np.float32), "s"),
         numpy_helper.from_array(weight.astype(np.float32), "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=8)
    onnx.save(model, str(path))  # IR 8, as our exports: older ONNX Runtimes read it
    return path


def test_initializer_above_fp16_max_stays_fp32(tmp_path: Path) -> None:
    weight = np.eye(4) * 0.5
    weight[0, 1] = 7e4  # beyond FP16
    src = _synthetic(tmp_path / "big.onnx", weight, 1.0)
    result = convert_to_fp16(src, tmp_path / "big.fp16.onnx")  # no samples: initializers only
    assert result.measured is False and list(result.kept_fp32) == ["matmul"]
    assert "init_max" in result.kept_fp32["matmul"]
    model = onnx.load(str(result.path))
    onnx.checker.check_model(model, full_check=True)
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    assert inits["w"].dtype == np.float32 and inits["w"][0, 1] == 7e4  # not clamped to 65504
    assert inits["s"].dtype == np.float16  # the Mul runs in FP16
    x = np.random.default_rng(0).uniform(0.1, 0.5, (8, 4)).astype(np.float32)  # y < 65504
    np.testing.assert_allclose(onnxruntime_logits(result.path, x),
                               onnxruntime_logits(src, x), rtol=2e-3)


def test_activation_rule_keeps_producer_and_reader(tmp_path: Path) -> None:
    """A tensor beyond data_max keeps the node writing it and the node reading it (AutoCast
    checks each node's inputs and outputs)."""
    src = _synthetic(tmp_path / "wide.onnx", np.eye(4) * 1e-3, 1000.0)
    x = np.random.default_rng(0).uniform(0.6, 1.0, (16, 4)).astype(np.float32)
    result = convert_to_fp16(src, tmp_path / "wide.fp16.onnx", x)
    assert set(result.kept_fp32) == {"scale_up", "matmul"} and result.measured
    assert "relu" not in result.kept_fp32  # reads and writes values below 1
    np.testing.assert_allclose(onnxruntime_logits(result.path, x),
                               onnxruntime_logits(src, x), rtol=2e-3)


def test_a_layer_kept_fp32_keeps_its_dequantized_inputs_fp32(tmp_path: Path) -> None:
    """Q/DQ → MatMul whose output passes data_max: the MatMul stays FP32 and so do the
    DequantizeLinear nodes feeding it (and their QuantizeLinear), so no Cast sits between a
    DequantizeLinear and its layer (TensorRT fuses DQ → layer into INT8 only when adjacent)."""
    scale = np.array(0.01, np.float32)
    zero = np.array(0, np.int8)
    weight_q = np.clip(np.round(np.eye(4) * 100.0 / 1.0), -127, 127).astype(np.int8)
    graph = helper.make_graph(
        [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"], name="qx"),
         helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"], name="dqx"),
         helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wd"], name="dqw"),
         helper.make_node("MatMul", ["xd", "wd"], ["mixed"], name="matmul"),
         helper.make_node("Relu", ["mixed"], ["y"], name="relu")],
        "qdq", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])],
        [numpy_helper.from_array(scale, "xs"), numpy_helper.from_array(zero, "xz"),
         numpy_helper.from_array(weight_q, "wq"),
         numpy_helper.from_array(np.array(10.0, np.float32), "ws"),
         numpy_helper.from_array(zero, "wz")])
    src = tmp_path / "qdq.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)],
                                ir_version=8), str(src))
    x = np.random.default_rng(0).uniform(0.5, 1.0, (16, 4)).astype(np.float32)  # y ≈ 500-1000
    result = qdq_to_fp16(src, tmp_path / "qdq.fp16.onnx", x)
    assert {"matmul", "dqx", "dqw", "qx"} <= set(result.kept_fp32)
    model = onnx.load(str(result.path))
    assert model.ir_version >= 9 and default_opset(model) >= 19  # opset 19 is IR 9
    producers = {o: n for n in model.graph.node for o in n.output}
    layer = next(n for n in model.graph.node if n.op_type == "MatMul")
    assert [producers[i].op_type for i in layer.input] == ["DequantizeLinear"] * 2
    np.testing.assert_allclose(onnxruntime_logits(result.path, x),
                               onnxruntime_logits(src, x), rtol=2e-3)


def test_bad_inputs_are_one_line_errors(graphs: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="Q/DQ .* int8\\+fp16"):
        convert_to_fp16(graphs["int8"], tmp_path / "a.onnx")
    with pytest.raises(ExportError, match="no QuantizeLinear/DequantizeLinear"):
        qdq_to_fp16(graphs["fp32"], tmp_path / "b.onnx")
    with pytest.raises(ExportError, match="already holds FP16"):
        convert_to_fp16(graphs["fp16"], tmp_path / "c.onnx")
    with pytest.raises(ExportError, match="init_max must be"):
        convert_to_fp16(graphs["fp32"], tmp_path / "d.onnx", init_max=1e6)
    with pytest.raises(ArtifactError, match="not found"):
        convert_to_fp16(tmp_path / "missing.onnx", tmp_path / "e.onnx")
    assert not list(tmp_path.glob("*.onnx*"))  # nothing half-written
