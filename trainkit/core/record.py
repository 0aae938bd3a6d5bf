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
from operator import itemgetter
from pathlib import Path
from typing import Any, Protocol

import torch

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
        self._fh.write(jsonl_line(row, step))
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


_encode = json.JSONEncoder(default=_jsonable).encode   # one encoder, not one per row
_PLAIN = {float, int}   # values whose JSON is their repr (finite floats; ints, not bools)
_templates: dict[tuple[str, ...], str] = {}   # row keys -> '{"step": %d, "<k1>": %r, ...}\n'
_all_plain, _isfinite = _PLAIN.issuperset, math.isfinite


def jsonl_line(row: dict[str, Any], step: int) -> str:
    """``json.dumps(finite_or_null({"step": step, **row}), default=_jsonable) + "\\n"``, byte for byte:
    strict JSON, a non-finite number (NaN, ±inf) written as ``null``.

    Rows with the same keys share a ``%``-template with their keys already encoded, filled with
    each value's ``repr`` (what ``json`` writes for a finite float or an int); any other value
    (a NaN, a bool, a string, a numpy scalar, ...) or a row with its own ``step`` takes ``json``.
    """
    values = tuple(row.values())
    try:
        plain = type(step) is int and _all_plain(map(type, values)) and _isfinite(sum(values))
    except OverflowError:   # an int beyond any float
        plain = False
    if plain:
        keys = tuple(row)
        template = _templates.get(keys)
        if template is None:
            template = _template(keys)
        if template:
            return template % (step, *values)
    return _encode(_finite_or_null({"step": step, **row})) + "\n"


def _template(keys: tuple[str, ...]) -> str:
    """The line template for rows with these keys ('' for a row that has its own ``step``)."""
    if len(_templates) >= 256:   # rows come in a few shapes; never grow without bound
        _templates.clear()
    template = "" if "step" in keys else \
        "{" + ", ".join(['"step": %d'] + [f"{json.dumps(k).replace('%', '%%')}: %r" for k in keys]) + "}\n"
    _templates[keys] = template
    return template


def optimizer_scalars(optimizer, names: list[str] | None = None) -> dict[str, float]:
    """``lr/<group>`` and ``momentum/<group>`` (SGD momentum or Adam beta1) of every group;
    ``names`` defaults to :func:`trainkit.core.groups.group_names`."""
    return dict(GroupColumns(optimizer, names or group_names(optimizer)).items())


class GroupColumns:
    """The ``lr/<g>``, ``momentum/<g>`` part of a row for one optimizer, its keys built once.

    ``items()`` gives, group by group, ``("lr/<g>", float(lr))`` then, for a group with a
    momentum, ``("momentum/<g>", float(momentum))`` (``momentum``, else ``betas[0]``: see
    :func:`~trainkit.core.groups.get_momentum`), reading only the values each row.
    They describe ``optimizer`` while its ``param_groups`` is the same list with the same
    length and ``names`` the same list (the LoggerHook checks that each row and builds new
    columns otherwise).
    """

    def __init__(self, optimizer, names: list[str]):
        groups = optimizer.param_groups
        self.groups, self.names, self.n = groups, names, len(groups)
        kinds = [None if get_momentum(g) is None else "momentum" if "momentum" in g else "betas" for g in groups]
        self.keys: list[str] = []
        for name, kind in zip(names, kinds, strict=True):
            self.keys += [f"lr/{name}"] if kind is None else [f"lr/{name}", f"momentum/{name}"]
        self._kind = kinds[0] if len(set(kinds)) == 1 else "mixed"   # one fast path per optimizer kind
        self._kinds = kinds

    def values(self) -> list[float]:
        groups, kind = self.groups, self._kind
        if kind is None:
            return list(map(float, map(_LR, groups)))
        if kind == "momentum":
            if self.n <= 16:   # a comprehension is quicker for a few groups, slices for many
                return [float(v) for g in groups for v in (g["lr"], g["momentum"])]
            out = [0.0] * (2 * self.n)
            out[0::2] = map(float, map(_LR, groups))
            out[1::2] = map(float, map(_MOMENTUM, groups))
            return out
        out = []
        for g, k in zip(groups, self._kinds, strict=True):
            out.append(float(g["lr"]))
            if k is not None:
                out.append(float(g["momentum"] if k == "momentum" else g["betas"][0]))
        return out

    def items(self):
        return zip(self.keys, self.values(), strict=True)


