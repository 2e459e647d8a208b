"""Prune a model's channels with torch-pruning's MetaPruner, to a channel ratio or a MACs target.

The dependency graph keeps residual adds, concatenations, depthwise convolutions and BatchNorm
consistent. Before anything is removed the graph is checked for operators it cannot map (a
channel shuffle, a channel-padding shortcut), which become a ``PruneError`` naming them; after
every step the model must still run and give the same output shape.
"""

from __future__ import annotations

import copy
import traceback
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from edgevision.errors import PruneError, first_line
from edgevision.progress import log
from edgevision.pruning.config import PruneConfig
from edgevision.pruning.importance import NEEDS_GRADIENTS, make_importance
from edgevision.pruning.policy import (
    named_module,
    prepare_for_pruning,
    pruning_roots_to_ignore,
)

#: operators whose channel mapping torch-pruning gets wrong when they pad channels.
UNSAFE_OPERATORS = ("ConstantPadNd",)
#: bisection stops when the ratio interval is this narrow.
RATIO_TOLERANCE = 0.002

LabelledBatches = Callable[[], Iterable[tuple[torch.Tensor, torch.Tensor]]]
AfterStep = Callable[[int], None]
LatencyOf = Callable[[nn.Module], float]


@dataclass
class PruneTarget:
    """What one pruning pass uses: a channel ratio for every layer, overridden per layer name;
    with a MACs or latency target, the cost it must get below."""

    ratio: float
    layer_ratios: dict[str, float] = field(default_factory=dict)
    limit: float | None = None


@dataclass(frozen=True)
class Cost:
    """What a target limits: its recipe key, how to measure a model, how to print a value."""

    key: str
    measure: Callable[[nn.Module], float]
    describe: Callable[[float], str]
    exact: bool  # deterministic (MACs), so worth the layer-by-layer refinement


@dataclass
class PruneResult:
    """MACs and parameters before and after, per step, and the ratio used."""

    macs_before: int
    params_before: int
    architecture: str | None = None
    macs_after: int = 0
    params_after: int = 0
    ratio: float = 0.0
    steps: list[dict[str, float]] = field(default_factory=list)
    removed_blocks: list[str] = field(default_factory=list)
    #: block_rank: latency — ms each removable block's removal alone saved (timed once)
    block_savings_ms: dict[str, float] | None = None

    @property
    def macs_fraction(self) -> float:
        return self.macs_after / self.macs_before

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "macs_fraction": self.macs_fraction}


def prune_model(model: nn.Module, config: PruneConfig, example_input: torch.Tensor,
                architecture: str | None = None, *,
                labelled_batches: LabelledBatches | None = None,
                after_step: AfterStep | None = None,
                latency_of: LatencyOf | None = None) -> PruneResult:
    """Prune ``model`` in place as ``config`` says; ``after_step(k)`` runs after step k (for
    fine-tuning). ``labelled_batches`` yields training batches for gradient-based criteria;
    ``latency_of(model)`` measures milliseconds, for a latency target.
    ``architecture`` (the registry name) selects exact rewrites done first (CIFAR ResNets'
    padding shortcuts); ``PruneResult.architecture`` is the name the model has afterwards."""
    if config.importance in NEEDS_GRADIENTS and labelled_batches is None:
        raise PruneError(f"importance {config.importance!r} needs labelled training batches")
    model.eval()
    shape = output_shape(model, example_input)
    macs, params = count(model, example_input)  # the targets refer to the model as given
    architecture = prepare_for_pruning(model, architecture)
    result = PruneResult(macs, params, architecture)
    ignored = pruning_roots_to_ignore(model, config.ignore)
    roots = check_prunable(model, example_input, ignored)
    gradients = labelled_batches if config.importance in NEEDS_GRADIENTS else None
    search: _Search | None = None
    if config.ratio is not None:
        target = PruneTarget(config.ratio, dict(config.layer_ratios))
    else:
        cost, limit = target_cost(config, example_input, macs, latency_of)
        search = _Search(model, config, example_input, ignored, roots, gradients, cost)
        target = search.target_for(limit)
    result.ratio = target.ratio
    pruner = _pruner(model, config, example_input, ignored, target, config.steps)
    for step in range(1, config.steps + 1):
        _prepare_gradients(model, gradients)
        pruner.step()
        model.zero_grad(set_to_none=True)
        if step == config.steps and search is not None and target.limit is not None:
            search.meet_limit(target.limit)
        record_step(result, model, example_input, shape, step, config.steps)
        if after_step is not None:
            after_step(step)
    return result


