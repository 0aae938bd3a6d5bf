"""mmcv 1.x momentum updaters on SGD ``momentum`` and Adam/AdamW ``betas[0]``.

REF: the rows the real mmcv 1.7.2 runner produced for the same ``momentum_config``, committed in
tests/reference/mmcv_lr/tables.json by tests/reference/mmcv_lr/make_tables.py (every iteration's
epoch, lr and momentum of every group; compared exactly), with some values also written out as
literals; other expectations are hand values and properties that do not restate trainkit's formulas.
"""
import pytest
import torch

from reference import reference, reference_rows
from trainkit.core.data import CountingLoader
from trainkit.schedules.mmcv_momentum import CosineAnnealingMomentumUpdater, momentum_config
from trainkit.core.runner import Runner
from trainkit.schedules.preview import preview

M = "trainkit.schedules."
SGD2 = [{"name": "g0", "lr": 0.02, "momentum": 0.9}, {"name": "g1", "lr": 0.01, "momentum": 0.8}]


def close(x):
    return pytest.approx(x, rel=1e-12, abs=0)


def ref(name, groups=("g0", "g1")):
    """REF: the mmcv 1.7.2 runner's rows for case ``name`` of tests/reference/mmcv_lr/tables.json."""
    return reference_rows("mmcv_lr", name, groups)


def moms(node, epochs, ipe, groups=SGD2, **kw):
    return preview(groups, {"m": node, **kw.pop("extra", {})}, epochs, ipe, **kw)


def test_step_momentum_with_linear_warmup_divides():
    """Warmup divides: regular / (1 - k), so momentum starts at 0.9 / 0.5 = 1.8 (> 1, as in mmcv)."""
    rows = moms({"_target_": M + "StepMomentumUpdater", "step": [2], "gamma": 0.5, "warmup": "linear",
                 "warmup_iters": 2, "warmup_ratio": 0.5}, 3, 2)
    assert [r["momentum/g0"] for r in rows] == [1.8, close(1.2), 0.9, 0.9, 0.45, 0.45]   # REF
    assert [r["momentum/g1"] for r in rows] == [close(v) for v in (1.6, 0.8 / 0.75, 0.8, 0.8, 0.4, 0.4)]
    assert rows == ref("step_momentum_linear_warmup")


def test_step_momentum_floor_and_int_step_by_iter():
    rows = moms({"_target_": M + "StepMomentumUpdater", "step": 2, "by_epoch": False, "min_momentum": 0.3},
                1, 6)
    assert [r["momentum/g0"] for r in rows] == [0.9, 0.9, 0.45, 0.45, 0.3, 0.3]
    assert [r["momentum/g1"] for r in rows] == [0.8, 0.8, 0.4, 0.4, 0.3, 0.3]
    assert rows == ref("step_momentum_floor_by_iter")


def test_cosine_momentum_by_epoch_anneals_upwards_with_a_ratio_above_one():
    rows = moms({"_target_": M + "momentum_config", "policy": "CosineAnnealing", "min_momentum_ratio": 0.99 / 0.9},
                4, 2)
    assert rows == ref("cosine_momentum_upwards_by_epoch")
    for g in ("g0", "g1"):   # constant within an epoch, rising from one epoch to the next
        by_epoch = [r[f"momentum/{g}"] for r in rows[::2]]
        assert [r[f"momentum/{g}"] for r in rows[1::2]] == by_epoch
        assert all(a < b for a, b in zip(by_epoch, by_epoch[1:], strict=False))
    # epoch 2 of 4 is half way from the base to base * 1.1
    assert (rows[4]["momentum/g0"], rows[4]["momentum/g1"]) == (close(0.945), close(0.84))


def test_linear_annealing_momentum_reference():
    rows = moms({"_target_": M + "LinearAnnealingMomentumUpdater", "min_momentum": 0.99}, 4, 1)
    assert [r["momentum/g0"] for r in rows] == [0.9, 0.9225, 0.9450000000000001, 0.9675]   # REF
    assert rows == ref("linear_annealing_momentum")
    assert rows[2]["momentum/g1"] == close(0.895)   # half way from 0.8 to 0.99


