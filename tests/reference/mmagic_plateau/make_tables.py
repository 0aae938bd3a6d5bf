"""Reference tables for trainkit's ReduceLR: mmagic 1.2.0's ReduceLR + ReduceLRSchedulerHook in a real
mmengine 0.10.7 Runner.

Produced with: mmengine-lite 0.10.7, mmagic 1.2.0 (only ``mmagic/engine/schedulers/reduce_lr_scheduler.py``
and ``mmagic/engine/hooks/reduce_lr_scheduler_hook.py``, read out of the wheel at run time; mmagic itself
is not installed, its ``__init__`` needs mmcv 2), torch 2.13.0+cpu, python 3.11.7; the mmengine Runner
needs ``cv2`` (opencv-python-headless). The versions actually used are written into ``tables.json``.

Every case is a real ``mmengine.runner.Runner(...).train()`` (``EpochBasedTrainLoop``, batch 1) with
``param_scheduler=[dict(type='ReduceLR', by_epoch=..., <scheduler arguments>)]`` and
``default_hooks=dict(param_scheduler=ReduceLRSchedulerHook(val_metric, by_epoch, interval))``, the
arguments split between the two as mmagic does (trainkit's one component takes them all). The
monitored values are scripted: a validation metric ``m`` (a ``BaseMetric`` serving ``metric_trace`` in
order, ``val_interval`` epochs apart), or, with ``val_metric=None``, the training loss (the model's loss
at iteration ``i`` is ``losses[i]``). A hook at priority LOWEST reads every group's lr in
``before_train_iter``; the scheduler's ``step`` is wrapped to record its state after every check
(``last_step``, ``value`` consumed, ``best``, ``num_bad_epochs``, ``cooldown_counter``, the lrs).

Run (needs nothing from trainkit):

    pip download mmagic==1.2.0 --no-deps -d /tmp/mmagic
    /path/to/venv/bin/python tests/reference/mmagic_plateau/make_tables.py \
        --mmagic-wheel /tmp/mmagic/mmagic-1.2.0-py2.py3-none-any.whl

It rewrites ``tests/reference/mmagic_plateau/tables.json`` (``lr`` run-length encoded as in
``mmcv_lr/tables.json``; ``checks``: one entry per scheduler step after construction; floats exact,
NaN and inf written as JSON's NaN / Infinity, which Python's json reads back).
"""
import argparse
import copy
import hashlib
import math
import os
import sys
import tempfile
import types
import zipfile

import mmengine
import torch
from mmengine.evaluator import BaseMetric, Evaluator
from mmengine.hooks import Hook
from mmengine.logging import MessageHub
from mmengine.model import BaseModel
from mmengine.optim import OptimWrapper
from mmengine.registry import HOOKS, PARAM_SCHEDULERS
from mmengine.runner import Runner

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from tablefile import dump, plain, rle  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
T = "tests/test_plateau.py::"
SCHEDULER_KEYS = ("mode", "factor", "patience", "threshold", "threshold_mode", "cooldown", "min_lr", "eps",
                  "begin", "end")
HOOK_KEYS = ("val_metric", "interval")
G1 = [1.0]


def val_case(name, test, trace, epochs=None, ipe=1, lrs=G1, val_interval=1, **kw):
    return dict(name=name, test=test, lrs=lrs, max_epochs=epochs or len(trace), iters_per_epoch=ipe,
                val_interval=val_interval, metric_trace=trace, reduce_lr={"val_metric": "m", **kw})


def loss_case(name, test, losses, ipe, lrs=G1, **kw):
    return dict(name=name, test=test, lrs=lrs, max_epochs=len(losses) // ipe, iters_per_epoch=ipe, val_interval=1,
                losses=losses, reduce_lr={"val_metric": None, **kw})


