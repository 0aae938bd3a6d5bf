"""The byol recipe on 2 CPU processes (DDP over gloo), launched as a user would: torchrun,
and accelerate launch with the shipped config. It carries every schedule kind at once:
cosine lr with linear warmup by iteration, cosine Adam beta1, a plateau reducer on the
training loss, the BYOL target EMA, gradient accumulation 2 and iteration checkpoints.

One full run (W&B offline) is shared by the tests below; the resume test adds a run cut
by Ctrl-C on both ranks (torchrun) and its resume (accelerate launch). Expectations are
closed forms (mmcv's formulas), hand-counted tables, and equality across ranks.
"""
import csv
import glob
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from trainkit.core import checkpoint as ckpt_io
from trainkit.core.record import read_jsonl
from trainkit.cli.schedule import main as schedule_main
from wandb_file import read_run

from helpers import isolated_env

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow

# 1,438 training digits: 719 per process, batches of 64 -> 12 iterations per epoch per process.
IPE, EPOCHS = 12, 2
T = IPE * EPOCHS
BASE_LR, BETA1 = 0.002, 0.9
SCHEDULES = [
    "+recipe=byol", "model.width=8", "model.hidden=32", "model.dim=16", f"trainer.max_epochs={EPOCHS}",
    "trainer.grad_accum=2", "components.ema.update_interval=2", "trainer.val_interval=2",
    "trainer.log_interval=1", "trainer.checkpoint_interval_iters=5", "trainer.checkpoint.max_keep=6",   # keep all
    "+components.lr={_target_:trainkit.schedules.CosineAnnealingLrUpdater,by_epoch:false,"
    "min_lr_ratio:0.01,warmup:linear,warmup_iters:5,warmup_ratio:0.1}",
    "+components.momentum={_target_:trainkit.schedules.CosineAnnealingMomentumUpdater,"
    "by_epoch:false,min_momentum_ratio:0.95}",
]
PLATEAU = ("+components.plateau={_target_:trainkit.schedules.ReduceLR,by_epoch:false,interval:3,factor:0.5,"
           "patience:0,threshold_mode:abs,threshold:0.1}")


def trace(stop_at=None):
    extra = "" if stop_at is None else f",stop_at:{stop_at}"
    return f"+components.trace={{_target_:scale_probe.RankTrace{extra}}}"


def env_for(tmp):
    return isolated_env(tmp, ROOT)


def torchrun(tmp, *args):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "trainkit.train", "trainer.progress=false", *args]
    return subprocess.run(cmd, cwd=ROOT, env=env_for(tmp), capture_output=True, text=True, timeout=180)


def accelerate_launch(tmp, *args):
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
           str(ROOT / "scripts" / "accelerate" / "local_2proc.yaml"), "-m", "trainkit.train",
           "trainer.progress=false", *args]
    return subprocess.run(cmd, cwd=ROOT, env=env_for(tmp), capture_output=True, text=True, timeout=180)


def traces(run_dir):
    """Each rank's trace as {iter: row}; a resumed run's rows replace the cut run's."""
    out = []
    for r in (0, 1):
        rows = [json.loads(x) for x in (run_dir / f"trace_rank{r}.jsonl").read_text().splitlines()]
        out.append({row["iter"]: row for row in rows})
    return out


def shared(row):
    """What every rank must agree on (the loss is each rank's own)."""
    return {k: v for k, v in row.items() if k != "loss"}


@pytest.fixture
def full(byol_two_processes):
    """The uninterrupted run (tests/conftest.py: shared with tests/test_several_machines.py)."""
    return byol_two_processes


def expected_lr(k):
    """mmcv: CosineAnnealing(min_lr_ratio=0.01) by iteration, linear warmup over 5 iterations from 0.1."""
    regular = BASE_LR * 0.01 + 0.5 * (BASE_LR - BASE_LR * 0.01) * (1 + math.cos(math.pi * k / T))
    return regular * (1 - (1 - k / 5) * (1 - 0.1)) if k < 5 else regular


def expected_beta1(k):
    return BETA1 * 0.95 + 0.5 * (BETA1 - BETA1 * 0.95) * (1 + math.cos(math.pi * k / T))


def expected_ema_momentum(k):
    """mmselfsup 0.x: updated before iterations k with (k + 1) % 2 == 0, else the last value."""
    last = max((j for j in range(k + 1) if (j + 1) % 2 == 0), default=None)
    return 0.99 if last is None else 1 - (1 - 0.99) * (math.cos(math.pi * last / T) + 1) / 2


