"""Reference tables for trainkit's mmcv 1.x lr / momentum updaters and mmtrack's SiameseRPN updater.

Produced with: mmcv 1.7.2 (MMCV_WITH_OPS=0), torch 2.13.0+cpu, numpy 2.x, python 3.11.7, and for the
SiameseRPN cases mmtrack 0.14.0 (only its ``mmtrack/core/optimizer/sot_lr_updater.py``, read out of the
wheel at run time; mmtrack itself is not installed). The versions actually used are written into
``tables.json`` (``meta``) on every run.

Every case runs the REAL ``mmcv.runner.EpochBasedRunner`` (or ``IterBasedRunner``) on a tiny model: the
lr / momentum updater hooks are built by the runner itself from the ``lr_config`` / ``momentum_config``
dict (``register_training_hooks``), next to a real ``OptimizerHook``. A recorder hook at priority NORMAL
(after the lr updater, VERY_HIGH, and the momentum updater, HIGH) reads every param group's lr and
momentum (SGD ``momentum``, Adam ``betas[0]``; Adam's ``betas[1]`` too) in ``before_train_iter``; the
optimizer's ``step`` is wrapped to check that the step of the same iteration sees exactly those values.

Run (needs nothing from trainkit; a venv with mmcv 1.7.2 and torch; torchvision is stubbed if missing):

    pip download mmtrack==0.14.0 --no-deps -d /tmp/mmtrack
    /path/to/venv_mmcv/bin/python tests/reference/mmcv_lr/make_tables.py \
        --mmtrack-wheel /tmp/mmtrack/mmtrack-0.14.0-py3-none-any.whl

It rewrites ``tests/reference/mmcv_lr/tables.json`` (deterministic: a rerun gives the same bytes).
Columns are run-length encoded: ``[[count, value], ...]`` in iteration order; floats are Python
``repr`` (exact: compare with ``==``).
"""
import argparse
import copy
import hashlib
import logging
import os
import sys
import tempfile
import types
import zipfile

try:
    import torchvision  # noqa: F401
except ImportError:   # mmcv/runner/checkpoint.py imports it at module level, uses it only for torchvision://
    _stub = types.ModuleType("torchvision")
    _stub.__version__ = "0.0.0+stub"
    sys.modules["torchvision"] = _stub

import mmcv  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from mmcv.runner import EpochBasedRunner, IterBasedRunner, epoch_based_runner, iter_based_runner  # noqa: E402
from mmcv.runner.hooks import HOOKS, Hook  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from tablefile import dump, plain, rle  # noqa: E402

# The runners sleep 1-2 s per epoch ("prevent possible deadlock"); they use ``time`` for nothing else.
for _m in (epoch_based_runner, iter_based_runner):
    _m.time = types.SimpleNamespace(sleep=lambda seconds: None)

HERE = os.path.dirname(os.path.abspath(__file__))
SGD2 = [{"lr": 0.02, "momentum": 0.9}, {"lr": 0.01, "momentum": 0.9}]      # tests/test_lr_updaters.py G2
SGD2M = [{"lr": 0.02, "momentum": 0.9}, {"lr": 0.01, "momentum": 0.8}]     # tests/test_momentum_updaters.py
ADAMW_MMDET3D = [{"lr": 1e-3, "betas": (0.95, 0.99)}]
ADAMW_2 = [{"lr": 1e-3, "betas": (0.9, 0.999)}, {"lr": 1e-3, "betas": (0.8, 0.99)}]

LR_TESTS = "tests/test_lr_updaters.py::"
M_TESTS = "tests/test_momentum_updaters.py::"
S_TESTS = "tests/test_siamese_linear_interval.py::"


def case(name, test, epochs, ipe, groups=SGD2, optimizer="SGD", lr_config=None, momentum_config=None,
         max_iters=None, source="mmcv"):
    return dict(name=name, test=test, source=source, optimizer=optimizer, groups=groups,
                max_epochs=epochs, iters_per_epoch=ipe, max_iters=max_iters,
                lr_config=lr_config, momentum_config=momentum_config)


