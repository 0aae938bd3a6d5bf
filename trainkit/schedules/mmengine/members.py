"""A scheduler of the list, resolved for a run: mmengine's ``_ParamScheduler`` stepping
(``_global_step``, ``last_step``, the ``[begin, end)`` window, the step at construction) around
one recurrence of :mod:`.recurrences`, reading and writing one value of every param group.

:func:`resolve` does what mmengine's Runner and ``build_scheduler_from_cfg`` do before a
scheduler exists: ``end`` filled from ``max_epochs`` (by the config's ``by_epoch``) or
``max_iters``, then ``convert_to_iter_based`` (``begin = int(begin·L)``, ``end = int(end·L)``
and each class's own epoch-valued arguments × L), then the class's derived values
(``total_iters = end − begin − 1``, ``T_max = end − begin``, OneCycle's phases, ...). The checks
that need the run raise here, before the first iteration; what mmengine would silently do
that surprises is warned about (:class:`ScheduleWarning`), once.
"""
from __future__ import annotations

import logging
import math
import warnings
from collections import Counter
from dataclasses import dataclass
from typing import Any
from collections.abc import Callable

from ...core.groups import get_momentum, set_momentum
from ..plateau import MeanAcrossRanks, PlateauRule
from ..updater import SCHEDULED_LR, write_lrs
from . import recurrences as R
from .spec import INF, Hook, Spec

log = logging.getLogger("trainkit")


class ScheduleWarning(UserWarning):
    """mmengine would silently do something surprising with this schedule (see the message)."""


def warn(message: str) -> None:
    warnings.warn(message, ScheduleWarning, stacklevel=3)


# ---------------------------------------------------------------------------- targets
@dataclass(frozen=True)
class Target:
    """The group value a scheduler drives: ``read`` it (``read_all``: every group's), ``write``
    a value per group."""

    key: str
    read: Callable[[dict], float]
    read_all: Callable[[list[dict]], list[float]]
    write: Callable[[list[dict], list[float]], None]
    touches: tuple[str, ...]     # group keys its writes may change (restored on resume)

    @property
    def initial_key(self) -> str:
        return f"initial_{self.key}"


def read_lr(group: dict) -> float:
    """The lr a chained schedule continues from: the value trainkit's schedules last wrote
    (``scheduled_lr``, before a plateau reducer's ``lr_factor``), else the group's lr."""
    return group[SCHEDULED_LR] if SCHEDULED_LR in group else group["lr"]


def _read_lrs(groups: list[dict]) -> list[float]:
    return [g[SCHEDULED_LR] if SCHEDULED_LR in g else g["lr"] for g in groups]


def _write_momentums(groups: list[dict], values: list[float]) -> None:
    for g, v in zip(groups, values, strict=True):
        set_momentum(g, v)


def _key_target(key: str) -> Target:
    def write(groups: list[dict], values: list[float]) -> None:
        for g, v in zip(groups, values, strict=True):
            g[key] = v
    return Target(key, lambda g: g[key], lambda gs: [g[key] for g in gs], write, (key,))


LR = Target("lr", read_lr, _read_lrs, write_lrs, ("lr", SCHEDULED_LR))
MOMENTUM = Target("momentum", get_momentum, lambda gs: [get_momentum(g) for g in gs], _write_momentums,
                  ("momentum", "betas"))


def target_of(spec: Spec, groups: list[dict], names: list[str]) -> Target:
    """``lr``; ``momentum`` (SGD/RMSprop ``momentum`` or Adam ``betas[0]``); or a plain group key."""
    if spec.param == "lr":
        return LR
    if spec.param == "momentum" and not spec.generic:
        missing = [n for g, n in zip(groups, names, strict=True) if get_momentum(g) is None]
        if missing:
            raise spec.error(f"the optimizer has no momentum: param group {missing[0]!r} has neither 'momentum' "
                             "(SGD, RMSprop) nor 'betas' (Adam, AdamW); a momentum scheduler needs one of them")
        return MOMENTUM
    missing = [n for g, n in zip(groups, names, strict=True) if spec.param not in g]
    if missing:
        raise spec.error(f"param_name={spec.param!r}: param group {missing[0]!r} has no {spec.param!r} "
                         f"(its keys: {', '.join(k for k in groups[0] if k != 'params')})")
    return _key_target(spec.param)


