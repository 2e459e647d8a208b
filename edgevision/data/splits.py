"""Deterministic, seeded index lists: validation hold-out, training subset, calibration subset."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def seeded_permutation(n: int, seed: int) -> list[int]:
    """A permutation of ``range(n)`` that depends only on ``n`` and ``seed``."""
    return [int(i) for i in np.random.default_rng(seed).permutation(n)]


@dataclass(frozen=True)
class SplitIndices:
    """Indices into the training split."""

    train: list[int]
    val: list[int]
    calibration: list[int]


def split_training_set(n: int, *, val_size: int, train_limit: int | None,
                       calibration_size: int, seed: int) -> SplitIndices:
    """Hold out ``val_size`` images, optionally limit the rest, draw a calibration subset.

    The calibration subset comes from the training part (never the validation or eval split).
    """
    if val_size >= n:
        raise ValueError(f"val_size {val_size} leaves no training images out of {n}")
    order = seeded_permutation(n, seed)
    val, train = sorted(order[:val_size]), order[val_size:]
    if train_limit is not None:
        train = train[:train_limit]
    calibration_order = seeded_permutation(len(train), seed + 1)
    calibration = sorted(train[i] for i in calibration_order[:calibration_size])
    return SplitIndices(sorted(train), val, calibration)


def subset(n: int, limit: int | None, seed: int) -> list[int]:
    """All of ``range(n)``, or a seeded sorted subset of ``limit`` of them."""
    if limit is None or limit >= n:
        return list(range(n))
    return sorted(seeded_permutation(n, seed)[:limit])
