"""Per-layer sensitivity (only that layer quantized) and the FP32 fallback that fits a budget."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import onnx

from edgevision.progress import log, progress_bar
from edgevision.quantization.check import CheckSet, Comparison, compare
from edgevision.quantization.ptq import compute_nodes, layer_label

#: builds an INT8 graph at the given path: (out, exclude, only) -> out
Quantizer = Callable[[Path, list[str], list[str]], Path]


@dataclass(frozen=True)
class LayerSensitivity:
    """What quantizing one compute node alone costs on the check images."""

    node: str
    layer: str
    op_type: str
    comparison: Comparison

    def to_dict(self) -> dict[str, object]:
        return {"node": self.node, "layer": self.layer, "op_type": self.op_type,
                **self.comparison.to_dict()}


def layer_sensitivity(model: onnx.ModelProto, quantize: Quantizer, check: CheckSet,
                      scratch: Path) -> list[LayerSensitivity]:
    """Quantize each compute node alone; most sensitive first (by KL, then top-1 drop)."""
    nodes = compute_nodes(model)
    results = []
    with progress_bar() as bar:
        task = bar.add_task("layer sensitivity", total=len(nodes), status="")
        for node in nodes:
            path = quantize(scratch, [], [node.name])
            results.append(LayerSensitivity(node.name, layer_label(node), node.op_type,
                                            compare(path, check)))
            bar.advance(task)
    return sorted(results, key=lambda r: (r.comparison.kl, r.comparison.drop), reverse=True)


@dataclass(frozen=True)
class BudgetFit:
    """The FP32 layers chosen for an accuracy budget and what the result scored."""

    budget: float
    fp32_nodes: list[str]
    comparison: Comparison
    met: bool

    def to_dict(self) -> dict[str, object]:
        return {"budget": self.budget, "fp32_nodes": self.fp32_nodes, "met": self.met,
                **self.comparison.to_dict()}


def fit_budget(ranking: list[LayerSensitivity], full: Comparison, quantize: Quantizer,
               check: CheckSet, out: Path, budget: float,
               max_fp32_layers: int | None) -> BudgetFit:
    """Keep the most sensitive layers in FP32, one more at a time, until the top-1 drop on the
    check images is within ``budget`` (or ``max_fp32_layers`` is reached: the best is kept)."""
    limit = min(max_fp32_layers or len(ranking), len(ranking))
    best = BudgetFit(budget, [], full, full.drop <= budget)
    excluded: list[str] = []
    while not best.met and len(excluded) < limit:
        excluded.append(ranking[len(excluded)].node)
        quantize(out, list(excluded), [])
        result = compare(out, check)
        log(f"{len(excluded)} layer(s) in FP32: top-1 drop {result.drop:.2f} points "
            f"(budget {budget})")
        if result.drop < best.comparison.drop or result.drop <= budget:
            best = BudgetFit(budget, list(excluded), result, result.drop <= budget)
    if best.fp32_nodes != excluded:  # the last try was not the best: rebuild the best
        quantize(out, list(best.fp32_nodes), [])
    return best
