"""Bad input to an mmengine ``param_scheduler`` list: a ``ValueError`` naming the list index, the key and the
value, before the first iteration; and a ``ScheduleWarning`` (once) where mmengine would silently do
something surprising."""
import re
import warnings

import pytest
import torch
from torch.utils.data import TensorDataset

from trainkit.core.runner import Runner
from trainkit.schedules import ScheduleWarning, param_scheduler
from trainkit.schedules.preview import preview

P = "trainkit.schedules.param_scheduler"
G2 = [{"name": "a", "lr": 0.1, "momentum": 0.9}, {"name": "b", "lr": 0.05, "momentum": 0.9}]


class Probe:
    def __init__(self):
        self.seen = []

    def before_iter(self, runner):
        self.seen.append(runner.iter)


def run(schedulers, epochs=3, ipe=4, groups=G2, hook=None, probe=None, **kw):
    node = {"_target_": P, "schedulers": schedulers, **({"hook": hook} if hook else {})}
    return preview(groups, {"s": node, "probe": probe or Probe()}, epochs, ipe, **kw)


def fails(match, schedulers, **kw):
    """``run`` raises a ValueError matching ``match`` before any iteration started."""
    probe = Probe()
    with pytest.raises(ValueError, match=match):
        run(schedulers, probe=probe, **kw)
    assert probe.seen == []


