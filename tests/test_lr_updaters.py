"""mmcv 1.x lr updaters, driven through the real Runner (dry run) by trainkit.schedules.preview.preview.

Expected values are (a) the rows the real mmcv 1.7.2 runner produced for the same ``lr_config``,
committed in tests/reference/mmcv_lr/tables.json by tests/reference/mmcv_lr/make_tables.py ("REF"
below; every iteration's epoch, lr and momentum of every group, compared exactly), with a few of
their values also written out as literals, or (b) hand values and closed forms that do not restate
trainkit's formulas (torch's OneCycleLR, single hand-computed points; compared to 1e-12).
Two param groups with different base lrs throughout: g0 = 0.02, g1 = 0.01 (momentum 0.9).
"""
import pytest
import torch

from reference import reference_rows
from trainkit.schedules.preview import preview

G2 = [{"name": "g0", "lr": 0.02, "momentum": 0.9}, {"name": "g1", "lr": 0.01, "momentum": 0.9}]
L = "trainkit.schedules."


def lr_rows(node, epochs=None, ipe=1, groups=G2, **kw):
    return preview(groups, {"lr": node}, epochs, ipe, **kw)


def close(x):
    return pytest.approx(x, rel=1e-12, abs=0)


def ref(name, groups=("g0", "g1")):
    """REF: the mmcv 1.7.2 runner's rows for case ``name`` of tests/reference/mmcv_lr/tables.json."""
    return reference_rows("mmcv_lr", name, groups)


# ------------------------------------------------------------ the example
def test_mmdet_step_example_matches_reference_table():
    """lr_config = dict(policy='step', step=[8, 11], gamma=0.1, warmup='linear',
    warmup_iters=500, warmup_ratio=0.001), 12 epochs x 1000 iterations."""
    node = {"_target_": L + "lr_config", "policy": "step", "step": [8, 11], "gamma": 0.1,
            "warmup": "linear", "warmup_iters": 500, "warmup_ratio": 0.001}
    rows = lr_rows(node, 12, 1000)
    assert len(rows) == 12000 and [r["iter"] for r in rows] == list(range(12000))
    # REF: exact values of mmcv v1.7.2
    ref_at = {0: (2.000000000000002e-05, 1.000000000000001e-05), 250: (0.01001, 0.005005),
              499: (0.01996004, 0.00998002), 500: (0.02, 0.01), 501: (0.02, 0.01), 7999: (0.02, 0.01),
              8000: (0.002, 0.001), 10999: (0.002, 0.001),
              11000: (0.00020000000000000004, 0.00010000000000000002),
              11999: (0.00020000000000000004, 0.00010000000000000002)}
    for it, (a, b) in ref_at.items():
        assert (rows[it]["lr/g0"], rows[it]["lr/g1"]) == (a, b), it
    # every iteration: the linear warmup of both groups, then decays at epochs 8 and 11 (0-based)
    assert rows == ref("mmdet_step_1x")
    # iteration 1 by hand: k = (1 - 1/500)(1 - 0.001) = 0.997002, lr = base (1 - k)
    assert rows[1]["lr/g0"] == close(0.02 * 0.002998) and rows[1]["lr/g1"] == close(0.01 * 0.002998)
    # epoch boundaries: decay applies at epoch == milestone
    assert rows[8000]["epoch"] == 8 and rows[7999]["epoch"] == 7 and rows[11000]["epoch"] == 11


def test_class_target_and_lr_config_give_the_same_schedule():
    cfg = {"step": [2, 3], "gamma": 0.5, "warmup": "exp", "warmup_iters": 3, "warmup_ratio": 0.2}
    a = lr_rows({"_target_": L + "StepLrUpdater", **cfg}, 4, 2)
    b = lr_rows({"_target_": L + "lr_config", "policy": "Step", **cfg}, 4, 2)
    assert a == b == ref("step_exp_warmup")


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
    assert rows == ref("step_min_lr_constant_warmup_by_epoch")


def test_min_lr_floor_is_absolute_and_can_lift_a_group_above_its_base():
    node = {"_target_": L + "StepLrUpdater", "step": [1], "gamma": 0.1, "min_lr": 0.015}
    rows = lr_rows(node, 2, 1)
    assert (rows[0]["lr/g0"], rows[0]["lr/g1"]) == (0.02, 0.015)   # g1's base 0.01 < min_lr
    assert (rows[1]["lr/g0"], rows[1]["lr/g1"]) == (0.015, 0.015)
    assert rows == ref("step_min_lr_above_a_base")


