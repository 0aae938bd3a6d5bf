"""python -m trainkit.port: OpenMMLab configs (mmcv 1.x and mmengine dialects) become recipes.

The configs here are small hand-written ones exercising each key; the real OpenMMLab configs
under tests/data/openmmlab_configs/ are checked against the reference's trajectories in
tests/test_port_reference.py.
"""
import textwrap
from pathlib import Path

import pytest
import yaml

pytest.importorskip("mmengine", reason="python -m trainkit.port needs the openmmlab extra (mmengine-lite)")

from trainkit.cli.openmmlab import port  # noqa: E402
from trainkit.cli.port import main, read_config  # noqa: E402


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def ported(tmp_path, text, name="c.py", **options):
    cfg, imported = read_config(write(tmp_path, name, text))
    return port(cfg, name="t", imported=imported, **options)


def status(result, key):
    return result.line(key).status


# --------------------------------------------------------------------------- mmcv 1.x
MMCV = """
    model = dict(type='FasterRCNN', backbone=dict(type='ResNet', depth=50))
    data = dict(samples_per_gpu=2, workers_per_gpu=2, train=dict(type='CocoDataset'))
    optimizer = dict(type='SGD', lr=0.02, momentum=0.9, weight_decay=0.0001,
                     paramwise_cfg=dict(norm_decay_mult=0., custom_keys={'backbone': dict(lr_mult=0.1)}))
    optimizer_config = dict(grad_clip=dict(max_norm=35, norm_type=2), cumulative_iters=4,
                            type='GradientCumulativeOptimizerHook')
    lr_config = dict(policy='step', warmup='linear', warmup_iters=500, warmup_ratio=0.001, step=[8, 11])
    momentum_config = dict(policy='cyclic', target_ratio=(0.85 / 0.95, 1), cyclic_times=1, step_ratio_up=0.4)
    runner = dict(type='EpochBasedRunner', max_epochs=12)
    checkpoint_config = dict(interval=2, max_keep_ckpts=3)
    log_config = dict(interval=50, hooks=[dict(type='TextLoggerHook')])
    evaluation = dict(interval=1, metric='bbox', save_best='bbox_mAP', rule='greater')
    custom_hooks = [dict(type='NumClassCheckHook')]
    dist_params = dict(backend='nccl')
    log_level = 'INFO'
    load_from = 'checkpoints/resnet50.pth'
    resume_from = None
    workflow = [('train', 1)]
    fp16 = dict(loss_scale=512.)
    seed = 7
    crop_size = 511
"""


def test_mmcv_keys_map_to_their_trainkit_counterparts(tmp_path):
    r = ported(tmp_path, MMCV)
    rec = r.recipe
    assert rec["optimizer"] == {"_target_": "torch.optim.SGD", "lr": 0.02, "momentum": 0.9, "weight_decay": 0.0001}
    assert rec["param_groups"]["dialect"] == "mmcv"
    assert rec["param_groups"]["paramwise_cfg"] == \
        {"norm_decay_mult": 0.0, "custom_keys": {"backbone": {"lr_mult": 0.1}}}
    assert rec["components"]["lr"] == {"_target_": "trainkit.schedules.lr_config", "policy": "step", "warmup": "linear",
                                       "warmup_iters": 500, "warmup_ratio": 0.001, "step": [8, 11]}
    assert rec["components"]["momentum"]["_target_"] == "trainkit.schedules.momentum_config"
    assert rec["components"]["momentum"]["target_ratio"] == [0.85 / 0.95, 1]
    t = rec["trainer"]
    assert (t["max_epochs"], t["max_iters"], t["clip_grad"], t["grad_accum"]) == (12, None, 35.0, 4)
    assert (t["checkpoint_interval"], t["checkpoint"]["max_keep"], t["checkpoint"]["save_best"]) == (2, 3, "bbox_mAP")
    assert (t["log_interval"], t["val_interval"], t["mixed_precision"], t["batch_size"]) == (50, 1, "fp16", 2)
    assert t["load_from"] == "checkpoints/resnet50.pth" and "resume" not in t
    assert rec["seed"] == 7
    assert rec["model"] == rec["data"] == rec["evaluator"] == "???"
    assert r.originals["model"]["model"]["backbone"] == {"type": "ResNet", "depth": 50}
    assert {k: status(r, k) for k in ("dist_params", "log_level", "workflow", "custom_hooks")} == \
        {"dist_params": "n/a", "log_level": "n/a", "workflow": "n/a", "custom_hooks": "n/a"}
    assert status(r, "crop_size") == "variable"
    assert "dynamic" in r.line("fp16").detail   # the static loss scale is named as not kept


def test_every_top_level_key_gets_exactly_one_report_line(tmp_path):
    path = write(tmp_path, "c.py", MMCV)
    cfg, _ = read_config(path)
    r = port(cfg, name="t")
    assert [line.key for line in r.report] == list(cfg)
    assert all(line.status in ("mapped", "placeholder", "n/a", "variable", "unsupported") for line in r.report)


