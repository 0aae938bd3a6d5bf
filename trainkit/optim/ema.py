"""Momentum EMA of a target network: mmselfsup 0.x ``MomentumUpdateHook`` (BYOL, MoCo v3).

On every iteration ``k`` (0-based ``runner.iter``) with ``(k + 1) % update_interval == 0``::

    m_k    = end - (end - base) * (cos(pi * k / K) + 1) / 2          K = runner.max_iters
    target = m_k * target + (1 - m_k) * online                        (parameters only)

as the reference does it (mmselfsup v0.11.0 ``core/hooks/momentum_update_hook.py`` and
``models/algorithms/byol.py``, on mmcv 1.x's runner):

- ``m_k`` uses the index ``k`` of the update iteration itself, not a count of updates, so
  it never reaches ``end`` (the last update uses ``k = K - 1``). Between updates the
  momentum keeps its last value; before the first update it is ``base``.
- The update runs at ``after_iter`` (priority NORMAL), i.e. after that iteration's
  optimizer step: it averages the *post-step* online weights. The target used in
  iteration ``k``'s forward is the average after iteration ``k - 1``'s update.
- Only parameters are averaged. Buffers (BatchNorm running stats) are not: the target's
  buffers change only through its own forward passes in train mode.
- The target is never given to the optimizer (mmselfsup hands it over with
  ``requires_grad=False``; here :meth:`before_run` refuses an optimizer that holds it).

Speed: at :meth:`before_run` the online and target parameters are moved into one
contiguous buffer each (per device and dtype), and every parameter's ``.data`` is
rebound to its slice. The Parameter objects the optimizer holds stay the same, and so
does every value; the update is then one ``lerp_`` over the flat buffers
(``target + (1 - m) * (online - target)``), a single memory-bound pass. It agrees with
the reference's ``target * m + online * (1 - m)`` to a few float32 ulps, not bit for
bit (see docs/ema.md).
"""
from __future__ import annotations

import logging
import math
from typing import Any

import torch
from torch import nn

from ..core.checks import every_n
from ..core.events import Priority

log = logging.getLogger("trainkit")

LOG_KEY = "momentum/ema"
_ALIGN_BYTES = 64   # every parameter's slice starts on a cache line


def cosine_momentum(k: int, max_iters: int, base: float, end: float) -> float:
    """``end - (end - base) * (cos(pi * k / max_iters) + 1) / 2``."""
    return end - (end - base) * (math.cos(math.pi * k / float(max_iters)) + 1) / 2


