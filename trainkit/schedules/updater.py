"""Applying a policy to param groups with mmcv 1.x's timing (``LrUpdaterHook`` /
``MomentumUpdaterHook``): by-epoch or by-iteration updates, and warmup.

One :class:`Updater` drives one value (:data:`LR` or :data:`MOMENTUM`) of every
param group. Its events (``before_run``, ``before_epoch``, ``before_iter``) run at
priority 10 for lr and 30 for momentum, as mmcv registers them, so the value set
before iteration ``i`` is the one ``optimizer.step()`` of iteration ``i`` uses.

* ``before_run``: each group's base is its ``initial_<lr|momentum>``, set from the
  group's current value if absent (a resumed optimizer brings its own back); the
  policy is bound to the run (``max_epochs`` or ``max_iters``).
* ``by_epoch=True``: ``before_epoch`` writes ``regular = policy(epoch)``. During
  warmup (iterations ``0 .. W−1``) ``before_iter`` writes ``warmup(regular, iter)``,
  at ``iter == W`` it writes ``regular`` again, later it writes nothing.
* ``by_epoch=False``: ``before_iter`` writes ``policy(iter)``, warmed up while ``iter < W``.
* warmup: lr × f, momentum ÷ f, with ``f`` from :func:`trainkit.schedules.policies.warmup_factor`;
  ``W = warmup_iters``, or ``warmup_iters × iters_per_epoch`` with ``warmup_by_epoch``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from collections.abc import Callable

from ..core.checks import boolean, check_choice, is_int, number
from ..core.events import Priority
from ..core.groups import get_momentum, set_momentum
from .policies import WARMUPS, warmup_factor

LR_FACTOR = "lr_factor"
SCHEDULED_LR = "scheduled_lr"


def write_lrs(groups: list[dict], values: list[float]) -> None:
    """The one place where trainkit's schedule components write ``group["lr"]``:
    ``lr = value × group.get("lr_factor", 1)``, keeping ``group["scheduled_lr"] = value``.

    ``lr_factor`` is the hook for a component that rescales whatever schedule runs
    (the plateau reducer): it sets ``group["lr_factor"]`` and every later write
    honours it; ``scheduled_lr`` lets it rescale the current value at once
    (``scheduled_lr × lr_factor``). Both live in the param group, so optimizer
    checkpoints keep them.
    """
    for g, v in zip(groups, values, strict=True):
        g[SCHEDULED_LR] = v
        g["lr"] = v * g.get(LR_FACTOR, 1.0)


def write_momentums(groups: list[dict], values: list[float]) -> None:
    """SGD ``momentum`` or Adam ``betas[0]`` of each group."""
    for g, v in zip(groups, values, strict=True):
        set_momentum(g, v)


def _read_momentum(group: dict) -> float:
    m = get_momentum(group)
    if m is None:
        raise ValueError(f"param group {group.get('name', '?')!r} has neither 'momentum' nor 'betas'; "
                         "a momentum updater needs an optimizer with one of them")
    return m


@dataclass(frozen=True)
class Target:
    """The group value an updater drives, and how."""

    name: str
    initial_key: str
    read: Callable[[dict], float]
    write: Callable[[list[dict], list[float]], None]
    warmup_divides: bool        # momentum warmup divides (starts high), lr warmup multiplies
    default_warmup_ratio: float
    priority: int


LR = Target("lr", "initial_lr", lambda g: g["lr"], write_lrs, False, 0.1, Priority.VERY_HIGH)
MOMENTUM = Target("momentum", "initial_momentum", _read_momentum, write_momentums, True, 0.9, Priority.HIGH)


class Updater:
    """A policy applied with mmcv's by-epoch/by-iteration timing and warmup (see module doc).

    ``policy`` may restrict ``by_epoch`` (attribute ``by_epoch_only``: None, True or
    False) and supply its own bases (method ``initial_values(n_groups)``).
    """

    writes_param_groups = True   # previewed by ``python -m trainkit.schedule``

    def __init__(self, policy: Any, target: Target, *, by_epoch: bool = True, warmup: str | None = None,
                 warmup_iters: int = 0, warmup_ratio: float | None = None, warmup_by_epoch: bool = False):
        name = type(self).__name__
        boolean("by_epoch", by_epoch)
        boolean("warmup_by_epoch", warmup_by_epoch)
        required = getattr(policy, "by_epoch_only", None)
        if required is not None and bool(by_epoch) != required:
            raise ValueError(f"{name} supports only by_epoch={required}, got by_epoch={by_epoch!r}")
        if warmup_by_epoch and target is MOMENTUM:
            raise ValueError(f"{name}: warmup_by_epoch is not supported for momentum (as in mmcv); "
                             "give warmup_iters in iterations")
        ratio = target.default_warmup_ratio if warmup_ratio is None else warmup_ratio
        if warmup is not None:
            check_choice("warmup", warmup, WARMUPS)
            if not is_int(warmup_iters) or warmup_iters <= 0:
                raise ValueError(f"warmup_iters must be a positive integer when warmup={warmup!r}, "
                                 f"got {warmup_iters!r}")
            number("warmup_ratio", ratio, low=0.0, high=1.0, low_open=True)
        self.policy, self.target = policy, target
        self.by_epoch, self.warmup = bool(by_epoch), warmup
        self.warmup_iters, self.warmup_ratio, self.warmup_by_epoch = warmup_iters, ratio, bool(warmup_by_epoch)
        self.priority = target.priority
        self.base: list[float] = []
        self._values: Callable[[int], list[float]] = lambda p: []
        self._regular: list[float] = []
        self._total = 0
        self._w = -1                         # warmup length in iterations; -1: no warmup

    # ------------------------------------------------------------ events
    def before_run(self, runner) -> None:
        groups = runner.optimizer.param_groups
        own = getattr(self.policy, "initial_values", None)
        defaults = own(len(groups)) if own is not None else [self.target.read(g) for g in groups]
        key = self.target.initial_key
        for g, d in zip(groups, defaults, strict=True):
            g.setdefault(key, d)
        self.base = [g[key] for g in groups]
        self._total = runner.max_epochs if self.by_epoch else runner.max_iters
        self._bind()
        if self.warmup is not None:
            self._w = self.warmup_iters * (runner.iters_per_epoch if self.warmup_by_epoch else 1)

    def before_epoch(self, runner) -> None:
        if self.by_epoch:
            self._regular = self._values(runner.epoch)
            self.target.write(runner.optimizer.param_groups, self._regular)

    def before_iter(self, runner) -> None:
        i = runner.iter
        if self.by_epoch:
            if i > self._w:
                return
            values = self._regular if i == self._w else self._warm(self._regular, i)
        else:
            values = self._values(i)
            if i < self._w:
                values = self._warm(values, i)
        self.target.write(runner.optimizer.param_groups, values)

    # ------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        return {"base": list(self.base)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restores the bases (called after ``before_run``, so the run is known)."""
        self.base = list(state["base"])
        self._bind()

    # ----------------------------------------------------------- helpers
    def _bind(self) -> None:
        try:
            self._values = self.policy.bind(self.base, self._total)
        except ValueError as e:   # checks that need the run's length
            raise ValueError(f"{type(self).__name__}: {e}") from None

    def _warm(self, values: list[float], i: int) -> list[float]:
        f = warmup_factor(self.warmup, i, self._w, self.warmup_ratio)
        if self.target.warmup_divides:
            return [v / f for v in values]
        return [v * f for v in values]
