"""OpenMMLab's default param-group constructors: ``paramwise_cfg`` with the rules of mmengine 0.10's
``DefaultOptimWrapperConstructor`` (``dialect="mmengine"``) or mmcv 1.7's ``DefaultOptimizerConstructor``
(``dialect="mmcv"``). Our own implementation of the documented rules (docs/paramwise.md).

For every parameter, visited module by module (a module's own parameters, then its children, in
registration order; the match string is ``f"{module_prefix}.{param_name}"``, so ``".x"`` at the root)::

    custom key k matched (longest key first, ties alphabetical; plain substring test):
        lr = base_lr * k.lr_mult (1.0 if absent)      weight_decay = base_wd * k.decay_mult (1.0)
        and no other rule applies.
    otherwise
        lr = base_lr * bias_lr_mult          for a parameter named ``bias``, outside a norm and a DCN child
        lr = base_lr * dcn_offset_lr_mult    for a Conv2d child of a deformable conv under ``conv_offset``
        weight_decay = base_wd * the first of these that applies:
            mmengine (a rule applies only if its mult is set):  norm, bias, dwconv, flat (ndim == 1)
            mmcv (every mult defaults to 1.0; a category wins even when unset): norm, dwconv, bias

Frozen parameters (``requires_grad=False``): mmengine leaves them out of the optimizer; mmcv keeps
each one with the optimizer's base values and no rule. An empty or missing ``paramwise_cfg`` gives
one group of ``model.parameters()``, frozen ones included, in both.

The references make one param group per parameter. Here the parameters that got their values from
the same source (the same custom key, the same rules, or none) and have identical values share one
group, named after that source: the custom key (``backbone``), the rule (``norm``, ``bias``,
``dwconv``, ``flat``, ``dcn_offset``; ``bias_lr``/``bias_decay`` when both bias mults are given and
only one applied; ``<wd rule>.<lr rule>`` such as ``dwconv.bias``), ``base``
for parameters no rule touched and ``frozen`` (mmcv). A name already taken gets ``_2``, ``_3``, ...
Each parameter's update is the same as in the one-group-per-parameter optimizer (docs/paramwise.md).
"""
from __future__ import annotations

import functools
import importlib
import logging
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.instancenorm import _InstanceNorm

from .groups import OptimizerFactory, _factory_defaults

log = logging.getLogger("trainkit")

DIALECTS = ("mmengine", "mmcv")
LR_MULTS = ("bias_lr_mult", "dcn_offset_lr_mult")
DECAY_MULTS = ("bias_decay_mult", "norm_decay_mult", "dwconv_decay_mult", "flat_decay_mult")
PARAMWISE_KEYS = {
    "mmengine": ("custom_keys", "bias_lr_mult", "bias_decay_mult", "norm_decay_mult", "dwconv_decay_mult",
                 "flat_decay_mult", "dcn_offset_lr_mult", "bypass_duplicate"),
    "mmcv": ("custom_keys", "bias_lr_mult", "bias_decay_mult", "norm_decay_mult", "dwconv_decay_mult",
             "dcn_offset_lr_mult", "bypass_duplicate"),
}
ENTRY_MULTS = ("lr_mult", "decay_mult")
NORM_TYPES = (_BatchNorm, _InstanceNorm, nn.GroupNorm, nn.LayerNorm)
"""What both references count as a norm layer (by class, subclasses included; never by name)."""
MMCV_DCN_NAMES = ("DeformConv2d", "ModulatedDeformConv2d")
"""mmcv.ops classes whose direct children the references treat as DCN offset layers."""


