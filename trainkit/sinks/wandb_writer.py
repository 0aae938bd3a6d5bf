"""The W&B writer: a child process that owns the W&B run of a training process.

Started by :class:`trainkit.sinks.wandb.WandbSink` as ``python -m trainkit.sinks.wandb_writer
<rows fd> <replies fd> <parent pid>`` (a fresh interpreter: safe with CUDA, and it imports
``wandb``, never ``torch``). It runs ``wandb.init`` (with the online → offline → disabled
fallback), ``log`` and ``finish``; the training process only pickles rows into a pipe.

Both pipes carry frames: a header ``<IBI`` (payload length, kind, number of rows) and a
pickled payload. Frames from the training process: ``INIT`` (the run's options), ``ROWS``
(a list of ``(step, time, row)``), ``PLANNED`` (the planned-schedule rows), ``DROPPED``
(rows the training process dropped), ``CLOSE`` (the exit code for ``finish``). Frames back:
``READY`` / ``CONFIG_ERROR`` (after ``wandb.Settings`` accepted or refused the settings),
``STARTED`` (the mode obtained), ``WARNING`` (a line for the training process's log) and
``FINISHED`` (counts).

Threads here: a reader drains the rows pipe into a queue at once (so the training process's
writes never wait while W&B is busy, e.g. during a 30 s online init) and drops the oldest
rows beyond ``queue_bytes``; the main thread logs what is queued, in order, and ends with
``finish`` on ``CLOSE``, or when the training process is gone (end of file on the pipe, or
a new parent pid: it was killed) with exit code :data:`EXIT_VANISHED`.

Rows are sent to wandb-core in batches: one hand-off to wandb's asyncio thread per batch
instead of ``run.log``'s blocking round trip per row, and each scalar row's record built
directly (the same ``PartialHistoryRequest`` ``run.log`` builds: checked on the first row,
which does go through ``run.log``; any difference and every row goes through ``run.log``).
"""
from __future__ import annotations

import contextlib
import math
import os
import pickle
import select
import signal
import socket
import struct
import sys
import threading
from collections import deque
from pathlib import Path
from typing import Any
from collections.abc import Mapping, Sequence
from urllib.parse import urlsplit

STEP = "trainer/global_step"
DROPPED_KEY = "trainkit/wandb_dropped"
EXIT_VANISHED = 1   # the training process ended without closing the sink (kill -9, OOM killer, crash)
LEAN_SETTINGS = {
    "x_disable_stats": True, "x_disable_meta": True, "x_disable_machine_info": True,
    "x_save_requirements": False, "disable_git": True, "save_code": False,
    "disable_job_creation": True, "console": "off",
}
PROBE_TIMEOUT = 3.0   # seconds for the TCP probe of the W&B server before an online init
PRIORITIES = ("idle", "low", "normal")   # logger.wandb.writer_priority, see set_priority

HEADER = struct.Struct("<IBI")   # payload bytes, kind, rows
INIT, ROWS, PLANNED, DROPPED, CLOSE = 1, 2, 3, 4, 5
READY, CONFIG_ERROR, STARTED, WARNING, FINISHED = 11, 12, 13, 14, 15
_SCALARS = {float, int, bool}


def frame(kind: int, payload: Any, rows: int = 0) -> bytes:
    data = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
    return HEADER.pack(len(data), kind, rows) + data


def split_frames(buf: bytearray) -> list[tuple[int, int, bytes]]:
    """Remove the complete frames at the start of ``buf``: ``[(kind, rows, payload), ...]``."""
    out, pos = [], 0
    while len(buf) - pos >= HEADER.size:
        n, kind, rows = HEADER.unpack_from(buf, pos)
        if len(buf) - pos - HEADER.size < n:
            break
        out.append((kind, rows, bytes(buf[pos + HEADER.size: pos + HEADER.size + n])))
        pos += HEADER.size + n
    del buf[:pos]
    return out


class Replies:
    """Frames back to the training process (blocking writes; ignored once it is gone)."""

    def __init__(self, fd: int):
        self.fd, self.lock, self.gone = fd, threading.Lock(), False

    def send(self, kind: int, payload: Any = None) -> None:
        data = frame(kind, payload)
        with self.lock:
            if self.gone:
                return
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(self.fd, view):]
            except OSError:   # the training process is gone; keep flushing W&B anyway
                self.gone = True

    def warn(self, text: str) -> None:
        self.send(WARNING, text)


