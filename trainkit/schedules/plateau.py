"""Plateau lr reduction: mmagic 1.x's ``ReduceLR`` scheduler and ``ReduceLRSchedulerHook``
in one component (see docs/plateau.md).

A *check* is one ``step()`` of mmagic's scheduler. It consumes ``v``, the mean of the
monitored quantity since the previous check, averaged across processes:

* ``val_metric`` set: ``runner.metrics[val_metric]`` of each validation; a check
  follows a validation when ``not by_epoch`` or ``(runner.epoch + 1) % interval == 0``
  (``runner.epoch`` = completed epochs there: mmagic's off-by-one for ``interval > 1``).
* ``val_metric=None``: ``runner.outputs["loss"]`` of each iteration; a check ends an
  epoch with ``(epoch + 1) % interval == 0`` (``by_epoch``) or an iteration with
  ``(iter + 1) % interval == 0``.

Check ``g`` (``g = 0`` is the construction step at ``before_run``) acts only if
``begin <= g < end``; the first acting one (``k = g − begin = 0``) ignores ``v``.
Otherwise, with ``better(v) = v < best·(1 − threshold)`` (min, rel),
``v < best − threshold`` (min, abs), ``v > best·(1 + threshold)`` (max, rel) or
``v > best + threshold`` (max, abs) — NaN is never better::

    if better(v): best, num_bad = v, 0      else: num_bad += 1
    if cooldown_counter > 0: cooldown_counter -= 1; num_bad = 0
    if num_bad > patience: cooldown_counter, num_bad = cooldown, 0; reduce every group

A group with lr ``x`` is reduced iff ``x − x·factor > eps``; then its factor
``F ← F·factor`` (``group["lr_factor"]``, honoured by every later schedule write) and
``x ← max(x·factor, min_lr)`` — or ``max(scheduled_lr·F, min_lr)`` once a schedule
component has written the group. From its first reduction on, a group's lr is floored
at ``min_lr`` before every iteration.
"""
from __future__ import annotations

import math
from typing import Any
from collections.abc import Mapping

import torch

from ..core.checks import boolean, check_choice, every_n, integer, number
from ..core.events import Priority
from .updater import LR_FACTOR, SCHEDULED_LR

MODES = ("min", "max")
THRESHOLD_MODES = ("rel", "abs")


class PlateauRule:
    """The decision shared by mmagic's ``ReduceLR`` (here and in an mmengine list) and mmengine's
    ``ReduceOnPlateauLR`` / ``ReduceOnPlateauMomentum`` / ``ReduceOnPlateauParamScheduler``.

    ``better(v)``: ``v < best·(1 − threshold)`` (min, rel), ``v < best − threshold`` (min, abs),
    ``v > best·(1 + threshold)`` (max, rel) or ``v > best + threshold`` (max, abs); NaN is never
    better. :meth:`update` takes one value::

        if better(v): best, num_bad = v, 0      else: num_bad += 1
        if cooldown_counter > 0: cooldown_counter -= 1; num_bad = 0
        if num_bad > patience: cooldown_counter, num_bad = cooldown, 0; return True (reduce)

    ``best`` starts at ``worse``: ±inf in mmagic, ±``int(1e9)`` in mmengine.
    """

    def __init__(self, mode: str, threshold: float, threshold_mode: str, patience: int, cooldown: int,
                 worse: float | None = None):
        self.mode, self.threshold, self.threshold_mode = mode, threshold, threshold_mode
        self.patience, self.cooldown = patience, cooldown
        self.worse = (math.inf if mode == "min" else -math.inf) if worse is None else worse
        self.reset()

    def reset(self) -> None:
        self.best = self.worse
        self.num_bad = 0
        self.cooldown_counter = 0

    def is_better(self, value: float) -> bool:
        best, t = self.best, self.threshold
        if self.mode == "min":
            return value < (best * (1.0 - t) if self.threshold_mode == "rel" else best - t)
        return value > (best * (1.0 + t) if self.threshold_mode == "rel" else best + t)

    def update(self, value: float) -> bool:
        """Take ``value``; True when it triggers a reduction (the counters are then reset)."""
        if self.is_better(value):
            self.best, self.num_bad = value, 0
        else:
            self.num_bad += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad = 0
        if self.num_bad > self.patience:
            self.cooldown_counter, self.num_bad = self.cooldown, 0
            return True
        return False

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "num_bad": self.num_bad, "cooldown_counter": self.cooldown_counter}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.num_bad, self.cooldown_counter = state["best"], state["num_bad"], state["cooldown_counter"]


