"""Plateau reducer: mmagic's ReduceLR + ReduceLRSchedulerHook semantics, composition with the lr
updaters, resume, preview, the restoration recipe and a 2-process run.

Expected values come from the research notes' hand example, from
torch.optim.lr_scheduler.ReduceLROnPlateau where the bookkeeping coincides, and from tables derived
by hand in each test from mmagic's rules. The hand example and the hand tables of the mmagic unit
test, window, default-end, interval, eps/min_lr, NaN and train-loss tests are also compared ("REF")
with what mmagic 1.2.0's ReduceLR + ReduceLRSchedulerHook did in a real mmengine 0.10.7 Runner for
the same metric or loss sequence: every iteration's lrs and the scheduler's state after every check
(tests/reference/mmagic_plateau/tables.json, written by the committed make_tables.py there).
"""
import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from helpers import StepLrs, StopAt
from reference import reference
from plateau_probe import LossScript, MetricScript, Scripted, zeros
from trainkit.build import build
from trainkit.core.record import read_jsonl
from trainkit.schedules.plateau import ReduceLR
from trainkit.core.runner import Runner
from trainkit.cli.schedule import main as schedule_main
from trainkit.schedules.preview import preview
import contextlib

ROOT = Path(__file__).resolve().parent.parent
L = "trainkit.schedules."
G1 = [{"name": "g", "lr": 1.0}]


class Scalars:
    """Captures what the reducer put into runner.scalars (after it, before the logger)."""

    priority = 80

    def __init__(self):
        self.rows = []

    def _take(self, runner):
        if "plateau/value" in runner.scalars:
            self.rows.append({"epoch": runner.epoch, "iter": runner.iter, **runner.scalars})

    after_iter = after_epoch = after_val = _take


def val_run(trace, epochs=None, ipe=1, groups=G1, val_interval=1, **kw):
    """Preview with the reducer on ``val/m``: (lr of group 0 per epoch, reducer, captured scalars)."""
    plateau, cap = ReduceLR(val_metric="val/m", **kw), Scalars()
    epochs = epochs or len(trace)
    rows = preview(groups, {"plateau": plateau, "cap": cap}, epochs, ipe, {"val/m": trace},
                   val_interval=val_interval)
    for r in rows:   # within an epoch the lr never changes (no lr updater)
        assert r[f"lr/{groups[0]['name']}"] == rows[r["epoch"] * ipe][f"lr/{groups[0]['name']}"]
    return [rows[e * ipe][f"lr/{groups[0]['name']}"] for e in range(epochs)], plateau, cap.rows