class Inbox:
    """The reader thread's queue of frames from the training process.

    Holds at most ``max_bytes`` of ``ROWS`` payloads: beyond that the oldest ``ROWS`` frames
    are dropped (and counted in ``dropped``), never ``PLANNED``/``CLOSE``. ``eof`` becomes
    True at the end of the pipe, or when this process's parent is no longer ``parent_pid``.
    """

    def __init__(self, fd: int, parent_pid: int, max_bytes: int = 1 << 62):
        self.fd, self.parent_pid, self.max_bytes = fd, parent_pid, max_bytes
        self.frames: deque[tuple[int, int, bytes]] = deque()
        self.bytes = self.dropped = 0
        self.eof = False
        self.cond = threading.Condition()
        self._buf = bytearray()

    def read_first(self) -> tuple[int, int, bytes]:
        """The first frame (``INIT``), read before the thread starts."""
        while True:
            frames = split_frames(self._buf)
            if frames:
                self.frames.extend(frames[1:])
                return frames[0]
            data = os.read(self.fd, 1 << 16)
            if not data:
                raise EOFError("the training process closed the pipe before sending the run's options")
            self._buf += data

    def start(self) -> None:
        threading.Thread(target=self._run, name="trainkit-wandb-reader", daemon=True).start()

    def _run(self) -> None:
        try:
            while True:
                ready, _, _ = select.select([self.fd], [], [], 1.0)
                if not ready:
                    if os.getppid() != self.parent_pid:   # killed: we were handed to another parent
                        break
                    continue
                data = os.read(self.fd, 1 << 20)
                if not data:
                    break
                self._buf += data
                frames = split_frames(self._buf)
                if frames:
                    self._put(frames)
        finally:
            with self.cond:
                self.eof = True
                self.cond.notify_all()

    def _put(self, frames: list[tuple[int, int, bytes]]) -> None:
        with self.cond:
            for f in frames:
                self.frames.append(f)
                if f[0] == ROWS:
                    self.bytes += len(f[2])
            while self.bytes > self.max_bytes:
                i = next((i for i, f in enumerate(self.frames) if f[0] == ROWS), None)
                if i is None:
                    break
                kind, rows, payload = self.frames[i]
                del self.frames[i]
                self.bytes -= len(payload)
                self.dropped += rows
            self.cond.notify_all()

    def take(self) -> tuple[list[tuple[int, int, bytes]], bool]:
        """Wait for frames; ``(frames, eof)`` (no frames and eof: the pipe is done)."""
        with self.cond:
            while not self.frames and not self.eof:
                self.cond.wait()
            frames = list(self.frames)
            self.frames.clear()
            self.bytes = 0
            return frames, self.eof


def set_priority(priority: str) -> None:
    """This process's CPU priority, inherited by the wandb-core it starts. ``idle``: Linux's
    ``SCHED_IDLE`` (the smallest weight there is: training's threads always come first, the
    writer runs on spare CPU; nice +19 where there is no SCHED_IDLE); ``low``: nice +10;
    ``normal``: unchanged. A writer never asks for more than the training process has."""
    with contextlib.suppress(OSError, AttributeError):
        if priority == "idle" and hasattr(os, "SCHED_IDLE"):
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        elif priority in ("idle", "low"):
            os.nice(19 if priority == "idle" else 10)


# ----------------------------------------------------------------------- init
def start_run(wandb, spec: Mapping[str, Any], settings, replies: Replies):
    """``(run, mode)``: ``wandb.init`` with ``online`` falling back to ``offline`` (no API key,
    a server that refuses a TCP connection within :data:`PROBE_TIMEOUT` s, or any init error
    such as a timeout after ``init_timeout`` s), and ``offline`` falling back to no W&B at all
    (``(None, "disabled")``); each fallback is a warning. A failed online attempt's
    ``run-*-<id>`` directory is removed, so only the run that exists is left, and its
    wandb-core is shut down, so the offline run can take the same id."""
    init_args = dict(spec["init_args"])
    run_dir = Path(init_args["dir"])
    run_dir.mkdir(parents=True, exist_ok=True)
    for mode in ("online", "offline") if spec["mode"] == "online" else ("offline",):
        before = _run_dirs(run_dir)
        try:
            if mode == "online":
                if not _has_credentials(wandb):
                    raise RuntimeError("no W&B API key (set WANDB_API_KEY or run `wandb login`)")
                base_url = spec["settings"].get("base_url") or wandb.setup().settings.base_url
                _probe(base_url, min(PROBE_TIMEOUT, spec["init_timeout"]))
            return wandb.init(mode=mode, settings=settings, **init_args), mode
        except Exception as e:   # never let W&B stop training
            then = "falling back to offline" if mode == "online" else "W&B logging is off for this run"
            replies.warn(f"W&B {mode} init failed ({type(e).__name__}: {e}); {then}")
            _remove_new_run_dirs(run_dir, before, init_args.get("id"))
            _end_service(wandb)   # the failed attempt still holds the run id
    return None, "disabled"


