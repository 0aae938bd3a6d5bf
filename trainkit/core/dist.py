"""Several processes and machines: what the ranks agree on, and how a run fails when one is lost.

* **One decision, made by rank 0.** The run directory and the checkpoint to resume from are
  decided once, on rank 0, and broadcast (:func:`from_rank0`), so ranks on hosts that see
  different files cannot diverge.
* **Checkpoints without a shared file system.** :func:`load_checkpoint` reads the checkpoint
  rank 0 chose on every rank that has the same file (same size and modification time);
  if any rank lacks it, rank 0 reads it and sends it to every rank.
* **Elastic restarts.** Under ``torchrun --max-restarts N`` a restarted group sees
  ``TORCHELASTIC_RESTART_COUNT > 0`` (on the ranks of the node that failed, at least); an unset
  ``trainer.resume`` then means ``auto`` (:func:`default_resume`), and :func:`launch_time`
  (the ``${launch_time:...}`` resolver of the default run directory) is the start time of the
  elastic agent, so a restarted rank 0 stamps, and resumes from, the same directory. A restart
  on one node starts its process group under a store prefix of its own (:func:`process_state`).
* **Bounded failure.** Every collective waits at most ``trainer.dist_timeout`` seconds
  (the process group's timeout, which gloo applies to each collective and NCCL's watchdog
  enforces); :func:`explain_collective_failure` turns gloo's error into one naming the ranks
  that never reported (a roll call in the process group's store).
"""
from __future__ import annotations

import datetime
import functools
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .checks import is_number

log = logging.getLogger("trainkit")

RESTART_COUNT = "TORCHELASTIC_RESTART_COUNT"
RUN_ID = "TORCHELASTIC_RUN_ID"
AGENT_STORE = "TORCHELASTIC_USE_AGENT_STORE"
ROLL_CALL = "trainkit/failed/"   # + rank: "this rank saw the collective fail"


# ------------------------------------------------------------------ the process group
def timeout_seconds(value: Any, key: str = "trainer.dist_timeout") -> float:
    """``value`` checked to be a number of seconds > 0."""
    if not is_number(value) or not value > 0 or value != value or value == float("inf"):
        raise ValueError(f"{key} must be a number of seconds > 0, got {value!r}")
    return float(value)


def init_kwargs(timeout: float):
    """accelerate's ``InitProcessGroupKwargs`` carrying the collective timeout ``timeout`` (s)."""
    from accelerate.utils import InitProcessGroupKwargs

    return InitProcessGroupKwargs(timeout=datetime.timedelta(seconds=timeout_seconds(timeout)))


def process_state(timeout: float):
    """accelerate's ``PartialState`` (the process group, started on first use with ``timeout``);
    the Runner's ``Accelerator`` reuses it. Under an elastic agent, see :func:`_restarted_group`."""
    import torch
    import torch.distributed as dist
    from accelerate import PartialState

    if dist.is_available() and not dist.is_initialized() and os.environ.get(RUN_ID):
        check_elastic_store()
        if restart_count() > 0 and os.environ.get(AGENT_STORE) == "True":
            _restarted_group(timeout)
    return PartialState(cpu=not torch.cuda.is_available(), **init_kwargs(timeout).to_kwargs())


def check_elastic_store() -> None:
    """Refuse restarts that cannot work: torch's elastic agent (2.4+) shares its TCPStore with the
    workers and keeps it over restarts, so a restarted group reads the addresses of the first
    attempt's processes and cannot connect (pytorch/pytorch#135712). On one node trainkit keeps
    each attempt's keys apart (:func:`_restarted_group`); on several nodes the agents count
    restarts differently, so the agents must not share their store (the c10d rendezvous with
    ``TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1``; the static rendezvous always shares it)."""
    if os.environ.get(AGENT_STORE) == "True" and int(os.environ.get("GROUP_WORLD_SIZE", "1")) > 1 \
            and int(os.environ.get("TORCHELASTIC_MAX_RESTARTS", "0")) > 0:
        raise RuntimeError(
            "torchrun --max-restarts on several nodes: a restarted worker group would read the first attempt's "
            "addresses from the store torch's elastic agent shares with its workers (pytorch/pytorch#135712). "
            "Use the c10d rendezvous (torchrun --rdzv_backend c10d; accelerate: rdzv_backend: c10d) with "
            "TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1 in the environment of every node's torchrun, or no "
            "--max-restarts; see docs/scaling.md.")


def _restarted_group(timeout: float) -> None:
    """Start the default process group of an elastic restart on ONE node itself, on the agent's
    store under the prefix ``trainkit/attempt_<TORCHELASTIC_RESTART_COUNT>/`` (the count is the
    same for every worker of one agent), so the new group never reads an earlier attempt's keys
    (``env://`` would, on that shared store)."""
    import torch
    import torch.distributed as dist

    span = datetime.timedelta(seconds=timeout)
    world = int(os.environ["WORLD_SIZE"])
    store = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), world, is_master=False,
                          timeout=span)
    store = dist.PrefixStore(f"trainkit/attempt_{restart_count()}/", store)
    dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo", store=store,
                            rank=int(os.environ["RANK"]), world_size=world, timeout=span)