BUILD = [   # (list, message): raised when the component is built
    ([{"type": "NoSuchLR"}], r"param_scheduler\[0\]: type='NoSuchLR' is not valid; allowed: ConstantLR, "
                             r"ConstantMomentum, .*LinearLrInterval, .*ReduceLR, .*StepParamScheduler$"),
    ([{"type": "StepLR", "step_size": 1}, {"type": "LinearLR", "begin": 5, "end": 5}],
     r"param_scheduler\[1\] \(LinearLR\): begin=5 must be before end=5 \(the window is \[begin, end\)\)"),
    ([{"type": "ReduceOnPlateauLR", "begin": 3, "end": 2}], r"param_scheduler\[0\] \(ReduceOnPlateauLR\): begin=3 must "
                                                           r"be before end=2"),
    ([{"type": "LinearLR", "by_epoch": False, "convert_to_iter_based": True}],
     r"param_scheduler\[0\] \(LinearLR\): convert_to_iter_based=True needs by_epoch=True .*got by_epoch=False"),
    ([{"type": "CosineAnnealingLR", "eta_min": 0.0, "eta_min_ratio": 0.1}],
     r"\(CosineAnnealingLR\): give eta_min or eta_min_ratio, not both \(got eta_min=0.0, eta_min_ratio=0.1\)"),
    ([{"type": "MultiStepLR", "milestones": [8, 11, 10]}],
     r"\(MultiStepLR\): milestones=\[8, 11, 10\] must be increasing"),
    ([{"type": "MultiStepLR", "milestones": [8, 8]}], r"milestones=\[8, 8\] must be increasing"),
    ([{"type": "MultiStepLR", "milestones": [2.5]}], r"milestones=\[2.5\]: 2.5 is not a whole epoch"),
    ([{"type": "LinearLR", "start_factor": 1.5}], r"\(LinearLR\): start_factor=1.5 is not valid; allowed: a number in "
                                                 r"\(0, 1\]"),
    ([{"type": "LinearLR", "start_factor": -0.1}], r"start_factor=-0.1 is not valid"),
    ([{"type": "LinearLR", "start_factor": 0.0}], r"start_factor=0.0 is not valid.*divides by zero"),
    ([{"type": "LinearLR", "end_factor": 1.01}], r"end_factor=1.01 is not valid; allowed: a number in \[0, 1\]"),
    ([{"type": "LinearMomentum", "start_factor": 2}], r"\(LinearMomentum\): start_factor=2 is not valid"),
    ([{"type": "ConstantLR", "factor": 2.0}], r"\(ConstantLR\): factor=2.0 is not valid; allowed: a number in "
                                              r"\(0, 1\]"),
    ([{"type": "ConstantLR", "factor": 0}], r"factor=0 is not valid.*divide by zero"),
    ([{"type": "StepLR", "step_size": 0}], r"\(StepLR\): step_size=0 is not valid; allowed: a number in \(0, inf\]"),
    ([{"type": "StepLR"}], r"\(StepLR\): step_size is required"),
    ([{"type": "StepLR", "step_size": 2, "gama": 0.5}], r"\(StepLR\): unknown key gama=0.5; allowed: begin, by_epoch, "
                                                       r"convert_to_iter_based, end, gamma, last_step, step_size"),
    ([{"type": "StepLR", "step_size": 2, "by_epoch": "false"}], r"\(StepLR\): by_epoch='false' must be true or false"),
    ([{"type": "StepLR", "step_size": 2, "begin": -1}], r"\(StepLR\): begin=-1 must be an integer >= 0"),
    ([{"type": "StepLR", "step_size": 2, "end": 2.5}], r"\(StepLR\): end=2.5 must be an integer"),
    ([{"type": "LinearLR", "last_step": 3}], r"\(LinearLR\): last_step=3 is not supported"),
    ([{"type": "LinearParamScheduler"}], r"\(LinearParamScheduler\): param_name=None is required"),
    ([{"type": "LinearLR", "param_name": "lr"}], r"\(LinearLR\): unknown key param_name='lr'"),
    ([{"type": "CosineAnnealingLR", "T_max": 0}], r"\(CosineAnnealingLR\): T_max=0 is not valid.*reads 0 as omitted"),
    ([{"type": "CosineRestartLR", "periods": [5]}], r"\(CosineRestartLR\): give eta_min or eta_min_ratio"),
    ([{"type": "CosineRestartLR", "periods": [5, 5], "restart_weights": [1], "eta_min": 0.0}],
     r"periods=\[5, 5\] and restart_weights=\[1\] must have the same length"),
    ([{"type": "CosineRestartLR", "periods": [5, 0], "restart_weights": [1, 1], "eta_min": 0.0}],
     r"periods=\[5, 0\] must be a non-empty list of positive numbers"),
    ([{"type": "OneCycleLR"}], r"\(OneCycleLR\): eta_max=0 must be a positive number"),
    ([{"type": "OneCycleLR", "eta_max": 0.2, "pct_start": 1}], r"pct_start=1 must be a float in \[0, 1\]"),
    ([{"type": "OneCycleLR", "eta_max": 0.2, "total_steps": 10.0}], r"total_steps=10.0 must be a positive integer"),
    ([{"type": "OneCycleLR", "eta_max": 0.2, "anneal_strategy": "exp"}],
     r"anneal_strategy='exp' is not valid; allowed: cos, linear"),
    ([{"type": "OneCycleParamScheduler", "param_name": "momentum", "eta_max": 0.95}],
     r"\(OneCycleParamScheduler\): param_name='momentum' is not supported"),
    ([{"type": "OneCycleMomentum"}], r"type='OneCycleMomentum' is not valid"),
    ([{"type": "ReduceOnPlateauLR", "by_epoch": False}], r"\(ReduceOnPlateauLR\): by_epoch=False is not supported"),
    ([{"type": "ReduceOnPlateauLR", "convert_to_iter_based": True}], r"convert_to_iter_based=True is not supported"),
    ([{"type": "ReduceOnPlateauLR", "factor": 1.0}], r"\(ReduceOnPlateauLR\): factor=1.0 is not valid; allowed: a "
                                                    r"number in \[0, 1\)"),
    ([{"type": "ReduceOnPlateauLR", "rule": "min"}], r"rule='min' is not valid; allowed: less, greater"),
    ([{"type": "ReduceOnPlateauLR", "threshold_rule": "relative"}], r"threshold_rule='relative' is not valid"),
    ([{"type": "ReduceOnPlateauLR", "threshold": -0.1}], r"threshold=-0.1 is not valid"),
    ([{"type": "ReduceOnPlateauLR", "patience": 1.5}], r"patience=1.5 must be an integer >= 0"),
    ([{"type": "ReduceLR", "mode": "max"}], r"\(ReduceLR\): ReduceLR is stepped by mmagic's ReduceLRSchedulerHook"),
    ([{"type": "LinearLrInterval", "interval": 0}], r"\(LinearLrInterval\): interval=0 must be an integer >= 1"),
    ([], r"param_scheduler must be a non-empty list"),
    (["LinearLR"], r"param_scheduler\[0\] must be a dict with 'type', got 'LinearLR'"),
    ({"lr": [{"type": "LinearLR"}]}, r"a dict without 'type' \(one list per optimizer"),
]


