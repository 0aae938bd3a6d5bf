"""Checkpoint files: written atomically, kept as the options say, and read back safely.

One place for what a run writes under ``checkpoints/`` and what it reads from a file:

- ``save_atomic`` writes to a temporary file in the same directory, fsyncs it and renames it
  over the target (``os.replace`` is atomic on POSIX), so a crash or a ``kill -9`` while saving
  leaves the previous checkpoint intact and loadable. A full disk is reported as such
  (:class:`DiskFullError`), not as torch's ``unexpected pos``.
- :class:`CheckpointWriter` is the one place that writes a run's checkpoint files;
  :class:`CheckpointManager` decides which: ``last.pt``, the periodic ``epoch_<N>.pt``/``iter_<N>.pt``
  (keeping the newest ``trainer.checkpoint.max_keep``) and ``best.pt``
  (``trainer.checkpoint.save_best``, ``rule``, ``top_k``).
- :func:`load` reads a trainkit checkpoint for ``trainer.resume`` (errors name the file);
  :func:`load_weights` (``trainer.load_from``) initialises a model from a trainkit checkpoint,
  a plain ``state_dict`` or an OpenMMLab/timm/Lightning-style file, with
  ``torch.load(weights_only=True)`` and a report of what was loaded.
- ``rng_state``/``set_rng_state`` (tensors and numbers only, so checkpoints load weights-only).
"""
from __future__ import annotations

import contextlib
import errno
import logging
import math
import os
import random
import re
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .checks import ReportedError, is_int

log = logging.getLogger("trainkit")

FORMAT = "trainkit/1"
TMP_SUFFIX = ".tmp"


class CheckpointError(ReportedError, ValueError):
    """A checkpoint that cannot be used: unreadable (corrupt, truncated, empty), not trainkit's,
    or written by a run this one cannot continue. The message names the file and what to do;
    ``reason`` says what is wrong in a few words."""

    def __init__(self, message: str, reason: str = ""):
        super().__init__(message)
        self.reason = reason or message


class DiskFullError(ReportedError, OSError):
    """No space left on the device while writing a checkpoint (the previous one is intact)."""


