"""Momentum components with mmcv 1.x semantics (``<Policy>MomentumUpdaterHook`` →
``<Policy>MomentumUpdater``), driving SGD ``momentum`` or Adam/AdamW ``betas[0]``.

Common keywords: ``by_epoch``, ``warmup`` (constant | linear | exp), ``warmup_iters``,
``warmup_ratio`` (default 0.9). Momentum warmup *divides* (``m = regular / f``), so it
starts above the regular value. ``momentum_config(policy=..., ...)`` builds one from an
mmcv ``momentum_config`` dict as is. See docs/schedules.md.
"""
from __future__ import annotations

from typing import Any

from . import policies as P
from .mmcv_lr import by_policy
from .updater import MOMENTUM, Updater


class StepMomentumUpdater(Updater):
    """``m = max(base · gamma**k, min_momentum)``, ``k`` = milestones in ``step`` reached (or progress // step)."""

    def __init__(self, step: Any, gamma: float = 0.5, min_momentum: float | None = None, **kwargs: Any):
        super().__init__(P.Step(step, gamma, min_momentum, "min_momentum"), MOMENTUM, **kwargs)


class CosineAnnealingMomentumUpdater(Updater):
    """``m = t + ½(base − t)(1 + cos(π·progress/total))``, ``t = min_momentum`` or ``base · min_momentum_ratio``
    (``t`` above the base anneals upwards)."""

    def __init__(self, min_momentum: float | None = None, min_momentum_ratio: float | None = None,
                 **kwargs: Any):
        super().__init__(P.CosineAnnealing(min_momentum, min_momentum_ratio, "min_momentum"), MOMENTUM, **kwargs)


class LinearAnnealingMomentumUpdater(Updater):
    """``m = base + (t − base)·progress/total``, ``t = min_momentum`` or ``base · min_momentum_ratio``."""

    def __init__(self, min_momentum: float | None = None, min_momentum_ratio: float | None = None,
                 **kwargs: Any):
        super().__init__(P.LinearAnnealing(min_momentum, min_momentum_ratio, "min_momentum"), MOMENTUM, **kwargs)


class CyclicMomentumUpdater(Updater):
    """Per-iteration cycles base → base·r0 → base·r1; the default ``(0.85/0.95, 1)`` dips while a
    :class:`~trainkit.schedules.mmcv_lr.CyclicLrUpdater` rises."""

    def __init__(self, by_epoch: bool = False, target_ratio: Any = (0.85 / 0.95, 1.0), cyclic_times: int = 1,
                 step_ratio_up: float = 0.4, anneal_strategy: str = "cos", gamma: float = 1.0, **kwargs: Any):
        policy = P.Cyclic(target_ratio, cyclic_times, step_ratio_up, anneal_strategy, gamma)
        super().__init__(policy, MOMENTUM, by_epoch=by_epoch, **kwargs)


class OneCycleMomentumUpdater(Updater):
    """1cycle momentum over ``max_iters``: ``max_momentum`` → ``base_momentum`` → ``max_momentum``."""

    def __init__(self, base_momentum: Any = 0.85, max_momentum: Any = 0.95, pct_start: float = 0.3,
                 anneal_strategy: str = "cos", three_phase: bool = False, by_epoch: bool = False, **kwargs: Any):
        policy = P.OneCycleMomentum(base_momentum, max_momentum, pct_start, anneal_strategy, three_phase)
        super().__init__(policy, MOMENTUM, by_epoch=by_epoch, **kwargs)


POLICIES = {
    "Step": StepMomentumUpdater, "CosineAnnealing": CosineAnnealingMomentumUpdater,
    "LinearAnnealing": LinearAnnealingMomentumUpdater, "Cyclic": CyclicMomentumUpdater,
    "OneCycle": OneCycleMomentumUpdater,
}


def momentum_config(policy: str, **kwargs: Any) -> Updater:
    """Build from an mmcv 1.x ``momentum_config`` as written: ``momentum_config(policy="cyclic", ...)``."""
    return by_policy(policy, POLICIES, "momentum")(**kwargs)