# ---------------------------------------------------------------------------- the run
@dataclass(frozen=True)
class Run:
    """What resolving needs to know about the run."""

    iters_per_epoch: int
    max_epochs: int          # of an epoch-based run; 1 in an iteration-based one (mmengine's IterBasedTrainLoop)
    max_iters: int
    iter_based: bool         # trainer.max_iters given: mmengine's IterBasedTrainLoop
    validations: int         # how many times the run validates
    hook: Hook

    def steps(self, by_epoch: bool, rop: bool) -> int:
        """The last ``_global_step`` a scheduler reaches (after the run's last iteration / epoch /
        check; the construction is step 0). ``rop``: mmengine's ReduceOnPlateau, which acts at
        validations (in an iteration-based run with its step count at 0 throughout)."""
        h = self.hook
        if h.mmagic and h.val_metric is not None:
            return self.validations
        if h.mmagic and h.by_epoch != by_epoch:
            return 0
        if by_epoch and self.iter_based and not rop:
            return 0
        total = self.max_epochs if by_epoch else self.max_iters
        return total // h.interval if h.mmagic else total


# ---------------------------------------------------------------------------- members
class Member:
    """One scheduler: its window, counters and recurrence (mmengine's ``step()``)::

        global_step += 1
        if begin <= global_step < end:
            last_step += 1
            every group's value = rule(last_step, current values, base values)

    ``construct`` records ``initial_<param>`` in every group (if absent) as the base values and
    takes the first step (global step 0), as mmengine's constructor does.
    """

    def __init__(self, spec: Spec, target: Target, by_epoch: bool, begin: int, end: int, rule: Any,
                 resolved: dict[str, Any]):
        self.spec, self.target, self.by_epoch, self.begin, self.end = spec, target, by_epoch, begin, end
        self.rule, self.resolved = rule, resolved
        self.global_step, self.last_step = -1, -1
        self.bases: list[float] = []

    @property
    def is_plateau(self) -> bool:
        return False

    def construct(self, groups: list[dict], env: R.Env) -> None:
        key = self.target.initial_key
        for g in groups:
            g.setdefault(key, self.target.read(g))
        self.bases = [g[key] for g in groups]
        self.step(groups, env)

    def step(self, groups: list[dict], env: R.Env) -> None:
        self.global_step = g = self.global_step + 1
        if self.begin <= g < self.end:
            self.last_step = t = self.last_step + 1
            values = self.rule(t, self.target.read_all(groups), self.bases, env)
            self.target.write(groups, values)
            if self.spec.verbose:
                log.info("%s: step %d, %s = %s", self.spec.label, self.last_step, self.target.key,
                         ", ".join(f"{v:.4e}" for v in values))

    def state_dict(self) -> dict[str, Any]:
        return {"global_step": self.global_step, "last_step": self.last_step, "bases": list(self.bases)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.global_step, self.last_step, self.bases = state["global_step"], state["last_step"], list(state["bases"])


class OneCycleMember(Member):
    """OneCycle writes ``initial_lr = eta_max/div_factor``, ``max_lr`` and ``min_lr =
    initial_lr/final_div_factor`` into every group before the base values are taken
    (overwriting ``initial_lr``, as mmengine does)."""

    def construct(self, groups: list[dict], env: R.Env) -> None:
        r = self.resolved
        for g, m in zip(groups, r["max_values"], strict=True):
            g["initial_lr"] = m / r["div_factor"]
            g["max_lr"] = m
            g["min_lr"] = g["initial_lr"] / r["final_div_factor"]
        super().construct(groups, env)


class ReduceLRRule:
    """mmagic's ``ReduceLR._get_value``: at ``t = 0`` the values stay; later the hook's value
    ``v`` goes through :class:`~trainkit.schedules.plateau.PlateauRule`, and at a reduction each
    group with ``x − x·factor > eps`` becomes ``max(x·factor, min_lr)``."""

    def __init__(self, decision: PlateauRule, factor: float, min_lr: float, eps: float):
        self.decision, self.factor, self.min_lr, self.eps = decision, factor, min_lr, eps
        self.reductions = 0

    def __call__(self, t: int, xs: list[float], bases: list[float], env: R.Env) -> list[float]:
        if t == 0 or not self.decision.update(env.value):
            return xs
        self.reductions += 1
        f = self.factor
        return [max(x * f, self.min_lr) if x - x * f > self.eps else x for x in xs]


class ReduceLRMember(Member):
    @property
    def is_plateau(self) -> bool:
        return True

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), **self.rule.decision.state_dict(), "reductions": self.rule.reductions}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.rule.decision.load_state_dict(state)
        self.rule.reductions = state["reductions"]