def _end_service(wandb) -> None:
    """Shut down wandb-core after a failed init: otherwise the next ``wandb.init`` with the
    same id fails with "run ID ... is in use" (a resumed run, or a new run's fixed id)."""
    with contextlib.suppress(Exception):
        wandb.teardown()


def _probe(base_url: str, timeout: float) -> None:
    """Raise ConnectionError unless ``base_url``'s host accepts a TCP connection within
    ``timeout`` s (skipped behind an HTTP(S) proxy, which the probe would bypass)."""
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY")):
        return
    url = urlsplit(base_url)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=timeout).close()
    except OSError as e:
        raise ConnectionError(f"W&B server {base_url} unreachable ({e})") from None


def _run_dirs(run_dir: Path) -> set[str]:
    root = run_dir / "wandb"
    return {p.name for p in root.glob("run-*")} if root.is_dir() else set()


def _remove_new_run_dirs(run_dir: Path, before: set[str], run_id: str | None) -> None:
    """Remove the ``wandb/run-<time>-<id>`` directories a failed online attempt created."""
    import shutil

    for name in _run_dirs(run_dir) - before:
        if run_id is None or name.endswith(f"-{run_id}"):
            shutil.rmtree(run_dir / "wandb" / name, ignore_errors=True)


def _has_credentials(wandb) -> bool:
    """Whether W&B has an API key (env, .netrc, settings) for its server, asked
    without a prompt and without the network; True when this wandb cannot tell."""
    try:
        from wandb.sdk.lib import wbauth

        return wbauth.authenticate_session(host=wandb.setup().settings.base_url, source="trainkit",
                                           prompt=False, update_session=False) is not None
    except (ImportError, AttributeError, TypeError):
        return True


def _no_client_analytics() -> None:
    """Turn off wandb's own client analytics for this process. wandb 0.31 times every
    ``run.log`` into an OpenTelemetry histogram (~45 µs a call) and posts it to the
    server at exit (with a 10 s timeout) even for offline runs; an offline run must
    make no network request."""
    try:
        from wandb.analytics.opentelemetry import opentelemetry_proxy

        opentelemetry_proxy.disable()
    except (ImportError, AttributeError):
        pass


# -------------------------------------------------------------------- logging
def log_planned_schedule(run, rows: Sequence[Mapping[str, Any]], max_points: int = 2000) -> dict[str, Any]:
    """Log the planned schedule once: for every group ``g`` found as ``lr/<g>`` in
    ``rows`` (dicts with ``iter``, ``epoch``, ``lr/<g>``, ``momentum/<g>``), a table
    (columns iter, epoch, lr[, momentum]) and line charts ``planned/lr/<g>`` and
    ``planned/momentum/<g>`` over ``iter`` (the same axis as ``trainer/global_step``).

    Logged with ``commit=False`` and no step: it joins the current history row and
    never moves W&B's step. More than ``max_points`` rows are thinned (:func:`thin`).
    Returns the logged dict.
    """
    import wandb

    kept = thin(rows, max_points)
    groups = list(dict.fromkeys(k[3:] for r in kept for k in r if k.startswith("lr/")))
    payload: dict[str, Any] = {}
    for g in groups:
        has_m = any(f"momentum/{g}" in r for r in kept)
        columns = ["iter", "epoch", "lr"] + (["momentum"] if has_m else [])
        data = [[r["iter"], r["epoch"], r[f"lr/{g}"]] + ([r.get(f"momentum/{g}")] if has_m else [])
                for r in kept]
        table = wandb.Table(columns=columns, data=data)
        payload[f"planned/lr/{g}"] = wandb.plot.line(table, "iter", "lr", title=f"planned lr/{g}")
        if has_m:
            payload[f"planned/momentum/{g}"] = wandb.plot.line(table, "iter", "momentum",
                                                               title=f"planned momentum/{g}")
    run.log(payload, commit=False)
    return payload


def thin(rows: Sequence[Any], max_points: int) -> list[Any]:
    """Every ``ceil(n / max_points)``-th row, plus the last (all of them when n <= max_points)."""
    if not rows:
        return []
    stride = math.ceil(len(rows) / max_points)
    kept = list(rows[::stride])
    if (len(rows) - 1) % stride:
        kept.append(rows[-1])
    return kept


