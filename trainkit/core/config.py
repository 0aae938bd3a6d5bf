"""The trainer's options, declared once.

:class:`TrainerConfig` is at the same time the Hydra schema of ``trainer.*`` (its
defaults are the YAML defaults; ``python -m trainkit.train trainer.grad_accum=4``),
the keyword arguments of :class:`trainkit.core.runner.Runner`
(``Runner(model, opt, data, grad_accum=4)``), and what the entry point reads.
"""
from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Optional


class MixedPrecision(str, enum.Enum):
    no = "no"
    fp16 = "fp16"
    bf16 = "bf16"


class NonFinite(str, enum.Enum):
    """What a non-finite (NaN/inf) training loss does."""

    error = "error"     # stop with NonFiniteLossError
    skip = "skip"       # skip that optimizer step (on every rank together)
    ignore = "ignore"   # step anyway


class Rule(str, enum.Enum):
    """How a monitored metric improves (mmengine's ``rule``, Lightning's ``mode``)."""

    greater = "greater"   # higher is better (accuracy, AUC, PSNR)
    less = "less"         # lower is better (loss, error)


@dataclass
class CheckpointConfig:
    """Which checkpoint files a run keeps (``trainer.checkpoint.*``; when they are taken:
    ``trainer.checkpoint_interval`` and ``checkpoint_interval_iters``). See docs/checkpoints.md."""

    max_keep: Optional[int] = None      # newest N epoch_*.pt / iter_*.pt together (0: none); null: every
    #                                     epoch_*.pt and only the newest iter_*.pt. last.pt and best are never deleted
    save_best: Optional[str] = None     # validation metric, e.g. val/acc: best.pt holds the best validation so far
    rule: Optional[Rule] = None         # greater | less; null: inferred from the metric's name (mmengine's keys)
    top_k: int = 1                      # > 1: also keep the k best as best_epoch_<N>.pt (best.pt links the first)


@dataclass
class TrainerConfig:
    max_epochs: Optional[int] = 10          # give this or max_iters (then max_epochs: null)
    max_iters: Optional[int] = None         # iteration-based training
    batch_size: int = 32                    # per process
    val_batch_size: Optional[int] = None    # null: batch_size
    num_workers: int = 0                    # DataLoader workers
    drop_last: bool = False
    val_interval: int = 1                   # validate every N epochs, and after the last epoch
    val_begin: int = 1                      # first epoch (1-based) that validates
    grad_accum: int = 1                     # optimizer step every N batches
    clip_grad: Optional[float] = None       # max global grad norm; null: no clipping
    mixed_precision: MixedPrecision = MixedPrecision.no   # no | fp16 | bf16
    checkpoint_interval: int = 1            # write epoch_<N>.pt every N epochs; last.pt every epoch
    checkpoint_interval_iters: Optional[int] = None   # also last.pt and iter_<N>.pt every N iterations
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)   # retention and best.pt
    resume: Optional[str] = None            # auto | PATH
    load_from: Optional[str] = None         # start from this file's model weights (a fresh run, not a resume)
    load_from_prefix: Any = None            # {file module: model module}: {backbone: backbone} takes backbone.*
    #                                         only; {.: backbone} puts a whole file under backbone; null: as is
    load_from_strict: bool = False          # true: every model entry loaded and every file entry used, or an error
    log_interval: int = 10                  # a logged row every N iterations (and at epoch ends)
    nonfinite: NonFinite = NonFinite.error  # error | skip | ignore
    progress: bool = True                   # progress bar
    monitor: Optional[str] = None           # metric returned to sweepers, e.g. val/acc
    print_events: bool = False              # print which handlers fire at each event
    num_threads: Optional[int] = None       # torch intra-op threads (null: torch's default)
    find_unused_parameters: bool = False    # DDP: parameters that get no gradient in some steps
    dist_timeout: float = 300.0             # seconds a collective waits for every rank (several processes)


TRAINER_OPTIONS = tuple(f.name for f in fields(TrainerConfig))


def trainer_config(options: dict) -> TrainerConfig:
    """A :class:`TrainerConfig` from keyword options (the Runner's ``**options``). In Python,
    giving ``max_iters`` alone means iteration-based training (``max_epochs=None``)."""
    unknown = sorted(set(options) - set(TRAINER_OPTIONS))
    if unknown:
        raise TypeError(f"unknown trainer option(s) {unknown}; valid: {', '.join(TRAINER_OPTIONS)}")
    options = dict(options)
    if isinstance(options.get("checkpoint"), Mapping):
        options["checkpoint"] = checkpoint_config(options["checkpoint"])
    if isinstance(options.get("load_from_prefix"), Mapping):
        options["load_from_prefix"] = dict(options["load_from_prefix"])
    if options.get("max_iters") is not None and "max_epochs" not in options:
        options["max_epochs"] = None
    return TrainerConfig(**options)


def checkpoint_config(options: Mapping) -> CheckpointConfig:
    """A :class:`CheckpointConfig` from a mapping (a dict, or Hydra's ``trainer.checkpoint`` node)."""
    valid = [f.name for f in fields(CheckpointConfig)]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise TypeError(f"unknown trainer.checkpoint option(s) {unknown}; valid: {', '.join(valid)}")
    return CheckpointConfig(**dict(options))


def value_of(x):
    """An enum member's value (``NonFinite.skip`` → ``"skip"``), anything else as is."""
    return getattr(x, "value", x)
