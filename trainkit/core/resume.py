"""Which checkpoint a run continues from, and whether it may.

Every checkpoint stores the run's resolved config (``state["config"]``). Resuming compares it
with the current config, key by key (:func:`compare`); each difference is one of:

- **identity** — the checkpoint belongs to another run, and is never resumed from: ``name``
  (the recipe), ``seed``, anything under ``model``, ``data``, ``optimizer`` (its
  hyper-parameters come back from the checkpoint's optimizer state, so a change would be
  silently ignored), ``param_groups``, which components there are and their ``_target_``,
  ``trainer.batch_size``, ``grad_accum``, ``drop_last``, ``mixed_precision``, and a run
  length given in the other unit (epochs vs iterations) or *shorter* than the checkpoint's.
- **length** — ``trainer.max_epochs`` / ``max_iters`` larger than the checkpoint's: the run is
  extended (logged). Schedules that depend on the run's length are recomputed for the new
  length from the resumed iteration on.
- **schedule** — an argument of a component (``components.<name>.<arg>``, same ``_target_``):
  allowed, named in a warning. **The current config wins**: components are rebuilt from it
  and only their ``state_dict`` (bases, counters, EMA momentum) comes from the checkpoint, so
  the new values apply from the resumed iteration on (mmengine silently keeps the old ones,
  mmengine issue 1565).
- **free** — everything else (how the run is driven, logged, checkpointed and evaluated: the
  other ``trainer.*`` options, ``logger``, ``evaluator``, ``extra``): allowed, logged.

``trainer.resume=auto`` looks in this run's directory, then in its siblings (``outputs/<name>/*``,
or the same job of earlier multirun sweeps), newest first, and takes the first checkpoint that
loads and is compatible; in a run directory whose ``last.pt`` is damaged it falls back to the
newest intact ``iter_*.pt`` / ``epoch_*.pt`` (with a warning). A sibling is never adopted when
its config differs in identity, or when the checkpoint has no stored config to compare.
``trainer.resume=PATH`` resumes from that file or fails, naming the differences.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import checkpoint as ckpt_io
from .checkpoint import CheckpointError

log = logging.getLogger("trainkit")

IDENTITY, LENGTH, SCHEDULE, FREE = "identity", "length", "schedule", "free"
LENGTH_KEYS = ("trainer.max_epochs", "trainer.max_iters")
RULES: tuple[tuple[str, str], ...] = (   # (dotted key or prefix ending in ".", kind); the first match wins
    ("trainer.max_epochs", LENGTH), ("trainer.max_iters", LENGTH),
    ("trainer.batch_size", IDENTITY), ("trainer.grad_accum", IDENTITY), ("trainer.drop_last", IDENTITY),
    ("trainer.mixed_precision", IDENTITY),
    ("trainer.", FREE), ("logger.", FREE), ("logger", FREE), ("evaluator.", FREE), ("evaluator", FREE),
    ("extra.", FREE), ("extra", FREE),
)
MISSING = object()


def kind_of(key: str) -> str:
    """The kind of a difference at dotted ``key`` (see the module doc)."""
    for rule, kind in RULES:
        if key == rule or (rule.endswith(".") and key.startswith(rule)):
            return kind
    parts = key.split(".")
    if parts[0] == "components" and len(parts) > 2 and parts[-1] != "_target_":
        return SCHEDULE
    return IDENTITY


@dataclass
class Difference:
    key: str
    old: Any
    new: Any
    kind: str

    def __str__(self) -> str:
        return f"{self.key}: {_show(self.old)} -> {_show(self.new)}"


def _show(value: Any) -> str:
    return "(absent)" if value is MISSING else repr(value)


@dataclass
class Comparison:
    """The differences between a checkpoint's config and the current one, by kind."""

    differences: list[Difference] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)   # why it cannot be resumed (empty: it can)

    @property
    def compatible(self) -> bool:
        return not self.reasons

    def of(self, kind: str) -> list[Difference]:
        return [d for d in self.differences if d.kind == kind]

    def notes(self) -> list[tuple[int, str]]:
        """``(logging level, message)`` for each allowed difference."""
        out = []
        for d in self.of(LENGTH):
            out.append((logging.INFO, f"resume: {d} (the run is extended; schedules that depend on the run's "
                                      "length are recomputed for it from the resumed iteration on)"))
        for d in self.of(SCHEDULE):
            out.append((logging.WARNING, f"resume: the schedule changed, {d}; the current config wins from the "
                                         "resumed iteration on (only the component's state comes from the "
                                         "checkpoint)"))
        for d in self.of(FREE):
            if d.key != "trainer.resume":
                out.append((logging.INFO, f"resume: {d}"))
        return out


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a.b": leaf}`` for a nested mapping (lists are leaves)."""
    if isinstance(tree, Mapping) and tree:
        out: dict[str, Any] = {}
        for k, v in tree.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: tree} if prefix else {}


