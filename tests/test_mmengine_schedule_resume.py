"""Resume with an mmengine param_scheduler list: a run interrupted mid-warmup or mid-window and resumed from
its checkpoint steps with exactly the lrs and momentums of the uninterrupted run (real training, real
checkpoints; plateau members and mmagic's hook included), also after a real ``kill -9``."""
import contextlib
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.data import TensorDataset

from trainkit.core import checkpoint as ckpt_io
from trainkit.core.record import read_jsonl
from trainkit.core.runner import Runner
from trainkit.schedules import param_scheduler
from helpers import StopAt, isolated_env

ROOT = Path(__file__).resolve().parent.parent


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = torch.nn.Linear(2, 2), torch.nn.Linear(2, 1)

    def forward(self, batch):
        x, y = batch
        return {"loss": ((self.b(self.a(x)).squeeze(-1) - y) ** 2).mean()}


class Recorder:
    priority = 100

    def __init__(self):
        self.rows = {}

    def after_step(self, runner):
        self.rows[runner.iter] = [(g["lr"], g["betas"][0] if "betas" in g else g["momentum"], g["weight_decay"])
                                  for g in runner.optimizer.param_groups]


class Interrupt(Exception):
    pass


def by_epoch_metric(values):
    """Validation after epoch k returns values[k - 1] (from the counters: the same after a resume)."""
    return lambda runner: {"val/m": values[runner.epoch - 1]}


