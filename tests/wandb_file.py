"""Read a W&B run file (``run-<id>.wandb``) without W&B's servers.

An offline run is one file: a 7-byte header (``b":W&B"``, magic ``0xBEE1``,
version 0) then LevelDB log blocks of 32 KiB. Each block holds chunks
``crc32(type + data) : u32 | length : u16 | type : u8 | data``; a chunk header
never straddles a block (a tail shorter than 7 bytes is zero padding), and a
message is one FULL chunk or FIRST, MIDDLE..., LAST. Each message is a
``wandb_internal_pb2.Record`` (run, config, metric, history, exit, ...).

``read_run(path)`` gathers what a test or a script needs: the run's identity,
its config, its ``define_metric`` definitions, the history rows and the exit code.
"""
from __future__ import annotations

import json
import os
import struct
import zlib
from dataclasses import dataclass, field
from typing import Any
from collections.abc import Iterator

_HEADER = struct.Struct("<4sHB")
_CHUNK = struct.Struct("<IHB")
_BLOCK = 32768
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


def read_records(path: str | os.PathLike) -> Iterator[Any]:
    """Every ``Record`` in the file, in write order. A chunk cut off at the end of
    the file (a run still writing, or killed) ends the iteration."""
    from wandb.proto import wandb_internal_pb2 as pb

    with open(path, "rb") as f:
        data = f.read()
    if len(data) < _HEADER.size or _HEADER.unpack_from(data) != (b":W&B", 0xBEE1, 0):
        raise ValueError(f"{path} is not a W&B run file (bad header)")
    pos, message = _HEADER.size, b""
    while True:
        if _BLOCK - pos % _BLOCK < _CHUNK.size:
            pos += _BLOCK - pos % _BLOCK
        if pos + _CHUNK.size > len(data):
            return
        crc, length, kind = _CHUNK.unpack_from(data, pos)
        chunk = data[pos + _CHUNK.size: pos + _CHUNK.size + length]
        if kind == 0 or len(chunk) < length:
            return
        if zlib.crc32(chunk, zlib.crc32(bytes([kind]))) != crc:
            raise ValueError(f"{path}: checksum mismatch at byte {pos}")
        pos += _CHUNK.size + length
        message = chunk if kind in (_FULL, _FIRST) else message + chunk
        if kind in (_FULL, _LAST):
            record = pb.Record()
            record.ParseFromString(message)
            yield record


@dataclass
class WandbRun:
    run_id: str = ""
    project: str = ""
    name: str = ""
    group: str = ""
    tags: list[str] = field(default_factory=list)
    notes: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)   # name or glob -> options
    history: list[dict[str, Any]] = field(default_factory=list)
    exit_code: int | None = None   # None: the run was not finished


def read_run(path: str | os.PathLike) -> WandbRun:
    """The run in one ``.wandb`` file. A history row maps each logged key to its
    value (``_step`` included); a nested key (a table's fields) gives a nested dict."""
    run = WandbRun()
    for rec in read_records(path):
        kind = rec.WhichOneof("record_type")
        if kind == "run":
            r = rec.run
            run.run_id, run.project, run.name = r.run_id, r.project, r.display_name
            run.group, run.tags, run.notes = r.run_group, list(r.tags), r.notes
            _apply(run.config, r.config.update)
        elif kind == "config":
            _apply(run.config, rec.config.update)
        elif kind == "metric":
            m = rec.metric
            run.metrics[m.name or m.glob_name] = {
                "step_metric": m.step_metric, "step_sync": m.options.step_sync, "hidden": m.options.hidden}
        elif kind == "history":
            row: dict[str, Any] = {}
            _apply(row, rec.history.item)
            run.history.append(row)
        elif kind == "exit":
            run.exit_code = rec.exit.exit_code
    return run


def _apply(target: dict, items) -> None:
    """Set each ``key`` / ``nested_key`` item's JSON value into ``target``."""
    for item in items:
        keys = list(item.nested_key) or [item.key]
        d = target
        for k in keys[:-1]:
            d = d.setdefault(k, {})
        d[keys[-1]] = json.loads(item.value_json)