class Publisher:
    """Sends rows to the run: ``publish([(step, time, row), ...])``.

    Every row is ``{**row, STEP: step}`` at ``step`` with ``_timestamp = time`` (when the
    training process logged it), as ``run.log(..., step=step)`` would send it. Batched: the
    records of consecutive scalar rows go to wandb-core in one hand-off to wandb's asyncio
    thread. Errors are reported once (a ``WARNING``), then counted.
    """

    def __init__(self, run, replies: Replies):
        self.run, self.replies = run, replies
        self.errors = self.logged = 0
        self._first = True
        self._fast = self._bind()

    def _bind(self) -> bool:
        """Reach wandb's socket client; False (every row through ``run.log``) if this wandb differs."""
        try:
            import pydantic_core
            from wandb.proto import wandb_server_pb2

            iface = self.run._interface
            self._client, self._asyncer, self._stream_id = iface._client, iface._asyncer, iface._stream_id
            self._to_json, self._request = pydantic_core.to_json, wandb_server_pb2.ServerRequest
            self._header = _socket_header(self._client)
            return self.run._settings.x_history_value_encoding == "json"
        except (AttributeError, ImportError):
            return False

    def publish(self, rows: list[tuple[int, float, dict]]) -> None:
        pending: list = []
        for step, t, row in rows:
            request = self._encode(step, t, row) if self._fast and not self._first else None
            if request is not None:
                pending.append(request)
                continue
            self._send(pending)
            pending = []
            self._log(step, t, row)
        self._send(pending)

    def _log(self, step: int, t: float, row: dict) -> None:
        """One row through ``run.log``; the first scalar row also checks :meth:`_encode` against it."""
        data = {**row, STEP: step, "_timestamp": t}
        try:
            if self._first and self._fast and self._encode(step, t, row) is not None:
                self._log_checked(step, t, row, data)   # counts the row when sent
                self._first = False
            else:
                self.run.log(data, step=step)
                self.logged += 1
        except Exception as e:
            self._report(e, f"log at step {step}")

    def _log_checked(self, step: int, t: float, row: dict, data: dict) -> None:
        iface, captured = self.run._interface, []
        iface._publish = lambda record, nowait=False: captured.append(record)
        try:
            self.run.log(data, step=step)
        finally:
            del iface._publish   # the class's method again
        requests = []
        for record in captured:
            iface._assign(record)
            request = self._request()
            request.record_publish.CopyFrom(record)
            requests.append(request)
        partial = [r for r in requests if r.record_publish.request.HasField("partial_history")]
        if len(partial) != 1 or partial[0] != self._encode(step, t, row):
            self._fast = False   # this wandb builds its records differently: keep to run.log
        self._send(requests)

    def _encode(self, step: int, t: float, row: dict):
        """The ``ServerRequest`` ``run.log({**row, STEP: step, "_timestamp": t}, step=step)``
        publishes, for a row of str keys and float/int/bool values; None for any other row."""
        if STEP in row or "_step" in row or "_timestamp" in row or not set(map(type, row)) <= {str} \
                or not set(map(type, row.values())) <= _SCALARS:
            return None
        values = [*row.values(), step, t]
        texts = self._to_json(values, inf_nan_mode="constants").decode()[1:-1].split(",")
        request = self._request()
        record = request.record_publish
        history = record.request.partial_history
        add = history.item.add
        for key, text in zip((*row, STEP, "_timestamp"), texts, strict=True):
            item = add()
            item.key = key
            item.value_json = text
        history.step.num = step
        record.control.local = True
        record._info.stream_id = self._stream_id
        return request

    def _send(self, requests: list) -> None:
        if not requests:
            return
        client, header = self._client, self._header
        if header is not None:   # one write of every framed request, one drain
            blob = b"".join(header(r) for r in requests)

            async def write_all():
                if client._broken_exc is not None:
                    raise client._broken_exc
                client._writer.write(blob)
                await client._writer.drain()
        else:
            async def write_all():
                for request in requests:
                    await client.publish(request)

        try:
            self._asyncer.run(write_all)
            self.logged += sum(r.record_publish.request.HasField("partial_history") for r in requests)
        except Exception as e:
            self._report(e, f"log of {len(requests)} rows")

    def _report(self, e: Exception, what: str) -> None:
        self.errors += 1
        if self.errors == 1:
            self.replies.warn(f"W&B {what} failed ({type(e).__name__}: {e}); training goes on, "
                              "later failures are only counted")


