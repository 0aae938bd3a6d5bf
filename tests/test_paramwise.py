"""OpenMMLab ``paramwise_cfg`` (trainkit.optim.paramwise) against independent expectations:

- tables the real mmengine 0.10.7 ``DefaultOptimWrapperConstructor`` and mmcv 1.7.2
  ``DefaultOptimizerConstructor`` produced on two toy models with OpenMMLab parameter names
  (tests/reference/paramwise: the scripts, their README and the reduced JSON);
- the hand-checkable cases of the references' own unit tests (mmengine
  tests/test_optim/test_optimizer/test_optimizer.py, mmcv tests/test_runner/test_optimizer.py),
  their values written here as the closed forms those tests assert;
- hand-derived group tables (names, members, values) for the naming and merging rule.
"""
from __future__ import annotations

import copy
import functools
import importlib.util
import json
import logging
import re
from pathlib import Path

import pytest
import torch
from torch import nn

from trainkit.core.groups import group_names
from trainkit.optim import (DefaultOptimizerConstructor, DefaultOptimWrapperConstructor, LayerDecayConstructor,
                            OpenMMLabOptimizer, ParamwiseGroups)
from trainkit.optim.paramwise import optimizer_factory, parse_paramwise_cfg, walk

REF_DIR = Path(__file__).parent / "reference" / "paramwise"
_spec = importlib.util.spec_from_file_location("paramwise_toys", REF_DIR / "toys.py")
toys = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(toys)
TABLES = json.loads((REF_DIR / "tables_reduced.json").read_text())
COLS = TABLES["columns"]
DIALECT = {"mmengine-0.10.7": "mmengine", "mmcv-1.7.2": "mmcv"}
DCN_TYPES = (toys.ToyDeformConv2d, toys.ToyModulatedDeformConv2dPack)


def case_id(entry):
    return f"{DIALECT[entry['reference']]}-{entry['name']}-{entry['model']}"


# ---- what we refuse that the reference accepts ---------------------------------------------------
# (dialect, case) -> (error regex, the keys whose removal gives a config the reference treats the same:
# it ignores them, docs/paramwise.md; None: nothing to compare, e.g. negative multipliers)
FLAT_UNKNOWN_IN_MMCV = (r"unknown keys \['flat_decay_mult'\] for dialect 'mmcv'.*mmcv 1.7 has no such rule",
                        ["flat_decay_mult"])
UNKNOWN_KEYS = (r"unknown keys \['bias_lr_mul', 'foo'\] for dialect '\w+'.*valid keys: custom_keys, bias_lr_mult",
                ["bias_lr_mul", "foo"])
NEGATIVE = (r"paramwise_cfg.bias_lr_mult=-1.0 is not valid; allowed: a finite number >= 0", None)
FLAT_WITHOUT_WD = (r"flat_decay_mult scales weight decay, but optimizer.weight_decay is not set", ["flat_decay_mult"])
REFUSED = {
    ("mmengine", "10d_no_wd_flat_decay_mult"): FLAT_WITHOUT_WD,
    ("mmengine", "10e_adamw_no_wd_key_flat_and_bias"): (FLAT_WITHOUT_WD[0] + r".*AdamW's own default "
                                                        r"weight_decay=0.01", ["flat_decay_mult"]),
    ("mmengine", "12a_unknown_paramwise_keys"): UNKNOWN_KEYS,
    ("mmengine", "12c_negative_multipliers"): NEGATIVE,
    ("mmengine", "12d_custom_key_extra_entries"): (
        r"custom_keys\['bbox_head'\]: keys \['foo'\] are neither lr_mult/decay_mult nor hyper-parameters of SGD",
        ["custom_keys.bbox_head.foo"]),
    ("mmcv", "12a_unknown_paramwise_keys"): UNKNOWN_KEYS,
    ("mmcv", "12c_negative_multipliers"): NEGATIVE,
    ("mmcv", "12d_custom_key_extra_entries"): (
        r"custom_keys\['bbox_head'\]: keys \['foo', 'lr', 'momentum'\] are not valid for dialect 'mmcv'",
        ["custom_keys.bbox_head.foo", "custom_keys.bbox_head.lr", "custom_keys.bbox_head.momentum"]),
    **{("mmcv", name): FLAT_UNKNOWN_IN_MMCV for name in (
        "05_flat_decay0", "06b_custom_keys_overlap_plus_rules", "07b_all_options", "07c_mmpretrain_swin_style",
        "10d_no_wd_flat_decay_mult", "10e_adamw_no_wd_key_flat_and_bias", "13a_bias_vs_custom_and_flat",
        "13b_norm_none_falls_through_to_bias_and_flat", "14a_dcn_ops_unavailable", "14b_dcn_ops_patched")},
}
# the reference raises (TypeError/AttributeError/ValueError); we raise a ValueError that says
REF_ERRORS = {
    "08a_shared_param_bypass_false": r"'bbox_head.fc_reg.weight' is 'bbox_head.fc_cls.weight'.*bypass_duplicate=true",
    "08e_shared_frozen_param_bypass_true": r"'bbox_head.fc_reg.weight' is 'bbox_head.fc_cls.weight' \(shared\) "
                                           r"and frozen: mmcv 1.7 adds frozen parameters before",
    "09c_all_frozen_with_paramwise": r"no trainable parameter: all 36 have requires_grad=False",
    "10a_no_wd_norm_decay_mult": r"norm_decay_mult scales weight decay, but optimizer.weight_decay is not set",
    "10b_no_wd_custom_key_decay_mult": r"custom_keys\['backbone'\].decay_mult scales weight decay",
    "10g_no_wd_dwconv_bias_decay": r"dwconv_decay_mult scales weight decay",
    "11d_no_lr_norm_only": r"bias_lr_mult \(1.0 when not given: mmcv's rules are always on\) scales optimizer.lr "
                           r"for 'backbone.downsample_layers.0.0.bias', but optimizer.lr is not set",
    "11e_no_lr_bias_lr_mult": r"bias_lr_mult scales optimizer.lr for 'backbone.downsample_layers.0.0.bias'",
    "12e_custom_key_value_not_dict": r"custom_keys\['backbone'\]=0.1 is not valid; allowed: a mapping",
    "12f_paramwise_cfg_is_list": r"paramwise_cfg must be a mapping",
    "12g_custom_keys_is_list": r"custom_keys must be a mapping",
}
ACCEPTED = [e for e in TABLES["cases"] if "error" not in e and (DIALECT[e["reference"]], e["name"]) not in REFUSED]
REFUSED_CASES = [e for e in TABLES["cases"] if (DIALECT[e["reference"]], e["name"]) in REFUSED]
ERROR_CASES = [e for e in TABLES["cases"] if "error" in e]