def test_every_rank_has_the_same_schedules_ema_and_weights(full):
    _, run = full
    t0, t1 = traces(run)
    assert sorted(t0) == sorted(t1) == list(range(T))        # 12 iterations per epoch per process
    assert [shared(t0[k]) for k in range(T)] == [shared(t1[k]) for k in range(T)]
    assert [t0[k]["loss"] for k in range(T)] != [t1[k]["loss"] for k in range(T)]   # different shards
    for k in range(T):
        assert t0[k]["scheduled_lr"][0] == pytest.approx(expected_lr(k), rel=1e-12)
        assert t0[k]["momentum"][0] == pytest.approx(expected_beta1(k), rel=1e-12)
        assert t0[k]["ema_momentum"] == pytest.approx(expected_ema_momentum(k), rel=1e-12)
        assert t0[k]["stepped"] == ((k % IPE + 1) % 2 == 0)     # windows of 2 inside each epoch
    f0, f1 = (torch.load(run / f"final_rank{r}.pt") for r in (0, 1))
    assert f0["params"].keys() == f1["params"].keys() and f0["target"].keys() == f1["target"].keys()
    assert all(torch.equal(f0["params"][n], f1["params"][n]) for n in f0["params"])
    assert all(torch.equal(f0["target"][n], f1["target"][n]) for n in f0["target"])   # the EMA target
    assert not all(torch.equal(f0["target"][n], f0["params"]["online_net." + n]) for n in f0["target"])


def test_plateau_consumes_the_mean_over_ranks_and_both_decide_alike(full):
    """Checks after iterations 2, 5, ..., 23 consume the mean over both ranks of each rank's
    mean loss since the last check; abs threshold 0.1, patience 0: every check that does not
    improve the best by 0.1 halves the lr, from the next iteration on."""
    _, run = full
    t0, t1 = traces(run)
    best, reductions, factor_from = math.inf, 0, {}
    for c in range(2, T, 3):
        v = sum(sum(t[k]["loss"] for k in range(c - 2, c + 1)) / 3 for t in (t0, t1)) / 2
        p = t0[c]["plateau"]
        assert p["value"] == pytest.approx(v, rel=1e-12, abs=1e-15)
        if p["value"] < best - 0.1:
            best = p["value"]
        else:
            reductions += 1
        assert (p["reductions"], p["best"]) == (reductions, best)
        factor_from[c + 1] = 0.5 ** reductions
    assert 0 < reductions < 8                  # some checks reduce, some do not
    factor = 1.0
    for k in range(T):
        factor = factor_from.get(k, factor)
        assert t0[k]["lr"][0] == t0[k]["scheduled_lr"][0] * factor     # powers of 2: exact


def test_one_run_dir_one_metrics_file_one_wandb_run(full):
    tmp, run = full
    assert sorted(p.name for p in tmp.iterdir() if p.name.startswith("full")) == ["full_r0"]
    assert [Path(p) for p in glob.glob(str(tmp / "**" / "metrics.jsonl"), recursive=True)] == [run / "metrics.jsonl"]
    runs = glob.glob(str(tmp / "**" / "offline-run-*"), recursive=True)
    assert len(runs) == 1 and Path(runs[0]).parent == run / "wandb"
    files = glob.glob(str(Path(runs[0]) / "run-*.wandb"))
    deadline = time.monotonic() + 30
    while (wb := read_run(files[0])).exit_code is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert wb.exit_code == 0
    rows = read_jsonl(run / "metrics.jsonl")
    lrs = {r["step"]: r["lr/pg0"] for r in rows if "lr/pg0" in r}
    t0, _ = traces(run)
    assert lrs == {k: t0[k]["lr"][0] for k in range(T)}           # one row per iteration, rank 0's
    assert {h["_step"]: h["lr/pg0"] for h in wb.history if "lr/pg0" in h} == lrs
    assert [r["val/knn_acc"] for r in rows if "val/knn_acc" in r] == \
        [h["val/knn_acc"] for h in wb.history if "val/knn_acc" in h]


def test_checkpoints_are_written_once_by_rank_0(full):
    """Iteration checkpoints fall due after 5, 10, 15, 20 iterations and are taken when the
    accumulation window closes (after an even number of batches in the epoch): 6, 10, 16, 20."""
    _, run = full
    assert not (run / "saves_rank1.jsonl").exists()
    saves = [json.loads(x) for x in (run / "saves_rank0.jsonl").read_text().splitlines()]
    expected = []
    for it, name in [(6, "iter_6"), (10, "iter_10"), (12, "epoch_1"), (16, "iter_16"), (20, "iter_20"),
                     (24, "epoch_2")]:
        expected += [{"name": "last.pt", "iter": it}, {"name": f"{name}.pt", "iter": it}]
    assert saves == expected
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == sorted({s["name"] for s in expected})


