"""Layer-wise learning-rate decay: mmdet 3.x's ``LearningRateDecayOptimizerConstructor``.

Every trainable parameter gets a layer id ``i`` in ``0 .. num_layers + 1`` and joins
the group ``layer_{i}_{decay|no_decay}``, whose values are fixed when the group is
first met (groups are ordered by first appearance in ``model.named_parameters()``)::

    lr_scale     = decay_rate ** (num_layers + 2 - i - 1)     # the top id num_layers+1 -> 1.0
    lr           = lr_scale * optimizer.lr
    weight_decay = optimizer.weight_decay  (decay)   or 0.0  (no_decay: 1-D tensors,
                   names ending in ".bias", names exactly "pos_embed" / "cls_token")

Frozen parameters (``requires_grad=False``) are left out of the optimizer. Each group
carries mmdet's keys ``group_name``, ``lr_scale``, ``param_names`` and trainkit's
``name`` (the same string), so ``lr/<name>`` is logged per group.

Layer ids come from the first of: ``rules`` (ordered ``[regex, layer]`` pairs, or a
callable), the model's ``get_layer_id(name, num_layers)``, or mmdet's ConvNeXt tables
(:func:`convnext_layer_id`, :func:`convnext_stage_id`) when ``model.backbone``'s class
name contains ``ConvNeXt``. A parameter no rule places goes to the default layer
``num_layers + 1`` (scale 1.0); those names are logged and kept in
``default_layer_params``. See docs/layer_decay.md for the quirks matched.
"""
from __future__ import annotations

import logging
import os
import re
from typing import Any
from collections.abc import Callable, Mapping, Sequence

import torch
from torch import nn

from .groups import OptimizerFactory, _factory_defaults

log = logging.getLogger("trainkit")

LayerFn = Callable[[str, int], int | None]
"""``fn(param_name, num_layers) -> layer id``, or None for the default layer."""

DECAY_TYPES = ("layer_wise", "stage_wise")
PARAMWISE_KEYS = ("num_layers", "decay_rate", "decay_type")
_TOKENS = ("backbone.cls_token", "backbone.mask_token", "backbone.pos_embed")
_NO_DECAY_NAMES = ("pos_embed", "cls_token")   # compared with full names, as mmdet does


