"""The trainer's options, declared once.

:class:`TrainerConfig` is at the same time the Hydra schema of ``trainer.*`` (its
defaults are the YAML defaults; ``python -m trainkit.train trainer.grad_accum=4``),
the keyword arguments of :class:`trainkit.core.runner.Runner`
(``Runner(model, opt, data, grad_accum=4)``), and what the entry point reads.

Every value is checked when a ``TrainerConfig`` is made (``__post_init__``), against the
field's declared type and the bounds declared with it (``option(default, low=1)``):
booleans are real booleans (never ``"yes"`` or ``1``), 0 or a negative number never
means "the default" or "off" (say ``null``), and the error names ``trainer.<field>``,
the value and what is allowed. The Hydra schema (:mod:`trainkit.config`) is this
dataclass with its booleans left untyped, so that ``trainer.progress=yes`` reaches this
check instead of being converted to ``True`` by OmegaConf.
"""
from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Optional

from .checks import ConfigError, check_dataclass


class MixedPrecision(str, enum.Enum):
    no = "no"
    fp16 = "fp16"
    bf16 = "bf16"


class NonFinite(str, enum.Enum):
    """What a non-finite (NaN/inf) training loss does."""

    error = "error"     # stop with NonFiniteLossError
    skip = "skip"       # skip that optimizer step (on every rank together)
    ignore = "ignore"   # step anyway


def option(default: Any, *, low: float | None = None, low_open: bool = False, nonempty: bool = False) -> Any:
    """A field with its bounds: ``low`` (``>= low``, or ``> low`` with ``low_open``) for numbers,
    ``nonempty`` for strings; checked by :func:`~trainkit.core.checks.check_dataclass`."""
    return field(default=default, metadata={"low": low, "low_open": low_open, "nonempty": nonempty})


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
    # (checked, with messages naming each key, by trainkit.core.checkpoint.CheckpointManager)


@dataclass
class TrainerConfig:
    max_epochs: Optional[int] = option(10, low=1)       # give this or max_iters (then max_epochs: null)
    max_iters: Optional[int] = option(None, low=1)      # iteration-based training
    batch_size: int = option(32, low=1)                 # per process
    val_batch_size: Optional[int] = option(None, low=1)   # null: batch_size
    num_workers: int = option(0, low=0)                 # DataLoader workers (0: load in the main process)
    drop_last: bool = False
    val_interval: int = option(1, low=1)                # validate every N epochs, and after the last epoch
    val_begin: int = option(1, low=1)                   # first epoch (1-based) that validates
    grad_accum: int = option(1, low=1)                  # optimizer step every N batches
    clip_grad: Optional[float] = option(None, low=0, low_open=True)   # max global grad norm; null: no clipping
    mixed_precision: MixedPrecision = MixedPrecision.no   # no | fp16 | bf16
    checkpoint_interval: int = option(1, low=1)         # write epoch_<N>.pt every N epochs; last.pt every epoch
    checkpoint_interval_iters: Optional[int] = option(None, low=1)   # also last.pt + iter_<N>.pt every N iterations
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)   # retention and best.pt
    resume: Optional[str] = option(None, nonempty=True)   # auto | PATH (README: what may differ on resume)
    load_from: Optional[str] = option(None, nonempty=True)   # start from this file's model weights (a fresh run)
    load_from_prefix: Any = None            # {file module: model module}: {backbone: backbone} takes backbone.*
    #                                         only; {.: backbone} puts a whole file under backbone; null: as is
    load_from_strict: bool = False          # true: every model entry loaded and every file entry used, or an error
    log_interval: int = option(10, low=1)               # a logged row every N iterations (and at epoch ends)
    nonfinite: NonFinite = NonFinite.error              # error | skip | ignore
    max_consecutive_skips: int = option(20, low=1)      # nonfinite=skip: stop after this many skipped steps in a row
    progress: bool = True                               # progress bar
    monitor: Optional[str] = option(None, nonempty=True)   # metric returned to sweepers, e.g. val/acc
    print_events: bool = False                          # print which handlers fire at each event
    num_threads: Optional[int] = option(None, low=1)    # torch intra-op threads (null: torch's default)
    find_unused_parameters: bool = False                # DDP: parameters that get no gradient in some steps
    dist_timeout: float = option(300.0, low=0, low_open=True)   # seconds a collective waits for every rank

    def __post_init__(self) -> None:
        check_dataclass(self, "trainer")
        if not math.isfinite(self.dist_timeout):
            raise ConfigError(f"trainer.dist_timeout={self.dist_timeout!r} is not valid; allowed: a finite number > 0")
        prefix = self.load_from_prefix
        if prefix is not None and not (isinstance(prefix, Mapping) and all(isinstance(x, str) for kv in prefix.items()
                                                                          for x in kv)):
            raise ConfigError(f"trainer.load_from_prefix={prefix!r} is not valid; allowed: a map of module names "
                              "(file module: model module), e.g. {backbone: backbone} or {.: backbone}, or null")
        if (self.max_epochs is None) == (self.max_iters is None):
            raise ConfigError("set exactly one of trainer.max_epochs and trainer.max_iters "
                              f"(got max_epochs={self.max_epochs}, max_iters={self.max_iters}); "
                              "for iteration-based training: trainer.max_epochs=null trainer.max_iters=N")


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