class MeanAcrossRanks:
    """The mean of a monitored quantity since the last :meth:`take`, averaged across processes:
    each process's ``sum / count`` is gathered; the value is that mean when every process
    agrees (bit for bit), else the plain mean of the processes' means (NaN if any is NaN).
    On one process nothing is exchanged and ``take()`` is ``sum / count``."""

    def __init__(self) -> None:
        self._acc: Any = None
        self._sum = torch.zeros((), dtype=torch.float64)
        self.count = 0

    def bind(self, accelerator: Any) -> None:
        self._acc = accelerator
        self._sum = torch.zeros((), dtype=torch.float64, device=accelerator.device)
        self.count = 0

    def add(self, value: Any) -> None:
        """``value``: a float or a (0-d) tensor (added on its device, no host sync)."""
        self._sum += value.detach() if isinstance(value, torch.Tensor) else value
        self.count += 1

    def take(self) -> float:
        mean = (self._sum / self.count).reshape(1)
        means = (self._acc.gather(mean) if self._world() > 1 else mean).tolist()
        self._sum.zero_()
        self.count = 0
        return means[0] if all(m == means[0] for m in means) else sum(means) / len(means)

    def _world(self) -> int:
        return self._acc.num_processes if self._acc is not None else 1

    def state_dict(self) -> dict[str, Any]:
        """The pending sums, one per process (gathered: every rank must call it, as the Runner does)."""
        pending = self._sum.reshape(1)
        if self._world() > 1:
            pending = self._acc.gather(pending)
        return {"pending_sums": pending.tolist(), "pending_count": self.count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        sums = state["pending_sums"]
        rank = self._acc.process_index if self._acc is not None else 0
        self._sum.fill_(sums[rank] if len(sums) == self._world() else sum(sums) / len(sums))
        self.count = state["pending_count"]


class ReduceLR:
    """mmagic's ``ReduceLR`` (``mode``, ``factor``, ``patience``, ``threshold``,
    ``threshold_mode``, ``cooldown``, ``min_lr``, ``eps``; mmengine's ``begin``, ``end``,
    ``by_epoch``) with its ``ReduceLRSchedulerHook`` (``val_metric``, ``by_epoch``,
    ``interval``). ``end`` defaults to ``max_epochs`` (``by_epoch``) or ``max_iters``,
    counted in checks, as mmengine's Runner fills it in. The decision is :class:`PlateauRule`,
    the monitored mean :class:`MeanAcrossRanks` (both shared with the mmengine list's
    plateau members, :mod:`trainkit.schedules.mmengine`).
    """

    priority = {"before_run": Priority.LOW, "after_iter": Priority.LOW, "after_epoch": Priority.LOW,
                "after_val": Priority.LOW, "before_iter": Priority.VERY_LOW}
    writes_param_groups = True
    needs_metrics = True   # its writes depend on validation metrics (not in a run's planned schedule)

    def __init__(self, mode: str = "min", factor: float = 0.1, patience: int = 10, threshold: float = 1e-4,
                 threshold_mode: str = "rel", cooldown: int = 0, min_lr: float = 0.0, eps: float = 1e-8,
                 begin: int = 0, end: int | None = None, by_epoch: bool = True,
                 val_metric: str | None = None, interval: int = 1):
        check_choice("mode", mode, MODES)
        check_choice("threshold_mode", threshold_mode, THRESHOLD_MODES)
        self.mode, self.threshold_mode = mode, threshold_mode
        self.factor = number("factor", factor, low=0.0, high=1.0, high_open=True)
        self.patience = integer("patience", patience, 0)
        self.cooldown = integer("cooldown", cooldown, 0)
        self.threshold = number("threshold", threshold)
        self.min_lr = number("min_lr", min_lr, low=0.0)     # one number for every group, as in mmagic
        self.eps = number("eps", eps, low=0.0)
        self.begin = integer("begin", begin, 0)
        self.end = None if end is None else integer("end", end, self.begin + 1)
        self.by_epoch = boolean("by_epoch", by_epoch)
        if val_metric is not None and (not isinstance(val_metric, str) or not val_metric):
            raise ValueError(f"val_metric must be a metric name (e.g. 'val/psnr') or null, got {val_metric!r}")
        self.val_metric = val_metric
        self.interval = integer("interval", interval, 1)
        self.rule = PlateauRule(mode, self.threshold, threshold_mode, self.patience, self.cooldown)
        self.mean = MeanAcrossRanks()
        self._end = 0
        self._names: list[str] = []
        self._floored: list[int] = []
        self._reset(0)

    # the decision state, as attributes (logged, checkpointed, read by tests)
    best = property(lambda self: self.rule.best)
    num_bad = property(lambda self: self.rule.num_bad)
    cooldown_counter = property(lambda self: self.rule.cooldown_counter)

    def _reset(self, n_groups: int) -> None:
        self.step_count = -1          # mmengine's _global_step: checks taken, construction = 0
        self.last_step = -1           # checks taken inside [begin, end)
        self.rule.reset()
        self.reductions = 0
        self.factors = [1.0] * n_groups
        self.value = math.nan         # the mean consumed (or ignored) by the last check

    # ------------------------------------------------------------ events
    def before_run(self, runner) -> None:
        if self.val_metric is not None and runner.evaluator is None:
            raise ValueError(f"ReduceLR monitors val_metric={self.val_metric!r} but the run has no "
                             "evaluator (in a schedule preview: give a metric_trace)")
        if self.val_metric is None and runner.dry_run:
            raise ValueError("ReduceLR monitors the training loss (val_metric=null), which a schedule preview "
                             "does not produce; preview it with val_metric set and a metric_trace")
        end = self.end
        if end is None:
            end = runner.max_epochs if self.by_epoch else runner.max_iters
            if end <= self.begin:
                raise ValueError(f"begin={self.begin} is not before end={end} (end defaults to the run's "
                                 f"{'max_epochs' if self.by_epoch else 'max_iters'})")
        self._end, self._names = end, list(runner.group_names)
        self.mean.bind(runner.accelerator)
        self._floored = []
        self._reset(len(runner.optimizer.param_groups))
        self._step(runner.optimizer.param_groups, math.nan)   # mmengine's step at construction

    def after_iter(self, runner) -> None:
        if self.val_metric is not None:
            return
        self.mean.add(runner.outputs["loss"])
        if not self.by_epoch and every_n(runner.iter, self.interval):
            self._check(runner)

    def after_epoch(self, runner) -> None:
        if self.val_metric is None and self.by_epoch and every_n(runner.epoch, self.interval):
            self._check(runner)

    def after_val(self, runner) -> None:
        if self.val_metric is None:
            return
        self.mean.add(metric_value(runner.metrics, self.val_metric, "ReduceLR: val_metric"))
        if not self.by_epoch or every_n(runner.epoch, self.interval):
            self._check(runner)

    def before_iter(self, runner) -> None:
        """``lr = max(lr, min_lr)`` for every group reduced so far (after the schedule's write)."""
        if self._floored:
            groups = runner.optimizer.param_groups
            for i in self._floored:
                if groups[i]["lr"] < self.min_lr:
                    groups[i]["lr"] = self.min_lr

    # ----------------------------------------------------------- logic
    def _check(self, runner) -> None:
        """Consume the mean since the last check (across processes, :class:`MeanAcrossRanks`)."""
        self.value = self.mean.take()
        self._step(runner.optimizer.param_groups, self.value)
        runner.scalars.update(self.scalars())

    def _step(self, groups: list[dict], value: float) -> None:
        self.step_count += 1
        if not self.begin <= self.step_count < self._end:
            return
        self.last_step += 1
        if self.last_step == 0:
            return
        if self.rule.update(value):
            self._reduce(groups)

    def is_better(self, value: float) -> bool:
        return self.rule.is_better(value)

    def _reduce(self, groups: list[dict]) -> None:
        self.reductions += 1
        f = self.factor
        for i, g in enumerate(groups):
            lr = g["lr"]
            if lr - lr * f <= self.eps:
                continue
            self.factors[i] *= f
            g[LR_FACTOR] = g.get(LR_FACTOR, 1.0) * f
            new = g[SCHEDULED_LR] * g[LR_FACTOR] if SCHEDULED_LR in g else lr * f
            g["lr"] = max(new, self.min_lr)
        self._update_floored()

    def _update_floored(self) -> None:
        self._floored = [i for i, x in enumerate(self.factors) if x < 1.0] if self.min_lr > 0 else []

    def scalars(self) -> dict[str, float]:
        """The state as logged after a check: ``plateau/value`` (the mean just consumed or
        ignored), ``best``, ``num_bad``, ``cooldown``, ``reductions``, ``factor/<group>``."""
        row = {"plateau/value": self.value, "plateau/best": self.best, "plateau/num_bad": self.num_bad,
               "plateau/cooldown": self.cooldown_counter, "plateau/reductions": self.reductions}
        row.update({f"plateau/factor/{n}": x for n, x in zip(self._names, self.factors, strict=True)})
        return row

    # ------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        """The decision state and the sums pending since the last check, one per process
        (gathered: under several processes every rank must call it, as the Runner does)."""
        return {"step_count": self.step_count, "last_step": self.last_step, **self.rule.state_dict(),
                "reductions": self.reductions, "value": self.value, "factors": list(self.factors),
                **self.mean.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key in ("step_count", "last_step", "reductions", "value"):
            setattr(self, key, state[key])
        self.rule.load_state_dict(state)
        self.factors = list(state["factors"])
        self.mean.load_state_dict(state)
        self._update_floored()


def metric_value(metrics: Mapping[str, float], name: str, who: str) -> float:
    """``metrics[name]``; a ``ValueError`` naming ``who`` and listing the metrics that exist."""
    if name not in metrics:
        raise ValueError(f"{who}={name!r} is not among the validation metrics; "
                         f"available: {', '.join(sorted(metrics)) or '(none)'}")
    return metrics[name]
