"""Scripted model, losses, metrics and a per-rank trace for the plateau tests.

Importable from a torchrun child (``PYTHONPATH=tests``) as well as in-process.
"""
import json

import torch
from torch.utils.data import TensorDataset

from trainkit.core.data import DataBundle


class Scripted(torch.nn.Module):
    """``loss = 0·w + value``; ``value`` is set before each iteration by :class:`LossScript`."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.value = 0.0

    def forward(self, batch):
        return {"loss": (self.w * 0).sum() + self.value}


def zeros(n: int = 8, n_val: int = 2) -> DataBundle:
    return DataBundle(TensorDataset(torch.zeros(n, 1)), TensorDataset(torch.zeros(n_val, 1)))


def _plain(x):
    """Nested lists (also from OmegaConf ListConfig) as plain lists."""
    return [_plain(v) for v in x] if hasattr(x, "__len__") and not isinstance(x, str) else x


def _per_rank(values, runner):
    """``values``: one list for every rank, or one list shared by all."""
    return values[runner.accelerator.process_index] if isinstance(values[0], list) else values


class LossScript:
    """Sets the training loss of iteration ``i`` to ``values[i]`` (this rank's list)."""

    priority = 0

    def __init__(self, values):
        self.values = _plain(values)

    def before_iter(self, runner):
        runner.unwrapped_model.value = float(_per_rank(self.values, runner)[runner.iter])


class MetricScript:
    """Evaluator: validation ``k`` (after ``k`` epochs) returns ``{name: values[k − 1]}`` (this rank's list)."""

    def __init__(self, name, values):
        self.name = name
        self.values = _plain(values)

    def __call__(self, runner):
        return {self.name: float(_per_rank(self.values, runner)[runner.epoch - 1])}


class Trace:
    """After every check of the named reducers, appends one JSON line to
    ``<work_dir>/plateau_rank<r>.jsonl``: the reducer's state and every group's lr."""

    priority = 80

    def __init__(self, names):
        self.names = list(names)
        self.seen = {}

    def before_run(self, runner):
        self.path = runner.work_dir / f"plateau_rank{runner.accelerator.process_index}.jsonl"
        self.seen = {n: runner.components[n].step_count for n in self.names}

    def _record(self, runner):
        for n in self.names:
            c = runner.components[n]
            if c.step_count != self.seen[n]:
                self.seen[n] = c.step_count
                row = {"name": n, "epoch": runner.epoch, "iter": runner.iter, "step_count": c.step_count,
                       "value": c.value, "best": c.best, "num_bad": c.num_bad, "reductions": c.reductions,
                       "lrs": [g["lr"] for g in runner.optimizer.param_groups]}
                with open(self.path, "a") as f:
                    f.write(json.dumps(row) + "\n")

    after_iter = after_epoch = after_val = _record
