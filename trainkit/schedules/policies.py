"""Schedule policies: pure functions from progress to one value per param group.

A policy is configured (and validated) once, then bound to a run:
``values = policy.bind(bases, total)`` does every per-run computation and returns
``values(progress) -> list[float]`` (one value per group, in group order; callers
must not mutate the list). ``bases`` are the groups' base values (their initial lr
or momentum), ``total`` is the run length in the policy's unit (``max_epochs`` when
it counts epochs, else ``max_iters``). Nothing here touches an optimizer, so a
policy can be evaluated, tested and plotted without training.

The formulas are those of mmcv 1.x's ``lr_updater.py`` / ``momentum_updater.py``
and mmtrack's ``sot_lr_updater.py``, evaluated with Python floats in the same
operation order, so the values are bit-identical to the reference's.
"""
from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Mapping
from typing import Any
from collections.abc import Callable

import numpy as np

from ..core.checks import as_list, boolean, check_choice, is_int, is_number, number, positive_int

Values = Callable[[int], list[float]]
WARMUPS = ("constant", "linear", "exp")
ANNEALS = ("cos", "linear")


# ----------------------------------------------------------------- formulas
def annealing_cos(start: float, end: float, factor: float, weight: float = 1.0) -> float:
    """``end + ½·weight·(start − end)·(1 + cos(π·factor))``: ``weight·start + (1−weight)·end`` at 0, ``end`` at 1."""
    return end + 0.5 * weight * (start - end) * (math.cos(math.pi * factor) + 1)


def annealing_linear(start: float, end: float, factor: float) -> float:
    """``start + (end − start)·factor``."""
    return start + (end - start) * factor


def warmup_factor(kind: str, cur: int, length: int, ratio: float) -> float:
    """The warmup multiplier at iteration ``cur`` of ``length`` (lr × f, momentum ÷ f):
    constant ``ratio``; linear ``1 − (1 − cur/length)(1 − ratio)``; exp ``ratio**(1 − cur/length)``.
    All three give ``ratio`` at ``cur = 0``."""
    if kind == "constant":
        return ratio
    if kind == "linear":
        return 1 - (1 - cur / length) * (1 - ratio)
    return ratio ** (1 - cur / length)


ANNEAL_FUNCS = {"cos": annealing_cos, "linear": annealing_linear}


# --------------------------------------------------------------- validation
_is_number, _is_int, _seq = is_number, is_int, as_list


def _target_spec(key: str, value: Any, ratio: Any) -> tuple[float | None, float | None]:
    """Exactly one of ``min_<x>`` (absolute target) and ``min_<x>_ratio`` (× base)."""
    if (value is None) == (ratio is None):
        raise ValueError(f"give exactly one of {key} and {key}_ratio, got {key}={value!r}, "
                         f"{key}_ratio={ratio!r}")
    if value is not None:
        number(key, value, low=0.0)
    else:
        number(f"{key}_ratio", ratio, low=0.0)
    return value, ratio


def _targets(bases: list[float], value: float | None, ratio: float | None) -> list[float]:
    return [b * ratio for b in bases] if ratio is not None else [value] * len(bases)


def number_or_list(key: str, value: Any) -> Any:
    """``value`` checked to be a number >= 0 or a list of such numbers (one per param group)."""
    if _is_number(value) and value >= 0:
        return value
    seq = _seq(value)
    if seq is None or not seq or not all(_is_number(v) and v >= 0 for v in seq):
        raise ValueError(f"{key} must be a number or a list of numbers (one per param group), each >= 0, "
                         f"got {value!r}")
    return seq


def per_group(key: str, value: Any, n: int) -> list[float]:
    """A number for every group, or one number per group."""
    seq = number_or_list(key, value)
    if _is_number(seq):
        return [seq] * n
    if len(seq) != n:
        raise ValueError(f"{key} has {len(seq)} values but the optimizer has {n} param groups")
    return seq


# ----------------------------------------------------------------- policies
class Fixed:
    """``value = base``."""

    def bind(self, bases: list[float], total: int) -> Values:
        return lambda p: bases


