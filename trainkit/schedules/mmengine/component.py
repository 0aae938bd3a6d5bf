"""The component that runs an mmengine ``param_scheduler`` list on trainkit's event bus.

Timing (mmengine 0.10's Runner, ``ParamSchedulerHook`` at priority LOW; trainkit's counters in
brackets, docs/architecture.md):

* ``before_run`` (70): the schedulers are built in list order, each taking its step at
  construction (global step 0) on the values the earlier ones left; the Runner's ``end``
  fill-in and ``convert_to_iter_based`` use this run's ``max_epochs`` / ``max_iters`` and
  iterations per epoch (per process).
* ``after_iter`` (70, after the logger's row): every by-iteration scheduler steps, in list
  order — mmengine's ``after_train_iter``.
* ``after_epoch`` (70): every by-epoch scheduler steps (``ReduceOnPlateau*`` only count) —
  ``after_train_epoch``. In an iteration-based run (``trainer.max_iters``, mmengine's
  ``IterBasedTrainLoop``) by-epoch schedulers take no step after construction.
* ``after_val`` (70): ``ReduceOnPlateau*`` consume the monitored metric — ``after_val_epoch``.

So the value iteration ``i`` uses is the one left by the steps after iteration ``i − 1`` (and
after the epoch before, and its validation). With mmagic's ``ReduceLRSchedulerHook``
(``hook={type: ReduceLRSchedulerHook, ...}``) the hook's rules apply instead: with a
``val_metric`` every scheduler steps once after each check (a validation, every ``interval``
epochs with ``by_epoch``), ``ReduceLR`` consuming the metric's mean since the last check;
without, the mean training loss over ``interval`` iterations (epochs) is consumed and only
the schedulers of the hook's ``by_epoch`` step.
"""
from __future__ import annotations

import math
from typing import Any

from ...core.checks import every_n
from ...core.events import Priority
from ..plateau import MeanAcrossRanks, metric_value
from . import recurrences as R
from .members import Member, PlateauMember, Run, resolve
from .spec import Spec, as_entries, parse, parse_hook