def test_the_case_lists_cover_every_table_entry():
    assert len(TABLES["cases"]) == 130
    assert len(ACCEPTED) + len(REFUSED_CASES) + len(ERROR_CASES) == 130
    assert {e["name"] for e in ERROR_CASES} == set(REF_ERRORS)
    assert not {id(e) for e in REFUSED_CASES} & {id(e) for e in ERROR_CASES}
    assert TABLES["versions"]["mmengine-0.10.7"].startswith("mmengine-lite 0.10.7")
    assert TABLES["versions"]["mmcv-1.7.2"].startswith("mmcv 1.7.2")


# ---- building from a table entry ---------------------------------------------------------------
def optimizer_cfg(entry):
    cfg = dict(entry["optimizer"])
    if cfg["type"].startswith("<class "):            # case 11f: type given as a class
        cfg["type"] = cfg["type"][len("<class "):-1]  # its import path, e.g. torch.optim.sgd.SGD
    return cfg


def paramwise_of(entry, drop=()):
    """The entry's paramwise_cfg (None if absent) without the dotted keys in ``drop``. A config left
    empty by the drop becomes {bypass_duplicate: False}: as any non-empty dict, it keeps the
    reference's per-parameter path, and False is the default."""
    pw = entry["paramwise_cfg"]
    if pw == "<absent>":
        return None
    pw = copy.deepcopy(pw)
    for key in drop:
        *path, last = key.split(".")
        node = pw
        for k in path:
            node = node[k]
        del node[last]
    return pw if pw or not drop else {"bypass_duplicate": False}


def build(entry, via="constructor", drop=()):
    model = toys.build(entry["model"], **entry.get("model_kwargs", {}))
    dialect = DIALECT[entry["reference"]]
    dcn = DCN_TYPES if entry.get("patched") == "dcn_ops" else ()
    pw, opt_cfg = paramwise_of(entry, drop), optimizer_cfg(entry)
    if via == "constructor":
        constructor = ParamwiseGroups(pw, dialect, dcn)
        return model, constructor, constructor(model, optimizer_factory(opt_cfg))
    node = {"type": "OptimWrapper", "optimizer": opt_cfg} if dialect == "mmengine" else dict(opt_cfg)
    if entry["paramwise_cfg"] != "<absent>":
        node["paramwise_cfg"] = pw
    pasted = OpenMMLabOptimizer(**{"optim_wrapper" if dialect == "mmengine" else "optimizer": node}, dcn_types=dcn)
    return model, pasted.constructor, pasted(model)


def check_against_reference(entry, model, constructor, opt):
    """Every parameter: in the optimizer or not as in the reference, and exactly once; lr, weight_decay,
    momentum / betas, eps equal (== and the same repr); groups keep the reference's parameter order."""
    meta = TABLES["models"][f"{entry['model']}:{json.dumps(entry.get('model_kwargs', {}), sort_keys=True)}"]
    params = dict(model.named_parameters())
    assert [m[0] for m in meta] == list(params)
    group_of = {}
    for gi, g in enumerate(opt.param_groups):
        for p in g["params"]:
            assert id(p) not in group_of, "a parameter in two groups"
            group_of[id(p)] = gi
    assert set(group_of) <= {id(p) for p in params.values()}
    ref_index = {}
    for (name, requires_grad, _aliases), row in zip(meta, entry["params"], strict=True):
        ref = dict(zip(COLS, row, strict=True))
        p = params[name]
        assert p.requires_grad == requires_grad
        assert (id(p) in group_of) == ref["in_optimizer"], name
        if not ref["in_optimizer"]:
            assert name in constructor.frozen and not requires_grad   # reported, not lost
            continue
        ref_index[id(p)] = ref["group_index"]
        g = opt.param_groups[group_of[id(p)]]
        for key in ("lr", "weight_decay", "momentum", "betas", "eps"):
            got = g.get(key)
            got = list(got) if isinstance(got, tuple) else got
            assert got == ref[key] and repr(got) == repr(ref[key]), (name, key, got, ref[key])
        if not requires_grad and entry["paramwise_cfg"] not in ("<absent>", None, {}):
            assert g["name"] == "frozen"   # mmcv: base values, in their own named group
    assert len(group_of) == len(ref_index)
    order = [[ref_index[id(p)] for p in g["params"]] for g in opt.param_groups]
    assert all(o == sorted(o) for o in order), "each group keeps the reference's order"
    assert [o[0] for o in order] == sorted(o[0] for o in order), "groups ordered by their first parameter"
    assert len(opt.param_groups) <= entry["n_groups"]
    names = group_names(opt)
    assert names == [g.name for g in constructor.groups] and len(set(names)) == len(names)


@pytest.mark.parametrize("via", ["constructor", "paste"])
@pytest.mark.parametrize("entry", ACCEPTED, ids=case_id)
def test_every_parameter_equals_the_reference(entry, via, caplog):
    with caplog.at_level(logging.INFO, logger="trainkit"):
        model, constructor, opt = build(entry, via)
    check_against_reference(entry, model, constructor, opt)
    for message in entry.get("python_warnings", []) + entry.get("log_warnings", []):
        dup = re.match(r"(?:UserWarning: )?(\S+) is duplicate\. It is skipped since bypass_duplicate=True", message)
        if dup:   # the reference's duplicate warning: ours names the same module
            assert f"paramwise_cfg: {dup.group(1)} is duplicate" in caplog.text
        elif "requires_grad=False" in message:   # mmengine's per-parameter frozen warning: ours is in the table
            assert "frozen, not in the optimizer" in caplog.text and message.split()[0] in caplog.text


@pytest.mark.parametrize("entry", REFUSED_CASES, ids=case_id)
def test_refused_where_the_reference_accepts_silently(entry):
    """We refuse these before training; without the keys the reference ignores, the values are the reference's."""
    pattern, drop = REFUSED[(DIALECT[entry["reference"]], entry["name"])]
    with pytest.raises(ValueError, match=pattern):
        build(entry)
    if drop is not None:
        model, constructor, opt = build(entry, drop=drop)
        check_against_reference(entry, model, constructor, opt)


