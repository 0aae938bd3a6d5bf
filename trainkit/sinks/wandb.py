"""Weights & Biases sink: the LoggerHook's rows in a W&B run, offline by default.

Each row becomes ONE ``run.log({**row, "trainer/global_step": step}, step=step)``
call; every metric is charted against ``trainer/global_step`` (the 0-based
iteration index; ``define_metric("*", step_metric=...)``), and ``epoch`` is in
every row to chart against instead. W&B never stops training:

- init: ``online`` falls back to ``offline`` (no API key, unreachable server, a
  timeout after ``init_timeout`` s), ``offline`` falls back to no W&B at all;
  each fallback is a warning. Nothing is prompted for.
- a ``run.log`` error is reported once (then counted) and training goes on.
- ``close(status)`` finishes the run with exit code 0 (``finished``), 1
  (``failed``) or 255 (``killed``: Ctrl-C, W&B's own code for it); W&B shows a
  non-zero exit code as a failed run.

No system metrics, git state, code, requirements or console capture unless
``settings`` asks for them.
"""
from __future__ import annotations

import logging
import math
import os
import shutil
import socket
import threading
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence
from urllib.parse import urlsplit

from ..core.checks import boolean

log = logging.getLogger("trainkit")

STEP = "trainer/global_step"
MODES = ("online", "offline", "disabled")
_MODE_ALIASES = {"dryrun": "offline", "run": "online"}   # W&B's legacy WANDB_MODE values
EXIT_CODES = {"finished": 0, "failed": 1, "killed": 255}
LEAN_SETTINGS = {
    "x_disable_stats": True, "x_disable_meta": True, "x_disable_machine_info": True,
    "x_save_requirements": False, "disable_git": True, "save_code": False,
    "disable_job_creation": True, "console": "off",
}
RUN_ID_FILE = "wandb_run_id"
PROBE_TIMEOUT = 3.0   # seconds: the most an unreachable W&B server costs before falling back to offline


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
    settings: Dict[str, Any] = field(default_factory=dict)   # extra wandb.Settings, e.g. {x_disable_stats: false}

    def __post_init__(self) -> None:   # the Hydra schema leaves booleans untyped: "yes" is refused here
        boolean("logger.wandb.log_planned_schedule", self.log_planned_schedule)


CONFIG_KEYS = tuple(f.name for f in fields(WandbConfig))