@pytest.mark.parametrize("schedulers, match", BUILD, ids=[f"{i}" for i in range(len(BUILD))])
def test_bad_lists_fail_at_build_naming_index_key_and_value(schedulers, match):
    with pytest.raises(ValueError, match=match):
        param_scheduler(schedulers)
    fails(r"config key 'components.s' \(_target_ trainkit.schedules.param_scheduler\)", schedulers)


@pytest.mark.parametrize("hook, match", [
    ({"type": "NoSuchHook"}, r"hook: type='NoSuchHook' is not valid; allowed: ParamSchedulerHook, "
                             r"ReduceLRSchedulerHook"),
    ({"type": "ReduceLRSchedulerHook", "interval": 0}, r"interval=0 must be an integer >= 1"),
    ({"type": "ReduceLRSchedulerHook", "val_metrc": "psnr"}, r"unknown key val_metrc='psnr'"),
    ({"type": "ParamSchedulerHook", "by_epoch": True}, r"ParamSchedulerHook takes no arguments"),
])
def test_bad_hooks(hook, match):
    with pytest.raises(ValueError, match=match):
        param_scheduler([{"type": "ReduceLR"}], hook)


RUN = [   # (list, run geometry, message): raised at before_run, before the first iteration
    ([{"type": "StepLR", "step_size": 1, "begin": 10}], {},
     r"\(StepLR\): begin=10 must be before end=3 \(end filled with the run's max_epochs=3\)"),
    ([{"type": "LinearLR", "by_epoch": False, "begin": 20}], {},
     r"\(LinearLR\): begin=20 must be before end=12 \(end filled with the run's max_iters=12\)"),
    ([{"type": "OneCycleLR", "eta_max": 0.2, "total_steps": 5, "by_epoch": False}], {},
     r"\(OneCycleLR\): total_steps=5 but the run steps it 12 times .*mmengine raises ValueError 'Tried to step 7 "
     r"times'"),
    ([{"type": "OneCycleLR", "eta_max": [0.2, 0.1, 0.3, 0.4], "by_epoch": False}], {},
     r"eta_max=\[0.2, 0.1, 0.3, 0.4\] has 4 values for 2 param groups \(one per group, or 3: mmengine counts its "
     r"OptimWrapper's hidden base group last\)"),
    ([{"type": "OneCycleLR", "eta_max": 0.2, "pct_start": 0.1, "by_epoch": False, "end": 10}], {},
     r"pct_start=0.1 makes phase 1 of the cycle zero steps long"),
    ([{"type": "ReduceOnPlateauLR", "min_value": [0.1, 0.1, 0.1]}], {},
     r"\(ReduceOnPlateauLR\): min_value=\[0.1, 0.1, 0.1\] has 3 values for 2 param groups"),
    ([{"type": "LinearMomentum", "start_factor": 0.5}], {"groups": [{"name": "ada", "lr": 0.1}]},
     r"param_scheduler\[0\] \(LinearMomentum\): the optimizer has no momentum: param group 'ada' has neither "
     r"'momentum' \(SGD, RMSprop\) nor 'betas'"),
    ([{"type": "LinearParamScheduler", "param_name": "weight_decay"}], {},
     r"\(LinearParamScheduler\): param_name='weight_decay': param group 'a' has no 'weight_decay'"),
    ([{"type": "LinearLrInterval", "interval": 5, "begin": 0, "end": 4, "by_epoch": False}], {},
     r"\(LinearLrInterval\): interval=5 is longer than the window end - begin = 4"),
]