def compare(saved: Mapping[str, Any] | None, current: Mapping[str, Any] | None) -> Comparison:
    """Compare a checkpoint's stored config with the current one (see the module doc)."""
    if saved is None or current is None:
        return Comparison()
    a, b = flatten(saved), flatten(current)
    result = Comparison()
    for key in sorted(set(a) | set(b)):
        old, new = a.get(key, MISSING), b.get(key, MISSING)
        if old != new or type(old) is not type(new):
            if _same_number(old, new):
                continue
            result.differences.append(Difference(key, old, new, kind_of(key)))
    for d in result.of(IDENTITY):
        result.reasons.append(str(d))
    result.reasons += _length_reasons(a, b)
    return result


def _same_number(x: Any, y: Any) -> bool:
    num = (int, float)
    return isinstance(x, num) and isinstance(y, num) and not isinstance(x, bool) and not isinstance(y, bool) \
        and x == y


def _length_reasons(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """A run may be extended on resume, not shortened, nor switched between epochs and iterations."""
    old = {k: a.get(k) for k in LENGTH_KEYS}
    new = {k: b.get(k) for k in LENGTH_KEYS}
    if old == new:
        return []
    if _unit(old) != _unit(new):
        return [f"the run length is in {_unit(new)} here but in {_unit(old)} in the checkpoint "
                f"({_length(old)} -> {_length(new)})"]
    key = "trainer.max_epochs" if _unit(old) == "epochs" else "trainer.max_iters"
    if isinstance(old[key], int) and isinstance(new[key], int) and new[key] < old[key]:
        return [f"{key}={new[key]} is shorter than the checkpoint's run ({old[key]}); a run may be extended "
                "on resume, not shortened"]
    return []


def _unit(lengths: dict[str, Any]) -> str:
    return "epochs" if lengths["trainer.max_epochs"] is not None else "iterations"


def _length(d: dict[str, Any]) -> str:
    return ", ".join(f"{k.split('.')[1]}={v}" for k, v in d.items() if v is not None)


# ------------------------------------------------------------------- discovery
@dataclass
class ResumePoint:
    """The checkpoint a run continues from: its file, its loaded state and what to log."""

    path: Path
    state: dict[str, Any]
    notes: list[tuple[int, str]] = field(default_factory=list)

    @property
    def run_dir(self) -> Path | None:
        """The run directory the checkpoint belongs to (``<run>/checkpoints/<name>.pt``)."""
        return self.path.parent.parent if self.path.parent.name == "checkpoints" else None

    def log_notes(self, logger: logging.Logger = log) -> None:
        for level, message in self.notes:
            logger.log(level, message)


def explicit_path(resume: str) -> Path:
    p = Path(resume)
    if p.is_dir():
        p = p / "checkpoints" / "last.pt" if (p / "checkpoints").is_dir() else p / "last.pt"
    if not p.is_file():
        raise FileNotFoundError(f"trainer.resume={resume!r}: no checkpoint file at {p}")
    return p


def candidate_dirs(work_dir: Path, multirun: bool = False) -> list[Path]:
    """Run directories ``resume=auto`` may continue: ``work_dir`` first, then its siblings
    (``outputs/<name>/*``; in a multirun, the same job subdirectory of earlier sweeps) whose
    checkpoints are newest first."""
    work_dir = Path(work_dir)
    parent, pattern = work_dir.parent, "*/checkpoints"
    if multirun:
        parent, pattern = work_dir.parent.parent, f"*/{work_dir.name}/checkpoints"
    found = [p.parent for p in parent.glob(pattern) if p.is_dir()] if parent.is_dir() else []
    siblings = [d for d in found if d.resolve() != work_dir.resolve()]

    def newest(d: Path) -> int:
        files = ckpt_io.newest_first((d / "checkpoints").glob("*.pt"))
        return files[0].stat().st_mtime_ns if files else -1

    siblings = sorted((d for d in siblings if newest(d) >= 0), key=newest, reverse=True)
    return [work_dir, *siblings]


def choose(resume: str | None, work_dir: str | Path, config: Mapping[str, Any] | None = None,
           multirun: bool = False, siblings: bool = True) -> ResumePoint | None:
    """The checkpoint to resume from (loaded and checked), or None for a fresh start.

    ``resume=None`` → None. ``resume=PATH`` → that checkpoint, or :class:`CheckpointError` when it
    cannot be read or its config is incompatible with ``config``. ``resume="auto"`` → see the
    module doc (``siblings=False``: ``work_dir`` only); raises when this run's own directory holds
    checkpoints of which none can be used (a fresh start there would overwrite them)."""
    if not resume:
        return None
    if resume != "auto":
        path = explicit_path(resume)
        state = ckpt_io.load(path)
        cmp = compare(state.get("config"), config)
        if not cmp.compatible:
            raise CheckpointError(f"trainer.resume={resume!r}: {path} was written by a run this one cannot "
                                  f"continue: {'; '.join(cmp.reasons)}. Resume with that run's config, or start "
                                  "a new run")
        return ResumePoint(path, state, cmp.notes())
    work_dir = Path(work_dir)
    dirs = candidate_dirs(work_dir, multirun) if siblings else [work_dir]
    for i, run_dir in enumerate(dirs):
        point, why = _from_run_dir(run_dir, config, own=i == 0)
        if point is not None:
            if i > 0:
                point.notes.insert(0, (logging.WARNING, f"trainer.resume=auto: continuing the run in {run_dir} "
                                                        f"from {point.path.name}; it goes on writing there, not "
                                                        f"in {work_dir}"))
            return point
        if i == 0 and why:
            raise CheckpointError(f"trainer.resume=auto: {run_dir / 'checkpoints'} holds checkpoints, none of "
                                  f"which this run can continue from: {'; '.join(why)}. Starting afresh there "
                                  "would overwrite them: use another run directory, or remove them")
        for reason in why:
            log.info("trainer.resume=auto: not resuming %s: %s", run_dir, reason)
    return None


def _from_run_dir(run_dir: Path, config: Mapping[str, Any] | None,
                  own: bool) -> tuple[ResumePoint | None, list[str]]:
    """``(point, [])`` for the newest usable checkpoint of one run directory, else ``(None, reasons)``
    (no reasons: the directory has no checkpoint). ``last.pt`` is tried first, then the other
    checkpoints newest first, but only while they fail to load: a compatible-or-not verdict on
    one checkpoint holds for the whole run."""
    files = ckpt_io.newest_first((run_dir / "checkpoints").glob("*.pt"))
    last = run_dir / "checkpoints" / "last.pt"
    if last in files:
        files.remove(last)
        files.insert(0, last)
    damaged: list[str] = []
    for path in files:
        try:
            state = ckpt_io.load(path)
        except (CheckpointError, OSError) as e:
            damaged.append(f"{path.name} {getattr(e, 'reason', e)}")
            continue
        saved = state.get("config")
        if (saved is None or config is None) and not own:
            return None, [f"{path.name} cannot be checked to belong to this configuration (no stored config)"]
        cmp = compare(saved, config)
        if not cmp.compatible:
            return None, [f"{path.name} belongs to another configuration ({'; '.join(cmp.reasons)})"]
        notes = [(logging.WARNING, f"trainer.resume=auto: {run_dir / 'checkpoints' / d} (truncated or corrupt); "
                                   f"falling back to {path} (iter {state['counters']['iter']}), the newest intact "
                                   "checkpoint of this run") for d in damaged]
        if saved is None and config is not None:
            notes.append((logging.WARNING, f"trainer.resume=auto: {path} stores no config (an older trainkit); "
                                           "its compatibility with this run is not checked"))
        return ResumePoint(path, state, notes + cmp.notes()), []
    return None, damaged