def build_cases():
    nan = math.nan
    trace_interval = [4.0, 2.0, 6.0, 8.0, 8.0, 1.0, 3.0]
    hand = dict(mode="min", factor=0.5, patience=2, cooldown=1)
    return [
        val_case("hand_example_val", T + "test_hand_example_from_the_notes_val_path",
                 [10, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9], ipe=3, **hand),
        loss_case("hand_example_train_loss_by_epoch", T + "test_hand_example_from_the_notes_train_loss_by_epoch",
                  [v + d for v in [10, 9, 9, 9, 9, 9, 9, 9, 9, 9] for d in (-1.0, 0.5, 0.25, 0.25)], 4, **hand),
        *[val_case(f"mmagic_unit_test_{mode}_{tm}", T + "test_mmagic_unit_test_scenario", [1, 1, 1, 1], lrs=[0.05],
                   mode=mode, threshold_mode=tm, patience=1) for mode in ("min", "max") for tm in ("rel", "abs")],
        val_case("eps_and_min_lr", T + "test_eps_skips_tiny_groups_and_min_lr_raises_a_lower_group", [1, 1, 1, 1],
                 lrs=[1.0, 1.5e-8, 1e-4, 1.5e-3], factor=0.5, patience=0, min_lr=1e-3),
        val_case("window_begin3_end6", T + "test_window_metrics_outside_are_not_consumed_and_the_first_inside_is_"
                 "discarded", [1, 1, 1, 5, 5, 5, 5, 5, 5, 5], factor=0.5, patience=0, begin=3, end=6),
        val_case("window_begin0_end100", T + "test_window_metrics_outside_are_not_consumed_and_the_first_inside_is_"
                 "discarded", [1, 1, 1, 5, 5, 5, 5, 5, 5, 5], factor=0.5, patience=0, end=100),
        val_case("end_defaults_to_max_epochs", T + "test_end_defaults_to_max_epochs_so_the_check_after_the_last_"
                 "validation_is_ignored", [5] * 6, factor=0.5, patience=0),
        val_case("interval2_by_epoch", T + "test_val_interval_off_by_one_and_by_iter_checks", trace_interval,
                 interval=2, factor=0.5, patience=0, end=100),
        val_case("interval2_by_iter", T + "test_val_interval_off_by_one_and_by_iter_checks", trace_interval,
                 by_epoch=False, interval=2, factor=0.5, patience=5),
        val_case("val_interval2", T + "test_val_interval_off_by_one_and_by_iter_checks", [3, 3, 3, 3], epochs=8,
                 val_interval=2, factor=0.5, patience=0, end=100),
        loss_case("train_loss_by_iter_interval3", T + "test_train_loss_by_iteration_with_an_interval_spanning_epochs",
                  [3, 3, 3, 2, 2, 2, 2, 3, 1, 2, 2, 1], 4, by_epoch=False, interval=3, factor=0.1, patience=0),
        loss_case("train_loss_by_epoch_interval2",
                  T + "test_train_loss_by_epoch_interval_averages_all_iterations_since_the_last_check",
                  [4, 4, 2, 2, 1, 5, 5, 5], 2, interval=2, factor=0.5, patience=0, end=100),
        val_case("nan_metric", T + "test_nan_counts_as_not_better_and_the_run_goes_on", [1, nan, nan, 0.5, 0.5],
                 factor=0.5, patience=1, end=100),
        loss_case("nan_train_loss", T + "test_nan_counts_as_not_better_and_the_run_goes_on", [2, 2, nan, 1, 1, 1], 2,
                  factor=0.5, patience=0, end=100),
    ]


