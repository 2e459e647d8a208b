"""Depth pruning: remove whole residual blocks whose shortcut is the identity.

A residual block computes ``x + f(x)`` (then, in ResNets, a ReLU that is the identity on the
non-negative stream). Removing it leaves its shortcut: the block becomes a ``RemovedBlock``
(the identity), the tensor shapes around it are unchanged, and every other layer keeps its
pretrained weights. Blocks are removed greedily, each time the one whose removal changes the
network's predictions least (KL divergence from the unpruned model's softmax on calibration
images), until the target is met. On CPUs, where convolutions of pruned channel counts run
no faster unless the counts stay multiples of the vector width, this trades MACs for
latency almost one to one (measured on the CIFAR ResNet-56 with ONNX Runtime; see README).

Which modules are such blocks is declared per block type in ``RESIDUAL_BLOCKS``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from edgevision.errors import PruneError
from edgevision.models.structure import remove_block
from edgevision.progress import log, progress_bar
from edgevision.pruning.config import PruneConfig
from edgevision.pruning.policy import named_module
from edgevision.registry import Registry

if TYPE_CHECKING:
    from edgevision.pruning.prune import PruneResult

#: block type → "this module is one of them and its shortcut is the identity"
RESIDUAL_BLOCKS: Registry[Callable[[nn.Module], bool]] = Registry("residual block type")

#: images per forward pass when ranking removals
RANKING_BATCH = 64

AfterStep = Callable[[int], None]
LatencyOf = Callable[[nn.Module], float]
#: ``savings_of(model, blocks)``: milliseconds saved by removing each block alone
SavingsOf = Callable[[nn.Module, list[str]], dict[str, float]]
#: a removal saving less than this (ms; noise can make it negative) is ranked as saving this
MIN_SAVING_MS = 1e-3


@RESIDUAL_BLOCKS.register("cifar_resnet.BasicBlock")
def _cifar_basic_block(module: nn.Module) -> bool:
    from edgevision.models.cifar_resnet import BasicBlock

    return isinstance(module, BasicBlock) and isinstance(module.shortcut, nn.Identity)


@RESIDUAL_BLOCKS.register("efficientnet_lite.MBConv")
def _efficientnet_lite_block(module: nn.Module) -> bool:
    from edgevision.models.efficientnet_lite import MBConv

    return isinstance(module, MBConv) and module.use_res_connect


@RESIDUAL_BLOCKS.register("torchvision.resnet")
def _torchvision_resnet_block(module: nn.Module) -> bool:
    from torchvision.models.resnet import BasicBlock, Bottleneck

    return isinstance(module, BasicBlock | Bottleneck) and module.downsample is None


@RESIDUAL_BLOCKS.register("torchvision.inverted_residual")
def _torchvision_inverted_residual(module: nn.Module) -> bool:
    from torchvision.models import mobilenetv2, mobilenetv3
    from torchvision.models.efficientnet import FusedMBConv, MBConv

    kinds = (mobilenetv2.InvertedResidual, mobilenetv3.InvertedResidual, MBConv, FusedMBConv)
    return isinstance(module, kinds) and bool(module.use_res_connect)


@RESIDUAL_BLOCKS.register("torchvision.regnet")
def _torchvision_regnet_block(module: nn.Module) -> bool:
    from torchvision.models.regnet import ResBottleneckBlock

    return isinstance(module, ResBottleneckBlock) and module.proj is None


@RESIDUAL_BLOCKS.register("torchvision.convnext")
def _torchvision_convnext_block(module: nn.Module) -> bool:
    from torchvision.models.convnext import CNBlock

    return isinstance(module, CNBlock)  # always x + layer_scale · f(x)


def removable_blocks(model: nn.Module, ignore: list[str]) -> list[str]:
    """Names of ``model``'s residual blocks with an identity shortcut, in network order,
    except those named in (or containing a layer named in) ``ignore``."""
    kept = {id(m) for name in ignore for m in named_module(model, name, "prune.ignore").modules()}
    return [name for name, module in model.named_modules()
            if name and any(RESIDUAL_BLOCKS.get(kind)(module) for kind in RESIDUAL_BLOCKS)
            and not any(id(m) in kept for m in module.modules())]


@dataclass
class _Costs:
    """The cost a target limits (MACs, latency or blocks removed) and its limit per step."""

    measure: Callable[[nn.Module], float]
    limits: list[float]
    describe: Callable[[float], str]


class BlockPruner:
    """Greedy depth pruning of ``model`` in place, ranked on ``images`` (calibration images)."""

    def __init__(self, model: nn.Module, config: PruneConfig, images: torch.Tensor,
                 example_input: torch.Tensor, latency_of: LatencyOf | None = None,
                 savings_of: SavingsOf | None = None) -> None:
        self.model, self.config, self.images = model, config, images
        self.candidates = removable_blocks(model, config.ignore)
        if not self.candidates:
            raise PruneError(f"{type(model).__name__} has no residual block with an identity "
                             "shortcut to remove (block types known: "
                             f"{', '.join(RESIDUAL_BLOCKS.names())}); use granularity: channel")
        self.reference = self._log_probs(model)
        self.removed: list[str] = []
        self.costs = self._costs(example_input, latency_of)
        #: ms each block's removal saves (block_rank: latency), timed once on the unpruned model
        self.savings: dict[str, float] | None = None
        if config.block_rank == "latency":
            if savings_of is None:
                raise PruneError("prune.block_rank: latency needs a way to time the blocks")
            self.savings = savings_of(model, list(self.candidates))

    def step(self, step: int) -> None:
        """Remove blocks until step ``step``'s limit (1-based) is met."""
        limit = self.costs.limits[step - 1]
        with progress_bar() as bar:
            task = bar.add_task(f"removing blocks (step {step})", total=None, status="")
            while (cost := self.costs.measure(self.model)) > limit:
                if not self.candidates:  # only a noisy cost (latency) can get here
                    raise PruneError(f"every removable block is removed and the cost is still "
                                     f"{self.costs.describe(cost)}, above "
                                     f"{self.costs.describe(limit)}")
                name, kl = self._least_harmful()
                remove_block(self.model, name)
                self.candidates.remove(name)
                self.removed.append(name)
                bar.update(task, advance=1, status=f"{name} (KL {kl:.4f})")
                saved = ("" if self.savings is None
                         else f", saves {self.savings[name]:.3f} ms alone")
                log(f"removed block {name}: KL {kl:.4f} from the unpruned model's predictions"
                    f"{saved}")

    def _least_harmful(self) -> tuple[str, float]:
        """The remaining block whose removal (on top of those done) costs the least KL, or
        (block_rank: latency) the least KL per millisecond it saves."""
        kls = {}
        for name in self.candidates:
            block = remove_block(self.model, name)
            try:
                kls[name] = self._kl(self.model)
            finally:
                self.model.set_submodule(name, block)
        savings = self.savings

        def rank(name: str) -> tuple[bool, float, float]:
            kl = max(kls[name], 0.0)  # float rounding can make a tiny KL negative
            if savings is None:
                return (False, kl, 0.0)
            saved = savings[name]
            # a block saving nothing measurable goes last; ties go to the larger saving
            return (saved <= MIN_SAVING_MS, kl / max(saved, MIN_SAVING_MS), -saved)

        best = min(kls, key=rank)
        return best, kls[best]

    @torch.inference_mode()
    def _log_probs(self, model: nn.Module) -> torch.Tensor:
        model.eval()
        chunks = [model(chunk).float() for chunk in self.images.split(RANKING_BATCH)]
        return F.log_softmax(torch.cat(chunks), dim=1)

    def _kl(self, model: nn.Module) -> float:
        return float(F.kl_div(self._log_probs(model), self.reference, reduction="batchmean",
                              log_target=True))

    def _costs(self, example_input: torch.Tensor, latency_of: LatencyOf | None) -> _Costs:
        """Per-step limits, moving linearly from the unpruned cost to the target, after
        checking that removing every candidate reaches the target at all."""
        from edgevision.pruning.prune import count, target_cost

        config, steps = self.config, self.config.steps
        if config.ratio is not None:
            total = max(1, round(config.ratio * len(self.candidates)))
            return _Costs(lambda m: -float(len(self.removed)),
                          [-float(round(total * k / steps)) for k in range(1, steps + 1)],
                          lambda v: f"{int(-v)} blocks removed")
        cost, target = target_cost(config, example_input, count(self.model, example_input)[0],
                                   latency_of)
        start = cost.measure(self.model)
        smallest = cost.measure(self._without_every_candidate())
        if smallest > target:
            raise PruneError(f"prune.{cost.key} ({cost.describe(target)}) cannot be met by "
                             f"removing blocks: the smallest reachable is "
                             f"{cost.describe(smallest)} (all {len(self.candidates)} removable "
                             "blocks removed)")
        limits = [start - (start - target) * k / steps for k in range(1, steps)] + [target]
        return _Costs(cost.measure, limits, cost.describe)

    def _without_every_candidate(self) -> nn.Module:
        trial = copy.deepcopy(self.model)
        for name in self.candidates:
            remove_block(trial, name)
        return trial