@pytest.mark.parametrize("via", ["constructor", "paste"])
@pytest.mark.parametrize("entry", ERROR_CASES, ids=case_id)
def test_reference_errors_are_clear_value_errors(entry, via):
    with pytest.raises(ValueError, match=REF_ERRORS[entry["name"]]):
        build(entry, via)


def test_dcn_detected_by_mmcv_ops_class_without_importing_mmcv():
    """A module whose class derives from one named mmcv.ops...ModulatedDeformConv2d is a DCN, as
    isinstance against the real class is in the references: the patched reference run's values."""
    entry = next(e for e in ACCEPTED if e["name"] == "14c_dcn_ops_patched_custom_key" and "mmengine" in e["reference"])
    fake = type("ModulatedDeformConv2d", (nn.Module,), {"__module__": "mmcv.ops.modulated_deform_conv"})
    pack = type("ModulatedDeformConv2dPack", (toys.ToyModulatedDeformConv2dPack, fake),
                {"__module__": "mmcv.ops.modulated_deform_conv"})
    model = toys.build("resnet_toy")
    model.backbone.layer2[0].conv2.__class__ = pack
    constructor = ParamwiseGroups(paramwise_of(entry))
    opt = constructor(model, optimizer_factory(optimizer_cfg(entry)))
    check_against_reference(entry, model, constructor, opt)
    by_name = {g["name"]: g for g in opt.param_groups}
    assert [p.shape[0] for p in by_name["conv_offset"]["params"]] == [27, 27]   # the offset conv's weight, bias
    assert by_name["conv_offset"]["lr"] == 0.02 * 0.01


# ---- names and merging, by hand ----------------------------------------------------------------------
RESNET = "backbone.layer1.0", "backbone.layer2.0"
NECK, HEAD = "neck.lateral_convs.0", "bbox_head"


def resnet_backbone_trainable():
    names = ["backbone.bn1.weight", "backbone.bn1.bias"]
    names += [f"{RESNET[0]}.{n}" for n in ("conv1.weight", "bn1.weight", "bn1.bias", "conv2.weight", "bn2.weight",
                                            "bn2.bias", "dw_conv.weight", "dw_conv.bias", "downsample.0.weight",
                                            "downsample.1.weight", "downsample.1.bias")]
    names += [f"{RESNET[1]}.{n}" for n in ("conv1.weight", "bn1.weight", "bn1.bias", "conv2.weight", "conv2.bias",
                                            "conv2.conv_offset.weight", "conv2.conv_offset.bias", "bn2.weight",
                                            "bn2.bias", "downsample.0.weight", "downsample.1.weight",
                                            "downsample.1.bias")]
    return names


def group_table(model, opt):
    names = {id(p): n for n, p in model.named_parameters()}
    return [(g["name"], [names[id(p)] for p in g["params"]], g["lr"], g["weight_decay"]) for g in opt.param_groups]


SGD = {"type": "SGD", "lr": 0.02, "momentum": 0.9, "weight_decay": 0.0001}
MMDET = {"norm_decay_mult": 0.0, "bias_decay_mult": 0.0, "custom_keys": {"backbone": {"lr_mult": 0.1}}}


def test_mmdet_style_groups_by_hand(caplog):
    """custom key 'backbone' takes the whole backbone (its norms and biases too: a custom key wins over
    every rule); the neck and head split into base, bias (wd 0) and norm (wd 0)."""
    model = toys.build("resnet_toy")
    with caplog.at_level(logging.INFO, logger="trainkit"):
        opt = DefaultOptimWrapperConstructor(MMDET)(model, optimizer_factory(SGD))
    assert group_table(model, opt) == [
        ("backbone", resnet_backbone_trainable(), 0.02 * 0.1, 0.0001),
        ("base", [f"{NECK}.conv.weight", f"{HEAD}.fc_cls.weight", f"{HEAD}.fc_reg.weight"], 0.02, 0.0001),
        ("bias", [f"{NECK}.conv.bias", f"{HEAD}.fc_cls.bias", f"{HEAD}.fc_reg.bias"], 0.02, 0.0),
        ("norm", [f"{NECK}.gn.weight", f"{NECK}.gn.bias", f"{HEAD}.ln.weight", f"{HEAD}.ln.bias"], 0.02, 0.0)]
    assert 0.02 * 0.1 == 0.002
    table = caplog.text
    assert "param groups (mmengine paramwise_cfg, SGD): 4 groups, 35 parameters" in table
    assert re.search(r"backbone\s+25\s+[\d,]+\s+0\.002\s+0\.0001\s+0\.9\s+custom_keys\['backbone'\] lr_mult=0.1",
                     table)
    assert re.search(r"norm\s+4\s+16\s+0\.02\s+0\s+0\.9\s+norm_decay_mult=0.0", table)
    assert "frozen, not in the optimizer (requires_grad=False, as mmengine): 1 parameters, 108 elements: " \
           "backbone.conv1.weight" in table
    # the usual surprise, said at build time: the backbone's norms and biases keep weight decay
    assert re.search(r"param group backbone: 17 parameters take custom_keys\['backbone'\] lr_mult=0.1, not the "
                     r"values bias/norm/dwconv/flat rules give them", table)


def test_mmcv_dialect_keeps_frozen_parameters_in_a_frozen_group():
    model = toys.build("resnet_toy")
    opt = DefaultOptimizerConstructor(MMDET)(model, optimizer_factory(SGD))
    assert [(n, len(m)) for n, m, *_ in group_table(model, opt)] == [
        ("frozen", 1), ("backbone", 25), ("base", 3), ("bias", 3), ("norm", 4)]
    frozen = opt.param_groups[0]
    assert frozen["params"][0] is model.backbone.conv1.weight
    assert (frozen["lr"], frozen["weight_decay"]) == (0.02, 0.0001)   # base values, no rule


