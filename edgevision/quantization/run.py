"""The INT8 recipe step end to end: prepare → calibrate (cached) → QDQ graph → sensitivity →
accuracy-budget fallback."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnx

from edgevision.data import Dataset, EvalSet
from edgevision.data.splits import subset
from edgevision.errors import DataError, QuantizeError
from edgevision.export.spec import ExportSpec
from edgevision.progress import log
from edgevision.quantization.calibration import (
    BatchReader,
    cache_key,
    calibration_images,
    check_calibration_shape,
)
from edgevision.quantization.check import CheckSet, Comparison, compare
from edgevision.quantization.config import QuantizeConfig
from edgevision.quantization.ptq import (
    SUPPORTS_CACHE,
    Int8Options,
    compute_nodes,
    float_compute_nodes,
    layer_label,
    prepare_model,
    quantize_int8,
    unsupported_ops,
)
from edgevision.quantization.sensitivity import fit_budget, layer_sensitivity
from edgevision.quantization.targets import TARGETS
from edgevision.rundir import quantized_file


@dataclass
class Int8Result:
    """The INT8 graph(s) written and what was learnt on the way."""

    path: Path
    #: the graph with the budget's FP32 fallback layers, when the full INT8 graph missed it
    mixed_path: Path | None = None
    info: dict[str, Any] = field(default_factory=dict)


def quantize_model(fp32: Path, out: Path, config: QuantizeConfig, dataset: Dataset,
                   work: Path) -> Int8Result:
    """Write the INT8 QDQ graph of ``fp32`` for ``config.target`` to ``out`` (plus
    ``<out>-mixed`` when an accuracy budget keeps layers in FP32); ``work`` holds scratch files."""
    work.mkdir(parents=True, exist_ok=True)
    options = Int8Options(TARGETS[config.target], config.calibration.method,
                          config.calibration.percentile, config.per_channel,
                          config.reduce_range)
    prepared = prepare_model(fp32, work / "prepared.onnx")
    graph = onnx.load(str(prepared))
    float_ops = _check_operators(graph, config)
    images, fingerprint = calibration_images(config.calibration, dataset)
    check_calibration_shape(images, _input_shape(graph))
    cache, cache_hit = _cache_file(fp32, work, config, options, fingerprint)
    log(f"INT8 for {options.target.describe()}; {config.calibration.method} ranges from "
        f"{len(images)} calibration images" + (f" (cached: {cache.name})" if cache_hit and cache
                                               else ""))

    def quantize(path: Path, exclude: list[str], only: list[str]) -> Path:
        """One INT8 graph; calibrates only while the range cache does not exist yet."""
        return quantize_int8(prepared, path, options, reader=_reader_if_uncached(
            cache, images, graph, config), cache=cache, exclude=exclude, only=only)

    quantize(out, [], [])

    info: dict[str, Any] = {
        "target": config.target, "settings": options.target.describe(),
        "calibration": {"method": config.calibration.method, "images": len(images),
                        "source": config.calibration.images,
                        "cache": cache.name if config.calibration.cache and cache else None,
                        "cache_hit": cache_hit},
        "float_ops": float_ops,
        "float_compute_nodes": float_compute_nodes(onnx.load(str(out))),
    }
    result = Int8Result(out, info=info)
    if config.sensitivity or config.accuracy_budget is not None:
        _sensitivity_and_budget(result, graph, quantize, config, dataset, fp32, work)
    if not config.calibration.cache and cache is not None:
        cache.unlink(missing_ok=True)
    return result


def _sensitivity_and_budget(result: Int8Result, graph: onnx.ModelProto, quantize: Any,
                            config: QuantizeConfig, dataset: Dataset, fp32: Path,
                            work: Path) -> None:
    check = CheckSet.build(check_images(dataset, config.check_images), fp32)
    full = compare(result.path, check)
    result.info["check"] = _check_record(check, full)
    log(f"check images ({len(check.labels)} validation): FP32 top-1 "
        f"{check.reference_top1:.2f}%, INT8 {full.top1:.2f}% (drop {full.drop:.2f})")
    ranking = layer_sensitivity(graph, quantize, check, work / "one-layer.onnx")
    result.info["sensitivity"] = [r.to_dict() for r in ranking]
    budget = config.accuracy_budget
    if budget is None or full.drop <= budget:
        if budget is not None:
            result.info["budget"] = {"budget": budget, "fp32_nodes": [], "met": True,
                                     **full.to_dict()}
        return
    mixed = result.path.with_name(quantized_file("int8-mixed", config.target))
    fit = fit_budget(ranking, full, quantize, check, mixed, budget, config.max_fp32_layers)
    labels = {node.name: layer_label(node) for node in compute_nodes(graph)}
    result.info["budget"] = {**fit.to_dict(),
                             "fp32_layers": [labels[n] for n in fit.fp32_nodes]}
    if fit.fp32_nodes:
        result.mixed_path = mixed
    else:
        mixed.unlink(missing_ok=True)
    if not fit.met:
        log(f"[yellow]accuracy budget {budget} points not met: the best reached is a drop of "
            f"{fit.comparison.drop:.2f} with {len(fit.fp32_nodes)} layer(s) in FP32[/yellow]")


def _check_record(check: CheckSet, int8: Comparison) -> dict[str, Any]:
    """What report.json keeps of an INT8 graph's comparison with FP32 on the check images."""
    return {"images": len(check.labels), "split": "validation",
            "fp32_top1": round(check.reference_top1, 3), "int8": int8.to_dict()}


