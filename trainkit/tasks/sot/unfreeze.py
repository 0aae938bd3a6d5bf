"""Backbone freezing and late unfreezing, as mmtrack's SiameseRPNOptimizerHook / SiamRPNBackboneUnfreezeHook."""
from __future__ import annotations

from collections.abc import Sequence

from torch import nn


class BackboneUnfreeze:
    """At every ``before_epoch``: every parameter under ``module`` gets
    ``requires_grad = epoch >= start_epoch and it lies under one of layers`` and the
    BatchNorm layers under ``module`` are put in train mode exactly when their
    parameters train (eval otherwise, like mmtrack's ``norm_eval``).

    A pure function of ``runner.epoch``: no state to save, and a resumed run gets the
    same freezing. Frozen parameters get no gradient, so SGD skips them (no weight
    decay, no momentum); they stay in their optimizer group and, once unfrozen,
    train at that group's lr. The Runner calls ``model.train()`` after
    ``before_epoch``: the model must keep frozen BatchNorm in eval mode there
    (:class:`~trainkit.tasks.sot.model.SiamRPN` does).
    """

    def __init__(self, start_epoch: int, layers: Sequence[str], module: str = "backbone"):
        if start_epoch < 0:
            raise ValueError(f"components.unfreeze.start_epoch={start_epoch} must be >= 0")
        self.start_epoch, self.layers, self.module = start_epoch, [str(x) for x in layers], module

    def _backbone(self, runner) -> nn.Module:
        model = runner.unwrapped_model
        try:
            return model.get_submodule(self.module)
        except AttributeError:
            raise ValueError(f"components.unfreeze.module={self.module!r} is not a submodule of "
                             f"{type(model).__name__}") from None

    def before_run(self, runner) -> None:
        names = {n for n, _ in self._backbone(runner).named_modules()}
        bad = [x for x in self.layers if x not in names]
        if bad:
            children = [n for n, _ in self._backbone(runner).named_children()]
            raise ValueError(f"components.unfreeze.layers: {bad} not in {self.module}; allowed: {children}")

    def _trains(self, name: str, epoch: int) -> bool:
        return epoch >= self.start_epoch and any(name == x or name.startswith(x + ".") for x in self.layers)

    def before_epoch(self, runner) -> None:
        backbone, epoch = self._backbone(runner), runner.epoch
        for name, p in backbone.named_parameters():
            p.requires_grad_(self._trains(name, epoch))
        training = runner.unwrapped_model.training
        for name, m in backbone.named_modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.train(training and self._trains(name, epoch))
