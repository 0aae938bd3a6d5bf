"""Entry point: ``python -m trainkit.train +recipe=NAME [overrides]``.

Builds everything from the config with Hydra ``_target_`` instantiation, runs the
:class:`~trainkit.runner.Runner`, and returns the monitored metric (so Hydra
sweepers can optimise it).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional

import hydra
from omegaconf import DictConfig, OmegaConf

from . import config as C

log = logging.getLogger("trainkit")


def build_runner(cfg: DictConfig, work_dir: Path, extra_sinks: Optional[list] = None,
                 multirun: bool = False):
    """Everything a run needs, built from ``cfg``; the Runner is returned unstarted."""
    import torch
    from accelerate.utils import set_seed

    from .checkpoint import find_resume
    from .runner import Runner

    t = cfg.trainer
    work_dir = _same_on_all_ranks(work_dir)
    resume_path = find_resume(t.resume, work_dir, multirun)
    if t.resume and resume_path is None:
        log.warning("trainer.resume=%s: no checkpoint found, starting a fresh run", t.resume)
    elif resume_path is not None and resume_path.parent.name == "checkpoints":
        work_dir = resume_path.parent.parent   # continue writing into the interrupted run's directory
    if t.num_threads:
        torch.set_num_threads(t.num_threads)
    set_seed(cfg.seed)
    data = C.build(cfg.data, "data")
    model, optimizer = build_model_and_optimizer(cfg)
    components = {}
    for name, node in (cfg.components or {}).items():
        if node is not None:
            components[name] = C.build(node, f"components.{name}")
    evaluator = C.build(cfg.evaluator, "evaluator")
    runner = Runner(
        model, optimizer, data.train, val_data=data.val, evaluator=evaluator, components=components,
        sinks=list(extra_sinks or []), collate_fn=getattr(data, "collate_fn", None),
        max_epochs=t.max_epochs, max_iters=t.max_iters, batch_size=t.batch_size,
        val_batch_size=t.val_batch_size, num_workers=t.num_workers, drop_last=t.drop_last,
        val_interval=t.val_interval, grad_accum=t.grad_accum, clip_grad=t.clip_grad,
        mixed_precision=_value(t.mixed_precision), seed=cfg.seed, work_dir=work_dir,
        checkpoint_interval=t.checkpoint_interval, checkpoint_interval_iters=t.checkpoint_interval_iters,
        resume=str(resume_path) if resume_path else None, log_interval=t.log_interval,
        nonfinite=_value(t.nonfinite), progress=t.progress, monitor=t.monitor,
        find_unused_parameters=t.find_unused_parameters,
    )
    if runner.is_main:   # the logger hook writes to runner.sinks
        runner.sinks.extend(_tracking_sinks(cfg, runner.work_dir, resume=resume_path is not None))
    return runner


def _tracking_sinks(cfg: DictConfig, work_dir: Path, resume: bool) -> list:
    """The W&B sink from ``logger.wandb`` (none when that is null or its mode is disabled)."""
    node = (cfg.get("logger") or {}).get("wandb")
    if node is None:
        return []
    from .wandb_sink import build_wandb_sink

    sink = build_wandb_sink(node, cfg, work_dir, resume=resume)
    return [sink] if sink is not None else []


def _log_planned_schedule(cfg: DictConfig, runner) -> None:
    """Give sinks that chart a planned schedule (W&B) the schedule preview's rows."""
    sinks = [s for s in runner.sinks if getattr(s, "wants_planned_schedule", False)]
    if not sinks:
        return
    from .schedule import planned_rows

    try:
        rows = planned_rows(cfg, runner)
    except Exception as e:   # a preview problem must not stop training
        log.warning("schedule preview failed (%s: %s); no planned schedule logged", type(e).__name__, e)
        return
    for sink in sinks:
        sink.log_planned(rows)


def build_model_and_optimizer(cfg: DictConfig):
    """The recipe's model and its optimizer (named param groups via ``param_groups``)."""
    import torch

    from .optim import build_optimizer

    model = C.build(cfg.model, "model")
    if not isinstance(model, torch.nn.Module):
        raise ValueError(f"config key 'model' must build a torch.nn.Module, got {type(model).__name__}")
    opt_factory = C.build(cfg.optimizer, "optimizer", _partial_=True)
    constructor = C.build(cfg.param_groups, "param_groups")
    try:
        return model, build_optimizer(model, opt_factory, constructor)
    except TypeError as e:
        raise ValueError(f"config key 'optimizer': {e}") from e


def run_config(cfg: DictConfig, work_dir: str | Path, multirun: bool = False) -> Optional[float]:
    """Train from a composed config; returns ``metrics[trainer.monitor]`` (or None)."""
    work_dir = Path(work_dir)
    runner = build_runner(cfg, work_dir, multirun=multirun)
    if runner.is_main:
        runner.work_dir.mkdir(parents=True, exist_ok=True)
        (runner.work_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
        (runner.work_dir / "events.txt").write_text(runner.bus.describe() + "\n")
        if cfg.trainer.print_events:
            print(runner.bus.describe())
    _log_planned_schedule(cfg, runner)
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


def _same_on_all_ranks(work_dir: Path) -> Path:
    """Under several processes each rank's Hydra may stamp a different run dir (``${now:}``
    read in different seconds): use rank 0's, and remove this rank's own when it differs
    and holds nothing but what Hydra put there (``.hydra/``, the job's ``.log``)."""
    import shutil

    import torch
    from accelerate import PartialState
    from accelerate.utils import broadcast_object_list

    state = PartialState(cpu=not torch.cuda.is_available())   # must match the Runner's Accelerator
    if state.num_processes == 1:
        return work_dir
    box = [str(work_dir)]
    broadcast_object_list(box, from_process=0)
    chosen = Path(box[0])
    if chosen.resolve() != work_dir.resolve() and work_dir.is_dir() \
            and all(p.name == ".hydra" or p.suffix == ".log" for p in work_dir.iterdir()):
        shutil.rmtree(work_dir, ignore_errors=True)
    return chosen


def _value(x: Any) -> Any:
    return getattr(x, "value", x)


def _task(cfg: DictConfig) -> Optional[float]:
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


if __name__ == "__main__":
    main()
