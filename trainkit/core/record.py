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
import logging
import math
import os
from pathlib import Path
from typing import Any, Protocol

from .checks import every_n
from .events import Priority
from .groups import get_momentum, group_names

log = logging.getLogger("trainkit")


class Sink(Protocol):
    def log(self, row: dict[str, Any], step: int) -> None: ...
    def close(self, status: str = "finished") -> None: ...


class JsonlSink:
    """Appends one JSON object per row to ``metrics.jsonl``: ``{"step": s, **row}``.

    Strict JSON: a non-finite value (a NaN loss, an infinite ``plateau/best`` before any
    check) is written as ``null``. ``rows`` counts the complete rows in the file; a checkpoint
    stores it (:meth:`position`, after a flush), and a run resumed from that checkpoint keeps
    exactly those rows (:meth:`keep`): every later one moves to ``metrics.superseded.jsonl``,
    so nothing written is lost and the main file holds one trajectory, row for row the
    uninterrupted run's. ``step`` alone could not tell epoch ``N``'s validation row (logged
    with ``step`` = completed iterations, before the epoch checkpoint) from iteration ``N``'s.
    """

    SUPERSEDED = "metrics.superseded.jsonl"

    def __init__(self, path: str | os.PathLike, flush_every: int = 50):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.rows = len(_complete_lines(self.path))
        self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (the sink holds it until close)
        self._pending = 0
        self.flush_every = flush_every

    def log(self, row: dict[str, Any], step: int) -> None:
        row = {"step": step, **row}
        try:   # the common case costs one dumps; a non-finite value raises and is written as null
            line = json.dumps(row, default=_jsonable, allow_nan=False)
        except ValueError:
            line = json.dumps(_finite_or_null(row), default=_jsonable)
        self._fh.write(line + "\n")
        self.rows += 1
        self._pending += 1
        if self._pending >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        self._fh.flush()
        self._pending = 0

    def position(self) -> dict[str, int]:
        """What a checkpoint records: the rows on disk now (flushed first)."""
        self.flush()
        return {"rows": self.rows}

    def keep(self, rows: int) -> int:
        """Keep the first ``rows`` rows; move every later line (a line cut by a kill included) to
        ``metrics.superseded.jsonl``. ``keep(0)`` clears the file for a fresh start. Returns how
        many lines moved."""
        lines = _complete_lines(self.path, partial=True)
        if 0 < len(lines) < rows:   # (empty: a run resumed from another directory's checkpoint starts it)
            log.warning("%s holds %d rows but the checkpoint recorded %d: rows were removed from it since",
                        self.path, len(lines), rows)
        return self._split(lines[:rows], lines[rows:])

    def truncate_from(self, step: int) -> int:
        """Move rows with ``step >= step`` to ``metrics.superseded.jsonl`` (for checkpoints written
        before rows were counted); returns how many."""
        keep, moved = [], []
        for line in _complete_lines(self.path, partial=True):
            try:
                s = json.loads(line).get("step", -1)
            except json.JSONDecodeError:  # a line cut by a kill -9
                moved.append(line)
                continue
            (moved if s >= step else keep).append(line)
        return self._split(keep, moved)

    def _split(self, keep: list[str], moved: list[str]) -> int:
        self._fh.close()
        if moved:
            with open(self.path.with_name(self.SUPERSEDED), "a", encoding="utf-8") as f:
                f.write("".join(line + "\n" for line in moved))
                f.flush()
                os.fsync(f.fileno())
            tmp = self.path.with_suffix(".jsonl.tmp")
            tmp.write_text("".join(line + "\n" for line in keep), encoding="utf-8")
            os.replace(tmp, self.path)
        self.rows = len(keep)
        self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (the sink holds it until close)
        return len(moved)

    def close(self, status: str = "finished") -> None:
        if not self._fh.closed:
            self._fh.close()


def _complete_lines(path: Path, partial: bool = False) -> list[str]:
    """The non-empty lines of ``path`` ([] if absent); a last line without its newline (cut by a
    kill) only with ``partial``."""
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8", errors="replace")
    lines = text.split("\n")
    tail = lines.pop()   # "" when the file ends with a newline
    out = [line for line in lines if line.strip()]
    if partial and tail.strip():
        out.append(tail)
    return out


def _finite_or_null(x: Any) -> Any:
    """``x`` with every non-finite float (NaN, ±inf), also inside lists and dicts, as None (``null``)."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _finite_or_null(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite_or_null(v) for v in x]
    return x


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _jsonable(x: Any) -> Any:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return str(x)
    return x if math.isfinite(x) else None


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
    lr and momentum, ``train/skipped_steps`` (steps skipped so far, under
    ``trainer.nonfinite=skip``) and whatever components put into ``runner.scalars``.

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
        if getattr(runner, "nonfinite", None) == "skip":
            row["train/skipped_steps"] = runner.skipped_steps   # so far in the run
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
