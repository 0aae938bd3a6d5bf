"""Layer-wise lr decay against tables derived by hand from mmdet 3.x's
LearningRateDecayOptimizerConstructor rules (and its own unit test's expectations)."""
from __future__ import annotations

import functools
import logging

import pytest
import torch
from torch import nn

from trainkit.optim.layer_decay import LayerDecayConstructor, LearningRateDecayOptimizerConstructor
from trainkit.tasks.convnext import ConvNeXt, ConvNeXtClassifier
from trainkit.core.groups import group_names

LR, WD = 1e-4, 0.05
DS, ST = "backbone.downsample_layers", "backbone.stages"


def adamw(lr=LR, weight_decay=WD, **kw):
    return functools.partial(torch.optim.AdamW, lr=lr, weight_decay=weight_decay, **kw)


def build(model, decay_type="layer_wise", num_layers=6, decay_rate=0.9, **kw):
    cfg = {"num_layers": num_layers, "decay_rate": decay_rate, "decay_type": decay_type}
    constructor = LayerDecayConstructor(cfg, **kw)
    return constructor, constructor(model, adamw())


def convnext_detector(depths=(1, 1, 3, 1), frozen_stages=0):
    """ConvNeXt backbone (norm0..3) + Linear neck + Linear head, as in mmdet's detectors."""
    backbone = ConvNeXt(3, depths, (4, 8, 8, 8), out_indices=(0, 1, 2, 3), frozen_stages=frozen_stages)
    return ConvNeXtClassifier(backbone, neck=nn.Linear(8, 8), head=nn.Linear(8, 3))


# ---- hand tables: parameter names by mmdet's no-decay rule (1-D or ".bias") -------------
def ds(i, kind):
    """downsample_layers.i: the stem is (conv, LN), the others (LN, conv)."""
    if kind == "decay":
        return [f"{DS}.{i}.{0 if i == 0 else 1}.weight"]
    if i == 0:
        return [f"{DS}.0.0.bias", f"{DS}.0.1.weight", f"{DS}.0.1.bias"]
    return [f"{DS}.{i}.0.weight", f"{DS}.{i}.0.bias", f"{DS}.{i}.1.bias"]


def blk(s, b, kind):
    p = f"{ST}.{s}.{b}."
    if kind == "decay":
        return [p + "depthwise_conv.weight", p + "pointwise_conv1.weight", p + "pointwise_conv2.weight"]
    return [p + "gamma", p + "depthwise_conv.bias", p + "norm.weight", p + "norm.bias",
            p + "pointwise_conv1.bias", p + "pointwise_conv2.bias"]


NORMS = [f"backbone.norm{i}.{w}" for i in range(4) for w in ("weight", "bias")]

# (group name, layer id, member names), in optimizer order (first appearance).
LAYER_WISE = [
    ("layer_0_decay", 0, ds(0, "decay")),
    ("layer_0_no_decay", 0, ds(0, "no_decay")),
    ("layer_2_no_decay", 2, ds(1, "no_decay") + blk(1, 0, "no_decay")),
    ("layer_2_decay", 2, ds(1, "decay") + blk(1, 0, "decay")),
    ("layer_3_no_decay", 3, ds(2, "no_decay") + blk(2, 0, "no_decay") + blk(2, 1, "no_decay") + blk(2, 2, "no_decay")),
    ("layer_3_decay", 3, ds(2, "decay") + blk(2, 0, "decay") + blk(2, 1, "decay") + blk(2, 2, "decay")),
    ("layer_6_no_decay", 6, ds(3, "no_decay") + blk(3, 0, "no_decay")),
    ("layer_6_decay", 6, ds(3, "decay") + blk(3, 0, "decay")),
    ("layer_1_no_decay", 1, blk(0, 0, "no_decay")),
    ("layer_1_decay", 1, blk(0, 0, "decay")),
    ("layer_7_no_decay", 7, NORMS + ["neck.bias", "head.bias"]),
    ("layer_7_decay", 7, ["neck.weight", "head.weight"]),
]
STAGE_WISE = [
    ("layer_0_decay", 0, ds(0, "decay") + ds(1, "decay") + ds(2, "decay") + ds(3, "decay")),
    ("layer_0_no_decay", 0, ds(0, "no_decay") + ds(1, "no_decay") + ds(2, "no_decay") + ds(3, "no_decay")),
    ("layer_1_no_decay", 1, blk(0, 0, "no_decay")),
    ("layer_1_decay", 1, blk(0, 0, "decay")),
    ("layer_2_no_decay", 2, blk(1, 0, "no_decay")),
    ("layer_2_decay", 2, blk(1, 0, "decay")),
    ("layer_3_no_decay", 3, blk(2, 0, "no_decay") + blk(2, 1, "no_decay") + blk(2, 2, "no_decay")),
    ("layer_3_decay", 3, blk(2, 0, "decay") + blk(2, 1, "decay") + blk(2, 2, "decay")),
    ("layer_4_no_decay", 4, blk(3, 0, "no_decay")),
    ("layer_4_decay", 4, blk(3, 0, "decay")),
    ("layer_7_no_decay", 7, NORMS + ["neck.bias", "head.bias"]),
    ("layer_7_decay", 7, ["neck.weight", "head.weight"]),
]


