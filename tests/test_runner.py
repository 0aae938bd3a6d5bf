"""Runner: resume exactness, atomic checkpoints, non-finite losses, accumulation."""
import math
import os

import pytest
import torch
from torch.utils.data import TensorDataset

from trainkit.core import checkpoint as ckpt_io
from trainkit.core.events import Priority
from trainkit.core.record import read_jsonl
from trainkit.core.runner import NonFiniteLossError, Runner
from helpers import StopAt


class Net(torch.nn.Module):
    """Two named parts and dropout, so resume must restore the global RNG too."""

    def __init__(self):
        super().__init__()
        self.backbone = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Dropout(0.2))
        self.head = torch.nn.Linear(8, 3)

    def forward(self, batch):
        x, y = batch
        return {"loss": torch.nn.functional.cross_entropy(self.head(self.backbone(x)), y)}


class HalvingLr:
    """Test-local schedule: lr = initial_lr * 0.5 ** (iter // 5), set before each iteration."""

    priority = Priority.VERY_HIGH

    def __init__(self):
        self.calls = 0

    def before_run(self, runner):
        for g in runner.optimizer.param_groups:
            g.setdefault("initial_lr", g["lr"])

    def before_iter(self, runner):
        self.calls += 1
        for g in runner.optimizer.param_groups:
            g["lr"] = g["initial_lr"] * 0.5 ** (runner.iter // 5)

    def state_dict(self):
        return {"calls": self.calls}

    def load_state_dict(self, sd):
        self.calls = sd["calls"]


def data(n=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    return TensorDataset(torch.randn(n, 4, generator=g), torch.randint(0, 3, (n,), generator=g))


def make_runner(work_dir, stop_at=None, resume=None, **kw):
    torch.manual_seed(0)
    model = Net()
    opt = torch.optim.SGD([{"name": "backbone", "params": model.backbone.parameters(), "lr": 0.1},
                           {"name": "head", "params": model.head.parameters(), "lr": 0.3}], momentum=0.9)
    comps = {"lr": HalvingLr()}
    if stop_at is not None:
        comps["stop"] = StopAt(stop_at)
    args = dict(max_epochs=4, batch_size=8, work_dir=work_dir, progress=False, log_interval=1,
                resume=resume, val_data=data(12, 1), evaluator=lambda r: {"val/x": 0.0})
    args.update(kw)
    return Runner(model, opt, data(), components=comps, **args)


def lr_rows(path):
    return {r["step"]: (r["lr/backbone"], r["lr/head"]) for r in read_jsonl(path) if "lr/head" in r}


@pytest.mark.parametrize("ckpt_iters, stop_at", [(None, 13), (3, 13), (None, 10)])
def test_resume_after_interruption_is_exact(tmp_path, ckpt_iters, stop_at):
    full = make_runner(tmp_path / "full", checkpoint_interval_iters=ckpt_iters)
    full.run()
    full.sinks[0].close()

    run_dir = tmp_path / "cut"
    with pytest.raises(KeyboardInterrupt):
        make_runner(run_dir, stop_at=stop_at, checkpoint_interval_iters=ckpt_iters).run()
    saved = ckpt_io.load(run_dir / "checkpoints" / "last.pt")["counters"]["iter"]
    expected_resume = (stop_at // 3) * 3 if ckpt_iters else (stop_at // 5) * 5
    assert saved == expected_resume   # 5 iterations per epoch; mid-epoch checkpoints every 3

    resumed = make_runner(run_dir, resume="auto", checkpoint_interval_iters=ckpt_iters)
    resumed.run()
    resumed.sinks[0].close()
    assert resumed.iter == full.iter == 20
    for a, b in zip(full.unwrapped_model.state_dict().values(), resumed.unwrapped_model.state_dict().values(),
                    strict=True):
        assert torch.equal(a, b)
    full_lrs, cut_lrs = lr_rows(tmp_path / "full" / "metrics.jsonl"), lr_rows(run_dir / "metrics.jsonl")
    assert sorted(cut_lrs) == list(range(20))      # one row per iteration, superseded rows moved out
    assert full_lrs == cut_lrs
    assert full_lrs[7] == (0.1 * 0.5, 0.3 * 0.5)   # the schedule itself: iter 7 -> one halving
    assert resumed.components["lr"].calls == full.components["lr"].calls == 20


def test_resume_explicit_path_and_missing(tmp_path):
    make_runner(tmp_path / "a", max_epochs=1).run()
    with pytest.raises(FileNotFoundError, match="trainer.resume"):
        make_runner(tmp_path / "b", resume=str(tmp_path / "nope.pt")).run()
    r = make_runner(tmp_path / "b", resume=str(tmp_path / "a" / "checkpoints" / "last.pt"), max_epochs=2)
    r.run()
    assert r.iter == 10


def test_crash_while_writing_checkpoint_keeps_previous(tmp_path, monkeypatch):
    runner = make_runner(tmp_path, max_epochs=1)
    runner.run()
    last = tmp_path / "checkpoints" / "last.pt"
    before = last.read_bytes()

    real_save = torch.save

    def dying_save(obj, f, *a, **k):
        f.write(b"partial garbage")
        raise OSError("disk died mid-write")

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(OSError, match="disk died"):
        ckpt_io.save_atomic({"x": 1}, last)
    monkeypatch.setattr(torch, "save", real_save)
    assert last.read_bytes() == before
    assert ckpt_io.load(last)["counters"]["iter"] == 5
    assert [p.name for p in last.parent.iterdir() if p.name.endswith(".tmp")] == []


class BlowUp:
    def __init__(self, at):
        self.at = at

    def before_iter(self, runner):
        if runner.iter == self.at:
            runner.optimizer.param_groups[0]["lr"] = float("inf")


class NanNet(Net):
    def forward(self, batch):
        out = super().forward(batch)
        return {"loss": out["loss"] * self.backbone[0].weight.sum() / self.backbone[0].weight.sum().detach()}


def test_nonfinite_loss_errors_with_iteration_and_lrs(tmp_path):
    runner = make_runner(tmp_path, max_epochs=3)
    runner.components["boom"] = comp = BlowUp(7)   # inf lr at iter 7 -> non-finite weights -> NaN loss at 8
    runner.bus.register(comp, "boom")
    with pytest.raises(NonFiniteLossError, match=r"iter 8 .*'backbone'.*trainer.nonfinite=skip"):
        runner.run()
    ck = ckpt_io.load(tmp_path / "checkpoints" / "last.pt")
    assert ck["counters"]["iter"] == 5
    assert all(torch.isfinite(v).all() for v in ck["model"].values() if v.is_floating_point())


def test_nonfinite_skip_mode_skips_steps(tmp_path):
    class NanAt:
        def before_iter(self, runner):
            runner._poison = runner.iter in (2, 3)

    torch.manual_seed(0)

    class Poisoned(Net):
        def forward(self, batch):
            out = super().forward(batch)
            if getattr(self, "runner", None) is not None and self.runner._poison:
                out["loss"] = out["loss"] * float("nan")
            return out

    model = Poisoned()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    runner = Runner(model, opt, data(), components={"nan": NanAt()}, max_epochs=1, batch_size=8,
                    work_dir=tmp_path, progress=False, nonfinite="skip")
    model.runner = runner
    runner.run()
    assert runner.skipped_steps == 2
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_gradient_accumulation_matches_big_batch(tmp_path):
    """Two accumulated half batches (mean losses / 2) give the big batch's update."""
    def train(batch_size, accum):
        torch.manual_seed(0)
        model = torch.nn.Linear(4, 3)
        net = type("M", (torch.nn.Module,), {})()
        net.lin = model
        net.forward = lambda batch: {"loss": torch.nn.functional.cross_entropy(model(batch[0]), batch[1])}
        steps = []
        r = Runner(net, torch.optim.SGD(model.parameters(), lr=0.5), data(), max_epochs=2,
                   batch_size=batch_size, grad_accum=accum, work_dir=tmp_path / f"{batch_size}",
                   progress=False,
                   components={"count": type("C", (), {"after_step": lambda s, r: steps.append(r.iter)})()})
        # the same samples per optimizer step: fix the order (no shuffle difference) via the sampler
        r.train_loader.batch_sampler.shuffle = False
        r.run()
        return model.weight.detach().clone(), steps

    w_big, steps_big = train(8, 1)
    w_acc, steps_acc = train(4, 2)
    assert steps_big == list(range(10))
    assert steps_acc == [1, 3, 5, 7, 9, 11, 13, 15, 17, 19]
    assert torch.allclose(w_big, w_acc, atol=1e-6)


def test_bad_arguments_are_named(tmp_path):
    with pytest.raises(ValueError, match="exactly one of trainer.max_epochs and trainer.max_iters"):
        make_runner(tmp_path, max_epochs=None)
    with pytest.raises(ValueError, match=r"trainer.nonfinite='explode'.*'error', 'skip', 'ignore'"):
        make_runner(tmp_path, nonfinite="explode")
    with pytest.raises(ValueError, match=r"trainer.grad_accum=0 is not valid; allowed: an integer >= 1"):
        make_runner(tmp_path, grad_accum=0)


def test_iteration_based_run_stops_mid_epoch_and_validates(tmp_path):
    vals = []
    r = make_runner(tmp_path, max_epochs=None, max_iters=12,
                    evaluator=lambda r: vals.append(r.iter) or {"val/x": float(r.iter)})
    r.run()
    assert r.iter == 12 and r.max_epochs == math.ceil(12 / 5)
    assert vals == [5, 10, 12]
    assert ckpt_io.load(tmp_path / "checkpoints" / "last.pt")["counters"] == {"epoch": 2, "iter": 12, "inner_iter": 2}


def test_find_resume_auto_candidates(tmp_path):
    def touch(p):
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")
        return p

    old = touch(tmp_path / "outputs/r/t1/checkpoints/last.pt")
    os.utime(old, (1, 1))
    new = touch(tmp_path / "outputs/r/t2/checkpoints/last.pt")
    assert ckpt_io.find_resume("auto", tmp_path / "outputs/r/t3") == new
    assert ckpt_io.find_resume(None, tmp_path / "outputs/r/t3") is None
    assert ckpt_io.find_resume("auto", tmp_path / "outputs/other/t1") is None
    # multirun: the same job subdirectory of an earlier sweep, never another job's
    a = touch(tmp_path / "multirun/r/s1/lr=0.1/checkpoints/last.pt")
    touch(tmp_path / "multirun/r/s1/lr=0.2/checkpoints/last.pt")
    assert ckpt_io.find_resume("auto", tmp_path / "multirun/r/s2/lr=0.1", multirun=True) == a
    assert ckpt_io.find_resume("auto", tmp_path / "multirun/r/s2/lr=0.3", multirun=True) is None