# ---- paramwise_cfg, validated -----------------------------------------------------------------
@dataclass(frozen=True)
class CustomKey:
    """One ``custom_keys`` entry: its multipliers and (mmengine) the other keys copied into the group."""

    key: str
    lr_mult: float | None = None
    decay_mult: float | None = None
    overrides: Mapping[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        parts = [f"{k}={v}" for k, v in (("lr_mult", self.lr_mult), ("decay_mult", self.decay_mult)) if v is not None]
        parts += [f"{k}={v}" for k, v in self.overrides.items()]
        return f"custom_keys[{self.key!r}]" + (f" {', '.join(parts)}" if parts else " (empty: base values)")


@dataclass(frozen=True)
class ParamwiseCfg:
    """A validated ``paramwise_cfg``: ``mults`` holds only the multipliers that were given."""

    dialect: str
    custom_keys: tuple[CustomKey, ...]   # the reference's order: longest first, ties alphabetical
    mults: Mapping[str, float]
    bypass_duplicate: bool = False

    def mult(self, key: str) -> float | None:
        """The configured multiplier; unset is None (mmengine: rule off) or 1.0 (mmcv: rule on)."""
        if key in self.mults:
            return self.mults[key]
        return 1.0 if self.dialect == "mmcv" else None

    @property
    def decay_keys(self) -> list[str]:
        """The given keys that scale weight decay (they need ``optimizer.weight_decay``)."""
        keys = [k for k in DECAY_MULTS if k in self.mults]
        return keys + [f"custom_keys[{c.key!r}].decay_mult" for c in self.custom_keys if c.decay_mult is not None]


def parse_paramwise_cfg(cfg: Any, dialect: str = "mmengine", where: str = "paramwise_cfg") -> ParamwiseCfg | None:
    """Check ``cfg`` (OpenMMLab's key names) and return it validated; None when it is empty or None
    (then both references put ``model.parameters()`` into one group)."""
    if dialect not in DIALECTS:
        raise ValueError(f"dialect={dialect!r} is not valid; allowed: {', '.join(DIALECTS)}")
    if cfg is None:
        return None
    if not isinstance(cfg, Mapping):
        raise ValueError(f"{where} must be a mapping of {', '.join(PARAMWISE_KEYS[dialect])}; got {cfg!r}")
    cfg = dict(cfg)
    if not cfg:
        return None
    valid = PARAMWISE_KEYS[dialect]
    unknown = [k for k in cfg if k not in valid]
    if unknown:
        hint = (" (flat_decay_mult is mmengine's; mmcv 1.7 has no such rule and would ignore it)"
                if "flat_decay_mult" in unknown and dialect == "mmcv" else
                " (the reference ignores unknown keys silently; we refuse them)")
        raise ValueError(f"{where}: unknown keys {sorted(map(str, unknown))} for dialect {dialect!r}{hint}; "
                         f"valid keys: {', '.join(valid)}")
    mults = {k: _mult(cfg[k], f"{where}.{k}") for k in (*LR_MULTS, *DECAY_MULTS) if k in cfg}
    bypass = cfg.get("bypass_duplicate", False)
    if not isinstance(bypass, bool):
        raise ValueError(f"{where}.bypass_duplicate={bypass!r} is not valid; allowed: true, false")
    keys = _custom_keys(cfg.get("custom_keys", {}), dialect, f"{where}.custom_keys")
    return ParamwiseCfg(dialect, keys, mults, bypass)


def _mult(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{where}={value!r} is not valid; allowed: a finite number >= 0 "
                         "(the reference would accept a negative value and give negative lrs / weight decays)")
    return value


def _custom_keys(keys: Any, dialect: str, where: str) -> tuple[CustomKey, ...]:
    if not isinstance(keys, Mapping):
        raise ValueError(f"{where} must be a mapping {{key: {{lr_mult: ..., decay_mult: ...}}}}; got {keys!r}")
    out = []
    for key, entry in keys.items():
        if not isinstance(key, str):
            raise ValueError(f"{where}: key {key!r} must be a string (matched as a substring of parameter names)")
        if not isinstance(entry, Mapping):
            raise ValueError(f"{where}[{key!r}]={entry!r} is not valid; allowed: a mapping with lr_mult, decay_mult")
        entry = dict(entry)
        extra = {k: v for k, v in entry.items() if k not in ENTRY_MULTS}
        if extra and dialect == "mmcv":
            raise ValueError(f"{where}[{key!r}]: keys {sorted(extra)} are not valid for dialect 'mmcv' (mmcv 1.7 "
                             "reads only lr_mult and decay_mult and ignores the rest); allowed: lr_mult, decay_mult")
        for k, v in extra.items():
            if k in ("lr", "weight_decay"):
                _mult(v, f"{where}[{key!r}].{k}")
            elif k == "params":
                raise ValueError(f"{where}[{key!r}].params: a custom key cannot set the group's parameters")
        mults = {k: _mult(entry[k], f"{where}[{key!r}].{k}") for k in ENTRY_MULTS if k in entry}
        if "betas" in extra and isinstance(extra["betas"], list):
            extra["betas"] = tuple(extra["betas"])
        out.append(CustomKey(key, mults.get("lr_mult"), mults.get("decay_mult"), extra))
    # the reference sorts alphabetically, then by length (longest first): a stable sort keeps ties alphabetical
    return tuple(sorted(out, key=lambda c: (-len(c.key), c.key)))


# ---- module classes -----------------------------------------------------------------------------
def is_norm(module: nn.Module) -> bool:
    """BatchNorm (any, SyncBatchNorm included), InstanceNorm, GroupNorm, LayerNorm and subclasses."""
    return isinstance(module, NORM_TYPES)


def is_dwconv(module: nn.Module) -> bool:
    """An ``nn.Conv2d`` with ``groups == in_channels`` (depth multipliers included; not Conv1d/3d)."""
    return isinstance(module, nn.Conv2d) and module.in_channels == module.groups


def dcn_detector(extra: Iterable[type | str] = ()) -> Callable[[nn.Module], bool]:
    """``fn(module) -> bool``: an instance of mmcv.ops ``DeformConv2d``/``ModulatedDeformConv2d``
    (recognised by class name and module, so mmcv is never imported) or of a class in ``extra``
    (classes or import paths ``pkg.mod.Class``)."""
    types = tuple(_import_class(t, "dcn_types") if isinstance(t, str) else t for t in extra)
    for t in types:
        if not isinstance(t, type):
            raise ValueError(f"dcn_types: {t!r} is not a class")

    def is_dcn(module: nn.Module) -> bool:
        if types and isinstance(module, types):
            return True
        return any(c.__name__ in MMCV_DCN_NAMES and c.__module__.startswith("mmcv.ops") for c in type(module).__mro__)

    return is_dcn


def _import_class(path: str, where: str) -> type:
    mod, _, name = path.rpartition(".")
    try:
        return getattr(importlib.import_module(mod), name)
    except (ImportError, AttributeError, ValueError) as e:
        raise ValueError(f"{where}: cannot import {path!r}: {e}") from None


# ---- the reference's per-parameter decisions -----------------------------------------------------
@dataclass
class Decision:
    """What the reference's group for one parameter holds (``values``, besides ``params``), and why."""

    name: str
    param: nn.Parameter
    values: dict[str, Any]
    label: str                      # the group name stem: custom key, rule(s), base or frozen
    source: str                     # for the table: which key or rule set the values
    custom: CustomKey | None = None
    rules_would_give: dict[str, Any] | None = None   # custom-matched: what the configured rules would set
    rules_overridden: tuple[str, ...] = ()           # custom-matched: those rules' mult keys


@dataclass
class Walk:
    """The visit of a model: decisions in the reference's group order, and what it left out."""

    decisions: list[Decision] = field(default_factory=list)
    frozen: list[str] = field(default_factory=list)              # mmengine: not in the optimizer
    duplicates: list[tuple[str, str]] = field(default_factory=list)   # (skipped name, first name)
    custom_hits: dict[str, int] = field(default_factory=dict)    # custom key -> parameters it decided
    rule_hits: dict[str, int] = field(default_factory=dict)      # configured mult -> parameters it set
    dcn_modules: list[str] = field(default_factory=list)


class _Rules:
    """The per-parameter rules of one dialect, for one ``ParamwiseCfg`` and optimizer base values."""

    def __init__(self, cfg: ParamwiseCfg, base_lr: float | None, base_wd: float | None):
        self.cfg, self.base_lr, self.base_wd = cfg, base_lr, base_wd

    def scaled(self, base: float | None, mult: float, what: str, name: str) -> float:
        if base is None:
            raise ValueError(f"{what} scales optimizer.lr for {name!r}, but optimizer.lr is not set (the "
                             f"reference fails with a TypeError here); give optimizer.lr")
        return base * mult

    def custom(self, c: CustomKey, name: str) -> dict[str, Any]:
        values = {"lr": self.scaled(self.base_lr, 1.0 if c.lr_mult is None else c.lr_mult,
                                    f"custom_keys[{c.key!r}]", name)}
        if self.base_wd is not None:
            values["weight_decay"] = self.base_wd * (1.0 if c.decay_mult is None else c.decay_mult)
        if self.cfg.dialect == "mmengine":   # mmengine copies the entry's other keys into the group
            values.update(c.overrides)
        return values

    def rules(self, name: str, attr: str, prefix: str, module: nn.Module, p: nn.Parameter,
              in_dcn: bool) -> tuple[dict[str, Any], list[str], list[str]]:
        """``(values, lr_rules, wd_rules)``: the rule keys listed are those whose mult was given."""
        cfg, values, lr_by, wd_by = self.cfg, {}, [], []
        norm = is_norm(module)
        bias_lr = cfg.mult("bias_lr_mult")
        if attr == "bias" and not (norm or in_dcn) and bias_lr is not None:
            values["lr"] = self.scaled(self.base_lr, bias_lr, self._what("bias_lr_mult"), name)
            lr_by.append("bias_lr_mult")
        dcn_lr = cfg.mult("dcn_offset_lr_mult")
        if "conv_offset" in prefix and in_dcn and dcn_lr is not None and isinstance(module, nn.Conv2d):
            values["lr"] = self.scaled(self.base_lr, dcn_lr, self._what("dcn_offset_lr_mult"), name)
            lr_by.append("dcn_offset_lr_mult")   # never together with the bias rule (that excludes DCN children)
        if self.base_wd is not None:
            for key, applies in self._wd_order(attr, norm, is_dwconv(module), p.ndim, in_dcn):
                mult = cfg.mult(key)
                if applies and mult is not None:
                    values["weight_decay"] = self.base_wd * mult
                    wd_by.append(key)
                    break
        return values, [k for k in lr_by if k in cfg.mults], [k for k in wd_by if k in cfg.mults]

    def _what(self, key: str) -> str:
        return key if key in self.cfg.mults else f"{key} (1.0 when not given: mmcv's rules are always on)"

    def _wd_order(self, attr: str, norm: bool, dw: bool, ndim: int, in_dcn: bool) -> list[tuple[str, bool]]:
        bias = attr == "bias" and not in_dcn
        if self.cfg.dialect == "mmengine":
            return [("norm_decay_mult", norm), ("bias_decay_mult", bias), ("dwconv_decay_mult", dw),
                    ("flat_decay_mult", ndim == 1 and not in_dcn)]
        return [("norm_decay_mult", norm), ("dwconv_decay_mult", dw), ("bias_decay_mult", bias)]


RULE_WORDS = {"norm_decay_mult": "norm", "dwconv_decay_mult": "dwconv", "flat_decay_mult": "flat",
              "dcn_offset_lr_mult": "dcn_offset"}
BIAS_MULTS = ("bias_lr_mult", "bias_decay_mult")


def rule_label(lr_rules: Sequence[str], wd_rules: Sequence[str], configured: Iterable[str]) -> str:
    """The name of the rules that set a parameter's values: weight-decay rule first, then lr rule,
    joined by ``.``; ``bias`` for the bias rules (``bias_lr`` / ``bias_decay`` when both mults are
    given and only one of them applied); ``base`` for none. Distinct rule sets get distinct names."""
    both = "bias_lr_mult" in lr_rules and "bias_decay_mult" in wd_rules
    split = set(BIAS_MULTS) <= set(configured)

    def word(key: str) -> str:
        if key in BIAS_MULTS:
            return "bias" if both or not split else key.removesuffix("_mult")
        return RULE_WORDS[key]

    return ".".join(dict.fromkeys(word(k) for k in (*wd_rules, *lr_rules))) or "base"


def walk(model: nn.Module, cfg: ParamwiseCfg, base_lr: float | None, base_wd: float | None,
         is_dcn: Callable[[nn.Module], bool] | None = None) -> Walk:
    """Visit ``model`` as the reference's ``add_params`` does and decide every parameter."""
    rules, out = _Rules(cfg, base_lr, base_wd), Walk()
    is_dcn = is_dcn or dcn_detector()
    seen: dict[int, str] = {}            # id(param) -> name of its first appended group
    frozen_seen: set[int] = set()
    out.custom_hits = {c.key: 0 for c in cfg.custom_keys}

    def visit(module: nn.Module, prefix: str, in_dcn: bool) -> None:
        for attr, p in module.named_parameters(recurse=False):
            name = f"{prefix}.{attr}" if prefix else attr
            if _skip(name, prefix, p):
                continue
            out.decisions.append(decide(name, attr, prefix, module, p, in_dcn))
            seen[id(p)] = name
        me_dcn = is_dcn(module)
        if me_dcn:
            out.dcn_modules.append(prefix or "<root>")
        for child_name, child in module.named_children():
            visit(child, f"{prefix}.{child_name}" if prefix else child_name, me_dcn)

    def _skip(name: str, prefix: str, p: nn.Parameter) -> bool:
        dup = id(p) in seen
        if cfg.dialect == "mmcv" and not p.requires_grad:   # mmcv: frozen check first, bare group
            if dup:
                raise ValueError(f"parameter {name!r} is {seen[id(p)]!r} (shared) and frozen: mmcv 1.7 adds frozen "
                                 "parameters before its duplicate check, so it puts this one in two groups and "
                                 "torch refuses (even with bypass_duplicate=True). Untie or unfreeze it, or use "
                                 "dialect='mmengine', which leaves frozen parameters out")
            out.decisions.append(Decision(name, p, {}, "frozen", "requires_grad=False: base values, no rule (mmcv)"))
            seen[id(p)] = name
            return True
        if dup:   # mmengine: duplicate check first (frozen parameters are never in ``seen``)
            if not cfg.bypass_duplicate:
                raise ValueError(f"parameter {name!r} is {seen[id(p)]!r} (one Parameter registered under two "
                                 "names): the reference puts it in two groups and torch refuses. Set "
                                 "paramwise_cfg.bypass_duplicate=true to keep it in its first name's group")
            log.warning("paramwise_cfg: %s is duplicate (%s is %s); skipped since bypass_duplicate=True",
                        prefix, name, seen[id(p)])
            out.duplicates.append((name, seen[id(p)]))
            return True
        if not p.requires_grad:   # mmengine: left out of the optimizer
            if id(p) not in frozen_seen:
                out.frozen.append(name)
                frozen_seen.add(id(p))
            return True
        return False

    def decide(name: str, attr: str, prefix: str, module: nn.Module, p: nn.Parameter, in_dcn: bool) -> Decision:
        match = f"{prefix}.{attr}"
        custom = next((c for c in cfg.custom_keys if c.key in match), None)
        if custom is not None:
            out.custom_hits[custom.key] += 1
            values = rules.custom(custom, name)
            try:   # what the configured rules would have set: reported, never applied
                rule_values, lr_by, wd_by = rules.rules(name, attr, prefix, module, p, in_dcn)
            except ValueError:
                rule_values, lr_by, wd_by = {}, [], []
            would = {k: rule_values[k] for k, by in (("lr", lr_by), ("weight_decay", wd_by)) if by}
            return Decision(name, p, values, custom.key.strip(".") or "custom", custom.describe(), custom, would,
                            (*lr_by, *wd_by))
        values, lr_by, wd_by = rules.rules(name, attr, prefix, module, p, in_dcn)
        for k in (*lr_by, *wd_by):
            out.rule_hits[k] = out.rule_hits.get(k, 0) + 1
        source = ", ".join(f"{k}={cfg.mults[k]}" for k in (*wd_by, *lr_by) if k in cfg.mults) or "-"
        return Decision(name, p, values, rule_label(lr_by, wd_by, cfg.mults), source)

    visit(model, "", False)
    return out


# ---- groups: merged and named -------------------------------------------------------------------
@dataclass
class Group:
    name: str
    label: str
    values: dict[str, Any]
    source: str
    decisions: list[Decision] = field(default_factory=list)

    def torch_group(self) -> dict[str, Any]:
        return {"name": self.name, "params": [d.param for d in self.decisions], **self.values}


def merge(decisions: Sequence[Decision], base: Mapping[str, Any]) -> list[Group]:
    """One group per (label, values), ordered by its first parameter; values equal to the optimizer's
    own (``base``: the factory's keywords) are left to torch. Names are the labels, made unique."""
    groups: dict[tuple, Group] = {}
    taken: set[str] = set()
    for d in decisions:
        values = {k: v for k, v in d.values.items() if not (k in base and _same(base[k], v))}
        key = (d.label, _frozen(values))
        group = groups.get(key)
        if group is None:
            name, i = d.label, 1
            while name in taken:
                i += 1
                name = f"{d.label}_{i}"
            taken.add(name)
            group = groups[key] = Group(name, d.label, values, d.source)
        group.decisions.append(d)
    return list(groups.values())


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return list(a) == list(b)
    return a == b


def _frozen(values: Mapping[str, Any]) -> tuple:
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in values.items()))


