"""Config → objects: the one place that turns a composed config into a model, an optimizer,
components, sinks and a Runner. Training (:mod:`trainkit.cli.train`) and the schedule
preview (:mod:`trainkit.cli.schedule`, and the planned schedule charted at a run's start)
both build through here, so a preview sees exactly the run's param groups and components.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from .core.instantiate import instantiate_node

log = logging.getLogger("trainkit")

build = instantiate_node   # ``build(node, key)``: instantiate, errors naming the config key


def build_model_and_optimizer(cfg: DictConfig):
    """The recipe's model and its optimizer (named param groups via ``param_groups``)."""
    import torch

    from .optim.groups import build_optimizer

    model = build(cfg.model, "model")
    if not isinstance(model, torch.nn.Module):
        raise ValueError(f"config key 'model' must build a torch.nn.Module, got {type(model).__name__}")
    opt_factory = build(cfg.optimizer, "optimizer", _partial_=True)
    constructor = build(cfg.param_groups, "param_groups")
    brings_own = getattr(constructor, "builds_optimizer", False)   # e.g. trainkit.optim.OpenMMLabOptimizer
    if brings_own and opt_factory is not None:
        raise ValueError("config key 'optimizer' must be null: param_groups "
                         f"({type(constructor).__name__}) builds the optimizer from its own node")
    if opt_factory is None and not brings_own:
        raise ValueError("config key 'optimizer' is null: give an optimizer node (_target_: torch.optim.SGD, lr: ...) "
                         "or a param_groups constructor that builds its own (trainkit.optim.OpenMMLabOptimizer "
                         "with optim_wrapper or optimizer)")
    try:
        return model, build_optimizer(model, opt_factory, constructor)
    except TypeError as e:
        raise ValueError(f"config key 'optimizer': {e}") from e
    except ValueError as e:   # a constructor's check of the model (paramwise_cfg rules, layer ids, ...)
        if constructor is None or str(e).startswith("config key"):
            raise
        raise ValueError(f"config key 'param_groups' (_target_ {_target(cfg.param_groups)}): {e}") from e


def _target(node: Any) -> str:
    return str(node.get("_target_", "?")) if hasattr(node, "get") else "?"


def build_components(cfg: DictConfig) -> dict[str, Any]:
    """Every non-null ``components.<name>`` node, built."""
    return {name: build(node, f"components.{name}") for name, node in (cfg.components or {}).items()
            if node is not None}


def schedule_components(cfg: DictConfig, planned: bool = False) -> tuple[dict[str, Any], list[str]]:
    """``(previewed, skipped)``: freshly built components that declare ``writes_param_groups``
    (:class:`~trainkit.core.protocols.ParamGroupWriter`) — with ``planned=True`` only those
    whose writes need no validation metric — and the names of the others (the EMA, a
    backbone unfreezer, reports: they need a real model and change no schedule)."""
    built = build_components(cfg)
    keep = {n: c for n, c in built.items() if getattr(c, "writes_param_groups", False)
            and not (planned and getattr(c, "needs_metrics", False))}
    return keep, sorted(set(built) - set(keep))


def trainer_config(cfg: DictConfig):
    """``cfg.trainer`` as a checked :class:`~trainkit.core.config.TrainerConfig` (a bad value is a
    ``ConfigError`` naming ``trainer.<key>``, before anything is built)."""
    from omegaconf import OmegaConf

    from .core.config import trainer_config as from_options

    options = OmegaConf.to_container(cfg.trainer, resolve=True)
    options.setdefault("max_epochs", None)   # as given: never "max_iters alone means iterations"
    return from_options(options)


def resolved(cfg: DictConfig) -> dict[str, Any]:
    """The run's resolved config as plain data (enums as their names): what every checkpoint stores."""
    from omegaconf import OmegaConf

    return OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)


