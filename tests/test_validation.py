"""Every bad value is refused before training, naming the key and the value: the trainer's options
(table over every TrainerConfig field), the argument types of every shipped target (generated from
their signatures), the ranges of the shipped models, evaluators, data and components (a table),
metric names checked against what the evaluator declares, and short CLI errors and --help."""
import dataclasses
import logging
import os
import subprocess
import sys
import typing
from pathlib import Path

import pytest
import torch
from torch.utils.data import TensorDataset

from trainkit.build import build, build_runner
from trainkit.core.checks import ConfigError, describe, fits
from trainkit.core.config import TrainerConfig
from trainkit.core.instantiate import _hints, check_node
from trainkit.core.runner import Runner

ROOT = Path(__file__).resolve().parent.parent

# ------------------------------------------------------------------ the trainer's options
BAD_TRAINER = {   # every field of TrainerConfig: values that must be refused, never reinterpreted
    "max_epochs": [0, -1, "3", True, 2.5],
    "max_iters": [0, -5, "100"],
    "batch_size": [0, -1, 2.5, True],
    "val_batch_size": [0, -8],                  # 0 never means "batch_size": that is null
    "num_workers": [-1, True, "2"],
    "drop_last": ["yes", 1, "false", 0],
    "val_interval": [0, -1],
    "grad_accum": [0, -2, 1.5],
    "clip_grad": [0, -1.0, "big", True],
    "mixed_precision": ["fp8", True, 16],
    "checkpoint_interval": [0, -1],
    "checkpoint_interval_iters": [0, -10],     # 0 never means "off": that is null
    "resume": ["", "  ", 3],
    "log_interval": [0, -1],
    "nonfinite": ["explode", False, 0],
    "max_consecutive_skips": [0, -1, "20"],
    "progress": ["yes", 1, "on", "false"],
    "monitor": ["", 5],
    "print_events": ["no", 0],
    "num_threads": [0, -1, "4"],               # 0 never means "torch's default": that is null
    "find_unused_parameters": ["true", 1],
    "val_begin": [0, -1, "2", True],
    "checkpoint": ["yes", 3],
    "load_from": ["", 3],
    "load_from_prefix": ["backbone", 3, {"backbone": 1}],
    "load_from_strict": ["yes", 1],
    "dist_timeout": [0, -1, "300", True, float("nan"), float("inf")],
}


def test_the_table_covers_every_trainer_option():
    assert set(BAD_TRAINER) == {f.name for f in dataclasses.fields(TrainerConfig)}


@pytest.mark.parametrize("key, value", [(k, v) for k, vs in BAD_TRAINER.items() for v in vs])
def test_every_bad_trainer_value_is_refused_naming_key_and_value(key, value):
    extra = {"max_epochs": None} if key == "max_iters" else {}
    with pytest.raises(ConfigError) as info:
        TrainerConfig(**{key: value, **extra})
    msg = str(info.value)
    assert msg.startswith(f"trainer.{key}={value!r} is not valid; allowed: "), msg


def test_good_trainer_values_pass():
    TrainerConfig(max_epochs=None, max_iters=5, val_batch_size=8, clip_grad=1, mixed_precision="bf16",
                  checkpoint_interval_iters=3, resume="auto", nonfinite="skip", num_threads=1, monitor="val/acc")


@pytest.mark.parametrize("override, message", [
    ("trainer.progress=yes", "trainer.progress='yes' is not valid; allowed: true or false"),
    ("trainer.drop_last=1", "trainer.drop_last=1 is not valid; allowed: true or false"),
    ("trainer.print_events=off", "trainer.print_events='off' is not valid"),
    ("trainer.num_threads=0", "trainer.num_threads=0 is not valid; allowed: an integer >= 1 (or null)"),
    ("trainer.num_workers=-1", "trainer.num_workers=-1 is not valid; allowed: an integer >= 0"),
    ("logger.wandb.log_planned_schedule=no", "logger.wandb.log_planned_schedule='no' is not valid"),
    ("optimizer.lr=abc", "optimizer.lr='abc' is not valid; allowed: a number"),
    ("optimizer.lr=-0.1", "optimizer.lr=-0.1 is out of range; allowed: [0.0, inf]"),
    ("+optimizer.nesterov=yes", "optimizer.nesterov='yes' is not valid; allowed: true or false"),
    ("model.width=0", "model.width must be a positive integer, got 0"),
    ("model.width=abc", "model.width='abc' is not valid; allowed: an integer"),
])
def test_bad_values_from_the_command_line_fail_before_anything_is_built(make_cfg, tmp_path, override, message):
    """OmegaConf would turn 'yes' into True for a bool field; the schema leaves booleans to the checks."""
    cfg = make_cfg("+recipe=digits_baseline", override)
    with pytest.raises(ConfigError) as info:
        build_runner(cfg, tmp_path)
    assert message in str(info.value)
    assert not (tmp_path / "checkpoints").exists() and not (tmp_path / "metrics.jsonl").exists()