def test_exp_warmup_crossing_an_epoch_with_cosine_by_epoch():
    """REF table B2: CosineAnnealing(min_lr=1e-4), exp warmup 5 iterations ratio .1, 4 ep x 3 it."""
    node = {"_target_": L + "lr_config", "policy": "CosineAnnealing", "min_lr": 1e-4, "warmup": "exp",
            "warmup_iters": 5, "warmup_ratio": 0.1}
    rows = lr_rows(node, 4, 3)
    # warmup multiplies the *current epoch's* cosine value by 0.1 ** (1 - it/5): iterations 3 and 4
    # (epoch 1) warm up epoch 1's value, not epoch 0's
    expected = [(0.002, 0.001), (0.003169786384922227, 0.0015848931924611134),
                (0.005023772863019161, 0.0025118864315095803), (0.006801944649439453, 0.003403887396985129),
                (0.010780355770393884, 0.005394797963385912), (0.017085712472806148, 0.00855017856687341)]
    expected += [(0.01005, 0.005050000000000001)] * 3 + [(0.003014287527193853, 0.0015498214331265902)] * 3
    assert [(r["lr/g0"], r["lr/g1"]) for r in rows] == expected
    assert rows == ref("cosine_by_epoch_exp_warmup")


def test_warmup_compounds_with_a_decay_inside_the_window():
    """Step by iteration with milestone 3 inside an exp warmup of 4 iterations (mmcv quirk Q5)."""
    node = {"_target_": L + "StepLrUpdater", "by_epoch": False, "step": [3], "gamma": 0.1, "warmup": "exp",
            "warmup_iters": 4, "warmup_ratio": 0.01}
    rows = lr_rows(node, 1, 6)
    assert rows == ref("step_by_iter_milestone_inside_exp_warmup")
    # iteration 3 by hand: the decayed lr 0.002 times the warmup factor 0.01 ** (1 - 3/4)
    assert rows[3]["lr/g0"] == close(0.002 * 0.01 ** 0.25)
    assert [r["lr/g0"] for r in rows[4:]] == [0.002, 0.002]


@pytest.mark.parametrize("by_epoch", [True, False])
@pytest.mark.parametrize("kind", ["constant", "linear", "exp"])
def test_fixed_with_each_warmup_type(by_epoch, kind):
    node = {"_target_": L + "FixedLrUpdater", "by_epoch": by_epoch, "warmup": kind, "warmup_iters": 4,
            "warmup_ratio": 0.5}
    rows = lr_rows(node, 3, 2)
    assert rows == ref(f"fixed_{kind}_warmup_by_{'epoch' if by_epoch else 'iter'}")
    assert [(r["lr/g0"], r["lr/g1"]) for r in rows[4:]] == [(0.02, 0.01)] * 2   # warmup over: the base lrs
    assert (rows[0]["lr/g0"], rows[0]["lr/g1"]) == (close(0.01), close(0.005))  # every warmup starts at the ratio


# ---------------------------------------------------------------------- cosine
def test_cosine_by_iter_min_lr_ratio_with_linear_warmup_reference():
    """REF table B1: by_epoch=False, min_lr_ratio=.01, linear warmup 10 it ratio .1, 10 ep x 10 it."""
    node = {"_target_": L + "CosineAnnealingLrUpdater", "by_epoch": False, "min_lr_ratio": 0.01,
            "warmup": "linear", "warmup_iters": 10, "warmup_ratio": 0.1}
    rows = lr_rows(node, 10, 10)
    ref_at = {0: (0.0019999999999999996, 0.0009999999999999998), 5: (0.010932963014540527, 0.005466481507270264),
              9: (0.01784228581426358, 0.00892114290713179), 10: (0.019515459511322022, 0.009757729755661011),
              50: (0.010100000000000001, 0.005050000000000001), 75: (0.0030996428662531804, 0.0015498214331265902),
              99: (0.00020488505237925718, 0.00010244252618962859)}
    for it, v in ref_at.items():
        assert (rows[it]["lr/g0"], rows[it]["lr/g1"]) == v, it
    assert rows == ref("cosine_by_iter_min_lr_ratio_linear_warmup")


def test_cosine_by_epoch_min_lr_ratio_never_reaches_the_target():
    node = {"_target_": L + "CosineAnnealingLrUpdater", "min_lr_ratio": 0.1}
    rows = lr_rows(node, 5, 2)
    assert rows == ref("cosine_by_epoch_min_lr_ratio")
    assert rows[-1]["lr/g0"] > 0.002   # last epoch is 4/5 of the way (mmcv issue #519)


