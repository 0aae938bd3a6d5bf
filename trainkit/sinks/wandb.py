"""Weights & Biases sink: the LoggerHook's rows in a W&B run, offline by default.

The W&B run lives in a child process, the *writer* (:mod:`trainkit.sinks.wandb_writer`),
so W&B is off the training thread's critical path: :meth:`WandbSink.log` appends the row
to a list and every :data:`BATCH_ROWS` rows (or :data:`BATCH_SECONDS` s, at a checkpoint
and at close) pickles the batch into a non-blocking pipe. Each row becomes what
``run.log({**row, "trainer/global_step": step}, step=step)`` logs; every metric is charted
against ``trainer/global_step`` (the 0-based iteration index; ``define_metric("*",
step_metric=...)``), and ``epoch`` is in every row to chart against instead.

Nothing lost, nothing blocks, W&B never stops training:

- init runs in the writer while training starts: ``online`` falls back to ``offline`` (no
  API key, a server refusing a TCP probe, any init error or a timeout after
  ``init_timeout`` s), ``offline`` falls back to no W&B at all; each fallback is a warning
  in this process's log. Bad ``settings`` are refused before training (a ValueError).
- a full queue never blocks: rows waiting beyond ``queue_mb`` MiB are dropped oldest first,
  counted, and the count is logged to W&B as ``trainkit/wandb_dropped``.
- ``close(status)`` sends every queued row, then finishes the run with exit code 0
  (``finished``), 1 (``failed``) or 255 (``killed``: Ctrl-C, W&B's own code for it), and
  waits for the writer. Training killed (``kill -9``): the writer logs what it received,
  finishes with exit code 1 and exits. The writer killed: one warning, training goes on.

No system metrics, git state, code, requirements or console capture unless
``settings`` asks for them.
"""
from __future__ import annotations

import atexit
import io
import logging
import os
import pickle
import secrets
import select
import subprocess
import sys
import time
import weakref
from collections import deque
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

from ..core.checks import boolean
from . import wandb_writer as W
from .wandb_writer import LEAN_SETTINGS, STEP, log_planned_schedule, thin  # noqa: F401 (public names)

log = logging.getLogger("trainkit")

MODES = ("online", "offline", "disabled")
_MODE_ALIASES = {"dryrun": "offline", "run": "online"}   # W&B's legacy WANDB_MODE values
EXIT_CODES = {"finished": 0, "failed": 1, "killed": 255}
RUN_ID_FILE = "wandb_run_id"
BATCH_ROWS = 20        # rows pickled into the pipe at once
BATCH_SECONDS = 0.5    # ... or after this long, whichever comes first
START_TIMEOUT = 120.0  # seconds for the writer to import wandb and accept the settings


@dataclass
class WandbConfig:
    """``logger.wandb``: the W&B run's options (the Hydra schema and :class:`WandbSink`'s keywords)."""

    mode: str = "offline"                # online | offline | disabled (conf: $WANDB_MODE, else offline)
    project: Optional[str] = "trainkit"  # conf: $WANDB_PROJECT, else trainkit
    entity: Optional[str] = None         # null: WANDB_ENTITY, else your default entity
    name: Optional[str] = None           # null: WANDB_NAME, else <recipe>[<overrides>]
    group: Optional[str] = None          # null: WANDB_RUN_GROUP, else the multirun sweep dir
    tags: List[str] = field(default_factory=list)
    notes: Optional[str] = None
    dir: Optional[str] = None            # null: WANDB_DIR, else the run directory
    init_timeout: float = 30.0           # seconds before an unreachable server counts as down
    log_planned_schedule: bool = True    # chart the schedule preview per group at the start
    planned_max_points: int = 2000       # rows of that chart (thinned evenly beyond this)
    log_interval: Optional[int] = None   # null: every row trainer.log_interval gives; N: iteration rows every N
    queue_mb: float = 256.0              # rows waiting for W&B beyond this (MiB pickled) are dropped, oldest first
    writer_priority: str = "idle"        # idle: the writer runs on spare CPU only | low: nice +10 | normal
    settings: Dict[str, Any] = field(default_factory=dict)   # extra wandb.Settings, e.g. {x_disable_stats: false}

    def __post_init__(self) -> None:   # the Hydra schema leaves booleans untyped: "yes" is refused here
        boolean("logger.wandb.log_planned_schedule", self.log_planned_schedule)


CONFIG_KEYS = tuple(f.name for f in fields(WandbConfig))