def test_preview_with_two_processes_is_the_real_runs_schedule(full, tmp_path, capsys):
    _, run = full
    # the preview CLI cannot build MomentumEMA over its stand-in model; the lr and momentum need no EMA
    out = schedule_main([*SCHEDULES, "~components.ema", "num_processes=2", f"out={tmp_path}"])
    assert "12 iters/epoch per process, 2 processes" in capsys.readouterr().out
    with open(out / "schedule.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    t0, _ = traces(run)
    assert [int(r["iter"]) for r in rows] == list(range(T))
    assert [float(r["lr/pg0"]) for r in rows] == [t0[k]["scheduled_lr"][0] for k in range(T)]
    assert [float(r["momentum/pg0"]) for r in rows] == [t0[k]["momentum"][0] for k in range(T)]


def test_ctrl_c_on_both_ranks_then_resume_with_accelerate_launch_is_exact(full):
    """Cut before iteration 18 (Ctrl-C on both ranks) under torchrun: the last checkpoint is the
    one after 16 iterations (mid-epoch, mid plateau interval). Resumed with `accelerate launch`
    and trainer.resume=auto, the run ends exactly where the uninterrupted one did."""
    tmp, ref = full
    cut = tmp / "cut"
    proc = torchrun(tmp, *SCHEDULES, PLATEAU, trace(stop_at=18), "logger=none", f"hydra.run.dir={cut}")
    assert proc.returncode != 0 and "KeyboardInterrupt" in proc.stderr
    assert ckpt_io.load(cut / "checkpoints" / "last.pt")["counters"] == {"epoch": 1, "iter": 16, "inner_iter": 4}
    proc = accelerate_launch(tmp, *SCHEDULES, PLATEAU, trace(), "logger=none", "trainer.resume=auto",
                             f"hydra.run.dir={cut}")
    assert proc.returncode == 0, proc.stderr[-4000:]
    a, b = ckpt_io.load(ref / "checkpoints" / "last.pt"), ckpt_io.load(cut / "checkpoints" / "last.pt")
    assert a["counters"] == b["counters"] == {"epoch": 2, "iter": 24, "inner_iter": 0}
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    for r in (0, 1):
        fa, fb = (torch.load(d / f"final_rank{r}.pt") for d in (ref, cut))
        assert all(torch.equal(fa["params"][n], fb["params"][n]) for n in fa["params"])
        assert all(torch.equal(fa["target"][n], fb["target"][n]) for n in fa["target"])
    (ref0, ref1), (cut0, cut1) = traces(ref), traces(cut)
    assert cut0 == ref0 and cut1 == ref1         # every iteration, resumed ones included, on both ranks
    def lrs(d):
        return {r["step"]: r["lr/pg0"] for r in read_jsonl(d / "metrics.jsonl") if "lr/pg0" in r}
    assert lrs(cut) == lrs(ref)
    assert {r["step"] for r in read_jsonl(cut / "metrics.superseded.jsonl")} == {16, 17}


def test_nonfinite_skip_on_one_rank_skips_the_step_on_every_rank(tmp_path):
    """A NaN loss on rank 0 only: with trainer.nonfinite=skip both ranks skip that step
    together (a lone skip would leave the other rank waiting in DDP's all-reduce forever)."""
    run_dir = tmp_path / "run"
    out = torchrun(tmp_path, "+recipe=digits_baseline", "trainer.max_epochs=1", "model.width=8",
                   "trainer.nonfinite=skip", "logger=none", f"hydra.run.dir={run_dir}",
                   "+components.nan={_target_:scale_probe.NanLossOnRank,rank:0,at:3}",
                   "+components.trace={_target_:scale_probe.RankTrace}")
    assert out.returncode == 0, out.stderr[-3000:]
    t0, t1 = traces(run_dir)
    assert sorted(t0) == sorted(t1) == list(range(12))   # 1,437 digits: 718 per rank, 12 batches of 64
    assert [t0[i]["stepped"] for i in range(12)] == [t1[i]["stepped"] for i in range(12)] \
        == [i != 3 for i in range(12)]
    f0, f1 = (torch.load(run_dir / f"final_rank{r}.pt") for r in (0, 1))
    for name in f0["params"]:
        assert torch.equal(f0["params"][name], f1["params"][name]), name
    assert ckpt_io.load(run_dir / "checkpoints" / "last.pt")["skipped_steps"] == 1
