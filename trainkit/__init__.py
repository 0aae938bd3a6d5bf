"""trainkit: a small training loop on accelerate whose schedules are exact and visible.

Packages (imports flow one way: cli → build → the rest → core; see docs/architecture.md)::

    core/       events, the Runner, checkpoints, data plumbing, the run's record
    schedules/  lr / momentum / plateau components (mmcv 1.x and mmengine), the preview
    optim/      param groups: named groups, layer decay; the momentum EMA
    sinks/      W&B
    tasks/      the shipped models, data and evaluators (digits, restoration, BYOL, ConvNeXt, SOT)
    build.py    config → objects, for training and the preview
    cli/        python -m trainkit.{train,schedule,plot}, the sweep callback

What users import is exported here (lazily: ``import trainkit`` stays cheap).
"""
from __future__ import annotations

import importlib
from typing import Any

from . import _compat

__version__ = "0.2.0"

_compat.install()

_EXPORTS = {
    "Runner": "trainkit.core.runner", "NonFiniteLossError": "trainkit.core.runner",
    "TrainerConfig": "trainkit.core.config",
    "Event": "trainkit.core.events", "EventBus": "trainkit.core.events", "Priority": "trainkit.core.events",
    "Stateful": "trainkit.core.protocols", "RunnerState": "trainkit.core.protocols",
    "ParamGroupWriter": "trainkit.core.protocols",
    "JsonlSink": "trainkit.core.record", "read_jsonl": "trainkit.core.record",
    "DataBundle": "trainkit.core.data", "MeanOutputs": "trainkit.core.evaluation",
    "preview": "trainkit.schedules.preview", "Updater": "trainkit.schedules.updater",
    "write_lrs": "trainkit.schedules.updater",
    "lr_config": "trainkit.schedules.mmcv_lr", "momentum_config": "trainkit.schedules.mmcv_momentum",
    "LinearLrInterval": "trainkit.schedules.interval", "ReduceLR": "trainkit.schedules.plateau",
    "param_scheduler": "trainkit.schedules.mmengine", "ParamSchedulerList": "trainkit.schedules.mmengine",
    "ScheduleWarning": "trainkit.schedules.mmengine",
    "NamedGroups": "trainkit.optim.groups", "LayerDecayConstructor": "trainkit.optim.layer_decay",
    "MomentumEMA": "trainkit.optim.ema", "WandbSink": "trainkit.sinks.wandb",
}
_MMCV = ("Fixed", "Step", "Exp", "Poly", "Inv", "CosineAnnealing", "FlatCosineAnnealing", "CosineRestart",
         "Cyclic", "OneCycle", "LinearAnnealing", "SiameseRPN")
_EXPORTS.update({f"{p}LrUpdater": "trainkit.schedules.mmcv_lr" for p in _MMCV})
_EXPORTS.update({f"{p}MomentumUpdater": "trainkit.schedules.mmcv_momentum"
                 for p in ("Step", "CosineAnnealing", "LinearAnnealing", "Cyclic", "OneCycle")})

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'trainkit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