# ---- the constructors ---------------------------------------------------------------------------
class ParamwiseGroups:
    """``constructor(model, optimizer_factory) -> optimizer`` with OpenMMLab's ``paramwise_cfg``.

    ``paramwise_cfg``: OpenMMLab's keys (``custom_keys`` with ``lr_mult``/``decay_mult``,
    ``bias_lr_mult``, ``bias_decay_mult``, ``norm_decay_mult``, ``dwconv_decay_mult``,
    ``flat_decay_mult`` (mmengine only), ``dcn_offset_lr_mult``, ``bypass_duplicate``).
    ``dialect``: ``mmengine`` (0.10's DefaultOptimWrapperConstructor) or ``mmcv`` (1.7's
    DefaultOptimizerConstructor). ``dcn_types``: classes (or import paths) to treat as deformable
    convs besides mmcv.ops' ``DeformConv2d``/``ModulatedDeformConv2d``.

    ``base_lr``/``base_wd`` are the factory's ``lr``/``weight_decay`` keywords (the recipe's
    ``optimizer`` node). After a call: ``groups`` (name, values, members), ``frozen`` (left out,
    mmengine), ``duplicates`` (skipped second names) and ``table`` (the text logged).
    """

    builds_optimizer = False

    def __init__(self, paramwise_cfg: Mapping[str, Any] | None = None, dialect: str = "mmengine",
                 dcn_types: Sequence[type | str] = ()):
        self.dialect = dialect
        self.cfg = parse_paramwise_cfg(paramwise_cfg, dialect)
        self.is_dcn = dcn_detector(dcn_types)
        self.groups: list[Group] = []
        self.frozen: list[str] = []
        self.duplicates: list[tuple[str, str]] = []
        self.table = ""

    def __call__(self, model: nn.Module, optimizer: OptimizerFactory) -> torch.optim.Optimizer:
        model = unwrap(model)
        base = _factory_defaults(optimizer)
        base_lr, base_wd = base.get("lr"), base.get("weight_decay")
        if self.cfg is None:
            return self._single_group(model, optimizer)
        self._check_weight_decay(optimizer, base_wd)
        result = walk(model, self.cfg, base_lr, base_wd, self.is_dcn)
        if not result.decisions:
            raise ValueError(f"paramwise_cfg: model {type(model).__name__} has no trainable parameter" + (
                f": all {len(result.frozen)} have requires_grad=False, and mmengine's constructor leaves frozen "
                "parameters out (torch refuses an empty optimizer)" if result.frozen else ""))
        self.groups = merge(result.decisions, base)
        self.frozen, self.duplicates = result.frozen, result.duplicates
        opt = optimizer([g.torch_group() for g in self.groups])
        self._check_overrides(opt)
        self._warn_unused(result)
        self._report(model, opt)
        return opt

    def _single_group(self, model: nn.Module, optimizer: OptimizerFactory) -> torch.optim.Optimizer:
        params = list(model.parameters())
        d = [Decision(n, p, {}, "base", "no paramwise_cfg: model.parameters()") for n, p in model.named_parameters()]
        self.groups = [Group("base", "base", {}, d[0].source if d else "-", d)]
        self.frozen, self.duplicates = [], []
        opt = optimizer([{"name": "base", "params": params}])
        self._report(model, opt)
        return opt

    def _check_weight_decay(self, optimizer: OptimizerFactory, base_wd: float | None) -> None:
        """Decay multipliers need ``optimizer.weight_decay``: the reference raises for most of them
        and silently ignores ``flat_decay_mult``; we refuse all of them."""
        keys = self.cfg.decay_keys
        if base_wd is not None or not keys:
            return
        cls = getattr(optimizer, "func", optimizer)
        name = getattr(cls, "__name__", repr(cls))
        what = f"paramwise_cfg: {', '.join(keys)} {'scales' if len(keys) == 1 else 'scale'} weight decay"
        default = _default_of(cls, "weight_decay")
        if default is _NO_ARG:
            raise ValueError(f"{what}, but {name} has no weight_decay argument; remove {', '.join(keys)}")
        raise ValueError(f"{what}, but optimizer.weight_decay is not set; give it (the reference raises here "
                         f"for bias/norm/dwconv/custom-key decay multipliers and ignores flat_decay_mult, and "
                         f"{name}'s own default weight_decay={default} would apply to every parameter unscaled)")

    def _check_overrides(self, opt: torch.optim.Optimizer) -> None:
        for c in self.cfg.custom_keys:
            unknown = [k for k in c.overrides if k not in opt.defaults]
            if unknown:
                raise ValueError(f"paramwise_cfg.custom_keys[{c.key!r}]: keys {sorted(unknown)} are neither lr_mult/"
                                 f"decay_mult nor hyper-parameters of {type(opt).__name__} (mmengine would copy them "
                                 f"into the group, where nothing reads them); allowed: lr_mult, decay_mult, "
                                 f"{', '.join(opt.defaults)}")

    def _warn_unused(self, result: Walk) -> None:
        for c in self.cfg.custom_keys:
            if result.custom_hits[c.key]:
                continue
            names = [d.name for d in result.decisions] + result.frozen
            matching = [n for n in names if c.key in _match_string(n)]
            if not matching:
                log.warning("paramwise_cfg.custom_keys[%r] matches no parameter of the model", c.key)
            else:
                winners = sorted({d.custom.key for d in result.decisions
                                  if d.custom is not None and c.key in _match_string(d.name)})
                log.warning("paramwise_cfg.custom_keys[%r] decides no parameter: the %d it matches are %s", c.key,
                            len(matching), f"taken by longer keys {winners}" if winners else "frozen")
        for k in self.cfg.mults:
            if k != "dcn_offset_lr_mult" and not result.rule_hits.get(k):
                taken = sum(k in d.rules_overridden for d in result.decisions)
                log.warning("paramwise_cfg.%s=%s applies to no parameter of this model%s", k, self.cfg.mults[k],
                            f" (custom keys, which win over every rule, took the {taken} it would apply to)"
                            if taken else "")
        if "dcn_offset_lr_mult" in self.cfg.mults and not result.dcn_modules:
            log.warning("paramwise_cfg.dcn_offset_lr_mult: the model has no deformable conv (mmcv.ops DeformConv2d/"
                        "ModulatedDeformConv2d, or a class in dcn_types), so it has no effect")

    def _report(self, model: nn.Module, opt: torch.optim.Optimizer) -> None:
        """Log the group table (rank 0 only), and which custom keys override a configured rule."""
        self.table = format_table(self.groups, opt, model, self.frozen, self.dialect, self.cfg is None)
        if os.environ.get("RANK", "0") != "0":
            return
        log.info("%s", self.table)
        for g in self.groups:
            over = [d.name for d in g.decisions if d.custom is not None and _overridden(d)]
            if over:
                log.info("param group %s: %d parameters take %s, not the values bias/norm/dwconv/flat rules give "
                         "them (a custom key wins over every rule, as in the reference): %s", g.name, len(over),
                         g.decisions[0].custom.describe(), ", ".join(over))


