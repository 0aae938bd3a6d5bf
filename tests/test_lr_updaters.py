"""mmcv 1.x lr updaters, driven through the real Runner (dry run) by trainkit.schedules.preview.preview.

Expected values are either (a) the numbers the real mmcv v1.7.2 runner produced for the
same config (research notes /tmp/notes/mmcv_lr.md §6, "REF" below; compared exactly), or
(b) closed forms written here from mmcv's documented formulas (compared to 1e-12).
Two param groups with different base lrs throughout: g0 = 0.02, g1 = 0.01.
"""
import math

import pytest
import torch

from trainkit.schedules.preview import preview

G2 = [{"name": "g0", "lr": 0.02, "momentum": 0.9}, {"name": "g1", "lr": 0.01, "momentum": 0.9}]
BASES = {"g0": 0.02, "g1": 0.01}
L = "trainkit.schedules."


def lr_rows(node, epochs=None, ipe=1, groups=G2, **kw):
    return preview(groups, {"lr": node}, epochs, ipe, **kw)


def close(x):
    return pytest.approx(x, rel=1e-12, abs=0)


# ------------------------------------------------------------ the example
def test_mmdet_step_example_matches_reference_table():
    """lr_config = dict(policy='step', step=[8, 11], gamma=0.1, warmup='linear',
    warmup_iters=500, warmup_ratio=0.001), 12 epochs x 1000 iterations."""
    node = {"_target_": L + "lr_config", "policy": "step", "step": [8, 11], "gamma": 0.1,
            "warmup": "linear", "warmup_iters": 500, "warmup_ratio": 0.001}
    rows = lr_rows(node, 12, 1000)
    assert len(rows) == 12000 and [r["iter"] for r in rows] == list(range(12000))
    # REF: exact values of mmcv v1.7.2
    ref = {0: (2.000000000000002e-05, 1.000000000000001e-05), 250: (0.01001, 0.005005),
           499: (0.01996004, 0.00998002), 500: (0.02, 0.01), 501: (0.02, 0.01), 7999: (0.02, 0.01),
           8000: (0.002, 0.001), 10999: (0.002, 0.001),
           11000: (0.00020000000000000004, 0.00010000000000000002),
           11999: (0.00020000000000000004, 0.00010000000000000002)}
    for it, (a, b) in ref.items():
        assert (rows[it]["lr/g0"], rows[it]["lr/g1"]) == (a, b), it
    # iteration 1 by hand: k = (1 - 1/500)(1 - 0.001) = 0.997002, lr = base (1 - k)
    assert rows[1]["lr/g0"] == close(0.02 * 0.002998) and rows[1]["lr/g1"] == close(0.01 * 0.002998)
    # the whole warmup is linear in the iteration, per group
    for it in range(500):
        f = 1 - (1 - it / 500) * 0.999
        assert rows[it]["lr/g0"] == close(0.02 * f) and rows[it]["lr/g1"] == close(0.01 * f)
    # epoch boundaries: decay applies at epoch == milestone (epochs 8 and 11, 0-based)
    for r in rows[500:]:
        k = sum(r["epoch"] >= m for m in (8, 11))
        assert r["lr/g0"] == close(0.02 * 0.1 ** k) and r["lr/g1"] == close(0.01 * 0.1 ** k)
    assert rows[8000]["epoch"] == 8 and rows[7999]["epoch"] == 7 and rows[11000]["epoch"] == 11


def test_class_target_and_lr_config_give_the_same_schedule():
    cfg = {"step": [2, 3], "gamma": 0.5, "warmup": "exp", "warmup_iters": 3, "warmup_ratio": 0.2}
    a = lr_rows({"_target_": L + "StepLrUpdater", **cfg}, 4, 2)
    b = lr_rows({"_target_": L + "lr_config", "policy": "Step", **cfg}, 4, 2)
    assert a == b


