"""Learning-rate components with OpenMMLab semantics (see docs/schedules.md).

The mmcv 1.x family (``<Policy>LrUpdaterHook`` → ``<Policy>LrUpdater``) and
mmtrack's SiameseRPN updater take mmcv's keyword names, plus the common ones
``by_epoch``, ``warmup`` (constant | linear | exp), ``warmup_iters``,
``warmup_ratio`` and ``warmup_by_epoch`` (see :mod:`trainkit.updater`).
``lr_config(policy=..., ...)`` builds one from an mmcv ``lr_config`` dict as is.
:class:`LinearLrInterval` is mmagic's mmengine scheduler, with mmengine's timing.
Every lr write goes through :func:`trainkit.updater.write_lrs`.
"""
from __future__ import annotations

from typing import Any, Optional

from . import policies as P
from .events import Priority
from .updater import LR, Updater, write_lrs


class FixedLrUpdater(Updater):
    """``lr = base`` (only warmup changes it)."""

    def __init__(self, **kwargs: Any):
        super().__init__(P.Fixed(), LR, **kwargs)


class StepLrUpdater(Updater):
    """``lr = max(base · gamma**k, min_lr)``, ``k`` = milestones in ``step`` reached (or progress // step)."""

    def __init__(self, step: Any, gamma: float = 0.1, min_lr: Optional[float] = None, **kwargs: Any):
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

    def __init__(self, min_lr: Optional[float] = None, min_lr_ratio: Optional[float] = None, **kwargs: Any):
        super().__init__(P.CosineAnnealing(min_lr, min_lr_ratio, "min_lr"), LR, **kwargs)


class FlatCosineAnnealingLrUpdater(Updater):
    """``base`` for the first ``round(start_percent · total)`` steps, then cosine to the target."""

    def __init__(self, start_percent: float = 0.75, min_lr: Optional[float] = None,
                 min_lr_ratio: Optional[float] = None, **kwargs: Any):
        super().__init__(P.FlatCosineAnnealing(start_percent, min_lr, min_lr_ratio), LR, **kwargs)


class CosineRestartLrUpdater(Updater):
    """Cosine cycles of ``periods`` steps restarting at ``t + w·(base − t)``; ``sum(periods)``
    must cover the run. ``restart_weights`` defaults to 1 for every period."""

    def __init__(self, periods: Any, restart_weights: Any = None, min_lr: Optional[float] = None,
                 min_lr_ratio: Optional[float] = None, **kwargs: Any):
        super().__init__(P.CosineRestart(periods, restart_weights, min_lr, min_lr_ratio), LR, **kwargs)


class CyclicLrUpdater(Updater):
    """Per-iteration cycles base → base·r0 → base·r1 (``target_ratio = (r0, r1)``)."""

    def __init__(self, by_epoch: bool = False, target_ratio: Any = (10, 1e-4), cyclic_times: int = 1,
                 step_ratio_up: float = 0.4, anneal_strategy: str = "cos", gamma: float = 1, **kwargs: Any):
        policy = P.Cyclic(target_ratio, cyclic_times, step_ratio_up, anneal_strategy, gamma)
        super().__init__(policy, LR, by_epoch=by_epoch, **kwargs)


class OneCycleLrUpdater(Updater):
    """1cycle from ``max_lr / div_factor`` up to ``max_lr`` and down to ``max_lr / (div_factor · final_div_factor)``."""

    def __init__(self, max_lr: Any, total_steps: Optional[int] = None, pct_start: float = 0.3,
                 anneal_strategy: str = "cos", div_factor: float = 25, final_div_factor: float = 1e4,
                 three_phase: bool = False, by_epoch: bool = False, **kwargs: Any):
        policy = P.OneCycle(max_lr, total_steps, pct_start, anneal_strategy, div_factor, final_div_factor,
                            three_phase)
        super().__init__(policy, LR, by_epoch=by_epoch, **kwargs)


class LinearAnnealingLrUpdater(Updater):
    """``lr = base + (t − base)·progress/total``, ``t = min_lr`` or ``base · min_lr_ratio``."""

    def __init__(self, min_lr: Optional[float] = None, min_lr_ratio: Optional[float] = None, **kwargs: Any):
        super().__init__(P.LinearAnnealing(min_lr, min_lr_ratio, "min_lr"), LR, **kwargs)


