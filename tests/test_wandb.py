"""W&B tracking, read back from the offline run file (``run-<id>.wandb``).

Nothing here leaves the machine: every test points W&B at a closed loopback port
(``WANDB_BASE_URL=http://127.0.0.1:9``) and keeps its files in tmp dirs.
"""
import glob
import itertools
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import open_dict

from trainkit import config as C
from trainkit.core.record import read_jsonl
from trainkit.build import build_runner
from trainkit.cli.train import run_config
from wandb_file import read_run
from trainkit.sinks.wandb import STEP, WandbSink, build_wandb_sink, log_planned_schedule

ROOT = Path(__file__).resolve().parent.parent
LOOPBACK = "http://127.0.0.1:9"   # nothing listens: connections are refused at once


@pytest.fixture(autouse=True)
def wandb_env(monkeypatch, tmp_path):
    for var in ("WANDB_DIR", "WANDB_MODE", "WANDB_API_KEY", "WANDB_PROJECT", "WANDB_ENTITY", "WANDB_NAME",
                "WANDB_RUN_GROUP", "WANDB_TAGS", "WANDB_NOTES", "WANDB_DISABLED", "WANDB_RUN_ID",
                "WANDB_RESUME", "WANDB_SERVICE"):
        monkeypatch.delenv(var, raising=False)
    home = tmp_path / "wandb_home"
    for var in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        monkeypatch.setenv(var, str(home / var.lower()))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / "cache"))   # where wandb-core writes its debug log
    monkeypatch.setenv("WANDB_BASE_URL", LOOPBACK)
    monkeypatch.setenv("WANDB_ERROR_REPORTING", "false")
    monkeypatch.setenv("WANDB_SILENT", "true")


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models: one torch thread, so wandb-core and other processes never stall its thread pool."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def compose_cfg(*overrides):
    C.register()
    with initialize_config_dir(config_dir=str(C.CONF_DIR), version_base="1.3"):
        return compose("config", overrides=["+recipe=digits_baseline", "trainer.progress=false", *overrides])


def finished_run(path, timeout=30.0):
    """The run in ``path`` once its exit record is on disk: ``run.finish()`` returns
    before wandb-core's buffered writer has necessarily flushed the file."""
    deadline = time.monotonic() + timeout
    while (run := read_run(path)).exit_code is None and time.monotonic() < deadline:
        time.sleep(0.05)
    return run


def the_run_file(root):
    files = glob.glob(str(Path(root) / "wandb" / "offline-run-*" / "run-*.wandb"))
    assert len(files) == 1, files
    return finished_run(files[0])


def by_step(history):
    """W&B history rows keyed by step (one row per step: rows logged at one step merge)."""
    rows = {h["_step"]: h for h in history}
    assert len(rows) == len(history)
    return rows


class PolySchedule:
    """Test schedule: lr_g(i) = base_g * (1 - i/T)^2, momentum(i) = 0.95 - 0.1 i/T; reports
    its factor each iteration and, like a plateau reducer, a state at each epoch end."""

    priority = 10

    def __init__(self, total):
        self.total = total

    def before_run(self, runner):
        self.base = [g["lr"] for g in runner.optimizer.param_groups]

    def before_iter(self, runner):
        f = (1 - runner.iter / self.total) ** 2
        for base, g in zip(self.base, runner.optimizer.param_groups, strict=True):
            g["lr"] = base * f
            g["momentum"] = 0.95 - 0.1 * runner.iter / self.total
        runner.scalars["sched/factor"] = f

    def after_epoch(self, runner):
        runner.scalars["plateau/num_bad_epochs"] = runner.epoch