# ------------------------------------------------- argument types of every shipped target
SHIPPED = [   # every target the recipes name, and the components and constructors trainkit ships
    *(f"trainkit.tasks.{t}" for t in (
        "digits.DigitsCNN", "digits.digits_data", "restoration.DenoiseCNN", "restoration.noisy_digits", "byol.BYOL",
        "byol.KNNAccuracy", "byol.DigitAugment", "convnext.ConvNeXt", "convnext.ConvNeXtClassifier", "sot.SiamRPN",
        "sot.tracking_data", "sot.TrackingEvaluator", "sot.BackboneUnfreeze")),
    "trainkit.core.evaluation.MeanOutputs",
    *(f"trainkit.optim.{t}" for t in ("MomentumEMA", "NamedGroups", "LayerDecayConstructor")),
    *(f"trainkit.schedules.{t}" for t in (
        "ReduceLR", "LinearLrInterval", "StepLrUpdater", "CosineAnnealingLrUpdater", "OneCycleLrUpdater",
        "CyclicMomentumUpdater", "SiameseRPNLrUpdater", "FixedLrUpdater")),
    "torch.optim.SGD", "torch.optim.Adam", "torch.optim.AdamW",
]
def wrong_value(hint):
    """A value of the wrong type for ``hint`` (None when no config value is wrong for it)."""
    for candidate in ("yes", "3", 2.5, 5, [1], {"a": 1}, True):
        if fits(candidate, hint) is False:
            return candidate
    return None


def typed_arguments():
    rows = []
    for target in SHIPPED:
        for name, hint in _hints(target).items():
            if name in ("params", "kwargs", "policy", "target") or hint is typing.Any:
                continue
            bad = wrong_value(hint)
            if bad is not None:
                rows.append((target, name, bad))
    return rows


TYPED = typed_arguments()


def test_the_generated_type_table_reaches_every_shipped_target():
    assert {t for t, _, _ in TYPED} == set(SHIPPED)
    assert len(TYPED) > 150


@pytest.mark.parametrize("target, name, bad", TYPED, ids=[f"{t.rsplit('.', 1)[1]}.{n}" for t, n, _ in TYPED])
def test_a_wrongly_typed_argument_is_refused_naming_it(target, name, bad):
    with pytest.raises(ConfigError) as info:
        check_node({"_target_": target, name: bad}, "node")
    assert str(info.value).startswith(f"node.{name}={bad!r} is not valid; allowed: "), str(info.value)
    hint = _hints(target)[name]
    assert describe(hint) in str(info.value)


