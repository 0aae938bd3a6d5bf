"""The Runner: one training loop on ``accelerate``, with every extension on the event bus.

See :mod:`trainkit.core.events` for the loop's pseudocode. The Runner owns the counters
(0-based ``epoch``, global ``iter``, ``inner_iter``), builds nothing from config
itself, and never passes a schedule through ``accelerator.prepare`` (accelerate
would step a prepared scheduler once per process).

Lean optimizer path: for single-device and DDP runs the optimizer is *not* wrapped
in accelerate's ``AcceleratedOptimizer`` (which costs ~130 µs per step on CPU). The
Runner does what that wrapper would do there: it steps only on real optimizer steps,
skips DDP's gradient all-reduce between them (``no_sync``), and drives the fp16
``GradScaler`` (scale, unscale before clipping, step, update). DeepSpeed, FSDP and
XLA runs take accelerate's own wrapper.
"""
from __future__ import annotations

import contextlib
import logging
import math
import os
from pathlib import Path
from typing import Any
from collections.abc import Callable, Mapping

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedDataParallelKwargs, DistributedType, set_seed
from torch.utils.data import Dataset

from . import checkpoint as ckpt_io
from . import dist
from . import resume as resume_io
from .checks import ConfigError, ReportedError, every_n, validation_due
from .config import NonFinite, TrainerConfig, trainer_config, value_of
from .data import make_loader, to_device
from .events import Event, EventBus
from .groups import group_names
from .record import JsonlSink, LoggerHook, Sink

log = logging.getLogger("trainkit")

_LEAN = {DistributedType.NO, DistributedType.MULTI_CPU, DistributedType.MULTI_GPU}


class NonFiniteLossError(ReportedError, FloatingPointError):
    """A non-finite loss under ``trainer.nonfinite=error``, or too many skipped steps in a row under
    ``skip``; the message names the iteration, every group's lr and the intact checkpoint."""