def save_atomic(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save(obj)`` to ``path`` through a temporary file in the same directory, fsynced and
    renamed over ``path``. On failure the temporary file is removed and ``path`` is untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return _write_atomic(path, lambda f: torch.save(obj, f))


def copy_atomic(src: Path, path: Path) -> Path:
    """A copy of the finished checkpoint ``src`` at ``path``, written atomically (temporary file,
    fsync, ``os.replace``). A copy, not a hard link: each name stays an independent file, so a
    damaged ``last.pt`` leaves its ``epoch_N.pt`` twin intact to fall back to."""
    import shutil

    def copy(f) -> None:
        with open(src, "rb") as source:
            shutil.copyfileobj(source, f, 1 << 20)

    return _write_atomic(Path(path), copy)


def _write_atomic(path: Path, write) -> Path:
    """``write(file)`` into a temporary file beside ``path``, fsync it, rename it over ``path`` and
    fsync the directory; on any failure the temporary file is removed and ``path`` is untouched."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)
    return path


def _fsync_dir(directory: Path) -> None:
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def is_disk_full(e: BaseException) -> bool:
    """``e`` is, or was raised while handling, ``OSError(ENOSPC)`` or ``EDQUOT`` (torch wraps the
    writer's ``OSError`` into a ``RuntimeError: ... unexpected pos N vs M``)."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if "No space left on device" in str(e):
            return True
        e = e.__cause__ or e.__context__
    return False


def tensor_bytes(obj: Any) -> int:
    """The bytes of every tensor in a (nested) checkpoint state: about the size of its file."""
    if isinstance(obj, torch.Tensor):
        return obj.nelement() * obj.element_size()
    if isinstance(obj, dict):
        return sum(tensor_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(tensor_bytes(v) for v in obj)
    return 0


class CheckpointWriter:
    """Writes a run's checkpoints, ``<directory>/<name>.pt``: one state under several names is
    serialised once (the first name), the other names are atomic copies of that file; every write
    is atomic (:func:`save_atomic`, :func:`copy_atomic`). ``last`` is the newest checkpoint of this run (written, or
    resumed from), None before the first. A full disk raises :class:`DiskFullError` naming the
    file, the space needed and the previous checkpoint, which is intact.

    Retention and "best" checkpoints go around :meth:`save` (it returns the files written).
    """

    def __init__(self, directory: str | os.PathLike):
        self.dir = Path(directory)
        self.last: Path | None = None
        self.last_iter: int | None = None

    def path(self, name: str) -> Path:
        return self.dir / f"{name}.pt"

    def save(self, state: dict[str, Any], names: Sequence[str]) -> list[Path]:
        paths = [self.path(n) for n in names]
        try:
            save_atomic(state, paths[0])
            for p in paths[1:]:
                copy_atomic(paths[0], p)
        except Exception as e:
            if is_disk_full(e):
                raise self._disk_full(state, paths) from e
            raise
        self.last, self.last_iter = paths[0], state.get("counters", {}).get("iter")
        return paths

    def _disk_full(self, state: dict[str, Any], paths: list[Path]) -> DiskFullError:
        need = tensor_bytes(state) / 2 ** 20
        intact = [p for p in paths if p.is_file()]
        kept = f"the previous checkpoint {intact[0]} is intact" if intact else \
            f"no earlier checkpoint of this run was at {paths[0]}; nothing was overwritten"
        return DiskFullError(errno.ENOSPC, f"no space left on device writing {paths[0]} (needs ~{need:.1f} MB); "
                             f"{kept}. Free space on {self.dir}, then resume with trainer.resume=auto")

    def resumed_from(self, path: Path, state: dict[str, Any]) -> None:
        self.last, self.last_iter = Path(path), state["counters"]["iter"]

    def stale_tmp(self) -> list[Path]:
        """Temporary files of writes that never finished (a kill -9 mid-write): ``.<name>.pt.*.tmp``."""
        return sorted(self.dir.glob(f".*.pt.*{TMP_SUFFIX}")) if self.dir.is_dir() else []

    def remove_stale_tmp(self) -> list[Path]:
        removed = []
        for p in self.stale_tmp():
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
                removed.append(p)
        return removed

    def checkpoints(self) -> list[Path]:
        """This directory's checkpoint files (no temporary ones), newest first."""
        return newest_first(self.dir.glob("*.pt")) if self.dir.is_dir() else []


def newest_first(paths: Iterable[Path]) -> list[Path]:
    """Checkpoint files, newest (modification time) first; ``last.pt`` first among equals."""
    files = [p for p in paths if p.is_file() and not p.name.startswith(".")]
    return sorted(files, key=lambda p: (p.stat().st_mtime_ns, p.name == "last.pt"), reverse=True)


def load(path: str | os.PathLike, key: str = "trainer.resume") -> dict[str, Any]:
    """A trainkit checkpoint, read in full (so that a damaged file fails here, not later).
    Raises ``FileNotFoundError`` or :class:`CheckpointError` naming ``path`` and what to do."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{key}: no checkpoint at {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:
        size = path.stat().st_size
        detail = str(e).splitlines()[0] if str(e) else ""
        what = "is empty" if size == 0 else f"cannot be read ({size} bytes; {type(e).__name__}: {detail})"
        raise CheckpointError(f"{key}: checkpoint {path} {what}: it is truncated or corrupt (a kill or a full "
                              "disk while it was copied?). Resume from another checkpoint of the run "
                              f"(trainer.resume=auto falls back to the newest intact one in {path.parent}), or "
                              "remove it", reason=what) from e
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{key}: {path} is not a trainkit checkpoint (format {FORMAT}); to start from "
                              "its weights only, load them into the model yourself",
                              reason=f"is not a trainkit checkpoint (format {FORMAT})")
    return ckpt


def rng_state() -> dict[str, Any]:
    """Python's, numpy's, torch's (and CUDA's) RNG states, as tensors, numbers and strings only,
    so a trainkit checkpoint loads with ``torch.load(weights_only=True)``."""
    kind, key, pos, has_gauss, gauss = np.random.get_state()
    state = {"python": random.getstate(), "torch": torch.get_rng_state(),
             "numpy": {"kind": kind, "key": torch.from_numpy(key.astype(np.int64)), "pos": int(pos),
                       "has_gauss": int(has_gauss), "gauss": float(gauss)}}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    npy = state["numpy"]
    if isinstance(npy, Mapping):   # else numpy's own tuple, as older trainkit checkpoints hold it
        npy = (npy["kind"], npy["key"].numpy().astype(np.uint32), npy["pos"], npy["has_gauss"], npy["gauss"])
    np.random.set_state(npy)
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@contextlib.contextmanager
def preserved_rng():
    """Every global RNG (Python, numpy, torch, CUDA) as it was before the block: a check run
    before training draws nothing from the run's random streams."""
    state = rng_state()
    try:
        yield
    finally:
        set_rng_state(state)


def find_resume(resume: str | None, work_dir: Path, multirun: bool = False) -> Path | None:
    """The checkpoint ``trainer.resume`` names, without loading or checking it (see
    :func:`trainkit.core.resume.choose` for the choice a run makes)."""
    from .resume import candidate_dirs, explicit_path

    if not resume:
        return None
    if resume != "auto":
        return explicit_path(resume)
    for run_dir in candidate_dirs(work_dir, multirun):
        last = run_dir / "checkpoints" / "last.pt"
        if last.is_file():
            return last
    return None


# ------------------------------------------------------------------ load_from
WRAPPER_KEYS = ("state_dict", "model", "module")   # mmengine/mmcv/Lightning/timm; timm/DeiT/ConvNeXt; DeepSpeed


class UnsafeCheckpointError(ValueError):
    """A file that ``torch.load(weights_only=True)`` refuses: unpickling it would run code."""


@dataclass
class LoadReport:
    """What :func:`load_weights` did. Names are model keys (after the prefix map), except
    ``skipped``, which are the file's keys that ``trainer.load_from_prefix`` selected none of."""

    path: str
    source: str                                  # where in the file the weights were found
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)      # model entries the file does not have
    unexpected: list[str] = field(default_factory=list)   # file entries the model does not have
    mismatched: list[tuple[str, tuple, tuple]] = field(default_factory=list)   # (key, file shape, model shape)
    skipped: list[str] = field(default_factory=list)
    total: int = 0                               # the model's state_dict entries

    def lines(self, first: int = 5) -> list[str]:
        """The report, one line per kind: the count, then the first ``first`` names."""
        def names(items):
            shown = ", ".join(items[:first])
            return f": {shown}" + (f", ... (+{len(items) - first} more)" if len(items) > first else "") if items else ""

        shapes = [f"{k} {list(a)} in the file vs {list(b)} in the model" for k, a, b in self.mismatched]
        def kind(label, items, what):
            return f"  {label} {len(items)}" + (f" ({what}){names(items)}" if items else "")

        return [f"trainer.load_from={self.path} ({self.source}):",
                f"  loaded {len(self.loaded)} of {self.total} model entries",
                kind("missing", self.missing, "left as initialised"),
                kind("unexpected", self.unexpected, "not loaded"),
                kind("shape-mismatched", shapes, "left as initialised"),
                *([f"  not selected by trainer.load_from_prefix {len(self.skipped)}{names(self.skipped)}"]
                  if self.skipped else [])]

    def __str__(self) -> str:
        return "\n".join(self.lines())


def check_load_from(load_from: Any, prefix: Any, strict: Any) -> dict[str, str] | None:
    """``trainer.load_from*`` checked before the run; returns the prefix map as a plain dict."""
    if load_from is not None and (not isinstance(load_from, (str, os.PathLike)) or not str(load_from)):
        raise ValueError(f"trainer.load_from must be a path, a run directory or a glob pattern, got {load_from!r}")
    if not isinstance(strict, bool):
        raise ValueError(f"trainer.load_from_strict must be true or false, got {strict!r}")
    if prefix is None:
        return None
    if not isinstance(prefix, Mapping) or not all(isinstance(x, str) for kv in prefix.items() for x in kv):
        raise ValueError(f"trainer.load_from_prefix must map module names to module names, e.g. "
                         f"{{backbone: backbone}} or {{.: backbone}}, got {prefix!r}")
    return dict(prefix)


def find_load_from(spec: str | os.PathLike) -> Path:
    """The file ``trainer.load_from`` names: a file; a run directory (its ``checkpoints/last.pt``);
    or a glob pattern (``outputs/convnext_pretrain/*/checkpoints/last.pt``), whose newest match
    (by modification time) is taken."""
    text = str(spec)
    if any(c in text for c in "*?["):
        base = Path(text).anchor or "."
        pattern = text[len(base):] if Path(text).is_absolute() else text
        matches = [p for p in Path(base).glob(pattern) if p.is_file()]
        if not matches:
            raise FileNotFoundError(f"trainer.load_from={text!r}: no file matches (relative to {Path.cwd()}); "
                                    "run what writes it first (the recipe's comment says which), or set "
                                    "trainer.load_from=null to start from the model's own initialisation")
        return max(matches, key=lambda p: p.stat().st_mtime)
    path = Path(text)
    if path.is_dir():
        path = path / "checkpoints" / "last.pt" if (path / "checkpoints").is_dir() else path / "last.pt"
    if not path.is_file():
        raise FileNotFoundError(f"trainer.load_from={text!r}: no such file ({path})")
    return path


def load_weights(model: torch.nn.Module, path: str | os.PathLike, prefix: Mapping[str, str] | None = None,
                 strict: bool = False) -> LoadReport:
    """Copy a file's weights into ``model`` (``trainer.load_from``); returns the report.

    1. :func:`read_weights`: ``torch.load(weights_only=True)``, then the state_dict is found
       (a trainkit checkpoint's ``model``; else a ``state_dict``/``model``/``module`` entry).
    2. A ``module.`` prefix (a DDP/DataParallel wrapper) on every key is removed, unless the
       model's own keys start with it.
    3. ``prefix`` (:func:`remap_keys`) selects and renames keys by module: ``{backbone: backbone}``
       takes ``backbone.*`` only; ``{"": backbone}`` puts a bare backbone file under ``backbone``.
    4. Entries whose key and shape agree are loaded; the others are reported (missing, unexpected,
       shape-mismatched) and, with ``strict``, are an error. Loading nothing is always an error.
    """
    state, source = read_weights(path)
    target = model.state_dict()
    if state and all(k.startswith("module.") for k in state) and not any(k.startswith("module.") for k in target):
        state, source = {k[len("module."):]: v for k, v in state.items()}, f"{source}, 'module.' prefix removed"
    skipped: list[str] = []
    if prefix:
        state, skipped = remap_keys(state, prefix)
        source += f", prefix map {dict(prefix)}"
    report = LoadReport(str(path), source, skipped=skipped, total=len(target))
    for key, value in state.items():
        if key not in target:
            report.unexpected.append(key)
        elif _shape(value) != _shape(target[key]):
            report.mismatched.append((key, _shape(value), _shape(target[key])))
        else:
            report.loaded.append(key)
    report.missing = [k for k in target if k not in state]
    if not report.loaded:
        raise ValueError(f"{report}\nnothing to load: no entry of the file matches the model. The file's keys "
                         f"start {sorted(state)[:3]}, the model's {list(target)[:3]}; map them with "
                         "trainer.load_from_prefix={file_module: model_module}")
    if strict and (report.missing or report.unexpected or report.mismatched):
        raise ValueError(f"{report}\ntrainer.load_from_strict=true: every entry must match "
                         "(set it to false to load what matches)")
    model.load_state_dict({k: state[k] for k in report.loaded}, strict=False)
    return report


def read_weights(path: str | os.PathLike) -> tuple[dict[str, Any], str]:
    """``(state_dict, where it was found)`` from a file, read with ``torch.load(weights_only=True)``
    only: tensors and plain containers; a file that needs other objects is refused with
    :class:`UnsafeCheckpointError` (nothing of it is executed)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"trainer.load_from={str(path)!r}: no such file")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:   # noqa: BLE001 (any failure: say whether it is the safety check or the file)
        unsafe = _unsafe_globals(path) or list(dict.fromkeys(re.findall(r"GLOBAL ([\w.]+)", str(e))))
        if unsafe:
            raise UnsafeCheckpointError(_unsafe_message(path, unsafe)) from None
        raise ValueError(f"trainer.load_from={str(path)!r}: not a readable torch file "
                         f"({type(e).__name__}: {_torch_detail(e)}); nothing was loaded") from None
    if isinstance(obj, Mapping) and obj.get("format") == FORMAT:
        c = obj.get("counters", {})
        return dict(obj["model"]), f"trainkit checkpoint at epoch {c.get('epoch')}, iter {c.get('iter')}"
    where: list[str] = []
    for _ in range(3):   # e.g. {'state_dict': {...}}, {'model': {...}}, {'module': {...}}
        if _is_state_dict(obj):
            return dict(obj), ("the " + " → ".join(where) + " entry") if where else "a plain state_dict"
        key = next((k for k in WRAPPER_KEYS if isinstance(obj, Mapping) and isinstance(obj.get(k), Mapping)), None)
        if key is None:
            break
        where.append(repr(key))
        obj = obj[key]
    keys = sorted(map(str, obj))[:10] if isinstance(obj, Mapping) else type(obj).__name__
    raise ValueError(f"trainer.load_from={str(path)!r}: found no state_dict (tensors by name) in the file, nor a "
                     f"{'/'.join(WRAPPER_KEYS)} entry holding one; it holds {keys}")


def remap_keys(state: Mapping[str, Any], prefix: Mapping[str, str]) -> tuple[dict[str, Any], list[str]]:
    """``(renamed, skipped)``: each key under one of ``prefix``'s source modules (the longest that
    matches; ``""`` matches every key) renamed to lie under its target module; keys under none
    are skipped. ``{"backbone": "encoder"}``: ``backbone.stages.0.w`` → ``encoder.stages.0.w``."""
    rules = sorted(((_module(src), _module(dst)) for src, dst in prefix.items()), key=lambda r: -len(r[0]))
    out: dict[str, Any] = {}
    skipped, origin = [], {}
    for key, value in state.items():
        match = next(((s, d) for s, d in rules if not s or key == s or key.startswith(s + ".")), None)
        if match is None:
            skipped.append(key)
            continue
        src, dst = match
        rest = key[len(src):].lstrip(".") if src else key
        new = f"{dst}.{rest}" if dst and rest else (dst or rest)
        if new in out:
            raise ValueError(f"trainer.load_from_prefix={dict(prefix)}: {origin[new]!r} and {key!r} both "
                             f"become {new!r}")
        out[new], origin[new] = value, key
    return out, skipped


def _module(name: str) -> str:
    """A module path as a key prefix: ``backbone.`` → ``backbone``; ``.`` and ``""`` → the root."""
    return name.strip(".")


def _shape(x: Any) -> tuple | None:
    return tuple(x.shape) if isinstance(x, torch.Tensor) else None


def _is_state_dict(obj: Any) -> bool:
    """Names to tensors (non-tensor extra state allowed, no nested mapping)."""
    return isinstance(obj, Mapping) and bool(obj) and all(isinstance(k, str) for k in obj) \
        and any(isinstance(v, torch.Tensor) for v in obj.values()) \
        and not any(isinstance(v, Mapping) for v in obj.values())


def _unsafe_globals(path: Path) -> list[str]:
    """The Python objects a file's pickle names beyond torch's weights-only allowlist, read
    without unpickling (empty when torch cannot tell, e.g. for a legacy, non-zip file)."""
    try:
        return list(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    except Exception:   # noqa: BLE001
        return []


def _torch_detail(error: Exception) -> str:
    """The line of a ``torch.load`` error that says what went wrong (after torch's preamble)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    for i, line in enumerate(lines):
        if line.endswith("WeightsUnpickler error:") and i + 1 < len(lines):
            return lines[i + 1]
        if "WeightsUnpickler error:" in line:
            return line.split("WeightsUnpickler error:", 1)[1].strip()
    return lines[0] if lines else ""


def _unsafe_message(path: Path, unsafe: list[str]) -> str:
    found = ", ".join(unsafe[:6]) + (f", ... (+{len(unsafe) - 6} more)" if len(unsafe) > 6 else "")
    return (f"trainer.load_from={str(path)!r}: the file holds Python objects besides tensors and plain containers "
            f"({found}); loading it would run code from the file, so trainkit reads weights with "
            "torch.load(weights_only=True) only and has loaded nothing. If you trust the file, save its weights "
            "once as a plain state_dict and load that: python -c \"import torch; c = torch.load('IN', "
            "weights_only=False); torch.save(c.get('state_dict', c), 'OUT.pt')\"")


# ------------------------------------------------------------- which files are kept
PERIODIC = re.compile(r"^(epoch|iter)_(\d+)\.pt$")
TOP_K_FILE = re.compile(r"^best_(epoch|iter)_(\d+)\.pt$")
# mmengine's CheckpointHook defaults (``_default_greater_keys``, ``_default_less_keys``), case-insensitive
GREATER_KEYS = ("acc", "top", "AR@", "auc", "precision", "mAP", "mDice", "mIoU", "mAcc", "aAcc")
LESS_KEYS = ("loss",)


def infer_rule(metric: str) -> str:
    """``greater`` or ``less`` for a metric name, by mmengine's CheckpointHook rule (case-insensitive,
    in this order): the name *is* one of :data:`GREATER_KEYS` → greater; is one of :data:`LESS_KEYS`
    → less; *contains* a greater key → greater; contains a less key → less. So ``val/acc`` →
    greater, ``val/loss`` → less, and ``val/psnr`` is an error asking for ``rule``."""
    name = metric.lower()
    greater, less = [k.lower() for k in GREATER_KEYS], [k.lower() for k in LESS_KEYS]
    for keys, rule in ((greater, "greater"), (less, "less")):
        if name in keys:
            return rule
    for keys, rule in ((greater, "greater"), (less, "less")):
        if any(k in name for k in keys):
            return rule
    raise ValueError(f"trainer.checkpoint.rule: cannot infer whether {metric!r} is better greater or less (names "
                     f"containing {', '.join(GREATER_KEYS)} are greater, containing loss are less); "
                     "set trainer.checkpoint.rule=greater or less")


class CheckpointManager:
    """Writes a run's checkpoint files under ``directory`` and keeps only what the options say.

    - ``last.pt``: every save; never deleted.
    - periodic ``epoch_<N>.pt`` / ``iter_<K>.pt``: ``max_keep=N`` keeps the newest N of them together
      (ordered by the iteration they hold: ``epoch_<N>`` holds ``N * iters_per_epoch``), ``0`` none;
      ``None`` keeps every ``epoch_<N>.pt`` and only the newest ``iter_<K>.pt``.
    - ``best.pt``: with ``save_best=METRIC``, the checkpoint of the best validation so far by ``rule``
      (strictly better replaces, so a tie keeps the earlier one; NaN never wins), with
      ``{"best": {metric, value, rule, epoch, iter}}`` inside. ``top_k > 1`` keeps the k best as
      ``best_epoch_<N>.pt`` (``best_iter_<K>.pt`` at a mid-epoch end) and ``best.pt`` is a hard link
      to the first (a copy where links are unsupported).

    Files to drop are deleted *before* the new one is written, so a ``kill -9`` at any moment
    leaves at most N periodic files, k best files, ``last.pt`` and ``best.pt``. Only the main
    process calls :meth:`write`; every process calls :meth:`consider` (the state is in checkpoints).
    """

    def __init__(self, directory: str | os.PathLike, iters_per_epoch: int, max_keep: int | None = None,
                 save_best: str | None = None, rule: str | None = None, top_k: int = 1):
        if max_keep is not None and (not is_int(max_keep) or max_keep < 0):
            raise ValueError(f"trainer.checkpoint.max_keep must be an integer >= 0 or null (keep every epoch_*.pt "
                             f"and the newest iter_*.pt), got {max_keep!r}")
        if not is_int(top_k) or top_k < 1:
            raise ValueError(f"trainer.checkpoint.top_k must be an integer >= 1, got {top_k!r}")
        if save_best is not None and (not isinstance(save_best, str) or not save_best):
            raise ValueError(f"trainer.checkpoint.save_best must be a metric name such as val/acc, got {save_best!r}")
        if rule is not None and rule not in ("greater", "less"):
            raise ValueError(f"trainer.checkpoint.rule={rule!r} is not valid; allowed: 'greater', 'less', null")
        if save_best is None and (rule is not None or top_k != 1):
            raise ValueError("trainer.checkpoint.rule and top_k need trainer.checkpoint.save_best (the metric)")
        self.dir, self.iters_per_epoch = Path(directory), iters_per_epoch
        self.writer = CheckpointWriter(directory)   # every file goes through it (atomic, disk-full errors)
        self.max_keep, self.save_best, self.top_k = max_keep, save_best, top_k
        self.rule = (rule or infer_rule(save_best)) if save_best else None
        self.best: list[dict[str, Any]] = []     # the top-k validations, best first
        self._new: dict[str, Any] | None = None  # an entry that joined the top-k, to write at the next save

    # --------------------------------------------------------------- best
    def consider(self, metrics: Mapping[str, float], epoch: int, iteration: int, mid_epoch: bool = False) -> bool:
        """Rank a validation's ``metrics`` (after ``epoch`` completed epochs, ``iteration`` iterations);
        True when it joins the top-k (its file is then written by the next :meth:`write`)."""
        if self.save_best is None:
            return False
        if self.save_best not in metrics:
            raise ValueError(f"trainer.checkpoint.save_best={self.save_best!r} is not among the validation "
                             f"metrics {sorted(metrics)}")
        value = float(metrics[self.save_best])
        if math.isnan(value) or (len(self.best) == self.top_k and not self._better(value, self.best[-1]["value"])):
            return False
        tag = f"iter_{iteration}" if mid_epoch else f"epoch_{epoch}"
        entry = {"metric": self.save_best, "value": value, "rule": self.rule, "epoch": epoch, "iter": iteration,
                 "file": "best.pt" if self.top_k == 1 else f"best_{tag}.pt"}
        at = next((i for i, b in enumerate(self.best) if self._better(value, b["value"])), len(self.best))
        self.best = (self.best[:at] + [entry] + self.best[at:])[:self.top_k]
        self._new = entry
        return True

    def _better(self, a: float, b: float) -> bool:
        return a > b if self.rule == "greater" else a < b

    # -------------------------------------------------------------- files
    def write(self, state: Mapping[str, Any], names: list[str] | tuple[str, ...]) -> list[Path]:
        """Write ``state`` as each of ``names`` (``last``, ``epoch_<N>``, ``iter_<K>``) and as the
        best checkpoint if :meth:`consider` just ranked it; returns the files written."""
        written = []
        if self._new is not None:   # before last.pt: a kill in between resumes before this validation,
            written += self._write_best(state, self._new)   # which then ranks (and writes) it again
            self._new = None
        kept = [n for n in names if not PERIODIC.match(f"{n}.pt") or self._make_room(f"{n}.pt")]
        if kept:
            written += self.writer.save(state, kept)
        return written

    def _make_room(self, name: str) -> bool:
        """Delete the periodic files that ``name`` pushes out; False if ``name`` itself is not kept."""
        kind = PERIODIC.match(name).group(1)
        limit = self.max_keep if self.max_keep is not None else (None if kind == "epoch" else 1)
        if limit == 0:
            return False
        if limit is None:
            return True
        others = [p for p in self.dir.glob("*.pt") if PERIODIC.match(p.name) and p.name != name
                  and (self.max_keep is not None or PERIODIC.match(p.name).group(1) == kind)]
        for old in sorted(others, key=self._held_iter)[:max(0, len(others) - (limit - 1))]:
            with contextlib.suppress(FileNotFoundError):
                old.unlink()
        return True

    def _held_iter(self, path: Path) -> int:
        kind, n = PERIODIC.match(path.name).groups()
        return int(n) * self.iters_per_epoch if kind == "epoch" else int(n)

    def _write_best(self, state: Mapping[str, Any], entry: dict[str, Any]) -> list[Path]:
        keep = {b["file"] for b in self.best}
        for old in self.dir.glob("best_*.pt"):   # left the top-k (or a stale file of an earlier run here)
            if TOP_K_FILE.match(old.name) and old.name not in keep:
                old.unlink()
        info = {k: entry[k] for k in ("metric", "value", "rule", "epoch", "iter")}
        path, = self.writer.save({**state, "best": info}, [entry["file"].removesuffix(".pt")])
        written = [path]
        if self.top_k > 1 and entry is self.best[0]:
            written.append(_link_atomic(path, self.dir / "best.pt", {**state, "best": info}))
        log.info("best %s=%.6g (%s) at epoch %d, iter %d: %s", entry["metric"], entry["value"], entry["rule"],
                 entry["epoch"], entry["iter"], path)
        return written

    # ------------------------------------------------ the writer's record
    @property
    def last(self) -> Path | None:
        """The newest checkpoint of this run (written, or resumed from); None before the first."""
        return self.writer.last

    @property
    def last_iter(self) -> int | None:
        return self.writer.last_iter

    def resumed_from(self, path: Path, state: Mapping[str, Any]) -> None:
        self.writer.resumed_from(path, state)

    def checkpoints(self) -> list[Path]:
        return self.writer.checkpoints()

    def remove_stale_tmp(self) -> list[Path]:
        return self.writer.remove_stale_tmp()

    # -------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        return {"metric": self.save_best, "rule": self.rule, "best": [dict(b) for b in self.best]}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore the top-k; a checkpoint that ranked another metric or by another rule starts it afresh."""
        if not state or state.get("metric") != self.save_best or state.get("rule") != self.rule:
            if state and state.get("metric") and self.save_best:
                log.warning("the checkpoint ranked %s (%s); trainer.checkpoint.save_best=%s (%s) starts afresh",
                            state.get("metric"), state.get("rule"), self.save_best, self.rule)
            self.best = []
            return
        self.best = [dict(b) for b in state["best"]][:self.top_k]


def _link_atomic(src: Path, dst: Path, state: Mapping[str, Any]) -> Path:
    """``dst`` becomes a hard link to ``src`` (link to a temporary name, then rename over ``dst``);
    where the filesystem has no hard links, an atomic copy of ``state``."""
    tmp = dst.with_name(f".{dst.name}.link.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    try:
        os.link(src, tmp)
    except OSError:
        return save_atomic(state, dst)
    os.replace(tmp, dst)
    return dst