def test_rule_names_distinguish_what_set_the_values():
    """mmengine, bias_lr_mult 2 and bias_decay_mult 0, norm_decay_mult unset: a conv bias gets both
    (bias), a norm's bias only the decay rule (bias_decay, the norm is excluded from bias_lr_mult);
    a depthwise conv's weight gets dwconv_decay_mult, its bias the bias rules (they come first)."""
    model = toys.build("convnext_toy")
    cfg = {"bias_lr_mult": 2.0, "bias_decay_mult": 0.0, "dwconv_decay_mult": 0.5}
    opt = ParamwiseGroups(cfg)(model, optimizer_factory({"type": "AdamW", "lr": 0.004, "weight_decay": 0.05}))
    rows = {n: (members, lr, wd) for n, members, lr, wd in group_table(model, opt)}
    assert list(rows) == ["base", "bias", "bias_decay", "dwconv"]
    ds, st = "backbone.downsample_layers", "backbone.stages"
    assert rows["bias"] == ([f"{ds}.0.0.bias", f"{ds}.1.1.bias"] + [
        f"{st}.{s}.0.{m}.bias" for s in (0, 1) for m in ("depthwise_conv", "pointwise_conv1", "pointwise_conv2")]
        + ["head.fc.bias"], 0.008, 0.0)
    assert rows["bias_decay"] == ([f"{ds}.0.1.bias", f"{ds}.1.0.bias", f"{st}.0.0.norm.bias", f"{st}.1.0.norm.bias",
                                   "backbone.norm3.bias"], 0.004, 0.0)
    assert rows["dwconv"] == ([f"{st}.0.0.depthwise_conv.weight", f"{st}.1.0.depthwise_conv.weight"], 0.004, 0.025)
    # mmcv: a dwconv's bias takes dwconv_decay_mult (dwconv before bias), its lr the bias rule
    opt = ParamwiseGroups(cfg, "mmcv")(toys.build("convnext_toy"),
                                       optimizer_factory({"type": "AdamW", "lr": 0.004, "weight_decay": 0.05}))
    rows = {g["name"]: (len(g["params"]), g["lr"], g["weight_decay"]) for g in opt.param_groups}
    assert rows["dwconv.bias_lr"] == (2, 0.008, 0.025)
    assert rows["dwconv"] == (2, 0.004, 0.025)
    assert "bias_decay" not in rows   # mmcv never gives a norm's bias bias_decay_mult


def test_names_are_unique_when_a_custom_key_collides_with_a_rule():
    model = toys.build("convnext_toy")
    cfg = {"norm_decay_mult": 0.0, "custom_keys": {"head": {"lr_mult": 2.0}, ".norm": {"lr_mult": 0.5}}}
    opt = ParamwiseGroups(cfg)(model, optimizer_factory({"type": "AdamW", "lr": 0.004, "weight_decay": 0.05}))
    assert group_names(opt) == ["base", "norm", "norm_2", "head"]
    by_name = {g["name"]: g for g in opt.param_groups}
    # the rule: the downsample layers' LayerNorm2d (named 0/1); '.norm': stages.*.0.norm and norm3
    assert len(by_name["norm"]["params"]) == 4 and by_name["norm"]["weight_decay"] == 0.0
    assert len(by_name["norm_2"]["params"]) == 6 and by_name["norm_2"]["lr"] == 0.002
    assert by_name["norm_2"]["weight_decay"] == 0.05


# ---- merged groups update exactly like one group per parameter -------------------------------------
OPTIMIZERS = {
    "sgd_momentum": {"type": "SGD", "lr": 0.02, "momentum": 0.9, "weight_decay": 0.0001},
    "sgd_nesterov": {"type": "SGD", "lr": 0.02, "momentum": 0.9, "weight_decay": 0.0001, "nesterov": True},
    "adamw": {"type": "AdamW", "lr": 0.004, "weight_decay": 0.05, "foreach": False},
    "adamw_foreach": {"type": "AdamW", "lr": 0.004, "weight_decay": 0.05, "foreach": True},
    "adamw_fused": {"type": "AdamW", "lr": 0.004, "weight_decay": 0.05, "fused": True},
    "sgd_fused": {"type": "SGD", "lr": 0.02, "momentum": 0.9, "weight_decay": 0.0001, "fused": True},
}
ALL_RULES = {"bias_lr_mult": 2.0, "bias_decay_mult": 0.5, "norm_decay_mult": 0.0, "dwconv_decay_mult": 0.1,
             "flat_decay_mult": 0.3, "custom_keys": {"head.fc": {"lr_mult": 10.0, "decay_mult": 2.0}}}


@pytest.mark.parametrize("dialect", ["mmengine", "mmcv"])
@pytest.mark.parametrize("model_name", ["resnet_toy", "convnext_toy"])
@pytest.mark.parametrize("opt_name", list(OPTIMIZERS))
def test_merged_groups_step_bitwise_like_one_group_per_parameter(opt_name, model_name, dialect):
    cfg = {k: v for k, v in ALL_RULES.items() if not (dialect == "mmcv" and k == "flat_decay_mult")}
    factory = optimizer_factory(OPTIMIZERS[opt_name])
    merged_model, single_model = toys.build(model_name), toys.build(model_name)
    merged = ParamwiseGroups(cfg, dialect)(merged_model, factory)
    base = factory.keywords
    decisions = walk(single_model, parse_paramwise_cfg(cfg, dialect), base["lr"], base["weight_decay"]).decisions
    single = factory([{"params": [d.param], **d.values} for d in decisions])   # the reference's layout
    assert len(single.param_groups) > 30 and len(merged.param_groups) <= 7
    names = {id(p): n for n, p in merged_model.named_parameters()}
    merged_order = [names[id(p)] for g in merged.param_groups for p in g["params"]]
    assert merged_order != [d.name for d in decisions]   # the update order really differs
    for step in range(3):
        gen = torch.Generator().manual_seed(step)
        for p, q in zip(merged_model.parameters(), single_model.parameters(), strict=True):
            if p.requires_grad:
                p.grad = torch.randn(p.shape, generator=gen)
                q.grad = p.grad.clone()
        merged.step()
        single.step()
    moved = 0
    for (n, p), q in zip(merged_model.named_parameters(), single_model.parameters(), strict=True):
        assert torch.equal(p, q), n
        moved += int(p.requires_grad)
    assert moved > 30


# ---- the references' own unit tests, their hand-checkable values ------------------------------------
class SubModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(2, 2, kernel_size=1, groups=2)
        self.gn = nn.GroupNorm(2, 2)
        self.param1 = nn.Parameter(torch.ones(1))


class ExampleModel(nn.Module):
    """The references' unit-test model (without its DCN, which needs mmcv-full)."""

    def __init__(self):
        super().__init__()
        self.param1 = nn.Parameter(torch.ones(1))
        self.conv1 = nn.Conv2d(3, 4, kernel_size=1, bias=False)
        self.conv2 = nn.Conv2d(4, 2, kernel_size=1)
        self.bn = nn.BatchNorm2d(2)
        self.sub = SubModel()


class ExampleDuplicateModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.param1 = nn.Parameter(torch.ones(1))
        self.conv1 = nn.Sequential(nn.Conv2d(3, 4, kernel_size=1, bias=False))
        self.conv2 = nn.Sequential(nn.Conv2d(4, 2, kernel_size=1))
        self.bn = nn.BatchNorm2d(2)
        self.sub = SubModel()
        self.conv3 = nn.Sequential(nn.Conv2d(3, 4, kernel_size=1, bias=False))
        self.conv3[0] = self.conv1[0]


class PseudoDataParallel(nn.Module):
    def __init__(self):
        super().__init__()
        self.module = ExampleModel()


BASE_LR, MOMENTUM, BASE_WD = 0.01, 0.0001, 0.9
UNIT_SGD = functools.partial(torch.optim.SGD, lr=BASE_LR, momentum=MOMENTUM, weight_decay=BASE_WD)
UNIT_CFG = {"bias_lr_mult": 2, "bias_decay_mult": 0.5, "norm_decay_mult": 0, "dwconv_decay_mult": 0.1,
            "dcn_offset_lr_mult": 0.1, "flat_decay_mult": 0.3}


def unit_test_expectations(dialect, bias_lr_mult=1, bias_decay_mult=1, norm_decay_mult=1, dwconv_decay_mult=1,
                           flat_decay_mult=1, **_):
    """(lr, weight_decay) per parameter as ``_check_sgd_optimizer`` (mmengine) / ``check_sgd_optimizer``
    (mmcv) assert them: the only difference is the depthwise conv's bias, and mmcv has no flat rule."""
    flat = flat_decay_mult if dialect == "mmengine" else 1
    dw_bias_wd = bias_decay_mult if dialect == "mmengine" else dwconv_decay_mult
    return {
        "param1": (BASE_LR, BASE_WD * flat),
        "conv1.weight": (BASE_LR, BASE_WD),
        "conv2.weight": (BASE_LR, BASE_WD),
        "conv2.bias": (BASE_LR * bias_lr_mult, BASE_WD * bias_decay_mult),
        "bn.weight": (BASE_LR, BASE_WD * norm_decay_mult),
        "bn.bias": (BASE_LR, BASE_WD * norm_decay_mult),
        "sub.param1": (BASE_LR, BASE_WD * flat),
        "sub.conv1.weight": (BASE_LR, BASE_WD * dwconv_decay_mult),
        "sub.conv1.bias": (BASE_LR * bias_lr_mult, BASE_WD * dw_bias_wd),
        "sub.gn.weight": (BASE_LR, BASE_WD * norm_decay_mult),
        "sub.gn.bias": (BASE_LR, BASE_WD * norm_decay_mult),
    }


def values_by_name(model, opt, prefix=""):
    names = {id(p): n.removeprefix(prefix) for n, p in model.named_parameters()}
    out = {}
    for g in opt.param_groups:
        assert g["momentum"] == MOMENTUM
        for p in g["params"]:
            assert names[id(p)] not in out
            out[names[id(p)]] = (g["lr"], g["weight_decay"])
    return out


@pytest.mark.parametrize("dialect", ["mmengine", "mmcv"])
@pytest.mark.parametrize("wrapped", [False, True])
def test_unit_test_paramwise_cfg(dialect, wrapped):
    cfg = dict(UNIT_CFG) if dialect == "mmengine" else {k: v for k, v in UNIT_CFG.items() if k != "flat_decay_mult"}
    model = PseudoDataParallel() if wrapped else ExampleModel()
    opt = ParamwiseGroups(cfg, dialect)(model, UNIT_SGD)
    assert opt.defaults["lr"] == BASE_LR and opt.defaults["weight_decay"] == BASE_WD
    assert values_by_name(model, opt, "module." if wrapped else "") == unit_test_expectations(dialect, **cfg)
    assert values_by_name(model, opt, "module." if wrapped else "")["sub.conv1.bias"][1] == \
        (0.45 if dialect == "mmengine" else 0.09000000000000001)


@pytest.mark.parametrize("cfg", [None, {}])
def test_unit_test_no_or_empty_paramwise_cfg_is_one_group_of_all_parameters(cfg):
    for frozen in (False, True):
        model = ExampleModel()
        model.requires_grad_(not frozen)
        opt = ParamwiseGroups(cfg)(model, UNIT_SGD)
        assert len(opt.param_groups) == 1 and opt.param_groups[0]["name"] == "base"
        assert [id(p) for p in opt.param_groups[0]["params"]] == [id(p) for p in model.parameters()]


def test_unit_test_frozen_conv_left_out_by_mmengine():
    model = ExampleModel()
    model.conv1.requires_grad_(False)
    constructor = ParamwiseGroups({k: v for k, v in UNIT_CFG.items() if k != "flat_decay_mult"})
    opt = constructor(model, UNIT_SGD)
    in_opt = {id(p) for g in opt.param_groups for p in g["params"]}
    assert id(model.conv1.weight) not in in_opt and id(model.conv2.weight) in in_opt
    assert constructor.frozen == ["conv1.weight"]


def test_unit_test_all_frozen_mmcv_keeps_base_values():
    model = ExampleModel()
    model.requires_grad_(False)
    opt = DefaultOptimizerConstructor({k: v for k, v in UNIT_CFG.items() if k != "flat_decay_mult"})(model, UNIT_SGD)
    assert values_by_name(model, opt) == {n: (BASE_LR, BASE_WD) for n, _ in model.named_parameters()}


@pytest.mark.parametrize("dialect", ["mmengine", "mmcv"])
def test_unit_test_bypass_duplicate(dialect, caplog):
    cfg = {"bias_lr_mult": 2, "bias_decay_mult": 0.5, "norm_decay_mult": 0, "dwconv_decay_mult": 0.1}
    with pytest.raises(ValueError, match=r"'conv3.0.weight' is 'conv1.0.weight'"):
        ParamwiseGroups(cfg, dialect)(ExampleDuplicateModel(), UNIT_SGD)
    model = ExampleDuplicateModel()
    with caplog.at_level(logging.WARNING, logger="trainkit"):
        constructor = ParamwiseGroups({**cfg, "bypass_duplicate": True}, dialect)
        opt = constructor(model, UNIT_SGD)
    assert "paramwise_cfg: conv3.0 is duplicate" in caplog.text
    assert constructor.duplicates == [("conv3.0.weight", "conv1.0.weight")]
    got = values_by_name(model, opt)
    assert len(got) == len(list(model.parameters())) == 11
    expected = unit_test_expectations(dialect, **cfg)   # conv1/conv2 are Sequentials here: conv1.0.weight, ...
    assert {n.replace("conv1.0.", "conv1.").replace("conv2.0.", "conv2."): v for n, v in got.items()} == expected
    if dialect == "mmengine":   # the shared module frozen: one parameter fewer
        model.conv1[0].requires_grad_(False)
        opt = ParamwiseGroups({**cfg, "bypass_duplicate": True})(model, UNIT_SGD)
        assert sum(len(g["params"]) for g in opt.param_groups) == 10


