"""Resume compatibility: which checkpoint a run may continue, what a config difference does, and
damaged checkpoints (see trainkit/core/resume.py for the rules)."""
import logging
import math
import os

import pytest
import torch

from trainkit.build import resolved
from trainkit.cli.train import run_config
from trainkit.core import checkpoint as ckpt_io
from trainkit.core import resume as resume_io
from trainkit.core.checkpoint import CheckpointError
from trainkit.core.record import read_jsonl
from trainkit.core.runner import Runner

SMALL = ["+recipe=digits_baseline", "model.width=8", "trainer.max_epochs=2", "trainer.progress=false", "logger=none"]


@pytest.fixture
def interrupt(monkeypatch):
    """``interrupt(at)``: the next run raises KeyboardInterrupt (as Ctrl-C) before iteration ``at``."""
    step = Runner._train_step

    def arm(at):
        def train_step(self, batch, sync):
            if self.iter == at:
                monkeypatch.setattr(Runner, "_train_step", step)
                raise KeyboardInterrupt
            return step(self, batch, sync)
        monkeypatch.setattr(Runner, "_train_step", train_step)
    return arm


def test_every_checkpoint_stores_the_resolved_config(make_cfg, tmp_path):
    cfg = make_cfg(*SMALL, "trainer.checkpoint_interval_iters=20")
    run_config(cfg, tmp_path)
    files = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert files == ["epoch_1.pt", "epoch_2.pt", "iter_40.pt", "last.pt"]   # the newest iter_*.pt is kept
    for name in files:
        state = ckpt_io.load(tmp_path / "checkpoints" / name)
        assert state["config"] == resolved(cfg) and state["config"]["model"]["width"] == 8
        assert state["record"]["rows"] == len(read_jsonl(tmp_path / "metrics.jsonl")[:state["record"]["rows"]])


def test_auto_never_adopts_a_longer_or_different_sibling_nor_touches_its_files(make_cfg, tmp_path, caplog):
    """The issue's case: a 1-epoch run must not adopt a finished 2-epoch sibling (and exit 0 without
    training), nor one with another model; their config.yaml stays as it was."""
    outputs = tmp_path / "outputs" / "digits_baseline"
    run_config(make_cfg(*SMALL), outputs / "t1")
    run_config(make_cfg(*SMALL, "model.width=4", "trainer.max_epochs=1"), outputs / "t2")
    before = {d: (outputs / d / "config.yaml").read_bytes() for d in ("t1", "t2")}
    mtimes = {p: p.stat().st_mtime_ns for p in outputs.rglob("*.pt")}
    with caplog.at_level(logging.INFO, logger="trainkit"):
        run_config(make_cfg(*SMALL, "trainer.max_epochs=1", "trainer.resume=auto"), outputs / "t3")
    assert "trainer.max_epochs=1 is shorter than the checkpoint's run (2)" in caplog.text
    assert "model.width: 8 -> 4" in caplog.text or "model.width: 4 -> 8" in caplog.text
    assert ckpt_io.load(outputs / "t3" / "checkpoints" / "last.pt")["counters"]["iter"] == 23   # trained afresh
    assert {d: (outputs / d / "config.yaml").read_bytes() for d in ("t1", "t2")} == before
    assert not list(outputs.glob("t[12]/config.resume-*"))
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes


def test_auto_continues_a_compatible_sibling_says_so_and_keeps_its_config(make_cfg, tmp_path, caplog, interrupt):
    outputs = tmp_path / "outputs" / "digits_baseline"
    interrupt(30)
    with pytest.raises(KeyboardInterrupt):
        run_config(make_cfg(*SMALL), outputs / "t1")
    first = (outputs / "t1" / "config.yaml").read_text()
    with caplog.at_level(logging.INFO, logger="trainkit"):
        run_config(make_cfg(*SMALL, "trainer.max_epochs=3", "trainer.resume=auto"), outputs / "t2")
    assert f"continuing the run in {outputs / 't1'} from last.pt" in caplog.text
    assert "trainer.max_epochs: 2 -> 3 (the run is extended" in caplog.text
    assert ckpt_io.load(outputs / "t1" / "checkpoints" / "last.pt")["counters"]["iter"] == 69
    assert (outputs / "t1" / "config.yaml").read_text() == first
    assert "max_epochs: 3" in (outputs / "t1" / "config.resume-1.yaml").read_text()
    assert not (outputs / "t2" / "checkpoints").exists()