# ------------------------------------------------------------------------ warmup
def test_warmup_by_epoch_and_min_lr_floor():
    """Step(step=2, gamma=.5, min_lr=.004), constant warmup for 1 epoch (3 it) at ratio .25."""
    node = {"_target_": L + "StepLrUpdater", "step": 2, "gamma": 0.5, "min_lr": 0.004, "warmup": "constant",
            "warmup_by_epoch": True, "warmup_iters": 1, "warmup_ratio": 0.25}
    rows = lr_rows(node, 5, 3)
    got = [(r["lr/g0"], r["lr/g1"]) for r in rows]
    # REF table F: warmup covers exactly the first epoch's 3 iterations
    assert got[:3] == [(0.005, 0.0025)] * 3
    assert got[3:6] == [(0.02, 0.01)] * 3
    assert got[6:12] == [(0.01, 0.005)] * 6
    # epoch 4: g0 = 0.02 * 0.25 = 0.005; g1 = 0.01 * 0.25 = 0.0025 is lifted to the absolute floor 0.004
    assert got[12:] == [(0.005, 0.004)] * 3


def test_min_lr_floor_is_absolute_and_can_lift_a_group_above_its_base():
    node = {"_target_": L + "StepLrUpdater", "step": [1], "gamma": 0.1, "min_lr": 0.015}
    rows = lr_rows(node, 2, 1)
    assert (rows[0]["lr/g0"], rows[0]["lr/g1"]) == (0.02, 0.015)   # g1's base 0.01 < min_lr
    assert (rows[1]["lr/g0"], rows[1]["lr/g1"]) == (0.015, 0.015)


def test_exp_warmup_crossing_an_epoch_with_cosine_by_epoch():
    """REF table B2: CosineAnnealing(min_lr=1e-4), exp warmup 5 iterations ratio .1, 4 ep x 3 it."""
    node = {"_target_": L + "lr_config", "policy": "CosineAnnealing", "min_lr": 1e-4, "warmup": "exp",
            "warmup_iters": 5, "warmup_ratio": 0.1}
    rows = lr_rows(node, 4, 3)
    ref = [(0.002, 0.001), (0.003169786384922227, 0.0015848931924611134),
           (0.005023772863019161, 0.0025118864315095803), (0.006801944649439453, 0.003403887396985129),
           (0.010780355770393884, 0.005394797963385912), (0.017085712472806148, 0.00855017856687341)]
    ref += [(0.01005, 0.005050000000000001)] * 3 + [(0.003014287527193853, 0.0015498214331265902)] * 3
    assert [(r["lr/g0"], r["lr/g1"]) for r in rows] == ref
    # closed form: warmup multiplies the *current epoch's* cosine value by 0.1 ** (1 - it/5)
    for r in rows:
        for g, b in BASES.items():
            regular = 1e-4 + 0.5 * (b - 1e-4) * (1 + math.cos(math.pi * r["epoch"] / 4))
            f = 0.1 ** (1 - r["iter"] / 5) if r["iter"] < 5 else 1.0
            assert r[f"lr/{g}"] == close(regular * f)


def test_warmup_compounds_with_a_decay_inside_the_window():
    """Step by iteration with milestone 3 inside an exp warmup of 4 iterations (mmcv quirk Q5)."""
    node = {"_target_": L + "StepLrUpdater", "by_epoch": False, "step": [3], "gamma": 0.1, "warmup": "exp",
            "warmup_iters": 4, "warmup_ratio": 0.01}
    got = [r["lr/g0"] for r in lr_rows(node, 1, 6)]
    expected = [0.02 * 0.01 ** (1 - i / 4) for i in range(3)] + [0.002 * 0.01 ** 0.25, 0.002, 0.002]
    assert got == [close(e) for e in expected]


@pytest.mark.parametrize("by_epoch", [True, False])
def test_fixed_with_each_warmup_type(by_epoch):
    for kind, f in (("constant", lambda i: 0.5), ("linear", lambda i: 1 - (1 - i / 4) * 0.5),
                    ("exp", lambda i: 0.5 ** (1 - i / 4))):
        node = {"_target_": L + "FixedLrUpdater", "by_epoch": by_epoch, "warmup": kind, "warmup_iters": 4,
                "warmup_ratio": 0.5}
        rows = lr_rows(node, 3, 2)
        for r in rows:
            scale = f(r["iter"]) if r["iter"] < 4 else 1.0
            assert r["lr/g0"] == close(0.02 * scale) and r["lr/g1"] == close(0.01 * scale), (kind, r)