def _socket_header(client):
    """``request -> bytes`` as wandb's ServiceClient frames a request on its socket (``<BI``:
    ``b"W"``, length; then the serialized request), or None for a client this code does not know."""
    try:
        from wandb.sdk.lib.service import service_client

        if service_client._HEADER_BYTE_INT_FMT != "<BI" or not hasattr(client, "_writer") \
                or not hasattr(client, "_broken_exc"):
            return None
    except (ImportError, AttributeError):
        return None
    pack = struct.Struct("<BI").pack

    def framed(request) -> bytes:
        data = request.SerializeToString()
        return pack(87, len(data)) + data   # 87 = ord("W")

    return framed


class Writer:
    """The main thread's loop: frames in order until ``CLOSE`` or the end of the pipe."""

    def __init__(self, run, spec: Mapping[str, Any], inbox: Inbox, replies: Replies):
        self.run, self.inbox, self.replies = run, inbox, replies
        self.publisher = Publisher(run, replies)
        self.max_points = spec["planned_max_points"]
        self.queue_mb = spec["queue_bytes"] / 2**20
        self.min_step = _start_step(run)
        self.parent_dropped = self.reported_dropped = 0

    @property
    def dropped(self) -> int:
        return self.inbox.dropped + self.parent_dropped

    def loop(self) -> int:
        """Log everything received; the exit code to finish the run with."""
        while True:
            frames, eof = self.inbox.take()
            rows: list = []
            for kind, _, payload in frames:
                if kind == ROWS:
                    rows += self._rows(payload)
                elif kind == DROPPED:   # the rows after this frame come after a gap
                    self._publish(rows)
                    rows = []
                    self.parent_dropped += pickle.loads(payload)
                elif kind == PLANNED:
                    self._publish(rows)
                    rows = []
                    self._planned(pickle.loads(payload))
                elif kind == CLOSE:
                    self._publish(rows)
                    return int(pickle.loads(payload))
            self._publish(rows)
            if eof and not frames:
                return EXIT_VANISHED

    def _rows(self, payload: bytes) -> list:
        try:
            return [r for r in pickle.loads(payload) if r[0] >= self.min_step]
        except Exception as e:   # a value this process cannot unpickle
            self.publisher._report(e, "reading a batch of rows")
            return []

    def _publish(self, rows: list) -> None:
        if self.dropped > self.reported_dropped and rows:
            if self.reported_dropped == 0:
                self.replies.warn(f"W&B writer fell behind: dropped the {self.dropped} oldest queued rows "
                                  f"(over logger.wandb.queue_mb={self.queue_mb:g} MiB waiting); the count is "
                                  f"logged as {DROPPED_KEY}, metrics.jsonl has every row")
            step, t, row = rows[0]
            rows[0] = (step, t, {**row, DROPPED_KEY: self.dropped})
            self.reported_dropped = self.dropped
        if rows:
            self.publisher.publish(rows)

    def _planned(self, rows: list) -> None:
        try:
            log_planned_schedule(self.run, rows, self.max_points)
        except Exception as e:
            self.publisher._report(e, "planned schedule")


def _start_step(run) -> int:
    try:
        return int(run.step)   # a resumed online run continues after its last step
    except Exception:
        return 0


def main(argv: Sequence[str]) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # Ctrl-C reaches the training process; it sends CLOSE
    rows_fd, replies_fd, parent_pid = (int(a) for a in argv)
    replies = Replies(replies_fd)
    inbox = Inbox(rows_fd, parent_pid)
    kind, _, payload = inbox.read_first()
    spec = pickle.loads(payload)
    set_priority(spec.get("priority", "idle"))
    try:
        import wandb

        settings = wandb.Settings(**{**LEAN_SETTINGS, "init_timeout": float(spec["init_timeout"]),
                                     **spec["settings"]})
    except Exception as e:   # pydantic's ValidationError lists each bad key
        detail = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors()) \
            if hasattr(e, "errors") else f"{type(e).__name__}: {e}"
        replies.send(CONFIG_ERROR, detail)
        return 0
    inbox.max_bytes = spec["queue_bytes"]
    inbox.start()
    replies.send(READY)
    run, mode = start_run(wandb, spec, settings, replies)
    replies.send(STARTED, {"mode": mode})
    if run is None:
        return 0
    if mode == "offline":
        _no_client_analytics()
    run.define_metric(STEP)
    run.define_metric("*", step_metric=STEP, step_sync=True)
    writer = Writer(run, spec, inbox, replies)
    exit_code = writer.loop()
    try:
        run.finish(exit_code=exit_code)
    except Exception as e:
        replies.warn(f"W&B finish failed ({type(e).__name__}: {e})")
    p = writer.publisher
    replies.send(FINISHED, {"logged": p.logged, "errors": p.errors, "dropped": writer.dropped,
                            "exit_code": exit_code, "mode": mode, "direct_records": p._fast})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