def test_a_changed_schedule_is_named_and_the_current_config_wins(make_cfg, tmp_path, caplog, interrupt):
    """mmengine issue 1565 keeps the old scheduler silently; here the warning names the key and the
    new values apply from the resumed iteration (23, the epoch checkpoint): mmcv's cosine
    lr = t + (base - t)(1 + cos(pi i / T)) / 2, t = ratio x base, times the linear warmup factor
    1 - (1 - i / 50)(1 - 0.1) for i < 50."""
    common = ["+recipe=digits_cosine_warmup", "model.width=8", "trainer.max_epochs=3", "trainer.progress=false",
              "logger=none", "trainer.log_interval=1"]
    interrupt(30)
    with pytest.raises(KeyboardInterrupt):
        run_config(make_cfg(*common), tmp_path)
    with caplog.at_level(logging.WARNING, logger="trainkit"):
        run_config(make_cfg(*common, "components.lr.min_lr_ratio=0.5", "trainer.resume=auto"), tmp_path)
    assert "the schedule changed, components.lr.min_lr_ratio: 0.01 -> 0.5; the current config wins" in caplog.text
    rows = {r["step"]: r for r in read_jsonl(tmp_path / "metrics.jsonl") if "lr/head" in r}
    total = 69   # 3 epochs x 23 iterations
    for i in (20, 22, 23, 30, 60, 68):   # before the resume: the old target 0.01 x base; after it: 0.5 x base
        ratio = 0.01 if i < 23 else 0.5
        expected = 0.1 * ratio + 0.5 * (0.1 - 0.1 * ratio) * (1 + math.cos(math.pi * i / total))
        if i < 50:
            expected *= 1 - (1 - i / 50) * (1 - 0.1)
        assert rows[i]["lr/head"] == pytest.approx(expected, rel=1e-12), i


@pytest.mark.parametrize("override, reason", [
    ("optimizer.lr=0.1", "optimizer.lr: 0.05 -> 0.1"),
    ("model.width=16", "model.width: 8 -> 16"),
    ("trainer.batch_size=32", "trainer.batch_size: 64 -> 32"),
    ("seed=1", "seed: 0 -> 1"),
    ("trainer.max_epochs=1", "trainer.max_epochs=1 is shorter than the checkpoint's run (2)"),
    ("+components.lr={_target_:trainkit.schedules.FixedLrUpdater}", "components.lr._target_: (absent) -> "),
])
def test_an_explicit_resume_of_an_incompatible_checkpoint_names_the_difference(make_cfg, tmp_path, override, reason):
    run_config(make_cfg(*SMALL, "trainer.max_epochs=2"), tmp_path / "a")
    path = tmp_path / "a" / "checkpoints" / "epoch_1.pt"
    with pytest.raises(CheckpointError, match="was written by a run this one cannot continue") as info:
        run_config(make_cfg(*SMALL, override, f"trainer.resume={path}"), tmp_path / "b")
    assert reason in str(info.value) and str(path) in str(info.value)


def truncate(p):
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])


def empty(p):
    p.write_bytes(b"")


def garbage(p):
    p.write_bytes(os.urandom(4096))


@pytest.mark.parametrize("damage", [truncate, empty, garbage])
def test_a_damaged_last_pt_names_the_file_and_auto_falls_back_to_the_newest_intact(make_cfg, tmp_path, caplog,
                                                                                   interrupt, damage):
    common = [*SMALL, "trainer.checkpoint_interval_iters=10", "trainer.log_interval=1"]
    run_config(make_cfg(*common), tmp_path / "full")
    run = tmp_path / "run"
    interrupt(33)
    with pytest.raises(KeyboardInterrupt):
        run_config(make_cfg(*common), run)
    last = run / "checkpoints" / "last.pt"
    assert ckpt_io.load(last)["counters"]["iter"] == 30
    damage(last)
    with pytest.raises(CheckpointError, match=rf"checkpoint {last} .*truncated or corrupt.*trainer.resume=auto falls "
                                              "back to the newest intact one"):
        run_config(make_cfg(*common, f"trainer.resume={last}"), run)
    with caplog.at_level(logging.WARNING, logger="trainkit"):
        run_config(make_cfg(*common, "trainer.resume=auto"), run)
    assert f"trainer.resume=auto: {last} " in caplog.text and "(truncated or corrupt); falling back to " \
        f"{run / 'checkpoints' / 'iter_30.pt'} (iter 30), the newest intact checkpoint" in caplog.text
    assert read_jsonl(run / "metrics.jsonl") == read_jsonl(tmp_path / "full" / "metrics.jsonl")
    assert ckpt_io.load(last)["counters"]["iter"] == 46


