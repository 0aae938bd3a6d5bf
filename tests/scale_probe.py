"""Per-rank probes for the multi-process and sweep tests.

Importable from torchrun / accelerate / joblib children (``PYTHONPATH`` holds ``tests``).
"""
import json
import os
import time
from pathlib import Path

import torch

from trainkit.core import checkpoint as ckpt_io
from trainkit.core.groups import get_momentum


class RankTrace:
    """One JSON line per iteration into ``<work_dir>/trace_rank<r>.jsonl``: the lr, the
    schedule's unscaled value (``scheduled_lr``) and momentum of every group as the
    iteration's step uses them, whether the iteration stepped, this rank's own loss, the
    EMA momentum and the plateau reducer's state after the iteration. At the end of the
    run, this rank's parameters and EMA target go to ``<work_dir>/final_rank<r>.pt``.

    It also records every checkpoint this rank writes (``saves_rank<r>.jsonl``) and, with
    ``stop_at``, raises ``KeyboardInterrupt`` before that iteration on every rank (Ctrl-C)."""

    priority = {"before_iter": 95, "after_step": 95, "after_iter": 80, "before_run": 95, "after_run": 0}

    def __init__(self, stop_at=None, ema="ema", plateau="plateau"):
        self.stop_at, self.ema, self.plateau = stop_at, ema, plateau

    def before_run(self, runner):
        rank = runner.accelerator.process_index
        self.rank, self.dir = rank, Path(runner.work_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.fh = open(self.dir / f"trace_rank{rank}.jsonl", "a")  # noqa: SIM115 (closed at after_run)
        save, log = ckpt_io.CheckpointWriter.save, self.dir / f"saves_rank{rank}.jsonl"

        def spy(writer, state, names):
            with open(log, "a") as f:
                for name in names:
                    f.write(json.dumps({"name": f"{name}.pt", "iter": state["counters"]["iter"]}) + "\n")
            return save(writer, state, names)

        ckpt_io.CheckpointWriter.save = spy   # the one place the Runner writes checkpoints

    def before_iter(self, runner):
        if runner.iter == self.stop_at:
            raise KeyboardInterrupt
        groups = runner.optimizer.param_groups
        self.row = {"iter": runner.iter, "epoch": runner.epoch, "lr": [g["lr"] for g in groups],
                    "scheduled_lr": [g.get("scheduled_lr") for g in groups],
                    "momentum": [get_momentum(g) for g in groups], "stepped": False}

    def after_step(self, runner):
        self.row["stepped"] = True

    def after_iter(self, runner):
        self.row["loss"] = float(runner.outputs["loss"].detach())
        ema = runner.components.get(self.ema)
        if ema is not None:
            self.row["ema_momentum"] = ema.momentum
        p = runner.components.get(self.plateau)
        if p is not None:
            self.row["plateau"] = {"step_count": p.step_count, "value": p.value, "best": p.best,
                                   "reductions": p.reductions}
        self.fh.write(json.dumps(self.row) + "\n")
        self.fh.flush()

    def after_run(self, runner):
        model = runner.unwrapped_model
        final = {"params": {n: p.detach().clone() for n, p in model.named_parameters()}}
        target = getattr(model, "target_net", None)
        if target is not None:
            final["target"] = {n: p.detach().clone() for n, p in target.named_parameters()}
        torch.save(final, self.dir / f"final_rank{self.rank}.pt")
        self.fh.close()


class Rendezvous:
    """Proves that sweep jobs run side by side: at ``before_run`` each job leaves
    ``<dir>/ready_<pid>`` and waits until ``n`` such files exist (raises after ``timeout`` s,
    which only happens when the jobs run one after the other)."""

    def __init__(self, dir, n=2, timeout=60.0):
        self.dir, self.n, self.timeout = Path(dir), n, timeout

    def before_run(self, runner):
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / f"ready_{os.getpid()}").write_text(str(runner.work_dir))
        deadline = time.monotonic() + self.timeout
        while len(list(self.dir.glob("ready_*"))) < self.n:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {len(list(self.dir.glob('ready_*')))} of {self.n} jobs started together")
            time.sleep(0.02)


class NanLossOnRank:
    """Makes the loss NaN on one rank at one iteration (the other rank's loss stays finite)."""

    priority = 0

    def __init__(self, rank=0, at=3):
        self.rank, self.at = rank, at

    def before_run(self, runner):
        model = runner.unwrapped_model
        forward = model.forward

        def poisoned(batch):
            out = forward(batch)
            if runner.iter == self.at and runner.accelerator.process_index == self.rank:
                out = {**out, "loss": out["loss"] * float("nan")}
            return out

        model.forward = poisoned


class HangOnRank:
    """Makes one rank stop responding before iteration ``at`` (it sleeps ``seconds``), as a
    deadlocked or stalled process would; the other ranks wait for it in their next collective.
    It writes the time it stops to ``<work_dir>/fault_time``."""

    def __init__(self, rank=1, at=3, seconds=600.0):
        self.rank, self.at, self.seconds = rank, at, seconds

    def before_iter(self, runner):
        if runner.iter == self.at and runner.accelerator.process_index == self.rank:
            Path(runner.work_dir, "fault_time").write_text(repr(time.time()))
            time.sleep(self.seconds)


class KillOnRank:
    """``kill -9`` of one rank's own process before iteration ``at``, in the first attempt only
    (``TORCHELASTIC_RESTART_COUNT`` unset or 0), so a restarted group runs through. It writes the
    time of the kill to ``<work_dir>/fault_time``."""

    def __init__(self, rank=0, at=3):
        self.rank, self.at = rank, at

    def before_iter(self, runner):
        if runner.iter == self.at and runner.accelerator.process_index == self.rank \
                and os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") == "0":
            Path(runner.work_dir, "fault_time").write_text(repr(time.time()))
            os.kill(os.getpid(), 9)
