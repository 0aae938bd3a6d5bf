"""Optimizers with named param groups.

A param-group constructor turns ``(model, optimizer_factory)`` into an optimizer
whose groups carry a ``name`` (used for ``lr/<name>`` and ``momentum/<name>``).
"""
from __future__ import annotations

from typing import Any
from collections.abc import Callable, Iterable, Mapping

import torch
from torch import nn

from ..core.checks import ConfigError, number

OptimizerFactory = Callable[..., torch.optim.Optimizer]


class NamedGroups:
    """Split a model's parameters into named groups by name prefix.

    ``groups`` maps a group name to ``{prefix: str | list[str], lr_mult: float,
    weight_decay_mult: float}``; the first matching group (in the given order) takes a
    parameter, and every parameter matching none goes to ``default_group``. Frozen
    parameters (``requires_grad=False``) are kept in their group, so unfreezing them
    later trains them with that group's lr. Each group's lr is ``lr * lr_mult``.
    Parameters under an ``exclude`` prefix go into no group: the optimizer never sees
    them (e.g. an EMA target network, which only :class:`trainkit.optim.ema.MomentumEMA` writes).
    """

    def __init__(self, groups: Mapping[str, Mapping[str, Any]] | None = None,
                 default_group: str = "pg0", exclude: str | Iterable[str] | None = None):
        self.groups = {k: dict(v) for k, v in (groups or {}).items()}
        for name, spec in self.groups.items():
            unknown = set(spec) - {"prefix", "lr_mult", "weight_decay_mult"}
            if unknown:
                raise ValueError(f"param group {name!r}: unknown keys {sorted(unknown)}; "
                                 "allowed: prefix, lr_mult, weight_decay_mult")
            if "prefix" not in spec:
                raise ValueError(f"param group {name!r} needs a 'prefix'")
            for mult in ("lr_mult", "weight_decay_mult"):
                if mult in spec:
                    number(f"param_groups.groups.{name}.{mult}", spec[mult], low=0.0)   # < 0 flips the sign
        self.default_group = default_group
        self.exclude = [exclude] if isinstance(exclude, str) else list(exclude or [])

    def __call__(self, model: nn.Module, optimizer: OptimizerFactory) -> torch.optim.Optimizer:
        defaults = _factory_defaults(optimizer)
        base_lr, base_wd = defaults.get("lr"), defaults.get("weight_decay", 0.0)
        buckets: dict[str, list[nn.Parameter]] = {n: [] for n in self.groups}
        buckets.setdefault(self.default_group, [])
        unused = set(self.exclude)
        for pname, p in model.named_parameters():
            hit = [x for x in self.exclude if _matches(pname, x)]
            if hit:
                unused.difference_update(hit)
                continue
            buckets[self._group_of(pname)].append(p)
        if unused:
            raise ValueError(f"param_groups.exclude: {sorted(unused)} match no parameter of the model")
        param_groups = []
        for name, params in buckets.items():
            if not params:
                continue
            spec = self.groups.get(name, {})
            group: dict[str, Any] = {"name": name, "params": params}
            if base_lr is not None:
                group["lr"] = base_lr * spec.get("lr_mult", 1.0)
            if "weight_decay_mult" in spec:
                group["weight_decay"] = base_wd * spec["weight_decay_mult"]
            param_groups.append(group)
        return optimizer(param_groups)

    def _group_of(self, pname: str) -> str:
        for name, spec in self.groups.items():
            prefixes = spec["prefix"]
            prefixes = [prefixes] if isinstance(prefixes, str) else list(prefixes)
            if any(_matches(pname, p) for p in prefixes):
                return name
        return self.default_group


def _matches(pname: str, prefix: str) -> bool:
    """``prefix`` names ``pname`` itself or a module that holds it."""
    return pname == prefix or pname.startswith(prefix.rstrip(".") + ".")


def _factory_defaults(factory: OptimizerFactory) -> dict[str, Any]:
    """The keyword arguments bound in a ``functools.partial`` optimizer factory."""
    return dict(getattr(factory, "keywords", {}) or {})


# hyper-parameters shared by torch's optimizers: (lowest allowed, open) — a negative lr or weight
# decay would flip the update's sign; momentum-like values outside [0, 1] diverge
OPTIMIZER_BOUNDS = {"lr": (0.0, False), "weight_decay": (0.0, False), "eps": (0.0, True),
                    "momentum": (0.0, False), "dampening": (0.0, False), "alpha": (0.0, False)}


def check_optimizer_args(factory: OptimizerFactory, key: str = "optimizer") -> None:
    """The optimizer's keyword arguments (a ``functools.partial``) in range: ``lr`` and
    ``weight_decay`` >= 0, ``eps`` > 0, ``momentum``/``dampening``/``alpha`` in [0, 1], each of
    ``betas`` in [0, 1) — a :class:`ConfigError` naming ``optimizer.<arg>`` instead of torch's
    ``Invalid learning rate``. (Their types are checked from the optimizer's signature when the
    node is built.)"""
    args = _factory_defaults(factory)
    for name, (low, low_open) in OPTIMIZER_BOUNDS.items():
        if name in args and isinstance(args[name], (int, float)):
            high = 1.0 if name in ("momentum", "dampening", "alpha") else None
            number(f"{key}.{name}", args[name], low=low, low_open=low_open, high=high)
    betas = args.get("betas")
    if isinstance(betas, (list, tuple)):
        for i, b in enumerate(betas):
            if isinstance(b, (int, float)) and not 0.0 <= b < 1.0:
                raise ConfigError(f"{key}.betas[{i}]={b!r} is out of range; allowed: [0.0, 1.0)")


def build_optimizer(model: nn.Module, optimizer: OptimizerFactory,
                    constructor: Callable | None = None) -> torch.optim.Optimizer:
    """``constructor(model, optimizer)`` if given, else one group named ``pg0``."""
    check_optimizer_args(optimizer)
    if constructor is not None:
        return constructor(model, optimizer)
    return NamedGroups()(model, optimizer)


def trainable(params: Iterable[nn.Parameter]) -> list[nn.Parameter]:
    return [p for p in params if p.requires_grad]
