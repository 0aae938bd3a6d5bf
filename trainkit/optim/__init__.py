"""Param groups and what acts on parameters: ``groups`` (:class:`NamedGroups`, named groups by
prefix), ``paramwise`` (OpenMMLab's ``paramwise_cfg`` rules, mmengine and mmcv 1.x, as named
groups; pasted ``optim_wrapper`` / mmcv ``optimizer`` nodes), ``layer_decay`` (mmdet's layer-wise
lr decay constructor) and ``ema`` (the momentum EMA of a target network). May import ``core`` only.

Recipe ``_target_`` paths (``param_groups`` node):

- ``trainkit.optim.NamedGroups``: groups by name prefix (trainkit's own keys).
- ``trainkit.optim.ParamwiseGroups``: ``paramwise_cfg`` + ``dialect`` (mmengine | mmcv), on the
  recipe's ``optimizer``; ``trainkit.optim.DefaultOptimWrapperConstructor`` (mmengine rules) and
  ``trainkit.optim.DefaultOptimizerConstructor`` (mmcv rules) are the same with the dialect fixed.
- ``trainkit.optim.OpenMMLabOptimizer``: an mmengine ``optim_wrapper`` or mmcv ``optimizer`` node as
  is (``type: AdamW``, ``paramwise_cfg``, ``constructor``); the recipe's ``optimizer`` is null.
- ``trainkit.optim.LayerDecayConstructor`` (alias ``LearningRateDecayOptimizerConstructor``).
"""
from .._compat import forwarder
from .ema import MomentumEMA
from .groups import NamedGroups, build_optimizer
from .layer_decay import LayerDecayConstructor, LearningRateDecayOptimizerConstructor
from .paramwise import (DefaultOptimizerConstructor, DefaultOptimWrapperConstructor, OpenMMLabOptimizer,
                        ParamwiseGroups)

__all__ = ["DefaultOptimWrapperConstructor", "DefaultOptimizerConstructor", "LayerDecayConstructor",
           "LearningRateDecayOptimizerConstructor", "MomentumEMA", "NamedGroups", "OpenMMLabOptimizer",
           "ParamwiseGroups", "build_optimizer"]

# trainkit 0.1's ``trainkit.optim`` module also held the param-group name/momentum helpers
__getattr__ = forwarder("trainkit.optim", "trainkit.core.groups", {
    n: ("trainkit.core.groups", n) for n in ("group_names", "get_momentum", "set_momentum", "has_momentum")})