class DefaultOptimWrapperConstructor(ParamwiseGroups):
    """mmengine 0.10's ``DefaultOptimWrapperConstructor`` rules (:class:`ParamwiseGroups`, dialect mmengine)."""

    def __init__(self, paramwise_cfg: Mapping[str, Any] | None = None, dcn_types: Sequence[type | str] = ()):
        super().__init__(paramwise_cfg, "mmengine", dcn_types)


class DefaultOptimizerConstructor(ParamwiseGroups):
    """mmcv 1.7's ``DefaultOptimizerConstructor`` rules (:class:`ParamwiseGroups`, dialect mmcv)."""

    def __init__(self, paramwise_cfg: Mapping[str, Any] | None = None, dcn_types: Sequence[type | str] = ()):
        super().__init__(paramwise_cfg, "mmcv", dcn_types)


def unwrap(model: nn.Module) -> nn.Module:
    """``model.module`` for a wrapper (every parameter under ``module.``), as both references unwrap.
    A model with a child named ``module`` *and* other parameters is refused: the references would
    silently leave those others out of the optimizer."""
    inner = getattr(model, "module", None)
    if not isinstance(inner, nn.Module):
        return model
    outside = [n for n, _ in model.named_parameters() if not n.startswith("module.")]
    if outside:
        raise ValueError(f"model {type(model).__name__} has a submodule named 'module' and parameters outside it "
                         f"({', '.join(outside[:5])}{', ...' if len(outside) > 5 else ''}): OpenMMLab's constructors "
                         "would optimize only model.module and silently drop those; rename the submodule")
    return inner


