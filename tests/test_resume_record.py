"""The run's record across kills and resumes: metrics.jsonl row for row the uninterrupted run's,
no duplicated rows after a kill before the first checkpoint, no stale temporary checkpoints,
strict JSON, and the W&B rows of a resumed run."""
import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.data import TensorDataset

from helpers import same_state
from trainkit.core import checkpoint as ckpt_io
from trainkit.core.record import JsonlSink, read_jsonl
from trainkit.core.runner import Runner

ROOT = Path(__file__).resolve().parent.parent


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Dropout(0.2),
                                        torch.nn.Linear(8, 3))

    def forward(self, batch):
        x, y = batch
        return {"loss": torch.nn.functional.cross_entropy(self.body(x), y)}


def data(n, seed):
    g = torch.Generator().manual_seed(seed)
    return TensorDataset(torch.randn(n, 4, generator=g), torch.randint(0, 3, (n,), generator=g))


def mean_loss(runner):
    with torch.no_grad():
        x, y = runner.val_loader.dataset.tensors
        return {"val/loss": float(runner.unwrapped_model((x, y))["loss"])}


def make(work_dir, **kw):
    torch.manual_seed(0)
    model = Net()
    args = dict(max_epochs=2, batch_size=8, work_dir=work_dir, progress=False, log_interval=2,
                val_data=data(12, 1), evaluator=mean_loss)
    args.update(kw)
    return Runner(model, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9), data(40, 0), **args)


def train(work_dir, **kw):
    r = make(work_dir, **kw)
    try:
        r.run()
    finally:
        for s in r.sinks:
            s.close()
    return r


def lines(path):
    return Path(path).read_text().splitlines()


def test_epoch_end_resume_keeps_that_epochs_validation_row(tmp_path):
    """The val row of epoch 1 is logged at step 5 (iterations done) before epoch_1.pt (iter 5) is
    written; resuming from epoch_1.pt must keep it, and not log it again."""
    train(tmp_path / "full")
    full = lines(tmp_path / "full" / "metrics.jsonl")
    assert sum('"val/loss"' in line for line in full) == 2
    cut = tmp_path / "cut"
    shutil.copytree(tmp_path / "full", cut)
    train(cut, resume=str(cut / "checkpoints" / "epoch_1.pt"))
    assert lines(cut / "metrics.jsonl") == full
    moved = lines(cut / "metrics.superseded.jsonl")
    assert moved == full[len(full) - len(moved):] and len(moved) == 4   # epoch 2: rows at steps 5, 7, 9 and its val row


def test_fresh_start_moves_the_rows_of_an_attempt_without_checkpoint(tmp_path, caplog, monkeypatch):
    train(tmp_path / "full")
    run = tmp_path / "run"
    step = Runner._train_step

    def killed_at_3(self, batch, sync):
        if self.iter == 3:
            raise KeyboardInterrupt
        return step(self, batch, sync)

    monkeypatch.setattr(Runner, "_train_step", killed_at_3)
    with pytest.raises(KeyboardInterrupt):
        train(run, resume="auto")
    monkeypatch.setattr(Runner, "_train_step", step)
    earlier = lines(run / "metrics.jsonl")
    assert [json.loads(x)["step"] for x in earlier] == [1]           # log_interval 2: row of iteration 1
    assert not (run / "checkpoints").exists()
    with caplog.at_level(logging.WARNING, logger="trainkit"):
        train(run, resume="auto")
    assert lines(run / "metrics.jsonl") == lines(tmp_path / "full" / "metrics.jsonl")
    assert lines(run / "metrics.superseded.jsonl") == earlier
    assert "held 1 rows of an earlier attempt that wrote no checkpoint" in caplog.text


