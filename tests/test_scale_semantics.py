"""What an iteration is under gradient accumulation and several processes (in-process, fast).

mmcv 1.x: ``runner.iter`` counts batches of one process; lr/momentum updaters run before
every iteration; ``GradientCumulativeOptimizerHook`` steps every ``cumulative_iters``
iterations and at the run's last one. The expectations below are closed forms and
hand-counted tables.
"""
import math

import pytest
import torch
from torch.utils.data import TensorDataset

from trainkit.core import checkpoint as ckpt_io
from trainkit.core.record import read_jsonl
from trainkit.schedules.mmcv_lr import CosineAnnealingLrUpdater
from trainkit.core.runner import Runner
from trainkit.build import iters_per_epoch_from_config
from trainkit.cli.schedule import main as schedule_main
from helpers import StopAt


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(4, 3)

    def forward(self, batch):
        x, y = batch
        return {"loss": torch.nn.functional.cross_entropy(self.lin(x), y)}


class Steps:
    """The iteration and lr of every optimizer step."""

    priority = 100

    def __init__(self):
        self.steps = []

    def after_step(self, runner):
        self.steps.append((runner.iter, runner.optimizer.param_groups[0]["lr"]))


def runner(work_dir, *, stop_at=None, resume=None, **kw):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.randn(40, 4, generator=g), torch.randint(0, 3, (40,), generator=g))
    model = Net()
    comps = {"lr": CosineAnnealingLrUpdater(by_epoch=False, min_lr=0.0), "steps": Steps()}
    if stop_at is not None:
        comps["stop"] = StopAt(stop_at)
    return Runner(model, torch.optim.SGD(model.parameters(), lr=0.4, momentum=0.9), data, components=comps,
                  batch_size=8, work_dir=work_dir, progress=False, log_interval=1, resume=resume, **kw)


def test_lr_follows_every_batch_and_steps_close_windows_epochs_and_the_run(tmp_path):
    """5 batches per epoch, grad_accum=2, max_iters=8: windows (0,1) (2,3) (4) | (5,6) (7).
    The step at iteration k uses the lr of iteration k: 0.4·(1 + cos(πk/8))/2."""
    r = runner(tmp_path, max_iters=8, grad_accum=2)
    r.run()
    r.sinks[0].close()
    lr = [0.4 * (1 + math.cos(math.pi * k / 8)) / 2 for k in range(8)]
    assert [k for k, _ in r.components["steps"].steps] == [1, 3, 4, 6, 7]
    assert r.components["steps"].steps == [(k, pytest.approx(lr[k], rel=1e-12)) for k in (1, 3, 4, 6, 7)]
    logged = {row["step"]: row["lr/pg0"] for row in read_jsonl(tmp_path / "metrics.jsonl") if "lr/pg0" in row}
    assert logged == {k: pytest.approx(lr[k], rel=1e-12) for k in range(8)}   # every batch, stepped or not


def test_iteration_checkpoint_waits_for_the_window_and_resume_is_exact(tmp_path):
    """checkpoint_interval_iters=3, grad_accum=2, 5 batches per epoch, 15 iterations: due after
    3, 6, 9, 12 iterations; taken when the window closes: after 4, 7, 9, 12 (all 7 periodic files
    kept: by default only the newest iter_*.pt is)."""
    full = runner(tmp_path / "full", max_epochs=3, grad_accum=2, checkpoint_interval_iters=3,
                  checkpoint={"max_keep": 7})
    full.run()
    names = sorted(p.name for p in (tmp_path / "full" / "checkpoints").glob("*.pt"))
    assert names == sorted(["last.pt", "epoch_1.pt", "epoch_2.pt", "epoch_3.pt",
                            "iter_4.pt", "iter_7.pt", "iter_9.pt", "iter_12.pt"])
    cut = tmp_path / "cut"
    with pytest.raises(KeyboardInterrupt):
        runner(cut, max_epochs=3, grad_accum=2, checkpoint_interval_iters=3, stop_at=8).run()
    assert ckpt_io.load(cut / "checkpoints" / "last.pt")["counters"] == {"epoch": 1, "iter": 7, "inner_iter": 2}
    resumed = runner(cut, max_epochs=3, grad_accum=2, checkpoint_interval_iters=3, resume="auto")
    resumed.run()
    assert resumed.components["steps"].steps == [s for s in full.components["steps"].steps if s[0] >= 7]
    for a, b in zip(full.unwrapped_model.parameters(), resumed.unwrapped_model.parameters(), strict=True):
        assert torch.equal(a, b)


def _digits_train_size():
    from sklearn.datasets import load_digits

    n = len(load_digits().target)
    return n - round(0.2 * n)          # trainkit.tasks.digits.digits_data(val_fraction=0.2)


@pytest.mark.parametrize("world, drop_last", [(1, False), (2, False), (3, False), (2, True), (4, True)])
def test_preview_iters_per_epoch_per_process(make_cfg, world, drop_last):
    """Each process's sampler takes len(train) // world samples per epoch, then batches them."""
    cfg = make_cfg("+recipe=digits_cosine_warmup", f"trainer.drop_last={drop_last}")
    per_rank = _digits_train_size() // world
    expected = per_rank // 64 if drop_last else math.ceil(per_rank / 64)
    assert iters_per_epoch_from_config(cfg, world) == expected
    assert (_digits_train_size(), world, drop_last, expected) in {
        (1438, 1, False, 23), (1438, 2, False, 12), (1438, 3, False, 8), (1438, 2, True, 11), (1438, 4, True, 5)}


@pytest.mark.parametrize("args, match", [
    (["num_processes=0"], r"num_processes='0' is not valid; allowed: an integer >= 1"),
    (["num_processes=two"], r"num_processes='two' is not valid"),
    (["num_processes=2", "iters_per_epoch=5"], "give iters_per_epoch or num_processes, not both"),
])
def test_preview_num_processes_errors(tmp_path, args, match):
    with pytest.raises(ValueError, match=match):
        schedule_main(["+recipe=digits_cosine_warmup", f"out={tmp_path}", *args])


@pytest.mark.parametrize("name, processes, machines", [("local_2proc", 2, 1), ("multinode_2x8gpu", 16, 2),
                                                      ("multinode_2x1", 2, 2)])
def test_shipped_accelerate_configs_load(name, processes, machines):
    """accelerate's own loader accepts them (an unknown or misspelt key is a TypeError), and
    they select the launcher that starts several processes (MULTI_CPU would start one)."""
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.utils import DistributedType

    from trainkit.config import ROOT

    cfg = load_config_from_file(str(ROOT / "scripts" / "accelerate" / f"{name}.yaml"))
    assert cfg.distributed_type == DistributedType.MULTI_GPU
    assert (cfg.num_processes, cfg.num_machines, cfg.use_cpu) == (processes, machines, False)