def test_iteration_runner_and_siamese_rpn_hook(tmp_path):
    r = ported(tmp_path, """
        optimizer = dict(type='SGD', lr=0.005, momentum=0.9)
        optimizer_config = dict(type='SiameseRPNOptimizerHook', backbone_start_train_epoch=10,
                                backbone_train_layers=['layer2', 'layer3'], grad_clip=dict(max_norm=10.0, norm_type=2))
        runner = dict(type='IterBasedRunner', max_iters=1000)
    """)
    t = r.recipe["trainer"]
    assert (t["max_iters"], t["max_epochs"], t["clip_grad"]) == (1000, None, 10.0)
    assert r.recipe["components"]["unfreeze"] == {"_target_": "trainkit.tasks.sot.BackboneUnfreeze",
                                                  "start_epoch": 10, "layers": ["layer2", "layer3"]}


def test_byol_hook_becomes_the_momentum_ema_and_lars_is_reported(tmp_path):
    r = ported(tmp_path, """
        model = dict(type='BYOL', base_momentum=0.99)
        optimizer = dict(type='LARS', lr=4.8, momentum=0.9, weight_decay=1e-6)
        optimizer_config = dict(update_interval=16)
        custom_hooks = [dict(type='BYOLHook', end_momentum=1., update_interval=16)]
        runner = dict(type='EpochBasedRunner', max_epochs=200)
    """)
    assert r.recipe["components"]["ema"] == {"_target_": "trainkit.optim.MomentumEMA", "base_momentum": 0.99,
                                             "end_momentum": 1.0, "update_interval": 16}
    assert r.recipe["trainer"]["grad_accum"] == 16
    assert status(r, "optimizer") == "unsupported" and "'LARS' is not a torch optimizer" in r.line("optimizer").detail
    assert r.recipe["optimizer"] == {"_target_": "torch.optim.SGD", "lr": 4.8, "momentum": 0.9, "weight_decay": 1e-6}


# --------------------------------------------------------------------------- mmengine
MMENGINE = """
    model = dict(type='ImageClassifier')
    train_dataloader = dict(batch_size=64, dataset=dict(type='ImageNet'))
    val_evaluator = dict(type='Accuracy', topk=(1, 5))
    optim_wrapper = dict(type='AmpOptimWrapper', dtype='bfloat16',
                         optimizer=dict(type='AdamW', lr=0.001, weight_decay=0.05, betas=(0.9, 0.999)),
                         paramwise_cfg=dict(norm_decay_mult=0.0, flat_decay_mult=0.0),
                         clip_grad=dict(max_norm=5.0), accumulative_counts=2)
    param_scheduler = [
        dict(type='LinearLR', start_factor=0.001, by_epoch=True, end=20, convert_to_iter_based=True),
        dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=20)]
    train_cfg = dict(by_epoch=True, max_epochs=300, val_interval=5, val_begin=3)
    val_cfg = dict()
    default_hooks = dict(timer=dict(type='IterTimerHook'), logger=dict(type='LoggerHook', interval=100),
                         param_scheduler=dict(type='ParamSchedulerHook'),
                         checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=2, save_best='auto'))
    custom_hooks = [dict(type='EMAHook', momentum=1e-4)]
    auto_scale_lr = dict(base_batch_size=1024, enable=True)
    randomness = dict(seed=42, deterministic=False)
    env_cfg = dict(cudnn_benchmark=False)
    default_scope = 'mmpretrain'
"""


def test_mmengine_keys_map_to_their_trainkit_counterparts(tmp_path):
    r = ported(tmp_path, MMENGINE, total_batch_size=512)
    rec = r.recipe
    assert rec["optimizer"] == {"_target_": "torch.optim.AdamW", "lr": 0.001 * 512 / 1024, "weight_decay": 0.05,
                                "betas": [0.9, 0.999]}
    assert rec["param_groups"] == {"_target_": "trainkit.optim.ParamwiseGroups", "dialect": "mmengine",
                                   "paramwise_cfg": {"norm_decay_mult": 0.0, "flat_decay_mult": 0.0}}
    assert rec["components"]["param_scheduler"] == {
        "_target_": "trainkit.schedules.param_scheduler",
        "schedulers": [{"type": "LinearLR", "start_factor": 0.001, "by_epoch": True, "end": 20,
                        "convert_to_iter_based": True},
                       {"type": "CosineAnnealingLR", "eta_min": 1e-5, "by_epoch": True, "begin": 20}]}
    t = rec["trainer"]
    assert (t["max_epochs"], t["val_interval"], t["val_begin"], t["log_interval"]) == (300, 5, 3, 100)
    assert (t["mixed_precision"], t["clip_grad"], t["grad_accum"], t["batch_size"]) == ("bf16", 5.0, 2, 64)
    assert (t["checkpoint_interval"], t["checkpoint"]["max_keep"]) == (1, 2)
    assert rec["seed"] == 42
    assert status(r, "custom_hooks") == "unsupported" and "EMAHook" in r.line("custom_hooks").detail
    assert status(r, "auto_scale_lr") == "mapped" and "1024" in r.line("auto_scale_lr").detail
    assert {status(r, k) for k in ("val_cfg", "env_cfg", "default_scope")} == {"n/a"}
    assert status(r, "val_evaluator") == "placeholder" and rec["evaluator"] == "???"