def load_mmagic(wheel):
    """Registers mmagic's ReduceLR (PARAM_SCHEDULERS) and ReduceLRSchedulerHook (HOOKS) from the wheel."""
    members = ("mmagic/engine/schedulers/reduce_lr_scheduler.py", "mmagic/engine/hooks/reduce_lr_scheduler_hook.py")
    registry = types.ModuleType("mmagic.registry")
    registry.PARAM_SCHEDULERS, registry.HOOKS = PARAM_SCHEDULERS, HOOKS
    sys.modules.setdefault("mmagic", types.ModuleType("mmagic"))
    sys.modules["mmagic.registry"] = registry
    modules = []
    with zipfile.ZipFile(wheel) as z:
        for member in members:
            module = types.ModuleType(member.rsplit("/", 1)[1][:-3])
            exec(compile(z.read(member).decode(), f"{os.path.basename(wheel)}/{member}", "exec"), module.__dict__)
            modules.append(module)
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        version = next(line.split(":", 1)[1].strip() for line in z.read(meta).decode().splitlines()
                       if line.startswith("Version:"))
    assert PARAM_SCHEDULERS.get("ReduceLR") is modules[0].ReduceLR
    with open(wheel, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    return modules[1].ReduceLRSchedulerHook, {"version": version, "files": list(members),
                                              "wheel": os.path.basename(wheel), "wheel_sha256": digest}


class Model(BaseModel):
    """One scalar parameter per param group; with ``losses``, the loss at iteration i is ``losses[i]``."""

    def __init__(self, n, losses):
        super().__init__()
        self.ps = torch.nn.ParameterList(torch.nn.Parameter(torch.zeros(())) for _ in range(n))
        self.losses, self.calls = losses, 0

    def forward(self, inputs, data_samples=None, mode="tensor"):
        if mode == "loss":
            value = self.losses[self.calls] if self.losses else 0.0
            self.calls += 1
            return {"loss": sum(p * 0.0 for p in self.ps) + torch.tensor(float(value))}
        return [0] * (len(inputs) if isinstance(inputs, list) else inputs.shape[0])


class Items(torch.utils.data.Dataset):
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return {"inputs": torch.ones(1)}


class Recorder(Hook):
    priority = "LOWEST"

    def __init__(self, rows, checks):
        self.rows, self.checks = rows, checks

    def before_train(self, runner):
        (scheduler,) = runner.param_schedulers
        step = scheduler.step

        def recorded_step():
            step()
            hub = MessageHub.get_instance("reduce_lr")
            value = hub.get_scalar("value").current() if "value" in hub.log_scalars else None
            groups = runner.optim_wrapper.optimizer.param_groups
            self.checks.append({"epoch": runner.epoch, "iter": runner.iter, "last_step": scheduler.last_step,
                                "value": None if value is None else float(value), "best": float(scheduler.best),
                                "num_bad": scheduler.num_bad_epochs, "cooldown": scheduler.cooldown_counter,
                                "lr": [float(g["lr"]) for g in groups]})
        scheduler.step = recorded_step

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        groups = runner.optim_wrapper.optimizer.param_groups
        self.rows.append({"epoch": runner.epoch, "iter": runner.iter, "lr": [float(g["lr"]) for g in groups]})


def run_case(c, workdir, hook_class):
    torch.manual_seed(0)
    MessageHub.get_instance("reduce_lr").__init__("reduce_lr")   # a fresh accumulator for every case
    model = Model(len(c["lrs"]), c.get("losses"))
    optimizer = torch.optim.SGD([{"params": [p], "lr": lr} for p, lr in zip(model.ps, c["lrs"], strict=True)],
                                lr=c["lrs"][0])
    cfg = dict(c["reduce_lr"])
    by_epoch = cfg.pop("by_epoch", True)
    scheduler = dict(type="ReduceLR", by_epoch=by_epoch, **{k: cfg[k] for k in SCHEDULER_KEYS if k in cfg})
    hook = hook_class(by_epoch=by_epoch, **{k: cfg[k] for k in HOOK_KEYS if k in cfg})
    rows, checks = [], []
    trace = list(c.get("metric_trace") or [])

    class Script(BaseMetric):
        default_prefix = None

        def process(self, data_batch, data_samples):
            self.results.append(0)

        def compute_metrics(self, results):
            return {"m": trace.pop(0)}

    dataloader = dict(dataset=Items(c["iters_per_epoch"]), batch_size=1, num_workers=0,
                      sampler=dict(type="DefaultSampler", shuffle=False))
    kw = {}
    if trace:
        kw = dict(val_dataloader=copy.deepcopy(dataloader), val_cfg=dict(), val_evaluator=Evaluator([Script()]))
    runner = Runner(model=model, work_dir=workdir, experiment_name=c["name"], train_dataloader=dataloader,
                    train_cfg=dict(by_epoch=True, max_epochs=c["max_epochs"], val_interval=c["val_interval"]),
                    optim_wrapper=OptimWrapper(optimizer), param_scheduler=[scheduler],
                    default_hooks=dict(checkpoint=None, param_scheduler=hook),
                    custom_hooks=[Recorder(rows, checks)], log_level="ERROR", **kw)
    runner.train()
    assert not trace, (c["name"], "unused metrics", trace)
    assert [r["iter"] for r in rows] == list(range(c["max_epochs"] * c["iters_per_epoch"])), c["name"]
    return rows, checks, scheduler


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mmagic-wheel", required=True, help="mmagic-1.2.0-py2.py3-none-any.whl (pip download)")
    ap.add_argument("--out", default=os.path.join(HERE, "tables.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    hook_class, mmagic = load_mmagic(args.mmagic_wheel)
    meta = {"mmengine": mmengine.__version__, "torch": torch.__version__, "python": sys.version.split()[0],
            "mmagic": mmagic, "script": "tests/reference/mmagic_plateau/make_tables.py",
            "columns": "lr: run-length encoded [[count, [lr per group]], ...] over iterations, read before "
                       "optimizer.step(); epoch likewise; checks: the scheduler's state after each step() that "
                       "followed its construction"}
    print(f"mmengine {meta['mmengine']}  torch {meta['torch']}  python {meta['python']}  "
          f"mmagic {mmagic['version']}")
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for c in build_cases():
            rows, checks, scheduler = run_case(c, os.path.join(tmp, c["name"]), hook_class)
            entry = {k: plain(v) for k, v in c.items()}
            entry["scheduler"], entry["n_iters"] = scheduler, len(rows)
            entry["epoch"] = rle([r["epoch"] for r in rows])
            entry["lr"] = rle([r["lr"] for r in rows])
            entry["checks"] = checks
            out[c["name"]] = entry
            print(f"{c['name']:36s} {len(rows):4d} rows, {len(checks):3d} checks")
    text = dump({"meta": meta, "cases": out})
    with open(args.out, "w") as f:
        f.write(text)
    print(f"wrote {args.out}: {len(out)} cases, {len(text)} bytes")


if __name__ == "__main__":
    main()
