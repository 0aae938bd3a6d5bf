"""Sweeps as a user runs them: a Hydra grid multirun, an Optuna study (hydra-optuna-sweeper)
and the parallel joblib launcher (hydra-joblib-launcher). The two plugins are optional
extras (`pip install -e .[optuna,joblib]`); their tests skip when they are absent."""
import glob
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from helpers import isolated_env

from trainkit.core.record import read_jsonl
from trainkit.cli.sweep import read_results
from wandb_file import read_run

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow
SMALL = ["trainer.max_iters=3", "trainer.max_epochs=null", "trainer.log_interval=1", "model.width=8",
         "trainer.progress=false"]


def multirun(tmp, *args):
    env = isolated_env(tmp, ROOT)
    proc = subprocess.Popen([sys.executable, "-m", "trainkit.train", "-m", *args, f"hydra.sweep.dir={tmp / 'sweep'}"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err[-4000:]
    return tmp / "sweep", proc.pid


def wandb_runs(sweep):
    runs = []
    for path in sorted(glob.glob(str(sweep / "*" / "wandb" / "offline-run-*" / "run-*.wandb"))):
        deadline = time.monotonic() + 30
        while (run := read_run(path)).exit_code is None and time.monotonic() < deadline:
            time.sleep(0.05)
        runs.append(run)
    return runs


def last_val(job_dir, key="val/acc"):
    return [r[key] for r in read_jsonl(Path(job_dir) / "metrics.jsonl") if key in r][-1]


def test_grid_sweep_runs_three_jobs_each_with_its_own_dir_and_wandb_run(tmp_path):
    """The README's sweep: three lrs of digits_cosine_warmup, each job in its own directory
    named by its overrides, one W&B run per job grouped under the sweep, and the monitored
    metric returned by each job (results.jsonl)."""
    sweep, _ = multirun(tmp_path, "+recipe=digits_cosine_warmup", "optimizer.lr=0.01,0.03,0.1", *SMALL)
    lrs = ["0.01", "0.03", "0.1"]
    names = [f"model.width=8,optimizer.lr={lr},trainer.log_interval=1,trainer.max_epochs=null,"
             f"trainer.max_iters=3" for lr in lrs]
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == sorted(names)
    results = read_results(sweep)
    assert [r["job"] for r in results] == names and {r["status"] for r in results} == {"COMPLETED"}
    for r in results:
        assert r["monitor"] == "val/acc" and r["value"] == last_val(r["dir"])
    runs = wandb_runs(sweep)
    assert sorted(r.name for r in runs) == sorted(f"digits_cosine_warmup[{n}]" for n in names)
    assert {r.group for r in runs} == {str(sweep)} and {r.exit_code for r in runs} == {0}
    for run in runs:
        lr = run.config["optimizer"]["lr"]
        first = next(h for h in run.history if h["_step"] == 0)
        # warmup starts at warmup_ratio 0.1 of each group's lr; the backbone's lr is half the head's
        assert (first["lr/head"], first["lr/backbone"]) == pytest.approx((0.1 * lr, 0.05 * lr), rel=1e-12)
    assert sorted(run.config["optimizer"]["lr"] for run in runs) == [0.01, 0.03, 0.1]


def test_optuna_study_optimises_the_returned_metric(tmp_path):
    """recipes/digits_optuna.yaml: the search space and direction live in the recipe; each
    trial's return value (val/acc) drives the study and the best one is reported."""
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    sweep, _ = multirun(tmp_path, "+recipe=digits_optuna", "hydra.sweeper.n_trials=3", "logger=none", *SMALL)
    results = read_results(sweep)
    assert len(results) == 3 and {r["status"] for r in results} == {"COMPLETED"}
    params = []
    for r in results:
        chosen = dict(o.split("=", 1) for o in r["overrides"] if o.startswith(("optimizer.lr=", "components.lr.")))
        lr, warmup = float(chosen["optimizer.lr"]), int(chosen["components.lr.warmup_iters"])
        assert 0.01 <= lr <= 0.3 and warmup in (10, 25, 50)
        cfg = yaml.safe_load((Path(r["dir"]) / "config.yaml").read_text())
        assert cfg["optimizer"]["lr"] == lr and cfg["components"]["lr"]["warmup_iters"] == warmup
        assert r["value"] == last_val(r["dir"])
        params.append({"optimizer.lr": lr, "components.lr.warmup_iters": warmup})
    assert len({p["optimizer.lr"] for p in params}) == 3           # three different trials
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    values = [r["value"] for r in results]
    assert best["best_value"] == max(values)                      # direction: maximize
    assert best["best_params"] in [p for p, v in zip(params, values, strict=True) if v == max(values)]


def test_joblib_launcher_runs_jobs_side_by_side(tmp_path):
    """n_jobs=2: both jobs must be inside their runs at once (each waits for the other at
    before_run), in two worker processes other than Hydra's own."""
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    meet = tmp_path / "meet"
    sweep, parent = multirun(
        tmp_path, "+recipe=digits_cosine_warmup", "optimizer.lr=0.03,0.1", *SMALL,
        "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
        f"+components.meet={{_target_:scale_probe.Rendezvous,dir:{meet}}}",
        "hydra.job.config.override_dirname.exclude_keys=[recipe,trainer.progress,components.meet]")
    pids = {int(p.name.split("_")[1]) for p in meet.glob("ready_*")}
    assert len(pids) == 2 and parent not in pids
    results = read_results(sweep)
    assert sorted(r["job"].split(",")[1] for r in results) == ["optimizer.lr=0.03", "optimizer.lr=0.1"]
    assert all(r["value"] == last_val(r["dir"]) for r in results)
    runs = wandb_runs(sweep)
    assert len(runs) == 2 and {r.group for r in runs} == {str(sweep)} and {r.exit_code for r in runs} == {0}