class Runner:
    """Trains ``model`` with ``optimizer`` on ``train_data``.

    The model's ``forward(batch)`` returns a dict with a scalar ``loss`` (and any
    other scalars to log). ``evaluator(runner) -> {name: float}`` computes the
    validation metrics; it may declare ``metric_names(runner)``, the names it returns,
    so that ``trainer.monitor`` and a component's ``val_metric`` are checked before the
    first iteration. ``components`` maps names to objects whose methods named after
    events (``before_iter``, ...) go on the bus and whose ``state_dict`` goes into
    checkpoints under that name. ``run_config`` (the resolved config, a plain mapping)
    is stored in every checkpoint, and a checkpoint is resumed from only when its stored
    config is compatible (:mod:`trainkit.core.resume`). ``resume="auto"`` here looks in
    ``work_dir`` only; ``resume_point`` is a checkpoint already chosen (and loaded) by
    :func:`trainkit.core.resume.choose`, e.g. in a sibling run directory.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        train_data: Dataset | None = None,
        *,
        train_loader: Any | None = None,
        dry_run: bool = False,
        val_data: Dataset | None = None,
        evaluator: Callable[[Runner], Mapping[str, float]] | None = None,
        components: Mapping[str, Any] | None = None,
        sinks: list[Sink] | None = None,
        collate_fn: Callable | None = None,
        seed: int = 0,
        work_dir: str | os.PathLike | None = None,
        accelerator: Accelerator | None = None,
        config: TrainerConfig | None = None,
        run_config: Mapping[str, Any] | None = None,
        resume_point: resume_io.ResumePoint | None = None,
        **options: Any,
    ):
        """``config`` (a :class:`~trainkit.core.config.TrainerConfig`) or its fields as keyword
        ``options`` (``max_epochs=3, grad_accum=2``) set the loop; not both."""
        if config is not None and options:
            raise TypeError(f"give config or trainer options, not both (got {sorted(options)})")
        cfg = config if config is not None else trainer_config(options)   # every value checked there
        if not isinstance(cfg, TrainerConfig):
            raise TypeError(f"config must be a TrainerConfig, got {type(cfg).__name__}")
        self.config = cfg
        max_epochs, max_iters = cfg.max_epochs, cfg.max_iters
        nonfinite, mixed_precision = value_of(cfg.nonfinite), value_of(cfg.mixed_precision)
        batch_size, drop_last, num_workers = cfg.batch_size, cfg.drop_last, cfg.num_workers

        self.dist_timeout = dist.timeout_seconds(cfg.dist_timeout)
        if accelerator is None:
            if not dry_run:   # the process group, with the timeout (and a restart's own store prefix)
                dist.process_state(self.dist_timeout)
            ddp = [DistributedDataParallelKwargs(find_unused_parameters=True)] if cfg.find_unused_parameters else []
            accelerator = _SingleProcess() if dry_run else Accelerator(
                mixed_precision=mixed_precision, cpu=not torch.cuda.is_available(),
                kwargs_handlers=[*ddp, dist.init_kwargs(self.dist_timeout)])
        self.accelerator = accelerator
        acc = self.accelerator
        self.is_main = acc.is_main_process
        self.work_dir = Path(work_dir) if work_dir is not None else Path.cwd()
        self.seed, self.grad_accum, self.clip_grad = seed, cfg.grad_accum, cfg.clip_grad
        self.val_interval, self.val_begin = cfg.val_interval, cfg.val_begin
        self.nonfinite, self.monitor = nonfinite, cfg.monitor
        self.checkpoint_interval = cfg.checkpoint_interval
        self.checkpoint_interval_iters = cfg.checkpoint_interval_iters
        self.resume, self.progress = cfg.resume, cfg.progress and self.is_main
        self.run_config = dict(run_config) if run_config is not None else None
        self.resume_point = resume_point
        self.max_consecutive_skips = cfg.max_consecutive_skips

        self.dry_run = dry_run
        if (train_data is None) == (train_loader is None):
            raise ValueError("give exactly one of train_data and train_loader")
        self.train_loader = train_loader if train_loader is not None else make_loader(
            train_data, batch_size, shuffle=True, drop_last=drop_last, seed=seed,
            rank=acc.process_index, world=acc.num_processes, num_workers=num_workers, collate_fn=collate_fn)
        self.val_loader = None if val_data is None else make_loader(
            val_data, cfg.val_batch_size or batch_size, shuffle=False, rank=acc.process_index,
            world=acc.num_processes, num_workers=num_workers, collate_fn=collate_fn)
        self.iters_per_epoch = len(self.train_loader)
        if self.iters_per_epoch < 1:
            raise ValueError(f"the training set gives no batch (batch_size={batch_size}, drop_last={drop_last})")
        if max_iters is None:
            self.max_epochs, self.max_iters = max_epochs, max_epochs * self.iters_per_epoch
        else:
            self.max_iters, self.max_epochs = max_iters, math.ceil(max_iters / self.iters_per_epoch)
        self.evaluator = evaluator
        ck = cfg.checkpoint
        self.checkpoints = ckpt_io.CheckpointManager(
            self.work_dir / "checkpoints", self.iters_per_epoch, max_keep=ck.max_keep, save_best=ck.save_best,
            rule=value_of(ck.rule), top_k=ck.top_k)
        self.load_from_prefix = ckpt_io.check_load_from(cfg.load_from, cfg.load_from_prefix, cfg.load_from_strict)
        self.load_from, self.load_from_strict = cfg.load_from, cfg.load_from_strict
        # resolved now (a missing file fails before anything starts) unless a resume may make it moot
        self._load_from_path = ckpt_io.find_load_from(cfg.load_from) \
            if cfg.load_from and not cfg.resume and not dry_run else None
        self.load_report: ckpt_io.LoadReport | None = None

        # Model and optimizer. Schedules/components are never prepared.
        self._lean = acc.distributed_type in _LEAN
        if self._lean:
            self.model = acc.prepare_model(model)
            self.optimizer = optimizer
        else:
            self.model, self.optimizer = acc.prepare(model, optimizer)
        self.unwrapped_model = acc.unwrap_model(self.model)
        self.scaler = acc.scaler if self._lean else None
        self.group_names = group_names(self.optimizer)
        self._params = [p for g in self.optimizer.param_groups for p in g["params"]]

        # Counters and per-step state exposed on the bus.
        self.epoch = self.iter = self.inner_iter = 0
        self.outputs: dict[str, Any] = {}
        self.metrics: dict[str, float] = {}
        self.scalars: dict[str, float] = {}   # components add scalars for the next logged row
        self.last_row: dict[str, Any] = {}
        self.skipped_steps = 0      # steps skipped for a non-finite loss (nonfinite=skip), in the whole run
        self.skips_in_a_row = 0
        # deferred nonfinite=error check on an accelerator: first non-finite iteration, or -1
        self._first_bad = torch.full((), -1, dtype=torch.long, device=acc.device) \
            if nonfinite == NonFinite.error.value and acc.device.type != "cpu" and not dry_run else None

        self.bus = EventBus()
        self.components: dict[str, Any] = dict(components or {})
        for name, comp in self.components.items():
            self.bus.register(comp, name)
        self.sinks: list[Sink] = list(sinks or [])
        if self.is_main and not dry_run and not any(isinstance(s, JsonlSink) for s in self.sinks):
            self.sinks.insert(0, JsonlSink(self.work_dir / "metrics.jsonl"))
        if not self.is_main:
            self.sinks = []
        self.logger_hook = LoggerHook(self.sinks, cfg.log_interval)
        self.bus.register(self.logger_hook, "logger")

    # ------------------------------------------------------------------ loop
    def fire(self, event: Event) -> None:
        self.bus.fire(event, self)

    def run(self) -> dict[str, float]:
        """Train to ``max_iters``; returns the last validation metrics.

        Before the first iteration: the metric names ``trainer.monitor`` and the components'
        ``val_metric`` give are checked against the evaluator's, the checkpoint to resume from
        is chosen on rank 0 and loaded on every rank (sent by rank 0 where a rank's disk lacks it;
        or the directory is checked to hold no earlier run's checkpoints, and earlier rows are
        moved aside; a fresh run then takes ``trainer.load_from``'s weights), and stale temporary
        checkpoint files are removed."""
        acc = self.accelerator
        self.check_metric_names()
        point = self._resume_point()
        if point is not None:
            state = self._load(point)
            if self.load_from and self.is_main:
                log.info("trainer.load_from=%s not used: resuming from %s (whose weights started from it)",
                         self.load_from, point.path)
        else:
            state = None
            self._start_fresh()
            set_seed(self.seed)
            self._load_from()
        self._remove_stale_tmp()
        self.fire(Event.BEFORE_RUN)
        if state is not None:
            for name, comp in self.components.items():
                if name in state["components"] and hasattr(comp, "load_state_dict"):
                    comp.load_state_dict(state["components"][name])
            ckpt_io.set_rng_state(state["rng"])
        start_iter = self.iter
        if state is not None and start_iter >= self.max_iters and self.is_main:
            log.info("the checkpoint is at the end of this run (iter %d of %d): nothing to train", start_iter,
                     self.max_iters)
        bar = self._progress_bar()
        try:
            while self.epoch < self.max_epochs and self.iter < self.max_iters:
                self._train_epoch(bar)
                if self.iter < self.max_iters or self.inner_iter == 0:
                    self._end_epoch()
            if self.inner_iter != 0 and self.iter > start_iter:   # max_iters ended mid-epoch: the last epoch
                if validation_due(self.max_epochs, self.max_epochs, self.val_interval, self.val_begin):
                    self._validate()
                self._save("last")
            self._raise_if_nonfinite()
        except Exception as e:   # a collective that could not complete: name the rank that was lost
            if dist.is_collective_failure(e, acc):
                where = f"epoch {self.epoch}, iter {self.iter}"
                raise dist.explain_collective_failure(acc, e, self.dist_timeout, where) from e
            raise
        finally:
            if bar is not None:
                bar.close()
        self.fire(Event.AFTER_RUN)
        return dict(self.metrics)

    # --------------------------------------------------------- before training
    def metric_consumers(self) -> list[tuple[str, str]]:
        """``(config key, metric name)`` of every option that names a validation metric:
        ``trainer.monitor`` and each component's ``val_metric``."""
        wanted = [("trainer.monitor", self.monitor)] if self.monitor else []
        for name, comp in self.components.items():
            metric = getattr(comp, "val_metric", None)
            if isinstance(metric, str):
                wanted.append((f"components.{name}.val_metric", metric))
        return wanted

    def check_metric_names(self) -> None:
        """Every name :meth:`metric_consumers` gives must be one the evaluator declares
        (``evaluator.metric_names(runner)``); an evaluator that declares none is trusted until
        its first validation. Raises :class:`ConfigError` before the first iteration."""
        wanted = self.metric_consumers()
        if not wanted or self.dry_run:
            return
        if self.evaluator is None:
            key, metric = wanted[0]
            raise ConfigError(f"{key}={metric!r} names a validation metric, but the run has no evaluator")
        declare = getattr(self.evaluator, "metric_names", None)
        if declare is None:
            log.info("the evaluator (%s) declares no metric_names(runner): %s checked at the first validation",
                     type(self.evaluator).__name__, ", ".join(k for k, _ in wanted))
            return
        names = set(declare(self))
        for key, metric in wanted:
            if metric not in names:
                raise ConfigError(f"{key}={metric!r} names no metric of the evaluator "
                                  f"({type(self.evaluator).__name__}); it reports: {', '.join(sorted(names))}")

    def _start_fresh(self) -> None:
        """A fresh start must not overwrite an earlier run's checkpoints, and moves the rows an
        earlier attempt left (killed before its first checkpoint) to ``metrics.superseded.jsonl``."""
        if not self.is_main or self.dry_run:
            return
        found = self.checkpoints.checkpoints()
        if found:
            raise ckpt_io.CheckpointError(
                f"{self.checkpoints.dir} already holds checkpoints ({', '.join(p.name for p in found[:3])}"
                f"{', ...' if len(found) > 3 else ''}) and this run starts afresh (trainer.resume="
                f"{self.resume!r}); it would overwrite them. Continue that run with trainer.resume=auto, or "
                "start this one in another run directory")
        sink = self._jsonl()
        moved = sink.keep(0) if sink is not None else 0
        if moved:
            log.warning("%s held %d rows of an earlier attempt that wrote no checkpoint; moved them to %s and "
                        "starting afresh", sink.path, moved, sink.SUPERSEDED)

    def _remove_stale_tmp(self) -> None:
        if self.is_main and not self.dry_run:
            removed = self.checkpoints.remove_stale_tmp()
            if removed:
                log.info("removed %d temporary checkpoint file(s) of a write that never finished: %s",
                         len(removed), ", ".join(p.name for p in removed))

    def _jsonl(self) -> JsonlSink | None:
        return next((s for s in self.sinks if isinstance(s, JsonlSink)), None)

    def _train_epoch(self, bar) -> None:
        start = self.inner_iter
        self.train_loader.batch_sampler.set_epoch(self.epoch, start)
        fire, device = self.bus.fire, self.accelerator.device
        self.model.train()   # before before_epoch (mmcv's order), so a component may put parts in eval mode
        self.fire(Event.BEFORE_EPOCH)
        due = False   # an iteration checkpoint is due (taken when the accumulation window closes)
        for i, batch in enumerate(self.train_loader, start):
            self.inner_iter = i
            fire(Event.BEFORE_ITER, self)
            sync = self._closes_window(i)
            self._train_step(to_device(batch, device), sync)
            fire(Event.AFTER_ITER, self)
            self.iter += 1
            if self._first_bad is not None and self.iter % self.logger_hook.interval == 0:
                self._raise_if_nonfinite()
            if bar is not None:
                bar.update(1)
                if self.iter % self.logger_hook.interval == 0:
                    bar.set_postfix(self._postfix(), refresh=False)
            if self.iter >= self.max_iters:   # the run ends here, perhaps mid-epoch
                self.inner_iter = (i + 1) % self.iters_per_epoch
                return
            if self.checkpoint_interval_iters and i + 1 < self.iters_per_epoch:
                due = due or self.iter % self.checkpoint_interval_iters == 0
                if due and sync:   # accumulated gradients are not checkpointed: save between windows
                    due = False
                    self.inner_iter = i + 1
                    self._save("last", f"iter_{self.iter}")
        self.inner_iter = 0

    def _closes_window(self, i: int) -> bool:
        """Does batch ``i`` of this epoch end an accumulation window, i.e. take an optimizer
        step? Every ``grad_accum``-th batch, the epoch's last batch and the run's last batch."""
        return every_n(i, self.grad_accum) or i + 1 == self.iters_per_epoch or self.iter + 1 == self.max_iters

    def _train_step(self, batch: Any, sync: bool) -> None:
        """Forward and backward of one batch; the optimizer step when ``sync`` closes the window."""
        if self.dry_run:   # schedule preview: the real loop and events, no model, no step
            if sync:
                self.fire(Event.AFTER_STEP)
            return
        with self._no_sync(sync):
            self.outputs = outputs = self.model(batch)
            if not self._loss_ok(outputs["loss"]):
                self._skip_step(outputs["loss"])
                return
            self.skips_in_a_row = 0
            self._backward(outputs["loss"])
        if sync:
            self._optimizer_step()
            self.fire(Event.AFTER_STEP)

    def _no_sync(self, sync: bool):
        """Inside an accumulation window, DDP's gradient all-reduce waits for the window's end."""
        if not sync and self._lean and hasattr(self.model, "no_sync"):
            return self.model.no_sync()
        return contextlib.nullcontext()

    def _backward(self, loss: torch.Tensor) -> None:
        scaled = loss / self.grad_accum if self.grad_accum > 1 else loss
        if not self._lean:
            self.accelerator.backward(scaled)
        elif self.scaler is not None:
            self.scaler.scale(scaled).backward()
        else:
            scaled.backward()

    def _optimizer_step(self) -> None:
        """Clip (after unscaling fp16 gradients), step (through the scaler), zero the gradients."""
        opt = self.optimizer
        if self.clip_grad is not None:
            if self.scaler is not None:
                self.scaler.unscale_(opt)
            clip = torch.nn.utils.clip_grad_norm_ if self._lean else self.accelerator.clip_grad_norm_
            self.outputs = {**self.outputs, "grad_norm": clip(self._params, self.clip_grad)}
        if self.scaler is not None:
            self.scaler.step(opt)
            self.scaler.update()
        else:
            opt.step()
        opt.zero_grad(set_to_none=True)

    # ------------------------------------------------------------ non-finite
    def _loss_ok(self, loss: torch.Tensor) -> bool:
        """False when this step is to be skipped (``nonfinite=skip``); raises under ``error``.

        ``error`` on an accelerator checks without a host sync: a device flag records the
        first non-finite iteration and is read every ``log_interval`` iterations and before
        every checkpoint (the steps in between are taken, the checkpoints are not written).
        On the CPU, ``loss.item()`` costs no sync and the check is immediate. ``skip`` must
        decide on the host, on every rank together (DDP would wait forever for a rank that
        skipped its backward): one scalar collective per iteration."""
        if self.nonfinite == NonFinite.ignore.value:
            return True
        if self.nonfinite == NonFinite.error.value:
            if self._first_bad is not None:
                bad = ~torch.isfinite(loss.detach())
                self._first_bad = torch.where(bad & (self._first_bad < 0), self.iter, self._first_bad)
            elif not math.isfinite(loss.item()):
                raise self._nonfinite_error(self.iter, loss.item())
            return True
        ok = math.isfinite(loss.item())
        if self.accelerator.num_processes > 1:
            bad = torch.tensor(0.0 if ok else 1.0, device=self.accelerator.device)
            ok = self.accelerator.reduce(bad, reduction="sum").item() == 0
        return ok

    def _skip_step(self, loss: torch.Tensor) -> None:
        """``nonfinite=skip``: drop this batch's gradients (the window's so far); warn at the run's
        first skip; stop after ``max_consecutive_skips`` skipped steps in a row."""
        self.optimizer.zero_grad(set_to_none=True)
        self.skipped_steps += 1
        self.skips_in_a_row += 1
        if self.skips_in_a_row >= self.max_consecutive_skips:
            raise NonFiniteLossError(
                f"{self.skips_in_a_row} steps in a row skipped for a non-finite loss (trainer.nonfinite=skip, "
                f"trainer.max_consecutive_skips={self.max_consecutive_skips}), the last at epoch {self.epoch}, "
                f"iter {self.iter}; lrs {self._lrs()}; {self.skipped_steps} skipped in the run. The run is "
                f"diverging: {self._kept()}; lower the lr (or raise trainer.max_consecutive_skips)")
        if self.skipped_steps == 1 and self.is_main:
            log.warning("non-finite loss %s at epoch %d, iter %d: step skipped (trainer.nonfinite=skip); skipped "
                        "steps are counted in train/skipped_steps, and the run stops after "
                        "trainer.max_consecutive_skips=%d in a row", float(loss.detach()), self.epoch, self.iter,
                        self.max_consecutive_skips)

    def _lrs(self) -> dict[str, float]:
        return {n: g["lr"] for n, g in zip(self.group_names, self.optimizer.param_groups, strict=True)}

    def _kept(self) -> str:
        last = self.checkpoints.last
        if last is None:
            return "No checkpoint was written yet"
        return f"The last checkpoint {last} (iter {self.checkpoints.last_iter}) is intact"

    def _raise_if_nonfinite(self) -> None:
        """Read the device flag of the deferred ``nonfinite=error`` check (one host sync)."""
        if self._first_bad is not None and (first := int(self._first_bad.item())) >= 0:
            raise self._nonfinite_error(first, float("nan"), found_at=self.iter)

    def _nonfinite_error(self, at: int, value: float, found_at: int | None = None) -> NonFiniteLossError:
        lrs, kept = self._lrs(), self._kept()
        where = f"(inner_iter {self.inner_iter})" if found_at is None else (
            f"(found by the check after iteration {found_at - 1}: the steps in between were taken, "
            "no checkpoint was written after it)")
        return NonFiniteLossError(
            f"non-finite loss {value} at epoch {self.epoch}, iter {at} {where}; lrs {lrs}. {kept}; "
            "set trainer.nonfinite=skip to skip such steps.")

    def _end_epoch(self) -> None:
        self.fire(Event.AFTER_EPOCH)
        self.epoch += 1
        if validation_due(self.epoch, self.max_epochs, self.val_interval, self.val_begin):
            self._validate()
        names = ("last", f"epoch_{self.epoch}") if self.epoch % self.checkpoint_interval == 0 else ("last",)
        self._save(*names)

    def _validate(self) -> None:
        if self.evaluator is None:
            return
        self.fire(Event.BEFORE_VAL)
        self.unwrapped_model.eval()
        with torch.no_grad():
            self.metrics = {k: float(v) for k, v in self.evaluator(self).items()}
        self.unwrapped_model.train()
        if self.is_main and not self.dry_run:
            shown = ", ".join(f"{k}={v:.4g}" for k, v in self.metrics.items())
            log.info("epoch %d, iter %d: %s", self.epoch, self.iter, shown)
        self.fire(Event.AFTER_VAL)
        if not self.dry_run:   # ranks agree on the metrics, so on the best checkpoints
            self.checkpoints.consider(self.metrics, self.epoch, self.iter, mid_epoch=self.inner_iter != 0)

    # ------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        return {
            "format": ckpt_io.FORMAT,
            "model": self.unwrapped_model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "counters": {"epoch": self.epoch, "iter": self.iter, "inner_iter": self.inner_iter},
            "components": {n: c.state_dict() for n, c in self.components.items() if hasattr(c, "state_dict")},
            "metrics": dict(self.metrics),
            "rng": ckpt_io.rng_state(),
            "skipped_steps": self.skipped_steps,
            "checkpoints": self.checkpoints.state_dict(),
            "skips_in_a_row": self.skips_in_a_row,
            "config": self.run_config,           # what resume compares (trainkit.core.resume)
            "record": self._record_position(),   # metrics.jsonl's rows at this checkpoint
        }

    def _record_position(self) -> dict[str, int] | None:
        """The rows of ``metrics.jsonl`` on disk now (every sink flushed first): a resumed run keeps
        exactly these. None on the processes that write no record."""
        for sink in self.sinks:   # rows up to this point are on disk before the checkpoint
            getattr(sink, "flush", lambda: None)()
        sink = self._jsonl()
        return sink.position() if sink is not None else None

    def _save(self, *names: str) -> None:
        if self.dry_run:
            return
        self._raise_if_nonfinite()
        state = self.state_dict()
        if self.is_main:
            self.checkpoints.write(state, names)
        self.accelerator.wait_for_everyone()

    def _resume_point(self) -> resume_io.ResumePoint | None:
        """The checkpoint this run continues from, loaded, or None (a fresh run).

        Rank 0 chooses (:func:`trainkit.core.resume.choose`; ``build_runner`` may have chosen already,
        searching sibling run directories too) and tells every rank; each rank then reads the file,
        or rank 0 sends it to the ranks whose disk lacks it (no shared ``trainer.work_dir``). Under an
        elastic restart an unset ``trainer.resume`` means ``auto``."""
        if self.dry_run:
            return None
        acc = self.accelerator
        resume = dist.default_resume(self.resume, acc)   # a collective: every rank
        if resume is None:
            return None
        chosen: list[resume_io.ResumePoint | None] = [self.resume_point]

        def decide():
            if chosen[0] is None:
                chosen[0] = resume_io.choose(resume, self.work_dir, self.run_config, siblings=False)
            return None if chosen[0] is None else (chosen[0].path, chosen[0].notes)

        found = dist.from_rank0(acc, decide)
        if found is None:
            return None
        path, notes = found
        mine = chosen[0]   # rank 0: loaded and checked already
        state = dist.load_checkpoint(acc, path, (lambda p: mine.state) if mine is not None else ckpt_io.load)
        return resume_io.ResumePoint(Path(path), state, list(notes))

    def _load(self, point: resume_io.ResumePoint) -> dict[str, Any]:
        path, state = point.path, point.state
        self._load_weights(path, state)
        c = state["counters"]
        self.epoch, self.iter, self.inner_iter = c["epoch"], c["iter"], c["inner_iter"]
        self.metrics = dict(state.get("metrics", {}))
        self.skipped_steps = state.get("skipped_steps", 0)
        self.skips_in_a_row = state.get("skips_in_a_row", 0)
        self.checkpoints.load_state_dict(state.get("checkpoints", {}))
        self.checkpoints.resumed_from(path, state)
        sink = self._jsonl()
        if sink is not None:
            record = state.get("record")
            moved = sink.keep(record["rows"]) if record else sink.truncate_from(self.iter)
            if moved:
                log.info("moved %d rows logged after this checkpoint to %s", moved, sink.SUPERSEDED)
        if self.is_main:
            point.log_notes(log)
            log.info("resumed from %s at epoch %d, iter %d", path, self.epoch, self.iter)
        return state

    def _load_from(self) -> None:
        """``trainer.load_from``: the model's initial weights from a file (a fresh run: optimizer,
        schedules and counters start anew). Every process reads the file, so all start alike."""
        if not self.load_from or self.dry_run:
            return
        path = self._load_from_path or ckpt_io.find_load_from(self.load_from)
        self.load_report = ckpt_io.load_weights(self.unwrapped_model, path, self.load_from_prefix,
                                                strict=self.load_from_strict)
        if self.is_main:
            log.info("%s", self.load_report)

    def _load_weights(self, path: Path, state: dict[str, Any]) -> None:
        """Model, optimizer and scaler from ``state``; a checkpoint of another model or optimizer is a
        :class:`~trainkit.core.checkpoint.CheckpointError` naming the file and the first differences."""
        theirs = state["model"]
        problems = _state_differences(self.unwrapped_model.state_dict(), theirs)
        if problems:
            raise ckpt_io.CheckpointError(f"trainer.resume: {path} holds another model ({'; '.join(problems)}); "
                                          "resume with the model it was written with, or start a new run")
        groups = state["optimizer"].get("param_groups", [])
        sizes = [len(g["params"]) for g in groups]
        here = [len(g["params"]) for g in self.optimizer.param_groups]
        if sizes != here:
            raise ckpt_io.CheckpointError(f"trainer.resume: {path} holds an optimizer with param groups of "
                                          f"{sizes} parameters, this run's has {here} ({self.group_names}); "
                                          "resume with the param groups it was written with")
        self.unwrapped_model.load_state_dict(theirs)
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])

    # --------------------------------------------------------------- display
    def _progress_bar(self):
        if not self.progress:
            return None
        from tqdm.auto import tqdm
        return tqdm(total=self.max_iters, initial=self.iter, desc="train", dynamic_ncols=True,
                    mininterval=0.5, leave=True)

    def _postfix(self) -> dict[str, str]:
        post = {"ep": self.epoch}
        loss = self.outputs.get("loss")
        if loss is not None:
            post["loss"] = f"{float(loss.detach()):.4f}"
        groups = self.optimizer.param_groups
        if len(groups) <= 3:
            for name, g in zip(self.group_names, groups, strict=True):
                post[f"lr/{name}"] = f"{g['lr']:.3g}"
        else:
            post["lr"] = f"{groups[0]['lr']:.3g}"
        return post


def _state_differences(mine: Mapping[str, Any], theirs: Mapping[str, Any], first: int = 3) -> list[str]:
    """The first missing, unexpected and differently shaped keys of a checkpoint's model state."""
    return ([f"missing {k}" for k in mine if k not in theirs][:first]
            + [f"unexpected {k}" for k in theirs if k not in mine][:first]
            + [f"{k}: shape {_shape(theirs[k])} in the checkpoint, {_shape(v)} here"
               for k, v in mine.items() if k in theirs and _shape(v) != _shape(theirs[k])][:first])


def _shape(value: Any) -> tuple[int, ...]:
    return tuple(getattr(value, "shape", ()))


class _SingleProcess:
    """The accelerator of a dry run (schedule preview): one process, no collectives, so a
    preview taken inside a multi-process run never waits on the other ranks."""

    device = torch.device("cpu")
    distributed_type = DistributedType.NO
    num_processes, process_index, is_main_process = 1, 0, True
    scaler = None

    def prepare_model(self, model):
        return model

    def unwrap_model(self, model):
        return model

    def gather(self, x):
        return x

    def reduce(self, x, reduction="sum"):
        return x

    def wait_for_everyone(self):
        pass