def check_table(model, opt, table, decay_rate=0.9, total_layers=8, base_lr=LR):
    params = dict(model.named_parameters())
    assert [g["group_name"] for g in opt.param_groups] == [t[0] for t in table]
    assert group_names(opt) == [t[0] for t in table]
    for g, (name, lid, members) in zip(opt.param_groups, table, strict=True):
        scale = decay_rate ** (total_layers - lid - 1)
        assert g["name"] == name
        assert g["param_names"] == members
        assert len(g["params"]) == len(members)
        assert all(p is params[n] for p, n in zip(g["params"], members, strict=True))
        assert g["lr_scale"] == scale
        assert g["lr"] == scale * base_lr
        assert g["weight_decay"] == (0.0 if name.endswith("no_decay") else WD)
    assert opt.defaults["lr"] == base_lr and opt.defaults["weight_decay"] == WD


@pytest.mark.parametrize("decay_type,table", [("layer_wise", LAYER_WISE), ("stage_wise", STAGE_WISE)])
def test_convnext_groups_match_hand_table(decay_type, table):
    model = convnext_detector()
    constructor, opt = build(model, decay_type)
    check_table(model, opt, table)
    assert sum(len(t[2]) for t in table) == len(list(model.parameters()))   # every parameter placed once
    assert constructor.default_layer_params == NORMS + ["neck.weight", "neck.bias", "head.weight", "head.bias"]
    assert opt.default_layer_params == constructor.default_layer_params
    # mmdet's extra keys survive into the optimizer's state_dict
    saved = opt.state_dict()["param_groups"]
    assert [(g["group_name"], g["lr_scale"], g["name"]) for g in saved] == \
        [(t[0], 0.9 ** (7 - t[1]), t[0]) for t in table]


def test_mmdet_alias_and_decay_type_substring():
    assert LearningRateDecayOptimizerConstructor is LayerDecayConstructor
    model = convnext_detector()
    _, opt = build(model, "layer_wise_vit")   # mmdet tests 'layer_wise' in decay_type
    check_table(model, opt, LAYER_WISE)


def test_stage2_blocks_every_three_blocks_one_layer():
    """layer_wise: stages.2.{b} -> 3 + b // 3; with 7 blocks that is 3,3,3,4,4,4,5."""
    model = convnext_detector(depths=(1, 1, 7, 1))
    constructor, opt = build(model)
    expect = [3, 3, 3, 4, 4, 4, 5]
    for b, lid in enumerate(expect):
        assert constructor.layer_ids[f"{ST}.2.{b}.depthwise_conv.weight"] == lid
        assert constructor.layer_ids[f"{ST}.2.{b}.gamma"] == lid
    by_name = {g["group_name"]: g for g in opt.param_groups}
    assert by_name["layer_4_decay"]["lr_scale"] == 0.9 ** 3
    assert by_name["layer_5_no_decay"]["param_names"] == blk(2, 6, "no_decay")
    assert constructor.layer_ids[f"{DS}.3.1.weight"] == 6 and constructor.layer_ids[f"{ST}.3.0.gamma"] == 6


