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

    from trainkit.sinks import wandb as wandb_sink

    started = []
    monkeypatch.setattr(wandb_sink, "_WriterLink", lambda *a, **k: started.append(a))
    monkeypatch.setattr(Accelerator, "is_main_process", property(lambda self: False))
    runner = build_runner(compose_cfg(), tmp_path)
    assert runner.sinks == [] and not (tmp_path / "wandb").exists()
    assert started == []   # no writer process on a rank other than 0


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
    with pytest.raises(ValueError, match=r"writer_priority='high' is not valid; allowed: idle, low, normal"):
        WandbSink(mode="offline", writer_priority="high")
    for key, bad in (("queue_mb", 0), ("queue_mb", True), ("log_interval", 0), ("log_interval", True),
                     ("log_interval", 2.5), ("planned_max_points", 1)):
        with pytest.raises(ValueError, match=rf"logger.wandb.{key} must be .*, got {bad!r}"):
            WandbSink(mode="offline", **{key: bad})
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


# ------------------------------------------------------------------ the writer process
def writer_processes():
    """This process's W&B writer children (``python -m trainkit.sinks.wandb_writer``)."""
    import psutil

    return [p for p in psutil.Process().children(recursive=True) if "trainkit.sinks.wandb_writer" in " ".join(
        _cmdline(p))]


def _cmdline(p):
    import psutil

    try:
        return p.cmdline()
    except psutil.Error:
        return []


def wait_gone(pids, timeout=30.0):
    """True once none of ``pids`` runs (exited, reaped or a zombie waiting for its parent)."""
    import psutil

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = []
        for pid in pids:
            try:
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    alive.append(pid)
            except psutil.NoSuchProcess:
                pass
        if not alive:
            return True
        time.sleep(0.1)
    return False


def wandb_core_of(pid):
    import psutil

    return [p for p in psutil.Process(pid).children(recursive=True) if "wandb-core" in p.name()]


@pytest.mark.slow
def test_a_sink_dropped_without_close_finishes_its_run(tmp_path):
    import gc

    sink = WandbSink(mode="offline", project="t", dir=tmp_path)
    pid = sink.writer_pid
    for s in range(5):
        sink.log({"loss": 1.0 / (s + 1)}, s)
    del sink
    gc.collect()
    assert wait_gone([pid], 30)   # no process kept for a sink nobody holds
    run = the_run_file(tmp_path)
    assert run.exit_code == 0 and [h["_step"] for h in run.history] == list(range(5))


def test_a_writer_that_cannot_start_leaves_training_without_wandb(tmp_path, monkeypatch, caplog):
    from trainkit.sinks import wandb as wandb_sink

    def no_process(*a, **k):
        raise OSError(24, "Too many open files")

    monkeypatch.setattr(wandb_sink.subprocess, "Popen", no_process)
    with caplog.at_level(logging.WARNING, logger="trainkit"):
        sink = WandbSink(mode="offline", project="t", dir=tmp_path)
    assert sink.mode == "disabled" and sink.writer_pid is None and not sink.wants_planned_schedule
    assert "W&B writer could not be started (OSError: [Errno 24] Too many open files)" in caplog.text
    sink.log({"loss": 1.0}, 0)
    sink.close()
    assert not (tmp_path / "wandb").exists()


def test_direct_records_are_what_run_log_sends(tmp_path):
    """The writer builds each scalar row's record itself; it must be the record ``run.log``
    builds for ``{**row, STEP: step, "_timestamp": t}`` (wandb's own encoding is the reference)."""
    import numpy as np
    import wandb

    from trainkit.sinks.wandb_writer import LEAN_SETTINGS, Publisher, Replies

    run = wandb.init(mode="offline", project="t", dir=tmp_path, settings=wandb.Settings(**LEAN_SETTINGS))
    try:
        publisher = Publisher(run, Replies(-1))
        if not publisher._fast:
            pytest.skip(f"wandb {wandb.__version__}: the writer logs every row through run.log")
        iface = run._interface
        rows = [{"lr/g0": 0.1, "momentum/g0": 0.9, "epoch": 3, "loss": 1e-5},
                {"x": -0.0, "y": 5e-324, "z": 1e300, "n": float("nan"), "i": float("inf"), "j": float("-inf"),
                 "b": True, "c": False, "big": 2**70, "neg": -7, "one": 1.0},
                {'ключ/ü "quoted"': 1.5, "a,b": 0.25}, {}]
        for step, row in enumerate(rows):
            t = 1796115162.4170587 + step * 0.001
            captured = []
            iface._publish = lambda record, nowait=False, captured=captured: captured.append(record)
            try:
                run.log({**row, STEP: step, "_timestamp": t}, step=step)
            finally:
                del iface._publish
            (record,) = [r for r in captured if r.request.HasField("partial_history")]
            iface._assign(record)
            assert publisher._encode(step, t, row).record_publish == record
        for row in ({7: 1.0}, {"s": "text"}, {"none": None}, {"nested": {"a": 1.0}}, {STEP: 1.0},
                    {"_timestamp": 1.0}, {"_step": 1}, {"np": np.float64(1)}):
            assert publisher._encode(0, 0.0, row) is None   # these go through run.log
    finally:
        run.finish()