@pytest.mark.parametrize("dialect", ["mmengine", "mmcv"])
def test_unit_test_custom_keys(dialect, caplog):
    cfg = {"custom_keys": {"param1": {"lr_mult": 10}, "sub": {"lr_mult": 0.1, "decay_mult": 0},
                           "sub.gn": {"lr_mult": 0.01}, "non_exist_key": {"lr_mult": 0.0}},
           "norm_decay_mult": 0.5}
    model = ExampleModel()
    with caplog.at_level(logging.WARNING, logger="trainkit"):
        opt = ParamwiseGroups(cfg, dialect)(model, UNIT_SGD)
    assert "paramwise_cfg.custom_keys['non_exist_key'] matches no parameter of the model" in caplog.text
    expected = {}
    for n in ("param1", "sub.param1"):        # 'param1' is the longest match for 'sub.param1'
        expected[n] = (BASE_LR * 10, BASE_WD)
    for n in ("sub.gn.weight", "sub.gn.bias"):
        expected[n] = (BASE_LR * 0.01, BASE_WD)
    for n in ("sub.conv1.weight", "sub.conv1.bias"):
        expected[n] = (BASE_LR * 0.1, 0)
    for n in ("bn.weight", "bn.bias"):          # norm_decay_mult outside the custom keys
        expected[n] = (BASE_LR, BASE_WD * 0.5)
    for n in ("conv1.weight", "conv2.weight", "conv2.bias"):
        expected[n] = (BASE_LR, BASE_WD)
    assert values_by_name(model, opt) == expected
    assert group_names(opt) == ["param1", "base", "norm", "sub", "sub.gn"]
    # custom_keys without weight_decay in the optimizer: torch's SGD default 0
    model = ExampleModel()
    no_wd = functools.partial(torch.optim.SGD, lr=BASE_LR, momentum=MOMENTUM)
    opt = ParamwiseGroups({"custom_keys": {"param1": {"lr_mult": 10}}}, dialect)(model, no_wd)
    assert opt.defaults["weight_decay"] == 0
    assert values_by_name(model, opt) == {n: (BASE_LR * 10 if n.endswith("param1") else BASE_LR, 0)
                                          for n, _ in model.named_parameters()}
    with pytest.raises(ValueError, match=r"custom_keys\['.backbone'\].decay_mult scales weight decay"):
        ParamwiseGroups({"custom_keys": {".backbone": {"decay_mult": 0.5}}}, dialect)(ExampleModel(), no_wd)


# ---- bad input ---------------------------------------------------------------------------------------
ADAMW = functools.partial(torch.optim.AdamW, lr=0.004, weight_decay=0.05)


@pytest.mark.parametrize("cfg,dialect,match", [
    ({"norm_decay_mul": 0.0}, "mmengine", r"unknown keys \['norm_decay_mul'\] .*valid keys: custom_keys, "
                                          r"bias_lr_mult, bias_decay_mult, norm_decay_mult, dwconv_decay_mult, "
                                          r"flat_decay_mult, dcn_offset_lr_mult, bypass_duplicate"),
    ({"flat_decay_mult": 0.0}, "mmcv", r"flat_decay_mult is mmengine's.*valid keys: custom_keys, bias_lr_mult, "
                                       r"bias_decay_mult, norm_decay_mult, dwconv_decay_mult, dcn_offset_lr_mult, "
                                       r"bypass_duplicate$"),
    ({"norm_decay_mult": -0.5}, "mmengine", r"paramwise_cfg.norm_decay_mult=-0.5 is not valid; allowed: a finite"),
    ({"custom_keys": {"head": {"lr_mult": -1}}}, "mmcv", r"custom_keys\['head'\].lr_mult=-1 is not valid"),
    ({"custom_keys": {"head": {"lr": -1.0}}}, "mmengine", r"custom_keys\['head'\].lr=-1.0 is not valid"),
    ({"bias_lr_mult": "2"}, "mmengine", r"bias_lr_mult='2' is not valid"),
    ({"bias_lr_mult": True}, "mmengine", r"bias_lr_mult=True is not valid"),
    ({"bias_lr_mult": float("nan")}, "mmengine", r"bias_lr_mult=nan is not valid"),
    ({"bypass_duplicate": "true"}, "mmengine", r"bypass_duplicate='true' is not valid; allowed: true, false"),
    ({"custom_keys": {3: {"lr_mult": 1.0}}}, "mmengine", r"key 3 must be a string"),
    ({}, "mmdet", r"dialect='mmdet' is not valid; allowed: mmengine, mmcv"),
])
def test_bad_paramwise_cfg_fails_at_construction(cfg, dialect, match):
    with pytest.raises(ValueError, match=match):
        ParamwiseGroups(cfg, dialect)


def test_decay_mult_without_weight_decay_names_the_keys():
    lr_only = functools.partial(torch.optim.AdamW, lr=0.004)
    with pytest.raises(ValueError, match=r"bias_decay_mult, norm_decay_mult scale weight decay, but optimizer."
                                         r"weight_decay is not set.*AdamW's own default weight_decay=0.01"):
        ParamwiseGroups({"bias_decay_mult": 0.0, "norm_decay_mult": 0.0})(toys.build("convnext_toy"), lr_only)
    rprop = functools.partial(torch.optim.Rprop, lr=0.01)
    with pytest.raises(ValueError, match=r"flat_decay_mult scales weight decay, but Rprop has no weight_decay"):
        ParamwiseGroups({"flat_decay_mult": 0.0})(toys.build("convnext_toy"), rprop)
    # an lr-only config needs no weight decay
    opt = ParamwiseGroups({"bias_lr_mult": 2.0})(toys.build("convnext_toy"), rprop)
    assert {g["name"]: g["lr"] for g in opt.param_groups} == {"base": 0.01, "bias": 0.02}


