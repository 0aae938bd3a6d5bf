"""``python -m trainkit.train +recipe=NAME [overrides]``: compose the config, build the run
(:mod:`trainkit.build`), train, and return the monitored metric (so Hydra sweepers can
optimise it). ``--help`` prints Hydra's usage. A bad value, or a fault whose message says
what to do (a full disk, a damaged checkpoint, a diverging loss), is printed as one short
error, not a traceback (``HYDRA_FULL_ERROR=1`` shows the traceback)."""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from .. import build as B
from .. import config as C
from ..core.checks import ConfigError, ReportedError

log = logging.getLogger("trainkit")


def log_planned_schedule(cfg: DictConfig, runner) -> None:
    """Give sinks that chart a planned schedule (W&B) the schedule preview's rows."""
    sinks = [s for s in runner.sinks if getattr(s, "wants_planned_schedule", False)]
    if not sinks:
        return
    try:
        rows = B.planned_rows(cfg, runner)
    except Exception as e:   # a preview problem must not stop training
        log.warning("schedule preview failed (%s: %s); no planned schedule logged", type(e).__name__, e)
        return
    for sink in sinks:
        sink.log_planned(rows)


def run_config(cfg: DictConfig, work_dir: str | Path, multirun: bool = False) -> float | None:
    """Train from a composed config; returns ``metrics[trainer.monitor]`` (or None)."""
    runner = B.build_runner(cfg, Path(work_dir), multirun=multirun)
    if runner.is_main:
        write_run_files(runner, OmegaConf.to_yaml(cfg, resolve=True))
        if runner.config.print_events:
            print(runner.bus.describe())
    log_planned_schedule(cfg, runner)
    status = "failed"
    try:
        metrics = runner.run()
        status = "finished"
    except KeyboardInterrupt:
        status = "killed"
        raise
    finally:
        for sink in runner.sinks:
            sink.close(status)
    monitor = cfg.trainer.monitor
    if monitor is None:
        return None
    if monitor not in metrics:
        raise ConfigError(f"trainer.monitor={monitor!r} is not among the final metrics {sorted(metrics)}")
    value = metrics[monitor]
    if runner.is_main:
        log.info("%s = %.6g", monitor, value)
    return value


def write_run_files(runner, config_yaml: str) -> tuple[Path, Path]:
    """``config.yaml`` (the resolved config) and ``events.txt`` (handlers per event) in the run
    directory. A run that continues in a directory that already has them (a resume) never
    overwrites them: it writes ``config.resume-<n>.yaml`` and ``events.resume-<n>.txt``, ``n``
    counting the resumes."""
    d = runner.work_dir
    d.mkdir(parents=True, exist_ok=True)
    config, events = d / "config.yaml", d / "events.txt"
    n = 0
    while config.exists() or events.exists():
        n += 1
        config, events = d / f"config.resume-{n}.yaml", d / f"events.resume-{n}.txt"
    config.write_text(config_yaml)
    events.write_text(runner.bus.describe() + "\n")
    if n:
        log.info("this run continues in %s: its config is in %s (config.yaml is the first run's)", d, config.name)
    return config, events


def _task(cfg: DictConfig) -> float | None:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hc = HydraConfig.get()
    try:
        return run_config(cfg, hc.runtime.output_dir, multirun=hc.mode == RunMode.MULTIRUN)
    except Exception as e:
        short = short_error(e)
        if short is None or os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        raise short from None


def short_error(e: BaseException) -> Exception | None:
    """The one-line error Hydra prints for ``e`` (its message, no traceback) when ``e``'s message is
    all a user needs: a bad config value (:class:`ConfigError`) or a fault that says what to do
    (:class:`ReportedError`); None for anything else (a bug: the traceback matters)."""
    from hydra.errors import CompactHydraException

    if isinstance(e, (ConfigError, ReportedError)):
        return CompactHydraException(f"Error: {e}")   # Hydra adds: HYDRA_FULL_ERROR=1 for the traceback
    return None


def main() -> Any:
    C.register()
    out = hydra.main(version_base="1.3", config_path=str(C.CONF_DIR), config_name="config")(_task)()
    _end_process_group()
    return out


def _end_process_group() -> None:
    """Destroy the process group of a multi-process run while the interpreter is alive: left
    to interpreter shutdown, gloo's worker threads can abort the process (SIGABRT, "terminate
    called without an active exception"), and the launcher then reports the run as failed."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