# ------------------------------------------------------------- ranges: 0 and negatives
T = "trainkit."
RANGES = [   # (node, key of the message, the message) — a value in range for the type, out of range for its meaning
    ({"_target_": T + "tasks.digits.DigitsCNN", "width": 0}, "model.width must be a positive integer, got 0"),
    ({"_target_": T + "tasks.digits.DigitsCNN", "num_classes": 0}, "model.num_classes must be a positive integer"),
    ({"_target_": T + "tasks.digits.DigitsCNN", "dropout": 1.0}, "model.dropout=1.0 is out of range"),
    ({"_target_": T + "tasks.restoration.DenoiseCNN", "width": -4}, "model.width must be a positive integer, got -4"),
    ({"_target_": T + "tasks.restoration.DenoiseCNN", "depth": 1}, "model.depth must be an integer >= 2, got 1"),
    ({"_target_": T + "tasks.byol.BYOL", "hidden": 0}, "model.hidden must be a positive integer, got 0"),
    ({"_target_": T + "tasks.byol.BYOL", "augment": {"scale": [0.0, 1.2]}}, "augment.scale=[0.0, 1.2] is not valid"),
    ({"_target_": T + "tasks.byol.BYOL", "augment": {"noise": -0.1}}, "augment.noise=-0.1 is out of range"),
    ({"_target_": T + "tasks.byol.KNNAccuracy", "k": 0}, "evaluator.k must be a positive integer, got 0"),
    ({"_target_": T + "tasks.byol.KNNAccuracy", "temperature": 0.0}, "evaluator.temperature=0.0 is out of range"),
    ({"_target_": T + "tasks.byol.KNNAccuracy", "batch_size": 0}, "evaluator.batch_size must be a positive integer"),
    ({"_target_": T + "tasks.convnext.ConvNeXt", "depths": [1, 0, 1, 1]}, "depths[1] must be a positive integer"),
    ({"_target_": T + "tasks.convnext.ConvNeXt", "channels": [8, 16, 0, 32]}, "channels[2] must be a positive integer"),
    ({"_target_": T + "tasks.convnext.ConvNeXt", "stem_patch_size": 0}, "stem_patch_size must be a positive integer"),
    ({"_target_": T + "tasks.convnext.ConvNeXt", "layer_scale_init_value": -1e-6}, "layer_scale_init_value=-1e-06 is"),
    ({"_target_": T + "tasks.convnext.ConvNeXt", "frozen_stages": -1}, "ConvNeXt frozen_stages=-1: must be in 0..4"),
    ({"_target_": T + "tasks.convnext.ConvNeXtClassifier", "input_size": 0,
      "backbone": {"_target_": "torch.nn.Identity"}, "head": {"_target_": "torch.nn.Identity"}},
     "model.input_size must be a positive integer, got 0"),
    ({"_target_": T + "tasks.sot.SiamRPN", "width": 1}, "model.width must be an integer >= 2, got 1"),
    ({"_target_": T + "tasks.sot.SiamRPN", "template_size": 0}, "model.template_size=0 must be a multiple of 4"),
    ({"_target_": T + "tasks.sot.SiamRPN", "context_amount": -0.5}, "model.context_amount=-0.5 is out of range"),
    ({"_target_": T + "tasks.sot.SiamRPN", "anchor_scale": 0.0}, "model.anchor_scale=0.0 is out of range"),
    ({"_target_": T + "tasks.sot.SiamRPN", "num_samples": 0}, "model.num_samples must be a positive integer"),
    ({"_target_": T + "tasks.sot.SiamRPN", "pos_fraction": 0.0}, "model.pos_fraction=0.0 is out of range"),
    ({"_target_": T + "tasks.sot.SiamRPN", "num_neg_pair": -1}, "model.num_neg_pair must be an integer >= 0"),
    ({"_target_": T + "tasks.sot.SiamRPN", "box_weight": -1.0}, "model.box_weight=-1.0 is out of range"),
    ({"_target_": T + "tasks.sot.SiamRPN", "smooth_l1_beta": 0.0}, "model.smooth_l1_beta=0.0 is out of range"),
    ({"_target_": T + "tasks.sot.SiamRPN", "neg_iou": 0.7}, "need 0 <= model.neg_iou (0.7) <= model.pos_iou (0.6)"),
    ({"_target_": T + "tasks.sot.tracking_data", "train_sequences": 0}, "data.train_sequences=0 must be >= 1"),
    ({"_target_": T + "tasks.sot.tracking_data", "neg_prob": 1.0}, "data.neg_prob=1.0 must be in [0, 1)"),
    ({"_target_": T + "tasks.sot.tracking_data", "search_shift": -1.0}, "data.search_shift=-1.0 must be >= 0"),
    ({"_target_": T + "tasks.sot.TrackingEvaluator", "penalty_k": -1.0}, "evaluator.penalty_k=-1.0 is out of range"),
    ({"_target_": T + "tasks.sot.TrackingEvaluator", "window_influence": 1.5}, "evaluator.window_influence=1.5 is"),
    ({"_target_": T + "tasks.sot.TrackingEvaluator", "min_size": 0.0}, "evaluator.min_size=0.0 is out of range"),
    ({"_target_": T + "tasks.sot.TrackingEvaluator", "batch_sequences": 0}, "evaluator.batch_sequences must be a"),
    ({"_target_": T + "tasks.sot.BackboneUnfreeze", "start_epoch": -1, "layers": []},
     "components.unfreeze.start_epoch=-1 must be >= 0"),
    ({"_target_": T + "tasks.digits.digits_data", "val_fraction": 0.0}, "data.val_fraction must be in (0, 1), got 0.0"),
    ({"_target_": T + "tasks.restoration.noisy_digits", "sigma": 0.0}, "data.sigma must be > 0, got 0.0"),
    ({"_target_": T + "optim.MomentumEMA", "base_momentum": 1.5}, "base_momentum=1.5 is not valid"),
    ({"_target_": T + "optim.MomentumEMA", "end_momentum": -0.1}, "end_momentum=-0.1 is not valid"),
    ({"_target_": T + "optim.MomentumEMA", "update_interval": 0}, "update_interval=0 is not valid"),
    ({"_target_": T + "optim.NamedGroups", "groups": {"b": {"prefix": "b", "lr_mult": -0.1}}},
     "param_groups.groups.b.lr_mult=-0.1 is out of range"),
    ({"_target_": T + "optim.NamedGroups", "groups": {"b": {"prefix": "b", "weight_decay_mult": -1}}},
     "param_groups.groups.b.weight_decay_mult=-1 is out of range"),
    ({"_target_": T + "optim.LayerDecayConstructor", "paramwise_cfg": {"num_layers": 6, "decay_rate": -0.9}},
     "paramwise_cfg.decay_rate=-0.9: must be a number > 0"),
    ({"_target_": T + "optim.LayerDecayConstructor", "paramwise_cfg": {"num_layers": 0, "decay_rate": 0.9}},
     "paramwise_cfg.num_layers=0: must be an int >= 1"),
    ({"_target_": T + "schedules.ReduceLR", "factor": 1.0}, "factor=1.0 is out of range"),
    ({"_target_": T + "schedules.ReduceLR", "patience": -1}, "patience must be an integer >= 0, got -1"),
    ({"_target_": T + "schedules.ReduceLR", "cooldown": -1}, "cooldown must be an integer >= 0, got -1"),
    ({"_target_": T + "schedules.ReduceLR", "min_lr": -1e-5}, "min_lr=-1e-05 is out of range"),
    ({"_target_": T + "schedules.ReduceLR", "interval": 0}, "interval must be an integer >= 1, got 0"),
    ({"_target_": T + "schedules.ReduceLR", "val_metric": ""}, "val_metric must be a metric name"),
    ({"_target_": T + "schedules.StepLrUpdater", "step": 2, "gamma": -0.1}, "gamma=-0.1 is out of range"),
    ({"_target_": T + "schedules.StepLrUpdater", "step": 2, "min_lr": -1.0}, "min_lr=-1.0 is out of range"),
    ({"_target_": T + "schedules.ExpLrUpdater", "gamma": -0.5}, "gamma=-0.5 is out of range"),
    ({"_target_": T + "schedules.PolyLrUpdater", "power": -1.0}, "power=-1.0 is out of range"),
    ({"_target_": T + "schedules.InvLrUpdater", "gamma": -1.0}, "gamma=-1.0 is out of range"),
    ({"_target_": T + "schedules.CosineAnnealingLrUpdater", "min_lr_ratio": -0.1}, "min_lr_ratio=-0.1 is out of range"),
    ({"_target_": T + "schedules.CyclicLrUpdater", "target_ratio": [-1, 0.1]}, "target_ratio must be a number or a"),
    ({"_target_": T + "schedules.CosineRestartLrUpdater", "periods": [5], "restart_weights": [-1], "min_lr": 0.0},
     "restart_weights must be a list of numbers >= 0"),
    ({"_target_": T + "schedules.OneCycleLrUpdater", "max_lr": -0.1}, "max_lr must be a number or a list of numbers"),
    ({"_target_": T + "schedules.StepMomentumUpdater", "step": 2, "min_momentum": -0.1},
     "min_momentum=-0.1 is out of range"),
]