class WandbSink:
    """A :class:`trainkit.core.record.Sink` writing to one W&B run through a writer process.

    ``run_id``: continue that run (``resume="allow"``); otherwise a new id (``WANDB_RUN_ID``
    if set), known at once as ``self.run_id``. ``self.mode``: the mode obtained, None while
    the writer is still starting W&B (:meth:`wait_started` waits for it); ``"disabled"``
    when W&B ended up off. After :meth:`close`: ``logged`` rows, ``errors``, ``dropped``.
    """

    def __init__(self, *, config: Optional[Mapping[str, Any]] = None, run_id: Optional[str] = None,
                 **options: Any):
        """``options``: the fields of :class:`WandbConfig` (``dir`` defaults to ``.``);
        ``config``: the run's configuration shown in W&B."""
        o = _checked_options(options)
        mode = check_mode(o.mode)
        self.log_planned_schedule, self.planned_max_points = o.log_planned_schedule, o.planned_max_points
        self.log_interval = o.log_interval   # read by the LoggerHook
        self.mode: Optional[str] = "disabled" if mode == "disabled" else None
        self.run_id: Optional[str] = None
        self.logged = self.errors = self.dropped = 0
        self.direct_records = False   # whether the writer built the records itself (else run.log each row)
        self.dropped_in_training_process = 0
        self._rows: list[tuple[int, float, dict]] = []
        self._batch_t0 = 0.0
        self._link: Optional[_WriterLink] = None
        if mode == "disabled":
            return
        self.run_id = run_id or os.environ.get("WANDB_RUN_ID") or new_run_id()
        init_args = dict(project=o.project, entity=o.entity, name=o.name, group=o.group, tags=list(o.tags) or None,
                         notes=o.notes, config=dict(config or {}), dir=str(Path(o.dir or ".").resolve()),
                         id=self.run_id, resume="allow" if run_id else None, reinit="create_new")
        spec = {"mode": mode, "init_args": init_args, "settings": dict(o.settings or {}),
                "init_timeout": float(o.init_timeout), "planned_max_points": o.planned_max_points,
                "queue_bytes": int(o.queue_mb * 2**20), "priority": o.writer_priority}
        link = _WriterLink(spec, weakref.WeakMethod(self._on_reply), max_bytes=spec["queue_bytes"])
        if link.dead:   # it did not start; the warning is out
            self.mode = "disabled"
            return
        self._link = link
        _install_exit_hooks()
        _open_sinks.add(self)
        # never closed and garbage-collected: finish the run with exit code 0, without waiting
        self._finalizer = weakref.finalize(self, link.abandon, self._rows)
        self._finalizer.atexit = False   # at exit, _close_open_sinks closes it (and waits)

    # ------------------------------------------------------------------ rows
    def log(self, row: dict[str, Any], step: int) -> None:
        """Queue ``row`` at ``step`` (kept by reference until sent: do not change it afterwards)."""
        if self._link is None:
            return
        t = time.time()
        if not self._rows:
            self._batch_t0 = t
        self._rows.append((step, t, row))
        if len(self._rows) >= BATCH_ROWS or t - self._batch_t0 >= BATCH_SECONDS:
            self._send_rows()

    def flush(self) -> None:
        """Hand the queued rows to the writer now (at a checkpoint, at the end of the run)."""
        if self._link is not None:
            self._send_rows()

    def _send_rows(self) -> None:
        rows = self._rows[:]
        self._rows.clear()   # the same list: the finalizer of an abandoned sink sends what is left
        link = self._link
        if rows and link is not None:
            link.send(W.ROWS, _pickle_rows(rows), len(rows))
            link.poll()
            if link.dead:   # W&B is off (the writer died, or started W&B disabled): stop pickling
                self.close()

    @property
    def wants_planned_schedule(self) -> bool:
        return self._link is not None and self.log_planned_schedule

    def log_planned(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Chart the planned schedule (see :func:`log_planned_schedule`) if wanted."""
        if self.wants_planned_schedule and rows:
            self._link.send(W.PLANNED, _pickle_rows(thin(rows, self.planned_max_points)))

    # ------------------------------------------------------------- lifecycle
    @property
    def writer_pid(self) -> Optional[int]:
        return self._link.proc.pid if self._link is not None else None

    def wait_started(self, timeout: float = 120.0) -> Optional[str]:
        """The mode obtained, once the writer has started W&B (None after ``timeout`` s)."""
        deadline = time.monotonic() + timeout
        while self.mode is None and self._link is not None and not self._link.dead \
                and time.monotonic() < deadline:
            self._link.poll(wait=min(0.5, max(0.01, deadline - time.monotonic())))
        return self.mode

    def close(self, status: str = "finished") -> None:
        """Send every queued row, finish the run with ``status``'s exit code, wait for the writer."""
        _open_sinks.discard(self)
        link, self._link = self._link, None
        if link is None:
            return
        self._finalizer.detach()
        rows = self._rows[:]
        self._rows.clear()
        if rows:
            link.send(W.ROWS, _pickle_rows(rows), len(rows))
        link.finish(EXIT_CODES.get(status, 1))
        self.dropped_in_training_process = link.dropped   # the rest, if any, dropped by the writer
        self.dropped = max(self.dropped, link.dropped)
        if self.mode is None:
            self.mode = "disabled"
        if self.errors > 1:
            log.warning("W&B: %d logging calls failed in this run", self.errors)
        if self.dropped:
            log.warning("W&B: %d rows were dropped in this run (the writer fell behind; logged as %s)",
                        self.dropped, W.DROPPED_KEY)

    def _on_reply(self, kind: int, payload: Any) -> None:
        if kind == W.WARNING:
            log.warning("%s", payload)
        elif kind == W.STARTED:
            self.mode = payload["mode"]
        elif kind == W.FINISHED:
            self.logged, self.errors = payload["logged"], payload["errors"]
            self.direct_records = payload.get("direct_records", False)
            self.dropped = max(self.dropped, payload["dropped"])


def _checked_options(options: Mapping[str, Any]) -> WandbConfig:
    unknown = sorted(set(options) - set(CONFIG_KEYS))
    if unknown:
        raise ValueError(f"logger.wandb: unknown keys {unknown}; allowed: {', '.join(CONFIG_KEYS)}")
    o = WandbConfig(**options)
    if not o.init_timeout > 0:
        raise ValueError(f"logger.wandb.init_timeout must be > 0 seconds, got {o.init_timeout}")
    if isinstance(o.planned_max_points, bool) or not isinstance(o.planned_max_points, int) \
            or o.planned_max_points < 2:
        raise ValueError(f"logger.wandb.planned_max_points must be an integer >= 2, got {o.planned_max_points!r}")
    if o.log_interval is not None and (isinstance(o.log_interval, bool) or not isinstance(o.log_interval, int)
                                       or o.log_interval < 1):
        raise ValueError(f"logger.wandb.log_interval must be null or an integer >= 1, got {o.log_interval!r}")
    if isinstance(o.queue_mb, bool) or not isinstance(o.queue_mb, (int, float)) or not o.queue_mb > 0:
        raise ValueError(f"logger.wandb.queue_mb must be a number of MiB > 0, got {o.queue_mb!r}")
    if o.writer_priority not in W.PRIORITIES:
        raise ValueError(f"logger.wandb.writer_priority={o.writer_priority!r} is not valid; "
                         f"allowed: {', '.join(W.PRIORITIES)}")
    return o


def new_run_id() -> str:
    """A new W&B run id: 8 random base-36 digits (wandb's own format)."""
    return "".join(secrets.choice("0123456789abcdefghijklmnopqrstuvwxyz") for _ in range(8))


class _RowPickler(pickle.Pickler):
    """Pickles rows so the writer (no torch, maybe no numpy) can read them: a tensor or numpy
    value becomes its Python scalar (``.item()``) or list (``.tolist()``). Builtin values
    (floats, ints, str, ...) never reach ``reducer_override``: plain rows pay nothing."""

    def reducer_override(self, obj):
        if type(obj).__module__.split(".")[0] not in ("torch", "numpy"):
            return NotImplemented
        try:
            size = obj.numel() if hasattr(obj, "numel") else getattr(obj, "size", 1)
            value = obj.item() if size == 1 else obj.tolist()
        except Exception:
            value = str(obj)
        return type(value), (value,)


def _pickle_rows(rows: Any) -> bytes:
    buf = io.BytesIO()
    _RowPickler(buf, protocol=pickle.HIGHEST_PROTOCOL).dump(rows)
    return buf.getvalue()


class _WriterLink:
    """The writer process and its two pipes, seen from the training process.

    ``send`` never blocks: frames go into a non-blocking pipe, and what the pipe does not take
    waits in ``out`` (sent at the next ``send``); beyond ``max_bytes`` waiting there, the
    oldest row frames are dropped and their rows counted in ``dropped`` (reported to the
    writer, which logs the total). Replies are read without blocking by ``poll`` and handed
    to ``on_reply()(kind, payload)`` (a weak reference: the link never keeps its sink alive).
    If the writer dies, one warning, and sends stop.
    """

    def __init__(self, spec: Mapping[str, Any], on_reply: Callable[[], Callable[[int, Any], None] | None],
                 max_bytes: int):
        self.on_reply, self.max_bytes = on_reply, max_bytes
        self.out: deque[list] = deque()   # [data, kind, rows, partly written]
        self.out_bytes = self.dropped = self._unreported = 0
        self.dead = self._ready = self._eof = False
        self._replies = bytearray()
        self._started_mode: Optional[str] = None
        rows_r, rows_w = os.pipe()
        replies_r, replies_w = os.pipe()
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "trainkit.sinks.wandb_writer", str(rows_r), str(replies_w), str(os.getpid())],
                pass_fds=(rows_r, replies_w), env=_writer_env(), stdin=subprocess.DEVNULL, **_OWN_PROCESS_GROUP)
        except OSError as e:   # no process to be had: no W&B, training goes on
            log.warning("W&B writer could not be started (%s: %s); W&B logging is off for this run",
                        type(e).__name__, e)
            for fd in (rows_w, replies_r):
                os.close(fd)
            self.dead, self.fd, self.replies_fd = True, -1, -1
            return
        finally:
            os.close(rows_r)
            os.close(replies_w)
        self.fd, self.replies_fd = rows_w, replies_r
        os.set_blocking(self.fd, False)
        os.set_blocking(self.replies_fd, False)
        self._write(W.frame(W.INIT, dict(spec)), W.INIT, 0)
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while not self._ready and not self.dead:
            if time.monotonic() > deadline:
                log.warning("W&B writer did not start within %g s; W&B logging is off for this run", START_TIMEOUT)
                self._stop()
                return
            self._pump()   # the options may be more than the pipe holds
            self.poll(wait=0.05 if self.out else 0.5)

    # --------------------------------------------------------------- sending
    def send(self, kind: int, payload: bytes, rows: int = 0) -> None:
        if not self.dead:
            self._write(W.HEADER.pack(len(payload), kind, rows) + payload, kind, rows)

    def _write(self, data: bytes, kind: int, rows: int) -> None:
        self.out.append([memoryview(data), kind, rows, False])
        self.out_bytes += len(data)
        self._pump()
        if self.out_bytes > self.max_bytes:
            self._drop_oldest()
        if self._unreported and not self.dead:   # told before the rows after the gap
            n, self._unreported = self._unreported, 0
            entry = [memoryview(W.frame(W.DROPPED, n)), W.DROPPED, 0, False]
            self.out.insert(1 if self.out and self.out[0][3] else 0, entry)
            self.out_bytes += len(entry[0])
            self._pump()

    def _pump(self) -> None:
        while self.out and not self.dead:
            entry = self.out[0]
            try:
                n = os.write(self.fd, entry[0])
            except BlockingIOError:
                return
            except OSError:   # EPIPE: the writer is gone
                self._died()
                return
            self.out_bytes -= n
            if n < len(entry[0]):
                entry[0], entry[3] = entry[0][n:], True
                return
            self.out.popleft()

    def _drop_oldest(self) -> None:
        keep: deque[list] = deque()
        for entry in self.out:   # oldest first; never a frame partly in the pipe, never a control frame
            if self.out_bytes > self.max_bytes and entry[1] == W.ROWS and not entry[3]:
                self.out_bytes -= len(entry[0])
                self.dropped += entry[2]
                self._unreported += entry[2]
            else:
                keep.append(entry)
        self.out = keep

    # -------------------------------------------------------------- replies
    def poll(self, wait: float = 0.0) -> None:
        """Handle the writer's replies that have arrived (waiting up to ``wait`` s for one)."""
        if self._eof or self.replies_fd < 0:
            return
        if wait and not select.select([self.replies_fd], [], [], wait)[0]:
            self._check_alive()
            return
        while True:
            try:
                data = os.read(self.replies_fd, 1 << 16)
            except BlockingIOError:
                break
            if not data:
                self._eof = True
                break
            self._replies += data
        for kind, _, payload in W.split_frames(self._replies):
            self._handle(kind, pickle.loads(payload))
        if self._eof:
            self._check_alive()

    def _handle(self, kind: int, payload: Any) -> None:
        if kind == W.READY:
            self._ready = True
        elif kind == W.CONFIG_ERROR:
            self._stop()
            raise ValueError(f"logger.wandb.settings: {payload}")
        else:
            if kind == W.STARTED:
                self._started_mode = payload["mode"]
            handler = self.on_reply()
            if handler is not None:
                handler(kind, payload)
            elif kind == W.WARNING:
                log.warning("%s", payload)

    def _check_alive(self) -> None:
        if self.proc.poll() is not None or self._eof:
            self._died()

    def _died(self) -> None:
        if self.dead:
            return
        self.dead = True
        self.poll()   # what it said before it went (a warning, STARTED disabled)
        code = self.proc.poll()
        if code is None:
            try:
                code = self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                code = None
        if self._started_mode != "disabled" and not self._closing:
            how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
            log.warning("W&B writer (pid %d) ended unexpectedly (%s); W&B logging is off for the rest of this "
                        "run, training and metrics.jsonl go on", self.proc.pid, how)
        self._release()

    _closing = False

    # -------------------------------------------------------------- closing
    def finish(self, exit_code: int) -> None:
        """Send CLOSE, everything queued, then wait for the writer to finish the run and exit."""
        self._closing = True
        if not self.dead:
            self.out.append([memoryview(W.frame(W.CLOSE, exit_code)), W.CLOSE, 0, False])
        t0, said = time.monotonic(), 0.0
        try:
            while self.out and not self.dead:   # the writer's reader takes everything at once
                self._pump()
                if self.out and not self.dead:
                    select.select([], [self.fd], [], 1.0)
                    self._check_alive()
            self._close_fd()
            while not self._eof and self.replies_fd >= 0:
                self.poll(wait=1.0)
                if self.proc.poll() is not None:
                    self.poll()
                    break
                if time.monotonic() - t0 > said + 30:
                    said = time.monotonic() - t0
                    log.info("waiting for W&B to finish (writer pid %d, %.0f s)", self.proc.pid, said)
            self.proc.wait()
        except KeyboardInterrupt:
            log.warning("W&B: interrupted while finishing the run; the writer (pid %d) is stopped and the "
                        "run may lack its last rows", self.proc.pid)
            self.proc.kill()
            self.proc.wait()
            raise
        finally:
            self._release()

    def abandon(self, rows: list) -> None:
        """The sink was dropped unclosed: send its last rows and CLOSE (exit code 0), and leave
        the writer to finish on its own (subprocess reaps it later)."""
        if self.dead:
            return
        self._closing = True
        if rows:
            self.send(W.ROWS, _pickle_rows(rows), len(rows))
        self.out.append([memoryview(W.frame(W.CLOSE, 0)), W.CLOSE, 0, False])
        deadline = time.monotonic() + 2.0
        while self.out and not self.dead and time.monotonic() < deadline:
            self._pump()
            if self.out and not self.dead:
                select.select([], [self.fd], [], 0.1)
        self._close_fd()
        if self.replies_fd >= 0:
            os.close(self.replies_fd)
            self.replies_fd = -1
            self._eof = True

    def _stop(self) -> None:
        self._closing = True
        self.dead = True
        self._close_fd()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._release()

    def _close_fd(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def _release(self) -> None:
        self._close_fd()
        if self.replies_fd >= 0 and (self._eof or self.proc.returncode is not None):
            self.poll()
            os.close(self.replies_fd)
            self.replies_fd = -1
            self._eof = True
        self.out.clear()
        self.out_bytes = 0


# The writer gets its own process group, so a terminal's Ctrl-C (SIGINT to the foreground group)
# reaches only training, which then closes the sink (wandb-core dies of a SIGINT); it stays in
# training's session, so the scheduler (autogroup: one share per session) weighs its priority
# against training's own threads. Python 3.10 has no process_group: a new session there.
_OWN_PROCESS_GROUP = {"process_group": 0} if sys.version_info >= (3, 11) else {"start_new_session": True}


def _writer_env() -> dict[str, str]:
    """This process's environment for the writer, with empty ``WANDB_*`` variables left out
    (W&B treats them as unset, but ``wandb.Settings`` refuses ``WANDB_MODE=``) and this
    trainkit first on the path."""
    env = {k: v for k, v in os.environ.items() if not (k.startswith("WANDB_") and v == "")}
    root = str(Path(__file__).resolve().parent.parent.parent)
    env["PYTHONPATH"] = os.pathsep.join([root] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    return env


# Sinks never closed are closed at interpreter exit: "failed" after an uncaught exception.
_open_sinks: weakref.WeakSet[WandbSink] = weakref.WeakSet()
_OWNER_PID = os.getpid()
_uncaught: list[Optional[type]] = [None]
_previous_excepthook = sys.excepthook


def _excepthook(kind, value, tb) -> None:
    _uncaught[0] = kind
    _previous_excepthook(kind, value, tb)


def _close_open_sinks() -> None:
    if os.getpid() != _OWNER_PID:   # a forked copy of this process must not close the parent's run
        return
    kind = _uncaught[0]
    status = "finished" if kind is None else "killed" if issubclass(kind, KeyboardInterrupt) else "failed"
    for sink in list(_open_sinks):
        sink.close(status)


def _install_exit_hooks() -> None:
    if sys.excepthook is not _excepthook:
        global _previous_excepthook
        _previous_excepthook = sys.excepthook
        sys.excepthook = _excepthook
        atexit.register(_close_open_sinks)


def check_mode(mode: Optional[str]) -> str:
    """``online | offline | disabled`` (W&B's ``dryrun``/``run`` accepted; empty or None, as from
    ``WANDB_MODE=``, means unset: ``offline``); ``WANDB_DISABLED=true`` wins."""
    if os.environ.get("WANDB_DISABLED", "").lower() in ("true", "1", "yes"):
        return "disabled"
    if mode is None or mode == "":
        return "offline"
    mode = _MODE_ALIASES.get(mode, mode)
    if mode not in MODES:
        raise ValueError(f"logger.wandb.mode={mode!r} is not valid; allowed: {', '.join(MODES)}")
    return mode


def build_wandb_sink(node: Mapping[str, Any], cfg, work_dir: str | os.PathLike,
                     resume: bool = False) -> Optional[WandbSink]:
    """The sink for config node ``logger.wandb`` (None when disabled).

    Defaults: the run is named after the recipe and the command-line overrides,
    grouped by the Hydra multirun sweep directory, written under ``dir``, else
    ``WANDB_DIR``, else ``work_dir``, and configured with the resolved ``cfg``.
    ``WANDB_NAME``/``WANDB_RUN_GROUP``/``WANDB_ENTITY``/``WANDB_TAGS``/
    ``WANDB_NOTES`` apply where the node leaves a value null. A resumed run
    (``resume=True``) continues the W&B run whose id is in ``work_dir/wandb_run_id``;
    the id of a new run is written there when its writer starts.
    """
    from omegaconf import OmegaConf

    if OmegaConf.is_config(node):
        node = OmegaConf.to_container(node, resolve=True)
    unknown = sorted(set(node) - set(CONFIG_KEYS))
    if unknown:
        raise ValueError(f"logger.wandb: unknown keys {unknown}; allowed: {', '.join(CONFIG_KEYS)}")
    o = asdict(WandbConfig(**node))
    if check_mode(o["mode"]) == "disabled":
        return None
    work_dir = Path(work_dir)
    name, group = run_name_and_group(cfg)
    id_file = work_dir / RUN_ID_FILE
    o.update(name=o["name"] or os.environ.get("WANDB_NAME") or name,
             group=o["group"] or os.environ.get("WANDB_RUN_GROUP") or group,
             dir=str(o["dir"] or os.environ.get("WANDB_DIR") or work_dir))
    sink = WandbSink(config=OmegaConf.to_container(cfg, resolve=True),
                     run_id=id_file.read_text().strip() if resume and id_file.exists() else None, **o)
    if sink.writer_pid is not None:
        work_dir.mkdir(parents=True, exist_ok=True)
        id_file.write_text(sink.run_id + "\n")
    return sink


def run_name_and_group(cfg) -> tuple[str, Optional[str]]:
    """``(name, group)``: ``<cfg.name>`` or ``<cfg.name>[<hydra override_dirname>]``, and
    the sweep directory in a Hydra multirun (None otherwise, or outside Hydra)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    name = str(cfg.get("name") or "run")
    if not HydraConfig.initialized():
        return name, None
    hc = HydraConfig.get()
    overrides = hc.job.get("override_dirname")
    if overrides:
        name = f"{name}[{overrides}]"
    return name, str(hc.sweep.dir) if hc.mode == RunMode.MULTIRUN else None