def build_cases():
    c = []
    # ---------------------------------------------------------------- lr (tests/test_lr_updaters.py)
    c.append(case("mmdet_step_1x", LR_TESTS + "test_mmdet_step_example_matches_reference_table", 12, 1000,
                  lr_config=dict(policy="step", step=[8, 11], gamma=0.1, warmup="linear", warmup_iters=500,
                                 warmup_ratio=0.001)))
    c.append(case("step_exp_warmup", LR_TESTS + "test_class_target_and_lr_config_give_the_same_schedule", 4, 2,
                  lr_config=dict(policy="Step", step=[2, 3], gamma=0.5, warmup="exp", warmup_iters=3,
                                 warmup_ratio=0.2)))
    c.append(case("step_min_lr_constant_warmup_by_epoch", LR_TESTS + "test_warmup_by_epoch_and_min_lr_floor", 5, 3,
                  lr_config=dict(policy="Step", step=2, gamma=0.5, min_lr=0.004, warmup="constant",
                                 warmup_by_epoch=True, warmup_iters=1, warmup_ratio=0.25)))
    c.append(case("step_min_lr_above_a_base",
                  LR_TESTS + "test_min_lr_floor_is_absolute_and_can_lift_a_group_above_its_base", 2, 1,
                  lr_config=dict(policy="Step", step=[1], gamma=0.1, min_lr=0.015)))
    c.append(case("cosine_by_epoch_exp_warmup", LR_TESTS + "test_exp_warmup_crossing_an_epoch_with_cosine_by_epoch",
                  4, 3, lr_config=dict(policy="CosineAnnealing", min_lr=1e-4, warmup="exp", warmup_iters=5,
                                       warmup_ratio=0.1)))
    c.append(case("step_by_iter_milestone_inside_exp_warmup",
                  LR_TESTS + "test_warmup_compounds_with_a_decay_inside_the_window", 1, 6,
                  lr_config=dict(policy="Step", by_epoch=False, step=[3], gamma=0.1, warmup="exp", warmup_iters=4,
                                 warmup_ratio=0.01)))
    for by_epoch in (True, False):
        for kind in ("constant", "linear", "exp"):
            c.append(case(f"fixed_{kind}_warmup_by_{'epoch' if by_epoch else 'iter'}",
                          LR_TESTS + "test_fixed_with_each_warmup_type", 3, 2,
                          lr_config=dict(policy="Fixed", by_epoch=by_epoch, warmup=kind, warmup_iters=4,
                                         warmup_ratio=0.5)))
    c.append(case("cosine_by_iter_min_lr_ratio_linear_warmup",
                  LR_TESTS + "test_cosine_by_iter_min_lr_ratio_with_linear_warmup_reference", 10, 10,
                  lr_config=dict(policy="CosineAnnealing", by_epoch=False, min_lr_ratio=0.01, warmup="linear",
                                 warmup_iters=10, warmup_ratio=0.1)))
    c.append(case("cosine_by_epoch_min_lr_ratio",
                  LR_TESTS + "test_cosine_by_epoch_min_lr_ratio_never_reaches_the_target", 5, 2,
                  lr_config=dict(policy="CosineAnnealing", min_lr_ratio=0.1)))
    c.append(case("flat_cosine_by_epoch_half", LR_TESTS + "test_flat_cosine_by_epoch_uses_bankers_rounding", 5, 1,
                  lr_config=dict(policy="FlatCosineAnnealing", start_percent=0.5, min_lr_ratio=0.0)))
    c.append(case("flat_cosine_by_iter_min_lr", LR_TESTS + "test_flat_cosine_by_iter_absolute_min_lr", 1, 12,
                  lr_config=dict(policy="FlatCosineAnnealing", by_epoch=False, start_percent=0.75, min_lr=1e-3)))
    c.append(case("cosine_restart_by_iter", LR_TESTS + "test_cosine_restart_weights_and_min_lr_ratio", 1, 10,
                  lr_config=dict(policy="CosineRestart", by_epoch=False, periods=[4, 6], restart_weights=[1, 0.5],
                                 min_lr_ratio=0.1)))
    t = LR_TESTS + "test_linear_annealing_poly_exp_inv"
    c.append(case("linear_annealing_by_epoch", t, 4, 1, lr_config=dict(policy="LinearAnnealing", min_lr_ratio=0.0)))
    c.append(case("exp_by_epoch", t, 3, 2, lr_config=dict(policy="Exp", gamma=0.5)))
    c.append(case("inv_by_iter", t, 1, 4, lr_config=dict(policy="Inv", gamma=0.1, power=0.5, by_epoch=False)))
    c.append(case("poly_by_epoch", t, 4, 1, lr_config=dict(policy="Poly", power=2.0, min_lr=1e-3)))
    c.append(case("poly_mmseg_iter_based", LR_TESTS + "test_poly_by_iter_mmseg_reference_on_a_max_iters_run", None, 30,
                  max_iters=100, lr_config=dict(policy="poly", power=0.9, min_lr=1e-4, by_epoch=False,
                                                warmup="linear", warmup_iters=10, warmup_ratio=1e-6)))
    c.append(case("cyclic_mmdet3d_adamw", LR_TESTS + "test_cyclic_mmdet3d_reference_with_adamw", 10, 10,
                  groups=ADAMW_MMDET3D, optimizer="AdamW",
                  lr_config=dict(policy="cyclic", target_ratio=(10, 1e-4), cyclic_times=1, step_ratio_up=0.4)))
    c.append(case("cyclic_linear_gamma", LR_TESTS + "test_cyclic_gamma_and_linear_reference", 1, 8,
                  lr_config=dict(policy="Cyclic", target_ratio=(10.0, 1.0), cyclic_times=2, step_ratio_up=0.5,
                                 anneal_strategy="linear", gamma=0.5)))
    c.append(case("cyclic_no_rising_phase", LR_TESTS + "test_cyclic_without_rising_phase_ignores_gamma_at_the_peak",
                  1, 8, lr_config=dict(policy="Cyclic", target_ratio=(4.0, 0.5), cyclic_times=2, step_ratio_up=0.0,
                                       anneal_strategy="linear", gamma=0.5)))
    c.append(case("one_cycle_defaults", LR_TESTS + "test_one_cycle_reference_ignores_the_optimizer_lr", 10, 10,
                  lr_config=dict(policy="OneCycle", max_lr=0.01)))
    c.append(case("one_cycle_three_phase_per_group_linear",
                  LR_TESTS + "test_one_cycle_three_phase_per_group_max_lr_truncated", 1, 10,
                  lr_config=dict(policy="OneCycle", max_lr=[0.01, 0.1], total_steps=20, three_phase=True,
                                 anneal_strategy="linear")))
    # ---------------------------------------------------- momentum (tests/test_momentum_updaters.py)
    c.append(case("step_momentum_linear_warmup", M_TESTS + "test_step_momentum_with_linear_warmup_divides", 3, 2,
                  groups=SGD2M, momentum_config=dict(policy="Step", step=[2], gamma=0.5, warmup="linear",
                                                     warmup_iters=2, warmup_ratio=0.5)))
    c.append(case("step_momentum_floor_by_iter", M_TESTS + "test_step_momentum_floor_and_int_step_by_iter", 1, 6,
                  groups=SGD2M, momentum_config=dict(policy="Step", step=2, by_epoch=False, min_momentum=0.3)))
    c.append(case("cosine_momentum_upwards_by_epoch",
                  M_TESTS + "test_cosine_momentum_by_epoch_anneals_upwards_with_a_ratio_above_one", 4, 2,
                  groups=SGD2M, momentum_config=dict(policy="CosineAnnealing", min_momentum_ratio=0.99 / 0.9)))
    c.append(case("linear_annealing_momentum", M_TESTS + "test_linear_annealing_momentum_reference", 4, 1,
                  groups=SGD2M, momentum_config=dict(policy="LinearAnnealing", min_momentum=0.99)))
    c.append(case("cyclic_momentum_mmdet3d_adamw", M_TESTS + "test_cyclic_momentum_on_adamw_betas_reference", 10, 10,
                  groups=ADAMW_MMDET3D, optimizer="AdamW",
                  momentum_config=dict(policy="cyclic", target_ratio=(0.85 / 0.95, 1), cyclic_times=1,
                                       step_ratio_up=0.4)))
    c.append(case("one_cycle_momentum_defaults",
                  M_TESTS + "test_one_cycle_momentum_reference_ignores_the_groups_momentum", 10, 10,
                  groups=SGD2M, momentum_config=dict(policy="OneCycle")))
    c.append(case("one_cycle_momentum_per_group_three_phase_linear",
                  M_TESTS + "test_one_cycle_momentum_per_group_three_phase_linear", 1, 20, groups=SGD2M,
                  momentum_config=dict(policy="OneCycle", base_momentum=[0.8, 0.7], max_momentum=[0.9, 0.95],
                                       three_phase=True, anneal_strategy="linear", pct_start=0.25)))
    c.append(case("cosine_momentum_by_iter_adamw",
                  M_TESTS + "test_adam_beta1_is_driven_and_beta2_kept_through_a_runner", 1, 4, groups=ADAMW_2,
                  optimizer="AdamW", momentum_config=dict(policy="CosineAnnealing", min_momentum=0.5,
                                                          by_epoch=False)))
    # ------------------------------------------ mmtrack SiameseRPN (tests/test_siamese_linear_interval.py)
    c.append(case("siamese_rpn_default_20x3", S_TESTS + "test_siamese_rpn_default_segments_over_20_epochs", 20, 3,
                  lr_config=dict(policy="SiameseRPN"), source="mmtrack"))
    c.append(case("siamese_rpn_default_20x1", S_TESTS + "test_siamese_rpn_default_factors_equal_mmtrack_table", 20, 1,
                  lr_config=dict(policy="SiameseRPN"), source="mmtrack"))
    segs = [dict(type="step", start_lr_factor=0.5, end_lr_factor=1.0, end_epoch=2),
            dict(type="log", start_lr_factor=1.0, end_lr_factor=0.01, end_epoch=5)]
    c.append(case("siamese_rpn_custom_linear_warmup",
                  S_TESTS + "test_siamese_rpn_custom_segments_with_warmup_and_a_shorter_run", 4, 2,
                  lr_config=dict(policy="SiameseRPN", lr_configs=segs, warmup="linear", warmup_iters=2,
                                 warmup_ratio=0.5), source="mmtrack"))
    return c