class MomentumEMA:
    """Keeps ``model.<target>`` an exponential moving average of ``model.<online>``.

    ``base_momentum=None`` reads ``model.base_momentum`` (where mmselfsup's algorithms
    keep it); a number here takes precedence. The current momentum goes into
    ``runner.scalars["momentum/ema"]`` every iteration. ``state_dict`` holds the
    momentum and the target weights.
    """

    priority = Priority.NORMAL

    def __init__(self, base_momentum: float | None = None, end_momentum: float = 1.0,
                 update_interval: int = 1, online: str = "online_net", target: str = "target_net"):
        if base_momentum is not None:
            base_momentum = _check_momentum("base_momentum", base_momentum)
        end_momentum = _check_momentum("end_momentum", end_momentum)
        if isinstance(update_interval, bool) or not isinstance(update_interval, int) or update_interval < 1:
            raise ValueError(f"MomentumEMA: update_interval={update_interval!r} is not valid; "
                             "allowed: an integer >= 1")
        if online == target:
            raise ValueError(f"MomentumEMA: online and target name the same attribute {online!r}")
        if base_momentum is not None and end_momentum < base_momentum:
            _warn_once(f"MomentumEMA: end_momentum={end_momentum} is below base_momentum={base_momentum}: the "
                       "momentum falls over the run (the target follows the online network ever faster); "
                       "mmselfsup accepts this, BYOL and MoCo v3 raise it towards 1")
        self.base_momentum, self.end_momentum = base_momentum, end_momentum
        self.update_interval, self.online, self.target = update_interval, online, target
        self.momentum = base_momentum
        self._flat: list[tuple[torch.Tensor, torch.Tensor]] = []   # (target, online) per device/dtype
        self._views: list[tuple[torch.Tensor, int]] = []          # (param, expected data_ptr)
        self._pending: dict[str, Any] | None = None
        self._ready = False

    # ------------------------------------------------------------------ events
    def before_run(self, runner) -> None:
        model = _unwrap(runner, self.online)
        online, target = (self._module(model, a) for a in (self.online, self.target))
        if self.base_momentum is None:
            if not hasattr(model, "base_momentum"):
                raise ValueError(f"MomentumEMA: base_momentum is not set and the model "
                                 f"({type(model).__name__}) has no attribute 'base_momentum'; "
                                 "set components.<name>.base_momentum")
            self.base_momentum = _check_momentum("base_momentum (from the model)", model.base_momentum)
            self.momentum = self.base_momentum
        pairs = self._pairs(online, target)
        held = {id(p) for g in runner.optimizer.param_groups for p in g["params"]}
        in_opt = [n for n, (_, t) in pairs.items() if id(t) in held]
        if in_opt:
            raise ValueError(
                f"MomentumEMA: the optimizer holds {len(in_opt)} parameters of model.{self.target} "
                f"(e.g. {self.target}.{in_opt[0]}); only the EMA may write the target. Leave it out: "
                f"param_groups: {{_target_: trainkit.optim.NamedGroups, exclude: [{self.target}]}}")
        if getattr(runner, "grad_accum", 1) > 1 and runner.grad_accum != self.update_interval:
            log.warning("MomentumEMA: update_interval=%d differs from trainer.grad_accum=%d; mmselfsup's "
                        "BYOL configs set them equal so that every EMA update follows an optimizer step",
                        self.update_interval, runner.grad_accum)
        self._flat, self._views = [], []
        if not getattr(runner, "dry_run", False):   # a schedule preview only needs the momentum
            self._flatten(list(pairs.values()))
        self._ready = True
        if self._pending is not None:
            self.load_state_dict(self._pending)

    def before_iter(self, runner) -> None:
        k = runner.iter
        if every_n(k, self.update_interval):
            self.momentum = cosine_momentum(k, runner.max_iters, self.base_momentum, self.end_momentum)
        runner.scalars[LOG_KEY] = self.momentum

    def after_iter(self, runner) -> None:
        if every_n(runner.iter, self.update_interval):
            self.update(self.momentum)

    def update(self, momentum: float) -> None:
        """``target = target + (1 - momentum) * (online - target)``, one pass per flat buffer."""
        w = 1.0 - momentum
        for t, o in self._flat:
            t.lerp_(o, w)

    # ------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """The momentum and the flat target buffers (they share storage with the model's
        target parameters, so a checkpoint stores the target weights once)."""
        self._check_views()
        return {"momentum": self.momentum, "target": [t for t, _ in self._flat]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.momentum = state["momentum"]
        self._pending = None if self._ready else state   # not set up yet: the target waits for before_run
        if not self._flat:
            return
        saved = [(s.numel(), s.dtype) for s in state["target"]]
        mine = [(t.numel(), t.dtype) for t, _ in self._flat]
        if saved != mine:
            raise ValueError(f"MomentumEMA: the checkpoint's target buffers {saved} do not fit this model's {mine}")
        for (t, _), s in zip(self._flat, state["target"], strict=True):
            t.copy_(s)

    # ------------------------------------------------------------ setup
    def _module(self, model: nn.Module, attr: str) -> nn.Module:
        mod = getattr(model, attr, None)
        if not isinstance(mod, nn.Module):
            role = "online" if attr == self.online else "target"
            found = "has no attribute" if mod is None else f"has a {type(mod).__name__}, not an nn.Module, at"
            raise ValueError(f"MomentumEMA: the model ({type(model).__name__}) {found} {attr!r}, which "
                             f"MomentumEMA.{role}={attr!r} names; it needs model.{self.online} (trained) and "
                             f"model.{self.target} (its EMA copy)")
        return mod

    def _pairs(self, online: nn.Module, target: nn.Module) -> dict[str, tuple[nn.Parameter, nn.Parameter]]:
        on, tg = list(online.named_parameters()), list(target.named_parameters())
        if len(on) != len(tg):
            raise ValueError(f"MomentumEMA: model.{self.online} has {len(on)} parameters but model.{self.target} "
                             f"has {len(tg)}; the target must be a copy of the online network")
        online_ids = {id(p) for _, p in on}
        pairs = {}
        for (n_o, o), (n_t, t) in zip(on, tg, strict=True):
            if (o.shape, o.dtype, o.device) != (t.shape, t.dtype, t.device):
                raise ValueError(f"MomentumEMA: {self.online}.{n_o} {tuple(o.shape)} {o.dtype} {o.device} does not "
                                 f"match {self.target}.{n_t} {tuple(t.shape)} {t.dtype} {t.device}")
            if id(t) in online_ids:
                raise ValueError(f"MomentumEMA: {self.target}.{n_t} is also a parameter of model.{self.online}; "
                                 "the target must be a separate copy")
            if t.requires_grad:
                raise ValueError(f"MomentumEMA: {self.target}.{n_t} requires grad; build the target with "
                                 "requires_grad_(False) so that it never receives gradients")
            pairs[n_t] = (o, t)
        return pairs

    def _flatten(self, pairs: list[tuple[nn.Parameter, nn.Parameter]]) -> None:
        groups: dict[tuple, list] = {}
        for o, t in pairs:
            groups.setdefault((o.device, o.dtype), []).append((o, t))
        for (device, dtype), group in groups.items():
            step = max(1, _ALIGN_BYTES // group[0][0].element_size())
            offsets, total = [], 0
            for o, _ in group:
                offsets.append(total)
                total += -(-o.numel() // step) * step
            flat_t, flat_o = (torch.zeros(total, dtype=dtype, device=device) for _ in range(2))
            for (o, t), off in zip(group, offsets, strict=True):
                for p, flat in ((o, flat_o), (t, flat_t)):
                    view = flat[off:off + p.numel()].view(p.shape)
                    view.copy_(p.data)
                    p.data = view   # same Parameter object, new storage: the optimizer is unaffected
                    self._views.append((p, view.data_ptr()))
            self._flat.append((flat_t, flat_o))

    def _check_views(self) -> None:
        for p, ptr in self._views:
            if p.data_ptr() != ptr:
                raise RuntimeError(
                    "MomentumEMA: a parameter's storage was replaced after before_run (model.to(), "
                    "load_state_dict(assign=True), p.data = ...); the EMA no longer updates it")


_WARNED: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _WARNED:
        _WARNED.add(message)
        log.warning(message)


def _check_momentum(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(f"MomentumEMA: {key}={value!r} is not valid; allowed: a number in [0, 1]")
    return float(value)


def _unwrap(runner, attr: str) -> nn.Module:
    """The model that has ``attr``: ``runner.unwrapped_model`` (or ``runner.model``), descending
    through wrappers' ``.module`` (DDP, DataParallel, mmcv's) until it has ``attr``."""
    model = getattr(runner, "unwrapped_model", None)
    model = runner.model if model is None else model
    while not hasattr(model, attr) and isinstance(getattr(model, "module", None), nn.Module):
        model = model.module
    return model