def record_step(result: PruneResult, model: nn.Module, example_input: torch.Tensor,
                shape: torch.Size, step: int, steps: int, done: str = "") -> None:
    """After pruning step ``step``: check the model still runs to ``shape``, then record and
    log its MACs and parameters (``done`` says what the step removed, for the log)."""
    check_runs(model, example_input, shape, f"after pruning step {step}")
    macs, params = count(model, example_input)
    result.steps.append({"step": step, "macs": macs, "params": params})
    result.macs_after, result.params_after = macs, params
    log(f"pruning step {step}/{steps}: {done}MACs {macs / 1e6:.1f}M "
        f"({100 * macs / result.macs_before:.1f}% of {result.macs_before / 1e6:.1f}M), "
        f"params {params / 1e6:.3f}M")


def check_prunable(model: nn.Module, example_input: torch.Tensor,
                   ignored: list[nn.Module]) -> list[str]:
    """The names of the layers that root a pruning group. Raises ``PruneError`` naming the
    operator when the dependency graph cannot be built, or when a group to be pruned passes
    through an operator it maps wrongly."""
    graph = _dependency_graph(model, example_input)
    skip = [m for layer in ignored for m in layer.modules()]
    roots = []
    for group in graph.get_all_groups(ignored_layers=skip,
                                      root_module_types=[nn.modules.conv._ConvNd, nn.Linear]):
        root = graph._module2name.get(next(iter(group))[0].target.module, "?")
        roots.append(root)
        for dep, _ in group:
            operator = str(dep.target.module)
            if any(unsafe in operator for unsafe in UNSAFE_OPERATORS) and _pads_channels(
                    dep.target):
                raise PruneError(
                    f"cannot prune layer {root!r} safely: its channels reach {operator}, a "
                    "channel padding torch-pruning cannot map (e.g. an option-A shortcut); add "
                    f"{root!r} to prune.ignore")
    if not roots:
        raise PruneError(f"{type(model).__name__} has no layer left to prune (every "
                         "convolution and linear layer is ignored)")
    return roots


def _pads_channels(node: Any) -> bool:
    """Whether a padding node of the dependency graph may pad channels (dimension 1 of an NCHW
    tensor). Padding of the last two dimensions only (e.g. EfficientNet-Lite's TensorFlow-SAME
    padding) keeps every channel where it was, which torch-pruning maps correctly; a padding
    whose amounts cannot be read counts as padding channels."""
    pad = getattr(getattr(node, "grad_fn", None), "_saved_pad", None)
    return pad is None or any(pad[4:])


def _dependency_graph(model: nn.Module, example_input: torch.Tensor) -> Any:
    import torch_pruning as tp

    try:
        return tp.DependencyGraph().build_dependency(model, example_inputs=example_input)
    except Exception as exc:  # torch-pruning raises plain errors from deep inside
        raise PruneError(f"torch-pruning cannot trace {type(model).__name__}'s channel "
                         f"dependencies: {_failure_site(exc)}") from None