class ParamSchedulerList:
    """An mmengine ``param_scheduler`` list (or one dict), exactly as an OpenMMLab 2.0 config
    writes it: ``type`` as mmengine (or mmagic) spells it, with that class's arguments. See
    :mod:`trainkit.schedules.mmengine` for the types and docs/mmengine_schedules.md for the
    quirks matched. ``hook``: what a config's ``default_hooks.param_scheduler`` says —
    ``None`` / ``{type: ParamSchedulerHook}`` or mmagic's ``{type: ReduceLRSchedulerHook,
    val_metric, by_epoch, interval}`` (required with ``ReduceLR``).
    """

    priority = Priority.LOW
    writes_param_groups = True   # previewed by ``python -m trainkit.schedule``

    def __init__(self, schedulers: Any, hook: Any = None):
        self.specs: list[Spec] = [parse(i, e) for i, e in enumerate(as_entries(schedulers))]
        self.hook = parse_hook(hook)
        reduce_lr = [s for s in self.specs if s.family == "ReduceLR"]
        if reduce_lr and not self.hook.mmagic:
            raise reduce_lr[0].error(
                "ReduceLR is stepped by mmagic's ReduceLRSchedulerHook (mmengine's ParamSchedulerHook fails with "
                "KeyError 'value is not found in Messagehub'): give hook: {type: ReduceLRSchedulerHook, "
                "val_metric: <metric or null for the training loss>, by_epoch: ..., interval: ...}")
        # with mmagic's hook every step waits for a check: nothing to chart before metrics exist
        self.needs_metrics = self.hook.mmagic
        # group keys scheduled besides lr and momentum (the preview adds their columns)
        self.extra_params = tuple(dict.fromkeys(s.param for s in self.specs if s.param not in ("lr", "momentum")))
        self.members: list[Member] = []
        self._by_iter: list[Member] = []
        self.mean = MeanAcrossRanks()           # the mmagic hook's monitored mean
        self._snapshot: list[dict[str, Any]] = []
        self._groups: list[dict] = []
        self._keys: tuple[str, ...] = ()
        self._iter_based = False
        self._env = R.Env([])

    # ------------------------------------------------------------------ setup
    def monitors(self) -> dict[str, str]:
        """``{validation metric: 'min' | 'max'}`` this list consumes (for metric traces)."""
        out = {s.args["monitor"]: "min" if s.args["rule"] == "less" else "max"
               for s in self.specs if s.family == "ReduceOnPlateau"}
        if self.hook.mmagic and self.hook.val_metric is not None:
            modes = [s.args["mode"] for s in self.specs if s.family == "ReduceLR"]
            out[self.hook.val_metric] = modes[0] if modes else "min"
        return out

    def before_run(self, runner) -> None:
        self._check_inputs(runner)
        groups, names = runner.optimizer.param_groups, list(runner.group_names)
        config = getattr(runner, "config", None)
        self._iter_based = getattr(config, "max_iters", None) is not None
        run = Run(runner.iters_per_epoch, 1 if self._iter_based else runner.max_epochs, runner.max_iters,
                  self._iter_based, self._validations(runner), self.hook)
        self.members = [resolve(s, run, groups, names) for s in self.specs]
        self._by_iter = [m for m in self.members if not m.by_epoch]
        keys = {"initial_lr", "max_lr", "min_lr"} if any(s.family == "OneCycle" for s in self.specs) else set()
        for m in self.members:
            keys.update(m.target.touches)
            keys.add(m.target.initial_key)
        self._keys = tuple(sorted(keys))
        self._groups = groups
        self._snapshot = [{k: g[k] for k in self._keys if k in g} for g in groups]
        env = R.Env(groups, -1, -1)
        for m in self.members:
            m.construct(groups, env)
        self.mean.bind(runner.accelerator)
        for m in self.members:
            if isinstance(m, PlateauMember):
                m.mean.bind(runner.accelerator)

    def _check_inputs(self, runner) -> None:
        h, rop = self.hook, [s for s in self.specs if s.family == "ReduceOnPlateau"]
        if h.mmagic and h.val_metric is None and runner.dry_run:
            raise ValueError("param_scheduler: ReduceLRSchedulerHook(val_metric=null) steps on the training loss, "
                             "which a schedule preview does not produce; preview it with a val_metric and a "
                             "metric_trace")
        if runner.evaluator is None and h.mmagic and h.val_metric is not None:
            raise ValueError(f"param_scheduler: ReduceLRSchedulerHook monitors val_metric={h.val_metric!r} but the "
                             "run has no evaluator (in a schedule preview: give a metric_trace)")
        if runner.evaluator is None and rop and not runner.dry_run:
            raise rop[0].error(f"monitor={rop[0].args['monitor']!r} needs validation metrics but the run has no "
                               "evaluator")

    def _validations(self, runner) -> int:
        from ..preview import validations
        if runner.evaluator is None:
            return 0
        return validations(None if self._iter_based else runner.max_epochs, runner.iters_per_epoch,
                           runner.max_iters, runner.val_interval)

    # ----------------------------------------------------------------- events
    def after_iter(self, runner) -> None:
        h, value = self.hook, math.nan
        if h.mmagic:
            if h.val_metric is not None:
                return
            self.mean.add(runner.outputs["loss"])
            if h.by_epoch or not every_n(runner.iter, h.interval):
                return
            value = self.mean.take()
        env = self._env_at(runner, runner.iter, 0 if self._iter_based else runner.epoch, value)
        groups, finished = env.groups, False
        for m in self._by_iter:
            m.step(groups, env)
            finished = finished or m.global_step >= m.end - 1
        if finished:   # past its window a scheduler never writes again: stop stepping it
            self._by_iter = [m for m in self._by_iter if m.global_step < m.end - 1]
        if h.mmagic:
            self._log(runner, value)

    def after_epoch(self, runner) -> None:
        if self._iter_based:
            return     # mmengine's IterBasedTrainLoop: one by-epoch step after the last iteration, used by nothing
        h, value = self.hook, math.nan
        if h.mmagic:
            if h.val_metric is not None or not h.by_epoch or not every_n(runner.epoch, h.interval):
                return
            value = self.mean.take()
        env = self._env_at(runner, runner.iter - 1, runner.epoch, value)
        groups = env.groups
        for m in self.members:
            if m.by_epoch:
                m.step(groups, env)
        if h.mmagic:
            self._log(runner, value)

    def after_val(self, runner) -> None:
        h, groups = self.hook, runner.optimizer.param_groups
        if not h.mmagic:
            for m in self.members:
                if isinstance(m, PlateauMember) and m.in_window():
                    m.step_metric(groups, metric_value(runner.metrics, m.monitor, f"{m.spec.label}: monitor"))
                    self._log(runner, m.value)
            return
        if h.val_metric is None:
            return
        self.mean.add(metric_value(runner.metrics, h.val_metric, "ReduceLRSchedulerHook: val_metric"))
        epoch = 0 if self._iter_based else runner.epoch
        if h.by_epoch and not every_n(epoch, h.interval):
            return
        value = self.mean.take()
        env = self._env_at(runner, runner.iter - 1, 0 if self._iter_based else runner.epoch - 1, value)
        for m in self.members:
            m.step(groups, env)
        self._log(runner, value)

    def _env_at(self, runner, iter_index: int, epoch_index: int, value: float) -> R.Env:
        env = self._env
        env.groups, env.iter_index, env.epoch_index, env.value = (runner.optimizer.param_groups, iter_index,
                                                                   epoch_index, value)
        return env

    # ---------------------------------------------------------------- logging
    def _log(self, runner, value: float) -> None:
        """The plateau members' state into ``runner.scalars`` (``plateau/...``; ``plateau/<i>/...``
        with several)."""
        plateaus = [m for m in self.members if m.is_plateau]
        for m in plateaus:
            pre = "plateau/" if len(plateaus) == 1 else f"plateau/{m.spec.index}/"
            d = m.decision if isinstance(m, PlateauMember) else m.rule.decision
            reductions = m.reductions if isinstance(m, PlateauMember) else m.rule.reductions
            runner.scalars.update({f"{pre}value": value if not isinstance(m, PlateauMember) else m.value,
                                   f"{pre}best": float(d.best), f"{pre}num_bad": d.num_bad,
                                   f"{pre}cooldown": d.cooldown_counter, f"{pre}reductions": reductions})

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """Every scheduler's counters and base values (plateau members: their decision state) and
        the mmagic hook's pending sums. The groups' current values come back with the optimizer.
        (A by-iteration scheduler past its window is no longer stepped, so its counter stops there.)"""
        return {"types": [s.type for s in self.specs], "members": [m.state_dict() for m in self.members],
                "hook_mean": self.mean.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Called after ``before_run``: undoes the construction steps (the groups hold the
        checkpoint's values again) and restores every scheduler's counters."""
        if list(state["types"]) != [s.type for s in self.specs]:
            raise ValueError(f"param_scheduler: the checkpoint's list {state['types']} is not this run's "
                             f"{[s.type for s in self.specs]}")
        self._restore_groups()
        for m, ms in zip(self.members, state["members"], strict=True):
            m.load_state_dict(ms)
        self.mean.load_state_dict(state["hook_mean"])

    def _restore_groups(self) -> None:
        """Every key the schedulers may write, as it was before their construction steps."""
        for g, snap in zip(self._groups, self._snapshot, strict=True):
            for k in self._keys:
                if k in snap:
                    g[k] = snap[k]
                else:
                    g.pop(k, None)


def param_scheduler(schedulers: Any, hook: Any = None) -> ParamSchedulerList:
    """``param_scheduler=[dict(type=..., ...), ...]`` of an OpenMMLab 2.0 config (or one dict),
    as a trainkit component; ``hook``: the config's ``default_hooks.param_scheduler`` when it
    is mmagic's ``ReduceLRSchedulerHook``."""
    return ParamSchedulerList(schedulers, hook)