def test_frozen_stages_left_out_of_the_optimizer():
    model = convnext_detector(frozen_stages=1)
    constructor, opt = build(model)
    frozen = ds(0, "decay") + ds(0, "no_decay") + blk(0, 0, "decay") + blk(0, 0, "no_decay")
    assert {n for n, p in model.named_parameters() if not p.requires_grad} == set(frozen)
    check_table(model, opt, [t for t in LAYER_WISE if t[1] not in (0, 1)])
    in_opt = {id(p) for g in opt.param_groups for p in g["params"]}
    assert not any(id(p) in in_opt for n, p in model.named_parameters() if n in frozen)
    assert not set(frozen) & set(constructor.layer_ids)


def test_num_layers_too_small_keeps_mmdet_ids_and_warns(caplog):
    """num_layers=3 for stage 3 blocks gives id 3 + 6 // 3 = 5 > num_layers + 1: scale 0.9 ** -1."""
    model = convnext_detector(depths=(1, 1, 7, 1))
    with caplog.at_level(logging.WARNING, logger="trainkit"):
        constructor, opt = build(model, num_layers=3)
    assert constructor.layer_ids[f"{ST}.2.6.gamma"] == 5
    assert {g["group_name"]: g["lr_scale"] for g in opt.param_groups}["layer_5_no_decay"] == 0.9 ** (5 - 5 - 1)
    assert "above num_layers + 1 = 4" in caplog.text


# ---- mmdet's own unit test (tests/test_engine/test_optimizers/test_layer_decay_optimizer_constructor.py)
class ToyConvModule(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1, bias=True)


class ToyConvNeXt(nn.Module):
    """The parameter layout of mmdet's test backbone (own parameters first, one frozen)."""

    def __init__(self):
        super().__init__()
        self.stages = nn.ModuleList(nn.Sequential(ToyConvModule()) for _ in range(4))
        self.norm0 = nn.BatchNorm2d(2)
        for name in ("cls_token", "mask_token", "pos_embed", "stem_norm"):
            setattr(self, name, nn.Parameter(torch.ones(1)))
        for i in range(3):
            setattr(self, f"downsample_norm{i}", nn.BatchNorm2d(2))
        self.lin = nn.Parameter(torch.ones(1), requires_grad=False)
        self.downsample_layers = nn.ModuleList(nn.Sequential(nn.Conv2d(3, 4, 1, bias=True)) for _ in range(4))