def _failure_site(exc: BaseException) -> str:
    """The operator (graph node) and torch-pruning function a failure happened in."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if "torch_pruning" in f.filename]
    node = None
    tb = exc.__traceback__
    while tb is not None:
        node = tb.tb_frame.f_locals.get("node", node)
        tb = tb.tb_next
    where = f" in {frames[-1].name}" if frames else ""
    at = f" at operator {node.name}" if node is not None and hasattr(node, "name") else ""
    hint = " (a reshape that mixes channels, e.g. a channel shuffle)" \
        if "reshape" in where else ""
    return f"{type(exc).__name__}{where}{at}{hint}: {first_line(exc)}"


def _pruner(model: nn.Module, config: PruneConfig, example_input: torch.Tensor,
            ignored: list[nn.Module], target: PruneTarget, steps: int) -> Any:
    layer_ratios = {named_module(model, name, "prune.layer_ratios"): value
                    for name, value in target.layer_ratios.items()}
    try:
        return _pruner_class()(
            model, example_input, importance=make_importance(config.importance),
            global_pruning=config.scope == "global", pruning_ratio=target.ratio,
            pruning_ratio_dict=layer_ratios or None, max_pruning_ratio=config.max_layer_ratio,
            iterative_steps=steps, ignored_layers=ignored, round_to=config.round_to)
    except Exception as exc:
        raise PruneError(f"torch-pruning cannot prune {type(model).__name__}: "
                         f"{_failure_site(exc)}") from None


def _pruner_class() -> type:
    """torch-pruning's MetaPruner, except that channel counts are rounded to the nearest
    multiple of ``round_to`` and never to zero (MetaPruner rounds down and then skips a layer
    rounded to zero, so more pruning could remove fewer MACs, breaking the MACs search)."""
    import torch_pruning as tp

    class RoundingPruner(tp.pruner.MetaPruner):  # type: ignore[misc]
        def _round_to(self, n_pruned: int, current_channels: int, round_to: int) -> int:
            kept = round((current_channels - n_pruned) / round_to) * round_to
            kept = min(max(kept, min(round_to, current_channels)), current_channels)
            return current_channels - kept

    return RoundingPruner


def target_cost(config: PruneConfig, example_input: torch.Tensor, original_macs: int,
                latency_of: LatencyOf | None) -> tuple[Cost, float]:
    """The cost ``config``'s target (MACs or latency) limits, and the limit; shared by
    channel and block pruning."""
    if config.target_latency_ms is not None:
        if latency_of is None:
            raise PruneError("prune.target_latency_ms needs a way to measure latency")
        return Cost("target_latency_ms", latency_of, lambda ms: f"{ms:.2f} ms",
                    exact=False), config.target_latency_ms
    cost = Cost("target_macs", lambda m: float(count(m, example_input)[0]),
                 lambda macs: f"{macs / original_macs:.3f} of the MACs", exact=True)
    return cost, config.target_macs * original_macs  # type: ignore[operator]


class _Search:
    """Finds the pruning that brings a cost (MACs, latency) just below a limit, by bisection on
    pruned trial copies."""

    def __init__(self, model: nn.Module, config: PruneConfig, example_input: torch.Tensor,
                 ignored: list[nn.Module], roots: list[str], gradients: LabelledBatches | None,
                 cost: Cost) -> None:
        self.model, self.config, self.example_input = model, config, example_input
        self.ignored, self.roots, self.gradients = ignored, roots, gradients
        self.cost = cost

    def target_for(self, limit: float) -> PruneTarget:
        """The smallest uniform ratio reaching ``limit``; for MACs in uniform scope, then the
        fewest layers (in network order) taken to that ratio, the others kept at the next lower
        ratio, since rounding channel counts makes MACs fall in steps."""
        _prepare_gradients(self.model, self.gradients)
        high = self.config.max_layer_ratio
        smallest = self.trial_cost(PruneTarget(high, dict(self.config.layer_ratios)))
        if smallest > limit:
            describe = self.cost.describe
            raise PruneError(
                f"prune.{self.cost.key} ({describe(limit)}) cannot be met: the smallest "
                f"reachable is {describe(smallest)} (every prunable layer at max_layer_ratio "
                f"{high}; the classifier, ignored layers and unprunable layers keep theirs)")
        low = 0.0
        while high - low > RATIO_TOLERANCE:
            middle = (low + high) / 2
            if self.trial_cost(PruneTarget(middle, dict(self.config.layer_ratios))) <= limit:
                high = middle
            else:
                low = middle
        target = PruneTarget(high, dict(self.config.layer_ratios), limit)
        if self.config.scope == "uniform" and self.cost.exact:
            target = self._fewest_layers_at(high, low, limit)
        self.model.zero_grad(set_to_none=True)
        stepped = len(target.layer_ratios) - len(self.config.layer_ratios)
        log(f"channel ratio {target.ratio:.3f}"
            + (f" ({stepped} layers at {high:.3f})" if stepped else "")
            + f" reaches prune.{self.cost.key}")
        return target

    def _fewest_layers_at(self, high: float, low: float, limit: float) -> PruneTarget:
        candidates = [r for r in self.roots if r not in self.config.layer_ratios]

        def target(count: int) -> PruneTarget:
            stepped = {name: high for name in candidates[:count]}
            return PruneTarget(low, {**stepped, **self.config.layer_ratios}, limit)

        fewest, most = 0, len(candidates)
        while fewest < most:
            middle = (fewest + most) // 2
            if self.trial_cost(target(middle)) <= limit:
                most = middle
            else:
                fewest = middle + 1
        return target(most)

    def meet_limit(self, limit: float) -> None:
        """After an iterative schedule (whose rankings shift), prune a little more if needed."""
        if self.cost.measure(self.model) <= limit:
            return
        extra = self.target_for(limit)
        _prepare_gradients(self.model, self.gradients)
        _pruner(self.model, self.config, self.example_input, self.ignored, extra, 1).step()
        self.model.zero_grad(set_to_none=True)

    def trial_cost(self, target: PruneTarget) -> float:
        """The cost after one-shot pruning a copy of the model to ``target``."""
        trial = copy.deepcopy(self.model)
        for source, copied in zip(self.model.parameters(), trial.parameters(), strict=True):
            copied.grad = None if source.grad is None else source.grad.clone()  # for taylor
        by_id = {id(m): i for i, m in enumerate(self.model.modules())}
        trial_modules = list(trial.modules())
        trial_ignored = [trial_modules[by_id[id(m)]] for m in self.ignored]
        _pruner(trial, self.config, self.example_input, trial_ignored, target, 1).step()
        return self.cost.measure(trial)


def _prepare_gradients(model: nn.Module, gradients: LabelledBatches | None) -> None:
    """Accumulate the loss gradients gradient-based criteria rank channels by."""
    if gradients is None:
        return
    model.zero_grad(set_to_none=True)
    model.eval()
    for images, labels in gradients():
        nn.functional.cross_entropy(model(images), labels).backward()


def check_runs(model: nn.Module, example_input: torch.Tensor, shape: torch.Size,
               when: str) -> None:
    """Raise ``PruneError`` unless ``model`` still runs ``example_input`` to ``shape``."""
    try:
        got = output_shape(model, example_input)
    except RuntimeError as exc:
        raise PruneError(f"the pruned model no longer runs {when}: {first_line(exc)}") from None
    if got != shape:
        raise PruneError(f"the pruned model's output shape changed {when}: {tuple(shape)} → "
                         f"{tuple(got)}")


@torch.no_grad()
def output_shape(model: nn.Module, example_input: torch.Tensor) -> torch.Size:
    """The shape of ``model``'s output for ``example_input``, in eval mode."""
    model.eval()
    return model(example_input).shape


def count(model: nn.Module, example_input: torch.Tensor) -> tuple[int, int]:
    """MACs and parameters of ``model`` for one input shaped like ``example_input``."""
    from edgevision.models.build import count_macs_params

    return count_macs_params(model, tuple(example_input.shape[1:]))
