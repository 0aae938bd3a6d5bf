"""Checkpoints written atomically, and RNG state capture.

``save_atomic`` writes to a temporary file in the same directory, fsyncs it and
renames it over the target (``os.replace`` is atomic on POSIX), so a crash or a
``kill -9`` while saving leaves the previous checkpoint intact and loadable.
"""
from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
import contextlib

FORMAT = "trainkit/1"


def save_atomic(obj: Any, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
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
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return path


def load(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"trainer.resume: no checkpoint at {path}")
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise ValueError(f"trainer.resume: {path} is not a trainkit checkpoint (format {FORMAT})")
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


def find_resume(resume: str | None, work_dir: Path, multirun: bool = False) -> Path | None:
    """``None``/``""`` → no resume; ``auto`` → the newest ``checkpoints/last.pt`` in
    ``work_dir`` or, failing that, in its sibling run directories (``outputs/<name>/*/``;
    in a Hydra multirun, the same job subdirectory of earlier sweeps); else a path."""
    if not resume:
        return None
    if resume != "auto":
        p = Path(resume)
        if p.is_dir():
            p = p / "checkpoints" / "last.pt" if (p / "checkpoints").is_dir() else p / "last.pt"
        if not p.is_file():
            raise FileNotFoundError(f"trainer.resume={resume!r}: no checkpoint file at {p}")
        return p
    own = work_dir / "checkpoints" / "last.pt"
    if own.is_file():
        return own
    parent, pattern = work_dir.parent, "*/checkpoints/last.pt"
    if multirun:
        parent, pattern = work_dir.parent.parent, f"*/{work_dir.name}/checkpoints/last.pt"
    candidates = [p for p in parent.glob(pattern) if p.is_file()] if parent.is_dir() else []
    return max(candidates, key=lambda p: p.stat().st_mtime) if candidates else None
