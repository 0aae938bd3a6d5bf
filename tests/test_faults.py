"""Faults explained: a full disk while saving, non-finite losses (error and skip), and W&B init
against an unreachable or silent server, an empty WANDB_MODE."""
import contextlib
import errno
import glob
import logging
import socket
import subprocess
import time
from pathlib import Path

import pytest
import torch
from torch.utils.data import TensorDataset

from trainkit.core import checkpoint as ckpt_io
from trainkit.core.checkpoint import DiskFullError
from trainkit.core.record import read_jsonl
from trainkit.core.runner import NonFiniteLossError, Runner


class Wide(torch.nn.Module):
    """One 512x512 linear layer: weights + SGD momentum = 2 x 512 x 513 x 4 B = 2.0 MiB of tensors."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(512, 512)
        self.bad_from = None   # iteration from which the loss is NaN (set by the test)
        self.runner = None

    def forward(self, batch):
        loss = self.lin(batch[0]).pow(2).mean()
        r = self.runner
        if r is not None and self.bad_from is not None and r.iter in self.bad_from:
            loss = loss * float("nan")
        return {"loss": loss}


def wide_runner(work_dir, **kw):
    torch.manual_seed(0)
    model = Wide()
    ds = TensorDataset(torch.randn(16, 512))
    args = dict(max_epochs=1, batch_size=4, work_dir=work_dir, progress=False, log_interval=1)
    args.update(kw)
    r = Runner(model, torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9), ds, **args)
    model.runner = r
    return r


def full_disk(obj, f, *args, **kwargs):
    """What torch.save does on a full disk: some bytes written, then the writer's OSError(ENOSPC)
    re-raised by torch's zip writer as RuntimeError('... unexpected pos N vs M')."""
    f.write(b"PK" + b"\0" * 100)
    try:
        raise OSError(errno.ENOSPC, "No space left on device")
    except OSError:
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 171712 vs 171600") from None


def test_disk_full_while_saving_names_the_file_the_space_and_the_intact_checkpoint(tmp_path, monkeypatch):
    wide_runner(tmp_path).run()
    last = tmp_path / "checkpoints" / "last.pt"
    before = last.read_bytes()
    monkeypatch.setattr(ckpt_io.torch, "save", full_disk)
    with pytest.raises(DiskFullError) as info:
        wide_runner(tmp_path, max_epochs=2, resume="auto").run()
    msg = str(info.value)
    assert f"no space left on device writing {last} (needs ~2.0 MB); the previous checkpoint {last} is intact" in msg
    assert info.value.errno == errno.ENOSPC and "unexpected pos" not in msg
    assert last.read_bytes() == before and ckpt_io.load(last)["counters"]["iter"] == 4
    assert [p.name for p in last.parent.iterdir()] == ["last.pt", "epoch_1.pt"] or \
        sorted(p.name for p in last.parent.iterdir()) == ["epoch_1.pt", "last.pt"]


@contextlib.contextmanager
def tiny_tmpfs(path, size):
    path.mkdir(parents=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.decode().strip()}); the simulated test covers it")
    try:
        yield path
    finally:
        if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(path)], check=False)   # a file still open: detach it


def test_disk_full_on_a_real_tiny_file_system(tmp_path):
    """A 5 MiB tmpfs: last.pt (2 MiB) and epoch_1.pt fit, epoch 2's last.pt does not."""
    with tiny_tmpfs(tmp_path / "disk", "5m") as disk:
        r = wide_runner(disk, max_epochs=2)
        try:
            with pytest.raises(DiskFullError, match=r"no space left on device writing .*last.pt \(needs ~2.0 MB\); "
                                                    r"the previous checkpoint .*last.pt is intact"):
                r.run()
        finally:
            for sink in r.sinks:
                sink.close()
        assert ckpt_io.load(disk / "checkpoints" / "last.pt")["counters"]["iter"] == 4
        assert not list((disk / "checkpoints").glob(".*.tmp"))


def test_nonfinite_error_names_the_intact_checkpoint_or_says_there_is_none(tmp_path):
    r = wide_runner(tmp_path / "a", max_epochs=2)
    r.unwrapped_model.bad_from = {2}
    with pytest.raises(NonFiniteLossError, match=r"non-finite loss nan at epoch 0, iter 2 .* No checkpoint was "
                                                 r"written yet; set trainer.nonfinite=skip"):
        r.run()
    wide_runner(tmp_path / "b").run()
    r = wide_runner(tmp_path / "b", max_epochs=2, resume="auto")
    r.unwrapped_model.bad_from = {6}
    last = tmp_path / "b" / "checkpoints" / "last.pt"
    with pytest.raises(NonFiniteLossError, match=rf"iter 6 .*The last checkpoint {last} \(iter 4\) is intact"):
        r.run()