def test_warnings_for_keys_and_rules_that_decide_nothing(caplog):
    cfg = {"norm_decay_mult": 0.0, "dcn_offset_lr_mult": 0.1,
           "custom_keys": {"backbone": {"lr_mult": 0.1}, "norm": {"decay_mult": 0.0}, "neck": {"lr_mult": 2.0}}}
    with caplog.at_level(logging.WARNING, logger="trainkit"):
        ParamwiseGroups(cfg)(toys.build("convnext_toy"), ADAMW)
    text = caplog.text
    assert "custom_keys['neck'] matches no parameter of the model" in text
    assert "custom_keys['norm'] decides no parameter: the 6 it matches are taken by longer keys ['backbone']" in text
    assert "norm_decay_mult=0.0 applies to no parameter of this model (custom keys, which win over every rule, " \
           "took the 10 it would apply to)" in text
    assert "dcn_offset_lr_mult: the model has no deformable conv" in text


def test_a_submodule_named_module_with_other_parameters_is_refused():
    class Odd(nn.Module):
        def __init__(self):
            super().__init__()
            self.module = nn.Linear(2, 2)
            self.head = nn.Linear(2, 2)

    with pytest.raises(ValueError, match=r"submodule named 'module' and parameters outside it \(head.weight, "
                                         r"head.bias\).*silently drop those"):
        ParamwiseGroups({"bias_lr_mult": 2.0})(Odd(), ADAMW)


@pytest.mark.parametrize("node,match", [
    ({"optim_wrapper": {"optimizer": {"type": "SGD", "lr": 0.1}, "clip_grad": {"max_norm": 35}}},
     r"optim_wrapper.clip_grad=\{'max_norm': 35\}: the training loop does this; set trainer.clip_grad"),
    ({"optim_wrapper": {"optimizer": {"type": "SGD", "lr": 0.1}, "accumulative_counts": 4}},
     r"set trainer.grad_accum"),
    ({"optim_wrapper": {"type": "AmpOptimWrapper", "optimizer": {"type": "SGD", "lr": 0.1}}},
     r"set trainer.mixed_precision"),
    ({"optim_wrapper": {"type": "OptimWrapper"}}, r"optim_wrapper must contain 'optimizer'"),
    ({"optim_wrapper": {"optimizer": {"type": "LARS", "lr": 0.1}}},
     r"optim_wrapper.optimizer.type='LARS' is not a torch.optim optimizer; .*one of: .*AdamW.*SGD"),
    ({"optim_wrapper": {"optimizer": {"type": "Adafactor", "lr": 0.1}}}, r"torch's is 'TorchAdafactor'"),
    ({"optim_wrapper": {"optimizer": {"type": "SGD", "lr": 0.1, "betas": [0.9, 0.99]}}},
     r"SGD does not take these arguments"),
    ({"optim_wrapper": {"optimizer": {"lr": 0.1}}}, r"must be a mapping with 'type'"),
    ({"optim_wrapper": {"optimizer": {"type": "SGD", "lr": 0.1}, "constructor": "LayerDecayOptimWrapperConstructor"}},
     r"constructor='LayerDecayOptimWrapperConstructor' is not supported; allowed: DefaultOptimWrapperConstructor, "
     r"LearningRateDecayOptimizerConstructor"),
    ({"optimizer": {"type": "SGD", "lr": 0.1, "paramwise_cfg": {"flat_decay_mult": 0.0}}}, r"dialect 'mmcv'"),
    ({}, r"give exactly one of optim_wrapper"),
    ({"optim_wrapper": {"optimizer": {"type": "SGD"}}, "optimizer": {"type": "SGD"}}, r"give exactly one"),
])
def test_bad_pasted_nodes(node, match):
    with pytest.raises(ValueError, match=match):
        OpenMMLabOptimizer(**node)


def test_pasted_nodes_resolve_types_and_build_what_the_constructors_build():
    mmengine = OpenMMLabOptimizer(optim_wrapper={"type": "OptimWrapper", "paramwise_cfg": MMDET, "optimizer": {
        "type": "SGD", "lr": 0.02, "momentum": 0.9, "weight_decay": 0.0001}})
    model = toys.build("resnet_toy")
    opt = mmengine(model)
    assert type(opt) is torch.optim.SGD and group_names(opt) == ["backbone", "base", "bias", "norm"]
    mmcv = OpenMMLabOptimizer(optimizer={"type": "AdamW", "lr": 0.004, "betas": [0.9, 0.98], "weight_decay": 0.05,
                                         "paramwise_cfg": {"norm_decay_mult": 0.0}})
    opt = mmcv(toys.build("convnext_toy"))
    assert type(opt) is torch.optim.AdamW and opt.defaults["betas"] == (0.9, 0.98)
    assert group_names(opt) == ["base", "norm"]
    with pytest.raises(ValueError, match=r"the recipe's 'optimizer' must be null"):
        mmcv(toys.build("convnext_toy"), ADAMW)


def test_pasted_layer_decay_constructor_is_mmdets():
    """mmdet 3.x's LearningRateDecayOptimizerConstructor subclasses mmengine's default constructor but
    replaces its add_params: none of the paramwise rules apply, only the optimizer build is shared."""
    from trainkit.tasks.convnext import ConvNeXt, ConvNeXtClassifier

    def convnext_detector():
        backbone = ConvNeXt(3, (1, 1, 3, 1), (4, 8, 8, 8), out_indices=(0, 1, 2, 3))
        return ConvNeXtClassifier(backbone, neck=nn.Linear(8, 8), head=nn.Linear(8, 3))

    cfg = {"num_layers": 6, "decay_rate": 0.9, "decay_type": "layer_wise"}
    pasted = OpenMMLabOptimizer(optim_wrapper={"constructor": "LearningRateDecayOptimizerConstructor",
                                               "paramwise_cfg": cfg, "optimizer": {
                                                   "type": "AdamW", "lr": 0.004, "weight_decay": 0.05}})
    assert isinstance(pasted.constructor, LayerDecayConstructor)
    a = pasted(convnext_detector())
    b = LayerDecayConstructor(cfg)(convnext_detector(), ADAMW)
    strip = [{k: v for k, v in g.items() if k != "params"} for g in a.param_groups]
    assert strip == [{k: v for k, v in g.items() if k != "params"} for g in b.param_groups]
    assert len(strip) == 12 and strip[0]["group_name"] == "layer_0_decay"