_NO_ARG = object()


def _default_of(cls: Any, kw: str) -> Any:
    """The default of ``cls``'s keyword ``kw`` (None if it has none, ``_NO_ARG`` if it has no such argument)."""
    import inspect

    try:
        param = inspect.signature(cls).parameters.get(kw)
    except (TypeError, ValueError):
        return None
    if param is None:
        return _NO_ARG
    return None if param.default is inspect.Parameter.empty else param.default


def _match_string(name: str) -> str:
    """The reference's match string for a parameter's full name: ``prefix.attr`` (``.attr`` at the root)."""
    return name if "." in name else f".{name}"


def _overridden(d: Decision) -> bool:
    """A custom-matched parameter to which a configured rule would have given another value."""
    return any(d.values.get(k) != v for k, v in (d.rules_would_give or {}).items())


# ---- the group table ----------------------------------------------------------------------------
def format_table(groups: Sequence[Group], opt: torch.optim.Optimizer, model: nn.Module, frozen: Sequence[str],
                 dialect: str, single: bool) -> str:
    """One line per group: name, #params, #elements, lr, weight_decay, momentum (or betas), source."""
    by_name = {g.get("name"): g for g in opt.param_groups}
    rows = [("group", "params", "elements", "lr", "weight_decay", _momentum_header(opt), "from")]
    total_p = total_e = 0
    for g in groups:
        tg = by_name[g.name]
        n, e = len(g.decisions), sum(d.param.numel() for d in g.decisions)
        total_p, total_e = total_p + n, total_e + e
        rows.append((g.name, str(n), f"{e:,}", _num(tg.get("lr")), _num(tg.get("weight_decay")),
                     _momentum(tg), g.source))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = [f"param groups ({dialect} paramwise_cfg, {type(opt).__name__}): {len(groups)} groups, "
             f"{total_p} parameters, {total_e:,} elements"]
    for r in rows:
        lines.append("  " + "  ".join(c.ljust(w) if i in (0, 6) else c.rjust(w)
                                      for i, (c, w) in enumerate(zip(r[:-1], widths, strict=True))) + "  " + r[-1])
    params = dict(model.named_parameters())
    if frozen:
        aliases: dict[int, list[str]] = {}
        for n, p in model.named_parameters(remove_duplicate=False):
            aliases.setdefault(id(p), []).append(n)
        e = sum(params[n].numel() for n in frozen)
        listed = [n + "".join(f" (= {a})" for a in aliases[id(params[n])] if a != n) for n in frozen]
        lines.append(f"  frozen, not in the optimizer (requires_grad=False, as mmengine): {len(frozen)} parameters, "
                     f"{e:,} elements: {', '.join(listed)}")
    in_groups = [d.name for g in groups for d in g.decisions if not d.param.requires_grad]
    if in_groups:
        where = "their groups" if single else "group frozen (mmcv: base values)"
        lines.append(f"  frozen, kept in {where}: {len(in_groups)} parameters: {', '.join(in_groups)}")
    return "\n".join(lines)