# ---------------------------------------------------------------------- cosine
def test_cosine_by_iter_min_lr_ratio_with_linear_warmup_reference():
    """REF table B1: by_epoch=False, min_lr_ratio=.01, linear warmup 10 it ratio .1, 10 ep x 10 it."""
    node = {"_target_": L + "CosineAnnealingLrUpdater", "by_epoch": False, "min_lr_ratio": 0.01,
            "warmup": "linear", "warmup_iters": 10, "warmup_ratio": 0.1}
    rows = lr_rows(node, 10, 10)
    ref = {0: (0.0019999999999999996, 0.0009999999999999998), 5: (0.010932963014540527, 0.005466481507270264),
           9: (0.01784228581426358, 0.00892114290713179), 10: (0.019515459511322022, 0.009757729755661011),
           50: (0.010100000000000001, 0.005050000000000001), 75: (0.0030996428662531804, 0.0015498214331265902),
           99: (0.00020488505237925718, 0.00010244252618962859)}
    for it, v in ref.items():
        assert (rows[it]["lr/g0"], rows[it]["lr/g1"]) == v, it
    for r in rows:
        for g, b in BASES.items():
            t = 0.01 * b
            reg = t + 0.5 * (b - t) * (1 + math.cos(math.pi * r["iter"] / 100))
            f = 1 - (1 - r["iter"] / 10) * 0.9 if r["iter"] < 10 else 1
            assert r[f"lr/{g}"] == close(reg * f)


def test_cosine_by_epoch_min_lr_ratio_never_reaches_the_target():
    node = {"_target_": L + "CosineAnnealingLrUpdater", "min_lr_ratio": 0.1}
    rows = lr_rows(node, 5, 2)
    for r in rows:
        for g, b in BASES.items():
            t = 0.1 * b
            assert r[f"lr/{g}"] == close(t + 0.5 * (b - t) * (1 + math.cos(math.pi * r["epoch"] / 5)))
    assert rows[-1]["lr/g0"] > 0.002   # last epoch is 4/5 of the way (mmcv issue #519)


def test_flat_cosine_by_epoch_uses_bankers_rounding():
    node = {"_target_": L + "FlatCosineAnnealingLrUpdater", "start_percent": 0.5, "min_lr_ratio": 0.0}
    got = [r["lr/g0"] for r in lr_rows(node, 5, 1)]
    # start = round(2.5) = 2: epochs 0..2 flat, then cos over 3 epochs
    expected = [0.02, 0.02] + [0.02 * 0.5 * (1 + math.cos(math.pi * k / 3)) for k in range(3)]
    assert got == [close(e) for e in expected]


def test_flat_cosine_by_iter_absolute_min_lr():
    node = {"_target_": L + "FlatCosineAnnealingLrUpdater", "by_epoch": False, "start_percent": 0.75,
            "min_lr": 1e-3}
    rows = lr_rows(node, 1, 12)
    for r in rows:
        for g, b in BASES.items():
            k = r["iter"] - 9
            expected = b if k < 0 else 1e-3 + 0.5 * (b - 1e-3) * (1 + math.cos(math.pi * k / 3))
            assert r[f"lr/{g}"] == close(expected)


def test_cosine_restart_weights_and_min_lr_ratio():
    node = {"_target_": L + "CosineRestartLrUpdater", "by_epoch": False, "periods": [4, 6],
            "restart_weights": [1, 0.5], "min_lr_ratio": 0.1}
    rows = lr_rows(node, 1, 10)
    for r in rows:
        i = r["iter"]
        start, period, w = (0, 4, 1.0) if i < 4 else (4, 6, 0.5)
        for g, b in BASES.items():
            t = 0.1 * b
            assert r[f"lr/{g}"] == close(t + 0.5 * w * (b - t) * (1 + math.cos(math.pi * (i - start) / period)))
    assert rows[4]["lr/g0"] == close(0.002 + 0.5 * 0.018)   # restart at t + w (b - t)