def test_a_writer_whose_records_differ_from_run_log_keeps_to_run_log(tmp_path):
    """The first scalar row goes through run.log and is compared with the writer's own record:
    a difference (here a wrong value, as another wandb version might encode) turns the direct
    records off, and every row still arrives as logged."""
    import wandb

    from trainkit.sinks.wandb_writer import LEAN_SETTINGS, Publisher, Replies

    run = wandb.init(mode="offline", project="t", dir=tmp_path, settings=wandb.Settings(**LEAN_SETTINGS))
    publisher = Publisher(run, Replies(-1))
    if not publisher._fast:
        pytest.skip(f"wandb {wandb.__version__}: the writer logs every row through run.log")
    encode = publisher._encode

    def differs(step, t, row):
        request = encode(step, t, row)
        if request is not None:
            request.record_publish.request.partial_history.item[0].value_json = "0"
        return request

    publisher._encode = differs
    publisher.publish([(s, 1796115162.0 + s, {"lr/g0": 0.5 + s}) for s in range(3)])
    assert publisher._fast is False and publisher.logged == 3
    run.finish()
    rows = finished_run(next(tmp_path.glob("wandb/offline-run-*/run-*.wandb"))).history
    assert [(h["_step"], h["lr/g0"], h[STEP]) for h in rows] == [(s, 0.5 + s, s) for s in range(3)]


def _row(step, width):
    return {f"lr/g{i}": step + i / 1000 for i in range(width)}


def _check_drop_oldest(sink, tmp_path, n, width, caplog):
    """What a run with dropped rows holds: each kept row as logged, the newest kept, the
    count logged as trainkit/wandb_dropped, and kept + dropped = logged."""
    from trainkit.sinks.wandb_writer import DROPPED_KEY

    run = the_run_file(tmp_path)
    steps = [h["_step"] for h in run.history]
    assert steps == sorted(set(steps)) and steps[-1] == n - 1
    assert 0 < sink.dropped == n - len(steps)
    assert all(h["lr/g0"] == h["_step"] and h[f"lr/g{width - 1}"] == h["_step"] + (width - 1) / 1000
               for h in run.history)
    counts = [h[DROPPED_KEY] for h in run.history if DROPPED_KEY in h]
    assert counts and counts == sorted(counts) and counts[-1] == sink.dropped
    first_after_gap = next(i for i in range(1, len(steps)) if steps[i] != steps[i - 1] + 1)
    assert DROPPED_KEY in run.history[first_after_gap]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len([w for w in warnings if "W&B writer fell behind" in w]) == 1
    assert any(f"{sink.dropped} rows were dropped" in w for w in warnings)
    assert run.exit_code == 0


@pytest.mark.slow
def test_a_stopped_writer_never_blocks_training_and_the_oldest_rows_are_dropped(tmp_path, caplog):
    """The writer does not run at all (SIGSTOP): the pipe fills, then the rows waiting in the
    training process beyond queue_mb are dropped oldest first; no log call waits."""
    import signal

    n, width = 3000, 100
    sink = WandbSink(mode="offline", project="t", dir=tmp_path, queue_mb=0.25)
    assert sink.wait_started() == "offline"
    os.kill(sink.writer_pid, signal.SIGSTOP)
    worst = 0.0
    try:
        with caplog.at_level(logging.WARNING, logger="trainkit"):
            for s in range(n):
                t = time.perf_counter()
                sink.log(_row(s, width), s)
                worst = max(worst, time.perf_counter() - t)
    finally:
        os.kill(sink.writer_pid, signal.SIGCONT)
    with caplog.at_level(logging.WARNING, logger="trainkit"):
        sink.close()
    assert worst < 0.5, worst   # a blocking write would wait for the stopped writer forever
    assert 0 < sink.dropped_in_training_process <= sink.dropped   # the writer may drop more once it runs again
    _check_drop_oldest(sink, tmp_path, n, width, caplog)


