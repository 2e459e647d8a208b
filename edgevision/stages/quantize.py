"""The ``quantize`` stage: INT8 (QDQ, per target) and FP16 graphs derived from the exported
FP32 ONNX model, each added to the run's artifacts."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.table import Table

from edgevision.progress import console, log
from edgevision.quantization.config import QuantizeConfig
from edgevision.rundir import quantized_file
from edgevision.stages.registry import register_stage

if TYPE_CHECKING:
    from edgevision.stages.state import PipelineState

#: rows of the sensitivity table printed on the console (report.json holds them all)
SHOWN_LAYERS = 10


def written_files(config: QuantizeConfig) -> list[str]:
    """The files this config writes next to model.onnx (its target's INT8 graphs, including
    the optional mixed and QAT ones, and the FP16 graph), replaced when it runs again."""
    kinds = [*(("int8", "int8-mixed", "int8-qat") if "int8" in config.precisions else ()),
             *(("fp16",) if "fp16" in config.precisions else ())]
    return [quantized_file(kind, config.target) for kind in kinds]


@register_stage("quantize", phase="artifact")
def run_quantize(config: QuantizeConfig, state: PipelineState) -> None:
    """Quantize the run's final ``model.onnx`` into the precisions the config asks for."""
    from edgevision.onnxmeta import FP32_SOURCE_KEY, read_metadata
    from edgevision.quantization.run import clean_work

    fp32 = state.run.path / "model.onnx"
    # every graph written here lies beside model.onnx and records it as its FP32 source
    metadata = {**read_metadata(fp32), FP32_SOURCE_KEY: fp32.name}
    written = written_files(config)
    for name in written:  # a graph from earlier settings must not outlive them
        (state.run.path / name).unlink(missing_ok=True)
    state.artifacts = [a for a in state.artifacts  # nor its manifest entry
                       if a["path"] not in written]
    work = state.run.path / "quantize"
    record: dict[str, Any] = {}
    try:
        if "int8" in config.precisions:
            record["int8"] = _int8(config, state, fp32, metadata, work)
        if "fp16" in config.precisions:
            record["fp16"] = _fp16(state, fp32, metadata)
    finally:
        clean_work(work)
    state.info["quantize"] = record


def _int8(config: QuantizeConfig, state: PipelineState, fp32: Path,
          metadata: dict[str, Any], work: Path) -> dict[str, Any]:
    from edgevision.onnxmeta import write_metadata
    from edgevision.quantization.run import quantize_model

    result = quantize_model(fp32, fp32.with_name(quantized_file("int8", config.target)), config,
                            state.dataset, work)
    info = result.info
    quantization = {"target": config.target, "calibration": info["calibration"]}
    # the tensorrt target's graph is another artifact: its own variant name in reports
    variant = state.variant_with("int8" if config.target == "cpu" else "int8-trt")
    write_metadata(result.path, {**metadata, "variant": variant, "precision": "int8",
                                 "quantization": {**quantization, "fp32_layers": []}})
    state.add_artifact(variant, result.path)
    if result.mixed_path is not None:
        layers = info["budget"]["fp32_layers"]
        write_metadata(result.mixed_path, {
            **metadata, "variant": f"{variant}-mixed", "precision": "int8+fp32",
            "quantization": {**quantization, "fp32_layers": layers}})
        state.add_artifact(f"{variant}-mixed", result.mixed_path)
        log(f"kept in FP32 for the accuracy budget: {', '.join(layers)}")
    if "sensitivity" in info:
        console.print(sensitivity_table(info["sensitivity"]))
    if _wants_qat(config, info):
        info["qat"] = _qat(config, state, fp32, metadata, work, variant)
    return info


def _wants_qat(config: QuantizeConfig, info: dict[str, Any]) -> bool:
    if config.qat.when == "always":
        return True
    if config.qat.when == "if_ptq_misses":
        missed = info["check"]["int8"]["drop"] > (config.accuracy_budget or 0.0)
        log(f"INT8 PTQ {'misses' if missed else 'meets'} the accuracy budget: QAT "
            f"{'runs' if missed else 'is not needed'}")
        return bool(missed)
    return False


def _qat(config: QuantizeConfig, state: PipelineState, fp32: Path, metadata: dict[str, Any],
         work: Path, variant: str) -> dict[str, Any]:
    from edgevision.onnxmeta import write_metadata
    from edgevision.quantization.run import qat_quantize

    module = state.model.module if state.model is not None else _run_model(state)
    path = fp32.with_name(quantized_file("int8-qat", config.target))
    result = qat_quantize(module, fp32, path, config, state.dataset, state.recipe.export,
                          metadata, state.run.path, work)
    write_metadata(result.path, {**metadata, "variant": f"{variant}-qat", "precision": "int8",
                                 "quantization": {"target": config.target, "qat": True,
                                                  "calibration": {
                                                      **result.info["calibration"],
                                                      "cache": None}}})
    state.add_artifact(f"{variant}-qat", result.path)
    return result.info


def _run_model(state: PipelineState) -> Any:
    from edgevision.models.build import load_model_file

    return load_model_file(state.run.path / "model.pt")[0].module


def _fp16(state: PipelineState, fp32: Path, metadata: dict[str, Any]) -> dict[str, Any]:
    import numpy as np

    from edgevision.export.precision import RANGE_IMAGES
    from edgevision.onnxmeta import write_metadata
    from edgevision.quantization.check import run_logits
    from edgevision.quantization.fp16 import convert_fp16

    calibration = state.dataset.calibration_set()
    samples = calibration.first(min(RANGE_IMAGES, len(calibration)))
    conversion = convert_fp16(fp32, fp32.with_name(quantized_file("fp16", "cpu")), samples)
    path = conversion.path
    variant = state.variant_with("fp16")
    write_metadata(path, {**metadata, "variant": variant, **conversion.to_metadata()})
    if conversion.kept_fp32:
        log(f"kept in FP32 (FP16 would overflow): {', '.join(conversion.kept_fp32)}")
    images = state.eval_set.first(state.recipe.export.verify_images)
    reference, got = run_logits(fp32, images), run_logits(path, images)
    check: dict[str, Any] = {"images": len(images),
                             "max_abs_diff": float(np.abs(reference - got).max()),
                             "top1_agreement": float((reference.argmax(1) ==
                                                      got.argmax(1)).mean()),
                             "fp32_nodes": sorted(conversion.kept_fp32)}
    log(f"FP16 graph vs FP32 on {len(images)} real images: max |diff| "
        f"{check['max_abs_diff']:.2e}, top-1 agreement {100 * check['top1_agreement']:.1f}%")
    state.add_artifact(variant, path)
    return check


def sensitivity_table(rows: list[dict[str, Any]], limit: int = SHOWN_LAYERS) -> Table:
    """The most sensitive layers first: KL to FP32 and top-1 drop with only that layer INT8."""
    table = Table(title=f"INT8 sensitivity per layer (top {min(limit, len(rows))} of "
                        f"{len(rows)}, only that layer quantized)")
    for column in ("layer", "node", "op", "KL vs FP32", "top-1 %", "drop (points)"):
        table.add_column(column, justify="left" if column in ("layer", "node", "op")
                         else "right")
    for row in rows[:limit]:
        table.add_row(row["layer"], row["node"], row["op_type"], f"{row['kl']:.3g}",
                      f"{row['top1']:.2f}", f"{row['drop']:.2f}")
    return table