class ToyDetector(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = ToyConvNeXt()
        self.head = nn.Conv2d(2, 2, kernel_size=1, groups=2)


class PseudoDataParallel(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.module = model


# (weight_decay, lr_scale) per group, copied from mmdet's test (decay_rate 2, num_layers 6, lr 1).
MMDET_STAGE_WISE = [(0.0, 128), (0.0, 1), (0.05, 64), (0.0, 64), (0.05, 32), (0.0, 32), (0.05, 16),
                    (0.0, 16), (0.05, 8), (0.0, 8), (0.05, 128), (0.05, 1)]
MMDET_LAYER_WISE = [(0.0, 128), (0.0, 1), (0.05, 64), (0.0, 64), (0.05, 32), (0.0, 32), (0.05, 16),
                    (0.0, 16), (0.05, 2), (0.0, 2), (0.05, 128), (0.05, 1)]


@pytest.mark.parametrize("decay_type,expected", [("stage_wise", MMDET_STAGE_WISE), ("layer_wise", MMDET_LAYER_WISE)])
def test_mmdet_unit_test_expectations(decay_type, expected):
    model = PseudoDataParallel(ToyDetector())   # unwrapped through .module, as mmengine does
    constructor = LayerDecayConstructor({"decay_rate": 2, "decay_type": decay_type, "num_layers": 6})
    opt = constructor(model, adamw(lr=1, betas=(0.9, 0.999)))
    assert isinstance(opt, torch.optim.AdamW)
    assert opt.defaults["lr"] == 1 and opt.defaults["weight_decay"] == WD
    assert [(g["weight_decay"], g["lr_scale"]) for g in opt.param_groups] == expected
    assert all(g["lr"] == g["lr_scale"] for g in opt.param_groups)
    assert "backbone.lin" not in constructor.layer_ids                      # frozen: skipped
    stems = range(4) if decay_type == "stage_wise" else range(1)            # stage_wise: every downsample is 0
    assert opt.param_groups[0]["param_names"] == [                           # prefixed tokens -> id 0
        "backbone.cls_token", "backbone.mask_token", "backbone.pos_embed",
        *(f"backbone.downsample_layers.{i}.0.bias" for i in stems)]


# ---- rule-based models --------------------------------------------------------------------
class ToyViTBlock(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.ln1 = nn.LayerNorm(dim)
        self.attn = nn.Module()
        self.attn.qkv = nn.Linear(dim, 3 * dim)
        self.ln2 = nn.LayerNorm(dim)
        self.ffn = nn.Linear(dim, dim)


class ToyViTBackbone(nn.Module):
    def __init__(self, dim=8, depth=4):
        super().__init__()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 5, dim))
        self.patch_embed = nn.Module()
        self.patch_embed.projection = nn.Conv2d(1, dim, 4, 4)
        self.layers = nn.ModuleList(ToyViTBlock(dim) for _ in range(depth))
        self.ln1 = nn.LayerNorm(dim)


class ToyViT(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = ToyViTBackbone()
        self.head = nn.Linear(8, 10)


VIT_RULES = [[r"backbone\.(cls_token|pos_embed|patch_embed)", 0], [r"backbone\.layers\.(?P<id>\d+)\.", 1]]


def vit_block(i, kind):
    p = f"backbone.layers.{i}."
    if kind == "decay":
        return [p + "attn.qkv.weight", p + "ffn.weight"]
    return [p + "ln1.weight", p + "ln1.bias", p + "attn.qkv.bias", p + "ln2.weight", p + "ln2.bias", p + "ffn.bias"]


@pytest.mark.parametrize("via", ["python", "hydra"])
def test_vit_rules_with_default_layer_report(caplog, via):
    model = ToyViT()
    cfg = {"paramwise_cfg": {"num_layers": 4, "decay_rate": 0.75}, "rules": VIT_RULES,
           "no_decay": [r"backbone\.(cls_token|pos_embed)$"]}
    if via == "hydra":   # YAML lists arrive as ListConfig
        from hydra.utils import instantiate
        from omegaconf import OmegaConf
        constructor = instantiate(OmegaConf.create({"_target_": "trainkit.optim.LayerDecayConstructor", **cfg}))
    else:
        constructor = LayerDecayConstructor(**cfg)
    with caplog.at_level(logging.INFO, logger="trainkit"):
        opt = constructor(model, adamw())
    table = [("layer_0_no_decay", 0,
              ["backbone.cls_token", "backbone.pos_embed", "backbone.patch_embed.projection.bias"]),
             ("layer_0_decay", 0, ["backbone.patch_embed.projection.weight"])]
    for i in range(4):
        table += [(f"layer_{i + 1}_no_decay", i + 1, vit_block(i, "no_decay")),
                  (f"layer_{i + 1}_decay", i + 1, vit_block(i, "decay"))]
    table += [("layer_5_no_decay", 5, ["backbone.ln1.weight", "backbone.ln1.bias", "head.bias"]),
              ("layer_5_decay", 5, ["head.weight"])]
    check_table(model, opt, table, decay_rate=0.75, total_layers=6)
    default = ["backbone.ln1.weight", "backbone.ln1.bias", "head.weight", "head.bias"]
    assert constructor.default_layer_params == default and opt.default_layer_params == default
    assert "4 parameters fell into the default layer 5" in caplog.text
    assert all(n in caplog.text for n in default)


def test_forgotten_rule_is_reported_and_mmdet_token_rule_is_by_exact_name():
    """Without a patch_embed rule those parameters land in the default layer (and are listed).
    mmdet's no-decay name test compares full names with 'cls_token'/'pos_embed': the 3-D
    backbone.cls_token is decayed unless no_decay says otherwise."""
    model = ToyViT()
    constructor, opt = build(model, num_layers=4, rules={r"backbone\.layers\.(?P<id>\d+)\.": 1})
    assert constructor.default_layer_params[:4] == [
        "backbone.cls_token", "backbone.pos_embed", "backbone.patch_embed.projection.weight",
        "backbone.patch_embed.projection.bias"]
    by_name = {g["group_name"]: g for g in opt.param_groups}
    assert by_name["layer_5_decay"]["param_names"][:3] == [
        "backbone.cls_token", "backbone.pos_embed", "backbone.patch_embed.projection.weight"]
    assert by_name["layer_5_decay"]["weight_decay"] == WD

    class Bare(nn.Module):   # an unprefixed top-level cls_token does match mmdet's name test
        def __init__(self):
            super().__init__()
            self.cls_token = nn.Parameter(torch.zeros(1, 1, 4))
            self.fc = nn.Linear(4, 4)

    _, opt = build(Bare(), num_layers=1, rules=[["fc", 0]])
    assert [(g["group_name"], g["param_names"]) for g in opt.param_groups] == [
        ("layer_2_no_decay", ["cls_token"]), ("layer_0_decay", ["fc.weight"]), ("layer_0_no_decay", ["fc.bias"])]


class MethodModel(nn.Module):
    """Layer ids from the model: body.{i} -> i + 1, stem -> 0, the rest default."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Linear(2, 4)
        self.body = nn.ModuleList(nn.Linear(4, 4) for _ in range(2))
        self.out = nn.Linear(4, 1)

    def get_layer_id(self, name, num_layers):
        if name.startswith("stem."):
            return 0
        if name.startswith("body."):
            return int(name.split(".")[1]) + 1
        return None


@pytest.mark.parametrize("how", ["method", "callable"])
def test_model_method_and_callable_rules(how):
    model = MethodModel()
    kw = {"rules": MethodModel.get_layer_id.__get__(model)} if how == "callable" else {}
    if how == "callable":
        model.get_layer_id = None   # rules take precedence; make sure the method is not used
    constructor, opt = build(model, num_layers=2, decay_rate=0.5, **kw)
    expect = [("layer_0_decay", 0, ["stem.weight"]), ("layer_0_no_decay", 0, ["stem.bias"]),
              ("layer_1_decay", 1, ["body.0.weight"]), ("layer_1_no_decay", 1, ["body.0.bias"]),
              ("layer_2_decay", 2, ["body.1.weight"]), ("layer_2_no_decay", 2, ["body.1.bias"]),
              ("layer_3_decay", 3, ["out.weight"]), ("layer_3_no_decay", 3, ["out.bias"])]
    check_table(model, opt, expect, decay_rate=0.5, total_layers=4)
    assert [g["lr"] for g in opt.param_groups] == [LR * 0.5 ** k for k in (3, 3, 2, 2, 1, 1, 0, 0)]
    assert constructor.default_layer_params == ["out.weight", "out.bias"]


# ---- errors ---------------------------------------------------------------------------------
@pytest.mark.parametrize("cfg,match", [
    ({"num_layers": 6, "decay_rate": 0.9, "decay_type": "block_wise"},
     r"decay_type='block_wise'.*layer_wise, stage_wise"),
    ({"num_layers": 6, "decay_rate": 0.0}, r"decay_rate=0.0: must be a number > 0"),
    ({"num_layers": 6, "decay_rate": -0.9}, r"decay_rate=-0.9"),
    ({"num_layers": 6}, r"decay_rate=None"),
    ({"num_layers": 0, "decay_rate": 0.9}, r"num_layers=0: must be an int >= 1"),
    ({"num_layers": 2.5, "decay_rate": 0.9}, r"num_layers=2.5"),
    ({"decay_rate": 0.9}, r"num_layers=None"),
    ({"num_layers": 6, "decay_rate": 0.9, "custom_keys": {}}, r"unknown keys \['custom_keys'\]"),
])
def test_bad_paramwise_cfg(cfg, match):
    with pytest.raises(ValueError, match=match):
        LayerDecayConstructor(cfg)


@pytest.mark.parametrize("rules,match", [
    ([["(", 0]], r"rules\[0\]: bad regex"),
    ([["x", "0"]], r"rules\[0\]: layer id '0' must be an int"),
    (["x"], r"rules\[0\]='x': expected a pair"),
])
def test_bad_rules(rules, match):
    with pytest.raises(ValueError, match=match):
        LayerDecayConstructor({"num_layers": 2, "decay_rate": 0.9}, rules=rules)


def test_rule_errors_at_build():
    cfg = {"num_layers": 2, "decay_rate": 0.9}
    with pytest.raises(ValueError, match=r"layer id 9 for 'body.0.weight', outside 0..3"):
        LayerDecayConstructor(cfg, rules=[["body", 9]])(MethodModel(), adamw())
    with pytest.raises(ValueError, match=r"captured id='s' from 'stem.weight'"):
        LayerDecayConstructor(cfg, rules=[[r"(?P<id>\w)", 0]])(MethodModel(), adamw())


def test_models_without_rules():
    cfg = {"num_layers": 4, "decay_rate": 0.9}
    with pytest.raises(ValueError, match=r"model class ToyViT \(its backbone is a ToyViTBackbone\).*"
                                         r"param_groups.rules.*ToyViT.get_layer_id"):
        LayerDecayConstructor(cfg)(ToyViT(), adamw())
    with pytest.raises(ValueError, match=r"model class Linear \(it has no 'backbone' attribute\)"):
        LayerDecayConstructor(cfg)(nn.Linear(2, 2), adamw())


def test_optimizer_needs_lr_and_weight_decay():
    c = LayerDecayConstructor({"num_layers": 6, "decay_rate": 0.9})
    with pytest.raises(ValueError, match=r"optimizer.lr"):
        c(convnext_detector(), functools.partial(torch.optim.AdamW, weight_decay=WD))
    with pytest.raises(ValueError, match=r"optimizer.weight_decay"):
        c(convnext_detector(), functools.partial(torch.optim.AdamW, lr=LR))


def test_convnext_rules_reject_a_fifth_stage():
    class FakeConvNeXt(nn.Module):
        def __init__(self):
            super().__init__()
            self.downsample_layers = nn.ModuleList(nn.Linear(2, 2) for _ in range(5))

    model = nn.Module()
    model.backbone = FakeConvNeXt()
    with pytest.raises(ValueError, match=r"stages 0-3, got parameter 'backbone.downsample_layers.4.weight'"):
        LayerDecayConstructor({"num_layers": 6, "decay_rate": 0.9})(model, adamw())


# ---- the recipe, end to end ---------------------------------------------------------------------
def compose(*overrides):
    from hydra import compose as hydra_compose, initialize_config_dir
    from trainkit import config as C

    C.register()
    with initialize_config_dir(config_dir=str(C.CONF_DIR), version_base="1.3"):
        return hydra_compose("config", overrides=["+recipe=convnext_layer_decay", "~components.lr",
                                                  "trainer.progress=false", "trainer.load_from=null", *overrides])


def test_recipe_bad_decay_type_fails_before_training(tmp_path):
    from trainkit.build import build_runner

    cfg = compose("param_groups.paramwise_cfg.decay_type=block_wise")
    with pytest.raises(ValueError, match=r"param_groups.*decay_type='block_wise'"):
        build_runner(cfg, tmp_path)


def test_recipe_logs_every_group_and_resumes_exactly(tmp_path):
    from trainkit.core.record import read_jsonl
    from trainkit.cli.train import run_config

    small = ["trainer.max_epochs=null", "trainer.log_interval=1", "trainer.batch_size=16",
             "model.backbone.channels=[4,8,8,8]", "model.head.in_features=8"]   # same groups, less compute
    run_config(compose(*small, "trainer.max_iters=4"), tmp_path / "full")
    run_config(compose(*small, "trainer.max_iters=2"), tmp_path / "cut")
    run_config(compose(*small, "trainer.max_iters=4", "trainer.resume=auto"), tmp_path / "cut")
    full = [r for r in read_jsonl(tmp_path / "full" / "metrics.jsonl") if "loss" in r]
    resumed = [r for r in read_jsonl(tmp_path / "cut" / "metrics.jsonl") if "loss" in r]
    assert [r["step"] for r in full] == list(range(4))
    assert [(r["step"], r["loss"]) for r in resumed] == [(r["step"], r["loss"]) for r in full]

    # recipe: num_layers 6, decay_rate 0.9, AdamW lr 0.004; depths [1,1,3,1], only norm3
    ids = {"layer_0_decay": 0, "layer_0_no_decay": 0, "layer_2_no_decay": 2, "layer_2_decay": 2,
           "layer_3_no_decay": 3, "layer_3_decay": 3, "layer_6_no_decay": 6, "layer_6_decay": 6,
           "layer_1_no_decay": 1, "layer_1_decay": 1, "layer_7_no_decay": 7, "layer_7_decay": 7}
    for row in full:   # no lr schedule here (components.lr dropped): each group keeps its scaled lr
        assert [k for k in row if k.startswith("lr/")] == [f"lr/{n}" for n in ids]
        assert [k for k in row if k.startswith("momentum/")] == [f"momentum/{n}" for n in ids]
        for name, lid in ids.items():
            assert row[f"lr/{name}"] == 0.9 ** (7 - lid) * 0.004
            assert row[f"momentum/{name}"] == 0.9