# ------------------------------------------------------------------------------ the run
class Model(torch.nn.Module):
    """One scalar parameter per param group; ``train_step`` as mmcv's runners call it."""

    def __init__(self, n):
        super().__init__()
        self.ps = torch.nn.ParameterList(torch.nn.Parameter(torch.ones(())) for _ in range(n))

    def train_step(self, data_batch, optimizer, **kwargs):
        x = data_batch[0].sum()
        loss = sum((p * x - 1) ** 2 for p in self.ps) * 1e-3
        return dict(loss=loss, log_vars={"loss": float(loss)}, num_samples=1)


def momentum_of(group):
    return group["betas"][0] if "betas" in group else group["momentum"]


def snapshot(optimizer):
    gs = optimizer.param_groups
    row = {"lr": [float(g["lr"]) for g in gs], "momentum": [float(momentum_of(g)) for g in gs]}
    if all("betas" in g for g in gs):
        row["beta2"] = [float(g["betas"][1]) for g in gs]
    return row


class Recorder(Hook):
    """Each group's values as set for this iteration, after the lr (VERY_HIGH) and momentum (HIGH) updaters."""

    def __init__(self, rows):
        self.rows = rows

    def before_train_iter(self, runner):
        self.rows.append({"epoch": runner.epoch, "iter": runner.iter, **snapshot(runner.optimizer)})