def train_run(tmp_path, losses, *, ipe=4, epochs=None, components=None, groups=(1.0,), resume=None,
              stop_at=None, ckpt_iters=None, **kw):
    """A real Runner whose loss at iteration i is ``losses[i]``: (lr of each group per iteration, reducer)."""
    torch.manual_seed(0)
    model = Scripted()
    opt = torch.optim.SGD([{"params": [model.w], "lr": groups[0], "name": "a"}]
                          + [{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": g, "name": f"g{i}"}
                             for i, g in enumerate(groups[1:], 1)])
    plateau = ReduceLR(**kw)
    seen = {}

    comps = {k: build(v, k) for k, v in (components or {}).items()}
    comps.update(script=LossScript(losses), plateau=plateau, rec=StepLrs(seen), stop=StopAt(stop_at))
    runner = Runner(model, opt, zeros(ipe).train, batch_size=1, max_epochs=epochs or len(losses) // ipe,
                    components=comps, work_dir=tmp_path, progress=False, resume=resume,
                    checkpoint_interval_iters=ckpt_iters, nonfinite="skip")
    with contextlib.suppress(KeyboardInterrupt):
        runner.run()
    return seen, plateau


def _nan_safe(v):
    return "nan" if isinstance(v, float) and math.isnan(v) else v


def mmagic_ref(name):
    """REF case ``name``: (each iteration's lrs, one tuple per iteration; the states after the checks:
    ``(epoch, value, best, num_bad, cooldown)``, NaN written as "nan" so that lists compare)."""
    case = reference("mmagic_plateau", name)
    states = [(c["epoch"], _nan_safe(c["value"]), c["best"], c["num_bad"], c["cooldown"]) for c in case["checks"]]
    return case["lr"], states


def cap_states(cap):
    """The reducer's logged states in the REF's form."""
    return [(r["epoch"], _nan_safe(r["plateau/value"]), r["plateau/best"], r["plateau/num_bad"],
             r["plateau/cooldown"]) for r in cap]


def per_epoch(lrs, ipe=1):
    """Group 0's lr in each epoch of a per-iteration REF column."""
    return [v[0] for v in lrs[::ipe]]


# ------------------------------------------------------------ reference semantics
def test_hand_example_from_the_notes_val_path():
    """Notes §4.4 (real mmengine Runner): [10, 9, 9, ...], min, patience 2, cooldown 1, factor 0.5:
    the 5th metric reduces, epoch index 5 is the first to train with 0.5, the 9th reduces again."""
    trace = [10, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9]
    lrs, p, cap = val_run(trace, ipe=3, mode="min", factor=0.5, patience=2, cooldown=1)
    assert lrs == [1.0] * 5 + [0.5] * 4 + [0.25] * 2
    #              check:   1   2   3   4   5   6   7   8   9  10  (11: end = max_epochs, outside)
    assert [r["plateau/num_bad"] for r in cap] == [0, 0, 1, 2, 0, 0, 1, 2, 0, 0, 0]
    assert [r["plateau/cooldown"] for r in cap] == [0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0]
    assert [r["plateau/best"] for r in cap] == [10, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9]
    assert [r["epoch"] for r in cap] == list(range(1, 12))      # after validation k, runner.epoch == k
    assert p.step_count == 11 and p.last_step == 10 and p.reductions == 2
    ref_lrs, ref_states = mmagic_ref("hand_example_val")
    assert lrs == per_epoch(ref_lrs, 3) and len(ref_lrs) == 33 and cap_states(cap) == ref_states


def test_hand_example_from_the_notes_train_loss_by_epoch(tmp_path):
    """The same decisions from the mean training loss of each epoch (mmagic's val_metric=None path)."""
    seq = [10, 9, 9, 9, 9, 9, 9, 9, 9, 9]
    losses = [v + d for v in seq for d in (-1.0, 0.5, 0.25, 0.25)]    # epoch means = seq
    seen, p = train_run(tmp_path, losses, mode="min", factor=0.5, patience=2, cooldown=1)
    assert [seen[i][0] for i in range(40)] == [1.0] * 20 + [0.5] * 16 + [0.25] * 4
    assert p.value == 9.0 and p.reductions == 2
    ref_lrs, ref_states = mmagic_ref("hand_example_train_loss_by_epoch")
    assert [seen[i][0] for i in range(40)] == [v[0] for v in ref_lrs]
    assert (p.value, p.best, p.num_bad, p.cooldown_counter) == ref_states[-1][1:] and p.step_count == len(ref_states)


def test_mmagic_unit_test_scenario():
    """mmagic's test_reduce_lr_scheduler: lr 0.05, patience 1, default factor 0.1, value 1 three
    times: best, bad 1, then reduced to 0.005 — min and max, rel and abs alike."""
    for mode in ("min", "max"):
        for tm in ("rel", "abs"):
            lrs, p, _ = val_run([1, 1, 1, 1], groups=[{"name": "g", "lr": 0.05}], mode=mode, threshold_mode=tm,
                                patience=1)
            assert lrs[:3] == [0.05] * 3 and lrs[3] == pytest.approx(0.005, abs=1e-8)
            assert lrs == per_epoch(mmagic_ref(f"mmagic_unit_test_{mode}_{tm}")[0])


def _trace(seed, n=40):
    """Ups, downs and exact repeats (plateaus)."""
    g = torch.Generator().manual_seed(seed)
    steps = torch.randint(-2, 3, (n,), generator=g).tolist()
    v, out = 20.0, []
    for s in steps:
        v += 0.5 * s if s % 2 else 0.0
        out.append(v)
    return out


@pytest.mark.parametrize("kw", [
    dict(mode="min", threshold_mode="rel", patience=2, cooldown=1, factor=0.5, threshold=1e-4),
    dict(mode="max", threshold_mode="abs", patience=1, cooldown=0, factor=0.1, threshold=0.4),
    dict(mode="min", threshold_mode="abs", patience=0, cooldown=3, factor=0.3, threshold=0.0),
    dict(mode="max", threshold_mode="rel", patience=3, cooldown=2, factor=0.7, threshold=0.01),
    dict(mode="min", threshold_mode="rel", patience=0, cooldown=0, factor=0.0, threshold=0.0),
])
def test_equals_torch_reduce_lr_on_plateau_where_the_bookkeeping_coincides(kw):
    """With min_lr = 0 mmagic's eps test equals torch's, and with one check per epoch the counters
    are torch's: every epoch's lr and the final best / num_bad / cooldown are torch's."""
    for seed in range(3):
        trace = _trace(seed)
        lrs, p, _ = val_run(trace, groups=[{"name": "g", "lr": 0.1}], end=10**6, **kw)
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
        ref = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, **kw)
        expected = []
        for v in trace:
            expected.append(opt.param_groups[0]["lr"])
            ref.step(v)
        assert lrs == expected
        assert (p.best, p.num_bad, p.cooldown_counter) == (ref.best, ref.num_bad_epochs, ref.cooldown_counter)
        assert len(set(lrs)) > 1


