"""mmtrack's SiameseRPN lr updater and mmagic's LinearLrInterval, through the real Runner.

REF: rows the real references produced for the same configs, committed under tests/reference/
(compared exactly): mmtrack 0.14.0's SiameseRPNLrUpdaterHook in an mmcv 1.7.2 runner
(mmcv_lr/tables.json) and mmagic 1.2.0's LinearLrInterval in an mmengine 0.10.7 Runner
(mmagic_interval/tables.json). Other expectations are closed forms written here from the
references' definitions, in another form than trainkit's code: SiameseRPN step segment =
geometric from start to end (end excluded), log segment = log-uniform from start to end (both
included); LinearLrInterval = mmengine's scheduler stepped at construction and after every
iteration/epoch.
"""
import copy
import math

import pytest

from reference import reference_rows
from trainkit.schedules import policies
from trainkit.schedules.mmcv_lr import SiameseRPNLrUpdater
from trainkit.schedules.preview import preview

G2 = [{"name": "g0", "lr": 0.02, "momentum": 0.9}, {"name": "g1", "lr": 0.01, "momentum": 0.9}]
L = "trainkit.schedules."


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
    assert rows == reference_rows("mmcv_lr", "siamese_rpn_default_20x3")   # REF: mmtrack's hook


def test_siamese_rpn_default_factors_equal_mmtrack_table():
    """REF: mmtrack 0.14.0's own lr_intervals for the default lr_configs (float64 repr), and its hook's rows."""
    ref = [0.2, 0.275945932292243, 0.38073078774317576, 0.5253055608807535, 0.7247796636776958, 1.0,
           0.848342898244072, 0.719685673001152, 0.6105402296585328, 0.5179474679231211, 0.43939705607607915,
           0.37275937203149406, 0.31622776601683794, 0.2682695795279726, 0.22758459260747887,
           0.19306977288832505, 0.16378937069540642, 0.13894954943731377, 0.11787686347935876, 0.1]
    rows = preview(G2, {"lr": {"_target_": L + "SiameseRPNLrUpdater"}}, 20, 1)
    assert [r["lr/g0"] for r in rows] == [0.02 * f for f in ref]
    assert [r["lr/g1"] for r in rows] == [0.01 * f for f in ref]
    assert rows == reference_rows("mmcv_lr", "siamese_rpn_default_20x1")


def test_siamese_rpn_custom_segments_with_warmup_and_a_shorter_run():
    segs = [{"type": "step", "start_lr_factor": 0.5, "end_lr_factor": 1.0, "end_epoch": 2},
            {"type": "log", "start_lr_factor": 1.0, "end_lr_factor": 0.01, "end_epoch": 5}]
    node = {"_target_": L + "lr_config", "policy": "SiameseRPN", "lr_configs": segs, "warmup": "linear",
            "warmup_iters": 2, "warmup_ratio": 0.5}
    rows = preview(G2, {"lr": node}, 4, 2)
    assert rows == reference_rows("mmcv_lr", "siamese_rpn_custom_linear_warmup")   # REF: mmtrack's hook
    factors = [0.5, 0.5 * math.sqrt(2), 1.0, 0.1]   # after the warmup (iterations 0, 1): base x factor[epoch]
    for r in rows[2:]:
        f = factors[r["epoch"]]
        assert r["lr/g0"] == close(0.02 * f) and r["lr/g1"] == close(0.01 * f)
    assert (rows[0]["lr/g0"], rows[0]["lr/g1"]) == (close(0.005), close(0.0025))   # warmup starts at ratio 0.5


def test_siamese_rpn_never_mutates_its_segments():
    before = copy.deepcopy(policies.DEFAULT_SIAMESE_SEGMENTS)
    segs = [{"type": "step", "start_lr_factor": 0.2, "end_lr_factor": 1.0, "end_epoch": 5}]
    mine = copy.deepcopy(segs)
    for _ in range(2):
        SiameseRPNLrUpdater()
        SiameseRPNLrUpdater(lr_configs=segs)
    assert before == policies.DEFAULT_SIAMESE_SEGMENTS and segs == mine


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
    assert rows == reference_rows("mmagic_interval", "mmagic_unit_test_by_iter", ("g",))   # REF