@pytest.mark.parametrize("node, message", RANGES,
                         ids=[f"{n['_target_'].rsplit('.', 1)[1]}-{m[:24]}" for n, m in RANGES])
def test_an_out_of_range_value_is_refused_at_build_naming_it(node, message):
    with pytest.raises(ConfigError) as info:
        build(node, "x")
    assert message in str(info.value), str(info.value)
    assert "config key 'x'" in str(info.value)


@pytest.mark.parametrize("args, message", [
    ({"lr": -0.1}, "optimizer.lr=-0.1 is out of range; allowed: [0.0, inf]"),
    ({"lr": 0.1, "weight_decay": -1e-4}, "optimizer.weight_decay=-0.0001 is out of range"),
    ({"lr": 0.1, "momentum": 1.5}, "optimizer.momentum=1.5 is out of range; allowed: [0.0, 1.0]"),
    ({"lr": 0.1, "betas": [0.9, 1.0], "_target_": "torch.optim.Adam"}, "optimizer.betas[1]=1.0 is out of range"),
    ({"lr": 0.1, "eps": 0.0, "_target_": "torch.optim.Adam"}, "optimizer.eps=0.0 is out of range"),
])
def test_optimizer_hyper_parameters_out_of_range_name_the_key(make_cfg, tmp_path, args, message):
    from omegaconf import OmegaConf

    cfg = make_cfg("+recipe=digits_baseline")
    node = {"_target_": "torch.optim.SGD", **args}
    cfg.optimizer = OmegaConf.create(node)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")):
        build_runner(cfg, tmp_path)