@pytest.mark.slow
def test_a_stalled_wandb_core_makes_the_writer_drop_its_oldest_rows(tmp_path, caplog):
    """wandb-core does not run (SIGSTOP): the writer blocks on its socket, its reader thread
    keeps draining the pipe, and beyond queue_mb the writer drops its oldest queued rows."""

    n, width = 3000, 200
    sink = WandbSink(mode="offline", project="t", dir=tmp_path, queue_mb=0.5)
    assert sink.wait_started() == "offline"
    (core,) = wandb_core_of(sink.writer_pid)
    core.suspend()
    try:
        with caplog.at_level(logging.WARNING, logger="trainkit"):
            for s in range(n):
                sink.log(_row(s, width), s)
                if s % 100 == 0:
                    time.sleep(0.01)   # a training loop's pace: the writer's reader keeps up
            sink.flush()
            time.sleep(1.0)
    finally:
        core.resume()
    with caplog.at_level(logging.WARNING, logger="trainkit"):
        sink.close()
    assert sink.dropped > sink.dropped_in_training_process   # the writer dropped rows itself
    _check_drop_oldest(sink, tmp_path, n, width, caplog)


@pytest.mark.slow
def test_close_sends_every_queued_row_before_finish(tmp_path):
    n, width = 1000, 100   # logged far faster than W&B takes them: most are queued when close is called
    sink = WandbSink(mode="offline", project="t", dir=tmp_path)
    for s in range(n):
        sink.log(_row(s, width), s)
    if hasattr(os, "SCHED_IDLE"):   # writer_priority=idle: it and its wandb-core run on spare CPU only
        assert sink.wait_started() == "offline"
        assert os.sched_getscheduler(sink.writer_pid) == os.SCHED_IDLE
        assert [os.sched_getscheduler(p.pid) for p in wandb_core_of(sink.writer_pid)] == [os.SCHED_IDLE]
        assert os.getpgid(sink.writer_pid) != os.getpgid(0)   # a terminal's Ctrl-C does not reach it
        assert "libtorch" not in Path(f"/proc/{sink.writer_pid}/maps").read_text()   # wandb, never torch
    sink.close()
    run = the_run_file(tmp_path)
    assert [h["_step"] for h in run.history] == list(range(n)) and sink.logged == n and sink.dropped == 0
    assert run.history[-1][f"lr/g{width - 1}"] == n - 1 + (width - 1) / 1000
    assert run.exit_code == 0 and writer_processes() == []


@pytest.mark.slow
def test_kill_9_of_the_writer_leaves_training_running(tmp_path, caplog):
    import signal

    cfg = compose_cfg("trainer.log_interval=1", "trainer.batch_size=128", "trainer.max_epochs=2")
    runner = build_runner(cfg, tmp_path)
    (sink,) = [s for s in runner.sinks if isinstance(s, WandbSink)]
    pid = sink.writer_pid
    core = wandb_core_of(pid) if sink.wait_started() else []

    class KillWriter:
        def after_iter(self, runner):
            if runner.iter == 5:
                os.kill(pid, signal.SIGKILL)
                assert wait_gone([pid], 10)

    runner.bus.register(KillWriter(), "kill_writer")
    with caplog.at_level(logging.WARNING, logger="trainkit"):
        runner.run()
        for s in runner.sinks:
            s.close("finished")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len([w for w in warnings if "W&B writer" in w]) == 1
    assert f"W&B writer (pid {pid}) ended unexpectedly (killed by signal 9)" in warnings[0]
    rows = read_jsonl(tmp_path / "metrics.jsonl")
    T = runner.max_iters
    assert [r["step"] for r in rows if "lr/pg0" in r] == list(range(T))   # metrics.jsonl is complete
    assert sum("val/acc" in r for r in rows) == 2
    with pytest.raises(ChildProcessError):   # reaped by the training process: no zombie
        os.waitpid(pid, os.WNOHANG)
    assert wait_gone([p.pid for p in core], 15)   # its wandb-core follows it


def _train_cmd(run_dir, *overrides):
    return [sys.executable, "-m", "trainkit.train", "+recipe=digits_baseline", "trainer.max_epochs=40",
            "trainer.log_interval=1", "trainer.batch_size=32", "trainer.progress=false",
            f"hydra.run.dir={run_dir}", *overrides]


def _lines(path):
    try:
        return path.read_text().count("\n")
    except FileNotFoundError:
        return 0