# ---- the recipe, end to end -----------------------------------------------------------------------
RECIPE_GROUPS = {   # by hand: ConvNeXt depths [1,1,3,1] (6 blocks), 4 downsample layers, norm3, a Linear head
    "base": (4 + 6 * 3, 0.004, 0.05),     # downsample convs' weights; per block dwconv, pw1, pw2 weights
    "bias": (4 + 6 * 3, 0.004, 0.0),      # their biases
    "norm": (8 + 6 * 2 + 2, 0.004, 0.0),  # LayerNorm2d in each downsample layer, each block's norm, norm3
    "flat": (6, 0.004, 0.0),              # each block's 1-D gamma
    "head": (2, 0.008, 0.05),             # custom_keys head lr_mult 2: its bias keeps weight decay
}


def test_recipe_builds_the_hand_table(make_cfg):
    from trainkit.build import build_model_and_optimizer

    model, opt = build_model_and_optimizer(make_cfg("+recipe=convnext_paramwise"))
    assert type(opt) is torch.optim.AdamW and opt.defaults["betas"] == (0.9, 0.999)
    got = {g["name"]: (len(g["params"]), g["lr"], g["weight_decay"]) for g in opt.param_groups}
    assert got == RECIPE_GROUPS
    assert sum(n for n, *_ in RECIPE_GROUPS.values()) == len(list(model.parameters())) == 74


def test_recipe_with_a_torch_optimizer_node_and_paramwise_groups(make_cfg):
    """The same rules on the recipe's own ``optimizer`` (a torch _target_): ParamwiseGroups."""
    from omegaconf import OmegaConf

    from trainkit.build import build_model_and_optimizer

    cfg = make_cfg("+recipe=convnext_paramwise")
    pw = OmegaConf.to_container(cfg.param_groups.optim_wrapper.paramwise_cfg)
    cfg.optimizer = OmegaConf.create({"_target_": "torch.optim.AdamW", "lr": 0.004, "weight_decay": 0.05})
    cfg.param_groups = OmegaConf.create({"_target_": "trainkit.optim.ParamwiseGroups", "paramwise_cfg": pw})
    _, opt = build_model_and_optimizer(cfg)
    assert {g["name"]: (len(g["params"]), g["lr"], g["weight_decay"]) for g in opt.param_groups} == RECIPE_GROUPS


def test_recipe_errors_name_the_config_keys(make_cfg, caplog):
    from omegaconf import OmegaConf

    from trainkit.build import build_model_and_optimizer

    cfg = make_cfg("+recipe=convnext_paramwise", "param_groups.optim_wrapper.paramwise_cfg.norm_decay_mult=-1")
    with pytest.raises(ValueError, match=r"config key 'param_groups' \(_target_ trainkit.optim.OpenMMLabOptimizer\)"
                                         r".*paramwise_cfg.norm_decay_mult=-1 is not valid"):
        build_model_and_optimizer(cfg)
    cfg = make_cfg("+recipe=convnext_paramwise", "param_groups.optim_wrapper.paramwise_cfg.custom_keys.head.lr_mult=2")
    cfg.optimizer = OmegaConf.create({"_target_": "torch.optim.SGD", "lr": 0.1})
    with pytest.raises(ValueError, match=r"config key 'optimizer' must be null: param_groups \(OpenMMLabOptimizer\)"):
        build_model_and_optimizer(cfg)
    cfg = make_cfg("+recipe=digits_baseline", "optimizer=null")
    with pytest.raises(ValueError, match=r"config key 'optimizer' is null"):
        build_model_and_optimizer(cfg)
    # a custom key that matches nothing is a warning naming it, not an error
    cfg = make_cfg("+recipe=convnext_paramwise", "+param_groups.optim_wrapper.paramwise_cfg.custom_keys.neck.lr_mult=2")
    with caplog.at_level(logging.WARNING, logger="trainkit"):
        build_model_and_optimizer(cfg)
    assert "paramwise_cfg.custom_keys['neck'] matches no parameter of the model" in caplog.text


def test_recipe_preview_shows_the_named_groups(tmp_path, capsys):
    from trainkit.cli.schedule import main

    main(["+recipe=convnext_paramwise", "trainer.max_epochs=1", "iters_per_epoch=5", f"out={tmp_path}"])
    header = (tmp_path / "schedule.csv").read_text().splitlines()[0].split(",")
    assert header == ["epoch", "iter", *(f"lr/{n}" for n in RECIPE_GROUPS), *(f"momentum/{n}" for n in RECIPE_GROUPS)]
    assert "5 param groups" in capsys.readouterr().out


@pytest.mark.slow
def test_recipe_logs_every_group_and_resumes_exactly(tmp_path, caplog):
    from hydra import compose, initialize_config_dir

    from trainkit import config as C
    from trainkit.cli.train import run_config
    from trainkit.core.record import read_jsonl

    def cfg(*overrides):
        C.register()
        with initialize_config_dir(config_dir=str(C.CONF_DIR), version_base="1.3"):
            return compose("config", overrides=[
                "+recipe=convnext_paramwise", "~components.lr", "trainer.progress=false", "logger=none",
                "trainer.max_epochs=null", "trainer.log_interval=1", "trainer.batch_size=16",
                "model.backbone.channels=[4,8,8,8]", "model.head.in_features=8", *overrides])

    with caplog.at_level(logging.INFO, logger="trainkit"):
        run_config(cfg("trainer.max_iters=4"), tmp_path / "full")
    assert "param groups (mmengine paramwise_cfg, AdamW): 5 groups, 74 parameters" in caplog.text
    run_config(cfg("trainer.max_iters=2"), tmp_path / "cut")
    run_config(cfg("trainer.max_iters=4", "trainer.resume=auto"), tmp_path / "cut")
    full = [r for r in read_jsonl(tmp_path / "full" / "metrics.jsonl") if "loss" in r]
    resumed = [r for r in read_jsonl(tmp_path / "cut" / "metrics.jsonl") if "loss" in r]
    assert [r["step"] for r in full] == list(range(4))
    assert [(r["step"], r["loss"]) for r in resumed] == [(r["step"], r["loss"]) for r in full]
    for row in full:   # no lr schedule: each group keeps its own lr
        assert [k for k in row if k.startswith("lr/")] == [f"lr/{n}" for n in RECIPE_GROUPS]
        assert {n: row[f"lr/{n}"] for n in RECIPE_GROUPS} == {n: v[1] for n, v in RECIPE_GROUPS.items()}
        assert all(row[f"momentum/{n}"] == 0.9 for n in RECIPE_GROUPS)