def build_runner(cfg: DictConfig, work_dir: Path, extra_sinks: list | None = None, multirun: bool = False):
    """Everything a run needs, built from ``cfg``; the Runner is returned unstarted.

    ``trainer.resume=auto`` may choose a checkpoint of a sibling run directory (see
    :func:`trainkit.core.resume.choose`: only a compatible one): the run then writes there."""
    import dataclasses

    import torch
    from accelerate.utils import set_seed

    from .core import resume as resume_io
    from .core.dist import default_resume, from_rank0, process_state
    from .core.runner import Runner

    tc = trainer_config(cfg)
    check_logger(cfg)
    run_config = resolved(cfg)
    state = process_state(tc.dist_timeout)   # the process group (several processes), before any collective
    work_dir = _same_on_all_ranks(work_dir, state)
    # unset under an elastic restart (TORCHELASTIC_RESTART_COUNT > 0 on some rank), trainer.resume means auto
    resume = default_resume(tc.resume, state)
    chosen: list = [None]

    def decide():   # on rank 0 (hosts without a shared file system see different checkpoints)
        point = chosen[0] = resume_io.choose(resume, work_dir, run_config, multirun)
        if resume and point is None:
            log.warning("trainer.resume=%s: no checkpoint found, starting a fresh run", resume)
        run_dir = point.run_dir if point is not None and point.run_dir is not None else work_dir
        return run_dir, (point.path if point is not None else None)

    work_dir, resume_path = from_rank0(state, decide)   # a resumed run writes into its checkpoint's run dir
    point = chosen[0]   # rank 0's, loaded and checked; the other ranks load resume_path in Runner.run
    if tc.num_threads is not None:
        torch.set_num_threads(tc.num_threads)
    set_seed(cfg.seed)
    data = build(cfg.data, "data")
    model, optimizer = build_model_and_optimizer(cfg)
    components = build_components(cfg)
    evaluator = build(cfg.evaluator, "evaluator")
    tc = dataclasses.replace(tc, resume=str(resume_path) if resume_path else None)
    runner = Runner(model, optimizer, data.train, val_data=data.val, evaluator=evaluator, components=components,
                    sinks=list(extra_sinks or []), collate_fn=getattr(data, "collate_fn", None), seed=cfg.seed,
                    work_dir=work_dir, config=tc, run_config=run_config, resume_point=point)
    if runner.is_main:   # the logger hook writes to runner.sinks
        runner.sinks.extend(tracking_sinks(cfg, runner.work_dir, resume=resume_path is not None))
    return runner


def check_logger(cfg: DictConfig) -> None:
    """``logger.wandb``'s values checked before anything is built (the sink is made last)."""
    node = (cfg.get("logger") or {}).get("wandb")
    if node is not None:
        from omegaconf import OmegaConf

        from .sinks.wandb import WandbConfig

        WandbConfig(**OmegaConf.to_container(node, resolve=True))


def tracking_sinks(cfg: DictConfig, work_dir: Path, resume: bool) -> list:
    """The W&B sink from ``logger.wandb`` (none when that is null or its mode is disabled)."""
    node = (cfg.get("logger") or {}).get("wandb")
    if node is None:
        return []
    from .sinks.wandb import build_wandb_sink

    sink = build_wandb_sink(node, cfg, work_dir, resume=resume)
    return [sink] if sink is not None else []


def groups_from_config(cfg: DictConfig) -> list[dict[str, Any]]:
    """The param groups (hyper-parameters only) the recipe's model and optimizer give; with
    ``model: ???`` (a ported config not filled in yet), the optimizer's one base group."""
    import torch
    from omegaconf import OmegaConf

    from .core.groups import group_names
    from .schedules.preview import group_hparams

    if OmegaConf.is_missing(cfg, "model"):
        factory = build(cfg.optimizer, "optimizer", _partial_=True)
        optimizer = factory([{"params": [torch.zeros(1, requires_grad=True)], "name": "pg0"}])
    else:
        _, optimizer = build_model_and_optimizer(cfg)
    return group_hparams(optimizer, group_names(optimizer))


def planned_rows(cfg: DictConfig, runner):
    """The planned schedule of a run about to start: its schedule components (those whose writes
    depend on metrics not yet seen, the plateau reducer, are left out; an mmengine list's
    ReduceOnPlateau members stay inert) previewed over the runner's own param groups and
    iterations per epoch (per process). A :class:`~trainkit.schedules.preview.ScheduleTable`
    (a sequence of row dicts built on demand)."""
    from .schedules.preview import _preview, group_hparams

    t = cfg.trainer
    components, _ = schedule_components(cfg, planned=True)
    table, _ = _preview(group_hparams(runner.optimizer, runner.group_names), components,
                        t.max_epochs, runner.iters_per_epoch, None, t.max_iters, 1)
    return table


def iters_per_epoch_from_config(cfg: DictConfig, num_processes: int = 1) -> int:
    """Batches per epoch of each process, counted by the Runner's own training sampler."""
    from .core.data import EpochBatchSampler

    n = len(build(cfg.data, "data").train)
    return len(EpochBatchSampler(n, cfg.trainer.batch_size, shuffle=True, drop_last=cfg.trainer.drop_last,
                                 world=num_processes))


def _same_on_all_ranks(work_dir: Path, state) -> Path:
    """Under several processes each rank's Hydra may stamp a different run dir (``${now:}``
    read in different seconds, or on hosts whose agents started at different times): use rank
    0's, and remove this rank's own when it differs and holds nothing but what Hydra put there
    (``.hydra/``, the job's ``.log``)."""
    import shutil

    from .core.dist import from_rank0

    if state.num_processes == 1:
        return work_dir
    chosen = Path(from_rank0(state, str, work_dir))
    if chosen.resolve() != work_dir.resolve() and work_dir.is_dir() \
            and all(p.name == ".hydra" or p.suffix == ".log" for p in work_dir.iterdir()):
        shutil.rmtree(work_dir, ignore_errors=True)
    return chosen