def prune_blocks(model: nn.Module, config: PruneConfig, example_input: torch.Tensor,
                 images: torch.Tensor, *, after_step: AfterStep | None = None,
                 latency_of: LatencyOf | None = None,
                 savings_of: SavingsOf | None = None) -> PruneResult:
    """Depth-prune ``model`` in place as ``config`` says, ranking removals on ``images`` (and,
    for ``block_rank: latency``, on what ``savings_of`` says each removal saves);
    ``after_step(k)`` runs after step k (for fine-tuning)."""
    from edgevision.pruning.prune import PruneResult, count, output_shape, record_step

    model.eval()
    shape = output_shape(model, example_input)
    macs, params = count(model, example_input)
    result = PruneResult(macs, params)
    pruner = BlockPruner(model, config, images, example_input, latency_of, savings_of)
    log(f"{len(pruner.candidates)} residual blocks can be removed")
    for step in range(1, config.steps + 1):
        pruner.step(step)
        record_step(result, model, example_input, shape, step, config.steps,
                    f"{len(pruner.removed)} blocks removed, ")
        if after_step is not None:
            after_step(step)
    result.removed_blocks = list(pruner.removed)
    result.block_savings_ms = pruner.savings
    result.ratio = len(pruner.removed) / (len(pruner.removed) + len(pruner.candidates))
    return result