def test_linear_annealing_poly_exp_inv():
    def run(node, epochs, ipe):
        return [r["lr/g0"] for r in lr_rows(node, epochs, ipe)]
    assert run({"_target_": L + "LinearAnnealingLrUpdater", "min_lr_ratio": 0.0}, 4, 1) == \
        [close(0.02 * (1 - e / 4)) for e in range(4)]
    assert run({"_target_": L + "ExpLrUpdater", "gamma": 0.5}, 3, 2) == \
        [close(0.02 * 0.5 ** (i // 2)) for i in range(6)]
    assert run({"_target_": L + "InvLrUpdater", "gamma": 0.1, "power": 0.5, "by_epoch": False}, 1, 4) == \
        [close(0.02 * (1 + 0.1 * i) ** -0.5) for i in range(4)]
    assert run({"_target_": L + "PolyLrUpdater", "power": 2.0, "min_lr": 1e-3}, 4, 1) == \
        [close((0.02 - 1e-3) * (1 - e / 4) ** 2 + 1e-3) for e in range(4)]


def test_poly_by_iter_mmseg_reference_on_a_max_iters_run():
    """REF table E (mmseg poly, max_iters=100): warmup linear 10 it ratio 1e-6."""
    node = {"_target_": L + "lr_config", "policy": "poly", "power": 0.9, "min_lr": 1e-4, "by_epoch": False,
            "warmup": "linear", "warmup_iters": 10, "warmup_ratio": 1e-6}
    rows = lr_rows(node, None, 30, max_iters=100)
    assert len(rows) == 100
    ref = {0: (2.0000000000575113e-08, 1.0000000000287556e-08), 10: (0.018199698264050948, 0.009104372503221327),
           30: (0.014535815154050676, 0.007281636684678478), 31: (0.014350078542854, 0.007189235053982644),
           99: (0.0004153937452997618, 0.00025690442605365033)}
    for it, v in ref.items():
        assert (rows[it]["lr/g0"], rows[it]["lr/g1"]) == v


# ---------------------------------------------------------------------- cyclic
def test_cyclic_mmdet3d_reference_with_adamw():
    """REF table C: target_ratio (10, 1e-4), step_ratio_up .4, AdamW lr 1e-3, 100 iterations."""
    groups = [{"name": "g0", "lr": 1e-3, "betas": (0.95, 0.99)}]
    rows = lr_rows({"_target_": L + "lr_config", "policy": "cyclic", "target_ratio": [10, 1e-4],
                    "cyclic_times": 1, "step_ratio_up": 0.4}, 10, 10, groups=groups)
    ref = {0: 0.0009999999999999992, 1: 0.0010138719982009225, 20: 0.0055, 39: 0.009986128001799077,
           40: 0.01, 41: 0.009993147742296132, 70: 0.005000050000000001, 99: 6.952257703868563e-06}
    for it, v in ref.items():
        assert rows[it]["lr/g0"] == v


def test_cyclic_gamma_and_linear_reference():
    """REF table C2: (10, 1), 2 cycles, up .5, linear, gamma .5 on 8 iterations."""
    rows = lr_rows({"_target_": L + "CyclicLrUpdater", "target_ratio": [10.0, 1.0], "cyclic_times": 2,
                    "step_ratio_up": 0.5, "anneal_strategy": "linear", "gamma": 0.5}, 1, 8)
    ref_g0 = [0.02, 0.11000000000000001, 0.2, 0.11, 0.02, 0.065, 0.11, 0.065]
    assert [r["lr/g0"] for r in rows] == ref_g0
    assert [r["lr/g1"] for r in rows] == [close(v / 2) for v in ref_g0]


def test_cyclic_without_rising_phase_ignores_gamma_at_the_peak():
    """step_ratio_up=0: every cycle starts at base*r0 and gamma scales only the end (mmcv quirk Q13)."""
    rows = lr_rows({"_target_": L + "CyclicLrUpdater", "target_ratio": [4.0, 0.5], "cyclic_times": 2,
                    "step_ratio_up": 0.0, "anneal_strategy": "linear", "gamma": 0.5}, 1, 8)
    got = [r["lr/g0"] for r in rows]
    assert got[0] == got[4] == 0.08
    end0, end1 = 0.02 * 0.5, 0.02 * (1 - 0.5 + 0.5 * 0.5)   # cycle 1 scales the end ratio: 0.75
    assert got[1:4] == [close(0.08 + (end0 - 0.08) * k / 4) for k in (1, 2, 3)]
    assert got[5:8] == [close(0.08 + (end1 - 0.08) * k / 4) for k in (1, 2, 3)]


# -------------------------------------------------------------------- one cycle
def test_one_cycle_reference_ignores_the_optimizer_lr():
    """REF table D: OneCycle(max_lr=.01), defaults, 100 iterations; both groups alike."""
    rows = lr_rows({"_target_": L + "OneCycleLrUpdater", "max_lr": 0.01}, 10, 10)
    ref = {0: 0.0003999999999999993, 1: 0.00042813780565907275, 14: 0.004940133238789995, 29: 0.01,
           30: 0.009994965352845242, 50: 0.00793893450575732, 99: 4e-08}
    for it, v in ref.items():
        assert rows[it]["lr/g0"] == rows[it]["lr/g1"] == v


def test_one_cycle_three_phase_per_group_max_lr_truncated():
    """REF table D2: max_lr [.01, .1], total_steps 20 > 10 iterations run, three phases, linear."""
    rows = lr_rows({"_target_": L + "OneCycleLrUpdater", "max_lr": [0.01, 0.1], "total_steps": 20,
                    "three_phase": True, "anneal_strategy": "linear"}, 1, 10)
    g0 = [0.0004, 0.00232, 0.00424, 0.00616, 0.00808, 0.01, 0.00808, 0.00616, 0.00424, 0.00232]
    assert [r["lr/g0"] for r in rows] == [close(v) for v in g0]
    assert [r["lr/g1"] for r in rows] == [close(10 * v) for v in g0]


@pytest.mark.parametrize("three_phase,anneal", [(False, "cos"), (True, "linear")])
def test_one_cycle_equals_torch_one_cycle_lr(three_phase, anneal):
    """mmcv documents OneCycleLrUpdaterHook as torch's OneCycleLR; compare lr and momentum."""
    total = 50
    p = torch.nn.Parameter(torch.zeros(()))
    opt = torch.optim.SGD([p], lr=0.1, momentum=0.9)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.05, total_steps=total, pct_start=0.25,
                                                anneal_strategy=anneal, three_phase=three_phase)
    expected = []
    for _ in range(total):
        expected.append((opt.param_groups[0]["lr"], opt.param_groups[0]["momentum"]))
        opt.step()
        sched.step()
    common = {"pct_start": 0.25, "anneal_strategy": anneal, "three_phase": three_phase}
    rows = preview([{"name": "g", "lr": 0.1, "momentum": 0.9}],
                   {"lr": {"_target_": L + "OneCycleLrUpdater", "max_lr": 0.05, **common},
                    "m": {"_target_": "trainkit.schedules.OneCycleMomentumUpdater", **common}}, 5, 10)
    got = [(r["lr/g"], r["momentum/g"]) for r in rows]
    assert [close(a) for a, _ in expected] == [a for a, _ in got]
    assert [close(m) for _, m in expected] == [m for _, m in got]


# ------------------------------------------------------------------- hook point
def test_every_lr_write_honours_the_group_lr_factor():
    groups = [{"name": "g0", "lr": 0.02, "lr_factor": 0.5}, {"name": "g1", "lr": 0.01}]
    rows = lr_rows({"_target_": L + "StepLrUpdater", "step": [1], "gamma": 0.1, "by_epoch": False}, 1, 2,
                   groups=groups)
    assert [(r["lr/g0"], r["lr/g1"]) for r in rows] == [(0.01, 0.01), (close(0.001), close(0.001))]