def test_cyclic_momentum_on_adamw_betas_reference():
    """REF table C (mmdet3d): beta1 0.95 -> 0.85 over the first 40 iterations, back over 60."""
    groups = [{"name": "g0", "lr": 1e-3, "betas": (0.95, 0.99)}]
    rows = moms({"_target_": M + "momentum_config", "policy": "cyclic", "target_ratio": [0.85 / 0.95, 1],
                 "cyclic_times": 1, "step_ratio_up": 0.4}, 10, 10, groups=groups)
    ref_at = {0: 0.95, 1: 0.9498458666866564, 20: 0.8999999999999999, 39: 0.8501541333133436, 40: 0.85,
              41: 0.8500685232622713, 70: 0.8999999999999999, 99: 0.9499314767377286}
    for it, v in ref_at.items():
        assert rows[it]["momentum/g0"] == v
    assert rows == ref("cyclic_momentum_mmdet3d_adamw", ("g0",))


def test_one_cycle_momentum_reference_ignores_the_groups_momentum():
    """REF table D: defaults (0.85, 0.95, pct .3, cos), 100 iterations."""
    rows = moms({"_target_": M + "OneCycleMomentumUpdater"}, 10, 10)
    ref_at = {0: 0.95, 1: 0.9497068978577179, 14: 0.9027069454292709, 29: 0.85, 30: 0.8500503466729342,
              50: 0.8706107373853763, 99: 0.95}
    for it, v in ref_at.items():
        assert rows[it]["momentum/g0"] == rows[it]["momentum/g1"] == v
    assert rows == ref("one_cycle_momentum_defaults")


def test_one_cycle_momentum_per_group_three_phase_linear():
    rows = moms({"_target_": M + "OneCycleMomentumUpdater", "base_momentum": [0.8, 0.7],
                 "max_momentum": [0.9, 0.95], "three_phase": True, "anneal_strategy": "linear",
                 "pct_start": 0.25}, 1, 20)
    assert rows == ref("one_cycle_momentum_per_group_three_phase_linear")
    # phase ends: 0.25*20-1 = 4 (base), 2*0.25*20-2 = 8 (max again), then max until 19
    got = [(r["momentum/g0"], r["momentum/g1"]) for r in rows]
    assert got[0] == (0.9, 0.95) and got[4] == (0.8, 0.7) and got[8:] == [(0.9, 0.95)] * 12
    assert got[2] == (close(0.85), close(0.825)) and got[6] == (close(0.85), close(0.825))


def test_adam_beta1_is_driven_and_beta2_kept_through_a_runner():
    """A real AdamW in a Runner: the updater writes betas[0] and leaves betas[1] alone."""
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.AdamW([{"params": [model.weight], "name": "w", "betas": (0.9, 0.999)},
                             {"params": [model.bias], "name": "b", "betas": (0.8, 0.99)}], lr=1e-3)
    seen = []

    class Rec:
        priority = 100

        def after_step(self, runner):
            seen.append([tuple(g["betas"]) for g in runner.optimizer.param_groups])

    upd = CosineAnnealingMomentumUpdater(min_momentum=0.5, by_epoch=False)
    Runner(model, opt, train_loader=CountingLoader(4), dry_run=True, max_epochs=1, progress=False,
           components={"m": upd, "rec": Rec()}).run()
    expected = reference("mmcv_lr", "cosine_momentum_by_iter_adamw")   # REF: the same groups in mmcv
    assert seen == [list(zip(m, b2, strict=True)) for m, b2 in zip(expected["momentum"], expected["beta2"],
                                                                    strict=True)]
    assert [row[0][1] for row in seen] == [0.999] * 4 and [row[1][1] for row in seen] == [0.99] * 4
    assert seen[2][0][0] == close(0.5 + 0.5 * 0.4)   # half way: cos(π/2) = 0
    assert opt.param_groups[0]["initial_momentum"] == 0.9 and opt.param_groups[1]["initial_momentum"] == 0.8


def test_momentum_config_accepts_mmcv_policy_spellings():
    for name in ("cyclic", "Cyclic", "OneCycle", "onecycle", "cosine_annealing", "LinearAnnealing"):
        kwargs = {"min_momentum": 0.5} if "nnealing" in name else {}
        assert type(momentum_config(name, **kwargs)).__name__.endswith("MomentumUpdater")