def test_offline_run_records_what_the_optimizer_used(tmp_path):
    cfg = compose_cfg("trainer.max_epochs=2", "trainer.batch_size=256", "trainer.log_interval=4",
                      "trainer.clip_grad=100",
                      "logger.wandb.project=tkproj", "logger.wandb.tags=[a,b]", "logger.wandb.notes=hello")
    with open_dict(cfg):
        cfg.param_groups = {"_target_": "trainkit.optim.NamedGroups", "default_group": "backbone",
                            "groups": {"head": {"prefix": "head", "lr_mult": 10}}}
    work_dir = tmp_path / "run"
    runner = build_runner(cfg, work_dir)
    assert "WANDB_SERVICE" not in os.environ   # would leak into child processes
    T = runner.max_iters
    ipe = runner.iters_per_epoch
    runner.bus.register(PolySchedule(T), "poly")
    used, opt, step = {}, runner.optimizer, runner.optimizer.step

    def spy_step(*a, **k):   # what the optimizer actually uses at each iteration's step
        groups = zip(runner.group_names, opt.param_groups, strict=True)
        used[runner.iter] = {n: (g["lr"], g["momentum"]) for n, g in groups}
        return step(*a, **k)

    opt.step = spy_step
    runner.run()
    for sink in runner.sinks:
        sink.close("finished")

    run = the_run_file(work_dir)
    assert (work_dir / "wandb_run_id").read_text().strip() == run.run_id
    assert (run.project, run.name, run.group, run.tags, run.notes) == (
        "tkproj", "digits_baseline", "", ["a", "b"], "hello")
    assert run.exit_code == 0
    # the resolved Hydra config is the run config
    assert run.config["optimizer"] == {"_target_": "torch.optim.SGD", "lr": 0.05, "momentum": 0.9,
                                       "weight_decay": 0.0005}
    assert run.config["trainer"]["log_interval"] == 4 and run.config["logger"]["wandb"]["mode"] == "offline"
    assert run.metrics[STEP]["step_metric"] == ""
    assert run.metrics["*"] == {"step_metric": STEP, "step_sync": True, "hidden": False}

    rows = by_step(run.history)
    assert (T, ipe) == (12, 6)
    logged = {i for i in range(T) if (i + 1) % 4 == 0 or (i + 1) % ipe == 0}   # every 4th, epoch ends
    assert {s for s, r in rows.items() if "lr/backbone" in r} == logged
    for s in logged:
        r = rows[s]
        assert r[STEP] == s and r["epoch"] == s // ipe
        for g, mult in (("backbone", 1), ("head", 10)):
            assert (r[f"lr/{g}"], r[f"momentum/{g}"]) == used[s][g]
            assert r[f"lr/{g}"] == pytest.approx(0.05 * mult * (1 - s / T) ** 2, rel=1e-12, abs=0)
            assert r[f"momentum/{g}"] == pytest.approx(0.95 - 0.1 * s / T, rel=1e-12)
        assert r["sched/factor"] == pytest.approx((1 - s / T) ** 2, rel=1e-12)
    # validation and epoch-end component state after each epoch, at step = completed iterations
    assert sorted(s for s, r in rows.items() if "val/acc" in r) == [ipe, 2 * ipe]
    assert [rows[s]["plateau/num_bad_epochs"] for s in (ipe, 2 * ipe)] == [0, 1]
    # metrics.jsonl holds the same numbers. W&B merges the rows logged at one step, so at an
    # epoch end its `epoch` is the last one logged there (completed epochs, from validation).
    jsonl = read_jsonl(work_dir / "metrics.jsonl")
    assert {r["step"] for r in jsonl} == set(rows)
    for jr in jsonl:
        for k, v in jr.items():
            if k not in ("step", "epoch"):
                assert rows[jr["step"]][k] == v, (jr["step"], k)
    assert [(r["step"], r["epoch"]) for r in jsonl if "plateau/num_bad_epochs" in r] == [(ipe, 0), (2 * ipe, 1)]
    assert [rows[s]["epoch"] for s in (ipe, 2 * ipe)] == [1, 2]
    assert all("train/grad_norm" in rows[s] for s in logged)


@pytest.mark.parametrize("exc, code", [(RuntimeError("boom"), 1), (KeyboardInterrupt(), 255)])
def test_exception_marks_the_run_failed_and_keeps_rows(tmp_path, monkeypatch, exc, code):
    from trainkit.tasks.digits import DigitsCNN

    calls, forward = itertools.count(), DigitsCNN.forward

    def failing_forward(self, batch):
        if self.training and next(calls) == 7:
            raise exc
        return forward(self, batch)

    monkeypatch.setattr(DigitsCNN, "forward", failing_forward)
    cfg = compose_cfg("trainer.log_interval=1", "trainer.batch_size=128")
    with pytest.raises(type(exc)):
        run_config(cfg, tmp_path)
    run = the_run_file(tmp_path)
    assert run.exit_code == code
    assert [h["_step"] for h in run.history] == list(range(7))


@pytest.mark.parametrize("api_key", [None, "x" * 40], ids=["no-api-key", "unreachable-server"])
def test_failed_online_init_falls_back_to_offline(tmp_path, monkeypatch, caplog, api_key):
    if api_key:
        monkeypatch.setenv("WANDB_API_KEY", api_key)
    cfg = compose_cfg("trainer.max_iters=5", "trainer.max_epochs=null", "trainer.log_interval=1",
                      "logger=online", "logger.wandb.init_timeout=1")
    with caplog.at_level(logging.WARNING, logger="trainkit"):
        run_config(cfg, tmp_path)
    assert "W&B online init failed" in caplog.text and "falling back to offline" in caplog.text
    if not api_key:
        assert "no W&B API key" in caplog.text
    run = the_run_file(tmp_path)
    assert run.exit_code == 0 and run.config["logger"]["wandb"]["mode"] == "online"
    rows = by_step(run.history)
    jsonl = read_jsonl(tmp_path / "metrics.jsonl")
    # 5 iterations, then validation at step 5 (iterations completed)
    assert sorted(rows) == list(range(6)) == sorted({r["step"] for r in jsonl})
    for jr in jsonl:
        assert all(rows[jr["step"]][k] == v for k, v in jr.items() if k != "step")