@pytest.mark.parametrize("schedulers, geometry, match", RUN, ids=[f"{i}" for i in range(len(RUN))])
def test_run_dependent_errors_come_before_the_first_iteration(schedulers, geometry, match):
    fails(match, schedulers, **geometry)


def _train(components, evaluator=None, tmp_path=None, **kw):
    model = torch.nn.Linear(1, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = model

        def forward(self, batch):
            return {"loss": self.lin(batch[0].reshape(-1, 1)).sum() * 0}

    probe = Probe()
    runner = Runner(M(), opt, TensorDataset(torch.zeros(4)), batch_size=2, max_epochs=2, work_dir=tmp_path,
                    components={**components, "probe": probe}, evaluator=evaluator, progress=False, **kw)
    runner.run()
    return probe.seen


def test_a_monitored_metric_needs_an_evaluator_in_training(tmp_path):
    comp = param_scheduler([{"type": "ReduceOnPlateauLR", "monitor": "val/loss"}])
    with pytest.raises(ValueError, match=r"\(ReduceOnPlateauLR\): monitor='val/loss' needs validation metrics but the "
                                         r"run has no evaluator"):
        _train({"s": comp}, tmp_path=tmp_path)
    comp = param_scheduler([{"type": "ReduceLR"}], {"type": "ReduceLRSchedulerHook", "val_metric": "val/psnr"})
    with pytest.raises(ValueError, match=r"ReduceLRSchedulerHook monitors val_metric='val/psnr' but the run has no "
                                         r"evaluator"):
        _train({"s": comp}, tmp_path=tmp_path)


def test_a_missing_metric_lists_the_available_ones(tmp_path):
    comp = param_scheduler([{"type": "ReduceOnPlateauLR", "monitor": "val/acc"}])
    with pytest.raises(ValueError, match=r"param_scheduler\[0\] \(ReduceOnPlateauLR\): monitor='val/acc' is not among "
                                         r"the validation metrics; available: val/loss"):
        _train({"s": comp}, evaluator=lambda r: {"val/loss": 1.0}, tmp_path=tmp_path)


def test_the_training_loss_path_cannot_be_previewed():
    fails(r"ReduceLRSchedulerHook\(val_metric=null\) steps on the training loss, which a schedule preview does not "
          r"produce", [{"type": "ReduceLR"}], hook={"type": "ReduceLRSchedulerHook", "val_metric": None})


def test_a_plateau_member_without_metrics_is_inert_in_a_preview():
    """The planned schedule (no metric trace) previews everything else of a list with ReduceOnPlateau."""
    rows = run([{"type": "LinearLR", "start_factor": 0.5, "by_epoch": False, "end": 3},
                {"type": "ReduceOnPlateauLR", "monitor": "val/loss", "patience": 0}])
    assert [r["lr/a"] for r in rows[:4]] == pytest.approx([0.05, 0.075, 0.1, 0.1], rel=1e-12)
    assert rows[-1]["lr/a"] == rows[3]["lr/a"]
    assert not param_scheduler([{"type": "ReduceOnPlateauLR"}]).needs_metrics
    assert param_scheduler([{"type": "ReduceLR"}], {"type": "ReduceLRSchedulerHook", "val_metric": "m"}).needs_metrics


# --------------------------------------------------------------------------- warnings
WARN = [   # (list, run geometry, message)
    ([{"type": "StepLR", "step_size": 1, "begin": 10, "end": 12}], {},
     r"\(StepLR\): its window \[10, 12\) starts after the run's last epoch \(2\): it never acts"),
    ([{"type": "StepLR", "step_size": 1}], {"epochs": None, "max_iters": 8},
     r"\(StepLR\): a by-epoch scheduler in an iteration-based run \(trainer.max_iters, mmengine's IterBasedTrainLoop\) "
     r"takes only its step at construction"),
    ([{"type": "MultiStepLR", "milestones": [1], "convert_to_iter_based": True}], {"epochs": None, "max_iters": 8},
     r"\(MultiStepLR\): end is omitted in an iteration-based run .* fills it with max_epochs=1, so the window is "
     r"\[0, 1\) epochs = \[0, 4\) iterations"),
    ([{"type": "LinearLR", "end": 1.3, "convert_to_iter_based": True}], {},
     r"\(LinearLR\): end=1.3 epochs x 4 iterations per epoch = 5.2 is truncated to 5"),
    ([{"type": "MultiStepLR", "milestones": [1.5], "convert_to_iter_based": True}], {"ipe": 5},
     r"\(MultiStepLR\): milestones x 5 iterations per epoch = \[7.5\]: \[7.5\] are not whole iterations and never "
     r"apply"),
    ([{"type": "ConstantLR", "factor": 0.5, "begin": 1, "end": 2}], {},
     r"\(ConstantLR\): a window of one step \(end - begin = 1\) never restores the value"),
    ([{"type": "LinearLR", "start_factor": 0.5, "by_epoch": False, "begin": 2, "end": 3}], {},
     r"\(LinearLR\): a window of one step \(end - begin = 1\) never reaches end_factor"),
    ([{"type": "CosineRestartLR", "periods": [2], "eta_min": 0.0}], {},
     r"\(CosineRestartLR\): the periods \[2\] cover steps 0..1 of its window, the run uses steps up to 2"),
    ([{"type": "OneCycleLR", "eta_max": 0.3}], {},
     r"\(OneCycleLR\): eta_max=0.3 \(one number\) gives every param group the same lr"),
    ([{"type": "OneCycleLR", "eta_max": [0.3, 0.2], "total_steps": 11, "by_epoch": False}], {},
     r"the run uses step 11 = total_steps, past the cycle's end: mmengine extrapolates"),
    ([{"type": "StepLR", "step_size": 1.5}], {}, r"\(StepLR\): step_size=1.5 is not a whole number of steps"),
]


@pytest.mark.parametrize("schedulers, geometry, match", WARN, ids=[f"{i}" for i in range(len(WARN))])
def test_surprising_mmengine_behaviour_warns_once(schedulers, geometry, match):
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("default")
        run(schedulers, **geometry)
        run(schedulers, **geometry)      # a second build (e.g. the planned schedule, then the run): no repeat
    mine = [str(w.message) for w in seen if issubclass(w.category, ScheduleWarning)]
    assert len([m for m in mine if re.search(match, m)]) == 1, mine


@pytest.mark.parametrize("hook, schedulers, match", [
    ({"type": "ReduceLRSchedulerHook", "val_metric": "m"}, [{"type": "LinearLR", "by_epoch": False, "end": 5},
                                                          {"type": "ReduceLR"}],
     r"\(LinearLR\): under ReduceLRSchedulerHook\(val_metric='m'\) every scheduler steps once per check"),
    ({"type": "ReduceLRSchedulerHook", "val_metric": "m"}, [{"type": "ReduceOnPlateauLR"}, {"type": "ReduceLR"}],
     r"\(ReduceOnPlateauLR\): under mmagic's ReduceLRSchedulerHook, ReduceOnPlateau is stepped without metrics and "
     r"never reduces"),
])
def test_mmagic_hook_surprises_warn(hook, schedulers, match):
    with pytest.warns(ScheduleWarning, match=match):
        run(schedulers, hook=hook, metric_trace={"m": [1.0, 2.0, 3.0]})


def test_a_clean_schedule_does_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run([{"type": "LinearLR", "start_factor": 0.001, "by_epoch": False, "begin": 0, "end": 5},
             {"type": "MultiStepLR", "begin": 0, "end": 3, "by_epoch": True, "milestones": [1, 2], "gamma": 0.1}])

