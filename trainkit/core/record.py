"""The run's record: the sink interface, ``metrics.jsonl`` (the record a checkpoint truncates
to on resume), and the hook that feeds every sink.

A sink receives rows: ``sink.log(row: dict[str, float], step: int)``. ``step`` is
``trainer/global_step``, the 0-based index of the iteration the row describes (for
``lr/<group>``: the iteration whose optimizer step used that lr). Rows logged at an
epoch boundary (validation, plateau decisions) carry the number of completed
iterations as their step. Only the main process writes.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Protocol

from .checks import every_n
from .events import Priority
from .groups import get_momentum, group_names


class Sink(Protocol):
    def log(self, row: dict[str, Any], step: int) -> None: ...
    def close(self, status: str = "finished") -> None: ...


class JsonlSink:
    """Appends one JSON object per row to ``metrics.jsonl``: ``{"step": s, **row}``.

    ``truncate_from(step)`` (used on resume) moves rows with ``step >= step`` out of
    the file into ``metrics.superseded.jsonl``, so nothing written is lost and the
    main file holds one consistent trajectory.
    """

    def __init__(self, path: str | os.PathLike, flush_every: int = 50):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (the sink holds it until close)
        self._pending = 0
        self.flush_every = flush_every

    def log(self, row: dict[str, Any], step: int) -> None:
        self._fh.write(json.dumps({"step": step, **row}, default=_jsonable, allow_nan=True) + "\n")
        self._pending += 1
        if self._pending >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        self._fh.flush()
        self._pending = 0

    def truncate_from(self, step: int) -> int:
        """Move rows with ``step >= step`` to ``metrics.superseded.jsonl``; returns how many."""
        self._fh.close()
        keep, moved = [], []
        if self.path.exists():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                if not line.strip():
                    continue
                try:
                    s = json.loads(line).get("step", -1)
                except json.JSONDecodeError:  # a line cut by a kill -9
                    moved.append(line)
                    continue
                (moved if s >= step else keep).append(line)
        if moved:
            with open(self.path.with_name("metrics.superseded.jsonl"), "a", encoding="utf-8") as f:
                f.write("\n".join(moved) + "\n")
            tmp = self.path.with_suffix(".jsonl.tmp")
            tmp.write_text("".join(line + "\n" for line in keep), encoding="utf-8")
            os.replace(tmp, self.path)
        self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (the sink holds it until close)
        return len(moved)

    def close(self, status: str = "finished") -> None:
        if not self._fh.closed:
            self._fh.close()


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _jsonable(x: Any) -> Any:
    try:
        return float(x)
    except (TypeError, ValueError):
        return str(x)


def optimizer_scalars(optimizer, names: list[str] | None = None) -> dict[str, float]:
    """``lr/<group>`` and ``momentum/<group>`` (SGD momentum or Adam beta1) of every group;
    ``names`` defaults to :func:`trainkit.core.groups.group_names`."""
    row = {}
    for name, g in zip(names or group_names(optimizer), optimizer.param_groups, strict=True):
        row[f"lr/{name}"] = float(g["lr"])
        m = get_momentum(g)
        if m is not None:
            row[f"momentum/{name}"] = float(m)
    return row


class LoggerHook:
    """Writes a row every ``interval`` iterations (and always at epoch ends and after
    validation) to every sink: loss and the model's other scalar outputs, each group's
    lr and momentum, and whatever components put into ``runner.scalars``.

    Runs early at ``after_iter`` (priority HIGH) so the lr it records is the one the
    step used, before any component that steps its schedule after the iteration.
    """

    priority = {"after_iter": Priority.HIGH, "after_epoch": Priority.VERY_LOW,
                "after_val": Priority.VERY_LOW, "after_run": Priority.LOWEST}

    def __init__(self, sinks: list[Sink], interval: int = 10):
        if interval < 1:
            raise ValueError(f"trainer.log_interval must be >= 1, got {interval}")
        self.sinks, self.interval = sinks, interval

    def _emit(self, row: dict[str, Any], step: int) -> None:
        for sink in self.sinks:
            sink.log(row, step)

    def after_iter(self, runner) -> None:
        last_of_epoch = runner.inner_iter + 1 == runner.iters_per_epoch
        if not (every_n(runner.iter, self.interval) or last_of_epoch or runner.iter + 1 == runner.max_iters):
            return
        row: dict[str, Any] = {"epoch": runner.epoch}
        for k, v in runner.outputs.items():
            if k == "loss" or getattr(v, "ndim", 1) == 0 or isinstance(v, (int, float)):
                row[k if k == "loss" else f"train/{k}"] = _to_float(v)
        row.update(optimizer_scalars(runner.optimizer, runner.group_names))   # names computed once
        row.update(runner.scalars)
        runner.scalars.clear()
        runner.last_row = row
        self._emit(row, runner.iter)

    def after_epoch(self, runner) -> None:
        if runner.scalars:
            self._emit({"epoch": runner.epoch, **runner.scalars}, runner.iter)
            runner.scalars.clear()

    def after_val(self, runner) -> None:
        row = {"epoch": runner.epoch, **{k: _to_float(v) for k, v in runner.metrics.items()}}
        row.update(runner.scalars)
        runner.scalars.clear()
        self._emit(row, runner.iter)

    def after_run(self, runner) -> None:
        for sink in self.sinks:
            flush = getattr(sink, "flush", None)
            if flush:
                flush()


def _to_float(v: Any) -> float:
    if hasattr(v, "item"):
        v = v.detach().float().item() if hasattr(v, "detach") else v.item()
    return float(v)
