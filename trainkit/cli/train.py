"""``python -m trainkit.train +recipe=NAME [overrides]``: compose the config, build the run
(:mod:`trainkit.build`), train, and return the monitored metric (so Hydra sweepers can
optimise it)."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from .. import build as B
from .. import config as C

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
        runner.work_dir.mkdir(parents=True, exist_ok=True)
        (runner.work_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
        (runner.work_dir / "events.txt").write_text(runner.bus.describe() + "\n")
        if cfg.trainer.print_events:
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
        raise ValueError(f"trainer.monitor={monitor!r} is not among the final metrics {sorted(metrics)}")
    value = metrics[monitor]
    if runner.is_main:
        log.info("%s = %.6g", monitor, value)
    return value


def _task(cfg: DictConfig) -> float | None:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hc = HydraConfig.get()
    return run_config(cfg, hc.runtime.output_dir, multirun=hc.mode == RunMode.MULTIRUN)


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