def run(tmp_path, schedulers, hook=None, *, adam=False, lr_scale=1.0, stop_at=None, resume=None, metric=None):
    torch.manual_seed(0)
    model = Tiny()
    groups = [{"params": model.a.parameters(), "name": "a", "lr": 0.02 * lr_scale, "weight_decay": 1e-3},
              {"params": model.b.parameters(), "name": "b", "lr": 0.01 * lr_scale, "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, betas=(0.9, 0.99)) if adam else torch.optim.SGD(groups, momentum=0.9)
    data = TensorDataset(torch.randn(8, 2), torch.randn(8))
    rec = Recorder()
    comps = {"sched": param_scheduler(schedulers, hook), "rec": rec}
    if stop_at is not None:
        comps["stop"] = StopAt(stop_at, Interrupt)
    runner = Runner(model, opt, data, batch_size=2, max_epochs=4, components=comps, work_dir=tmp_path,
                    checkpoint_interval_iters=3, resume=resume, progress=False, evaluator=metric)
    with contextlib.suppress(Interrupt):
        runner.run()
    return rec.rows, model


METRIC = [1.0, 1.0, 1.0, 0.5]
CASES = {   # name: (schedulers, hook, adam, metric)
    "schedule_1x_mid_warmup": ([{"type": "LinearLR", "start_factor": 0.001, "by_epoch": False, "begin": 0, "end": 10},
                                {"type": "MultiStepLR", "milestones": [2, 3], "gamma": 0.1}], None, False, None),
    "converted_cosine_mid_window": ([{"type": "LinearLR", "start_factor": 0.01, "end": 1,
                                      "convert_to_iter_based": True},
                                     {"type": "CosineAnnealingLR", "begin": 1, "eta_min_ratio": 0.01,
                                      "convert_to_iter_based": True},
                                     {"type": "CosineAnnealingMomentum", "eta_min": 0.99, "by_epoch": False}],
                                    None, False, None),
    "one_cycle_adam": ([{"type": "OneCycleLR", "eta_max": [0.05, 0.1], "by_epoch": False},
                        {"type": "CosineAnnealingMomentum", "eta_min": 0.8, "by_epoch": False, "end": 9},
                        {"type": "LinearParamScheduler", "param_name": "weight_decay", "start_factor": 0.5,
                         "by_epoch": False}], None, True, None),
    "plateau_lr_and_momentum": ([{"type": "LinearLR", "start_factor": 0.5, "by_epoch": False, "end": 9},
                                 {"type": "ReduceOnPlateauLR", "monitor": "val/m", "patience": 0, "factor": 0.5},
                                 {"type": "ReduceOnPlateauMomentum", "monitor": "val/m", "patience": 0, "factor": 0.9}],
                                None, False, METRIC),
    "mmagic_warmup_reduce_lr_val": ([{"type": "LinearLR", "start_factor": 0.1, "by_epoch": True, "end": 3},
                                     {"type": "ReduceLR", "mode": "min", "patience": 0, "factor": 0.5}],
                                    {"type": "ReduceLRSchedulerHook", "val_metric": "val/m"}, False, METRIC),
    "mmagic_reduce_lr_train_loss_mid_interval": ([{"type": "ReduceLR", "by_epoch": False, "patience": 0,
                                                   "factor": 0.5, "threshold": 0.5},
                                                  # counted in checks (every 4 iterations) under this hook
                                                  {"type": "LinearLrInterval", "start_factor": 0.01, "end_factor": 0.0,
                                                   "by_epoch": False, "begin": 1, "end": 5, "interval": 2}],
                                                 {"type": "ReduceLRSchedulerHook", "val_metric": None,
                                                  "by_epoch": False, "interval": 4}, False, None),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_interrupted_and_resumed_run_has_the_same_trajectory(tmp_path, case):
    schedulers, hook, adam, metric = CASES[case]
    ev = by_epoch_metric(metric) if metric else None
    full, full_model = run(tmp_path / "full", schedulers, hook, adam=adam, metric=ev)
    assert sorted(full) == list(range(16))
    part, _ = run(tmp_path / "cut", schedulers, hook, adam=adam, stop_at=7, metric=ev)
    assert sorted(part) == list(range(7))
    # resumes from the checkpoint after iteration 5 (mid-epoch 1); a changed config lr does not matter: the
    # optimizer's saved values and initial_lr are the state, as in mmengine
    rest, rest_model = run(tmp_path / "cut", schedulers, hook, adam=adam, lr_scale=5.0, resume="auto", metric=ev)
    assert sorted(rest) == list(range(6, 16))
    for i in range(16):
        assert (part if i < 7 else rest)[i] == full[i], i
    assert len({tuple(v) for v in full.values()}) > 2     # the schedule really moves
    for p, q in zip(full_model.parameters(), rest_model.parameters(), strict=True):
        assert torch.equal(p, q)


def test_a_checkpoint_of_another_list_is_refused(tmp_path):
    run(tmp_path, CASES["schedule_1x_mid_warmup"][0], stop_at=7)
    with pytest.raises(ValueError, match=r"param_scheduler: the checkpoint's list \['LinearLR', 'MultiStepLR'\] is "
                                         r"not this run's \['LinearLR'\]"):
        run(tmp_path, [{"type": "LinearLR"}], resume="auto")


def _train(*overrides, cwd):
    env = isolated_env(cwd, ROOT)
    return subprocess.run([sys.executable, "-m", "trainkit.train", "+recipe=digits_mmengine_schedule",
                           "trainer.max_epochs=4", "trainer.progress=false", "trainer.log_interval=1",
                           "trainer.checkpoint_interval_iters=5", "model.width=8", "logger=none", *overrides],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_kill_9_mid_warmup_and_mid_window_then_resume_matches_uninterrupted(tmp_path):
    """The recipe (50-iteration LinearLR warmup, converted cosine; 23 iterations per epoch) killed with SIGKILL at
    iteration 33 (mid-warmup: it resumes from the checkpoint after iteration 29), resumed and killed again at
    iteration 77 (mid-cosine: resumes from 74), resumed to the end: every logged lr and the final weights equal
    the uninterrupted run's."""
    full = _train("hydra.run.dir=full", cwd=tmp_path)
    assert full.returncode == 0, full.stderr
    want = {r["step"]: (r["lr/backbone"], r["lr/head"]) for r in read_jsonl(tmp_path / "full" / "metrics.jsonl")
            if "loss" in r}
    assert len(want) == 92 and want[0] == (0.005000000000000001, 0.010000000000000002)
    for kill_at, resumed_from in ((33, 30), (77, 75)):
        cut = _train("hydra.run.dir=cut", f"+components.kill={{_target_: helpers.KillAt, at: {kill_at}}}",
                     *(["trainer.resume=auto"] if kill_at == 77 else []), cwd=tmp_path)
        assert cut.returncode == -9, cut.stderr
        assert ckpt_io.load(tmp_path / "cut" / "checkpoints" / "last.pt")["counters"]["iter"] == resumed_from
    # the same components as the checkpoints' (a removed component would make the run another one, which
    # resume=auto refuses): the killer stays, past the run's end
    again = _train("hydra.run.dir=cut", "+components.kill={_target_: helpers.KillAt, at: 1000000}",
                   "trainer.resume=auto", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    got = {r["step"]: (r["lr/backbone"], r["lr/head"]) for r in read_jsonl(tmp_path / "cut" / "metrics.jsonl")
           if "loss" in r}
    assert got == want
    a, b = (ckpt_io.load(tmp_path / d / "checkpoints" / "last.pt") for d in ("full", "cut"))
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
