"""Resume: a run interrupted mid-epoch and resumed from its checkpoint sees exactly the lrs and
momentums of the uninterrupted run (real training steps, real checkpoints)."""
import pytest
import torch
from torch.utils.data import TensorDataset

from trainkit.core.runner import Runner
from helpers import StopAt
import contextlib

L, M = "trainkit.schedules.", "trainkit.schedules."


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
        self.rows[runner.iter] = [(g["lr"], g.get("momentum", g.get("betas", (None,))[0]))
                                  for g in runner.optimizer.param_groups]


class Interrupt(Exception):
    pass


def run(tmp_path, components, *, lr_scale=1.0, stop_at=None, resume=None, adam=False):
    from trainkit.build import build

    torch.manual_seed(0)
    model = Tiny()
    groups = [{"params": model.a.parameters(), "name": "a", "lr": 0.02 * lr_scale},
              {"params": model.b.parameters(), "name": "b", "lr": 0.01 * lr_scale}]
    opt = torch.optim.AdamW(groups, betas=(0.9, 0.99)) if adam else torch.optim.SGD(groups, momentum=0.9)
    data = TensorDataset(torch.randn(8, 2), torch.randn(8))
    rec = Recorder()
    comps = {name: build(node, f"components.{name}") for name, node in components.items()}
    comps["rec"] = rec
    if stop_at is not None:
        comps["stop"] = StopAt(stop_at, Interrupt)
    runner = Runner(model, opt, data, batch_size=2, max_epochs=4, components=comps, work_dir=tmp_path,
                    checkpoint_interval_iters=3, resume=resume, progress=False)
    with contextlib.suppress(Interrupt):
        runner.run()
    return rec.rows


CASES = {
    "step_warmup_by_epoch": ({"lr": {"_target_": L + "StepLrUpdater", "step": [2, 3], "warmup": "linear",
                                     "warmup_iters": 2, "warmup_by_epoch": True, "warmup_ratio": 0.2}}, False),
    "cosine_iter_cyclic_momentum": ({"lr": {"_target_": L + "CosineAnnealingLrUpdater", "by_epoch": False,
                                            "min_lr_ratio": 0.1, "warmup": "exp", "warmup_iters": 9},
                                     "m": {"_target_": M + "CyclicMomentumUpdater"}}, False),
    "one_cycle_adam": ({"lr": {"_target_": L + "OneCycleLrUpdater", "max_lr": [0.05, 0.1]},
                        "m": {"_target_": M + "OneCycleMomentumUpdater"}}, True),
    "siamese_rpn": ({"lr": {"_target_": L + "SiameseRPNLrUpdater", "warmup": "constant", "warmup_iters": 7}}, False),
    "linear_interval_iter": ({"lr": {"_target_": L + "LinearLrInterval", "start_factor": 0.5, "end_factor": 0.0,
                                     "begin": 5, "end": 14, "by_epoch": False, "interval": 2}}, False),
    "linear_interval_epoch": ({"lr": {"_target_": L + "LinearLrInterval", "start_factor": 0.05, "end_factor": 0.01,
                                      "begin": 0, "end": 4, "by_epoch": True}}, False),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_interrupted_and_resumed_run_has_the_same_trajectory(tmp_path, case):
    components, adam = CASES[case]
    full = run(tmp_path / "full", components, adam=adam)
    assert sorted(full) == list(range(16))
    part = run(tmp_path / "cut", components, stop_at=7, adam=adam)
    assert sorted(part) == list(range(7))
    # resume from the checkpoint taken after iteration 5 (mid-epoch), with a changed config lr:
    # the optimizer's saved initial_lr, not the config, is the base (as in mmcv)
    rest = run(tmp_path / "cut", components, resume="auto", lr_scale=5.0, adam=adam)
    assert sorted(rest) == list(range(6, 16))
    for i in range(16):
        assert (part if i < 7 else rest)[i] == full[i], i
    assert len({tuple(v) for v in full.values()}) > 2    # the schedule really moves
