"""The step rules of mmengine 0.10.x's parameter schedulers, as recurrences.

mmengine has no closed form: every scheduler computes the next value of each param group
from the group's *current* value ``x`` (what the previous steps of every scheduler left),
the group's base value ``b`` (its ``initial_<param>`` when the scheduler was built) and the
scheduler's own step count ``t`` (``last_step``: 0 at its first step inside its window).
Each rule here is that computation, with the same float operations in the same order, so a
replayed schedule is bit-identical to mmengine's (e.g. a 500-iteration ``LinearLR`` warmup to
0.02 ends at 0.019999999999999952). A rule is called as ``rule(t, xs, bases, env)`` with one
``x`` and ``b`` per group and returns the new values; ``env`` carries what two rules read
besides: the groups (``OneCycle`` reads its ``initial_/max_/min_`` keys there), the
progress counters (mmagic's ``LinearLrInterval``) and the monitored mean (mmagic's ``ReduceLR``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


class Env:
    """What a step may read besides the values (one object per component, updated before each step)."""

    __slots__ = ("groups", "iter_index", "epoch_index", "value")

    def __init__(self, groups: list[dict], iter_index: int = -1, epoch_index: int = -1, value: float = math.nan):
        self.groups = groups
        self.iter_index = iter_index     # mmengine's MessageHub 'iter': the last iteration that ran
        self.epoch_index = epoch_index   # MessageHub 'epoch': the last epoch that ran (0 in an iteration-based run)
        self.value = value               # mmagic's MessageHub('reduce_lr') 'value': the mean ReduceLR consumes


@dataclass(frozen=True)
class Step:
    """``x·gamma`` when ``t > 0`` and ``t % step_size == 0``, else ``x``."""

    step_size: float
    gamma: float

    def __call__(self, t: int, xs: list[float], bases: list[float], env: Env) -> list[float]:
        if t == 0 or t % self.step_size != 0:
            return xs
        return [x * self.gamma for x in xs]


@dataclass(frozen=True)
class MultiStep:
    """``x·gamma**count(t)`` when ``t`` is a milestone (mmengine counts them), else ``x``."""

    counts: dict[float, int]
    gamma: float

    def __call__(self, t: int, xs: list[float], bases: list[float], env: Env) -> list[float]:
        if t not in self.counts:
            return xs
        f = self.gamma ** self.counts[t]
        return [x * f for x in xs]


@dataclass(frozen=True)
class Constant:
    """``x·factor`` at ``t = 0``; ``x·(1/factor)`` at ``t = total_iters = end − begin − 1``
    (so the value comes back at the window's last step, not after it); else ``x``."""

    factor: float
    total_iters: int

    def __call__(self, t: int, xs: list[float], bases: list[float], env: Env) -> list[float]:
        if t == 0:
            return [x * self.factor for x in xs]
        if t != self.total_iters:
            return xs
        f = 1.0 / self.factor
        return [x * f for x in xs]


@dataclass(frozen=True)
class Exponential:
    """``x`` at ``t = 0``, then ``x·gamma`` every step."""

    gamma: float

    def __call__(self, t: int, xs: list[float], bases: list[float], env: Env) -> list[float]:
        if t == 0:
            return xs
        return [x * self.gamma for x in xs]


@dataclass(frozen=True)
class CosineAnnealing:
    """SGDR's chained cosine, ``η = eta_min`` (or ``b·eta_min_ratio``), ``T = T_max``:
    ``x`` at ``t = 0``; ``x + (b − η)(1 − cos(π/T))/2`` when ``(t − 1 − T) % 2T == 0``;
    else ``(1 + cos(πt/T)) / (1 + cos(π(t − 1)/T))·(x − η) + η``."""

    T_max: float
    eta_min: float | None
    eta_min_ratio: float | None

    def _eta(self, b: float) -> float:
        return self.eta_min if self.eta_min_ratio is None else b * self.eta_min_ratio

    def __call__(self, t: int, xs: list[float], bases: list[float], env: Env) -> list[float]:
        T = self.T_max
        if t == 0:
            return xs
        if (t - 1 - T) % (2 * T) == 0:
            return [x + (b - self._eta(b)) * (1 - math.cos(math.pi / T)) / 2 for x, b in zip(xs, bases, strict=True)]
        r = (1 + math.cos(math.pi * t / T)) / (1 + math.cos(math.pi * (t - 1) / T))
        return [r * (x - self._eta(b)) + self._eta(b) for x, b in zip(xs, bases, strict=True)]


@dataclass(frozen=True)
class Linear:
    """``x·s`` at ``t = 0``, then ``x·(1 + (e − s) / (N·s + (t − 1)(e − s)))`` with ``s, e`` the
    start/end factors and ``N = total_iters = end − begin − 1``: the factor ``e`` is reached at ``t = N``."""

    start_factor: float
    end_factor: float
    total_iters: int

    def __call__(self, t: int, xs: list[float], bases: list[float], env: Env) -> list[float]:
        s, e = self.start_factor, self.end_factor
        if t == 0:
            return [x * s for x in xs]
        f = 1. + (e - s) / (self.total_iters * s + (t - 1) * (e - s))
        return [x * f for x in xs]


@dataclass(frozen=True)
class Poly:
    """``x`` at ``t = 0``, then ``(x − η)(1 − 1/(N − t + 1))**power + η`` (``N = end − begin − 1``:
    ``η = eta_min`` is reached at ``t = N``)."""

    eta_min: float
    power: float
    total_iters: int

    def __call__(self, t: int, xs: list[float], bases: list[float], env: Env) -> list[float]:
        if t == 0:
            return xs
        f = (1 - 1 / (self.total_iters - t + 1)) ** self.power
        return [(x - self.eta_min) * f + self.eta_min for x in xs]


@dataclass(frozen=True)
class Phase:
    end_step: float
    start_key: str
    end_key: str


def anneal_cos(start: float, end: float, pct: float) -> float:
    """``end + (start − end)/2·(cos(π·pct) + 1)``."""
    cos_out = math.cos(math.pi * pct) + 1
    return end + (start - end) / 2.0 * cos_out


def anneal_linear(start: float, end: float, pct: float) -> float:
    """``(end − start)·pct + start``."""
    return (end - start) * pct + start


@dataclass(frozen=True)
class OneCycle:
    """Absolute (not chained): in the phase holding ``t`` (phase ends ``pct_start·total − 1``,
    [``2·pct_start·total − 2``,] ``total − 1``; the last phase takes everything beyond),
    ``anneal(group[start_key], group[end_key], (t − phase_start) / (phase_end − phase_start))``,
    reading the ``initial_/max_/min_<param>`` keys the scheduler wrote into every group."""

    phases: tuple[Phase, ...]
    anneal: Any

    def __call__(self, t: int, xs: list[float], bases: list[float], env: Env) -> list[float]:
        out = []
        last = len(self.phases) - 1
        for g in env.groups:
            start_step = 0
            for i, ph in enumerate(self.phases):
                if t <= ph.end_step or i == last:
                    pct = (t - start_step) / (ph.end_step - start_step)
                    out.append(self.anneal(g[ph.start_key], g[ph.end_key], pct))
                    break
                start_step = ph.end_step
        return out


@dataclass(frozen=True)
class CosineRestart:
    """Cosine periods restarting at ``b·weight_k`` (absolute, at each period's first step) and
    then chained like :class:`CosineAnnealing` within the period (``η`` = ``eta_min`` or
    ``b·eta_min_ratio``); past the last period ``x`` (frozen)."""

    periods: tuple[float, ...]
    restart_weights: tuple[float, ...]
    eta_min: float | None
    eta_min_ratio: float | None

    def __call__(self, t: int, xs: list[float], bases: list[float], env: Env) -> list[float]:
        restart, idx = 0, None
        for i, p in enumerate(self.periods):
            if t < restart + p:
                idx = i
                break
            restart += p
        if idx is None:
            return xs
        P, w, step = self.periods[idx], self.restart_weights[idx], t - restart
        out = []
        for x, b in zip(xs, bases, strict=True):
            eta = self.eta_min if self.eta_min_ratio is None else b * self.eta_min_ratio
            if step == 0:
                out.append(b * w)
            else:
                out.append((1 + math.cos(math.pi * step / P)) / (1 + math.cos(math.pi * (step - 1) / P))
                           * (x - eta) + eta)
        return out


@dataclass(frozen=True)
class LinearInterval:
    """mmagic's ``LinearLrInterval``: ``x·s`` at ``t = 0``, then the absolute value
    ``s + (e − s)·((max(0, p − begin) // interval) / ((end − begin) // interval))`` for every
    group, ``p`` the index of the last iteration (epoch, ``by_epoch``) that ran."""

    start_factor: float
    end_factor: float
    begin: int
    end: int
    interval: int
    by_epoch: bool

    def __call__(self, t: int, xs: list[float], bases: list[float], env: Env) -> list[float]:
        if t == 0:
            return [x * self.start_factor for x in xs]
        p = env.epoch_index if self.by_epoch else env.iter_index
        return [interval_value(self.start_factor, self.end_factor, p, self.begin, self.end, self.interval)] * len(xs)


def interval_value(start: float, end_factor: float, progress: int, begin: int, end: int, interval: int) -> float:
    """``start + (end_factor − start)·((max(0, progress − begin) // interval) / ((end − begin) // interval))``."""
    factor = (max(0, progress - begin) // interval) / ((end - begin) // interval)
    return start + (end_factor - start) * factor