def make_optimizer(model, kind, groups):
    param_groups = [{"params": [p], **copy.deepcopy(g)} for p, g in zip(model.ps, groups, strict=True)]
    if kind == "SGD":
        return torch.optim.SGD(param_groups, lr=groups[0]["lr"], momentum=0.9)
    return torch.optim.AdamW(param_groups, lr=groups[0]["lr"])


def run_case(c, workdir):
    torch.manual_seed(0)
    model = Model(len(c["groups"]))
    optimizer = make_optimizer(model, c["optimizer"], c["groups"])
    at_step = []
    step = optimizer.step

    def checked_step(*args, **kwargs):
        at_step.append(snapshot(optimizer))
        return step(*args, **kwargs)
    optimizer.step = checked_step
    logger = logging.getLogger("mmcv_ref")
    logger.setLevel(logging.ERROR)
    if c["max_iters"] is None:
        runner = EpochBasedRunner(model, optimizer=optimizer, work_dir=workdir, logger=logger,
                                  max_epochs=c["max_epochs"])
    else:
        runner = IterBasedRunner(model, optimizer=optimizer, work_dir=workdir, logger=logger,
                                 max_iters=c["max_iters"])
    runner.register_training_hooks(lr_config=copy.deepcopy(c["lr_config"]), optimizer_config=dict(grad_clip=None),
                                   momentum_config=copy.deepcopy(c["momentum_config"]), checkpoint_config=None,
                                   log_config=None)
    rows = []
    runner.register_hook(Recorder(rows), priority="NORMAL")
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.ones(c["iters_per_epoch"], 1)),
                                       batch_size=1)
    workflow = [("train", 1)] if c["max_iters"] is None else [("train", c["max_iters"])]
    runner.run([data], workflow)
    names = [type(h).__name__ for h in runner.hooks]
    for r, s in zip(rows, at_step, strict=True):
        assert {k: r[k] for k in s} == s, (c["name"], r, s)
    assert [r["iter"] for r in rows] == list(range(len(rows))), c["name"]
    return rows, names