def test_linear_lr_interval_cyclegan_shape_absolute_values_and_begin_glitch():
    """cyclegan's config scaled down 1000x: lr 2e-4, start_factor 2e-4 (an absolute lr), end_factor 0,
    begin 40, end 80, interval 4, by iteration; two groups with different lrs."""
    groups = [{"name": "g", "lr": 2e-4, "betas": (0.5, 0.999)}, {"name": "d", "lr": 1e-4, "betas": (0.5, 0.999)}]
    rows = lli(groups, 10, 10, start_factor=2e-4, end_factor=0.0, begin=40, end=80, by_epoch=False, interval=4)
    assert rows == reference_rows("mmagic_interval", "cyclegan_shape_by_iter", ("g", "d"))   # REF
    got = [(r["lr/g"], r["lr/d"]) for r in rows]
    assert got[:40] == [(2e-4, 1e-4)] * 40                             # untouched before begin
    assert got[40] == (close(2e-4 * 2e-4), close(1e-4 * 2e-4))         # step g == begin: the group's lr x start_factor
    assert got[41:45] == [(2e-4, 2e-4)] * 4                             # then absolute: the same for every group,
    assert got[45] == (close(1.8e-4), close(1.8e-4))                   # one tenth lower every 4 iterations,
    assert got[77:] == [(close(2e-5), close(2e-5))] * 23                # frozen from the last step before end


@pytest.mark.parametrize("begin,expected", [
    (4, [2e-4] * 4 + [4e-8] + [2e-4] * 2 + [1.5e-4] * 2 + [1e-4] * 2 + [5e-5] * 3),
    (0, [4e-8] + [2e-4] * 2 + [v for v in (1.6667e-4, 1.3333e-4, 1e-4, 6.6667e-5, 3.3333e-5) for _ in (0, 1)]
     + [3.3333e-5]),
])
def test_linear_lr_interval_reference_runs(begin, expected):
    """REF: a real mmengine Runner with mmagic's scheduler (mmagic_interval/tables.json, exact; the literals
    are the same values rounded): base 2e-4, start 2e-4, end_factor 0, end 12, interval 2, by epoch."""
    rows = lli([{"name": "g", "lr": 2e-4}], 14, 1, start_factor=2e-4, end_factor=0.0, begin=begin, end=12,
               by_epoch=True, interval=2)
    assert [r["lr/g"] for r in rows] == [pytest.approx(v, rel=2e-4) for v in expected]
    assert rows == reference_rows("mmagic_interval", f"by_epoch_begin{begin}", ("g",))


def test_linear_lr_interval_end_defaults_to_the_run_length():
    """mmengine's Runner fills a missing `end` with max_iters (by iteration) / max_epochs."""
    rows = lli([{"name": "g", "lr": 1.0}], 2, 5, start_factor=1.0, end_factor=0.0, by_epoch=False)
    assert [r["lr/g"] for r in rows] == [1.0] + [close(1 - (i - 1) / 10) for i in range(1, 10)]
    assert rows == reference_rows("mmagic_interval", "end_defaults_to_the_run_by_iter", ("g",))   # REF
    with pytest.raises(ValueError, match=r"end must be an integer larger than begin=20, got end=10 "
                                         r"\(end defaults to the run's length\)"):
        lli([{"name": "g", "lr": 1.0}], 2, 5, begin=20, by_epoch=False)


def test_linear_lr_interval_by_epoch():
    rows = lli(G2, 6, 2, start_factor=0.5, end_factor=0.1, begin=1, end=5, by_epoch=True, interval=2)
    assert rows == reference_rows("mmagic_interval", "by_epoch_two_groups")   # REF
    by_epoch = {r["epoch"]: (r["lr/g0"], r["lr/g1"]) for r in rows}
    assert by_epoch[0] == (0.02, 0.01)
    assert by_epoch[1] == (0.01, 0.005)                       # begin: base x start_factor
    # then absolute: ((e - 1) - begin) // interval = 0 for epochs 2, 3 and 1 for 4, 5 (frozen after end)
    assert [by_epoch[e] for e in (2, 3)] == [(0.5, 0.5)] * 2
    assert [by_epoch[e] for e in (4, 5)] == [(close(0.3), close(0.3))] * 2   # half way from 0.5 to 0.1
