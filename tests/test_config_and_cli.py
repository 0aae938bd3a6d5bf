"""Hydra config: recipes, overrides, named errors, and the CLI end to end."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from omegaconf.errors import ConfigAttributeError, ValidationError

from trainkit.core import checkpoint as ckpt_io
from trainkit.core.record import read_jsonl
from trainkit.build import build_runner
from trainkit.cli.train import run_config

ROOT = Path(__file__).resolve().parent.parent


def test_recipe_and_overrides_compose(make_cfg):
    cfg = make_cfg("+recipe=digits_baseline", "trainer.max_epochs=3", "optimizer.lr=0.05")
    assert cfg.name == "digits_baseline"
    assert cfg.trainer.max_epochs == 3 and cfg.optimizer.lr == 0.05
    assert cfg.model._target_ == "trainkit.tasks.digits.DigitsCNN"


@pytest.mark.parametrize("override, error, key", [
    ("trainer.max_epoch=3", ConfigAttributeError, "max_epoch"),     # unknown key
    ("trainer.max_epochs=abc", ValidationError, "max_epochs"),      # wrong type
    ("trainer.mixed_precision=fp8", ValidationError, "mixed_precision"),
])
def test_bad_overrides_name_the_key(make_cfg, override, error, key):
    from hydra.errors import ConfigCompositionException

    with pytest.raises((ConfigCompositionException, error)) as info:
        make_cfg("+recipe=digits_baseline", override)
    text = str(info.value) + str(info.value.__cause__)
    assert key in text


def test_missing_value_and_bad_target_args_are_named(make_cfg, tmp_path):
    cfg = make_cfg()   # no recipe: model/data/optimizer are missing
    from omegaconf.errors import MissingMandatoryValue

    with pytest.raises(MissingMandatoryValue, match="data"):
        build_runner(cfg, tmp_path)
    cfg = make_cfg("+recipe=digits_baseline", "+model.widht=3")
    with pytest.raises(ValueError, match=r"config key 'model' \(_target_ trainkit.tasks.digits.DigitsCNN\).*widht"):
        build_runner(cfg, tmp_path)


def test_baseline_recipe_learns_and_returns_monitor(make_cfg, tmp_path):
    cfg = make_cfg("+recipe=digits_baseline", "trainer.max_epochs=4", "trainer.progress=false")
    acc = run_config(cfg, tmp_path)
    assert acc > 0.9          # chance is 0.1
    rows = read_jsonl(tmp_path / "metrics.jsonl")
    assert [r["val/acc"] for r in rows if "val/acc" in r][-1] == acc
    assert (tmp_path / "config.yaml").read_text().count("digits_baseline") >= 1
    assert {p.name for p in (tmp_path / "checkpoints").iterdir()} == {"last.pt", "epoch_1.pt", "epoch_2.pt",
                                                                      "epoch_3.pt", "epoch_4.pt"}


def _cli(*args, cwd, **kw):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WANDB_MODE": "offline"}
    return subprocess.run([sys.executable, "-m", "trainkit.train", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120, **kw)


def test_cli_unknown_recipe_lists_available(tmp_path):
    out = _cli("+recipe=nope", cwd=tmp_path)
    assert out.returncode != 0
    assert "nope" in out.stderr and "digits_baseline" in out.stderr


@pytest.mark.slow
def test_cli_kill_9_then_resume_auto_matches_uninterrupted(tmp_path):
    """kill -9 mid-run (at a wall-clock moment), `trainer.resume=auto`: final weights, every lr and
    metrics.jsonl line for line equal the full run's."""
    common = ["+recipe=digits_baseline", "trainer.max_epochs=3", "trainer.progress=false",
              "trainer.log_interval=1", "trainer.checkpoint_interval_iters=7", "model.width=8"]
    full = _cli(*common, "hydra.run.dir=full", cwd=tmp_path)
    assert full.returncode == 0, full.stderr
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WANDB_MODE": "offline"}
    proc = subprocess.Popen([sys.executable, "-m", "trainkit.train", *common, "hydra.run.dir=runs/cut"],
                            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ck = tmp_path / "runs" / "cut" / "checkpoints" / "last.pt"
    deadline = time.time() + 60
    while time.time() < deadline and not (ck.exists() and ckpt_io.load(ck)["counters"]["iter"] >= 21):
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    cut_at = ckpt_io.load(ck)["counters"]["iter"]
    assert 0 < cut_at < 69          # 23 iterations per epoch: it really was cut
    resumed = _cli(*common, "trainer.resume=auto", "hydra.run.dir=runs/again", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    a = ckpt_io.load(tmp_path / "full" / "checkpoints" / "last.pt")
    b = ckpt_io.load(ck)
    assert b["counters"]["iter"] == a["counters"]["iter"] == 69
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    rows_a = {r["step"]: r["lr/pg0"] for r in read_jsonl(tmp_path / "full" / "metrics.jsonl") if "lr/pg0" in r}
    rows_b = {r["step"]: r["lr/pg0"] for r in read_jsonl(tmp_path / "runs" / "cut" / "metrics.jsonl") if "lr/pg0" in r}
    assert rows_a == rows_b and len(rows_a) == 69
    lines = [(d / "metrics.jsonl").read_text().splitlines() for d in (tmp_path / "full", tmp_path / "runs" / "cut")]
    assert lines[0] == lines[1]
    assert "continuing the run in" in resumed.stdout and not (tmp_path / "runs" / "again" / "checkpoints").exists()
    assert (tmp_path / "runs" / "cut" / "config.resume-1.yaml").exists()