def test_stale_temporary_checkpoints_are_removed_once_the_resume_checkpoint_is_chosen(tmp_path, caplog):
    run = tmp_path / "run"
    train(run, max_epochs=1)
    stale = run / "checkpoints" / ".last.pt.k2x9f.tmp"   # what a write killed mid-way leaves
    stale.write_bytes(b"PK\x03\x04 half a checkpoint")
    with caplog.at_level(logging.INFO, logger="trainkit"):
        r = train(run, resume="auto", max_epochs=2)
    assert r.iter == 10 and not stale.exists()
    assert "removed 1 temporary checkpoint file(s)" in caplog.text
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["epoch_1.pt", "epoch_2.pt", "last.pt"]


def test_non_finite_values_are_written_as_null(tmp_path):
    sink = JsonlSink(tmp_path / "metrics.jsonl")
    sink.log({"loss": float("nan"), "plateau/best": float("inf"), "lr/pg0": 0.1,
              "t": torch.tensor(float("-inf"))}, 3)
    sink.close()

    def strict(token):
        raise ValueError(f"not JSON: {token}")

    row = json.loads((tmp_path / "metrics.jsonl").read_text(), parse_constant=strict)
    assert row == {"step": 3, "loss": None, "plateau/best": None, "lr/pg0": 0.1, "t": None}


def test_a_kill_during_a_row_write_leaves_a_cut_line_that_resume_moves_aside(tmp_path):
    train(tmp_path / "full")
    run = tmp_path / "run"
    train(run, max_epochs=1)
    with open(run / "metrics.jsonl", "a") as f:   # rows of a longer attempt, the last cut by a kill
        f.write('{"step": 5, "epoch": 1, "loss": 0.5}\n{"step": 6, "ep')
    train(run, resume="auto")
    assert lines(run / "metrics.jsonl") == lines(tmp_path / "full" / "metrics.jsonl")
    assert lines(run / "metrics.superseded.jsonl") == ['{"step": 5, "epoch": 1, "loss": 0.5}', '{"step": 6, "ep']


# --------------------------------------------------------------- kill -9 at random moments
KILL_RECIPES = {   # the smallest settings that still exercise each recipe's state
    "schedule_iter_ckpts": (10, ["+recipe=digits_cosine_warmup", "trainer.max_epochs=3", "model.width=8",
                                 "trainer.checkpoint_interval_iters=10", "trainer.log_interval=3"]),
    "plateau": (23, ["+recipe=restoration_plateau", "trainer.max_epochs=4", "trainer.batch_size=64",
                     "model.width=8", "model.depth=2", "components.warmup.warmup_iters=10",
                     "components.plateau.patience=0", "components.plateau.cooldown=0",
                     "components.plateau.threshold=0.5", "trainer.log_interval=5"]),
    "ema": (23, ["+recipe=byol", "trainer.max_epochs=3", "trainer.val_interval=1", "model.width=8",
                 "model.hidden=32", "model.dim=16", "trainer.log_interval=5"]),
    "grad_accum": (9, ["+recipe=digits_baseline", "trainer.max_epochs=3", "model.width=8", "trainer.grad_accum=3",
                       "trainer.checkpoint_interval_iters=7", "trainer.log_interval=2"]),
}


