"""mmtrack's SiameseRPN lr updater and mmagic's LinearLrInterval, through the real Runner.

Expected values are closed forms derived here from the references' definitions:
SiameseRPN step segment = geometric from start to end (end excluded), log segment =
log-uniform from start to end (both included); LinearLrInterval = mmengine's scheduler
stepped at construction and after every iteration/epoch.
"""
import copy
import math

import pytest

from trainkit import policies
from trainkit.lr_updaters import SiameseRPNLrUpdater
from trainkit.schedule import preview

G2 = [{"name": "g0", "lr": 0.02, "momentum": 0.9}, {"name": "g1", "lr": 0.01, "momentum": 0.9}]
L = "trainkit.lr_updaters."


def close(x):
    return pytest.approx(x, rel=1e-12, abs=0)


def test_siamese_rpn_default_segments_over_20_epochs():
    rows = preview(G2, {"lr": {"_target_": L + "SiameseRPNLrUpdater"}}, 20, 3)
    for r in rows:
        e = r["epoch"]
        # epochs 0..4: 0.2 -> 1.0 geometrically (1.0 itself not reached); 5..19: 1 -> 0.1 log-uniform
        factor = 0.2 * 5 ** (e / 5) if e < 5 else 10 ** (-(e - 5) / 14)
        assert r["lr/g0"] == close(0.02 * factor) and r["lr/g1"] == close(0.01 * factor), r
    by_epoch = {r["epoch"]: r["lr/g0"] for r in rows}
    assert by_epoch[5] == 0.02 and by_epoch[19] == close(0.002)


def test_siamese_rpn_custom_segments_with_warmup_and_a_shorter_run():
    segs = [{"type": "step", "start_lr_factor": 0.5, "end_lr_factor": 1.0, "end_epoch": 2},
            {"type": "log", "start_lr_factor": 1.0, "end_lr_factor": 0.01, "end_epoch": 5}]
    node = {"_target_": L + "lr_config", "policy": "SiameseRPN", "lr_configs": segs, "warmup": "linear",
            "warmup_iters": 2, "warmup_ratio": 0.5}
    rows = preview(G2, {"lr": node}, 4, 2)
    factors = [0.5, 0.5 * math.sqrt(2), 1.0, 0.1]
    for r in rows:
        f = factors[r["epoch"]] * (1 - (1 - r["iter"] / 2) * 0.5 if r["iter"] < 2 else 1)
        assert r["lr/g0"] == close(0.02 * f) and r["lr/g1"] == close(0.01 * f)


def test_siamese_rpn_never_mutates_its_segments():
    before = copy.deepcopy(policies.DEFAULT_SIAMESE_SEGMENTS)
    segs = [{"type": "step", "start_lr_factor": 0.2, "end_lr_factor": 1.0, "end_epoch": 5}]
    mine = copy.deepcopy(segs)
    for _ in range(2):
        SiameseRPNLrUpdater()
        SiameseRPNLrUpdater(lr_configs=segs)
    assert policies.DEFAULT_SIAMESE_SEGMENTS == before and segs == mine


def test_siamese_rpn_schedule_shorter_than_the_run_fails_before_the_first_iteration():
    seen = []

    class Probe:
        def before_iter(self, runner):
            seen.append(runner.iter)

    with pytest.raises(ValueError, match=r"lr_configs cover epochs 0\.\.19 but the run has 21 epochs"):
        preview(G2, {"lr": {"_target_": L + "SiameseRPNLrUpdater"}, "probe": Probe()}, 21, 2)
    assert seen == []


# ------------------------------------------------------------------ LinearLrInterval
def lli(groups, epochs, ipe, **cfg):
    return preview(groups, {"lr": {"_target_": L + "LinearLrInterval", **cfg}}, epochs, ipe)


def test_linear_lr_interval_mmagic_unit_test_scenario():
    """mmagic's own test: lr 1, start 1, end 0, begin 0, end 10, by iteration. The value written after
    scheduler step s is linspace(1, 0, 11)[s]; the first value is applied at construction."""
    rows = lli([{"name": "g", "lr": 1.0}], 1, 12, start_factor=1.0, end_factor=0.0, begin=0, end=10,
               by_epoch=False, interval=1)
    targets = [1 - s / 10 for s in range(11)]
    got = [r["lr/g"] for r in rows]
    assert got[0] == 1.0                                        # construction: lr * start_factor
    assert got[1:10] == [close(targets[s]) for s in range(9)]   # iteration s+1 uses step s's value
    assert got[10:] == [close(targets[8])] * 2                  # no step at or after `end`: frozen


def test_linear_lr_interval_cyclegan_shape_absolute_values_and_begin_glitch():
    """cyclegan's config scaled down 1000x: lr 2e-4, start_factor 2e-4 (an absolute lr), end_factor 0,
    begin 40, end 80, interval 4, by iteration; two groups with different lrs."""
    groups = [{"name": "g", "lr": 2e-4, "betas": (0.5, 0.999)}, {"name": "d", "lr": 1e-4, "betas": (0.5, 0.999)}]
    rows = lli(groups, 10, 10, start_factor=2e-4, end_factor=0.0, begin=40, end=80, by_epoch=False, interval=4)
    for r in rows:
        i = r["iter"]
        if i < 40:
            expected = (2e-4, 1e-4)                    # untouched before begin
        elif i == 40:
            expected = (2e-4 * 2e-4, 1e-4 * 2e-4)      # step g == begin: the group's lr x start_factor
        else:
            p = min(i, 79) - 1                         # iteration index when the in-effect step was taken
            v = 2e-4 + (0.0 - 2e-4) * (((p - 40) // 4) / 10)
            expected = (v, v)                          # absolute: the same for every group
        assert (r["lr/g"], r["lr/d"]) == (close(expected[0]), close(expected[1])), r


def test_linear_lr_interval_by_epoch():
    rows = lli(G2, 6, 2, start_factor=0.5, end_factor=0.1, begin=1, end=5, by_epoch=True, interval=2)
    by_epoch = {r["epoch"]: (r["lr/g0"], r["lr/g1"]) for r in rows}
    assert by_epoch[0] == (0.02, 0.01)
    assert by_epoch[1] == (0.01, 0.005)                       # begin: base x start_factor
    k_of = {2: 0, 3: 0, 4: 1, 5: 1}                          # ((e - 1) - begin) // interval, frozen after end
    for e, k in k_of.items():
        v = 0.5 + (0.1 - 0.5) * (k / 2)
        assert by_epoch[e] == (close(v), close(v)), e