def test_eps_skips_tiny_groups_and_min_lr_raises_a_lower_group():
    """mmagic tests ``lr − lr·factor > eps`` *before* clamping: a group below min_lr is raised to it
    (torch leaves it), a group whose decrease is <= eps is left alone (and keeps factor 1)."""
    groups = [{"name": "a", "lr": 1.0}, {"name": "tiny", "lr": 1.5e-8}, {"name": "low", "lr": 1e-4},
              {"name": "mid", "lr": 1.5e-3}]
    plateau, cap = ReduceLR(val_metric="val/m", factor=0.5, patience=0, min_lr=1e-3), Scalars()
    rows = preview(groups, {"p": plateau, "cap": cap}, 4, 1, {"val/m": [1, 1, 1, 1]})
    lr = [[r[f"lr/{g['name']}"] for g in groups] for r in rows]
    assert lr[0] == lr[1] == [1.0, 1.5e-8, 1e-4, 1.5e-3]
    # check 2 reduces: 1.5e-8 − 0.75e-8 <= 1e-8 → kept; 1e-4 → max(5e-5, 1e-3); 1.5e-3 → max(7.5e-4, 1e-3)
    assert lr[2] == [0.5, 1.5e-8, 1e-3, 1e-3]
    assert lr[3] == [0.25, 1.5e-8, 1e-3, 1e-3]
    ref_lrs, ref_states = mmagic_ref("eps_and_min_lr")
    assert [tuple(x) for x in lr] == ref_lrs and cap_states(cap.rows) == ref_states
    assert cap.rows[-1]["plateau/factor/tiny"] == 1.0 and cap.rows[-1]["plateau/factor/low"] == 0.25
    opt = torch.optim.SGD([{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": g["lr"]} for g in groups])
    ref = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=0, min_lr=1e-3)
    for v in (1, 1, 1):
        ref.step(v)
    assert [g["lr"] for g in opt.param_groups] == [0.25, 1.5e-8, 1e-4, 1e-3]     # torch: "low" stays


def test_window_metrics_outside_are_not_consumed_and_the_first_inside_is_discarded():
    """begin=3, end=6 (counted in checks; construction = 0): checks 1, 2 outside, check 3 discards
    its metric (mmengine's last_step == 0), checks 4 and 5 decide, checks from 6 on are ignored."""
    trace = [1, 1, 1, 5, 5, 5, 5, 5, 5, 5]
    lrs, p, cap = val_run(trace, factor=0.5, patience=0, begin=3, end=6)
    assert lrs == [1.0] * 5 + [0.5] * 5
    assert p.best == 5 and p.reductions == 1 and p.step_count == 10 and p.last_step == 2
    assert [r["plateau/best"] for r in cap[:4]] == [math.inf] * 3 + [5]
    ref_lrs, ref_states = mmagic_ref("window_begin3_end6")
    assert lrs == per_epoch(ref_lrs) and cap_states(cap) == ref_states
    # begin = 0: the first check decides at once; here check 2 (1 not < 1) reduces
    lrs, _, cap = val_run(trace, factor=0.5, patience=0, end=100)
    assert lrs[:5] == [1.0, 1.0, 0.5, 0.25, 0.125]
    ref_lrs, ref_states = mmagic_ref("window_begin0_end100")
    assert lrs == per_epoch(ref_lrs) and cap_states(cap) == ref_states


def test_end_defaults_to_max_epochs_so_the_check_after_the_last_validation_is_ignored():
    lrs, p, cap = val_run([5] * 6, factor=0.5, patience=0)
    assert lrs == [1.0, 1.0, 0.5, 0.25, 0.125, 0.0625]
    assert p.reductions == 4 and p.step_count == 6 and p.num_bad == 0    # check 6 would have reduced
    assert cap[-1]["plateau/value"] == 5 and cap[-1]["plateau/reductions"] == 4
    ref_lrs, ref_states = mmagic_ref("end_defaults_to_max_epochs")
    assert lrs == per_epoch(ref_lrs) and cap_states(cap) == ref_states


def test_val_interval_off_by_one_and_by_iter_checks():
    """by_epoch with interval 2: mmagic tests (runner.epoch + 1) % 2 with runner.epoch already the
    number of completed epochs, so the first check follows the *first* validation (a mean of one
    value), later ones average two. With by_epoch=False every validation is a check."""
    trace = [4.0, 2.0, 6.0, 8.0, 8.0, 1.0, 3.0]
    lrs, _, cap = val_run(trace, interval=2, factor=0.5, patience=0, end=100)
    assert [(r["epoch"], r["plateau/value"]) for r in cap] == [(1, 4.0), (3, 4.0), (5, 8.0), (7, 2.0)]
    assert lrs == [1.0, 1.0, 1.0, 0.5, 0.5, 0.25, 0.25]      # checks 2 (4 not < 4) and 3 (8) reduce
    ref_lrs, ref_states = mmagic_ref("interval2_by_epoch")
    assert lrs == per_epoch(ref_lrs) and cap_states(cap) == ref_states
    lrs, _, cap = val_run(trace, by_epoch=False, interval=2, factor=0.5, patience=5)
    assert [r["plateau/value"] for r in cap] == trace
    ref_lrs, ref_states = mmagic_ref("interval2_by_iter")
    assert lrs == per_epoch(ref_lrs) and cap_states(cap) == ref_states
    # trainer.val_interval=2: checks count validations, not epochs
    lrs, p, cap = val_run([3, 3, 3, 3], epochs=8, val_interval=2, factor=0.5, patience=0, end=100)
    assert [r["epoch"] for r in cap] == [2, 4, 6, 8] and lrs == [1.0] * 4 + [0.5] * 2 + [0.25] * 2
    ref_lrs, ref_states = mmagic_ref("val_interval2")
    assert lrs == per_epoch(ref_lrs) and cap_states(cap) == ref_states


def test_train_loss_by_iteration_with_an_interval_spanning_epochs(tmp_path):
    """by_epoch=False, interval 3: checks after iterations 2, 5, 8, 11, each on the mean loss of the
    3 iterations before it; a reduction after iteration i is first used by iteration i + 1."""
    losses = [3, 3, 3, 2, 2, 2, 2, 3, 1, 2, 2, 1]     # means: 3, 2, 2, 5/3
    seen, p = train_run(tmp_path, losses, ipe=4, by_epoch=False, interval=3, factor=0.1, patience=0)
    assert [seen[i][0] for i in range(12)] == [1.0] * 9 + [0.1] * 3
    assert p.value == pytest.approx(5 / 3, rel=1e-15) and p.best == p.value and p.step_count == 4
    ref_lrs, ref_states = mmagic_ref("train_loss_by_iter_interval3")
    assert [seen[i][0] for i in range(12)] == [v[0] for v in ref_lrs]
    assert (p.value, p.best, p.num_bad, p.cooldown_counter) == ref_states[-1][1:] and p.step_count == len(ref_states)


def test_train_loss_by_epoch_interval_averages_all_iterations_since_the_last_check(tmp_path):
    losses = [4, 4, 2, 2, 1, 5, 5, 5]                # epochs of 2 iters; checks after epochs 2 and 4
    seen, p = train_run(tmp_path, losses, ipe=2, interval=2, factor=0.5, patience=0, end=100)
    assert p.step_count == 2 and p.value == 4.0 and p.best == 3.0 and p.reductions == 1
    assert [seen[i][0] for i in range(8)] == [1.0] * 8      # the reduction came after the last iteration
    ref_lrs, ref_states = mmagic_ref("train_loss_by_epoch_interval2")
    assert [seen[i][0] for i in range(8)] == [v[0] for v in ref_lrs]
    assert (p.value, p.best, p.num_bad, p.cooldown_counter) == ref_states[-1][1:] and p.step_count == len(ref_states)


def test_nan_counts_as_not_better_and_the_run_goes_on(tmp_path):
    lrs, p, cap = val_run([1, math.nan, math.nan, 0.5, 0.5], factor=0.5, patience=1, end=100)
    assert lrs == [1.0, 1.0, 1.0, 0.5, 0.5] and p.best == 0.5
    assert math.isnan(cap[1]["plateau/value"]) and cap[2]["plateau/reductions"] == 1
    ref_lrs, ref_states = mmagic_ref("nan_metric")
    assert lrs == per_epoch(ref_lrs) and cap_states(cap) == ref_states
    # a non-finite training loss (trainer.nonfinite=skip) makes that epoch's mean NaN
    seen, p = train_run(tmp_path, [2, 2, math.nan, 1, 1, 1], ipe=2, factor=0.5, patience=0, end=100)
    assert [seen[i][0] for i in (0, 1, 4, 5)] == [1.0, 1.0, 0.5, 0.5] and p.best == 1.0
    ref_lrs, ref_states = mmagic_ref("nan_train_loss")
    assert {i: v[0] for i, v in seen.items()} == {i: ref_lrs[i][0] for i in seen} and ref_states[1][1] == "nan"
    assert ref_lrs[2] == ref_lrs[3] == (1.0,)      # (the skipped step of iteration 2 would have used 1.0)


def test_missing_metric_lists_the_available_ones():
    with pytest.raises(ValueError, match=r"val_metric='val/psnr' is not among the validation metrics; "
                                         r"available: val/loss, val/ssim"):
        preview(G1, {"p": ReduceLR(val_metric="val/psnr")}, 2, 1, {"val/loss": [1, 2], "val/ssim": [1, 1]})
    with pytest.raises(ValueError, match=r"no evaluator .*metric_trace"):
        preview(G1, {"p": ReduceLR(val_metric="val/psnr")}, 2, 1)
    with pytest.raises(ValueError, match=r"training loss .*preview"):
        preview(G1, {"p": ReduceLR()}, 2, 1)


@pytest.mark.parametrize("kw, match", [
    (dict(factor=1.0), r"factor=1\.0 is out of range; allowed: \[0\.0, 1\.0\)"),
    (dict(factor=-0.1), r"factor=-0\.1 is out of range"),
    (dict(mode="mean"), r"mode='mean' is not valid; allowed: 'min', 'max'"),
    (dict(threshold_mode="relative"), r"threshold_mode='relative' is not valid; allowed: 'rel', 'abs'"),
    (dict(patience=-1), r"patience must be an integer >= 0, got -1"),
    (dict(cooldown=-2), r"cooldown must be an integer >= 0, got -2"),
    (dict(patience=1.5), r"patience must be an integer >= 0, got 1\.5"),
    (dict(min_lr=[0.1, 0.2]), r"min_lr must be a number, got \[0\.1, 0\.2\]"),
    (dict(interval=0), r"interval must be an integer >= 1, got 0"),
    (dict(begin=3, end=3), r"end must be an integer >= 4, got 3"),
    (dict(val_metric=""), r"val_metric must be a metric name"),
])
def test_bad_arguments_fail_at_build_naming_key_and_value(kw, match):
    with pytest.raises(ValueError, match=match):
        ReduceLR(**kw)


def test_bad_argument_from_a_recipe_names_the_component_key(make_cfg, tmp_path):
    from trainkit.build import build_runner

    cfg = make_cfg("+recipe=restoration_plateau", "components.plateau.factor=1.5")
    with pytest.raises(ValueError, match=r"components\.plateau.*factor=1\.5 is out of range"):
        build_runner(cfg, tmp_path)


def test_begin_after_the_default_end_fails_before_training():
    with pytest.raises(ValueError, match=r"begin=5 is not before end=3 \(end defaults to the run's max_epochs\)"):
        preview(G1, {"p": ReduceLR(val_metric="val/m", begin=5)}, 3, 1, {"val/m": [1, 1, 1]})


# ------------------------------------------------------------------- composition
def test_composition_warmup_cosine_then_plateau_with_min_lr_floor():
    """lr(i) = S(i) until a group's first reduction, then max(S(i)·F, min_lr); S = by-iteration cosine
    (min_lr_ratio 0.1) after a 4-iteration linear warmup from 0.1×."""
    groups = [{"name": "a", "lr": 0.1}, {"name": "b", "lr": 0.02}]
    comps = {"lr": {"_target_": L + "CosineAnnealingLrUpdater", "by_epoch": False, "min_lr_ratio": 0.1,
                    "warmup": "linear", "warmup_iters": 4, "warmup_ratio": 0.1},
             "plateau": {"_target_": "trainkit.schedules.ReduceLR", "val_metric": "val/m", "factor": 0.5,
                         "patience": 0, "min_lr": 0.004}}
    rows = preview(groups, comps, 6, 3, {"val/m": [3, 2, 2, 1, 1, 1]})
    factor = [1, 1, 1, 0.5, 0.5, 0.25]     # checks 3 and 5 reduce; epoch k first uses check k's result
    for r in rows:
        i, e = r["iter"], r["epoch"]
        for g in groups:
            b = g["lr"]
            t = 0.1 * b
            s = (t + 0.5 * (b - t) * (1 + math.cos(math.pi * i / 18))) * (1 - (1 - i / 4) * 0.9 if i < 4 else 1)
            want = s if factor[e] == 1 else max(s * factor[e], 0.004)
            assert r[f"lr/{g['name']}"] == pytest.approx(want, rel=1e-12), (i, g["name"])
    assert rows[14]["lr/b"] == 0.004 and rows[17]["lr/a"] == 0.004         # the floor binds
    assert rows[9]["lr/b"] > 0.004


def test_composition_reduction_mid_epoch_applies_at_once_under_a_by_epoch_schedule(tmp_path):
    """A by-epoch Exp schedule writes only at epoch starts; a by-iteration check reducing after
    iteration 5 must change the lr of iterations 6 and 7 at once (scheduled × factor)."""
    losses = [4, 4, 3, 3, 3, 3, 1, 1, 1, 1, 1, 1]      # checks after 1, 3, 5, 7, 9, 11: 4, 3, 3, 1, 1, 1
    comps = {"lr": {"_target_": L + "ExpLrUpdater", "gamma": 0.5}}
    seen, p = train_run(tmp_path, losses, ipe=4, components=comps, groups=(0.8, 0.2), by_epoch=False,
                        interval=2, factor=0.1, patience=0)
    for i, f in enumerate([1, 1, 1, 1, 0.5, 0.5, 0.05, 0.05, 0.025, 0.025, 0.0025, 0.0025]):
        assert seen[i] == pytest.approx([0.8 * f, 0.2 * f], rel=1e-13), i
    assert p.reductions == 3


# ------------------------------------------------------------------------ resume
LOSSES = [5, 4, 4, 3, 4, 4, 4, 4, 2, 3, 3, 4, 3, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1]   # means of 4: 4 4 3 3 1 1
RESUME_CASES = {
    "val_metric_with_warmup_cosine": (
        dict(val_metric="val/m", mode="max", factor=0.5, patience=0, cooldown=1, min_lr=0.003),
        {"lr": {"_target_": L + "CosineAnnealingLrUpdater", "by_epoch": False, "min_lr_ratio": 0.1,
                "warmup": "exp", "warmup_iters": 5}}, LOSSES),
    "train_loss_by_iter_pending_across_the_checkpoint": (
        dict(by_epoch=False, interval=4, factor=0.7, patience=0, cooldown=1), {}, LOSSES),
    # reductions after every iteration under a by-epoch schedule: the resumed epoch start rewrites
    # scheduled × lr_factor, which must equal what the reductions left in the group
    "train_loss_every_iter_under_by_epoch_exp": (
        dict(by_epoch=False, factor=0.7, patience=0), {"lr": {"_target_": L + "ExpLrUpdater", "gamma": 0.9}},
        [5.0] * 24),
}


class Checks:
    """The reducer's state after each of its checks."""

    priority = 80

    def __init__(self, plateau):
        self.plateau, self.rows = plateau, []

    def _take(self, runner):
        p = self.plateau
        if not self.rows or self.rows[-1][0] != p.step_count:
            self.rows.append((p.step_count, p.value, p.best, p.num_bad, p.cooldown_counter,
                              p.reductions, tuple(p.factors)))

    before_epoch = after_iter = after_epoch = after_val = _take     # before_epoch: after a resume's load


@pytest.mark.parametrize("case", sorted(RESUME_CASES))
def test_resumed_run_makes_the_same_decisions(tmp_path, case):
    kw, comps, losses = RESUME_CASES[case]
    ev = MetricScript("val/m", [1, 1, 2, 2, 2, 3])

    def go(d, stop_at=None, resume=None):
        torch.manual_seed(0)
        model = Scripted()
        opt = torch.optim.SGD([{"params": [model.w], "lr": 0.05, "name": "a"},
                               {"params": [torch.nn.Parameter(torch.zeros(1))], "lr": 0.01, "name": "b"}])
        seen = {}
        plateau = ReduceLR(**kw)
        checks = Checks(plateau)
        built = {k: build(v, k) for k, v in comps.items()}
        runner = Runner(model, opt, zeros(4).train, val_data=zeros().val, evaluator=ev, batch_size=1, max_epochs=6,
                        components={**built, "script": LossScript(losses), "plateau": plateau, "rec": StepLrs(seen),
                                    "stop": StopAt(stop_at), "checks": checks},
                        work_dir=d, progress=False, checkpoint_interval_iters=3, resume=resume)
        with contextlib.suppress(KeyboardInterrupt):
            runner.run()
        return seen, checks.rows, plateau

    full, full_checks, p_full = go(tmp_path / "full")
    part, part_checks, _ = go(tmp_path / "cut", stop_at=11)     # last checkpoint: after iteration 8 (mid-epoch 2)
    rest, rest_checks, p_rest = go(tmp_path / "cut", resume="auto")
    assert sorted(rest) == list(range(9, 24))
    for i in range(24):
        assert (part if i < 11 else rest)[i] == full[i], i
    loaded = rest_checks[0][0]            # the state loaded from the checkpoint, then every later check
    assert [c for c in part_checks if c[0] < loaded] + rest_checks == full_checks
    assert p_full.reductions >= 2 and len({tuple(v) for v in full.values()}) >= 3
    assert p_rest.state_dict() == p_full.state_dict()


# ------------------------------------------------------------------------ preview
def _csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_preview_cli_with_the_recipe_default_synthetic_trace(tmp_path, capsys):
    """improve_then_flat over 30 validations (mode max): 10·1.05^k for k < 10, then flat. With
    patience 2 and cooldown 1 the flat part reduces at checks 13, 17, 21, 25, 29; check k's
    reduction is first used by epoch index k."""
    schedule_main(["+recipe=restoration_plateau", f"out={tmp_path}"])
    out = capsys.readouterr().out
    rows, checks = _csv(tmp_path / "schedule.csv"), _csv(tmp_path / "checks.csv")
    ipe = 45                                            # 1438 training digits, batch 32
    assert len(rows) == 30 * ipe and len(checks) == 30
    assert [float(c["plateau/value"]) for c in checks] == [10 * 1.05 ** min(k, 9) for k in range(30)]
    n_red = [0] + [int(c["plateau/reductions"]) for c in checks]
    reduced_at = [k for k in range(1, 31) if n_red[k] > n_red[k - 1]]
    assert reduced_at == [13, 17, 21, 25, 29]
    for r in rows:
        i, e = int(r["iter"]), int(r["epoch"])
        warm = 1 - (1 - i / 45) * 0.9 if i < 45 else 1.0
        n = sum(e >= k for k in reduced_at)
        assert float(r["lr/pg0"]) == pytest.approx(0.003 * warm * 0.5 ** n, rel=1e-12), i
    assert "metric trace (improve_then_flat): val/psnr = 10, 10.5," in out
    assert "reduction 1 at the check after epoch 13" in out and "reduction 5 at the check after epoch 29" in out
    assert (tmp_path / "schedule.png").stat().st_size > 10_000


def test_preview_cli_with_a_list_override(tmp_path, capsys):
    schedule_main(["+recipe=restoration_plateau", "trainer.max_epochs=8", "iters_per_epoch=2",
                   "metric_trace=[20, 21, 21]", f"out={tmp_path}"])     # padded with 21
    checks = _csv(tmp_path / "checks.csv")
    assert [float(c["plateau/value"]) for c in checks] == [20, 21, 21, 21, 21, 21, 21, 21]
    assert [int(c["plateau/reductions"]) for c in checks] == [0, 0, 0, 0, 1, 1, 1, 1]
    for r in _csv(tmp_path / "schedule.csv"):                          # all inside the 45-iteration warmup
        i = int(r["iter"])
        want = 0.003 * (1 - (1 - i / 45) * 0.9) * (0.5 if i >= 10 else 1)
        assert float(r["lr/pg0"]) == pytest.approx(want, rel=1e-12)
    with pytest.raises(ValueError, match=r"metric_trace='improve_sometimes' is neither a file"):
        schedule_main(["+recipe=restoration_plateau", "metric_trace=improve_sometimes", f"out={tmp_path}"])


# ------------------------------------------------------------------------ recipe
def test_restoration_recipe_beats_the_noisy_input_and_logs_plateau_state(make_cfg, tmp_path):
    from trainkit.cli.train import run_config

    cfg = make_cfg("+recipe=restoration_plateau", "trainer.max_epochs=3", "trainer.progress=false",
                   "components.plateau.patience=0")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)      # 8x8 convolutions: one thread is fastest (and immune to a busy machine)
    try:
        psnr = run_config(cfg, tmp_path)
    finally:
        torch.set_num_threads(threads)
    rows = [r for r in read_jsonl(tmp_path / "metrics.jsonl") if "val/psnr" in r]
    assert len(rows) == 3 and psnr == rows[-1]["val/psnr"]
    assert psnr > rows[-1]["val/psnr_noisy"] + 2.0        # dB over the identity baseline
    assert all("plateau/factor/pg0" in r and "plateau/best" in r for r in rows)   # the after_val row


# ------------------------------------------------------------------ 2 processes
RECIPE_2PROC = """
name: plateau_2proc
model: {_target_: plateau_probe.Scripted}
data: {_target_: plateau_probe.zeros, n: 8}
optimizer: {_target_: torch.optim.SGD, lr: 1.0}
evaluator:
  _target_: plateau_probe.MetricScript
  name: val/m
  values: [[10, 12, 12, 13], [10, 8, 12, 11]]
components:
  script:
    _target_: plateau_probe.LossScript
    values: [[4, 4, 3, 3, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1],
             [4, 4, 5.5, 5.5, 3, 3, 2, 2, 3, 3, 1, 1, 1, 1, 1, 1]]
  loss_plateau: {_target_: trainkit.schedules.ReduceLR, by_epoch: false, interval: 2, factor: 0.5, patience: 0}
  val_plateau: {_target_: trainkit.schedules.ReduceLR, val_metric: val/m, mode: max, factor: 0.5, patience: 0}
  trace: {_target_: plateau_probe.Trace, names: [loss_plateau, val_plateau]}
trainer: {max_epochs: 4, batch_size: 1, progress: false, log_interval: 1}
"""


def test_two_processes_average_the_metric_and_decide_identically(tmp_path):
    """Rank 0 alone would never reduce (its losses and metrics improve); rank 1's are worse. Both
    ranks consume the cross-process means, take the same reductions and end with the same lrs."""
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "plateau_2proc.yaml").write_text(RECIPE_2PROC)
    env = {**os.environ, "TRAINKIT_RECIPES": str(tmp_path / "recipes"), "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), str(ROOT)])}
    run_dir = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           "-m", "trainkit.train", "+recipe=plateau_2proc", f"hydra.run.dir={run_dir}"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    traces = [[json.loads(x) for x in (run_dir / f"plateau_rank{r}.jsonl").read_text().splitlines()] for r in (0, 1)]
    assert traces[0] == traces[1]
    loss = [t for t in traces[0] if t["name"] == "loss_plateau"]
    val = [t for t in traces[0] if t["name"] == "val_plateau"]
    # loss checks after iterations 1, 3, ..., 15: means of 2 iterations, then of the 2 ranks
    assert [t["iter"] for t in loss] == list(range(1, 16, 2)) and [t["step_count"] for t in loss] == list(range(1, 9))
    assert [t["value"] for t in loss] == [4.0, 4.25, 3.0, 2.0, 2.0, 1.0, 1.0, 1.0]
    assert [t["reductions"] for t in loss] == [0, 1, 1, 1, 2, 2, 3, 4]
    # validations after epochs 1..4: (10+10)/2, (12+8)/2, 12, 12; the 4th check is outside [0, max_epochs)
    assert [t["value"] for t in val] == [10.0, 10.0, 12.0, 12.0] and [t["reductions"] for t in val] == [0, 1, 1, 1]
    assert val[-1]["best"] == 12.0 and val[-1]["step_count"] == 4
    # every reduction of either reducer halves the lr: 1 → 0.5^6 after the last one
    assert loss[-1]["lrs"] == [0.5 ** 5] and val[1]["lrs"] == [0.25]
    rows = read_jsonl(run_dir / "metrics.jsonl")
    assert [r["lr/pg0"] for r in rows if "lr/pg0" in r] == \
        [1.0] * 4 + [0.5] * 4 + [0.25] * 2 + [0.125] * 4 + [0.0625] * 2