def test_log_error_is_reported_once_and_logging_goes_on(tmp_path, caplog):
    sink = WandbSink(mode="offline", project="t", dir=tmp_path)
    with caplog.at_level(logging.WARNING, logger="trainkit"):
        for s in range(5):
            row = {"lr/pg0": 0.1 * s}
            if s < 3:
                row[7] = 1.0   # wandb refuses a key that is not a string: three failing log calls
            sink.log(row, s)
        sink.close()
    warnings = [r.getMessage() for r in caplog.records]
    assert len([w for w in warnings if "must be strings" in w]) == 1
    assert any("3 logging calls failed" in w for w in warnings)
    run = the_run_file(tmp_path)
    assert [(h["_step"], h["lr/pg0"], h[STEP]) for h in run.history] == [(3, 0.1 * 3, 3), (4, 0.1 * 4, 4)]


def _planned_rows(n):
    """Hand-made preview rows: backbone linear decay with momentum, head (no momentum) constant."""
    return [{"iter": i, "epoch": i // 4, "lr/backbone": 0.1 * (1 - i / n), "momentum/backbone": 0.9 - 0.01 * i,
             "lr/head": 0.5} for i in range(n)]


def test_planned_schedule_is_charted_without_moving_the_step(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from trainkit.cli.train import log_planned_schedule as _log_planned_schedule

    previews = []
    monkeypatch.setattr("trainkit.build.planned_rows",   # the preview's call site
                        lambda cfg, runner: previews.append(cfg) or _planned_rows(8))
    off = WandbSink(mode="offline", project="t", dir=tmp_path / "off", log_planned_schedule=False)
    _log_planned_schedule("cfg", SimpleNamespace(sinks=[off]))
    off.close()
    assert previews == []   # no sink wants it: no preview run
    sink = WandbSink(mode="offline", project="t", dir=tmp_path)
    _log_planned_schedule("cfg", SimpleNamespace(sinks=[sink]))
    assert previews == ["cfg"]
    sink.log({"lr/backbone": 0.1}, 0)
    sink.log({"lr/backbone": 0.0875}, 1)
    sink.close()
    run = the_run_file(tmp_path)
    assert [h["_step"] for h in run.history] == [0, 1]
    first = run.history[0]
    assert first["lr/backbone"] == 0.1
    tables = {k for k, v in first.items() if isinstance(v, dict) and v.get("_type") == "table-file"}
    assert tables == {"planned/lr/backbone_table", "planned/momentum/backbone_table", "planned/lr/head_table"}
    charts = run.config["_wandb"]["visualize"]
    assert set(charts) == {"planned/lr/backbone", "planned/momentum/backbone", "planned/lr/head"}
    fields = charts["planned/momentum/backbone"]["panel_config"]["fieldSettings"]
    assert (fields["x"], fields["y"]) == ("iter", "momentum")
    run_dir = next((tmp_path / "wandb").glob("offline-run-*"))
    table = json.loads((run_dir / "files" / first["planned/lr/backbone_table"]["path"]).read_text())
    assert table["columns"] == ["iter", "epoch", "lr", "momentum"]
    assert table["data"] == [[i, i // 4, 0.1 * (1 - i / 8), 0.9 - 0.01 * i] for i in range(8)]
    head = json.loads((run_dir / "files" / first["planned/lr/head_table"]["path"]).read_text())
    assert head["columns"] == ["iter", "epoch", "lr"] and len(head["data"]) == 8


def test_planned_schedule_thins_long_previews():
    class FakeRun:
        def log(self, payload, commit=None):
            self.payload, self.commit = payload, commit

    run = FakeRun()
    log_planned_schedule(run, _planned_rows(11), max_points=4)   # stride ceil(11/4) = 3, plus the last row
    assert run.commit is False
    assert [row[0] for row in run.payload["planned/lr/backbone"].table.data] == [0, 3, 6, 9, 10]
    log_planned_schedule(run, _planned_rows(10), max_points=4)   # 9 is already on the stride
    assert [row[0] for row in run.payload["planned/lr/head"].table.data] == [0, 3, 6, 9]


def test_resumed_run_continues_the_same_wandb_run(tmp_path):
    cfg = compose_cfg()
    node = cfg.logger.wandb
    first = build_wandb_sink(node, cfg, tmp_path)
    first_id = first.run_id
    first.log({"loss": 1.0}, 0)
    first.close()
    resumed = build_wandb_sink(node, cfg, tmp_path, resume=True)
    resumed.log({"loss": 0.5}, 1)
    resumed.close()
    fresh = build_wandb_sink(node, cfg, tmp_path / "other")
    fresh.close()
    files = glob.glob(str(tmp_path / "wandb" / "offline-run-*" / "*.wandb"))
    assert len(files) == 2 and {finished_run(f).run_id for f in files} == {first_id}
    assert (tmp_path / "wandb_run_id").read_text().strip() == first_id
    assert (tmp_path / "other" / "wandb_run_id").read_text().strip() != first_id


def test_only_the_main_process_creates_a_run(tmp_path, monkeypatch):
    from accelerate import Accelerator

    monkeypatch.setattr(Accelerator, "is_main_process", property(lambda self: False))
    runner = build_runner(compose_cfg(), tmp_path)
    assert runner.sinks == [] and not (tmp_path / "wandb").exists()


def test_disabled_and_bad_config(tmp_path, monkeypatch):
    from trainkit.build import tracking_sinks as _tracking_sinks

    assert _tracking_sinks(compose_cfg("logger.wandb.mode=disabled"), tmp_path, False) == []
    assert _tracking_sinks(compose_cfg("logger=none"), tmp_path, False) == []
    monkeypatch.setenv("WANDB_MODE", "disabled")   # the usual environment variable, through the config
    assert _tracking_sinks(compose_cfg(), tmp_path, False) == []
    assert not (tmp_path / "wandb").exists()
    monkeypatch.delenv("WANDB_MODE")
    with pytest.raises(ValueError, match=r"logger.wandb.mode='onlin'.*online, offline, disabled"):
        _tracking_sinks(compose_cfg("logger.wandb.mode=onlin"), tmp_path, False)
    with pytest.raises(Exception, match=r"projet"):   # the schema (WandbConfig) refuses it when composing
        _tracking_sinks(compose_cfg("+logger.wandb.projet=x"), tmp_path, False)
    with pytest.raises(ValueError, match=r"unknown keys \['projet'\]"):
        WandbSink(mode="offline", projet="x")
    with pytest.raises(ValueError, match="init_timeout must be > 0"):
        WandbSink(mode="offline", init_timeout=0)
    with pytest.raises(ValueError, match="logger.wandb.settings: x_disable_stat: Extra inputs are not permitted"):
        _tracking_sinks(compose_cfg("+logger.wandb.settings.x_disable_stat=false"), tmp_path, False)


@pytest.fixture
def http_trap():
    """A loopback HTTP server that records every request path it gets."""
    import http.server
    import threading

    paths = []

    class Trap(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            paths.append(self.path)
            self.send_response(404)
            self.end_headers()

        do_POST = do_GET

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Trap)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", paths
    server.shutdown()


@pytest.mark.slow
def test_multirun_jobs_are_named_and_grouped(tmp_path, http_trap):
    sweep = tmp_path / "sweep"
    url, requests = http_trap
    env = {k: v for k, v in os.environ.items() if k not in ("WANDB_SERVICE", "WANDB_ERROR_REPORTING")}
    env.update(OMP_NUM_THREADS="1", WANDB_BASE_URL=url)
    cmd = [sys.executable, "-m", "trainkit.train", "-m", "+recipe=digits_baseline", "trainer.max_iters=2",
           "trainer.max_epochs=null", "trainer.log_interval=1", "trainer.progress=false", "optimizer.lr=0.01,0.02",
           f"hydra.sweep.dir={sweep}"]
    subprocess.run(cmd, cwd=ROOT, env=env, check=True, capture_output=True, timeout=240)
    runs = [finished_run(f) for f in sorted(glob.glob(str(sweep / "*" / "wandb" / "offline-run-*" / "*.wandb")))]
    assert sorted(r.name for r in runs) == [
        f"digits_baseline[optimizer.lr={lr},trainer.log_interval=1,trainer.max_epochs=null,trainer.max_iters=2]"
        for lr in ("0.01", "0.02")]
    assert {r.group for r in runs} == {str(sweep)}
    assert sorted(r.config["optimizer"]["lr"] for r in runs) == [0.01, 0.02]
    assert all(r.exit_code == 0 and [h["_step"] for h in r.history] == [0, 1, 2] for r in runs)   # 2 iters, val
    assert requests == []   # offline runs make no request (not even wandb's client analytics at exit)