class PlateauMember(Member):
    """mmengine's ``ReduceOnPlateau*``: no step at construction (``_global_step`` starts at 0);
    ``step()`` after each training epoch only counts; after each validation, inside the window,
    the monitored metric (averaged across processes) goes through
    :class:`~trainkit.schedules.plateau.PlateauRule`; at a reduction each group's value becomes
    ``v = max(x·factor, min_value)``, written only if ``x − v > eps``."""

    def __init__(self, *args: Any, decision: PlateauRule, factor: float, min_values: list[float], eps: float,
                 monitor: str):
        super().__init__(*args)
        self.decision, self.factor, self.min_values, self.eps, self.monitor = decision, factor, min_values, eps, monitor
        self.mean = MeanAcrossRanks()
        self.reductions = 0
        self.value = math.nan

    @property
    def is_plateau(self) -> bool:
        return True

    def construct(self, groups: list[dict], env: R.Env) -> None:
        key = self.target.initial_key
        for g in groups:
            g.setdefault(key, self.target.read(g))
        self.bases = [g[key] for g in groups]
        self.global_step = 0

    def step(self, groups: list[dict], env: R.Env) -> None:
        self.global_step += 1

    def in_window(self) -> bool:
        return self.begin <= self.global_step < self.end

    def step_metric(self, groups: list[dict], value: float) -> None:
        """After a validation: ``value`` is the monitored metric (this process's)."""
        if not self.in_window():
            return
        self.last_step += 1
        self.mean.add(value)
        self.value = self.mean.take()
        if not self.decision.update(self.value):
            return
        self.reductions += 1
        xs = [self.target.read(g) for g in groups]
        new = [max(float(x) * self.factor, m) for x, m in zip(xs, self.min_values, strict=True)]
        self.target.write(groups, [v if x - v > self.eps else x for x, v in zip(xs, new, strict=True)])

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), **self.decision.state_dict(), "reductions": self.reductions,
                "value": self.value}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.decision.load_state_dict(state)
        self.reductions, self.value = state["reductions"], state["value"]


