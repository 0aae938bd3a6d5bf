"""Bad schedule input: a ValueError naming the key and the value, before training starts."""
import pytest

from trainkit import schedules as LRU
from trainkit import schedules as MU
from trainkit.build import build
from trainkit.schedules.preview import preview

G2 = [{"name": "g0", "lr": 0.02, "momentum": 0.9}, {"name": "g1", "lr": 0.01, "momentum": 0.9}]


@pytest.mark.parametrize("make,match", [
    # policy and warmup names
    (lambda: LRU.lr_config("cosine_restarts", periods=[1]), r"policy='cosine_restarts'.*valid: Fixed, Step, Exp"),
    (lambda: MU.momentum_config("poly"), r"policy='poly'.*valid: Step, CosineAnnealing"),
    (lambda: LRU.StepLrUpdater(step=2, warmup="cosine", warmup_iters=5),
     r"warmup='cosine' is not valid; allowed: 'constant', 'linear', 'exp'"),
    # warmup length and ratio
    (lambda: LRU.StepLrUpdater(step=2, warmup="linear", warmup_iters=0), r"warmup_iters must be a positive .* got 0"),
    (lambda: LRU.StepLrUpdater(step=2, warmup="linear", warmup_iters=-3), r"warmup_iters .* got -3"),
    (lambda: LRU.StepLrUpdater(step=2, warmup="linear", warmup_iters=2.5), r"warmup_iters .* got 2.5"),
    (lambda: LRU.StepLrUpdater(step=2, warmup="exp", warmup_iters=5, warmup_ratio=0),
     r"warmup_ratio=0 is out of range; allowed: \(0.0, 1.0\]"),
    (lambda: LRU.StepLrUpdater(step=2, warmup="exp", warmup_iters=5, warmup_ratio=1.5), r"warmup_ratio=1.5"),
    (lambda: MU.StepMomentumUpdater(step=2, warmup="constant", warmup_iters=5, warmup_ratio=-0.1),
     r"warmup_ratio=-0.1"),
    (lambda: MU.StepMomentumUpdater(step=2, warmup="linear", warmup_iters=1, warmup_by_epoch=True),
     r"warmup_by_epoch is not supported for momentum"),
    # min_lr xor min_lr_ratio
    (lambda: LRU.CosineAnnealingLrUpdater(), r"exactly one of min_lr and min_lr_ratio, got min_lr=None"),
    (lambda: LRU.CosineAnnealingLrUpdater(min_lr=0.0, min_lr_ratio=0.1), r"min_lr=0.0, min_lr_ratio=0.1"),
    (lambda: LRU.FlatCosineAnnealingLrUpdater(), r"exactly one of min_lr and min_lr_ratio"),
    (lambda: LRU.LinearAnnealingLrUpdater(min_lr=1e-3, min_lr_ratio=0.1), r"exactly one of min_lr"),
    (lambda: LRU.CosineRestartLrUpdater(periods=[5]), r"exactly one of min_lr"),
    (lambda: MU.CosineAnnealingMomentumUpdater(), r"exactly one of min_momentum and min_momentum_ratio"),
    # milestones
    (lambda: LRU.StepLrUpdater(step=[8, 8]), r"step=\[8, 8\] must be strictly increasing"),
    (lambda: LRU.StepLrUpdater(step=[11, 8]), r"step=\[11, 8\] must be strictly increasing"),
    (lambda: LRU.StepLrUpdater(step=0), r"step must be a positive integer, got 0"),
    (lambda: LRU.StepLrUpdater(step=[0, 3]), r"step must be a positive integer or a list .* got \[0, 3\]"),
    (lambda: MU.StepMomentumUpdater(step="8"), r"step must be a positive integer, got '8'"),
    # SiameseRPN segments
    (lambda: LRU.SiameseRPNLrUpdater(lr_configs=[{"type": "log", "start_lr_factor": 0.0, "end_lr_factor": 0.1,
                                                  "end_epoch": 5}]),
     r"lr_configs\[0\].start_lr_factor=0.0 is out of range"),
    (lambda: LRU.SiameseRPNLrUpdater(lr_configs=[{"type": "log", "start_lr_factor": 1.0, "end_lr_factor": -0.1,
                                                  "end_epoch": 5}]),
     r"lr_configs\[0\].end_lr_factor=-0.1 is out of range"),
    (lambda: LRU.SiameseRPNLrUpdater(lr_configs=[{"type": "log", "start_lr_factor": 1.0, "end_lr_factor": 0.0,
                                                  "end_epoch": 5}]),
     r"lr_configs\[0\].end_lr_factor=0.0 is out of range"),
    (lambda: LRU.SiameseRPNLrUpdater(lr_configs=[{"type": "cos", "start_lr_factor": 1.0, "end_lr_factor": 0.1,
                                                  "end_epoch": 5}]),
     r"lr_configs\[0\].type='cos' is not valid; allowed: 'step', 'log'"),
    (lambda: LRU.SiameseRPNLrUpdater(lr_configs=[{"type": "step", "start_lr_factor": 0.2, "end_lr_factor": 1.0,
                                                  "end_epoch": 5},
                                                 {"type": "log", "start_lr_factor": 1.0, "end_lr_factor": 0.1,
                                                  "end_epoch": 5}]),
     r"lr_configs\[1\].end_epoch=5 must be an integer greater than the segment's start epoch 5"),
    (lambda: LRU.SiameseRPNLrUpdater(lr_configs=[{"type": "step", "start_lr_factor": 0.2, "end_epoch": 5}]),
     r"lr_configs\[0\] must have exactly the keys"),
    (lambda: LRU.SiameseRPNLrUpdater(lr_configs=[]), r"lr_configs must be a non-empty list"),
    (lambda: LRU.SiameseRPNLrUpdater(by_epoch=False), r"supports only by_epoch=True"),
    # iteration-only policies and their options
    (lambda: LRU.CyclicLrUpdater(by_epoch=True), r"CyclicLrUpdater supports only by_epoch=False"),
    (lambda: LRU.OneCycleLrUpdater(max_lr=0.1, by_epoch=True), r"supports only by_epoch=False"),
    (lambda: LRU.CyclicLrUpdater(target_ratio="high"), r"target_ratio must be a number or a list of two"),
    (lambda: LRU.CyclicLrUpdater(step_ratio_up=1.0), r"step_ratio_up=1.0 is out of range; allowed: \[0.0, 1.0\)"),
    (lambda: LRU.CyclicLrUpdater(gamma=0), r"gamma=0 is out of range"),
    (lambda: MU.CyclicMomentumUpdater(anneal_strategy="cosine"), r"anneal_strategy='cosine' is not valid"),
    (lambda: LRU.OneCycleLrUpdater(max_lr=0.1, pct_start=1.5), r"pct_start=1.5 is out of range"),
    (lambda: LRU.OneCycleLrUpdater(max_lr={"SGD": 0.1}), r"max_lr must be a number or a list of numbers"),
    (lambda: MU.OneCycleMomentumUpdater(base_momentum="0.85"), r"base_momentum must be a number"),
    (lambda: LRU.FlatCosineAnnealingLrUpdater(start_percent=1.2, min_lr=0.0), r"start_percent=1.2 is out of range"),
    (lambda: LRU.CosineRestartLrUpdater(periods=[5, 5], restart_weights=[1], min_lr=0.0),
     r"restart_weights has 1 values but periods has 2"),
    (lambda: LRU.CosineRestartLrUpdater(periods=[5, 0], min_lr=0.0), r"periods must be a non-empty list of positive"),
    # LinearLrInterval
    (lambda: LRU.LinearLrInterval(start_factor=1.5), r"start_factor=1.5 is out of range; allowed: \[0.0, 1.0\]"),
    (lambda: LRU.LinearLrInterval(end_factor=-1), r"end_factor=-1 is out of range"),
    (lambda: LRU.LinearLrInterval(begin=5, end=5), r"end must be an integer larger than begin=5, got end=5"),
    (lambda: LRU.LinearLrInterval(interval=0), r"interval must be a positive integer, got 0"),
    (lambda: LRU.LinearLrInterval(begin=0, end=10, interval=11), r"interval=11 is longer than end - begin = 10"),
    (lambda: LRU.LinearLrInterval(begin=-1), r"begin must be a non-negative integer, got -1"),
])
def test_bad_arguments_fail_at_build(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize("node,epochs,ipe,match", [
    ({"_target_": "trainkit.schedules.SiameseRPNLrUpdater"}, 25, 2,
     r"lr_configs cover epochs 0\.\.19 but the run has 25 epochs; the last segment's end_epoch must be >= 25"),
    ({"_target_": "trainkit.schedules.CosineRestartLrUpdater", "periods": [4, 4], "min_lr": 0.0, "by_epoch": False},
     3, 3, r"periods=\[4, 4\] cover 8 steps but the run has 9"),
    ({"_target_": "trainkit.schedules.OneCycleLrUpdater", "max_lr": 0.1, "total_steps": 5}, 2, 3,
     r"total_steps=5 is less than the run's 6 iterations"),
    ({"_target_": "trainkit.schedules.OneCycleLrUpdater", "max_lr": [0.1, 0.2, 0.3]}, 2, 3,
     r"max_lr has 3 values but the optimizer has 2 param groups"),
    ({"_target_": "trainkit.schedules.OneCycleLrUpdater", "max_lr": 0.1, "pct_start": 0.5}, 1, 2,
     r"pct_start=0.5 × total_steps=2 = 1 gives a first phase of zero iterations"),
    ({"_target_": "trainkit.schedules.CyclicLrUpdater", "cyclic_times": 5}, 1, 4,
     r"cyclic_times=5 is larger than the run's 4 iterations"),
    ({"_target_": "trainkit.schedules.OneCycleMomentumUpdater", "max_momentum": [0.9]}, 1, 4,
     r"max_momentum has 1 values but the optimizer has 2 param groups"),
])
def test_run_length_checks_fail_at_before_run_before_any_iteration(node, epochs, ipe, match):
    iters = []

    class Probe:
        def before_iter(self, runner):
            iters.append(runner.iter)

    with pytest.raises(ValueError, match=match):
        preview(G2, {"x": node, "probe": Probe()}, epochs, ipe)
    assert iters == []


def test_momentum_updater_needs_momentum_or_betas():
    with pytest.raises(ValueError, match=r"param group 'g' has neither 'momentum' nor 'betas'"):
        preview([{"name": "g", "lr": 0.1}], {"m": MU.StepMomentumUpdater(step=1)}, 1, 2)


def test_config_errors_name_the_component_key():
    node = {"_target_": "trainkit.schedules.lr_config", "policy": "step", "step": [3, 2]}
    with pytest.raises(ValueError, match=r"config key 'components.lr' .*step=\[3, 2\] must be strictly increasing"):
        build(node, "components.lr")
