"""Learning-rate components with OpenMMLab semantics (see docs/schedules.md).

The mmcv 1.x family (``<Policy>LrUpdaterHook`` → ``<Policy>LrUpdater``) and
mmtrack's SiameseRPN updater take mmcv's keyword names, plus the common ones
``by_epoch``, ``warmup`` (constant | linear | exp), ``warmup_iters``,
``warmup_ratio`` and ``warmup_by_epoch`` (see :mod:`trainkit.schedules.updater`).
``lr_config(policy=..., ...)`` builds one from an mmcv ``lr_config`` dict as is.
Every lr write goes through :func:`trainkit.schedules.updater.write_lrs`.
"""
from __future__ import annotations

from typing import Any

from . import policies as P
from .updater import LR, Updater


class FixedLrUpdater(Updater):
    """``lr = base`` (only warmup changes it)."""

    def __init__(self, **kwargs: Any):
        super().__init__(P.Fixed(), LR, **kwargs)


class StepLrUpdater(Updater):
    """``lr = max(base · gamma**k, min_lr)``, ``k`` = milestones in ``step`` reached (or progress // step)."""

    def __init__(self, step: Any, gamma: float = 0.1, min_lr: float | None = None, **kwargs: Any):
        super().__init__(P.Step(step, gamma, min_lr, "min_lr"), LR, **kwargs)


class ExpLrUpdater(Updater):
    """``lr = base · gamma**progress``."""

    def __init__(self, gamma: float, **kwargs: Any):
        super().__init__(P.Exp(gamma), LR, **kwargs)


class PolyLrUpdater(Updater):
    """``lr = (base − min_lr)(1 − progress/total)**power + min_lr``."""

    def __init__(self, power: float = 1.0, min_lr: float = 0.0, **kwargs: Any):
        super().__init__(P.Poly(power, min_lr), LR, **kwargs)


class InvLrUpdater(Updater):
    """``lr = base · (1 + gamma·progress)**(−power)``."""

    def __init__(self, gamma: float, power: float = 1.0, **kwargs: Any):
        super().__init__(P.Inv(gamma, power), LR, **kwargs)


class CosineAnnealingLrUpdater(Updater):
    """``lr = t + ½(base − t)(1 + cos(π·progress/total))``, ``t = min_lr`` or ``base · min_lr_ratio``."""

    def __init__(self, min_lr: float | None = None, min_lr_ratio: float | None = None, **kwargs: Any):
        super().__init__(P.CosineAnnealing(min_lr, min_lr_ratio, "min_lr"), LR, **kwargs)


class FlatCosineAnnealingLrUpdater(Updater):
    """``base`` for the first ``round(start_percent · total)`` steps, then cosine to the target."""

    def __init__(self, start_percent: float = 0.75, min_lr: float | None = None,
                 min_lr_ratio: float | None = None, **kwargs: Any):
        super().__init__(P.FlatCosineAnnealing(start_percent, min_lr, min_lr_ratio), LR, **kwargs)


class CosineRestartLrUpdater(Updater):
    """Cosine cycles of ``periods`` steps restarting at ``t + w·(base − t)``; ``sum(periods)``
    must cover the run. ``restart_weights`` defaults to 1 for every period."""

    def __init__(self, periods: Any, restart_weights: Any = None, min_lr: float | None = None,
                 min_lr_ratio: float | None = None, **kwargs: Any):
        super().__init__(P.CosineRestart(periods, restart_weights, min_lr, min_lr_ratio), LR, **kwargs)


class CyclicLrUpdater(Updater):
    """Per-iteration cycles base → base·r0 → base·r1 (``target_ratio = (r0, r1)``)."""

    def __init__(self, by_epoch: bool = False, target_ratio: Any = (10, 1e-4), cyclic_times: int = 1,
                 step_ratio_up: float = 0.4, anneal_strategy: str = "cos", gamma: float = 1, **kwargs: Any):
        policy = P.Cyclic(target_ratio, cyclic_times, step_ratio_up, anneal_strategy, gamma)
        super().__init__(policy, LR, by_epoch=by_epoch, **kwargs)


class OneCycleLrUpdater(Updater):
    """1cycle from ``max_lr / div_factor`` up to ``max_lr`` and down to ``max_lr / (div_factor · final_div_factor)``."""

    def __init__(self, max_lr: Any, total_steps: int | None = None, pct_start: float = 0.3,
                 anneal_strategy: str = "cos", div_factor: float = 25, final_div_factor: float = 1e4,
                 three_phase: bool = False, by_epoch: bool = False, **kwargs: Any):
        policy = P.OneCycle(max_lr, total_steps, pct_start, anneal_strategy, div_factor, final_div_factor,
                            three_phase)
        super().__init__(policy, LR, by_epoch=by_epoch, **kwargs)


class LinearAnnealingLrUpdater(Updater):
    """``lr = base + (t − base)·progress/total``, ``t = min_lr`` or ``base · min_lr_ratio``."""

    def __init__(self, min_lr: float | None = None, min_lr_ratio: float | None = None, **kwargs: Any):
        super().__init__(P.LinearAnnealing(min_lr, min_lr_ratio, "min_lr"), LR, **kwargs)


class SiameseRPNLrUpdater(Updater):
    """mmtrack's ``SiameseRPNLrUpdaterHook``: ``lr = base · factor[epoch]``, the factors being the
    ``lr_configs`` segments ``{type: step|log, start_lr_factor, end_lr_factor, end_epoch}``
    concatenated (see :class:`trainkit.schedules.policies.Segments`). By epoch only; the segments must
    cover the run (checked at ``before_run``)."""

    def __init__(self, lr_configs: Any = P.DEFAULT_SIAMESE_SEGMENTS, by_epoch: bool = True, **kwargs: Any):
        super().__init__(P.Segments(lr_configs), LR, by_epoch=by_epoch, **kwargs)


POLICIES = {
    "Fixed": FixedLrUpdater, "Step": StepLrUpdater, "Exp": ExpLrUpdater, "Poly": PolyLrUpdater,
    "Inv": InvLrUpdater, "CosineAnnealing": CosineAnnealingLrUpdater,
    "FlatCosineAnnealing": FlatCosineAnnealingLrUpdater, "CosineRestart": CosineRestartLrUpdater,
    "Cyclic": CyclicLrUpdater, "OneCycle": OneCycleLrUpdater, "LinearAnnealing": LinearAnnealingLrUpdater,
    "SiameseRPN": SiameseRPNLrUpdater,
}


def by_policy(policy: Any, table: dict[str, type], kind: str) -> type:
    """The class for an mmcv ``policy`` name, matched ignoring case and underscores."""
    wanted = str(policy).replace("_", "").lower()
    for name, cls in table.items():
        if name.lower() == wanted:
            return cls
    raise ValueError(f"policy={policy!r} is not a known {kind} policy; valid: {', '.join(table)}")


def lr_config(policy: str, **kwargs: Any) -> Updater:
    """Build from an mmcv 1.x ``lr_config`` as written: ``lr_config(policy="step", step=[8, 11], ...)``."""
    return by_policy(policy, POLICIES, "lr")(**kwargs)
