"""mmagic's ``LinearLrInterval`` (an mmengine ``LinearLR`` with an interval), with mmengine's timing, as
a component of its own. In an mmengine ``param_scheduler`` list (:mod:`trainkit.schedules.mmengine`) the
same type chains with the others; both take the value from
:func:`trainkit.schedules.mmengine.recurrences.interval_value`."""
from __future__ import annotations

from typing import Any

from ..core.checks import boolean, is_int, number, positive_int
from ..core.events import Priority
from .mmengine.recurrences import interval_value
from .updater import write_lrs


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
    writes_param_groups = True

    def __init__(self, start_factor: float = 1.0 / 3, end_factor: float = 1.0, begin: int = 0,
                 end: int | None = None, by_epoch: bool = True, interval: int = 1):
        self.start_factor = number("start_factor", start_factor, low=0.0, high=1.0)
        self.end_factor = number("end_factor", end_factor, low=0.0, high=1.0)
        if not is_int(begin) or begin < 0:
            raise ValueError(f"begin must be a non-negative integer, got {begin!r}")
        self.interval = positive_int("interval", interval)
        self.begin, self.end, self.by_epoch = begin, end, boolean("by_epoch", by_epoch)
        if end is not None:
            self._check_end(end)
        self.base: list[float] = []
        self._end = 0

    def _check_end(self, end: Any, note: str = "") -> None:
        if not is_int(end) or end <= self.begin:
            raise ValueError(f"end must be an integer larger than begin={self.begin}, got end={end!r}{note}")
        if (end - self.begin) // self.interval < 1:
            raise ValueError(f"interval={self.interval} is longer than end - begin = {end - self.begin}{note}")

    def before_run(self, runner) -> None:
        end = self.end
        if end is None:
            end = runner.max_epochs if self.by_epoch else runner.max_iters
            self._check_end(end, " (end defaults to the run's length)")
        self._end = end
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
        lr = interval_value(self.start_factor, self.end_factor, g - 1, self.begin, self._end, self.interval)
        return [lr] * len(self.base)

    def state_dict(self) -> dict[str, Any]:
        return {"base": list(self.base)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.base = list(state["base"])