def test_an_ema_whose_end_momentum_is_below_its_base_warns_once(caplog):
    from trainkit.optim import MomentumEMA

    with caplog.at_level(logging.WARNING, logger="trainkit"):
        MomentumEMA(base_momentum=0.99, end_momentum=0.9)
        MomentumEMA(base_momentum=0.99, end_momentum=0.9)
        MomentumEMA(base_momentum=0.99, end_momentum=1.0)
    assert [m for m in caplog.messages if "end_momentum=0.9 is below base_momentum=0.99" in m] and \
        len([m for m in caplog.messages if "below base_momentum" in m]) == 1


# ---------------------------------------------------------- metric names, before training
@pytest.mark.parametrize("overrides, message", [
    (["+recipe=digits_baseline", "trainer.monitor=val/accuracy"],
     "trainer.monitor='val/accuracy' names no metric of the evaluator (MeanOutputs); it reports: val/acc, val/loss"),
    (["+recipe=restoration_plateau", "components.plateau.val_metric=val/PSNR"],
     "components.plateau.val_metric='val/PSNR' names no metric of the evaluator (MeanOutputs); it reports: "
     "val/loss, val/psnr, val/psnr_noisy"),
    (["+recipe=byol", "trainer.monitor=val/acc"],
     "trainer.monitor='val/acc' names no metric of the evaluator (KNNAccuracy); it reports: val/knn_acc, "
     "val/knn_acc_random_init"),
    (["+recipe=siamese_rpn", "trainer.monitor=val/auc", "data.train_sequences=2", "data.val_sequences=1",
      "data.pairs_per_epoch=8", "data.train_frames=4", "data.val_frames=4"],
     "trainer.monitor='val/auc' names no metric of the evaluator (TrackingEvaluator); it reports: "
     "val/precision_20px, val/static_precision_20px, val/static_success_auc, val/success_auc"),
    (["+recipe=digits_baseline", "trainer.monitor=val/acc", "evaluator=null"],
     "trainer.monitor='val/acc' names a validation metric, but the run has no evaluator"),
])
def test_a_metric_name_no_evaluator_reports_fails_before_the_first_iteration(make_cfg, tmp_path, overrides, message,
                                                                            monkeypatch):
    iterations = []
    step = Runner._train_step
    monkeypatch.setattr(Runner, "_train_step", lambda self, b, s: iterations.append(self.iter) or step(self, b, s))
    runner = build_runner(make_cfg(*overrides, "logger=none", "trainer.progress=false"), tmp_path)
    rng = torch.get_rng_state()
    with pytest.raises(ConfigError) as info:
        runner.run()
    assert str(info.value) == message
    assert iterations == [] and torch.equal(torch.get_rng_state(), rng)   # the probe draws no random number