def test_auto_scale_lr_enabled_needs_the_total_batch_size(tmp_path):
    r = ported(tmp_path, MMENGINE)
    assert status(r, "auto_scale_lr") == "unsupported" and "--total-batch-size" in r.line("auto_scale_lr").detail
    assert r.recipe["optimizer"]["lr"] == 0.001


def test_iteration_loop_layer_decay_and_plateau_hook(tmp_path):
    r = ported(tmp_path, """
        optim_wrapper = dict(type='OptimWrapper', constructor='LearningRateDecayOptimizerConstructor',
                             optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.05),
                             paramwise_cfg=dict(decay_rate=0.95, decay_type='layer_wise', num_layers=6))
        param_scheduler = dict(type='ReduceLR', by_epoch=True, mode='min', factor=0.5, patience=5)
        train_cfg = dict(type='IterBasedTrainLoop', max_iters=160000, val_interval=16000)
        default_hooks = dict(param_scheduler=dict(type='ReduceLRSchedulerHook', by_epoch=True, val_metric='MAE'),
                             checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=16000))
    """)
    rec = r.recipe
    assert rec["param_groups"] == {"_target_": "trainkit.optim.LayerDecayConstructor",
                                   "paramwise_cfg": {"decay_rate": 0.95, "decay_type": "layer_wise", "num_layers": 6}}
    sched = rec["components"]["param_scheduler"]
    assert sched["schedulers"] == [{"type": "ReduceLR", "by_epoch": True, "mode": "min", "factor": 0.5, "patience": 5}]
    assert sched["hook"] == {"type": "ReduceLRSchedulerHook", "by_epoch": True, "val_metric": "MAE"}
    t = rec["trainer"]
    assert (t["max_iters"], t["max_epochs"], t["checkpoint_interval_iters"]) == (160000, None, 16000)
    assert "val_interval" not in t and "16000 iterations: not ported" in r.line("train_cfg").detail


def test_bases_delete_and_base_references_resolve_through_mmengine(tmp_path):
    write(tmp_path, "_base_/schedule.py", """
        warmup_iters = 500
        optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.02, momentum=0.9, weight_decay=1e-4))
        param_scheduler = [dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=warmup_iters),
                           dict(type='MultiStepLR', begin=0, end=12, by_epoch=True, milestones=[8, 11], gamma=0.1)]
        train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=12, val_interval=1)
    """)
    r = ported(tmp_path, """
        _base_ = ['./_base_/schedule.py']
        max_epochs = 36
        train_cfg = dict(max_epochs=max_epochs)
        optim_wrapper = dict(optimizer=dict(_delete_=True, type='AdamW', lr=1e-4))
        param_scheduler = [dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0,
                                end={{_base_.warmup_iters}}),
                           dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[27, 33])]
    """, name="top.py")
    rec = r.recipe
    assert rec["optimizer"] == {"_target_": "torch.optim.AdamW", "lr": 1e-4}   # _delete_: no momentum left
    assert rec["trainer"]["max_epochs"] == 36 and rec["trainer"]["val_interval"] == 1
    first, second = rec["components"]["param_scheduler"]["schedulers"]
    assert first == {"type": "LinearLR", "start_factor": 0.001, "by_epoch": False, "begin": 0, "end": 500}
    assert second["milestones"] == [27, 33] and second["end"] == 36
    assert status(r, "max_epochs") == "variable" and status(r, "warmup_iters") == "variable"


def test_lazy_import_style(tmp_path):
    write(tmp_path, "_base_/sched.py", """
        from mmengine.optim.scheduler.lr_scheduler import LinearLR
        from torch.optim.sgd import SGD
        optim_wrapper = dict(optimizer=dict(type=SGD, lr=0.02, momentum=0.9))
        param_scheduler = [dict(type=LinearLR, start_factor=0.001, by_epoch=False, begin=0, end=500)]
        train_cfg = dict(by_epoch=True, max_epochs=12)
    """)
    r = ported(tmp_path, """
        from mmengine.config import read_base
        with read_base():
            from ._base_.sched import *
    """, name="lazy.py")
    assert r.recipe["optimizer"] == {"_target_": "torch.optim.SGD", "lr": 0.02, "momentum": 0.9}
    assert r.recipe["components"]["param_scheduler"]["schedulers"][0]["type"] == "LinearLR"
    assert {status(r, k) for k in ("LinearLR", "SGD", "read_base")} == {"n/a"}