@pytest.mark.slow
def test_kill_9_at_seeded_moments_then_resume_equals_the_uninterrupted_run(tmp_path):
    """Each recipe: an uninterrupted run, and a run killed (SIGKILL) before its first checkpoint,
    inside a checkpoint write, right after an epoch checkpoint and between saves, resumed with
    trainer.resume=auto after each kill. metrics.jsonl must be the same file, line for line, and
    last.pt the same state. Forked children of one driver (tests/kill_probe.py) keep it fast."""
    specs = []
    for seed, (name, (first_save, overrides)) in enumerate(KILL_RECIPES.items()):
        spec = tmp_path / f"{name}.json"
        spec.write_text(json.dumps({"out": str(tmp_path / name), "seed": seed, "first_save": first_save,
                                    "overrides": overrides}))
        specs.append(spec)
    env_path = f"{ROOT}:{ROOT / 'tests'}"
    out = subprocess.run([sys.executable, str(ROOT / "tests" / "kill_probe.py"), *map(str, specs)],
                         env={"PYTHONPATH": env_path, "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    for name in KILL_RECIPES:
        full, cut = tmp_path / name / "full" / "run", tmp_path / name / "cut" / "run"
        kills = json.loads((tmp_path / name / "kills.json").read_text())
        assert [k["outcome"] for k in kills] == ["killed by signal 9"] * 4 + ["finished"], (name, kills)
        assert kills[1]["resumed_at"] == 0            # killed before the first checkpoint: a fresh start
        assert lines(cut / "metrics.jsonl") == lines(full / "metrics.jsonl"), name
        a, b = ckpt_io.load(full / "checkpoints" / "last.pt"), ckpt_io.load(cut / "checkpoints" / "last.pt")
        assert b["config"]["trainer"].pop("resume") == "auto" and a["config"]["trainer"].pop("resume") is None
        same_state(a, b, name)
        assert not list((cut / "checkpoints").glob(".*.tmp")), name   # the cut write's file was removed
        assert (cut / "config.yaml").read_text() != "" and (cut / "config.resume-4.yaml").exists()
    plateau = ckpt_io.load(tmp_path / "plateau" / "full" / "run" / "checkpoints" / "last.pt")
    assert plateau["components"]["plateau"]["reductions"] >= 1   # the reducer's state really mattered


def test_a_resumed_wandb_segment_holds_exactly_the_rows_metrics_jsonl_gains(make_cfg, tmp_path, monkeypatch):
    """Offline W&B, interrupted after rows past its last checkpoint (an epoch end, whose validation
    row shares its step with the next iteration's): the resumed segment (same run id) logs exactly
    the rows metrics.jsonl gains after the resume; the interrupted one keeps what it logged, with
    the values the uninterrupted run has."""
    from wandb_file import read_run

    home = tmp_path / "wandb_home"
    for var in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        monkeypatch.setenv(var, str(home / var.lower()))
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")
    monkeypatch.delenv("WANDB_DIR", raising=False)
    common = ["+recipe=digits_baseline", "model.width=8", "trainer.max_epochs=2", "trainer.progress=false",
              "trainer.log_interval=4", "logger.wandb.mode=offline", "logger.wandb.log_planned_schedule=false"]
    from trainkit.cli.train import run_config

    step = Runner._train_step

    def interrupted_at_30(self, batch, sync):
        if self.iter == 30:
            raise KeyboardInterrupt
        return step(self, batch, sync)

    monkeypatch.setattr(Runner, "_train_step", interrupted_at_30)
    with pytest.raises(KeyboardInterrupt):
        run_config(make_cfg(*common), tmp_path)
    kept = ckpt_io.load(tmp_path / "checkpoints" / "last.pt")["record"]["rows"]
    monkeypatch.setattr(Runner, "_train_step", step)
    run_config(make_cfg(*common, "trainer.resume=auto"), tmp_path)

    def finished(path):
        import time

        deadline = time.monotonic() + 30
        while (run := read_run(path)).exit_code is None and time.monotonic() < deadline:
            time.sleep(0.05)
        return run

    files = sorted((tmp_path / "wandb").glob("offline-run-*/run-*.wandb"))
    first, second = (finished(f) for f in files)
    assert first.run_id == second.run_id and (first.exit_code, second.exit_code) == (255, 0)
    jsonl = read_jsonl(tmp_path / "metrics.jsonl")

    def merged(rows):   # W&B merges the rows of one step into one
        out = {}
        for r in rows:
            out.setdefault(r["step"], {}).update({k: v for k, v in r.items() if k not in ("step", "epoch")})
        return out

    def history(run):
        skip = ("epoch", "trainer/global_step")
        return {h["_step"]: {k: v for k, v in h.items() if not k.startswith("_") and k not in skip}
                for h in run.history}

    assert history(second) == merged(jsonl[kept:])
    assert set(history(first)) == {3, 7, 11, 15, 19, 22, 23, 27}   # 23: validation and iteration 23
    final = merged(jsonl)
    for s, row in history(first).items():   # what the interrupted segment logged: the final values
        assert all(final[s][k] == v for k, v in row.items()), s