def convnext_layer_id(name: str, num_layers: int) -> int | None:
    """mmdet's ``layer_wise`` ids for OpenMMLab ConvNeXt names (``num_layers`` as configured).

    tokens 0; downsample_layers.{0,1,2,3} -> 0, 2, 3, num_layers;
    stages.{0,1,2,3}.{b} -> 1, 2, 3 + b // 3, num_layers; anything else -> None.
    """
    if name in _TOKENS:
        return 0
    if name.startswith("backbone.downsample_layers"):
        return _by_stage(name, (0, 2, 3, num_layers))
    if name.startswith("backbone.stages"):
        block = _index(name, 3)
        return _by_stage(name, (1, 2, 3 + block // 3, num_layers))
    return None


def convnext_stage_id(name: str, num_layers: int) -> int | None:
    """mmdet's ``stage_wise`` ids: tokens and every downsample layer 0, stages.{s} -> s + 1,
    anything else -> None. ``num_layers`` is unused: ids num_layers-1 and num_layers stay empty."""
    if name in _TOKENS or name.startswith("backbone.downsample_layers"):
        return 0
    if name.startswith("backbone.stages"):
        return _index(name, 2) + 1
    return None


def _index(name: str, pos: int) -> int:
    try:
        return int(name.split(".")[pos])
    except (IndexError, ValueError):
        raise ValueError(f"ConvNeXt layer-decay rules: cannot read an index at position {pos} of "
                         f"parameter {name!r}; expected backbone.downsample_layers.<stage>.* or "
                         "backbone.stages.<stage>.<block>.*") from None


def _by_stage(name: str, ids: tuple[int, ...]) -> int:
    stage = _index(name, 2)
    if not 0 <= stage < len(ids):
        raise ValueError(f"ConvNeXt layer-decay rules know stages 0-3, got parameter {name!r}; "
                         "give param_groups.rules for this model")
    return ids[stage]


def pattern_rules(rules: Sequence[Sequence[Any]] | Mapping[str, int]) -> LayerFn:
    """Ordered ``[regex, layer]`` pairs (or a ``{regex: layer}`` mapping) as a :data:`LayerFn`.

    The first regex that matches the start of a name (``re.match``) decides: the id is
    ``layer``, plus ``int(<id>)`` when the regex has a named group ``(?P<id>...)``
    (``backbone\\.blocks\\.(?P<id>\\d+)\\.`` with layer 1 puts block ``k`` at ``k + 1``).
    """
    items = list(rules.items()) if isinstance(rules, Mapping) else list(rules)
    compiled = []
    for i, rule in enumerate(items):
        if isinstance(rule, (str, bytes)) or not isinstance(rule, Sequence) or len(rule) != 2:
            raise ValueError(f"param_groups.rules[{i}]={rule!r}: expected a pair [regex, layer_id]")
        pattern, layer = rule
        if not isinstance(layer, int) or isinstance(layer, bool):
            raise ValueError(f"param_groups.rules[{i}]: layer id {layer!r} must be an int")
        try:
            rx = re.compile(pattern)
        except (re.error, TypeError) as e:
            raise ValueError(f"param_groups.rules[{i}]: bad regex {pattern!r}: {e}") from None
        compiled.append((rx, layer, "id" in rx.groupindex))

    def layer_of(name: str, num_layers: int) -> int | None:
        for rx, layer, has_id in compiled:
            m = rx.match(name)
            if m is None:
                continue
            if not has_id:
                return layer
            try:
                return layer + int(m.group("id"))
            except (TypeError, ValueError):
                raise ValueError(f"param_groups.rules: pattern {rx.pattern!r} captured "
                                 f"id={m.group('id')!r} from {name!r}, not an integer") from None
        return None

    return layer_of


class LayerDecayConstructor:
    """``constructor(model, optimizer_factory) -> optimizer`` with mmdet's layer-decay groups.

    ``paramwise_cfg``: ``num_layers`` (int >= 1), ``decay_rate`` (> 0) and ``decay_type``
    (``layer_wise``, the default, or ``stage_wise``; as in mmdet any string containing
    ``layer_wise`` means layer_wise). ``rules``: ``[regex, layer]`` pairs (see
    :func:`pattern_rules`) or a callable ``rules(name, num_layers) -> id | None``.
    ``no_decay``: extra regexes (``re.match``) whose parameters get weight_decay 0.

    After a build: ``layer_ids`` maps each trainable parameter to its id and
    ``default_layer_params`` lists those no rule placed (also set on the optimizer).
    """

    def __init__(self, paramwise_cfg: Mapping[str, Any],
                 rules: LayerFn | Sequence[Sequence[Any]] | Mapping[str, int] | None = None,
                 no_decay: Sequence[str] = ()):
        if not isinstance(paramwise_cfg, Mapping):
            raise ValueError(f"param_groups.paramwise_cfg must be a mapping with keys "
                             f"{', '.join(PARAMWISE_KEYS)}; got {paramwise_cfg!r}")
        cfg = dict(paramwise_cfg)
        unknown = sorted(set(cfg) - set(PARAMWISE_KEYS))
        if unknown:
            raise ValueError(f"param_groups.paramwise_cfg: unknown keys {unknown}; allowed: "
                             f"{', '.join(PARAMWISE_KEYS)}")
        num_layers, decay_rate = cfg.get("num_layers"), cfg.get("decay_rate")
        decay_type = cfg.get("decay_type", "layer_wise")
        if not isinstance(num_layers, int) or isinstance(num_layers, bool) or num_layers < 1:
            raise ValueError(f"param_groups.paramwise_cfg.num_layers={num_layers!r}: must be an int >= 1")
        if not isinstance(decay_rate, (int, float)) or isinstance(decay_rate, bool) or not decay_rate > 0:
            raise ValueError(f"param_groups.paramwise_cfg.decay_rate={decay_rate!r}: must be a number > 0")
        if not isinstance(decay_type, str) or ("layer_wise" not in decay_type and decay_type != "stage_wise"):
            raise ValueError(f"param_groups.paramwise_cfg.decay_type={decay_type!r} is not valid; "
                             f"allowed: {', '.join(DECAY_TYPES)}")
        self.paramwise_cfg = cfg
        self.num_layers, self.decay_rate = num_layers, decay_rate
        self.decay_type = "layer_wise" if "layer_wise" in decay_type else "stage_wise"
        self.rules: LayerFn | None = None
        if rules is not None:
            self.rules = rules if callable(rules) else pattern_rules(rules)
        try:
            self.no_decay = [re.compile(p) for p in no_decay]
        except (re.error, TypeError) as e:
            raise ValueError(f"param_groups.no_decay={list(no_decay)!r}: bad regex: {e}") from None
        self.layer_ids: dict[str, int] = {}
        self.default_layer_params: list[str] = []

    def layer_fn(self, model: nn.Module) -> tuple[LayerFn, str]:
        """The id function for ``model`` and where it comes from."""
        if self.rules is not None:
            return self.rules, "param_groups.rules"
        method = getattr(model, "get_layer_id", None)
        if callable(method):
            return method, f"{type(model).__name__}.get_layer_id"
        backbone = getattr(model, "backbone", None)
        if backbone is not None and "ConvNeXt" in type(backbone).__name__:
            if self.decay_type == "stage_wise":
                return convnext_stage_id, "ConvNeXt stage_wise"
            return convnext_layer_id, "ConvNeXt layer_wise"
        what = (f"its backbone is a {type(backbone).__name__}" if backbone is not None
                else "it has no 'backbone' attribute")
        raise ValueError(
            f"layer decay: no layer rules fit model class {type(model).__name__} ({what}). The built-in "
            "rules need model.backbone to be a ConvNeXt (class name containing 'ConvNeXt', OpenMMLab "
            "names backbone.downsample_layers.* / backbone.stages.*). Give param_groups.rules "
            "([[regex, layer_id], ...] or a callable rules(name, num_layers)), or define "
            f"{type(model).__name__}.get_layer_id(name, num_layers) -> int | None.")

    def __call__(self, model: nn.Module, optimizer: OptimizerFactory) -> torch.optim.Optimizer:
        model = getattr(model, "module", model)   # mmengine unwraps any wrapper with .module
        kwargs = _factory_defaults(optimizer)
        base_lr, base_wd = kwargs.get("lr"), kwargs.get("weight_decay")
        for key, value in (("lr", base_lr), ("weight_decay", base_wd)):
            if value is None:
                raise ValueError(f"layer decay needs optimizer.{key} to be set: every group's value is "
                                 "derived from it (lr = lr_scale * optimizer.lr; weight_decay = "
                                 "optimizer.weight_decay or 0.0)")
        layer_of, source = self.layer_fn(model)
        exact = source.startswith("ConvNeXt")   # mmdet's tables: keep any id (warned in _report)
        top, default_id = self.num_layers + 2, self.num_layers + 1
        groups: dict[str, dict[str, Any]] = {}
        self.layer_ids, self.default_layer_params = {}, []
        for name, p in model.named_parameters():
            if not p.requires_grad:
                continue
            lid = layer_of(name, self.num_layers)
            if lid is None:
                lid = default_id
                self.default_layer_params.append(name)
            else:
                self._check_id(name, lid, source, exact)
            self.layer_ids[name] = lid
            no_decay = (p.ndim == 1 or name.endswith(".bias") or name in _NO_DECAY_NAMES
                        or any(rx.match(name) for rx in self.no_decay))
            key = f"layer_{lid}_{'no_decay' if no_decay else 'decay'}"
            group = groups.get(key)
            if group is None:
                scale = self.decay_rate ** (top - lid - 1)
                group = groups[key] = {
                    "weight_decay": 0.0 if no_decay else base_wd, "params": [], "param_names": [],
                    "lr_scale": scale, "group_name": key, "lr": scale * base_lr, "name": key}
            group["params"].append(p)
            group["param_names"].append(name)
        if not groups:
            raise ValueError(f"layer decay: model {type(model).__name__} has no trainable parameters")
        self._report(source, groups)
        opt = optimizer(list(groups.values()))
        opt.default_layer_params = list(self.default_layer_params)
        return opt

    def _check_id(self, name: str, lid: Any, source: str, exact: bool) -> None:
        if not isinstance(lid, int) or isinstance(lid, bool):
            raise ValueError(f"{source} gave layer id {lid!r} for {name!r}; expected an int or None")
        if not exact and not 0 <= lid <= self.num_layers + 1:
            raise ValueError(f"{source} gave layer id {lid} for {name!r}, outside 0..{self.num_layers + 1} "
                             f"(paramwise_cfg.num_layers={self.num_layers})")

    def _report(self, source: str, groups: Mapping[str, Mapping[str, Any]]) -> None:
        if os.environ.get("RANK", "0") != "0":   # like mmdet, only rank 0 logs the groups
            return
        log.info("layer decay (%s, %s, decay_rate=%s, num_layers=%d): %d groups", source, self.decay_type,
                 self.decay_rate, self.num_layers, len(groups))
        for key, g in groups.items():
            log.info("  %-20s lr_scale=%.6g lr=%.6g weight_decay=%s params=%d", key, g["lr_scale"], g["lr"],
                     g["weight_decay"], len(g["params"]))
        beyond = sorted({lid for lid in self.layer_ids.values() if lid > self.num_layers + 1})
        if beyond:
            log.warning("layer decay: %s gave layer ids %s above num_layers + 1 = %d (their lr_scale is "
                        "decay_rate to a negative power), kept as mmdet does; paramwise_cfg.num_layers=%d "
                        "does not fit this model", source, beyond, self.num_layers + 1, self.num_layers)
        if self.default_layer_params:
            log.info("layer decay: %d parameters fell into the default layer %d (lr_scale 1.0, the "
                     "full lr): %s", len(self.default_layer_params), self.num_layers + 1,
                     ", ".join(self.default_layer_params))


LearningRateDecayOptimizerConstructor = LayerDecayConstructor
"""mmdet's name for the same constructor."""