def test_flat_cosine_by_epoch_uses_bankers_rounding():
    node = {"_target_": L + "FlatCosineAnnealingLrUpdater", "start_percent": 0.5, "min_lr_ratio": 0.0}
    rows = lr_rows(node, 5, 1)
    assert rows == ref("flat_cosine_by_epoch_half")
    # start = round(2.5) = 2 (half to even; half up would give 3): epochs 0..2 at the base, epoch 3 below it
    got = [r["lr/g0"] for r in rows]
    assert got[:3] == [0.02] * 3 and got[3] < 0.02


def test_flat_cosine_by_iter_absolute_min_lr():
    node = {"_target_": L + "FlatCosineAnnealingLrUpdater", "by_epoch": False, "start_percent": 0.75,
            "min_lr": 1e-3}
    rows = lr_rows(node, 1, 12)
    assert rows == ref("flat_cosine_by_iter_min_lr")
    # start = round(12 * 0.75) = 9: the base lrs before iteration 9, then towards the absolute 1e-3
    assert all((r["lr/g0"], r["lr/g1"]) == (0.02, 0.01) for r in rows[:9])
    assert (rows[9]["lr/g0"], rows[9]["lr/g1"]) == (close(0.02), close(0.01))   # cos(0): t + (b - t)
    assert rows[11]["lr/g1"] == close(1e-3 + 0.5 * (0.01 - 1e-3) * 0.5)   # cos(2π/3) = -1/2


def test_cosine_restart_weights_and_min_lr_ratio():
    node = {"_target_": L + "CosineRestartLrUpdater", "by_epoch": False, "periods": [4, 6],
            "restart_weights": [1, 0.5], "min_lr_ratio": 0.1}
    rows = lr_rows(node, 1, 10)
    assert rows == ref("cosine_restart_by_iter")
    assert rows[4]["lr/g0"] == close(0.002 + 0.5 * 0.018)   # restart at t + w (b - t)


@pytest.mark.parametrize("name,node,epochs,ipe", [
    ("linear_annealing_by_epoch", {"_target_": L + "LinearAnnealingLrUpdater", "min_lr_ratio": 0.0}, 4, 1),
    ("exp_by_epoch", {"_target_": L + "ExpLrUpdater", "gamma": 0.5}, 3, 2),
    ("inv_by_iter", {"_target_": L + "InvLrUpdater", "gamma": 0.1, "power": 0.5, "by_epoch": False}, 1, 4),
    ("poly_by_epoch", {"_target_": L + "PolyLrUpdater", "power": 2.0, "min_lr": 1e-3}, 4, 1),
])
def test_linear_annealing_poly_exp_inv(name, node, epochs, ipe):
    assert lr_rows(node, epochs, ipe) == ref(name)


def test_linear_annealing_poly_exp_inv_hand_values():
    """One point of each, by hand."""
    def g0(node, epochs, ipe, at):
        return lr_rows(node, epochs, ipe)[at]["lr/g0"]
    assert g0({"_target_": L + "LinearAnnealingLrUpdater", "min_lr_ratio": 0.0}, 4, 1, 3) == close(0.005)
    assert g0({"_target_": L + "ExpLrUpdater", "gamma": 0.5}, 3, 2, 5) == close(0.005)     # epoch 2: 0.02 / 4
    assert g0({"_target_": L + "InvLrUpdater", "gamma": 0.1, "power": 0.5, "by_epoch": False}, 1, 4, 3) == \
        close(0.02 / 1.3 ** 0.5)
    assert g0({"_target_": L + "PolyLrUpdater", "power": 2.0, "min_lr": 1e-3}, 4, 1, 2) == close(0.019 / 4 + 1e-3)