def _group(acc: Any = None) -> tuple[int, int]:
    """``(rank, world size)`` of ``acc`` (an ``Accelerator``/``PartialState``, anything with
    ``process_index`` and ``num_processes``), else of the default process group; ``(0, 1)``
    without one. A dry-run Runner's accelerator is one process even inside a larger group."""
    import torch.distributed as dist

    if acc is not None:
        return acc.process_index, acc.num_processes
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


# ------------------------------------------------------------------ decisions
def from_rank0(acc: Any, fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` computed on rank 0 and returned on every rank of ``acc`` (a broadcast);
    when it raises on rank 0, every rank raises the same error (rank 0 the original)."""
    import torch.distributed as dist

    rank, world = _group(acc)
    if world == 1:
        return fn(*args)
    box: list[Any] = [None]
    error = None
    if rank == 0:
        try:
            box = [("ok", fn(*args))]
        except Exception as e:
            error = e
            box = [("error", _portable(e))]
    dist.broadcast_object_list(box, src=0)
    kind, value = box[0]
    if kind == "error":
        if error is not None:
            raise error
        raise value
    return value


def _portable(e: Exception) -> Exception:
    """``e`` if it survives pickling, else a ``RuntimeError`` with its type and message."""
    import pickle

    try:
        pickle.loads(pickle.dumps(e))
        return e
    except Exception:
        return RuntimeError(f"on rank 0: {type(e).__name__}: {e}")


def gather(acc: Any, value: Any) -> list[Any]:
    """Every rank's ``value``, in rank order, on every rank of ``acc``."""
    import torch.distributed as dist

    _, world = _group(acc)
    if world == 1:
        return [value]
    out: list[Any] = [None] * world
    dist.all_gather_object(out, value)
    return out


# ------------------------------------------------------------------ checkpoints
def _stamp(path: str | os.PathLike) -> tuple[int, int] | None:
    """``(size, mtime_ns)`` of the file at ``path``, None when there is none."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


def load_checkpoint(acc: Any, path: str | os.PathLike, load: Callable[[Path], dict]) -> dict:
    """The checkpoint at ``path`` (chosen by rank 0), the same on every rank of ``acc``.

    Ranks whose file system holds the same file (same size and modification time as rank 0's:
    a shared ``trainer.work_dir``) read it themselves. If any rank lacks it (hosts without a
    shared file system: checkpoints are only on rank 0's disk), rank 0 reads it and sends the
    whole state to every rank (one broadcast of the pickled state; rank 0's RNG state included,
    as on a shared disk)."""
    rank, world = _group(acc)
    if world == 1:
        return load(Path(path))
    stamp = from_rank0(acc, _stamp, path)
    if stamp is None:   # rank 0 raises load's own error; the others the same, through from_rank0
        return from_rank0(acc, load, Path(path))
    has = gather(acc, _stamp(path) == stamp)
    if all(has):
        return load(Path(path))
    if rank == 0:
        lacking = [r for r, h in enumerate(has) if not h]
        log.info("checkpoint %s (%.1f MB) is not on the file system of rank%s %s (no shared trainer.work_dir): "
                 "rank 0 sends it", path, stamp[0] / 2**20, "s" if len(lacking) > 1 else "",
                 ", ".join(map(str, lacking)))
    return from_rank0(acc, load, Path(path))


# ------------------------------------------------------------------ elastic restarts
def restart_count() -> int:
    """How many times the elastic agent has restarted this worker group after a failure
    (``TORCHELASTIC_RESTART_COUNT``; 0 outside torchrun / accelerate launch)."""
    try:
        return int(os.environ.get(RESTART_COUNT, "0"))
    except ValueError:
        return 0


def restart_counts(acc: Any = None) -> list[int]:
    """Every rank's :func:`restart_count` (a collective: call it on every rank). The agent of a
    node whose worker failed counts a restart; an agent that restarts its healthy workers only
    because another node failed may count none (pytorch/pytorch#108158), hence every rank's."""
    return gather(acc, restart_count())


def default_resume(resume: str | None, acc: Any = None) -> str | None:
    """``trainer.resume`` as given, or ``auto`` where it is unset and this start is an elastic
    restart: some rank's ``TORCHELASTIC_RESTART_COUNT`` is above 0 (a collective)."""
    if resume is not None:
        return resume
    counts = restart_counts(acc)
    if max(counts) > 0:
        if _group(acc)[0] == 0:
            log.info("elastic restart %d of this worker group (restart count by rank: %s): trainer.resume=auto",
                     max(counts), counts)
        return "auto"
    return None


@functools.lru_cache(maxsize=1)
def _agent_start() -> datetime.datetime | None:
    """Start time of the elastic agent (torchrun, accelerate launch) that started this process:
    the nearest ancestor process whose environment has no ``TORCHELASTIC_RUN_ID`` (the agent
    puts it in its workers' environment, and a wrapper script in between inherits it).
    None outside an agent or where ``/proc`` cannot tell (not Linux)."""
    if RUN_ID not in os.environ:
        return None
    try:
        pid = os.getppid()
        for _ in range(16):
            if RUN_ID.encode() + b"=" not in Path(f"/proc/{pid}/environ").read_bytes():
                return _process_start(pid)
            pid = _parent_pid(pid)
    except (OSError, ValueError, IndexError):
        pass
    return None


def _stat_fields(pid: int) -> list[str]:
    """Fields 3.. of ``/proc/<pid>/stat`` (after the parenthesised command name)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2:].split()


def _parent_pid(pid: int) -> int:
    return int(_stat_fields(pid)[1])


def _process_start(pid: int) -> datetime.datetime:
    """Boot time (``btime`` of ``/proc/stat``) + the process's start in clock ticks since boot."""
    ticks = int(_stat_fields(pid)[19])
    btime = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                 if line.startswith("btime "))
    return datetime.datetime.fromtimestamp(btime + ticks / os.sysconf("SC_CLK_TCK"))


def launch_time(pattern: str) -> str:
    """``${launch_time:%Y-%m-%d_%H-%M-%S}``: when the run was launched, formatted. Under an
    elastic agent that is the agent's start time, the same for every restart of the worker
    group (so a restarted rank 0 stamps the run directory of the first attempt); otherwise
    now (as Hydra's ``${now:...}``; the resolver is cached per config, so one run reads one time)."""
    return (_agent_start() or datetime.datetime.now()).strftime(pattern)


# ------------------------------------------------------------------ a lost rank
class CollectiveError(RuntimeError):
    """A collective failed: a rank hangs or died (``ranks_missing``: the ranks that did not
    report the failure within the roll call; empty when every rank did or none could be asked)."""

    def __init__(self, message: str, ranks_missing: list[int]):
        super().__init__(message)
        self.ranks_missing = ranks_missing


def is_collective_failure(e: BaseException, acc: Any = None) -> bool:
    """Is ``e`` the error of a collective that could not complete (a peer lost or too slow)?
    torch's ``DistError`` family, or gloo's ``RuntimeError``: its messages name gloo's source
    (``.../gloo/transport/tcp/pair.cc:553] Connection closed by peer``, ``... Timed out waiting
    5000ms``), except *Application timeout caused pair closure* (DDP's broadcast after the timeout)."""
    import torch.distributed as dist

    if _group(acc)[1] == 1:
        return False
    if isinstance(e, getattr(dist, "DistError", ())):
        return True
    text = str(e)
    return type(e) is RuntimeError and ("/gloo/" in text or "caused pair closure" in text)


def roll_call(acc: Any, timeout: float, grace: float = 5.0) -> list[int] | None:
    """Report this rank's failed collective in the process group's store and wait up to
    ``min(grace, timeout)`` s for the other ranks' reports; returns the ranks that did not
    report (sorted), or None when the store cannot be reached (it lives in the elastic agent
    of node 0, or in rank 0's process without one). The store holds this attempt's keys only:
    a first attempt's is new, a restart on one node has its own prefix (:func:`_restarted_group`),
    a restart on several nodes its own store (``TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1``)."""
    import torch.distributed as dist

    rank, world = _group(acc)
    prefix = ROLL_CALL
    try:
        store = dist.distributed_c10d._get_default_store()
        store.set_timeout(datetime.timedelta(seconds=max(1.0, min(grace, timeout))))
        store.set(f"{prefix}{rank}", "1")
        missing = [r for r in range(world) if r != rank]
        deadline = time.monotonic() + min(grace, timeout)
        while missing and time.monotonic() < deadline:
            missing = [r for r in missing if not store.check([f"{prefix}{r}"])]
            time.sleep(0.1)
        return missing
    except Exception:   # the store is gone with its host
        return None


def explain_collective_failure(acc: Any, e: BaseException, timeout: float, where: str) -> CollectiveError:
    """The error a rank raises when a collective failed (``e``) at ``where`` (e.g. ``epoch 0,
    iter 3``): it names this rank, the ranks that never reported (from :func:`roll_call`),
    the timeout and what to do."""
    rank, world = _group(acc)
    missing = roll_call(acc, timeout)
    if missing is None:
        who = ("the process group's store could not be reached: the host of rank 0 (or of the "
               "elastic agent of node 0) is likely the one lost")
    elif missing:
        names = ", ".join(map(str, missing))
        who = (f"rank{'s' if len(missing) > 1 else ''} {names} did not report it: "
               f"{'they hang' if len(missing) > 1 else 'it hangs'} (deadlock, stalled I/O) or died")
    else:
        who = "every rank reported it (a network failure between hosts?)"
    return CollectiveError(
        f"rank {rank} of {world}: a collective at {where} failed ({type(e).__name__}: {e}) after waiting up "
        f"to trainer.dist_timeout={timeout:g} s; {who}. Under torchrun --max-restarts N the group is "
        "restarted and resumes from the last checkpoint.", missing or [])