def test_auto_refuses_a_directory_whose_checkpoints_are_all_damaged_or_another_runs(make_cfg, tmp_path):
    run_config(make_cfg(*SMALL, "trainer.max_epochs=1"), tmp_path)
    for p in (tmp_path / "checkpoints").iterdir():
        empty(p)
    with pytest.raises(CheckpointError, match=r"none of which this run can continue from: last.pt is empty.*"
                                              r"Starting afresh there would overwrite them"):
        run_config(make_cfg(*SMALL, "trainer.resume=auto"), tmp_path)
    other = tmp_path / "other"
    run_config(make_cfg(*SMALL, "trainer.max_epochs=1"), other)
    with pytest.raises(CheckpointError, match=r"belongs to another configuration \(model.width: 8 -> 4\)"):
        run_config(make_cfg(*SMALL, "model.width=4", "trainer.resume=auto"), other)


def test_a_fresh_start_never_overwrites_an_earlier_runs_checkpoints(make_cfg, tmp_path):
    run_config(make_cfg(*SMALL, "trainer.max_epochs=1"), tmp_path)
    before = (tmp_path / "checkpoints" / "last.pt").read_bytes()
    with pytest.raises(CheckpointError, match=r"already holds checkpoints \(.*last.pt.*\) and this run starts "
                                              r"afresh \(trainer.resume=None\)"):
        run_config(make_cfg(*SMALL, "trainer.max_epochs=1"), tmp_path)
    assert (tmp_path / "checkpoints" / "last.pt").read_bytes() == before


def test_a_checkpoint_of_another_model_names_the_file_and_the_keys(tmp_path):
    from torch.utils.data import TensorDataset

    ds = TensorDataset(torch.randn(16, 4), torch.randint(0, 2, (16,)))

    class M(torch.nn.Module):
        def __init__(self, width):
            super().__init__()
            self.lin = torch.nn.Linear(4, width)

        def forward(self, batch):
            return {"loss": self.lin(batch[0]).pow(2).mean()}

    def runner(width, resume=None):
        m = M(width)
        return Runner(m, torch.optim.SGD(m.parameters(), lr=0.1), ds, max_epochs=1, batch_size=8,
                      work_dir=tmp_path / f"w{width}", progress=False, resume=resume)

    runner(3).run()
    ck = tmp_path / "w3" / "checkpoints" / "last.pt"
    with pytest.raises(CheckpointError, match=rf"{ck} holds another model \(lin.weight: shape \(3, 4\) in the "
                                              r"checkpoint, \(5, 4\) here"):
        runner(5, resume=str(ck)).run()


def test_compare_classifies_every_kind_of_difference():
    base = {"name": "r", "seed": 0, "trainer": {"max_epochs": 8, "max_iters": None, "log_interval": 10,
                                                "batch_size": 64, "resume": None},
            "model": {"_target_": "M", "width": 8}, "optimizer": {"_target_": "SGD", "lr": 0.1},
            "components": {"lr": {"_target_": "Cos", "min_lr": 0.0}}, "logger": {"wandb": None}, "evaluator": None}

    def changed(**edits):
        import copy

        cfg = copy.deepcopy(base)
        for key, value in edits.items():
            node, *path = key.split("__")
            target = cfg[node]
            for p in path[:-1]:
                target = target[p]
            if path:
                target[path[-1]] = value
            else:
                cfg[node] = value
        return resume_io.compare(base, cfg)

    assert changed(trainer__max_epochs=12).compatible and changed(trainer__max_epochs=12).of("length")
    assert not changed(trainer__max_epochs=4).compatible
    assert not changed(trainer__max_epochs=None, trainer__max_iters=100).compatible    # another unit
    assert changed(components__lr__min_lr=0.01).of("schedule") and changed(components__lr__min_lr=0.01).compatible
    assert not changed(components__lr___target_="Step").compatible
    assert not changed(components={}).compatible
    assert changed(trainer__log_interval=1).compatible and changed(logger={"wandb": {"mode": "online"}}).compatible
    assert changed(evaluator={"_target_": "E"}).compatible
    for key in ("name", "seed", "model__width", "optimizer__lr", "trainer__batch_size"):
        assert not changed(**{key: 3}).compatible, key
    assert resume_io.compare(None, base).compatible   # nothing stored: nothing to compare (own directory only)