def _momentum_header(opt: torch.optim.Optimizer) -> str:
    return "betas" if "betas" in opt.defaults and "momentum" not in opt.defaults else "momentum"


def _momentum(group: Mapping[str, Any]) -> str:
    if "momentum" in group:
        return _num(group["momentum"])
    if "betas" in group:
        return "(" + ", ".join(_num(b) for b in group["betas"]) + ")"
    return "-"


def _num(v: Any) -> str:
    return "-" if v is None else f"{v:.6g}" if isinstance(v, float) else str(v)


# ---- OpenMMLab optimizer nodes, pasted as is ------------------------------------------------------
TORCH_RENAMED = {"TorchAdafactor": "Adafactor"}   # mmengine registers torch's Adafactor under this name


def optimizer_class(type_: Any, where: str = "optimizer.type", dialect: str = "mmengine") -> type:
    """``type: 'AdamW'`` → ``torch.optim.AdamW`` (any torch.optim optimizer by name; mmengine calls
    torch's Adafactor ``TorchAdafactor``), an import path ``pkg.mod.Class``, or a class."""
    if isinstance(type_, type):
        return type_
    if not isinstance(type_, str):
        raise ValueError(f"{where}={type_!r} is not valid; allowed: an optimizer name or import path")
    if "." in type_:
        return _import_class(type_, where)
    name = TORCH_RENAMED.get(type_, type_) if dialect == "mmengine" else type_
    cls = getattr(torch.optim, name, None)
    if isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer) and cls is not torch.optim.Optimizer \
            and not (dialect == "mmengine" and type_ == "Adafactor"):
        return cls
    hint = (" (in mmengine 'Adafactor' is transformers' optimizer; torch's is 'TorchAdafactor')"
            if type_ == "Adafactor" else "")
    raise ValueError(f"{where}={type_!r} is not a torch.optim optimizer{hint}; give its import path "
                     f"(type: package.module.Class) or one of: {', '.join(torch_optimizers())}")