def test_poly_by_iter_mmseg_reference_on_a_max_iters_run():
    """REF table E (mmseg poly, max_iters=100): warmup linear 10 it ratio 1e-6."""
    node = {"_target_": L + "lr_config", "policy": "poly", "power": 0.9, "min_lr": 1e-4, "by_epoch": False,
            "warmup": "linear", "warmup_iters": 10, "warmup_ratio": 1e-6}
    rows = lr_rows(node, None, 30, max_iters=100)
    assert len(rows) == 100
    ref_at = {0: (2.0000000000575113e-08, 1.0000000000287556e-08), 10: (0.018199698264050948, 0.009104372503221327),
              30: (0.014535815154050676, 0.007281636684678478), 31: (0.014350078542854, 0.007189235053982644),
              99: (0.0004153937452997618, 0.00025690442605365033)}
    for it, v in ref_at.items():
        assert (rows[it]["lr/g0"], rows[it]["lr/g1"]) == v
    # REF ran mmcv's IterBasedRunner(max_iters=100) on a loader of 30. Its runner.epoch is read before the
    # loader moves on, so it says epoch 0 at iteration 30 (1 at 31, ...): compare lr and momentum there,
    # and the epochs with the natural count iter // 30 (the lr is by iteration, epochs do not enter it).
    expected = ref("poly_mmseg_iter_based")
    assert [r["epoch"] for r in expected[29:32]] == [0, 0, 1]
    assert [{**r, "epoch": None} for r in rows] == [{**r, "epoch": None} for r in expected]
    assert [r["epoch"] for r in rows] == [i // 30 for i in range(100)]


# ---------------------------------------------------------------------- cyclic
def test_cyclic_mmdet3d_reference_with_adamw():
    """REF table C: target_ratio (10, 1e-4), step_ratio_up .4, AdamW lr 1e-3, 100 iterations."""
    groups = [{"name": "g0", "lr": 1e-3, "betas": (0.95, 0.99)}]
    rows = lr_rows({"_target_": L + "lr_config", "policy": "cyclic", "target_ratio": [10, 1e-4],
                    "cyclic_times": 1, "step_ratio_up": 0.4}, 10, 10, groups=groups)
    ref_at = {0: 0.0009999999999999992, 1: 0.0010138719982009225, 20: 0.0055, 39: 0.009986128001799077,
              40: 0.01, 41: 0.009993147742296132, 70: 0.005000050000000001, 99: 6.952257703868563e-06}
    for it, v in ref_at.items():
        assert rows[it]["lr/g0"] == v
    assert rows == ref("cyclic_mmdet3d_adamw", ("g0",))


def test_cyclic_gamma_and_linear_reference():
    """REF table C2: (10, 1), 2 cycles, up .5, linear, gamma .5 on 8 iterations."""
    rows = lr_rows({"_target_": L + "CyclicLrUpdater", "target_ratio": [10.0, 1.0], "cyclic_times": 2,
                    "step_ratio_up": 0.5, "anneal_strategy": "linear", "gamma": 0.5}, 1, 8)
    ref_g0 = [0.02, 0.11000000000000001, 0.2, 0.11, 0.02, 0.065, 0.11, 0.065]
    assert [r["lr/g0"] for r in rows] == ref_g0
    assert [r["lr/g1"] for r in rows] == [close(v / 2) for v in ref_g0]
    assert rows == ref("cyclic_linear_gamma")


def test_cyclic_without_rising_phase_ignores_gamma_at_the_peak():
    """step_ratio_up=0: every cycle starts at base*r0 and gamma scales only the end (mmcv quirk Q13)."""
    rows = lr_rows({"_target_": L + "CyclicLrUpdater", "target_ratio": [4.0, 0.5], "cyclic_times": 2,
                    "step_ratio_up": 0.0, "anneal_strategy": "linear", "gamma": 0.5}, 1, 8)
    assert rows == ref("cyclic_no_rising_phase")
    got = [r["lr/g0"] for r in rows]
    assert got[0] == got[4] == 0.08
    # cycle 0 falls towards 0.02 * 0.5, cycle 1 towards 0.02 * (1 - 0.5 + 0.5 * 0.5): by a quarter of the way
    assert got[1] == close(0.08 - (0.08 - 0.01) / 4) and got[5] == close(0.08 - (0.08 - 0.015) / 4)


# -------------------------------------------------------------------- one cycle
def test_one_cycle_reference_ignores_the_optimizer_lr():
    """REF table D: OneCycle(max_lr=.01), defaults, 100 iterations; both groups alike."""
    rows = lr_rows({"_target_": L + "OneCycleLrUpdater", "max_lr": 0.01}, 10, 10)
    ref_at = {0: 0.0003999999999999993, 1: 0.00042813780565907275, 14: 0.004940133238789995, 29: 0.01,
              30: 0.009994965352845242, 50: 0.00793893450575732, 99: 4e-08}
    for it, v in ref_at.items():
        assert rows[it]["lr/g0"] == rows[it]["lr/g1"] == v
    assert rows == ref("one_cycle_defaults")


def test_one_cycle_three_phase_per_group_max_lr_truncated():
    """REF table D2: max_lr [.01, .1], total_steps 20 > 10 iterations run, three phases, linear."""
    rows = lr_rows({"_target_": L + "OneCycleLrUpdater", "max_lr": [0.01, 0.1], "total_steps": 20,
                    "three_phase": True, "anneal_strategy": "linear"}, 1, 10)
    g0 = [0.0004, 0.00232, 0.00424, 0.00616, 0.00808, 0.01, 0.00808, 0.00616, 0.00424, 0.00232]
    assert [r["lr/g0"] for r in rows] == [close(v) for v in g0]
    assert [r["lr/g1"] for r in rows] == [close(10 * v) for v in g0]
    assert rows == ref("one_cycle_three_phase_per_group_linear")


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