class SiameseRPNLrUpdater(Updater):
    """mmtrack's ``SiameseRPNLrUpdaterHook``: ``lr = base · factor[epoch]``, the factors being the
    ``lr_configs`` segments ``{type: step|log, start_lr_factor, end_lr_factor, end_epoch}``
    concatenated (see :class:`trainkit.policies.Segments`). By epoch only; the segments must
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


class LinearLrInterval:
    """mmagic's ``LinearLrInterval`` (an mmengine ``LinearLR``), with mmengine's timing.

    mmengine steps a scheduler once when it is built and then after every training
    iteration (``by_epoch=False``) or epoch (``by_epoch=True``). With ``g`` steps taken
    (``g = 0`` at construction) and ``p = g − 1`` the index of the iteration/epoch just
    finished, the step writes, if ``begin <= g < end``:

    * ``g == begin``: ``initial_lr · start_factor`` (each group);
    * otherwise: ``start_factor + (end_factor − start_factor) · k / K`` for every group
      (an absolute lr, not a multiple of the group's lr), with
      ``k = max(0, p − begin) // interval`` and ``K = (end − begin) // interval``.

    Outside ``[begin, end)`` nothing is written. ``end`` defaults to the run's length
    (``max_epochs`` or ``max_iters``), as mmengine's Runner fills it in. Here:
    ``before_run`` writes the value in effect at the run's position (the construction
    step on a fresh run), ``after_iter`` / ``after_epoch`` (priority 70, mmengine's
    ``ParamSchedulerHook``) take the steps.
    """

    priority = Priority.LOW

    def __init__(self, start_factor: float = 1.0 / 3, end_factor: float = 1.0, begin: int = 0,
                 end: Optional[int] = None, by_epoch: bool = True, interval: int = 1):
        self.start_factor = P.number("start_factor", start_factor, low=0.0, high=1.0)
        self.end_factor = P.number("end_factor", end_factor, low=0.0, high=1.0)
        if isinstance(begin, bool) or not isinstance(begin, int) or begin < 0:
            raise ValueError(f"begin must be a non-negative integer, got {begin!r}")
        self.interval = P.positive_int("interval", interval)
        self.begin, self.end, self.by_epoch = begin, end, bool(by_epoch)
        if end is not None:
            self._check_end(end)
        self.base: list[float] = []
        self._end, self._periods = 0, 1

    def _check_end(self, end: Any, note: str = "") -> None:
        if isinstance(end, bool) or not isinstance(end, int) or end <= self.begin:
            raise ValueError(f"end must be an integer larger than begin={self.begin}, got end={end!r}{note}")
        if (end - self.begin) // self.interval < 1:
            raise ValueError(f"interval={self.interval} is longer than end - begin = {end - self.begin}{note}")

    def before_run(self, runner) -> None:
        end = self.end
        if end is None:
            end = runner.max_epochs if self.by_epoch else runner.max_iters
            self._check_end(end, " (end defaults to the run's length)")
        self._end, self._periods = end, (end - self.begin) // self.interval
        groups = runner.optimizer.param_groups
        for g in groups:
            g.setdefault("initial_lr", g["lr"])
        self.base = [g["initial_lr"] for g in groups]
        done = runner.epoch if self.by_epoch else runner.iter
        last = min(done, self._end - 1)       # the last step taken so far
        if last >= self.begin:
            write_lrs(groups, self._value(last))

    def after_iter(self, runner) -> None:
        if not self.by_epoch:
            self._step(runner, runner.iter + 1)

    def after_epoch(self, runner) -> None:
        if self.by_epoch:
            self._step(runner, runner.epoch + 1)

    def _step(self, runner, g: int) -> None:
        if self.begin <= g < self._end:
            write_lrs(runner.optimizer.param_groups, self._value(g))

    def _value(self, g: int) -> list[float]:
        if g == self.begin:
            return [b * self.start_factor for b in self.base]
        k = max(0, g - 1 - self.begin) // self.interval
        lr = self.start_factor + (self.end_factor - self.start_factor) * (k / self._periods)
        return [lr] * len(self.base)

    def state_dict(self) -> dict[str, Any]:
        return {"base": list(self.base)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.base = list(state["base"])