# ---------------------------------------------------------------------------- resolving
def resolve(spec: Spec, run: Run, groups: list[dict], names: list[str]) -> Member:
    """``spec`` for this run: ``end`` filled, converted, derived values, checks (module doc)."""
    target = target_of(spec, groups, names)
    by_epoch, begin, end, a = spec.by_epoch, spec.begin, spec.end, dict(spec.args)
    filled = end is None
    if filled:
        end = run.max_epochs if spec.by_epoch else run.max_iters
        fill = f" (end filled with the run's {'max_epochs' if spec.by_epoch else 'max_iters'}={end})"
        if spec.by_epoch and run.iter_based and (spec.convert or spec.family != "ReduceOnPlateau"):
            warn(f"{spec.label}: end is omitted in an iteration-based run (trainer.max_iters): mmengine's "
                 f"IterBasedTrainLoop fills it with max_epochs=1, so the window is [{begin}, 1) epochs"
                 + (f" = [{int(begin * run.iters_per_epoch)}, {run.iters_per_epoch}) iterations" if spec.convert
                    else ""))
    if spec.convert:
        by_epoch, (begin, end) = False, _convert_window(spec, begin, end, run.iters_per_epoch)
        _convert_args(spec, a, run.iters_per_epoch)
    if not begin < end:
        raise spec.error(f"begin={begin} must be before end={end}{fill if filled else ''}")
    reach = run.steps(by_epoch, spec.family == "ReduceOnPlateau")
    last_t = min(end - 1, reach) - begin     # the last in-window step the run takes (< 0: none)
    _warn_reach(spec, run, by_epoch, begin, end, reach)
    rule, resolved = _rule(spec, a, run, by_epoch, begin, end, last_t, len(groups), groups)
    args = (spec, target, by_epoch, begin, end, rule, resolved)
    if spec.family == "ReduceOnPlateau":
        return PlateauMember(*args, decision=resolved.pop("decision"), factor=a["factor"],
                             min_values=resolved["min_values"], eps=a["eps"], monitor=a["monitor"])
    if spec.family == "ReduceLR":
        return ReduceLRMember(*args)
    if spec.family == "OneCycle":
        return OneCycleMember(*args)
    return Member(*args)


def _convert_window(spec: Spec, begin: float, end: float, L: int) -> tuple[int, int]:
    out = []
    for key, v in (("begin", begin), ("end", end)):
        if key == "end" and v == INF:
            out.append(v)
            continue
        c = int(v * L)
        if c != v * L:
            warn(f"{spec.label}: {key}={v} epochs x {L} iterations per epoch = {v * L} is truncated to {c} "
                 "(mmengine's int())")
        out.append(c)
    return out[0], out[1]


def _convert_args(spec: Spec, a: dict[str, Any], L: int) -> None:
    """Each class's epoch-valued arguments × L (mmengine's ``build_iter_from_epoch``; no int())."""
    f = spec.family
    if f == "Step":
        a["step_size"] = a["step_size"] * L
    elif f == "MultiStep":
        a["milestones"] = [m * L for m in a["milestones"]]
        frac = [m for m in a["milestones"] if m != int(m)]
        if frac:
            warn(f"{spec.label}: milestones x {L} iterations per epoch = {a['milestones']}: {frac} are not whole "
                 "iterations and never apply (mmengine compares them with its integer step count)")
    elif f == "CosineAnnealing" and a["T_max"] is not None:
        a["T_max"] = a["T_max"] * L
    elif f == "OneCycle" and a["total_steps"] is not None:
        a["total_steps"] = a["total_steps"] * L
    elif f == "CosineRestart":
        a["periods"] = [p * L for p in a["periods"]]


def _warn_reach(spec: Spec, run: Run, by_epoch: bool, begin: int, end: int, reach: int) -> None:
    unit = "epoch" if by_epoch else "iteration"
    h = run.hook
    if h.mmagic and h.val_metric is None and h.by_epoch != by_epoch:
        warn(f"{spec.label}: by_epoch={by_epoch} under ReduceLRSchedulerHook(by_epoch={h.by_epoch}, val_metric=None) "
             "is never stepped after its construction (the hook steps only the schedulers of its own by_epoch)")
    elif h.mmagic and h.val_metric is not None and not spec.is_plateau and not by_epoch:
        warn(f"{spec.label}: under ReduceLRSchedulerHook(val_metric={h.val_metric!r}) every scheduler steps once "
             "per check (after validations), not after every iteration: its window counts checks")
    elif by_epoch and run.iter_based and not (h.mmagic and h.val_metric is not None) \
            and spec.family != "ReduceOnPlateau":
        warn(f"{spec.label}: a by-epoch scheduler in an iteration-based run (trainer.max_iters, mmengine's "
             "IterBasedTrainLoop) takes only its step at construction (mmengine steps it once more after the "
             "last iteration); use by_epoch=False or convert_to_iter_based=True")
        return
    if spec.family == "ReduceOnPlateau" and h.mmagic:
        warn(f"{spec.label}: under mmagic's ReduceLRSchedulerHook, ReduceOnPlateau is stepped without metrics "
             "and never reduces; use ReduceLR")
    if begin >= max(reach, 1):
        last = f"check ({reach})" if h.mmagic and h.val_metric is not None else f"{unit} ({reach - 1})"
        warn(f"{spec.label}: its window [{begin}, {end}) starts after the run's last {last}: it never acts")


