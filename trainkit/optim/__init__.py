"""Param groups and what acts on parameters: ``groups`` (:class:`NamedGroups`, named groups by
prefix), ``layer_decay`` (mmdet's layer-wise lr decay constructor) and ``ema`` (the momentum
EMA of a target network). May import ``core`` only.
"""
from .._compat import forwarder
from .ema import MomentumEMA
from .groups import NamedGroups, build_optimizer
from .layer_decay import LayerDecayConstructor, LearningRateDecayOptimizerConstructor

__all__ = ["LayerDecayConstructor", "LearningRateDecayOptimizerConstructor", "MomentumEMA", "NamedGroups",
           "build_optimizer"]

# trainkit 0.1's ``trainkit.optim`` module also held the param-group name/momentum helpers
__getattr__ = forwarder("trainkit.optim", "trainkit.core.groups", {
    n: ("trainkit.core.groups", n) for n in ("group_names", "get_momentum", "set_momentum", "has_momentum")})