def torch_optimizers() -> list[str]:
    return sorted(n for n, c in vars(torch.optim).items()
                  if isinstance(c, type) and issubclass(c, torch.optim.Optimizer) and c is not torch.optim.Optimizer)


def optimizer_factory(cfg: Mapping[str, Any], where: str = "optimizer", dialect: str = "mmengine") -> OptimizerFactory:
    """An OpenMMLab optimizer dict (``type`` + keyword arguments) as ``functools.partial(cls, **kwargs)``."""
    if not isinstance(cfg, Mapping) or "type" not in cfg:
        raise ValueError(f"{where} must be a mapping with 'type' (e.g. {{type: SGD, lr: 0.01}}); got {cfg!r}")
    kwargs = {k: v for k, v in cfg.items() if k != "type"}
    if isinstance(kwargs.get("betas"), list):
        kwargs["betas"] = tuple(kwargs["betas"])
    cls = optimizer_class(cfg["type"], f"{where}.type", dialect)
    import inspect

    try:
        inspect.signature(cls).bind(None, **kwargs)
    except TypeError as e:
        raise ValueError(f"{where}: {cls.__name__} does not take these arguments: {e}") from None
    return functools.partial(cls, **kwargs)


CONSTRUCTORS = {"mmengine": ("DefaultOptimWrapperConstructor", "LearningRateDecayOptimizerConstructor"),
                "mmcv": ("DefaultOptimizerConstructor", "LearningRateDecayOptimizerConstructor")}