def test_nonfinite_skip_counts_warns_once_and_stops_after_too_many_in_a_row(tmp_path, caplog):
    r = wide_runner(tmp_path / "a", max_epochs=3, nonfinite="skip", max_consecutive_skips=3)
    r.unwrapped_model.bad_from = {1, 2, 5, 6}           # never 3 in a row: the run completes
    with caplog.at_level(logging.WARNING, logger="trainkit"):
        r.run()
    r.sinks[0].close()
    warnings = [m for m in caplog.messages if "step skipped" in m]
    assert len(warnings) == 1 and "epoch 0, iter 1" in warnings[0]
    rows = read_jsonl(tmp_path / "a" / "metrics.jsonl")
    skipped = {row["step"]: row["train/skipped_steps"] for row in rows if "train/skipped_steps" in row}
    assert skipped == {0: 0, 1: 1, 2: 2, 3: 2, 4: 2, 5: 3, 6: 4, 7: 4, 8: 4, 9: 4, 10: 4, 11: 4}
    assert [row["loss"] for row in rows if row["step"] in (1, 2)] == [None, None]   # NaN as JSON null
    r = wide_runner(tmp_path / "b", max_epochs=3, nonfinite="skip", max_consecutive_skips=3)
    r.unwrapped_model.bad_from = set(range(5, 12))
    with pytest.raises(NonFiniteLossError, match=r"3 steps in a row skipped for a non-finite loss \(trainer.nonfinite="
                                                 r"skip, trainer.max_consecutive_skips=3\), the last at epoch 1, iter "
                                                 r"7.*The last checkpoint .*last.pt \(iter 4\) is intact"):
        r.run()


def test_skip_counters_survive_a_resume(tmp_path):
    full = wide_runner(tmp_path / "full", max_epochs=2, nonfinite="skip", max_consecutive_skips=4)
    full.unwrapped_model.bad_from = {2, 3, 4, 5}       # 4 in a row across the epoch checkpoint at iter 4
    with pytest.raises(NonFiniteLossError, match="4 steps in a row"):
        full.run()
    cut = wide_runner(tmp_path / "cut", max_epochs=1, nonfinite="skip", max_consecutive_skips=4)
    cut.unwrapped_model.bad_from = {2, 3}
    cut.run()
    resumed = wide_runner(tmp_path / "cut", max_epochs=2, nonfinite="skip", max_consecutive_skips=4, resume="auto")
    resumed.unwrapped_model.bad_from = {4, 5}
    with pytest.raises(NonFiniteLossError, match="4 steps in a row .*the last at epoch 1, iter 5"):
        resumed.run()


# ----------------------------------------------------------------------------------- W&B
@pytest.fixture
def wandb_env(monkeypatch, tmp_path):
    for var in ("WANDB_DIR", "WANDB_MODE", "WANDB_API_KEY", "WANDB_DISABLED", "WANDB_SERVICE", "WANDB_RUN_ID"):
        monkeypatch.delenv(var, raising=False)
    home = tmp_path / "wandb_home"
    for var in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        monkeypatch.setenv(var, str(home / var.lower()))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / "cache"))
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")   # nothing listens: refused at once
    monkeypatch.setenv("WANDB_ERROR_REPORTING", "false")
    monkeypatch.setenv("WANDB_SILENT", "true")
    yield monkeypatch
    import wandb   # forget the fake API key: wandb keeps the session's credentials process-wide

    with contextlib.suppress(Exception):
        from wandb.sdk.lib import wbauth

        wbauth.unauthenticate_session()
    wandb.teardown()


def test_an_unreachable_server_costs_seconds_not_the_init_timeout(tmp_path, wandb_env, caplog):
    from trainkit.sinks.wandb import WandbSink

    wandb_env.setenv("WANDB_API_KEY", "x" * 40)
    start = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="trainkit"):
        sink = WandbSink(mode="online", project="t", dir=tmp_path, init_timeout=30)
    took = time.monotonic() - start
    sink.close()
    assert sink.mode == "offline" and took < 15, took   # wandb alone: 30 s + its retries
    assert "W&B server http://127.0.0.1:9 unreachable" in caplog.text and "falling back to offline" in caplog.text
    assert [Path(p).name.split("-")[0] for p in glob.glob(str(tmp_path / "wandb" / "*run-*"))] == ["offline"]


def test_a_silent_server_leaves_no_empty_run_directory(tmp_path, wandb_env, caplog):
    """The server accepts the connection and never answers: wandb gives up after init_timeout and
    leaves wandb/run-*; only the offline run that did start may stay."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    try:
        wandb_env.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{srv.getsockname()[1]}")
        wandb_env.setenv("WANDB_API_KEY", "x" * 40)
        from trainkit.sinks.wandb import WandbSink

        sink = WandbSink(mode="online", project="t", dir=tmp_path, init_timeout=2)
        sink.close()
    finally:
        srv.close()
    assert sink.mode == "offline"
    runs = sorted(Path(p).name for p in glob.glob(str(tmp_path / "wandb" / "*run-*")))
    assert len(runs) == 1 and runs[0].startswith("offline-run-"), runs


@pytest.mark.parametrize("logger, expected", [("default", "offline"), ("online", "offline")])
def test_an_empty_wandb_mode_is_unset(tmp_path, wandb_env, make_cfg, caplog, logger, expected):
    """WANDB_MODE= (set, empty): the default mode, never 'logger.wandb.mode='' is not valid', and
    with logger=online an online attempt (here it fails: offline, with a warning)."""
    from trainkit.build import tracking_sinks

    wandb_env.setenv("WANDB_MODE", "")
    cfg = make_cfg("+recipe=digits_baseline", f"logger={logger}")
    assert cfg.logger.wandb.mode == ("" if logger == "default" else "online")
    with caplog.at_level(logging.WARNING, logger="trainkit"):
        [sink] = tracking_sinks(cfg, tmp_path, resume=False)
    sink.close()
    from trainkit.sinks.wandb import _writer_env

    assert sink.mode == expected and "WANDB_MODE" not in _writer_env()   # out of what wandb.init reads
    assert ("W&B online init failed" in caplog.text) == (logger == "online")