def tiny_runner(evaluator, model, ds, work_dir):
    return Runner(model, torch.optim.SGD(model.parameters(), lr=0.1), ds, val_data=ds, evaluator=evaluator,
                  max_epochs=1, batch_size=4, progress=False, work_dir=work_dir)


@pytest.mark.parametrize("recipe", ["digits_baseline", "byol", "restoration_plateau"])
def test_each_shipped_evaluator_declares_exactly_the_names_it_returns(make_cfg, tmp_path, recipe):
    runner = build_runner(make_cfg(f"+recipe={recipe}", "logger=none", "trainer.progress=false"), tmp_path)
    declared = runner.evaluator.metric_names(runner)
    runner.unwrapped_model.eval()
    with torch.no_grad():
        returned = runner.evaluator(runner)
    assert sorted(declared) == sorted(returned)


def test_the_tracking_evaluator_declares_exactly_the_names_it_returns(make_cfg, tmp_path):
    cfg = make_cfg("+recipe=siamese_rpn", "logger=none", "trainer.progress=false", "data.train_sequences=2",
                   "data.val_sequences=1", "data.pairs_per_epoch=8", "data.train_frames=4", "data.val_frames=4",
                   "model.width=8")
    runner = build_runner(cfg, tmp_path)
    with torch.no_grad():
        returned = runner.evaluator(runner)
    assert sorted(runner.evaluator.metric_names(runner)) == sorted(returned)


# ------------------------------------------------------------------------ the commands
def _run(module, *args, env=None):
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), "WANDB_MODE": "disabled", **(env or {})}
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=120,
                          cwd=ROOT, env=full_env)


@pytest.mark.slow
@pytest.mark.parametrize("module, expected", [
    ("trainkit.schedule", "python -m trainkit.schedule +recipe=NAME [overrides] [options]"),
    ("trainkit.train", "== Configuration groups =="),
    ("trainkit.plot", "usage: python -m trainkit.plot"),
])
def test_every_command_answers_help(module, expected):
    out = _run(module, "--help")
    assert out.returncode == 0, out.stderr
    assert expected in out.stdout


@pytest.mark.slow
@pytest.mark.parametrize("module", ["trainkit.train", "trainkit.schedule"])
def test_a_bad_value_is_one_short_error_and_hydra_full_error_shows_the_traceback(module, tmp_path):
    args = ["+recipe=digits_baseline", "trainer.num_workers=-1", f"hydra.run.dir={tmp_path}"] \
        if module == "trainkit.train" else ["+recipe=digits_baseline", "trainer.num_workers=-1", f"out={tmp_path}"]
    out = _run(module, *args)
    assert out.returncode != 0
    assert "Error: trainer.num_workers=-1 is not valid; allowed: an integer >= 0" in out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) <= 5, out.stderr
    full = _run(module, *args, env={"HYDRA_FULL_ERROR": "1"})
    assert "Traceback" in full.stderr and "trainer.num_workers=-1 is not valid" in full.stderr


def test_the_mean_outputs_probe_restores_the_rng_and_train_mode(tmp_path):
    from trainkit.core.evaluation import MeanOutputs

    class Drop(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(3, 1)

        def forward(self, batch):
            y = torch.nn.functional.dropout(self.lin(batch[0]), 0.5, self.training)
            return {"loss": y.pow(2).mean(), "noise": torch.rand(()), "vec": y.detach()}

    ds = TensorDataset(torch.randn(8, 3))
    runner = tiny_runner(MeanOutputs(), Drop(), ds, tmp_path)
    runner.unwrapped_model.train()
    state = torch.get_rng_state()
    assert MeanOutputs().metric_names(runner) == ["val/loss", "val/noise"]
    assert torch.equal(torch.get_rng_state(), state) and runner.unwrapped_model.training