WRAPPER_KEYS = ("type", "optimizer", "paramwise_cfg", "constructor")
WRAPPER_ELSEWHERE = {"clip_grad": "trainer.clip_grad (the max norm)", "accumulative_counts": "trainer.grad_accum",
                     "loss_scale": "trainer.mixed_precision=fp16", "dtype": "trainer.mixed_precision"}


class OpenMMLabOptimizer:
    """An mmengine ``optim_wrapper`` node or an mmcv 1.x ``optimizer`` node, pasted as is.

    ``optim_wrapper={type: OptimWrapper, optimizer: {type: AdamW, lr: ..., weight_decay: ...},
    paramwise_cfg: {...}, constructor: ...}`` (mmengine rules) or ``optimizer={type: SGD, lr: ...,
    momentum: ..., paramwise_cfg: {...}, constructor: ...}`` (mmcv rules): exactly one of them. The
    optimizer is built from ``type`` (:func:`optimizer_class`), so the recipe's own ``optimizer``
    must be null. ``constructor`` may be the default one or ``LearningRateDecayOptimizerConstructor``
    (mmdet's layer decay, :class:`~trainkit.optim.layer_decay.LayerDecayConstructor`). Wrapper keys
    that are the training loop's business (``clip_grad``, ``accumulative_counts``, AMP) are refused
    with the trainer option that does it.
    """

    builds_optimizer = True

    def __init__(self, optim_wrapper: Mapping[str, Any] | None = None, optimizer: Mapping[str, Any] | None = None,
                 dcn_types: Sequence[type | str] = ()):
        if (optim_wrapper is None) == (optimizer is None):
            raise ValueError("param_groups (OpenMMLabOptimizer): give exactly one of optim_wrapper (an mmengine "
                             "optim_wrapper node) or optimizer (an mmcv 1.x optimizer node)")
        if optim_wrapper is not None:
            self.dialect, where = "mmengine", "optim_wrapper"
            node = self._wrapper(optim_wrapper)
            opt_cfg = node["optimizer"]
        else:
            self.dialect, where = "mmcv", "optimizer"
            if not isinstance(optimizer, Mapping):
                raise ValueError(f"optimizer must be an mmcv optimizer mapping (type, lr, ...); got {optimizer!r}")
            node = dict(optimizer)
            opt_cfg = {k: v for k, v in node.items() if k not in ("paramwise_cfg", "constructor")}
        where_opt = f"{where}.optimizer" if self.dialect == "mmengine" else "optimizer"
        self.factory = optimizer_factory(opt_cfg, where_opt, self.dialect)
        constructor = node.get("constructor", CONSTRUCTORS[self.dialect][0])
        if constructor not in CONSTRUCTORS[self.dialect]:
            raise ValueError(f"{where}.constructor={constructor!r} is not supported; allowed: "
                             f"{', '.join(CONSTRUCTORS[self.dialect])}")
        paramwise = node.get("paramwise_cfg")
        if constructor == "LearningRateDecayOptimizerConstructor":
            from .layer_decay import LayerDecayConstructor

            self.constructor: Callable = LayerDecayConstructor(paramwise)
        else:
            self.constructor = ParamwiseGroups(_plain(paramwise, f"{where}.paramwise_cfg"), self.dialect, dcn_types)

    def _wrapper(self, node: Any) -> dict[str, Any]:
        if not isinstance(node, Mapping):
            raise ValueError(f"optim_wrapper must be an mmengine optim_wrapper mapping; got {node!r}")
        node = dict(node)
        for key, where in WRAPPER_ELSEWHERE.items():
            if key in node:
                raise ValueError(f"optim_wrapper.{key}={node[key]!r}: the training loop does this; set {where} "
                                 "and remove it here")
        wtype = node.get("type", "OptimWrapper")
        if wtype == "AmpOptimWrapper":
            raise ValueError("optim_wrapper.type='AmpOptimWrapper': set trainer.mixed_precision (fp16 or bf16) and "
                             "type: OptimWrapper here")
        if wtype != "OptimWrapper":
            raise ValueError(f"optim_wrapper.type={wtype!r} is not supported; allowed: OptimWrapper")
        unknown = sorted(set(node) - set(WRAPPER_KEYS))
        if unknown:
            raise ValueError(f"optim_wrapper: unknown keys {unknown}; allowed: {', '.join(WRAPPER_KEYS)}")
        if "optimizer" not in node:
            raise ValueError("optim_wrapper must contain 'optimizer' (e.g. {type: SGD, lr: 0.01})")
        return node

    def __call__(self, model: nn.Module, optimizer: OptimizerFactory | None = None) -> torch.optim.Optimizer:
        if optimizer is not None:
            raise ValueError(f"param_groups (OpenMMLabOptimizer) builds the optimizer from its {self.dialect} node; "
                             "the recipe's 'optimizer' must be null")
        return self.constructor(model, self.factory)

    @property
    def groups(self) -> list[Group]:
        return getattr(self.constructor, "groups", [])


def _plain(node: Any, where: str) -> Any:
    if node is not None and not isinstance(node, Mapping):
        raise ValueError(f"{where} must be a mapping; got {node!r}")
    return node