class WandbSink:
    """A :class:`trainkit.core.record.Sink` writing to one W&B run (``self.run``; None
    when W&B ended up disabled). ``mode`` is the mode asked for, ``self.mode`` the
    one obtained. ``run_id`` continues that run (``resume="allow"``)."""

    def __init__(self, *, config: Optional[Mapping[str, Any]] = None, run_id: Optional[str] = None,
                 **options: Any):
        """``options``: the fields of :class:`WandbConfig` (``dir`` defaults to ``.``);
        ``config``: the run's configuration shown in W&B."""
        unknown = sorted(set(options) - set(CONFIG_KEYS))
        if unknown:
            raise ValueError(f"logger.wandb: unknown keys {unknown}; allowed: {', '.join(CONFIG_KEYS)}")
        o = WandbConfig(**options)
        mode, init_timeout, planned_max_points = o.mode, o.init_timeout, o.planned_max_points
        log_planned_schedule, settings = o.log_planned_schedule, o.settings
        mode = check_mode(mode)
        if not init_timeout > 0:
            raise ValueError(f"logger.wandb.init_timeout must be > 0 seconds, got {init_timeout}")
        if planned_max_points < 2:
            raise ValueError(f"logger.wandb.planned_max_points must be >= 2, got {planned_max_points}")
        self.log_planned_schedule, self.planned_max_points = log_planned_schedule, planned_max_points
        self.run, self.mode, self.errors, self._min_step = None, "disabled", 0, 0
        if mode == "disabled":
            return
        init_args = dict(project=o.project, entity=o.entity, name=o.name, group=o.group, tags=list(o.tags) or None,
                         notes=o.notes, config=dict(config or {}), dir=str(o.dir or "."), id=run_id,
                         resume="allow" if run_id else None, reinit="create_new")
        self._start(mode, init_args, {**LEAN_SETTINGS, "init_timeout": float(init_timeout), **(settings or {})})

    def _start(self, mode: str, init_args: dict, settings: dict[str, Any]) -> None:
        import wandb

        base_url = settings.get("base_url")   # given in logger.wandb.settings, else the environment's
        try:
            settings = wandb.Settings(**settings)
        except Exception as e:   # pydantic's ValidationError lists each bad key
            detail = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors()) \
                if hasattr(e, "errors") else str(e)
            raise ValueError(f"logger.wandb.settings: {detail}") from None
        Path(init_args["dir"]).mkdir(parents=True, exist_ok=True)
        had_service = "WANDB_SERVICE" in os.environ
        if os.environ.get("WANDB_MODE") == "":   # empty is unset (as for wandb), and kept from wandb.init
            del os.environ["WANDB_MODE"]
        for m in ("online", "offline") if mode == "online" else ("offline",):
            before = _run_dirs(init_args["dir"])
            try:
                if m == "online":
                    if not _has_credentials(wandb):
                        raise RuntimeError("no W&B API key (set WANDB_API_KEY or run `wandb login`)")
                    _probe_server(wandb, base_url, min(PROBE_TIMEOUT, float(settings.init_timeout)))
                self.run = wandb.init(mode=m, settings=settings, **init_args)
                self.mode = m
                break
            except Exception as e:   # never let W&B stop training
                then = "falling back to offline" if m == "online" else "W&B logging is off for this run"
                log.warning("W&B %s init failed (%s: %s); %s", m, type(e).__name__, e, then)
                _remove_new_run_dirs(init_args["dir"], before)
        if not had_service:   # the service address would leak into child processes
            os.environ.pop("WANDB_SERVICE", None)
        if self.run is None:
            return
        if self.mode == "offline":
            _no_client_analytics()
        self.run.define_metric(STEP)
        self.run.define_metric("*", step_metric=STEP, step_sync=True)
        try:
            self._min_step = self.run.step   # a resumed online run continues after its last step
        except Exception:
            self._min_step = 0

    def log(self, row: dict[str, Any], step: int) -> None:
        if self.run is None or step < self._min_step:
            return
        try:
            self.run.log({**row, STEP: step}, step=step)
        except Exception as e:
            self._report(e, f"log at step {step}")

    @property
    def wants_planned_schedule(self) -> bool:
        return self.run is not None and self.log_planned_schedule

    def log_planned(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Log the planned schedule (see :func:`log_planned_schedule`) if wanted."""
        if not self.wants_planned_schedule or not rows:
            return
        try:
            log_planned_schedule(self.run, rows, self.planned_max_points)
        except Exception as e:
            self._report(e, "planned schedule")

    def close(self, status: str = "finished") -> None:
        run, self.run = self.run, None
        if run is None:
            return
        if self.errors > 1:
            log.warning("W&B: %d logging calls failed in this run", self.errors)
        try:
            run.finish(exit_code=EXIT_CODES.get(status, 1))
        except Exception as e:
            log.warning("W&B finish failed (%s: %s)", type(e).__name__, e)

    def _report(self, e: Exception, what: str) -> None:
        self.errors += 1
        if self.errors == 1:
            log.warning("W&B %s failed (%s: %s); training goes on, later failures are only counted",
                        what, type(e).__name__, e)


def log_planned_schedule(run, rows: Sequence[Mapping[str, Any]], max_points: int = 2000) -> dict[str, Any]:
    """Log the planned schedule once: for every group ``g`` found as ``lr/<g>`` in
    ``rows`` (dicts with ``iter``, ``epoch``, ``lr/<g>``, ``momentum/<g>``), a table
    (columns iter, epoch, lr[, momentum]) and line charts ``planned/lr/<g>`` and
    ``planned/momentum/<g>`` over ``iter`` (the same axis as ``trainer/global_step``).

    Logged with ``commit=False`` and no step: it joins the current history row and
    never moves W&B's step. More than ``max_points`` rows are thinned to every
    ``ceil(n / max_points)``-th row plus the last. Returns the logged dict.
    """
    import wandb

    stride = math.ceil(len(rows) / max_points)
    kept = list(rows[::stride])
    if (len(rows) - 1) % stride:
        kept.append(rows[-1])
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


def check_mode(mode: Optional[str]) -> str:
    """``online | offline | disabled`` (W&B's ``dryrun``/``run`` accepted); ``WANDB_DISABLED=true`` wins.
    An empty mode (``WANDB_MODE=`` set but empty, read by the conf's ``${oc.env:WANDB_MODE,offline}``)
    is unset, as wandb itself treats it: the default, ``offline``."""
    if os.environ.get("WANDB_DISABLED", "").lower() in ("true", "1", "yes"):
        return "disabled"
    if mode is None or mode == "":
        mode = WandbConfig.mode
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
    (``resume=True``) continues the W&B run whose id is in ``work_dir/wandb_run_id``.
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
    if sink.run is not None:
        work_dir.mkdir(parents=True, exist_ok=True)
        id_file.write_text(sink.run.id + "\n")
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


def _probe_server(wandb, base_url: Optional[str], timeout: float) -> None:
    """Raise ``ConnectionError`` unless a TCP connection to W&B's server opens within ``timeout``
    seconds: a refused or unreachable server then costs at most ``timeout``, not wandb's
    ``init_timeout`` plus its retries. The name lookup runs in a daemon thread, so a hanging DNS
    query is bounded too. The server: ``base_url`` (from ``logger.wandb.settings``), else
    ``WANDB_BASE_URL`` as wandb.init reads it now, else wandb's configured default."""
    url = str(base_url or os.environ.get("WANDB_BASE_URL") or wandb.setup().settings.base_url)
    parts = urlsplit(url)
    host, port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
    if not host:
        return
    outcome: list[BaseException | None] = []

    def connect() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            outcome.append(None)
        except OSError as e:
            outcome.append(e)

    start = time.monotonic()
    worker = threading.Thread(target=connect, daemon=True, name="trainkit-wandb-probe")
    worker.start()
    worker.join(timeout)
    if not outcome:
        raise ConnectionError(f"W&B server {url} did not answer within {timeout:g} s")
    if outcome[0] is not None:
        raise ConnectionError(f"W&B server {url} is unreachable ({outcome[0]}; probed in "
                              f"{time.monotonic() - start:.2f} s)")


def _run_dirs(root: str) -> set[str]:
    """The ``run-*`` directories wandb has made under ``<root>/wandb`` (online attempts)."""
    base = Path(root) / "wandb"
    return {p.name for p in base.glob("run-*")} if base.is_dir() else set()


def _remove_new_run_dirs(root: str, before: set[str]) -> None:
    """Remove the ``run-*`` directories a failed ``wandb.init`` left (there is no run in them), so
    only the run that did start (``offline-run-*``) is in ``<root>/wandb``."""
    base = Path(root) / "wandb"
    for name in sorted(_run_dirs(root) - before):
        shutil.rmtree(base / name, ignore_errors=True)
        log.info("W&B: removed %s, left by the failed init", base / name)
    latest = base / "latest-run"
    if latest.is_symlink() and not latest.exists():
        latest.unlink()


def _has_credentials(wandb) -> bool:
    """Whether W&B has an API key (env, .netrc, settings) for its server, asked
    without a prompt and without the network; True when this wandb cannot tell."""
    try:
        from wandb.sdk.lib import wbauth

        return wbauth.authenticate_session(host=wandb.setup().settings.base_url, source="trainkit",
                                           prompt=False, update_session=False) is not None
    except (ImportError, AttributeError, TypeError):
        return True