class Step:
    """``value = max(base · gamma**k, floor)``; ``k = progress // step`` for an int ``step``,
    else the number of milestones ``<= progress`` (the decay applies *at* the milestone).
    ``floor`` (``min_lr`` / ``min_momentum``) is absolute, the same for every group."""

    def __init__(self, step: Any, gamma: float, floor: float | None, floor_key: str):
        milestones = _seq(step)
        if milestones is not None:
            if not milestones or not all(_is_int(s) and s > 0 for s in milestones):
                raise ValueError(f"step must be a positive integer or a list of positive integers, got {step!r}")
            if any(b <= a for a, b in itertools.pairwise(milestones)):
                raise ValueError(f"step={milestones} must be strictly increasing")
            self.step: Any = [int(s) for s in milestones]
        else:
            self.step = positive_int("step", step)
        self.gamma = number("gamma", gamma, low=0.0)          # a negative gamma flips the lr's sign
        self.floor = None if floor is None else number(floor_key, floor, low=0.0)

    def bind(self, bases: list[float], total: int) -> Values:
        gamma, floor, rows = self.gamma, self.floor, {}

        def row(k: int) -> list[float]:   # the values after k decays, computed once
            if k not in rows:
                scale = gamma ** k
                vals = [b * scale for b in bases]
                rows[k] = vals if floor is None else [max(v, floor) for v in vals]
            return rows[k]
        if isinstance(self.step, list):
            milestones = self.step
            return lambda p: row(bisect.bisect_right(milestones, p))
        step = self.step
        return lambda p: row(p // step)


class Exp:
    """``value = base · gamma**progress``."""

    def __init__(self, gamma: float):
        self.gamma = number("gamma", gamma, low=0.0)          # a negative gamma flips the sign every step

    def bind(self, bases: list[float], total: int) -> Values:
        gamma = self.gamma
        return lambda p: [b * gamma ** p for b in bases]


class Poly:
    """``value = (base − min_lr)·(1 − progress/total)**power + min_lr``."""

    def __init__(self, power: float, min_lr: float):
        self.power, self.min_lr = number("power", power, low=0.0), number("min_lr", min_lr, low=0.0)

    def bind(self, bases: list[float], total: int) -> Values:
        power, m = self.power, self.min_lr
        spans = [b - m for b in bases]

        def values(p: int) -> list[float]:
            coeff = (1 - p / total) ** power
            return [s * coeff + m for s in spans]
        return values


class Inv:
    """``value = base · (1 + gamma·progress)**(−power)``."""

    def __init__(self, gamma: float, power: float):
        self.gamma, self.power = number("gamma", gamma, low=0.0), number("power", power, low=0.0)

    def bind(self, bases: list[float], total: int) -> Values:
        gamma, power = self.gamma, self.power

        def values(p: int) -> list[float]:
            scale = (1 + gamma * p) ** (-power)
            return [b * scale for b in bases]
        return values


class CosineAnnealing:
    """``value = annealing_cos(base, target, progress/total)``; ``target = min`` or ``base · min_ratio``."""

    def __init__(self, min_value: float | None, min_ratio: float | None, key: str):
        self.min_value, self.min_ratio = _target_spec(key, min_value, min_ratio)

    def bind(self, bases: list[float], total: int) -> Values:
        targets = _targets(bases, self.min_value, self.min_ratio)
        halves = [0.5 * 1.0 * (b - t) for b, t in zip(bases, targets, strict=True)]
        pairs = list(zip(targets, halves, strict=True))

        def values(p: int) -> list[float]:
            c = math.cos(math.pi * (p / total)) + 1
            return [t + h * c for t, h in pairs]
        return values


class LinearAnnealing:
    """``value = base + (target − base)·progress/total``; ``target = min`` or ``base · min_ratio``."""

    def __init__(self, min_value: float | None, min_ratio: float | None, key: str):
        self.min_value, self.min_ratio = _target_spec(key, min_value, min_ratio)

    def bind(self, bases: list[float], total: int) -> Values:
        targets = _targets(bases, self.min_value, self.min_ratio)
        pairs = [(b, t - b) for b, t in zip(bases, targets, strict=True)]

        def values(p: int) -> list[float]:
            f = p / total
            return [b + d * f for b, d in pairs]
        return values


class FlatCosineAnnealing:
    """``base`` until ``start = round(total · start_percent)`` (Python's round: half to even),
    then ``annealing_cos(base, target, (progress − start)/(total − start))``."""

    def __init__(self, start_percent: float, min_lr: float | None, min_lr_ratio: float | None):
        self.start_percent = number("start_percent", start_percent, low=0.0, high=1.0)
        self.min_lr, self.min_lr_ratio = _target_spec("min_lr", min_lr, min_lr_ratio)

    def bind(self, bases: list[float], total: int) -> Values:
        start = round(total * float(self.start_percent))
        span = total - start
        targets = _targets(bases, self.min_lr, self.min_lr_ratio)

        def values(p: int) -> list[float]:
            q = p - start
            if q < 0:
                return bases
            return [annealing_cos(b, t, q / span) for b, t in zip(bases, targets, strict=True)]
        return values


class CosineRestart:
    """Cosine cycles of ``periods[i]`` steps; cycle ``i`` restarts at ``t + w_i·(base − t)``:
    ``annealing_cos(base, t, min((progress − cycle_start)/period, 1), w_i)``."""

    def __init__(self, periods: Any, restart_weights: Any, min_lr: float | None,
                 min_lr_ratio: float | None):
        seq = _seq(periods)
        if not seq or not all(_is_int(x) and x > 0 for x in seq):
            raise ValueError(f"periods must be a non-empty list of positive integers, got {periods!r}")
        self.periods = [int(x) for x in seq]
        weights = [1.0] * len(seq) if restart_weights is None else _seq(restart_weights)
        if weights is None or not all(_is_number(w) and w >= 0 for w in weights):
            raise ValueError(f"restart_weights must be a list of numbers >= 0, got {restart_weights!r}")
        if len(weights) != len(self.periods):
            raise ValueError(f"restart_weights has {len(weights)} values but periods has "
                             f"{len(self.periods)}; give one weight per period")
        self.weights = weights
        self.min_lr, self.min_lr_ratio = _target_spec("min_lr", min_lr, min_lr_ratio)
        self.ends = [sum(self.periods[:i + 1]) for i in range(len(self.periods))]

    def bind(self, bases: list[float], total: int) -> Values:
        if self.ends[-1] < total:
            raise ValueError(f"periods={self.periods} cover {self.ends[-1]} steps but the run has "
                             f"{total}; sum(periods) must be >= {total}")
        targets = _targets(bases, self.min_lr, self.min_lr_ratio)
        pairs = list(zip(bases, targets, strict=True))
        ends, periods, weights = self.ends, self.periods, self.weights

        def values(p: int) -> list[float]:
            i = bisect.bisect_right(ends, p)
            alpha = min((p - (ends[i - 1] if i else 0)) / periods[i], 1)
            return [annealing_cos(b, t, alpha, weights[i]) for b, t in pairs]
        return values


def _target_ratio(value: Any) -> tuple[float, float]:
    """A number ``r`` means ``(r, r / 1e5)``; else a pair ``(r0, r1)`` (or ``(r0,)``)."""
    if _is_number(value) and value >= 0:
        return value, value / 1e5
    seq = _seq(value)
    if seq is None or not 1 <= len(seq) <= 2 or not all(_is_number(x) and x >= 0 for x in seq):
        raise ValueError(f"target_ratio must be a number or a list of two numbers, each >= 0, got {value!r}")
    return (seq[0], seq[0] / 1e5) if len(seq) == 1 else (seq[0], seq[1])


class Cyclic:
    """Cycles of ``C = max_iters // cyclic_times`` iterations: base → base·r0 over the first
    ``U = int(step_ratio_up · C)`` iterations, then base·r0 → base·r1. Cycle ``k`` scales the
    ratio that is not base-anchored by ``s = gamma**k``: ``r ↦ 1 − s + r·s``."""

    by_epoch_only = False

    def __init__(self, target_ratio: Any, cyclic_times: int, step_ratio_up: float,
                 anneal_strategy: str, gamma: float):
        self.ratios = _target_ratio(target_ratio)
        self.cyclic_times = positive_int("cyclic_times", cyclic_times)
        self.step_ratio_up = number("step_ratio_up", step_ratio_up, low=0.0, high=1.0, high_open=True)
        check_choice("anneal_strategy", anneal_strategy, ANNEALS)
        self.anneal = ANNEAL_FUNCS[anneal_strategy]
        self.gamma = number("gamma", gamma, low=0.0, high=1.0, low_open=True)

    def bind(self, bases: list[float], total: int) -> Values:
        cycle = total // self.cyclic_times
        if cycle < 1:
            raise ValueError(f"cyclic_times={self.cyclic_times} is larger than the run's "
                             f"{total} iterations (a cycle needs at least one iteration)")
        up = int(self.step_ratio_up * cycle)
        r0, r1 = self.ratios
        gamma, anneal = self.gamma, self.anneal

        def values(i: int) -> list[float]:
            c = i % cycle
            scale = gamma ** (i // cycle)
            if c < up:                      # rising phase [0, up): its end ratio is scaled
                lo, hi, start, length = 1, 1 - scale + r0 * scale, 0, up
            elif up == 0:                   # no rising phase: the falling one starts at 0
                lo, hi, start, length = r0, 1 - scale + r1 * scale, 0, cycle
            else:                           # falling phase [up, cycle): its start ratio is scaled
                lo, hi, start, length = 1 - scale + r0 * scale, r1, up, cycle - up
            f = (c - start) / length
            return [anneal(b * lo, b * hi, f) for b in bases]
        return values


def _unit_float(key: str, value: Any) -> float:
    return float(number(key, value, low=0.0, high=1.0))


def _one_cycle_ends(pct: float, steps: int, three_phase: bool) -> list[float]:
    if three_phase:
        return [float(pct * steps) - 1, float(2 * pct * steps) - 2, steps - 1]
    return [float(pct * steps) - 1, steps - 1]


def _check_first_phase(ends: list[float], key: str, pct: float, steps: int) -> None:
    if ends[0] == 0:   # iteration 0 would divide by the zero-length first phase
        raise ValueError(f"pct_start={pct} × {key}={steps} = 1 gives a first phase of zero "
                         "iterations; change pct_start")


class OneCycle:
    """1cycle (the same curve as ``torch.optim.lr_scheduler.OneCycleLR``): the base is
    ``max_lr / div_factor`` (the optimizer's lr is ignored); phases end at iterations
    ``pct·T − 1`` (→ max_lr) and ``T − 1`` (→ base / final_div_factor), with
    ``T = total_steps or max_iters``; three_phase inserts a return to base at ``2·pct·T − 2``.
    Within a phase ``value = anneal(base·m0, base·m1, (i − start)/(end − start))``."""

    by_epoch_only = False

    def __init__(self, max_lr: Any, total_steps: int | None, pct_start: float, anneal_strategy: str,
                 div_factor: float, final_div_factor: float, three_phase: bool):
        self.max_lr = number_or_list("max_lr", max_lr)
        self.total_steps = None if total_steps is None else positive_int("total_steps", total_steps)
        self.pct_start = _unit_float("pct_start", pct_start)
        check_choice("anneal_strategy", anneal_strategy, ANNEALS)
        self.anneal = ANNEAL_FUNCS[anneal_strategy]
        self.div_factor = number("div_factor", div_factor, low=0.0, low_open=True)
        self.final_div_factor = number("final_div_factor", final_div_factor, low=0.0, low_open=True)
        self.three_phase = boolean("three_phase", three_phase)

    def initial_values(self, n: int) -> list[float]:
        """The groups' base lrs: ``max_lr / div_factor``."""
        return [m / self.div_factor for m in per_group("max_lr", self.max_lr, n)]

    def bind(self, bases: list[float], total: int) -> Values:
        steps = self.total_steps or total
        if steps < total:
            raise ValueError(f"total_steps={steps} is less than the run's {total} iterations")
        ends = _one_cycle_ends(self.pct_start, steps, self.three_phase)
        _check_first_phase(ends, "total_steps", self.pct_start, steps)
        div, final = self.div_factor, 1 / self.final_div_factor
        mults = [(1, div), (div, 1), (1, final)] if self.three_phase else [(1, div), (div, final)]
        bases = self.initial_values(len(bases))
        phases, start = [], 0
        for end, (m0, m1) in zip(ends, mults, strict=True):
            phases.append((end, start, end - start, [(b * m0, b * m1) for b in bases]))
            start = end
        anneal = self.anneal

        def values(i: int) -> list[float]:
            for end, start, length, pairs in phases:   # noqa: B007  (the first phase with i <= end; i < steps always)
                if i <= end:
                    break
            f = (i - start) / length
            return [anneal(a, z, f) for a, z in pairs]
        return values


class OneCycleMomentum:
    """Momentum mirror of :class:`OneCycle` over ``T = max_iters``: max → base (at ``pct·T − 1``)
    → max (at ``T − 1``); three_phase: max → base → max (``2·pct·T − 2``) → max. The last phase
    also covers any later iteration. Groups' own momentum is ignored."""

    by_epoch_only = False

    def __init__(self, base_momentum: Any, max_momentum: Any, pct_start: float, anneal_strategy: str,
                 three_phase: bool):
        self.base_momentum = number_or_list("base_momentum", base_momentum)
        self.max_momentum = number_or_list("max_momentum", max_momentum)
        self.pct_start = _unit_float("pct_start", pct_start)
        check_choice("anneal_strategy", anneal_strategy, ANNEALS)
        self.anneal = ANNEAL_FUNCS[anneal_strategy]
        self.three_phase = boolean("three_phase", three_phase)

    def bind(self, bases: list[float], total: int) -> Values:
        n = len(bases)
        lo = per_group("base_momentum", self.base_momentum, n)
        hi = per_group("max_momentum", self.max_momentum, n)
        ends = _one_cycle_ends(self.pct_start, total, self.three_phase)
        _check_first_phase(ends, "max_iters", self.pct_start, total)
        pairs = [list(zip(hi, lo, strict=True)), list(zip(lo, hi, strict=True))]
        if self.three_phase:
            pairs.append(list(zip(hi, hi, strict=True)))
        phases, start = [], 0
        for end, pp in zip(ends, pairs, strict=True):
            phases.append((end, start, end - start, pp))
            start = end
        anneal = self.anneal

        def values(i: int) -> list[float]:
            for end, start, length, pp in phases:      # noqa: B007  (the first phase with i <= end, else the last)
                if i <= end:
                    break
            f = (i - start) / length
            return [anneal(a, z, f) for a, z in pp]
        return values


SEGMENT_TYPES = ("step", "log")
DEFAULT_SIAMESE_SEGMENTS = (
    {"type": "step", "start_lr_factor": 0.2, "end_lr_factor": 1.0, "end_epoch": 5},
    {"type": "log", "start_lr_factor": 1.0, "end_lr_factor": 0.1, "end_epoch": 20},
)


def segment_factors(kind: str, start: float, end: float, epochs: int) -> list[float]:
    """One lr factor per epoch of a segment of ``epochs`` epochs.
    step: geometric ``start · m**k``, ``m = (end/start)**(1/epochs)``, k = 0..epochs−1 (``end`` itself
    is not reached); log: ``epochs`` points log-uniform from ``start`` to ``end``, both included."""
    if kind == "step":
        mult = math.pow(end / start, 1.0 / epochs)
        return [float(x) for x in start * (mult ** np.arange(epochs))]
    return [float(x) for x in np.logspace(math.log10(start), math.log10(end), epochs)]


class Segments:
    """mmtrack's SiameseRPN schedule: ``value = base · factor[epoch]``, the factors being the
    concatenation of ``lr_configs`` segments, each running from the previous ``end_epoch``
    (0 for the first) up to, not including, its own ``end_epoch``."""

    by_epoch_only = True

    def __init__(self, lr_configs: Any):
        segments = _seq(lr_configs)
        if not segments:
            raise ValueError(f"lr_configs must be a non-empty list of segments, got {lr_configs!r}")
        factors: list[float] = []
        start_epoch = 0
        for i, seg in enumerate(segments):
            key = f"lr_configs[{i}]"
            if not isinstance(seg, Mapping):
                raise ValueError(f"{key} must be a mapping with type, start_lr_factor, end_lr_factor, "
                                 f"end_epoch; got {seg!r}")
            seg = dict(seg)
            need = {"type", "start_lr_factor", "end_lr_factor", "end_epoch"}
            if set(seg) != need:
                raise ValueError(f"{key} must have exactly the keys {sorted(need)}; got {sorted(seg)}")
            check_choice(f"{key}.type", seg["type"], SEGMENT_TYPES)
            end_epoch = seg["end_epoch"]
            if not _is_int(end_epoch) or end_epoch <= start_epoch:
                raise ValueError(f"{key}.end_epoch={end_epoch!r} must be an integer greater than the "
                                 f"segment's start epoch {start_epoch}")
            lo, hi = seg["start_lr_factor"], seg["end_lr_factor"]
            number(f"{key}.start_lr_factor", lo, low=0.0, low_open=True)
            number(f"{key}.end_lr_factor", hi, low=0.0, low_open=seg["type"] == "log")
            factors += segment_factors(seg["type"], lo, hi, end_epoch - start_epoch)
            start_epoch = int(end_epoch)
        self.factors = factors

    def bind(self, bases: list[float], total: int) -> Values:
        if total > len(self.factors):
            raise ValueError(f"lr_configs cover epochs 0..{len(self.factors) - 1} but the run has {total} "
                             f"epochs; the last segment's end_epoch must be >= {total}")
        table = [[b * f for b in bases] for f in self.factors[:total]]
        return table.__getitem__