@pytest.mark.slow
@pytest.mark.parametrize("how", ["kill -9", "ctrl-c"])
def test_killed_training_leaves_the_writer_to_finish_and_exit(tmp_path, how):
    """kill -9: the writer logs every row it received, finishes the run with exit code 1 and exits.
    Ctrl-C (SIGINT to the terminal's process group): training closes the sink, so every row is
    in W&B, and the run finishes with 255; the writer, in its own session, never sees the signal."""
    import signal

    import psutil

    from trainkit.sinks.wandb import BATCH_ROWS

    run_dir = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    with open(tmp_path / "stderr.txt", "w") as err:
        proc = subprocess.Popen(_train_cmd(run_dir), cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=err,
                                start_new_session=True)
        try:
            deadline = time.monotonic() + 120
            while _lines(run_dir / "metrics.jsonl") < 120 and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            assert proc.poll() is None, (tmp_path / "stderr.txt").read_text()[-3000:]
            (writer,) = [p for p in psutil.Process(proc.pid).children()
                         if "trainkit.sinks.wandb_writer" in " ".join(_cmdline(p))]
            core = wandb_core_of(writer.pid)
            if how == "kill -9":
                proc.kill()
            else:
                os.killpg(proc.pid, signal.SIGINT)   # what Ctrl-C in a terminal does
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert wait_gone([writer.pid] + [c.pid for c in core], 30), "the writer or its wandb-core outlived training"
    run = the_run_file(run_dir)
    rows = by_step(run.history)
    jsonl = read_jsonl(run_dir / "metrics.jsonl")
    steps = sorted(rows)
    assert steps == list(range(len(steps)))
    for jr in jsonl:
        if jr["step"] in rows:
            assert all(rows[jr["step"]][k] == v for k, v in jr.items() if k not in ("step", "epoch")), jr["step"]
    if how == "kill -9":
        assert run.exit_code == 1
        assert steps[-1] >= max(r["step"] for r in jsonl) - BATCH_ROWS   # all it was sent, not later
    else:
        assert proc.returncode != 0 and run.exit_code == 255
        assert set(steps) == {r["step"] for r in jsonl}   # every row, flushed at close


def test_a_wandb_log_interval_thins_only_the_wandb_rows(tmp_path):
    cfg = compose_cfg("trainer.max_epochs=2", "trainer.batch_size=256", "trainer.log_interval=1",
                      "logger.wandb.log_interval=4")
    run_config(cfg, tmp_path)
    rows = by_step(the_run_file(tmp_path).history)
    jsonl = read_jsonl(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in jsonl if "lr/pg0" in r] == list(range(12))   # 6 iterations per epoch
    assert sorted(s for s, r in rows.items() if "lr/pg0" in r) == [3, 5, 7, 11]   # every 4th and epoch ends
    assert sorted(s for s, r in rows.items() if "val/acc" in r) == [6, 12]


# ----------------------------------------------- init: reachability, leftovers, empty WANDB_MODE
def test_an_unreachable_server_costs_seconds_not_the_init_timeout(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)   # LOOPBACK refuses every connection
    t0 = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="trainkit"):
        sink = WandbSink(mode="online", project="t", dir=tmp_path, init_timeout=30)
        assert sink.wait_started() == "offline"
    assert time.monotonic() - t0 < 15
    assert "unreachable" in caplog.text and "falling back to offline" in caplog.text
    sink.log({"loss": 1.0}, 0)
    sink.close()
    assert [p.name.split("-")[0] for p in (tmp_path / "wandb").glob("*run-*")] == ["offline"]


def test_a_failed_online_attempt_leaves_no_run_directory(tmp_path, monkeypatch, http_trap, caplog):
    url, requests = http_trap   # a server that answers every request with 404
    monkeypatch.setenv("WANDB_BASE_URL", url)
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    with caplog.at_level(logging.WARNING, logger="trainkit"):
        sink = WandbSink(mode="online", project="t", dir=tmp_path, init_timeout=20)
        assert sink.wait_started() == "offline"
    assert requests and "W&B online init failed" in caplog.text
    sink.close()
    assert [p.name.split("-")[0] for p in (tmp_path / "wandb").glob("*run-*")] == ["offline"]
    assert the_run_file(tmp_path).exit_code == 0


@pytest.mark.parametrize("logger", ["default", "online"])
def test_an_empty_wandb_mode_is_unset(tmp_path, monkeypatch, caplog, logger):
    from trainkit.build import tracking_sinks

    monkeypatch.setenv("WANDB_MODE", "")
    with caplog.at_level(logging.WARNING, logger="trainkit"):
        (sink,) = tracking_sinks(compose_cfg(f"logger={logger}"), tmp_path, False)
        assert sink.wait_started() == "offline"   # online: no API key, so offline; never off
    sink.close()
    assert ("no W&B API key" in caplog.text) == (logger == "online")
    assert the_run_file(tmp_path).exit_code == 0


@pytest.mark.slow
@pytest.mark.parametrize("ending, code", [("pass", 0), ("raise RuntimeError('boom')", 1)])
def test_a_sink_never_closed_is_closed_at_exit(tmp_path, ending, code):
    script = ("from trainkit.sinks.wandb import WandbSink\n"
              f"sink = WandbSink(mode='offline', project='t', dir={str(tmp_path)!r})\n"
              "for s in range(30):\n    sink.log({'loss': 1.0 / (s + 1)}, s)\n" + ending + "\n")
    subprocess.run([sys.executable, "-c", script], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                   capture_output=True, timeout=120)
    run = the_run_file(tmp_path)
    assert run.exit_code == code and [h["_step"] for h in run.history] == list(range(30))