def _rule(spec: Spec, a: dict[str, Any], run: Run, by_epoch: bool, begin: int, end: int, last_t: int, n: int,
          groups: list[dict]) -> tuple[Any, dict[str, Any]]:
    """The recurrence and the derived values; ``last_t``: the last step the run takes in the window (the one
    after the run's last iteration / epoch included: mmengine takes it too, though nothing uses its value)."""
    f, span = spec.family, end - begin
    last_used = min(last_t, run.steps(by_epoch, f == "ReduceOnPlateau") - 1 - begin)
    if f == "Step":
        if a["step_size"] != int(a["step_size"]):
            warn(f"{spec.label}: step_size={a['step_size']} is not a whole number of steps: the value changes only "
                 "at steps t with t % step_size == 0")
        return R.Step(a["step_size"], a["gamma"]), {"step_size": a["step_size"]}
    if f == "MultiStep":
        return R.MultiStep(dict(Counter(a["milestones"])), a["gamma"]), {"milestones": a["milestones"]}
    if f == "Constant":
        _warn_len1(spec, span, "never restores the value (the factor stays)")
        return R.Constant(a["factor"], span - 1), {"total_iters": span - 1}
    if f == "Exponential":
        return R.Exponential(a["gamma"]), {}
    if f == "CosineAnnealing":
        t_max = a["T_max"] or span
        return R.CosineAnnealing(t_max, 0. if a["eta_min"] is None and a["eta_min_ratio"] is None else a["eta_min"],
                                 a["eta_min_ratio"]), {"T_max": t_max}
    if f == "Linear":
        _warn_len1(spec, span, "never reaches end_factor (the start factor stays)")
        return R.Linear(a["start_factor"], a["end_factor"], span - 1), {"total_iters": span - 1}
    if f == "Poly":
        return R.Poly(a["eta_min"], a["power"], span - 1), {"total_iters": span - 1}
    if f == "OneCycle":
        return _onecycle(spec, a, span, last_t, last_used, n, groups)
    if f == "CosineRestart":
        if last_used >= sum(a["periods"]):
            warn(f"{spec.label}: the periods {a['periods']} cover steps 0..{sum(a['periods']) - 1} of its window, the "
                 f"run uses steps up to {last_used}: from step {sum(a['periods'])} on the value stays where the last "
                 "period left it (mmengine; mmcv would refuse)")
        return R.CosineRestart(tuple(a["periods"]), tuple(a["restart_weights"]), a["eta_min"],
                               a["eta_min_ratio"]), {"periods": a["periods"]}
    if f == "LinearInterval":
        if span // a["interval"] == 0:
            raise spec.error(f"interval={a['interval']} is longer than the window end - begin = {span} "
                             "(mmagic divides by (end - begin) // interval)")
        return R.LinearInterval(a["start_factor"], a["end_factor"], begin, end, a["interval"], by_epoch), {}
    if f == "ReduceLR":
        decision = PlateauRule(a["mode"], a["threshold"], a["threshold_mode"], a["patience"], a["cooldown"])
        return ReduceLRRule(decision, a["factor"], a["min_lr"], a["eps"]), {}
    # ReduceOnPlateau
    mv = a["min_value"]
    if isinstance(mv, list) and len(mv) != n:
        raise spec.error(f"min_value={mv!r} has {len(mv)} values for {n} param groups "
                         "(give one per group, or one number)")
    mode = "min" if a["rule"] == "less" else "max"
    decision = PlateauRule(mode, a["threshold"], a["threshold_rule"], a["patience"], a["cooldown"],
                           worse=INF if mode == "min" else -INF)
    return None, {"decision": decision, "min_values": list(mv) if isinstance(mv, list) else [mv] * n}


