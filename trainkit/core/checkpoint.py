"""Checkpoints written atomically, read with errors that name the file, and RNG state capture.

``save_atomic`` writes to a temporary file in the same directory, fsyncs it and
renames it over the target (``os.replace`` is atomic on POSIX), so a crash or a
``kill -9`` while saving leaves the previous checkpoint intact and loadable. A full
disk is reported as such (:class:`DiskFullError`), not as torch's ``unexpected pos``.
:class:`CheckpointWriter` is the one place that writes a run's checkpoints.
"""
from __future__ import annotations

import contextlib
import errno
import os
import random
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .checks import ReportedError

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
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)
    return path


def copy_atomic(src: Path, path: Path) -> Path:
    """A copy of the finished checkpoint ``src`` at ``path``, written atomically (temporary file,
    fsync, ``os.replace``). A copy, not a hard link: each name stays an independent file, so a
    damaged ``last.pt`` leaves its ``epoch_N.pt`` twin intact to fall back to."""
    import shutil

    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f, open(src, "rb") as source:
            shutil.copyfileobj(source, f, 1 << 20)
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
    state = {"python": random.getstate(), "numpy": np.random.get_state(),
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
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