def check_images(dataset: Dataset, count: int) -> EvalSet:
    """A seeded subset of the validation hold-out (never the evaluation split)."""
    val = dataset.splits.val
    if not val:
        raise DataError("quantize: sensitivity and accuracy_budget need validation images "
                        "(data.val_size is 0)")
    picked = [val[i] for i in subset(len(val), count, dataset.seed)]
    return EvalSet(dataset.train_source, picked, dataset.preprocess, name="validation")


def _check_operators(graph: onnx.ModelProto, config: QuantizeConfig) -> list[str]:
    unsupported = unsupported_ops(graph, TARGETS[config.target])
    if unsupported and config.unsupported_ops == "error":
        raise QuantizeError(f"the quantizer cannot handle {', '.join(unsupported)} (set "
                            "unsupported_ops: fp32 to keep them in FP32)")
    if unsupported:
        log(f"left in FP32 (no INT8 kernel in the quantizer): {', '.join(unsupported)}")
    return unsupported


def _input_shape(graph: onnx.ModelProto) -> tuple[int, ...]:
    dims = graph.graph.input[0].type.tensor_type.shape.dim[1:]
    return tuple(d.dim_value for d in dims)


def _cache_file(fp32: Path, work: Path, config: QuantizeConfig, options: Int8Options,
                fingerprint: str) -> tuple[Path | None, bool]:
    """Where ranges are cached and whether they already are. Without ``cache: true`` a scratch
    file still saves recalibrating for every sensitivity candidate."""
    if not SUPPORTS_CACHE:
        if config.calibration.cache:
            log("[yellow]ONNX Runtime < 1.27 cannot cache calibration ranges: they are "
                "recomputed[/yellow]")
        return None, False
    key = cache_key(fp32, fingerprint, options.cache_settings())
    if config.calibration.cache:
        path = fp32.with_name(f"{fp32.stem}.ranges-{config.calibration.method}-{key[:12]}.json")
        return path, path.is_file()
    scratch = work / "ranges.json"
    scratch.unlink(missing_ok=True)
    return scratch, False


def _reader_if_uncached(cache: Path | None, images: EvalSet, graph: onnx.ModelProto,
                        config: QuantizeConfig) -> BatchReader | None:
    if cache is not None and cache.is_file():
        return None
    return BatchReader(images, graph.graph.input[0].name, config.calibration.batch_size)


def clean_work(work: Path) -> None:
    """Remove the scratch folder."""
    shutil.rmtree(work, ignore_errors=True)


def qat_quantize(module: Any, fp32: Path, out: Path, config: QuantizeConfig, dataset: Dataset,
                 export: ExportSpec, metadata: dict[str, Any], run_path: Path,
                 work: Path) -> Int8Result:
    """Quantization-aware training of ``module`` (the PyTorch model behind ``fp32``), then the
    same ONNX Runtime QDQ quantization; the result is compared with ``fp32`` on the check
    images. Training checkpoints go to ``run_path/qat``."""
    from edgevision.export.onnx import export_onnx, verify_onnx
    from edgevision.quantization.config import QatSpec
    from edgevision.quantization.qat import quantization_aware_training

    images, _ = calibration_images(config.calibration, dataset)
    loss = "distilling from the FP32 model" if config.qat.distill else "cross-entropy"
    log(f"quantization-aware training: {config.qat.train.epochs} epoch(s), lr "
        f"{config.qat.train.lr}, {loss}")
    trained, history = quantization_aware_training(module, dataset, config.qat,
                                                   TARGETS[config.target], images,
                                                   run_path / "qat", dataset.seed)
    trained_fp32 = work / "qat-fp32.onnx"
    sample = images.first(export.verify_images)
    export_onnx(trained, sample, trained_fp32, export, metadata)
    verify_onnx(trained_fp32, trained, sample, export.atol, export.rtol)
    plain = config.model_copy(update={"sensitivity": False, "accuracy_budget": None,
                                      "qat": QatSpec()})
    result = quantize_model(trained_fp32, out, plain, dataset, work / "qat")
    result.info["training"] = history.to_dict()
    check = CheckSet.build(check_images(dataset, config.check_images), fp32)
    result.info["check"] = _check_record(check, compare(out, check))
    log(f"QAT INT8 on the check images: top-1 {result.info['check']['int8']['top1']:.2f}% "
        f"(drop {result.info['check']['int8']['drop']:.2f} vs FP32)")
    return result