_LR, _MOMENTUM = itemgetter("lr"), itemgetter("momentum")
_FLOAT32 = torch.float32


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
        self._columns: GroupColumns | None = None   # the lr/momentum keys, built at the first row
        self._train_keys: dict[str, str] = {}
        self._n_sinks, self._intervals, self._uniform = -1, [], interval   # _uniform: the one interval, or None

    def _emit(self, row: dict[str, Any], step: int) -> None:
        for sink in self.sinks:
            sink.log(row, step)

    def _targets(self, runner) -> list[Sink]:
        """The sinks that take this iteration's row: all of them at the last iteration of an
        epoch or of the run, else those whose interval (``sink.log_interval``, else the
        trainer's) ends here."""
        if runner.inner_iter + 1 == runner.iters_per_epoch or runner.iter + 1 == runner.max_iters:
            return self.sinks
        if len(self.sinks) != self._n_sinks:   # sinks are added after the hook is built
            self._n_sinks = len(self.sinks)
            self._intervals = [getattr(s, "log_interval", None) or self.interval for s in self.sinks]
            self._uniform = self._intervals[0] if len(set(self._intervals)) == 1 else None
        if self._uniform is not None:
            return self.sinks if every_n(runner.iter, self._uniform) else ()
        return [s for s, n in zip(self.sinks, self._intervals, strict=True) if every_n(runner.iter, n)]

    def after_iter(self, runner) -> None:
        if self._uniform is not None and self._n_sinks == len(self.sinks):   # the usual case, inline
            if not (every_n(runner.iter, self._uniform) or runner.inner_iter + 1 == runner.iters_per_epoch
                    or runner.iter + 1 == runner.max_iters):
                return
            targets = self.sinks
        else:
            targets = self._targets(runner)
            if not targets:
                return
        row: dict[str, Any] = {"epoch": runner.epoch}
        for k, v in runner.outputs.items():
            if k == "loss" or getattr(v, "ndim", 1) == 0 or isinstance(v, (int, float)):
                # a float32 tensor (the usual loss) straight to its number; anything else as _to_float says
                row[k if k == "loss" else self._train_key(k)] = \
                    v.item() if getattr(v, "dtype", None) is _FLOAT32 else _to_float(v)
        columns = self._columns
        if columns is None or columns.groups is not runner.optimizer.param_groups \
                or columns.names is not runner.group_names or columns.n != len(columns.groups):
            columns = self._columns = GroupColumns(runner.optimizer, runner.group_names)
        try:
            row.update(zip(columns.keys, columns.values(), strict=True))
        except (KeyError, TypeError):   # a group's momentum changed kind since the columns were built
            self._columns = None
            row.update(GroupColumns(runner.optimizer, runner.group_names).items())
        if getattr(runner, "nonfinite", None) == "skip":
            row["train/skipped_steps"] = runner.skipped_steps   # so far in the run
        if runner.scalars:
            row.update(runner.scalars)
            runner.scalars.clear()
        runner.last_row = row
        for sink in targets:
            sink.log(row, runner.iter)

    def _train_key(self, k: str) -> str:
        key = self._train_keys.get(k)
        if key is None:
            key = self._train_keys[k] = f"train/{k}"
        return key

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
    """A scalar as a Python float; a tensor through float32 (``v.float().item()``)."""
    if hasattr(v, "item"):
        if getattr(v, "dtype", None) is _FLOAT32:
            return v.item()   # the same number as v.detach().float().item(), without two new tensors
        v = v.detach().float().item() if hasattr(v, "detach") else v.item()
    return float(v)