def load_mmtrack(wheel):
    """Registers mmtrack's SiameseRPNLrUpdaterHook into mmcv's HOOKS from the wheel's one module.

    Called before every mmtrack case: the hook's default ``lr_configs`` is a mutable default argument
    that its ``__init__`` mutates (``lr_config.pop('type')``), so a second hook built with the defaults
    in the same process raises ``KeyError: 'type'``; a fresh module gives fresh defaults."""
    member = "mmtrack/core/optimizer/sot_lr_updater.py"
    with zipfile.ZipFile(wheel) as z:
        source = z.read(member).decode()
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        version = next(line.split(":", 1)[1].strip() for line in z.read(meta).decode().splitlines()
                       if line.startswith("Version:"))
    HOOKS._module_dict.pop("SiameseRPNLrUpdaterHook", None)
    module = types.ModuleType("mmtrack_sot_lr_updater")
    exec(compile(source, f"{os.path.basename(wheel)}/{member}", "exec"), module.__dict__)
    assert HOOKS.get("SiameseRPNLrUpdaterHook") is module.SiameseRPNLrUpdaterHook
    with open(wheel, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    return {"version": version, "file": member, "wheel": os.path.basename(wheel), "wheel_sha256": digest}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mmtrack-wheel", required=True, help="mmtrack-0.14.0-py3-none-any.whl (pip download)")
    ap.add_argument("--out", default=os.path.join(HERE, "tables.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    mmtrack = load_mmtrack(args.mmtrack_wheel)
    meta = {"mmcv": mmcv.__version__, "torch": torch.__version__, "numpy": np.__version__,
            "python": sys.version.split()[0], "mmtrack": mmtrack,
            "script": "tests/reference/mmcv_lr/make_tables.py",
            "mmtrack_note": "mmtrack's SiameseRPNLrUpdaterHook mutates its default lr_configs (pops 'type'), "
                            "so the script reloads its module before each mmtrack case",
            "columns": "run-length encoded [[count, value], ...] over iterations 0..n_iters-1; value = one "
                       "entry per param group (epoch: runner.epoch); read before optimizer.step()"}
    print(f"mmcv {meta['mmcv']}  torch {meta['torch']}  numpy {meta['numpy']}  python {meta['python']}  "
          f"mmtrack {mmtrack['version']}")
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for c in build_cases():
            if c["source"] == "mmtrack":
                load_mmtrack(args.mmtrack_wheel)
            rows, hooks = run_case(c, os.path.join(tmp, c["name"]))
            entry = {k: plain(v) for k, v in c.items() if v is not None}
            entry["hooks"] = [h for h in hooks if h.endswith("UpdaterHook")]
            entry["n_iters"] = len(rows)
            for col in ("epoch", "lr", "momentum", "beta2"):
                if col in rows[0]:
                    entry[col] = rle([r[col] for r in rows])
            out[c["name"]] = entry
            print(f"{c['name']:50s} {len(rows):6d} rows  {', '.join(entry['hooks'])}")
    text = dump({"meta": meta, "cases": out})
    with open(args.out, "w") as f:
        f.write(text)
    print(f"wrote {args.out}: {len(out)} cases, {len(text)} bytes")


if __name__ == "__main__":
    main()