def _warn_len1(spec: Spec, span: int, what: str) -> None:
    if span == 1:
        warn(f"{spec.label}: a window of one step (end - begin = 1) {what}, as in mmengine")


def _onecycle(spec: Spec, a: dict[str, Any], span: int, last_t: int, last_used: int, n: int,
              groups: list[dict]) -> tuple[Any, dict[str, Any]]:
    total = a["total_steps"] if a["total_steps"] is not None else span
    if total != int(total) or total <= 0:
        raise spec.error(f"total_steps={total!r} (after conversion) must be a positive integer")
    m = a["eta_max"]
    if isinstance(m, list):
        if len(m) != n and not (n > 1 and len(m) == n + 1):
            raise spec.error(f"eta_max={m!r} has {len(m)} values for {n} param groups (one per group"
                             + (f", or {n + 1}: mmengine counts its OptimWrapper's hidden base group last)" if n > 1
                                else ")"))
        max_values = m[:n]
    else:
        max_values = [m] * n
        if len({g["lr"] for g in groups}) > 1:
            warn(f"{spec.label}: eta_max={m} (one number) gives every param group the same lr, whatever its own "
                 "lr (as in mmengine); give a list to keep them apart")
    pct = a["pct_start"]
    p = "lr"
    if a["three_phase"]:
        phases = (R.Phase(float(pct * total) - 1, f"initial_{p}", f"max_{p}"),
                  R.Phase(float(2 * pct * total) - 2, f"max_{p}", f"initial_{p}"),
                  R.Phase(total - 1, f"initial_{p}", f"min_{p}"))
    else:
        phases = (R.Phase(float(pct * total) - 1, f"initial_{p}", f"max_{p}"),
                  R.Phase(total - 1, f"max_{p}", f"min_{p}"))
    if last_t > total:
        raise spec.error(f"total_steps={total} but the run steps it {last_t + 1} times (steps 0..{last_t} of its "
                         f"window [{spec.begin}, ...)): mmengine raises ValueError 'Tried to step {total + 2} times' "
                         "there; make total_steps cover the window")
    if last_used >= total:
        warn(f"{spec.label}: the run uses step {total} = total_steps, past the cycle's end: mmengine extrapolates "
             "the last phase there (pct > 1)")
    _check_phases(spec, phases, last_t)
    anneal = R.anneal_cos if a["anneal_strategy"] == "cos" else R.anneal_linear
    return R.OneCycle(phases, anneal), {"total_steps": total, "max_values": max_values, "div_factor": a["div_factor"],
                                        "final_div_factor": a["final_div_factor"],
                                        "phases_end_step": [ph.end_step for ph in phases]}


def _check_phases(spec: Spec, phases: tuple[R.Phase, ...], last_t: int) -> None:
    """A phase of zero length that some step lands in divides by zero in mmengine."""
    start = 0
    for i, ph in enumerate(phases):
        lo = 0 if i == 0 else math.floor(start) + 1       # the first integer step landing in this phase
        hi = last_t if i == len(phases) - 1 else min(last_t, math.floor(ph.end_step))
        if lo <= hi and ph.end_step - start == 0:
            raise spec.error(f"pct_start={spec.args['pct_start']} makes phase {i + 1} of the cycle zero steps long "
                             f"(it ends at step {ph.end_step}), which divides by zero at step {lo}")
        start = ph.end_step