# --------------------------------------------------------------------------- the command
def test_command_writes_a_recipe_that_hydra_refuses_to_train_but_previews(tmp_path, capsys, monkeypatch):
    src = write(tmp_path, "cfg/faster-rcnn.py", """
        model = dict(type='FasterRCNN')
        train_dataloader = dict(batch_size=2)
        optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.02, momentum=0.9))
        param_scheduler = [dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=5),
                           dict(type='MultiStepLR', begin=0, end=3, by_epoch=True, milestones=[2], gamma=0.1)]
        train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=3)
    """)
    out = tmp_path / "recipes" / "frcnn.yaml"
    assert main([str(src), "-o", str(out)]) == out
    printed = capsys.readouterr().out
    assert "optim_wrapper" in printed and "placeholder" in printed and f"wrote {out}" in printed
    text = out.read_text()
    assert text.startswith(f"# Ported from {src}")
    assert "# ---- the original model part" in text and "#   type: FasterRCNN" in text
    recipe = yaml.safe_load(text)
    assert recipe["model"] == "???" and recipe["name"] == "frcnn"
    with pytest.raises(SystemExit):   # an existing recipe is never overwritten without --force
        main([str(src), "-o", str(out)])
    assert "exists" in capsys.readouterr().err


@pytest.mark.parametrize("text, name, pattern", [
    ("def broken(:\n", "bad.py", r"not a Python config"),
    ("x = 1", "notes.txt", r"not an OpenMMLab config \(a \.py file\)"),
    ("_base_ = ['./missing/base.py']\n", "top.py", r"missing/base\.py"),
])
def test_bad_input_names_the_file(tmp_path, capsys, text, name, pattern):
    import re

    path = write(tmp_path, name, text)
    with pytest.raises(SystemExit) as info:
        main([str(path), "-o", str(tmp_path / "r.yaml")])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert str(path) in err and re.search(pattern, err), err
    assert not (tmp_path / "r.yaml").exists()


def test_no_such_file(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main([str(tmp_path / "nope.py")])
    assert "no such config file" in capsys.readouterr().err


def test_unknown_hook_is_reported_not_a_crash(tmp_path):
    r = ported(tmp_path, """
        optimizer = dict(type='SGD', lr=0.1)
        custom_hooks = [dict(type='MyFancyHook', x=1), dict(type='NumClassCheckHook')]
        optimizer_config = dict(type='MyOptimizerHook')
        runner = dict(type='MyRunner', max_epochs=3)
    """)
    assert status(r, "custom_hooks") == "unsupported" and "MyFancyHook" in r.line("custom_hooks").detail
    assert status(r, "optimizer_config") == "unsupported" and "MyOptimizerHook" in r.line("optimizer_config").detail
    assert status(r, "runner") == "unsupported"


def test_preview_uses_the_real_param_groups_once_the_model_is_filled_in(tmp_path, monkeypatch):
    import csv

    from hydra.core.global_hydra import GlobalHydra

    from trainkit import config as C
    from trainkit.cli.schedule import main as schedule

    monkeypatch.setattr(C, "RECIPES_DIR", tmp_path / "recipes")
    src = write(tmp_path, "cfg.py", """
        optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=1e-4),
                             paramwise_cfg=dict(custom_keys={'backbone': dict(lr_mult=0.1)}))
        param_scheduler = [dict(type='MultiStepLR', by_epoch=True, milestones=[1], gamma=0.5)]
        train_cfg = dict(by_epoch=True, max_epochs=2)
    """)
    main([str(src), "-o", str(tmp_path / "recipes" / "ported.yaml")])

    def preview(*overrides):
        GlobalHydra.instance().clear()
        out = schedule(["+recipe=ported", "iters_per_epoch=2", f"out={tmp_path / 'o'}", *overrides])
        with open(out / "schedule.csv", newline="") as f:
            return list(csv.DictReader(f))

    base = preview()
    assert [float(r["lr/pg0"]) for r in base] == [0.1, 0.1, 0.05, 0.05]
    real = preview("model={_target_: trainkit.tasks.digits.DigitsCNN, width: 8}")
    lrs = {k: [float(r[k]) for r in real] for k in real[0] if k.startswith("lr/")}
    assert lrs["lr/backbone"] == [0.1 * 0.1] * 2 + [0.1 * 0.1 * 0.5] * 2   # custom_keys backbone: lr_mult 0.1
    assert any(v == [0.1, 0.1, 0.05, 0.05] for k, v in lrs.items() if k != "lr/backbone")   # the head keeps lr
